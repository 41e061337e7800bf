"""Pure decisions for restores and restore drills (docs/contract.md, "Restoring").

A restore imports an export back into ECS from its manifest (``ImportImage``); the new image carries its
state as tags, as an export's source image does, so that later timer runs follow the import to its end with
no database:

- ``image-exporter:restored-from``: the source image whose export it was imported from;
- ``image-exporter:restore``: ``importing`` until a follow-up reports the end, then ``restored`` or ``failed``;
- ``image-exporter:dest``: ``tos://<bucket>/<prefix>``, where the export and its manifest are;
- ``image-exporter:drill``: the source image, on a drill's image only (deleted once the drill is judged).

This module builds the ImportImage request from a manifest, names the new image, reads those tags back and
turns (the new image, its import task) into the end to report. No I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import quote, urlsplit

from handler.core.tracking import DEST_KEY, DRILL_KEY, RESTORE_KEY, RESTORED_FROM_KEY, Destination
from handler.errors import ManifestUnusable
from handler.models.api import FAILED, IMPORT_TASK_TYPE, SUCCEEDED, Image, ImportSpec, Task
from handler.models.manifest import Manifest

__all__ = [
    "DRILL_IMAGE_ROOM",
    "DRILL_KEY",
    "DRILL_MAX_AGE",
    "IMPORTING",
    "RESTORED_FROM_KEY",
    "RESTORE_KEY",
    "ImportEnd",
    "RestoreTracking",
    "decide_import",
    "drill_name",
    "import_spec",
    "latest_import_tasks",
    "object_url",
    "pick_drill",
    "restore_name",
    "restore_tags",
    "restore_tracking_of",
]

IMPORTING = "importing"
RestoreState = Literal["importing", "restored", "failed"]
_STATES: dict[str, RestoreState] = {"importing": "importing", "restored": "restored", "failed": "failed"}
# A drill image still not restored this long after it was made is deleted and the drill reported failed.
DRILL_MAX_AGE = timedelta(hours=24)
_NAME_LIMIT = 128


def restore_name(source_name: str, source_id: str, today: datetime, given: str | None = None) -> str:
    """The restored image's name: ``given``, else ``<source name>-restored-<YYYYMMDD>`` (the source's id when
    the manifest has no name), cut to the 128 characters an image name may have."""
    if given:
        return given
    suffix = f"-restored-{today.astimezone(UTC):%Y%m%d}"
    return (source_name or source_id)[: _NAME_LIMIT - len(suffix)] + suffix


def drill_name(source_id: str, today: datetime) -> str:
    """A drill image's name: ``image-exporter-drill-<source>-<YYYYMMDD>``."""
    return f"image-exporter-drill-{source_id}-{today.astimezone(UTC):%Y%m%d}"[:_NAME_LIMIT]


def object_url(bucket: str, tos_origin: str, key: str) -> str:
    """The URL ImportImage reads a file from: ``https://<bucket>.<TOS host>/<key>`` (docs/facts.md §14)."""
    host = urlsplit(tos_origin).netloc or tos_origin
    return f"https://{bucket}.{host}/{quote(key, safe='/')}"


def restore_tags(source_id: str, dest: Destination, *, drill: bool = False) -> tuple[tuple[str, str], ...]:
    """The tags a restored image is created with: where it came from, that it is importing, and (a drill's)
    that it is a drill image."""
    tags = [(RESTORED_FROM_KEY, source_id), (RESTORE_KEY, IMPORTING), (DEST_KEY, dest.tag_value)]
    if drill:
        tags.append((DRILL_KEY, source_id))
    return tuple(tags)


def import_spec(
    manifest: Manifest, *, name: str, tos_origin: str, tags: Iterable[tuple[str, str]]
) -> ImportSpec:
    """The ImportImage request that restores ``manifest``'s export: the system file, the data files in the
    manifest's order, and the metadata DescribeImages gave at the export. ``ManifestUnusable`` when the
    manifest lacks what ImportImage requires (a system object, the platform)."""
    bucket = manifest.export.bucket
    system = [o for o in manifest.objects if o.disk == "system"]
    where = f"tos://{bucket}/{manifest.export.prefix}_{manifest.image.id}.manifest.json"
    if not system:
        msg = f"{where} lists no system object: there is nothing ImportImage could boot"
        raise ManifestUnusable(msg)
    image = manifest.image
    if not image.platform:
        msg = (
            f"{where} has no image.platform, which ImportImage requires (DescribeImages gave none at the "
            "export): import the objects by hand naming the platform"
        )
        raise ManifestUnusable(msg)
    return ImportSpec(
        image_name=name,
        url=object_url(bucket, tos_origin, system[0].key),
        platform=image.platform,
        data_urls=tuple(object_url(bucket, tos_origin, o.key) for o in manifest.objects if o.disk == "data"),
        platform_version=image.platform_version,
        os_type=image.os_type,
        architecture=image.architecture,
        boot_mode=image.boot_mode,
        description=image.description[:255],
        tags=tuple(tags),
    )


@dataclass(frozen=True, slots=True)
class RestoreTracking:
    """What a restored image's tags say: the source it came from, its state, where the export is, and
    whether it is a drill's image. ``source`` None: not an image a restore made."""

    source: str | None
    state: RestoreState | None
    dest: Destination | None
    drill: bool


def restore_tracking_of(image: Image) -> RestoreTracking:
    tags = {key.strip().lower(): value.strip() for key, value in image.tags}
    dest = tags.get(DEST_KEY)
    return RestoreTracking(
        source=tags.get(RESTORED_FROM_KEY) or tags.get(DRILL_KEY) or None,
        state=_STATES.get(tags.get(RESTORE_KEY, "").lower()),
        dest=Destination.parse(dest) if dest else None,
        drill=DRILL_KEY in tags,
    )


def latest_import_tasks(tasks: Iterable[Task]) -> dict[str, Task]:
    """Each new image's latest ImportImage task (by CreatedAt; a task without one counts as oldest)."""
    latest: dict[str, Task] = {}
    for task in tasks:
        if task.type and task.type != IMPORT_TASK_TYPE:
            continue
        held = latest.get(task.resource_id)
        if held is None or _created(task) >= _created(held):
            latest[task.resource_id] = task
    return latest


ImportEnd = Literal["restored", "failed", "timed_out"]


def decide_import(image: Image, task: Task | None, *, now: datetime, drill: bool) -> ImportEnd | None:
    """How an import ended, from its image and its latest import task; None while it still runs.

    ``restored``: the task Succeeded (or is no longer listed) and the image is ``available``; ``failed``: the
    task Failed or the image's status is ``error``; ``timed_out``: a drill's image still not restored
    ``DRILL_MAX_AGE`` after it was made (by the API's ``CreatedAt``)."""
    if (task is not None and task.status == FAILED) or image.status == "error":
        return "failed"
    if image.status == "available" and (task is None or task.status == SUCCEEDED):
        return "restored"
    created = image.created_at
    if drill and created is not None:
        aware = created if created.tzinfo else created.replace(tzinfo=UTC)
        if now - aware > DRILL_MAX_AGE:
            return "timed_out"
    return None


def _created(task: Task) -> datetime:
    moment = task.created_at
    if moment is None:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# No drill starts when the region holds this many private images or more: ECS allows 50 custom images a
# region (docs/facts.md §14), and a drill must never take the last places a real image needs.
DRILL_IMAGE_ROOM = 48


def pick_drill(
    manifests: Iterable[Manifest], *, group: Callable[[Manifest], str], now: datetime, days: int
) -> Manifest | None:
    """The export a restore drill imports next, or None. A group (``group``) is due when no restore check of
    any of its exports, passed or failed, is younger than ``days``: so each group is drilled at most every
    ``days`` days, whatever its exports' pace. Of the due groups, the one checked longest ago goes first
    (never checked first, then the one whose newest export is oldest); its newest verified export is
    imported."""
    newest: dict[str, Manifest] = {}
    checked: dict[str, datetime] = {}
    for manifest in manifests:
        key = group(manifest)
        checked[key] = max(checked.get(key, _EPOCH), _last_check(manifest))
        if not manifest.verification.verified:
            continue
        held = newest.get(key)
        if held is None or _finished(manifest) > _finished(held):
            newest[key] = manifest
    since = now - timedelta(days=days)
    due = [(checked[key], _finished(m), m.image.id, m) for key, m in newest.items() if checked[key] < since]
    if not due:
        return None
    return min(due, key=lambda row: row[:3])[3]


_EPOCH = datetime.min.replace(tzinfo=UTC)


def _aware(moment: datetime | None) -> datetime:
    if moment is None:
        return _EPOCH
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _finished(manifest: Manifest) -> datetime:
    return _aware(manifest.export.finished_at or manifest.verification.checked_at)


def _last_check(manifest: Manifest) -> datetime:
    return max((_aware(check.at) for check in manifest.restore_checks), default=_EPOCH)
