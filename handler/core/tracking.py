"""Pure decisions for following exports to their end (docs/contract.md, "Following exports to their end").

The state of each export lives on its image as two tags: ``image-exporter:state`` (``exporting``,
``exported`` or ``failed``) and ``image-exporter:dest`` (``tos://<bucket>/<prefix>``). This module reads and
writes those tags, picks an image's latest ExportImage task, turns (task, HeadObject answer) into the
outcome to report and the tag to set next, and does the in-flight cap's arithmetic. No I/O: the follow-up
flow calls the ECS and TOS clients and hands their answers here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from handler.errors import ExportObjectMissing, ExportTaskFailed
from handler.models.api import Image, Task
from handler.models.objects import HeadResult, ObjectFound, ObjectMissing, ObjectUnreadable
from handler.models.results import ErrorInfo, ImageOutcome, object_key_for
from handler.models.settings import BUCKET_PATTERN, PREFIX_PATTERN

__all__ = [
    "DEST_KEY",
    "EXPORT_OBJECT_MISSING",
    "EXPORT_TASK_FAILED",
    "STATE_KEY",
    "TRACKING_KEYS",
    "Destination",
    "FollowUp",
    "TrackingState",
    "decide_follow_up",
    "duration_s",
    "free_slots",
    "group_by_tags",
    "latest_export_task",
    "needs_object",
    "state_tags",
    "tracking_of",
]

STATE_KEY = "image-exporter:state"
DEST_KEY = "image-exporter:dest"
TRACKING_KEYS = (STATE_KEY, DEST_KEY)

TrackingState = Literal["exporting", "exported", "failed"]
_STATES: dict[str, TrackingState] = {state: state for state in get_args(TrackingState)}

EXPORT_TASK_FAILED = ExportTaskFailed.code
EXPORT_OBJECT_MISSING = ExportObjectMissing.code
EXPORT_TASK_TYPE = "ExportImage"
# Task statuses that end an export; anything else (Pending, Running, UnknownStatus, new ones) is in flight.
SUCCEEDED, FAILED = "Succeeded", "Failed"

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
        bucket, slash, prefix = value.removeprefix("tos://").partition("/")
        if not value.startswith("tos://") or not slash:
            return None
        if not BUCKET_PATTERN.match(bucket) or not PREFIX_PATTERN.match(prefix):
            return None
        return cls(bucket, prefix)


@dataclass(frozen=True, slots=True)
class Tracking:
    """What an image's tags say about our export of it. ``state`` is None when the image is not tracked
    (no state tag, or a value we never write); ``dest`` None when the destination tag is absent or odd."""

    state: TrackingState | None
    dest: Destination | None

    @property
    def blocks_scan(self) -> bool:
        """True when a scan must not start this image: it is exporting, exported or failed."""
        return self.state is not None


def tracking_of(image: Image) -> Tracking:
    """Read the tracking tags of one image (as DescribeImages reports its ``Tags``)."""
    tags = dict(image.tags)
    state = tags.get(STATE_KEY)
    dest = tags.get(DEST_KEY)
    return Tracking(
        state=_STATES.get(state) if state is not None else None,
        dest=Destination.parse(dest) if dest is not None else None,
    )


def state_tags(state: TrackingState, dest: Destination | None = None) -> dict[str, str]:
    """The tags to set: the state, and the destination when given (set with ``exporting``)."""
    tags: dict[str, str] = {STATE_KEY: state}
    if dest is not None:
        tags[DEST_KEY] = dest.tag_value
    return tags


def group_by_tags(
    wanted: Iterable[tuple[str, Mapping[str, str]]],
) -> list[tuple[dict[str, str], tuple[str, ...]]]:
    """Images that get the same tags, together (one TagResources request per group and 50 images), in the
    order each group first appears (tags compared whatever their order); an image named twice is tagged
    once, with its first tags."""
    groups: dict[frozenset[tuple[str, str]], tuple[dict[str, str], list[str]]] = {}
    seen: set[str] = set()
    for image_id, tags in wanted:
        if image_id in seen:
            continue
        seen.add(image_id)
        groups.setdefault(frozenset(tags.items()), (dict(tags), []))[1].append(image_id)
    return [(tags, tuple(ids)) for tags, ids in groups.values()]


def latest_export_task(image_id: str, tasks: Iterable[Task]) -> Task | None:
    """The image's most recently created ExportImage task (other types and images are ignored); among tasks
    created at the same moment, or without a time, the one listed last."""
    best: tuple[datetime, int] | None = None
    chosen: Task | None = None
    for index, task in enumerate(tasks):
        if task.type != EXPORT_TASK_TYPE or task.resource_id != image_id:
            continue
        rank = (_aware(task.created_at), index)
        if best is None or rank >= best:
            best, chosen = rank, task
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
    """What to do about one tracked export: report ``outcome`` (None while it is in flight), then set the
    state tag to ``next_state`` (None: leave the tags as they are)."""

    outcome: ImageOutcome | None
    next_state: TrackingState | None

    @property
    def in_flight(self) -> bool:
        return self.outcome is None


IN_FLIGHT = FollowUp(outcome=None, next_state=None)


def decide_follow_up(
    image_id: str, dest: Destination, task: Task | None, head: HeadResult | None
) -> FollowUp:
    """The follow-up outcome of one image tagged ``exporting`` (issue 15, item 2).

    - Succeeded + object found → ``exported`` (size, CRC-64, duration); tag ``exported``.
    - Succeeded + no object → ``export_failed`` ``ExportObjectMissing``; tag ``failed``.
    - Succeeded + TOS answered 403 → ``exported`` with ``verified: false`` and the reason; never a failure.
    - Failed → ``export_failed`` ``ExportTaskFailed`` with the task's times; tag ``failed``.
    - Pending, Running or any other status → in flight: nothing reported, tags unchanged.
    - No task listed any more → the object alone decides, as for Succeeded (found, missing, or unverified).

    ``head`` is the HeadObject answer for ``dest.object_key(image_id)``, required when ``needs_object(task)``.
    """
    if task is not None and task.status == FAILED:
        return _failed(image_id, dest, task, EXPORT_TASK_FAILED, _task_failed_message(task))
    if not needs_object(task):
        return IN_FLIGHT
    if head is None:
        msg = "decide_follow_up needs the HeadObject answer when the task Succeeded or is no longer listed"
        raise ValueError(msg)
    key = dest.object_key(image_id)
    where = f"tos://{dest.bucket}/{key}"
    if isinstance(head, ObjectMissing):
        said = (
            f"export task {task.task_id} Succeeded"
            if task is not None
            else "the export task is no longer listed"
        )
        return _failed(image_id, dest, task, EXPORT_OBJECT_MISSING, f"{said} but no object is at {where}")
    exported = ImageOutcome(
        image_id=image_id,
        status="exported",
        task_id=task.task_id if task is not None else None,
        tos_bucket=dest.bucket,
        object_key=key,
        duration_s=duration_s(task) if task is not None else None,
        size_bytes=head.size_bytes if isinstance(head, ObjectFound) else None,
        crc64=head.crc64 if isinstance(head, ObjectFound) else None,
        verified=isinstance(head, ObjectFound),
        reason=_unverified_reason(head, task),
    )
    return FollowUp(outcome=exported, next_state="exported")


def _unverified_reason(head: HeadResult, task: Task | None) -> str | None:
    if not isinstance(head, ObjectUnreadable):
        return None
    if task is None:
        return f"the export task is no longer listed; {head.reason}"
    return head.reason


def _failed(image_id: str, dest: Destination, task: Task | None, code: str, message: str) -> FollowUp:
    outcome = ImageOutcome(
        image_id=image_id,
        status="export_failed",
        task_id=task.task_id if task is not None else None,
        tos_bucket=dest.bucket,
        object_key=dest.object_key(image_id),
        duration_s=duration_s(task) if task is not None else None,
        error=ErrorInfo(code=code, message=message),
    )
    return FollowUp(outcome=outcome, next_state="failed")


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


# --- the in-flight cap (EXPORT_MAX_IN_FLIGHT) ---------------------------------------------------------------


def free_slots(cap: int | None, in_flight: int) -> int | None:
    """How many exports a run may still start: ``cap`` minus those in flight (tagged ``exporting`` after the
    follow-up, plus any started already in this run), never below 0; None when there is no cap."""
    if cap is None:
        return None
    return max(0, cap - max(0, in_flight))
