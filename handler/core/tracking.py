"""Pure decisions for following exports to their end (docs/contract.md, "Following exports to their end").

The state of each export lives on its image as two tags: ``image-exporter:state`` (``exporting``,
``exported`` or ``failed``) and ``image-exporter:dest`` (``tos://<bucket>/<prefix>``). This module reads and
writes those tags, holds the one table of how the state tag changes (:data:`TRANSITIONS`), picks an image's
latest ExportImage task and turns (task, the export's check) into the outcome to report and the tag to set
next. No I/O: the follow-up flow calls the ECS and TOS clients and hands their answers here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, get_args

from handler.core.checks import Corrupt, ExportCheck, Missing, Stopped
from handler.errors import ExportObjectCorrupt, ExportObjectMissing, ExportTaskFailed
from handler.models.api import EXPORT_TASK_TYPE, FAILED, SUCCEEDED, Image, Task
from handler.models.objects import ObjectUnreadable
from handler.models.results import ErrorInfo, ImageOutcome, object_key_for
from handler.models.settings import BUCKET_PATTERN, PREFIX_PATTERN

__all__ = [
    "DEST_KEY",
    "DRILL_KEY",
    "EXPORT_OBJECT_CORRUPT",
    "EXPORT_OBJECT_MISSING",
    "EXPORT_TASK_FAILED",
    "MISSING_CONFIRM_SECONDS",
    "RESTORED_FROM_KEY",
    "RESTORE_KEY",
    "STATE_KEY",
    "TRACKING_KEYS",
    "TRANSITIONS",
    "UNSEEN_KEY",
    "Destination",
    "FollowUp",
    "TrackingEvent",
    "TrackingState",
    "decide_follow_up",
    "duration_s",
    "latest_export_tasks",
    "needs_object",
    "next_state",
    "sighting_of",
    "state_tags",
    "tracking_of",
]

STATE_KEY = "image-exporter:state"
DEST_KEY = "image-exporter:dest"
TRACKING_KEYS = (STATE_KEY, DEST_KEY)
# The tags of an image a restore made (handler.core.restoring): its source, its import's state, a drill's mark.
RESTORED_FROM_KEY = "image-exporter:restored-from"
RESTORE_KEY = "image-exporter:restore"
DRILL_KEY = "image-exporter:drill"
# When a follow-up first found no object where a Succeeded (or vanished) export task should have written it:
# the time in milliseconds since the epoch. A missing object is final only when a run at least
# MISSING_CONFIRM_SECONDS later still finds none: one 404 may be a transient answer.
UNSEEN_KEY = "image-exporter:unseen"
MISSING_CONFIRM_SECONDS = 300

TrackingState = Literal["exporting", "exported", "failed"]
_STATES: dict[str, TrackingState] = {state: state for state in get_args(TrackingState)}

# What happens to a tracked image: its export started (from any state, an untracked image's included), or
# the follow-up found how it ended. A task still in flight is no event: the tags stay as they are.
TrackingEvent = Literal[
    "started", "task_failed", "object_found", "object_corrupt", "object_unreadable", "object_missing"
]

# The state tag's every change, and the only ones: (the state now, what happened) → the state to tag. None
# is an image without our state tag. A scan never starts an image with a state (``Tracking.blocks_scan``):
# only an event naming it, or the tasks no longer saying it is exported, leads to ``started`` again.
TRANSITIONS: Mapping[tuple[TrackingState | None, TrackingEvent], TrackingState] = MappingProxyType(
    {
        (None, "started"): "exporting",
        ("exporting", "started"): "exporting",
        ("exported", "started"): "exporting",
        ("failed", "started"): "exporting",
        ("exporting", "task_failed"): "failed",
        ("exporting", "object_missing"): "failed",
        ("exporting", "object_found"): "exported",
        ("exporting", "object_corrupt"): "failed",
        # A 403 (object_unreadable) and a first 404 change nothing: the export stays in flight, deferred.
    }
)

EXPORT_TASK_FAILED = ExportTaskFailed.code
EXPORT_OBJECT_MISSING = ExportObjectMissing.code
EXPORT_OBJECT_CORRUPT = ExportObjectCorrupt.code

_EARLIEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Destination:
    """Where an image was exported: the object is ``<prefix>_<ImageId>_system.qcow2`` in ``bucket``."""

    bucket: str
    prefix: str

    @property
    def tag_value(self) -> str:
        """The ``image-exporter:dest`` value: ``tos://<bucket>/<prefix>``."""
        return f"tos://{self.bucket}/{self.prefix}"

    def object_key(self, image_id: str) -> str:
        return object_key_for(self.prefix, image_id)

    @classmethod
    def parse(cls, value: str) -> Destination | None:
        """The destination a tag value names, or None when it is not ``tos://<bucket>/<prefix>`` with a valid
        bucket name and prefix (a tag edited by hand is ignored, not trusted)."""
        return _destination(value)


@functools.lru_cache(maxsize=64)
def _destination(value: str) -> Destination | None:
    """One record a destination (cached): a follow-up holds one for each of tens of thousands of images, and
    they nearly all name the same place."""
    bucket, slash, prefix = value.removeprefix("tos://").partition("/")
    if not value.startswith("tos://") or not slash:
        return None
    if not BUCKET_PATTERN.match(bucket) or not PREFIX_PATTERN.match(prefix):
        return None
    return Destination(bucket, prefix)


@dataclass(frozen=True, slots=True)
class Tracking:
    """What an image's tags say about our export of it. ``state`` is None when the image is not tracked
    (no state tag, or a value that is none of ours: then ``odd`` holds it); ``dest`` None when the
    destination tag is absent or does not parse."""

    state: TrackingState | None
    dest: Destination | None
    odd: str | None = None

    @property
    def blocks_scan(self) -> bool:
        """True when a scan must not start this image: it is exporting, exported or failed, or its state tag
        holds a value that is none of ours (edited by hand: never exported blindly)."""
        return self.state is not None or self.odd is not None


def tracking_of(image: Image) -> Tracking:
    """Read the tracking tags of one image (as DescribeImages reports its ``Tags``). One rule for tags edited
    by hand: keys and values are compared without case and surrounding spaces (``EXPORTED``, ``exported ``
    and a key in capitals all read as ours; our own spelling wins when both are there); any other state
    value is ``odd``."""
    tags = dict(image.tags)
    state = _tag(tags, STATE_KEY)
    dest = _tag(tags, DEST_KEY)
    folded = state.strip().lower() if state is not None else None
    known = _STATES.get(folded) if folded is not None else None
    return Tracking(
        state=known,
        dest=Destination.parse(dest.strip()) if dest is not None else None,
        odd=state if state is not None and known is None else None,
    )


def _tag(tags: Mapping[str, str], key: str) -> str | None:
    """The value of ``key``, or of a key that differs from it only in case and surrounding spaces."""
    if key in tags:
        return tags[key]
    return next((v for k, v in tags.items() if k.strip().lower() == key), None)


def next_state(state: TrackingState | None, event: TrackingEvent) -> TrackingState | None:
    """The state an image in ``state`` is tagged with after ``event``; None: the table has no such change,
    the tags stay as they are."""
    return TRANSITIONS.get((state, event))


def state_tags(state: TrackingState, dest: Destination | None = None) -> dict[str, str]:
    """The tags to set: the state, and the destination when given (set with ``exporting``)."""
    tags: dict[str, str] = {STATE_KEY: state}
    if dest is not None:
        tags[DEST_KEY] = dest.tag_value
    return tags


def latest_export_tasks(tasks: Iterable[Task]) -> dict[str, Task]:
    """Each image's most recently created ExportImage task, by image id, in one pass (other types are
    ignored); among an image's tasks created at the same moment, or without a time, the one listed last."""
    best: dict[str, tuple[datetime, int]] = {}
    chosen: dict[str, Task] = {}
    for index, task in enumerate(tasks):
        if task.type != EXPORT_TASK_TYPE or not task.resource_id:
            continue
        rank = (_aware(task.created_at), index)
        held = best.get(task.resource_id)
        if held is None or rank >= held:
            best[task.resource_id], chosen[task.resource_id] = rank, task
    return chosen


def duration_s(task: Task) -> float | None:
    """Seconds from the task's CreatedAt to its EndAt; None while it has no end, or when the times are odd."""
    if task.created_at is None or task.end_at is None:
        return None
    seconds = (_aware(task.end_at) - _aware(task.created_at)).total_seconds()
    return seconds if seconds >= 0 else None


def needs_object(task: Task | None) -> bool:
    """True when the decision needs a HeadObject: the task Succeeded, or it is no longer listed."""
    return task is None or task.status == SUCCEEDED


@dataclass(frozen=True, slots=True)
class FollowUp:
    """What to do about one tracked export: report ``outcome`` (None while it is in flight; ``deferred``
    while it is in flight but could not be checked), then set the state tag to ``next_state`` (None: leave
    the tags as they are). ``sighted``: record on the image that its object was not found (the first 404)."""

    outcome: ImageOutcome | None
    next_state: TrackingState | None
    sighted: bool = False


IN_FLIGHT = FollowUp(outcome=None, next_state=None)


def sighting_of(image: Image, task: Task | None) -> int | None:
    """When an earlier run first found no object for this export (milliseconds since the epoch), from the
    ``image-exporter:unseen`` tag; None when there is none, or it is older than ``task`` (an earlier export's)."""
    value = _tag(dict(image.tags), UNSEEN_KEY)
    try:
        seen = int(value.strip()) if value is not None else None
    except ValueError:
        return None
    if seen is None or seen <= 0:
        return None
    if task is not None and task.created_at is not None and seen < _aware(task.created_at).timestamp() * 1000:
        return None
    return seen


def decide_follow_up(
    image_id: str,
    dest: Destination,
    task: Task | None,
    check: ExportCheck | None,
    *,
    now: datetime | None = None,
    sighted: int | None = None,
    confirm: float = MISSING_CONFIRM_SECONDS,
) -> FollowUp:
    """The follow-up outcome of one image tagged ``exporting``.

    - Succeeded + objects checked and manifest written → ``exported`` (its objects, the verification, the
      manifest's key, duration); tag ``exported``.
    - Succeeded + an object that failed a check (too small, not qcow2, truncated, the wrong virtual size)
      → ``export_failed`` ``ExportObjectCorrupt`` naming the object and the check; tag ``failed``.
    - Succeeded + no system object → ``deferred`` the first time (``sighted``: the caller records when);
      once a run at least ``confirm`` seconds after that first sighting (``sighted``, ms) still finds none:
      ``export_failed`` ``ExportObjectMissing``; tag ``failed``.
    - Succeeded + TOS answered 403 → ``deferred``: the export could not be checked, and stays in flight
      until TOS lets the function read it; never ``exported`` unchecked, never a failure.
    - Failed → ``export_failed`` ``ExportTaskFailed`` with the task's times; tag ``failed``.
    - Pending, Running or any other status → in flight: nothing reported, tags unchanged.
    - No task listed any more → the objects alone decide, as for Succeeded.

    ``check`` is ``handler.core.verification.check_export``'s answer, required when ``needs_object(task)``;
    a check a failure stopped (``Stopped``) is the follow-up flow's to defer. The tag to set next is the
    :data:`TRANSITIONS` entry for ``exporting`` and what was found.
    """
    if task is not None and task.status == FAILED:
        return _failed(
            image_id, dest, task, EXPORT_TASK_FAILED, _task_failed_message(task), event="task_failed"
        )
    if not needs_object(task):
        return IN_FLIGHT
    if check is None or isinstance(check, Stopped):
        msg = "decide_follow_up needs the export's check when the task Succeeded or is no longer listed"
        raise ValueError(msg)
    where = f"tos://{dest.bucket}/{dest.object_key(image_id)}"
    said = (
        f"export task {task.task_id} Succeeded" if task is not None else "the export task is no longer listed"
    )
    if isinstance(check, Missing):
        message = f"{said} but no object is at {where}"
        return _missing(image_id, dest, task, message, now=now, sighted=sighted, confirm=confirm)
    if isinstance(check, ObjectUnreadable):
        return FollowUp(outcome=_unreadable(image_id, dest, task, check, said), next_state=None)
    if isinstance(check, Corrupt):
        message = f"{said} but {check.message}"
        return _failed(image_id, dest, task, EXPORT_OBJECT_CORRUPT, message, event="object_corrupt")
    system = check.system
    notes = list(check.notes)
    if task is None:
        notes.insert(0, "the export task is no longer listed; its objects were found")
    exported = ImageOutcome(
        image_id=image_id,
        status="exported",
        task_id=task.task_id if task is not None else None,
        tos_bucket=dest.bucket,
        object_key=system.key,
        duration_s=duration_s(task) if task is not None else None,
        size_bytes=system.size_bytes,
        crc64=system.crc64,
        verified=check.verified,
        verification=check.level,
        objects=check.objects,
        manifest_key=check.manifest_key,
        reason="; ".join(notes) or None,
    )
    return FollowUp(outcome=exported, next_state=next_state("exporting", "object_found"))


def _missing(
    image_id: str,
    dest: Destination,
    task: Task | None,
    message: str,
    *,
    now: datetime | None,
    sighted: int | None,
    confirm: float,
) -> FollowUp:
    """No object: final once confirmed ``confirm`` seconds after the first sighting, else deferred."""
    moment = _aware(now) if now is not None else datetime.now(UTC)
    waited = (moment.timestamp() * 1000 - sighted) / 1000 if sighted is not None else None
    if waited is not None and waited >= confirm:
        confirmed = f"{message} (also {int(waited)} s earlier)"
        return _failed(image_id, dest, task, EXPORT_OBJECT_MISSING, confirmed, event="object_missing")
    if waited is None and confirm == 0:
        return _failed(image_id, dest, task, EXPORT_OBJECT_MISSING, message, event="object_missing")
    wait = math.ceil(confirm - (waited or 0))
    reason = (
        "TOS has no object for this export yet; one answer is not taken as final (it may be transient, or the "
        f"task vanished while it ran): a timer run at least {wait} s from now looks again and only then calls "
        "it failed (EXPORT_MISSING_CONFIRM_SECONDS); nothing to fix yet"
    )
    error = ErrorInfo(code=EXPORT_OBJECT_MISSING, message=message, retryable=True)
    outcome = _deferred(image_id, dest, task, reason, error)
    return FollowUp(outcome=outcome, next_state=None, sighted=sighted is None)


def _unreadable(
    image_id: str, dest: Destination, task: Task | None, refused: ObjectUnreadable, said: str
) -> ImageOutcome:
    where = f"tos://{dest.bucket}/{refused.key}"
    reason = (
        f"{refused.reason}; the export itself may well be fine: grant the function's identity "
        "tos:ListBucket and tos:GetObject on the bucket (or check the credentials), and a later timer run "
        "checks again"
    )
    error = ErrorInfo(code="AccessDenied", message=f"{said}; TOS answered 403 for {where}", retryable=True)
    return _deferred(image_id, dest, task, reason, error)


def _deferred(
    image_id: str, dest: Destination, task: Task | None, reason: str, error: ErrorInfo
) -> ImageOutcome:
    """An export in flight that could not be checked this time: its task, object and why."""
    return ImageOutcome(
        image_id=image_id,
        status="deferred",
        task_id=task.task_id if task is not None else None,
        tos_bucket=dest.bucket,
        object_key=dest.object_key(image_id),
        reason=reason,
        error=error,
    )


def _failed(
    image_id: str, dest: Destination, task: Task | None, code: str, message: str, *, event: TrackingEvent
) -> FollowUp:
    outcome = ImageOutcome(
        image_id=image_id,
        status="export_failed",
        task_id=task.task_id if task is not None else None,
        tos_bucket=dest.bucket,
        object_key=dest.object_key(image_id),
        duration_s=duration_s(task) if task is not None else None,
        error=ErrorInfo(code=code, message=message),
    )
    return FollowUp(outcome=outcome, next_state=next_state("exporting", event))


def _task_failed_message(task: Task) -> str:
    created = _iso(task.created_at)
    ended = _iso(task.end_at)
    return f"export task {task.task_id} Failed (created {created}, ended {ended}); the API gives no reason"


def _iso(moment: datetime | None) -> str:
    return _aware(moment).isoformat().replace("+00:00", "Z") if moment is not None else "unknown"


def _aware(moment: datetime | None) -> datetime:
    """A task time in UTC (the API writes UTC; a time without a zone is taken as UTC), or the earliest."""
    if moment is None:
        return _EARLIEST
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
