"""Restores: import an export back into ECS from its manifest, and follow each import to its end
(docs/contract.md, "Restoring"). The flow, against protocols; the decisions are ``handler.core.restoring``'s.

1. :func:`start_restore` (a ``Restore`` event, ``exporter-tools restore``): the source image's manifest
   (``<prefix>_<ImageId>.manifest.json``) must be a verified export's; no import of the same source may be
   in flight; then ``ImportImage`` with the manifest's files and metadata, the new image tagged as
   ``handler.core.restoring`` says → ``restore_started``.
2. :func:`follow_restores` (every timer run): the images tagged ``image-exporter:restore=importing``, each
   one's latest ImportImage task → ``restored`` / ``restore_failed`` (a drill's: ``restore_verified``), the
   check appended to the manifest's ``restore_checks``, a drill's image deleted; :meth:`RestoreRun.settle`
   then retags a restored image (``restored`` / ``failed``), only after the outcomes were logged and
   notified.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from pydantic import ValidationError

from handler.clock import SYSTEM_CLOCK, Clock
from handler.core.apis import ObjectStore, RestoreApi
from handler.core.restoring import (
    DRILL_IMAGE_ROOM,
    IMPORTING,
    RESTORE_KEY,
    RESTORED_FROM_KEY,
    decide_import,
    drill_name,
    import_spec,
    latest_import_tasks,
    pick_drill,
    restore_name,
    restore_tags,
    restore_tracking_of,
)
from handler.core.tracking import Destination
from handler.errors import (
    BudgetExhausted,
    DrillTimedOut,
    ExporterError,
    ImportTaskFailed,
    ManifestUnusable,
    NoVerifiedExport,
    ObjectNotFound,
    RangeNotSatisfiable,
)
from handler.models.api import Image, Task
from handler.models.manifest import MANIFEST_SCHEMA, Manifest, RestoreCheck, manifest_key
from handler.models.objects import ObjectUnreadable
from handler.models.results import ErrorInfo, ImageOutcome

if TYPE_CHECKING:
    from handler.core.catalogue import ManifestCache

__all__ = [
    "MAX_MANIFEST_BYTES",
    "RestoreRun",
    "append_check",
    "follow_restores",
    "read_manifest",
    "start_drill",
    "start_import",
    "start_restore",
]

_log = structlog.get_logger("handler.restore")

MAX_MANIFEST_BYTES = 1 << 20  # a manifest is a few kilobytes; a larger object is not read whole
MANIFEST_TYPE = "application/json"


def read_manifest(
    store: ObjectStore, dest: Destination, image_id: str, *, deadline: float, verified: bool = True
) -> Manifest:
    """The manifest of ``image_id``'s export at ``dest``, read with one ranged GET. ``NoVerifiedExport`` when
    there is none (or, with ``verified``, when its export was not verified); ``ManifestUnusable`` when it is
    empty, too large or not a manifest."""
    key = manifest_key(dest.prefix, image_id)
    where = f"tos://{dest.bucket}/{key}"
    try:
        body = store.get_range(dest.bucket, key, 0, MAX_MANIFEST_BYTES + 1, deadline=deadline)
    except ObjectNotFound:
        msg = f"no manifest at {where}: {image_id} has no verified export in that bucket and prefix"
        raise NoVerifiedExport(msg) from None
    except RangeNotSatisfiable:
        raise ManifestUnusable(f"{where} is empty") from None
    if len(body) > MAX_MANIFEST_BYTES:
        raise ManifestUnusable(f"{where} is larger than {MAX_MANIFEST_BYTES} bytes: not a manifest")
    try:
        manifest = Manifest.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(part) for part in first["loc"]) or "the document"
        msg = f"{where} is not a manifest ({exc.error_count()} error(s); first at {at}: {first['msg']})"
        raise ManifestUnusable(msg) from None
    if manifest.schema_ != MANIFEST_SCHEMA:
        raise ManifestUnusable(f"{where} has schema {manifest.schema_[:60]!r}, not {MANIFEST_SCHEMA}")
    if verified and not manifest.verification.verified:
        msg = (
            f"the export at {where} was not verified (EXPORT_VERIFY={manifest.verification.level}): only a "
            "verified export is restored; export the image again with EXPORT_VERIFY=structure"
        )
        raise NoVerifiedExport(msg)
    return manifest


def start_restore(
    api: RestoreApi,
    store: ObjectStore,
    *,
    source_id: str,
    dest: Destination,
    tos_origin: str,
    name: str | None,
    deadline: float,
    clock: Clock = SYSTEM_CLOCK,
) -> ImageOutcome:
    """Import ``source_id``'s verified export at ``dest`` back into ECS: ``restore_started`` with the new
    image; ``skipped`` when an import of the same source is already in flight; ``failed`` (or ``deferred``
    when the budget ran out) with the error that stopped it."""
    key = manifest_key(dest.prefix, source_id)
    try:
        manifest = read_manifest(store, dest, source_id, deadline=deadline)
        running = [
            image.image_id
            for image in api.describe_images(
                deadline=deadline, tag_filters={RESTORED_FROM_KEY: source_id, RESTORE_KEY: IMPORTING}
            )
            if restore_tracking_of(image).drill is False
        ]
        if running:
            reason = (
                f"a restore of this image is already importing as {running[0]}: a later timer run reports "
                "its end (restore it again once it ended to make another copy)"
            )
            return ImageOutcome(
                image_id=source_id,
                status="skipped",
                restored_image_id=running[0],
                manifest_key=key,
                reason=reason,
            )
        image_name = restore_name(manifest.image.name, source_id, clock.now(), name)
        return start_import(
            api, manifest, dest=dest, tos_origin=tos_origin, name=image_name, drill=False, deadline=deadline
        )
    except ExporterError as error:
        return ImageOutcome(
            image_id=source_id,
            status="deferred" if isinstance(error, BudgetExhausted) else "failed",
            tos_bucket=dest.bucket,
            manifest_key=key,
            error=ErrorInfo.from_error(error),
        )


def start_import(
    api: RestoreApi,
    manifest: Manifest,
    *,
    dest: Destination,
    tos_origin: str,
    name: str,
    drill: bool,
    deadline: float,
) -> ImageOutcome:
    """ImportImage from ``manifest`` → ``restore_started`` (the import's task id where DescribeTasks already
    lists it). Raises what ImportImage raises."""
    source_id = manifest.image.id
    spec = import_spec(
        manifest, name=name, tos_origin=tos_origin, tags=restore_tags(source_id, dest, drill=drill)
    )
    started = api.import_image(spec, deadline=deadline)
    _log.info("restore.started", image_id=source_id, restored_image_id=started.image_id, drill=drill)
    task_id: str | None = None
    try:
        tasks = latest_import_tasks(api.describe_tasks(deadline=deadline, resource_ids=[started.image_id]))
        task = tasks.get(started.image_id)
        task_id = task.task_id if task is not None else None
    except ExporterError as error:  # the import is started: its task is looked up again by the follow-up
        _log.warning("restore.task_lookup_failed", restored_image_id=started.image_id, error=error.code)
    what = "restore drill: importing" if drill else "importing"
    reason = (
        f"{what} {name} from {len(manifest.objects)} object(s) of the export; a later timer run reports "
        f"{'restore_verified' if drill else 'restored'} or restore_failed"
    )
    return ImageOutcome(
        image_id=source_id,
        status="restore_started",
        task_id=task_id,
        tos_bucket=dest.bucket,
        object_key=next((o.key for o in manifest.objects if o.disk == "system"), None),
        manifest_key=manifest_key(dest.prefix, source_id),
        restored_image_id=started.image_id,
        reason=reason,
    )


def start_drill(
    api: RestoreApi,
    store: ObjectStore,
    manifests: Iterable[Manifest],
    *,
    group: Callable[[Manifest], str],
    days: int,
    tos_origin: str,
    deadline: float,
    clock: Clock = SYSTEM_CLOCK,
    private_images: int | None = None,
) -> ImageOutcome | None:
    """Start a restore drill when one is due (``handler.core.restoring.pick_drill``) and the region has room
    (``private_images``: how many the invocation already counted; None: counted here, stopping at 48):
    ``restore_started`` (its image named ``image-exporter-drill-<source>-<YYYYMMDD>`` and tagged as a drill),
    None when none is due or the region holds 48 private images or more. The caller starts none while a
    drill is in flight. A drill refused for good (a manifest ImportImage cannot use) is recorded in the
    manifest as a failed check, so that the next drill of the group waits ``days`` like a passed one."""
    private = private_images
    if private is None:
        private = 0
        for private, _ in enumerate(api.describe_images(deadline=deadline, visibility="private"), start=1):
            if private >= DRILL_IMAGE_ROOM:
                break
    if private >= DRILL_IMAGE_ROOM:
        _log.warning("restore.drill_no_room", private_images=private, room=DRILL_IMAGE_ROOM)
        return None
    now = clock.now()
    chosen = pick_drill(manifests, group=group, now=now, days=days)
    if chosen is None:
        return None
    source = chosen.image.id
    dest = Destination(chosen.export.bucket, chosen.export.prefix)
    try:
        return start_import(
            api,
            chosen,
            dest=dest,
            tos_origin=tos_origin,
            name=drill_name(source, now),
            drill=True,
            deadline=deadline,
        )
    except ExporterError as error:
        if not error.retryable:
            check = RestoreCheck(at=now, image_id="", task_id=None, result=f"Failed: {error.code}")
            _record(store, dest, source, check, deadline=deadline)
        reason = f"the restore drill of this export could not start ({error.code})"
        return ImageOutcome(
            image_id=source,
            status="deferred" if error.retryable else "restore_failed",
            tos_bucket=dest.bucket,
            manifest_key=manifest_key(dest.prefix, source),
            reason=reason,
            error=ErrorInfo.from_error(error),
        )


def drill_if_due(
    api: RestoreApi,
    store: ObjectStore,
    *,
    dest: Destination,
    group_by: str,
    days: int,
    tos_origin: str,
    deadline: float,
    workers: int,
    clock: Clock = SYSTEM_CLOCK,
    private_images: int | None = None,
    cache: ManifestCache | None = None,
) -> ImageOutcome | None:
    """A timer's restore drill (the caller checked that none is in flight): the manifests at ``dest`` written
    within the last ``days`` days read (one ListObjectsV2 page per 1,000 objects, one ranged GET per such
    manifest not in ``cache``: appending a check rewrites a manifest, so an older one holds no check young
    enough to matter, and a group with none of them waits until it exports again), then :func:`start_drill`.
    A catalogue TOS refuses to list is a ``deferred`` result naming the permission."""
    from handler.core.catalogue import group_of, read_catalogue  # noqa: PLC0415 - drills only

    try:
        catalogue = read_catalogue(
            store,
            dest.bucket,
            dest.prefix,
            deadline=deadline,
            workers=workers,
            clock=clock,
            cache=cache,
            modified_since=timedelta(days=days),
        )
    except ExporterError as error:
        return _drill_stopped(dest, error)
    if isinstance(catalogue, ObjectUnreadable):
        return _drill_stopped(dest, catalogue.listing_refused())
    manifests = [entry.manifest for entry in catalogue.exports if entry.manifest is not None]
    try:
        return start_drill(
            api,
            store,
            manifests,
            group=lambda manifest: group_of(manifest, group_by),
            days=days,
            tos_origin=tos_origin,
            deadline=deadline,
            clock=clock,
            private_images=private_images,
        )
    except ExporterError as error:
        return _drill_stopped(dest, error)


def _drill_stopped(dest: Destination, error: ExporterError) -> ImageOutcome:
    reason = (
        f"the restore drill could not look at the exports in tos://{dest.bucket}/{dest.prefix} "
        f"({error.code}); the exports themselves are not affected; a later timer run tries again"
    )
    return ImageOutcome(image_id=None, status="deferred", reason=reason, error=ErrorInfo.from_error(error))


def append_check(
    store: ObjectStore, dest: Destination, source_id: str, check: RestoreCheck, *, deadline: float
) -> bool:
    """Append ``check`` to the manifest's ``restore_checks`` (read, then written whole); False when a check of
    the same restored image is already there (nothing written). Raises what reading or writing raises."""
    manifest = read_manifest(store, dest, source_id, deadline=deadline, verified=False)
    if any(held.image_id == check.image_id for held in manifest.restore_checks):
        return False
    updated = manifest.model_copy(update={"restore_checks": (*manifest.restore_checks, check)})
    key = manifest_key(dest.prefix, source_id)
    store.put_object(dest.bucket, key, updated.to_bytes(), content_type=MANIFEST_TYPE, deadline=deadline)
    return True


@dataclass(frozen=True, slots=True)
class RestoreRun:
    """What the restore follow-up found: the outcomes to report, then (``settle``) the restored images to
    retag. ``drills_in_flight``: drill images still importing; ``checked``: False when the imports in flight
    could not be looked at (then none is known not to be a drill)."""

    outcomes: tuple[ImageOutcome, ...] = ()
    retags: tuple[tuple[str, str], ...] = ()
    drills_in_flight: int = 0
    api: RestoreApi | None = None
    checked: bool = True

    def settle(self, *, deadline: float) -> None:
        """Retag the reported restores (only now: a crash before this reports them again rather than never).
        A failure is logged; the next run finds them again."""
        api = self.api
        if api is None:
            return
        for state in ("restored", "failed"):
            ids = [image_id for image_id, wanted in self.retags if wanted == state]
            if ids:
                try:
                    api.tag_images(ids, {RESTORE_KEY: state}, deadline=deadline)
                except ExporterError as error:
                    _log.warning("restore.retag_failed", images=len(ids), error=error.code)


def follow_restores(
    api: RestoreApi,
    store: ObjectStore,
    *,
    deadline: float,
    clock: Clock = SYSTEM_CLOCK,
    image_ids: tuple[str, ...] = (),
    listed: Sequence[Image] | None = None,
) -> RestoreRun:
    """The end of every import in flight (images tagged ``image-exporter:restore=importing``; ``image_ids``:
    only those of these images): ``restored``, ``restore_verified`` (a drill), ``restore_failed``; nothing
    for one still running. ``listed``: every private image, already listed by this invocation (a whole
    scan's listing), where the imports are found with no request of their own. When the listing or the task
    look-up fails, one ``deferred`` result says the restores in flight were not checked."""
    try:
        if listed is not None and not image_ids:
            importing = [i for i in listed if restore_tracking_of(i).state == IMPORTING]
        else:
            found = api.describe_images(
                deadline=deadline, image_ids=image_ids, tag_filters={RESTORE_KEY: IMPORTING}
            )
            importing = list(found)
        ids = [image.image_id for image in importing]
        tasks = latest_import_tasks(api.describe_tasks(deadline=deadline, resource_ids=ids)) if ids else {}
    except ExporterError as error:
        _log.warning("restore.follow_up_failed", error=error.code, message=error.message)
        reason = (
            f"the restores in flight could not be checked ({error.code}); the imports themselves may well be "
            "fine; a later timer run checks again"
        )
        failed = ImageOutcome(
            image_id=None, status="deferred", reason=reason, error=ErrorInfo.from_error(error)
        )
        return RestoreRun(outcomes=(failed,), api=api, checked=False)
    now = clock.now()
    judged = [
        _judge(api, store, image, tasks.get(image.image_id), now=now, deadline=deadline)
        for image in importing
    ]
    outcomes = tuple(j.outcome for j in judged if j.outcome is not None)
    retags = tuple((j.image_id, j.retag) for j in judged if j.retag is not None)
    drills = sum(1 for j in judged if j.drill_running)
    return RestoreRun(outcomes, retags, drills, api)


@dataclass(frozen=True, slots=True)
class _Judged:
    image_id: str
    outcome: ImageOutcome | None = None
    retag: str | None = None
    drill_running: bool = False


def _judge(
    api: RestoreApi, store: ObjectStore, image: Image, task: Task | None, *, now: datetime, deadline: float
) -> _Judged:
    """One import's end: the check appended to the manifest, then the outcome and the retag (a restore), or
    the image deleted and the outcome (a drill: reported when its check is first recorded)."""
    tracking = restore_tracking_of(image)
    end = decide_import(image, task, now=now, drill=tracking.drill)
    if end is None:
        return _Judged(image.image_id, drill_running=tracking.drill)
    source = tracking.source or image.image_id
    base = ImageOutcome(
        image_id=source,
        status="restored",
        task_id=task.task_id if task is not None else None,
        tos_bucket=tracking.dest.bucket if tracking.dest is not None else None,
        manifest_key=manifest_key(tracking.dest.prefix, source) if tracking.dest is not None else None,
        restored_image_id=image.image_id,
    )
    result = "Succeeded" if end == "restored" else "Failed"
    check = RestoreCheck(at=now, image_id=image.image_id, task_id=base.task_id, result=result)
    recorded, stopped = _record(store, tracking.dest, source, check, deadline=deadline)
    if not tracking.drill:
        if end == "restored":
            note = (
                None if stopped is None else f"the check could not be added to its manifest ({stopped.code})"
            )
            return _Judged(image.image_id, dataclasses.replace(base, reason=note), retag="restored")
        return _Judged(image.image_id, _failed(base, end, image, task, source), retag="failed")
    if end == "restored" and stopped is not None:
        # The drill's proof is the check in the manifest: its image is kept until the check is written.
        reason = (
            "the restore drill's import Succeeded but its check could not be added to the manifest "
            f"({stopped.code}); grant the function's role tos:PutObject on the bucket; a later run tries again"
        )
        deferred = dataclasses.replace(
            base, status="deferred", reason=reason, error=ErrorInfo.from_error(stopped)
        )
        return _Judged(image.image_id, deferred)
    gone = _delete_drill_image(api, image.image_id, deadline=deadline)
    if not recorded and stopped is None:
        return _Judged(image.image_id)  # reported when its check was recorded; only the delete was left
    if end == "restored":
        outcome = dataclasses.replace(base, status="restore_verified", reason=f"restore drill passed; {gone}")
    else:
        outcome = _failed(base, end, image, task, source)
        outcome = dataclasses.replace(outcome, reason=f"restore drill failed; {gone}")
    return _Judged(image.image_id, outcome)


def _failed(base: ImageOutcome, end: str, image: Image, task: Task | None, source: str) -> ImageOutcome:
    error: ExporterError
    if end == "timed_out":
        error = DrillTimedOut(
            f"the restore drill's image {image.image_id} was not restored 24 hours after it was made "
            f"(status {image.status or 'unknown'})"
        )
    else:
        what = (
            f"task {task.task_id} Failed"
            if task is not None and task.status == "Failed"
            else f"image's status is {image.status}"
        )
        error = ImportTaskFailed(
            f"the import of {source}'s export into {image.image_id} ended badly: its {what}"
        )
    return dataclasses.replace(base, status="restore_failed", error=ErrorInfo.from_error(error))


def _delete_drill_image(api: RestoreApi, image_id: str, *, deadline: float) -> str:
    """Delete a judged drill's image (with its snapshots); what became of it, for the reason."""
    try:
        code = api.delete_images([image_id], deadline=deadline).get(image_id)
    except ExporterError as error:
        code = error.code
    if code is None:
        _log.info("restore.drill_image_deleted", restored_image_id=image_id)
        return f"its image {image_id} was deleted"
    _log.warning("restore.drill_delete_failed", restored_image_id=image_id, error=code)
    return f"its image {image_id} could not be deleted yet ({code}): a later run tries again"


def _record(
    store: ObjectStore, dest: Destination | None, source: str, check: RestoreCheck, *, deadline: float
) -> tuple[bool, ExporterError | None]:
    """Append the check to the source's manifest: (whether it was added now, the error that stopped it)."""
    if dest is None:
        return False, ManifestUnusable(
            "the restored image's image-exporter:dest tag is missing or unreadable"
        )
    try:
        return append_check(store, dest, source, check, deadline=deadline), None
    except ExporterError as error:
        _log.warning("restore.check_not_recorded", image_id=source, error=error.code)
        return False, error
