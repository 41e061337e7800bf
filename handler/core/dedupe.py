"""What counts as already exported, still running or unknown: the rule that keeps an image from being
exported twice. Pure: the export flow looks the image's tasks up and asks here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from handler.models.api import ACTIVE_STATUSES, EXPORT_TASK_TYPE, FINISHED_STATUSES, SUCCEEDED, Task

__all__ = ["Dedupe", "dedupe", "maybe_running"]

_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Dedupe:
    """An existing export task that makes a new one unnecessary (``task`` is None when an export is due)."""

    task: Task | None
    reason: str = ""


def maybe_running(task: Task) -> bool:
    """An export task that may still be running: pending, running, or in a status this function does not
    know (DescribeTasks may answer ``UnknownStatus``). Only ``Succeeded`` and ``Failed`` are over."""
    return task.type == EXPORT_TASK_TYPE and task.status not in FINISHED_STATUSES


def dedupe(tasks: Iterable[Task], *, now: datetime, window_hours: float | None) -> Dedupe:
    """Skip the image when one of its ExportImage tasks may be running (pending, running, or a status not
    known), or succeeded within the window (``None``: ever). A failed task never counts."""
    since = None if window_hours is None else now - timedelta(hours=window_hours)
    succeeded: Task | None = None
    for task in tasks:
        if task.type != EXPORT_TASK_TYPE:
            continue
        if task.status in ACTIVE_STATUSES:
            return Dedupe(task, f"an export is already {task.status.lower()}")
        if maybe_running(task):
            status = task.status[:40] or "(none)"
            reason = (
                f"an export task is in status {status!r}, which this function does not know: it may be "
                "running, so no second export is started"
            )
            return Dedupe(task, reason)
        if task.status == SUCCEEDED:
            finished = _aware(task.end_at or task.updated_at or task.created_at)
            if since is None or finished is None or finished >= since:
                newer = succeeded is None or _later(task, succeeded)
                succeeded = task if newer else succeeded
    if succeeded is not None:
        when = "" if window_hours is None else f" within the last {window_hours:g} h"
        return Dedupe(succeeded, f"already exported{when}")
    return Dedupe(None)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _later(a: Task, b: Task) -> bool:
    return (_aware(a.end_at or a.created_at) or _EPOCH) > (_aware(b.end_at or b.created_at) or _EPOCH)
