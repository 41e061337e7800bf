"""Pure decisions for following exports to their end (docs/contract.md, "Following exports to their end").

The state of each export lives on its image as two tags: ``image-exporter:state`` (``exporting``,
``exported`` or ``failed``) and ``image-exporter:dest`` (``tos://<bucket>/<prefix>``). This module reads and
writes those tags, holds the one table of how the state tag changes (:data:`TRANSITIONS`) and picks an
image's latest ExportImage task; how a finished export's (task, check) turns into its outcome is
``handler.core.follow_up_rules``'s. No I/O, and nothing heavy to import: a scan reads the tags too.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, get_args

from handler.models.api import EXPORT_TASK_TYPE, Image, Task
from handler.models.results import object_key_for
from handler.models.settings import BUCKET_PATTERN, PREFIX_PATTERN

__all__ = [
    "DEST_KEY",
    "DRILL_KEY",
    "MISSING_CONFIRM_SECONDS",
    "RESTORED_FROM_KEY",
    "RESTORE_KEY",
    "STATE_KEY",
    "TRACKING_KEYS",
    "TRANSITIONS",
    "UNSEEN_KEY",
    "Destination",
    "TrackingEvent",
    "TrackingState",
    "as_utc",
    "latest_export_tasks",
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
        rank = (as_utc(task.created_at), index)
        held = best.get(task.resource_id)
        if held is None or rank >= held:
            best[task.resource_id], chosen[task.resource_id] = rank, task
    return chosen


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
    if task is not None and task.created_at is not None and seen < as_utc(task.created_at).timestamp() * 1000:
        return None
    return seen


def as_utc(moment: datetime | None) -> datetime:
    """A task time in UTC (the API writes UTC; a time without a zone is taken as UTC), or the earliest."""
    if moment is None:
        return _EARLIEST
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
