"""Retention on the function's bucket (docs/contract.md, "Retention"): the flow, against protocols; every verdict
is ``handler.core.retention_rules``'. A timer runs it after the follow-up (``RETENTION_MODE`` plan or apply);
``exporter-tools retention`` runs the same function.

1. The catalogue: every manifest under the prefix (one ListObjectsV2 page per 1,000 objects there, one ranged
   GET per manifest this invocation has not read yet), and TOS's ``Date`` on the listing: the server's now.
2. The plan on the catalogue alone. When nothing would go, that is all: no ECS request.
3. What holds the exports that would go: the images tagged ``exporting`` (a tag search) and the imports in
   flight (a tag search), then those exports' source images by id (100 a request, with the images whose
   export started in this invocation, for their groups): their ``image-exporter:keep`` tag. The plan again,
   with them.
4. ``plan``: each export that goes is a ``would_expire`` result. ``apply``: oldest first, each export is
   deleted whole, every file its manifest lists and then the manifest (so a run cut off half way leaves the
   manifest, and the next run finishes the export) → ``expired``; past ``max_deletes`` the rest are
   ``would_expire``, waiting for the next run.

Nothing is deleted, and every result says why, when: manifests were left unread (a catalogue cut short),
TOS's ``Date`` and the local clock differ by more than 5 minutes, or what holds exports could not be looked
up. Once a delete fails or the time budget runs out, nothing more is deleted in this run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import structlog

from handler.clock import SYSTEM_CLOCK, Clock
from handler.core.apis import EcsApi, ObjectStore
from handler.core.catalogue import CatalogueEntry, ManifestCache, group_for, read_catalogue
from handler.core.restoring import IMPORTING, RESTORE_KEY, restore_tracking_of
from handler.core.retention_rules import (
    Export,
    Holds,
    Policy,
    RetentionPlan,
    Verdict,
    carries_keep_tag,
    clock_refusal,
    exports_of,
    plan_retention,
)
from handler.core.tracker import list_exporting
from handler.core.tracking import Destination, tracking_of
from handler.errors import BudgetExhausted, ExporterError
from handler.models.api import Image
from handler.models.objects import ObjectUnreadable
from handler.models.results import ErrorInfo, ImageOutcome

__all__ = ["DELETE_SECONDS", "RetentionMode", "RetentionRun", "look_up_holds", "run_retention"]

_log = structlog.get_logger("handler.retention")

RetentionMode = Literal["plan", "apply"]
# An export's deletion is begun only with at least this long left before the deadline: its files and its
# manifest are a few requests.
DELETE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class RetentionRun:
    """What retention did: its outcomes (``expired``, ``would_expire``, and ``failed`` or ``deferred`` for what
    stopped it), the plan it carried out (None: the catalogue could not be read), why nothing was deleted
    (``refused``), how many exports were deleted and their bytes, and how many wait past the cap. ``problems``
    and ``unread``: the manifests that could not be read, and those the deadline left unread."""

    outcomes: tuple[ImageOutcome, ...] = ()
    plan: RetentionPlan | None = None
    refused: str | None = None
    deleted: int = 0
    freed_bytes: int = 0
    waiting: int = 0
    problems: tuple[CatalogueEntry, ...] = ()
    unread: int = 0

    def settle(self, *, deadline: float) -> None:
        """Nothing is left to do once the outcomes are reported: each delete happened before its report."""


def run_retention(
    api: EcsApi,
    store: ObjectStore,
    *,
    dest: Destination,
    group_by: str,
    policy: Policy,
    mode: RetentionMode,
    max_deletes: int,
    deadline: float,
    workers: int,
    clock: Clock = SYSTEM_CLOCK,
    cache: ManifestCache | None = None,
    started: Iterable[str] = (),
    importing: Iterable[str] = (),
) -> RetentionRun:
    """Plan retention on ``dest`` and, with ``mode`` apply, carry it out (the module's steps), no request sent
    at or past ``deadline``. ``started``: images whose export started in this invocation (in flight, though
    their tags may not read back yet); ``importing``: source images whose import started in it."""
    try:
        catalogue = read_catalogue(
            store, dest.bucket, dest.prefix, deadline=deadline, workers=workers, clock=clock, cache=cache
        )
    except BudgetExhausted:
        _log.warning("retention.no_time", bucket=dest.bucket, prefix=dest.prefix)
        return RetentionRun()
    except ExporterError as error:
        return _stopped(dest, error)
    if isinstance(catalogue, ObjectUnreadable):
        return _stopped(dest, catalogue.listing_refused())
    exports = exports_of(catalogue, group_by)
    refused = _cut_short(catalogue.unread) or clock_refusal(catalogue.server_time, catalogue.local_time)
    plan, unheld = _planned(
        api,
        exports,
        now=catalogue.server_time or clock.now(),
        dest=dest,
        group_by=group_by,
        policy=policy,
        started=started,
        importing=importing,
        deadline=deadline,
    )
    refused = refused or unheld
    if mode == "plan" or refused is not None:
        run = _reported(plan, dest, mode, refused)
    else:
        run = _applied(plan, store, dest, max_deletes=max_deletes, deadline=deadline, clock=clock)
    run = dataclasses.replace(run, problems=catalogue.problems, unread=catalogue.unread)
    _log_done(run, plan, mode)
    return run


def _log_done(run: RetentionRun, plan: RetentionPlan, mode: RetentionMode) -> None:
    _log.info(
        "retention.done",
        mode=mode,
        exports=len(plan.verdicts),
        kept=sum(v.kind == "keep" for v in plan.verdicts),
        untouched=sum(v.kind == "untouched" for v in plan.verdicts),
        expiring=len(plan.expiring),
        deleted=run.deleted,
        freed_bytes=run.freed_bytes,
        waiting=run.waiting,
        refused=run.refused,
    )


def _planned(
    api: EcsApi,
    exports: tuple[Export, ...],
    *,
    now: datetime,
    dest: Destination,
    group_by: str,
    policy: Policy,
    started: Iterable[str],
    importing: Iterable[str],
    deadline: float,
) -> tuple[RetentionPlan, str | None]:
    """The plan on the catalogue alone, and when anything would go, again with what holds exports; and why
    nothing may be deleted when what holds them could not be seen."""
    plan = plan_retention(exports, policy=policy, now=now)
    if not plan.expiring:
        return plan, None
    try:
        holds, unplaced = look_up_holds(
            api,
            dest=dest,
            group_by=group_by,
            sources=[v.export.image_id for v in plan.expiring],
            started=started,
            importing=importing,
            deadline=deadline,
        )
    except ExporterError as error:
        refused = (
            f"what holds exports (exports and imports in flight, keep tags) could not be looked up "
            f"({error.code}): a later run tries again"
        )
        return plan, refused
    return plan_retention(exports, policy=policy, now=now, holds=holds), unplaced


def look_up_holds(
    api: EcsApi,
    *,
    dest: Destination,
    group_by: str,
    sources: Iterable[str],
    started: Iterable[str] = (),
    importing: Iterable[str] = (),
    deadline: float,
) -> tuple[Holds, str | None]:
    """The exports in flight to ``dest`` (images tagged ``exporting`` there, or with no readable destination,
    and ``started``) by group, the imports in flight from it (and ``importing``), and which of ``sources``
    carry ``image-exporter:keep`` (a source image that no longer exists pins nothing). Also why nothing may be
    deleted: an image of ``started`` that DescribeImages does not list, whose group is then unknown. Raises
    what the API raises."""
    sources = tuple(sources)
    exporting = {
        image.image_id: image
        for image in list_exporting(api, deadline=deadline)
        if tracking_of(image).dest in (None, dest)
    }
    restoring = set(importing)
    for image in api.describe_images(deadline=deadline, tag_filters={RESTORE_KEY: IMPORTING}):
        tracked = restore_tracking_of(image)
        if tracked.source is not None and tracked.dest in (None, dest):
            restoring.add(tracked.source)
    fresh = [image_id for image_id in dict.fromkeys(started) if image_id not in exporting]
    wanted = sorted({*sources, *fresh})
    found = (
        {image.image_id: image for image in api.describe_images(deadline=deadline, image_ids=wanted)}
        if wanted
        else {}
    )
    exporting |= {image_id: found[image_id] for image_id in fresh if image_id in found}
    missing = [image_id for image_id in fresh if image_id not in found]
    unplaced = (
        f"the group of {missing[0]}, whose export started in this run, is not known (DescribeImages does not "
        "list it): nothing is deleted in this run"
        if missing
        else None
    )
    holds = Holds(
        in_flight=_in_flight_groups(exporting.values(), group_by),
        exporting=frozenset(exporting),
        importing=frozenset(restoring),
        pinned=frozenset(image_id for image_id in sources if carries_keep_tag(_tags(found.get(image_id)))),
    )
    return holds, unplaced


def _in_flight_groups(images: Iterable[Image], group_by: str) -> Mapping[str, str]:
    groups: dict[str, str] = {}
    for image in sorted(images, key=lambda i: i.image_id):
        groups.setdefault(group_for(image.image_id, image.name, dict(image.tags), group_by), image.image_id)
    return groups


def _tags(image: Image | None) -> tuple[tuple[str, str], ...]:
    return image.tags if image is not None else ()


def _cut_short(unread: int) -> str | None:
    if not unread:
        return None
    return (
        f"the time budget ran out before every manifest was read ({unread} left unread), so the plan is "
        "incomplete: nothing is deleted in this run"
    )


def _reported(
    plan: RetentionPlan, dest: Destination, mode: RetentionMode, refused: str | None
) -> RetentionRun:
    """The exports that go, reported and not deleted: the plan, or an apply that may delete nothing."""
    if mode == "apply":
        note = f"; not deleted: {refused}"
    else:
        note = f"; nothing would be deleted now: {refused}" if refused else ""
    return RetentionRun(tuple(_would_expire(dest, v, note) for v in plan.expiring), plan, refused)


def _applied(
    plan: RetentionPlan,
    store: ObjectStore,
    dest: Destination,
    *,
    max_deletes: int,
    deadline: float,
    clock: Clock,
) -> RetentionRun:
    """The exports that go, oldest first, deleted while the cap and the budget allow and no delete failed; the
    rest reported, waiting for the next run."""
    outcomes: list[ImageOutcome] = []
    deleted = freed = waiting = 0
    stop: str | None = None
    for verdict in plan.expiring:
        if stop is None and deleted >= max_deletes:
            waiting += 1
            note = f"; waits for the next run: RETENTION_MAX_DELETES={max_deletes} were deleted in this one"
            outcomes.append(_would_expire(dest, verdict, note))
            continue
        if stop is None and deadline - clock.monotonic() < DELETE_SECONDS:
            stop = "the time budget ran out first; a later run deletes it"
        if stop is not None:
            outcomes.append(_would_expire(dest, verdict, f"; not deleted: {stop}"))
            continue
        outcome, stop = _delete(store, dest, verdict, deadline=deadline)
        outcomes.append(outcome)
        if outcome.status == "expired":
            deleted += 1
            freed += verdict.export.size_bytes
    return RetentionRun(tuple(outcomes), plan, None, deleted, freed, waiting)


def _delete(
    store: ObjectStore, dest: Destination, verdict: Verdict, *, deadline: float
) -> tuple[ImageOutcome, str | None]:
    """Delete one export whole: every file its manifest lists, then the manifest. The outcome, and why
    nothing more is deleted in this run (None: go on)."""
    export = verdict.export
    done = 0
    try:
        for key in export.objects:
            store.delete_object(dest.bucket, key, deadline=deadline)
            done += 1
        store.delete_object(dest.bucket, export.key, deadline=deadline)
    except BudgetExhausted:
        note = f"; not deleted: the time budget ran out after {_files(done, export)}{_MANIFEST_STAYS}"
        return _would_expire(dest, verdict, note), "the time budget ran out first; a later run deletes it"
    except ExporterError as error:
        _log.warning("retention.delete_failed", image_id=export.image_id, key=export.key, error=error.code)
        note = f"; deleting it failed after {_files(done, export)} ({error.code}){_MANIFEST_STAYS}"
        failed = dataclasses.replace(
            _would_expire(dest, verdict, note),
            status="deferred" if error.retryable else "failed",
            error=ErrorInfo.from_error(error),
        )
        return failed, f"deleting {export.image_id}'s export failed ({error.code})"
    _log.info(
        "retention.deleted",
        image_id=export.image_id,
        manifest_key=export.key,
        files=len(export.objects),
        size_bytes=export.size_bytes,
    )
    what = (
        "; its manifest was removed"
        if export.objects and len(export.gone) == len(export.objects)
        else f"; deleted: {len(export.objects)} file(s), then its manifest"
    )
    return _outcome(dest, verdict, "expired", what), None


_MANIFEST_STAYS = ": its manifest stays, so a later run finishes it"


def _files(done: int, export: Export) -> str:
    return f"{done} of its {len(export.objects)} file(s) were deleted"


def _would_expire(dest: Destination, verdict: Verdict, note: str) -> ImageOutcome:
    return _outcome(dest, verdict, "would_expire", note)


def _outcome(
    dest: Destination, verdict: Verdict, status: Literal["expired", "would_expire"], note: str
) -> ImageOutcome:
    export = verdict.export
    return ImageOutcome(
        image_id=export.image_id,
        status=status,
        tos_bucket=dest.bucket,
        manifest_key=export.key,
        reason=verdict.reason + note,
        size_bytes=export.size_bytes,
    )


def _stopped(dest: Destination, error: ExporterError) -> RetentionRun:
    """The catalogue could not be read: one result that says so (``failed``, or ``deferred`` when a later try
    may work), nothing deleted."""
    reason = (
        f"retention could not read the exports in tos://{dest.bucket}/{dest.prefix} ({error.code}): nothing "
        "was deleted; the exports themselves are not affected"
    )
    status: Literal["deferred", "failed"] = "deferred" if error.retryable else "failed"
    outcome = ImageOutcome(image_id=None, status=status, reason=reason, error=ErrorInfo.from_error(error))
    return RetentionRun((outcome,), refused=reason)
