"""The export flow for one command: find the images, drop those already exported, export the rest.

Every API call goes through ``EcsApi`` (the signed client in production, fakes in tests), so this module
decides and orchestrates but does no I/O of its own. It never raises for an image: each ends as an outcome.
"""

from __future__ import annotations

import contextvars
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from handler.core.plan import ACTIVE, availability, dedupe, pick_scan_images
from handler.errors import (
    BudgetExhausted,
    ExporterError,
    RetryableApiError,
    ThrottledError,
    UnknownOutcomeError,
)
from handler.models.api import ExportStarted, Image, Task
from handler.models.events import Command, ScanCommand
from handler.models.results import ErrorInfo, ImageOutcome, object_key_for

__all__ = ["Budget", "EcsApi", "ExportPlan", "run_command"]

# How often an ExportImage whose answer was lost is sent in all (each resend only after a look at the tasks).
UNKNOWN_OUTCOME_TRIES = 3
LOCKED = "OperationDenied.ResourceLocked"
STATUS_REFUSED = "InvalidImageStatus"
NOT_FOUND = "InvalidImage.NotFound"


class EcsApi(Protocol):
    """The three ECS actions the exporter uses (``handler.adapters.ecs.EcsClient``)."""

    def export_image(self, image_id: str, bucket: str, prefix: str, *, deadline: float) -> ExportStarted: ...

    def describe_images(
        self,
        *,
        deadline: float,
        image_ids: Iterable[str] = (),
        visibility: str | None = None,
        status: str | None = None,
        tag_filters: Mapping[str, str] | None = None,
    ) -> Iterator[Image]: ...

    def describe_tasks(
        self, *, deadline: float, task_ids: Iterable[str] = (), resource_ids: Iterable[str] = ()
    ) -> Iterator[Task]: ...


@dataclass(frozen=True, slots=True)
class Budget:
    """Time limits as ``time.monotonic()`` values: no request is sent after ``send_by``, and no new image's
    export begins after ``start_by`` (earlier, so that an export begun has time for its look-ups)."""

    send_by: float
    start_by: float


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """Where exports go and how the run behaves (from the event, falling back on the settings)."""

    bucket: str
    prefix: str
    region: str
    concurrency: int
    dedupe_hours: float | None
    lookback_hours: float


def run_command(
    command: Command,
    *,
    api: EcsApi,
    plan: ExportPlan,
    budget: Budget,
    now: datetime,
    monotonic: Callable[[], float] = time.monotonic,
) -> tuple[ImageOutcome, ...]:
    """Carry the command out and say what happened to each image, in a stable order."""
    return _Run(api, plan, budget, now, monotonic).execute(command)


def _not_done(image_id: str | None, error: ExporterError) -> ImageOutcome:
    """The outcome for an image the error stopped: deferred when waiting will do, failed otherwise."""
    info = ErrorInfo.from_error(error)
    if isinstance(error, BudgetExhausted):
        return ImageOutcome(image_id=image_id, status="deferred", reason=error.message, error=info)
    if isinstance(error, ThrottledError):
        reason = "the API is throttling requests; a later run exports it"
        return ImageOutcome(image_id=image_id, status="deferred", reason=reason, error=info)
    return ImageOutcome(image_id=image_id, status="failed", error=info)


class _Run:
    def __init__(
        self, api: EcsApi, plan: ExportPlan, budget: Budget, now: datetime, monotonic: Callable[[], float]
    ) -> None:
        self.api = api
        self.plan = plan
        self.budget = budget
        self.now = now
        self.monotonic = monotonic

    def execute(self, command: Command) -> tuple[ImageOutcome, ...]:
        if isinstance(command, ScanCommand):
            try:
                order = self._scan(command)
            except ExporterError as error:
                return (_not_done(None, error),)
        else:
            # Named images go straight to the dedupe look-up: whether each is ready is asked only of
            # those ExportImage refuses (InvalidImageStatus), so the usual event costs two requests.
            order = list(command.image_ids)

        try:
            tasks = self._tasks_by_image(order)
        except ExporterError as error:
            # Without the look-up an export could start twice: nothing is exported blind.
            return tuple(_not_done(i, error) for i in order)

        settled: dict[str, ImageOutcome] = {}
        due: list[str] = []
        for image_id in order:
            found = dedupe(tasks.get(image_id, ()), now=self.now, window_hours=self.plan.dedupe_hours)
            if found.task is not None:
                settled[image_id] = ImageOutcome(
                    image_id=image_id, status="skipped", task_id=found.task.task_id, reason=found.reason
                )
            else:
                due.append(image_id)
        settled.update(zip(due, self._export_all(due), strict=True))
        self._explain_refusals(settled)
        return tuple(settled[i] for i in order)

    # -- finding the images ------------------------------------------------------------------------------

    def _scan(self, command: ScanCommand) -> list[str]:
        images = self.api.describe_images(
            deadline=self.budget.send_by,
            visibility="private",
            status="available",
            tag_filters=command.tags or None,
        )
        picked = pick_scan_images(
            images,
            now=self.now,
            lookback_hours=command.lookback_hours or self.plan.lookback_hours,
            name_prefix=command.image_name_prefix,
            tags=command.tags,
        )
        return [image.image_id for image in picked]

    def _explain_refusals(self, settled: dict[str, ImageOutcome]) -> None:
        """Turn ExportImage's InvalidImageStatus into what the image's status means: still being created
        (deferred, a later run exports it) or never exportable (failed, with the status)."""
        refused = {
            i: o.error for i, o in settled.items() if o.error is not None and o.error.code == STATUS_REFUSED
        }
        if not refused:
            return
        try:
            found = {
                i.image_id: i
                for i in self.api.describe_images(deadline=self.budget.send_by, image_ids=refused)
            }
        except ExporterError:
            # Unsure whether the image is merely still being created: let a later run ask again.
            for image_id in refused:
                settled[image_id] = settled[image_id].model_copy(
                    update={"status": "deferred", "reason": "the image is not ready for export yet"}
                )
            return
        for image_id, refusal in refused.items():
            verdict = availability(found.get(image_id), image_id, self.plan.region)
            if verdict.verdict in ("wait", "ready"):  # "ready": it became available after the refusal
                settled[image_id] = ImageOutcome(
                    image_id=image_id,
                    status="deferred",
                    reason=verdict.reason or "the image is not ready yet",
                )
            else:
                error = refusal.model_copy(update={"message": f"{refusal.message} ({verdict.reason})"})
                settled[image_id] = settled[image_id].model_copy(update={"error": error})

    def _tasks_by_image(self, image_ids: list[str]) -> dict[str, list[Task]]:
        grouped: dict[str, list[Task]] = defaultdict(list)
        if image_ids:
            for task in self.api.describe_tasks(deadline=self.budget.send_by, resource_ids=image_ids):
                grouped[task.resource_id].append(task)
        return grouped

    # -- exporting ---------------------------------------------------------------------------------------

    def _export_all(self, image_ids: list[str]) -> list[ImageOutcome]:
        if len(image_ids) <= 1 or self.plan.concurrency == 1:
            return [self._export_one(i) for i in image_ids]
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - only batches need threads

        workers = min(self.plan.concurrency, len(image_ids))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="export") as pool:
            # Each worker runs in a copy of the caller's context, so its log lines keep the correlation id.
            futures = [pool.submit(contextvars.copy_context().run, self._export_one, i) for i in image_ids]
            return [f.result() for f in futures]

    def _started(self, image_id: str, task_id: str, reason: str | None = None) -> ImageOutcome:
        return ImageOutcome(
            image_id=image_id,
            status="started",
            task_id=task_id,
            tos_bucket=self.plan.bucket,
            object_key=object_key_for(self.plan.prefix, image_id),
            reason=reason,
        )

    def _export_one(self, image_id: str) -> ImageOutcome:
        if self.monotonic() > self.budget.start_by:
            reason = "the time budget ran low before this export could start; a later run exports it"
            return ImageOutcome(image_id=image_id, status="deferred", reason=reason)
        for attempt in range(1, UNKNOWN_OUTCOME_TRIES + 1):
            try:
                started = self.api.export_image(
                    image_id, self.plan.bucket, self.plan.prefix, deadline=self.budget.send_by
                )
            except UnknownOutcomeError as lost:
                outcome = self._after_lost_answer(image_id, lost, last_try=attempt == UNKNOWN_OUTCOME_TRIES)
                if outcome is not None:
                    return outcome
            except RetryableApiError as error:
                if error.code == LOCKED:
                    return self._after_locked(image_id, error)
                return _not_done(image_id, error)
            except ExporterError as error:
                outcome = _not_done(image_id, error)
                if outcome.error is not None and outcome.error.code == NOT_FOUND:
                    where = f"no image {image_id} in region {self.plan.region}: check the id and VOLCENGINE_REGION"
                    outcome = outcome.model_copy(
                        update={"error": outcome.error.model_copy(update={"message": where})}
                    )
                return outcome
            else:
                return self._started(image_id, started.task_id)
        raise AssertionError("unreachable")  # pragma: no cover

    def _export_tasks(self, image_id: str) -> list[Task]:
        tasks = self.api.describe_tasks(deadline=self.budget.send_by, resource_ids=[image_id])
        return [t for t in tasks if t.type == "ExportImage"]

    def _after_lost_answer(
        self, image_id: str, lost: UnknownOutcomeError, *, last_try: bool
    ) -> ImageOutcome | None:
        """ExportImage's answer was lost. Report the task it made, if any; ``None`` means send it again."""
        try:
            tasks = self._export_tasks(image_id)
        except ExporterError:
            return _not_done(image_id, lost)
        found = dedupe(tasks, now=self.now, window_hours=self.plan.dedupe_hours)
        if found.task is not None:
            return self._started(
                image_id, found.task.task_id, "the answer was lost; the export task was found"
            )
        return _not_done(image_id, lost) if last_try else None

    def _after_locked(self, image_id: str, locked: RetryableApiError) -> ImageOutcome:
        """The image is locked: by an export (skipped, with its task) or by something else (deferred)."""
        try:
            tasks = self._export_tasks(image_id)
        except ExporterError:
            tasks = []
        active = [t for t in tasks if t.status in ACTIVE]
        if active:
            return ImageOutcome(
                image_id=image_id,
                status="skipped",
                task_id=active[0].task_id,
                reason="an export is already running",
            )
        reason = "the image is locked by another operation; a later run exports it"
        return ImageOutcome(
            image_id=image_id, status="deferred", reason=reason, error=ErrorInfo.from_error(locked)
        )
