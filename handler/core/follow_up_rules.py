"""Pure decisions on how a tracked export ended: its latest task and its objects' check turned into the
outcome to report and the state tag to set next (the table is ``handler.core.tracking.TRANSITIONS``). No I/O:
the follow-up flow calls the ECS and TOS clients and hands their answers here; an untracked export never
imports this module."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from handler.core.checks import Corrupt, ExportCheck, Missing, Stopped
from handler.core.tracking import (
    MISSING_CONFIRM_SECONDS,
    Destination,
    TrackingEvent,
    TrackingState,
    as_utc,
    next_state,
)
from handler.errors import ExportObjectCorrupt, ExportObjectMissing, ExportTaskFailed
from handler.models.api import FAILED, SUCCEEDED, Task
from handler.models.objects import ObjectUnreadable
from handler.models.results import ErrorInfo, ImageOutcome

__all__ = [
    "EXPORT_OBJECT_CORRUPT",
    "EXPORT_OBJECT_MISSING",
    "EXPORT_TASK_FAILED",
    "IN_FLIGHT",
    "FollowUp",
    "decide_follow_up",
    "duration_s",
    "needs_object",
]

EXPORT_TASK_FAILED = ExportTaskFailed.code
EXPORT_OBJECT_MISSING = ExportObjectMissing.code
EXPORT_OBJECT_CORRUPT = ExportObjectCorrupt.code


def duration_s(task: Task) -> float | None:
    """Seconds from the task's CreatedAt to its EndAt; None while it has no end, or when the times are odd."""
    if task.created_at is None or task.end_at is None:
        return None
    seconds = (as_utc(task.end_at) - as_utc(task.created_at)).total_seconds()
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
    moment = as_utc(now) if now is not None else datetime.now(UTC)
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
    return as_utc(moment).isoformat().replace("+00:00", "Z") if moment is not None else "unknown"
