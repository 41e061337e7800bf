"""Pure decisions: where exports go, which images a scan picks, and whether an image needs exporting now.

No I/O here. ``ExportPlan.of`` is the one place the event and the settings meet (which bucket, prefix and
lookback win, and whether the lookback fits the dedupe window).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from handler.errors import ConfigurationError, InvalidEvent
from handler.models.api import Image, Task
from handler.models.events import Command, ScanCommand
from handler.models.settings import Settings

__all__ = [
    "ACTIVE",
    "CLEARANCE_SECONDS",
    "Availability",
    "Dedupe",
    "ExportPlan",
    "Verdict",
    "availability",
    "dedupe",
    "maybe_running",
    "pick_scan_images",
]

EXPORT_TASK = "ExportImage"
ACTIVE = frozenset({"Pending", "Running"})
FINISHED = frozenset({"Succeeded", "Failed"})
# The oldest a task look-up may be when the ExportImage it cleared is sent: a second copy of the function
# running at the same time may have started (and, its task done, released the API's lock on) the image since.
CLEARANCE_SECONDS = 10.0
# VOLCENGINE_MAX_RPS's default: the request rate the export flow plans its task look-ups for.
DEFAULT_MAX_RPS = 10.0
# Image statuses that end for good; any status not listed here and not "available" may still change.
_NEVER_EXPORTABLE = frozenset({"error"})
_STILL_BECOMING = frozenset({"creating", "pending", "copying", "importing", ""})


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """Where exports go and how the run behaves: the event's choices, falling back on the settings."""

    bucket: str
    prefix: str
    region: str
    concurrency: int
    dedupe_hours: float | None
    lookback_hours: float
    clearance_seconds: float = CLEARANCE_SECONDS
    max_rps: float = DEFAULT_MAX_RPS  # the rate the API client's limiter allows (VOLCENGINE_MAX_RPS)

    @classmethod
    def of(cls, command: Command, settings: Settings) -> ExportPlan:
        """Merge the command with the settings. Raises ``InvalidEvent`` for a scan lookback longer than the
        dedupe window, ``ConfigurationError`` when neither names a TOS bucket."""
        lookback = command.lookback_hours if isinstance(command, ScanCommand) else None
        if lookback is not None and settings.dedupe_hours is not None and lookback > settings.dedupe_hours:
            msg = (
                f"{lookback:g} h is longer than the dedupe window "
                f"(EXPORT_DEDUPE_HOURS={settings.dedupe_hours:g}): an image could be exported twice"
            )
            raise InvalidEvent(msg, field="data.LookbackHours")
        bucket = command.tos_bucket or settings.tos_bucket
        if not bucket:
            msg = "no TOS bucket: set EXPORT_TOS_BUCKET, or name TOSBucket in the event"
            raise ConfigurationError(msg, source="EXPORT_TOS_BUCKET")
        return cls(
            bucket=bucket,
            prefix=command.tos_prefix or settings.tos_prefix,
            region=settings.region,
            concurrency=settings.concurrency,
            dedupe_hours=settings.dedupe_hours,
            lookback_hours=lookback or settings.lookback_hours,
            max_rps=settings.max_rps,
        )


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def pick_scan_images(
    images: Iterable[Image],
    *,
    now: datetime,
    lookback_hours: float,
    name_prefix: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> list[Image]:
    """The images a timer scan exports: private, available, created within the lookback, matching the name
    prefix and every tag. Images without a creation time are kept (better exported than lost)."""
    since = now - timedelta(hours=lookback_hours)
    wanted = dict(tags or {})
    picked: dict[str, Image] = {}
    for image in images:
        created = _aware(image.created_at)
        if image.visibility and image.visibility != "private":
            continue
        if image.status != "available" or (created is not None and created < since):
            continue
        if name_prefix and not image.name.startswith(name_prefix):
            continue
        if any(dict(image.tags).get(k) != v for k, v in wanted.items()):
            continue
        picked.setdefault(image.image_id, image)
    return list(picked.values())


Verdict = Literal["ready", "wait", "never"]


@dataclass(frozen=True, slots=True)
class Availability:
    """Whether a named image can be exported now: ``ready``, ``wait`` (may still change) or ``never``."""

    verdict: Verdict
    reason: str = ""


def availability(image: Image | None, image_id: str, region: str) -> Availability:
    """Judge a named image from DescribeImages: only an ``available`` image is exported. A status this
    function does not know waits (a later run asks again) rather than failing for good."""
    if image is None:
        return Availability(
            "never", f"no image {image_id} in region {region}: check the id and VOLCENGINE_REGION"
        )
    if image.status == "available":
        return Availability("ready")
    if image.status in _STILL_BECOMING:
        return Availability(
            "wait", f"the image is still {image.status or 'not ready'}; a later run exports it"
        )
    if image.status in _NEVER_EXPORTABLE:
        return Availability(
            "never", f"the image's status is {image.status}: only available images can be exported"
        )
    return Availability(
        "wait",
        f"the image's status is {image.status[:40]!r}, which this function does not know; "
        "a later run tries again",
    )


@dataclass(frozen=True, slots=True)
class Dedupe:
    """An existing export task that makes a new one unnecessary (``task`` is None when an export is due)."""

    task: Task | None
    reason: str = ""


def maybe_running(task: Task) -> bool:
    """An export task that may still be running: pending, running, or in a status this function does not
    know (DescribeTasks may answer ``UnknownStatus``). Only ``Succeeded`` and ``Failed`` are over."""
    return task.type == EXPORT_TASK and task.status not in FINISHED


def dedupe(tasks: Iterable[Task], *, now: datetime, window_hours: float | None) -> Dedupe:
    """Skip the image when one of its ExportImage tasks may be running (pending, running, or a status not
    known), or succeeded within the window (``None``: ever). A failed task never counts."""
    since = None if window_hours is None else now - timedelta(hours=window_hours)
    succeeded: Task | None = None
    for task in tasks:
        if task.type != EXPORT_TASK:
            continue
        if task.status in ACTIVE:
            return Dedupe(task, f"an export is already {task.status.lower()}")
        if maybe_running(task):
            status = task.status[:40] or "(none)"
            reason = (
                f"an export task is in status {status!r}, which this function does not know: it may be "
                "running, so no second export is started"
            )
            return Dedupe(task, reason)
        if task.status == "Succeeded":
            finished = _aware(task.end_at or task.updated_at or task.created_at)
            if since is None or finished is None or finished >= since:
                newer = succeeded is None or _later(task, succeeded)
                succeeded = task if newer else succeeded
    if succeeded is not None:
        when = "" if window_hours is None else f" within the last {window_hours:g} h"
        return Dedupe(succeeded, f"already exported{when}")
    return Dedupe(None)


def _later(a: Task, b: Task) -> bool:
    epoch = datetime.min.replace(tzinfo=UTC)
    return (_aware(a.end_at or a.created_at) or epoch) > (_aware(b.end_at or b.created_at) or epoch)
