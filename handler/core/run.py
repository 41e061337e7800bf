# ~430 lines: one flow (scan, just-in-time look-ups, exports, lost answers, locks, refusals) under one lock.
"""The export flow for one command: find the images, drop those already exported, export the rest.

Every API call goes through ``EcsApi`` (the signed client in production, fakes in tests), so this module
decides and orchestrates but does no I/O of its own (its one log line goes through structlog, which the
adapters configure). It never raises for an image: each ends as an outcome.

Two copies of the function may scan the same images at once (a sweep and the nightly scan). The task look-up
that clears an image for export is therefore at most ``ExportPlan.clearance_seconds`` old when its ExportImage
is sent: the images are walked in order and their tasks looked up just in time, a chunk at a time, each chunk
as large as the request rate (``ExportPlan.max_rps``) lets the flow export within the window; an image whose
look-up would still be too old by then (throttling, slow answers) is looked up again with the next ones. The
API's lock (``ResourceLocked`` while an export runs) covers the rest.
"""

from __future__ import annotations

import contextvars
import threading
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import structlog

from handler.clock import SYSTEM_CLOCK, Clock
from handler.core.budget import Budget
from handler.core.plan import Dedupe, ExportPlan, availability, dedupe, maybe_running, pick_scan_images
from handler.core.tracking import free_slots, tracking_of
from handler.errors import (
    BudgetExhausted,
    ExporterError,
    ImageNotFound,
    ImageNotReady,
    ResourceLocked,
    Throttled,
    UnknownOutcomeError,
)
from handler.models.api import ExportStarted, Image, Task
from handler.models.events import Command, ScanCommand
from handler.models.results import ErrorInfo, ImageOutcome, Status, object_key_for

__all__ = ["TAG_SCAN_CAP", "EcsApi", "Tracked", "run_command"]

_log = structlog.get_logger("handler.run")

# How often an ExportImage whose answer was lost is sent in all (each resend only after a look at the tasks).
UNKNOWN_OUTCOME_TRIES = 3
# DescribeImages with TagFilters lists at most this many images (docs/facts.md §3).
TAG_SCAN_CAP = 1000
LOOKUP_BATCH = 100  # ids per DescribeTasks request
# The share of the clearance window a chunk of exports leaves unused, for the requests' own wait and answers.
_MARGIN = 0.1


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
class Tracked:
    """How export tracking shapes a run (``EXPORT_TRACKING=tags``): a scan leaves out every image that carries
    a state tag, and new exports start only while fewer than ``cap`` are in flight (``in_flight``: tagged
    ``exporting`` after the follow-up; None when they could not be counted, which holds every export back)."""

    cap: int | None = None
    in_flight: int | None = 0


def run_command(
    command: Command,
    *,
    api: EcsApi,
    plan: ExportPlan,
    budget: Budget,
    clock: Clock = SYSTEM_CLOCK,
    tracked: Tracked | None = None,
) -> tuple[ImageOutcome, ...]:
    """Carry the command out and say what happened to each image, in a stable order. ``tracked`` None: the
    image's tags and the number of exports in flight play no part."""
    return _ExportFlow(api, plan, budget, clock, tracked).execute(command)


def _budget_reason(budget: Budget) -> str:
    return (
        f"the time budget ({budget.seconds:.3g} s) ran out before this image's export could be sent; "
        "a later run exports it"
    )


def _not_done(image_id: str | None, error: ExporterError, budget: Budget) -> ImageOutcome:
    """The outcome for an image the error stopped: deferred when waiting will do, failed otherwise."""
    info = ErrorInfo.from_error(error)
    if isinstance(error, BudgetExhausted):
        return ImageOutcome(image_id=image_id, status="deferred", reason=_budget_reason(budget), error=info)
    if isinstance(error, Throttled):
        reason = "the API is throttling requests; a later run exports it"
        return ImageOutcome(image_id=image_id, status="deferred", reason=reason, error=info)
    return ImageOutcome(image_id=image_id, status="failed", error=info)


class _ExportFlow:
    """One command's run: the images walked in order, their tasks looked up just in time, a chunk at a time,
    and one export per image still due, each cleared by a look-up younger than the clearance window."""

    def __init__(
        self, api: EcsApi, plan: ExportPlan, budget: Budget, clock: Clock, tracked: Tracked | None
    ) -> None:
        self.api = api
        self.tracked = tracked
        self.plan = plan
        self.budget = budget
        self.clock = clock
        self.now = clock.now()
        self._lock = threading.Lock()
        self._order: list[str] = []
        self._next = 0  # the position in ``_order`` of the next image to settle or hand out
        self._settled: dict[str, ImageOutcome] = {}
        self._looked_at: dict[str, float] = {}  # image → when its latest task look-up was sent
        self._found: dict[str, Dedupe] = {}  # image → what that look-up found
        self._lookup_failed: dict[str, ExporterError] = {}  # image → why its look-up failed
        self._slots: int | None = None  # exports the in-flight cap still allows (None: no cap)
        self._held_status: Status = "queued"
        self._held_reason = ""
        self._handouts: deque[float] = deque(maxlen=2)  # when the latest exports were handed out
        self._step = 1.0 / plan.max_rps  # the time between two requests, as recently seen
        self._workers = 1
        self._refused: dict[str, ImageNotReady] = {}

    def execute(self, command: Command) -> tuple[ImageOutcome, ...]:
        scan = isinstance(command, ScanCommand)
        if isinstance(command, ScanCommand):
            try:
                order = self._scan(command)
            except ExporterError as error:
                return (_not_done(None, error, self.budget),)
        else:
            # Named images go straight to the dedupe look-up: whether each is ready is asked only of
            # those ExportImage refuses (InvalidImageStatus), so the usual event costs two requests.
            order = list(command.image_ids)
        self._order = order
        self._workers = min(self.plan.concurrency, len(order))
        self._handouts = deque(maxlen=self._workers + 1)
        self._open_slots(scan=scan)
        self._export_all()
        self._explain_refusals(self._settled)
        return tuple(self._settled[i] for i in order)

    # -- finding the images ------------------------------------------------------------------------------

    def _scan(self, command: ScanCommand) -> list[str]:
        images: Iterable[Image] = self._list_images(command.tags or None)
        if command.tags:
            listed = list(images)
            if len(listed) >= TAG_SCAN_CAP:
                # The API lists at most 1,000 images for a tag search: the list may be cut short.
                _log.warning("scan.tags_filtered_locally", listed=len(listed), cap=TAG_SCAN_CAP)
                listed = list(self._list_images(None))
            images = listed
        if self.tracked is not None:
            images = [image for image in images if not tracking_of(image).blocks_scan]
        picked = pick_scan_images(
            images,
            now=self.now,
            lookback_hours=self.plan.lookback_hours,
            name_prefix=command.image_name_prefix,
            tags=command.tags,
        )
        return [image.image_id for image in picked]

    def _open_slots(self, *, scan: bool) -> None:
        """How many exports ``EXPORT_MAX_IN_FLIGHT`` lets this run start, used up in order as due images are
        found; the due images beyond them are settled ``queued`` (a scan: a later run starts them) or
        ``deferred`` (named images: the trigger retries the event). Images found exported or running never
        take a slot."""
        if self.tracked is None or self.tracked.cap is None:
            return
        cap, in_flight = self.tracked.cap, self.tracked.in_flight
        if in_flight is None:
            self._slots, why = 0, "the exports in flight could not be counted"
        else:
            self._slots, why = free_slots(cap, in_flight), f"{in_flight} export(s) in flight"
        self._held_status = "queued" if scan else "deferred"
        self._held_reason = f"EXPORT_MAX_IN_FLIGHT={cap} and {why}; a later run starts it"

    def _list_images(self, tags: Mapping[str, str] | None) -> Iterator[Image]:
        # Every private image, whatever its status (the scan keeps the available ones itself): the follow-up
        # reads the same pages, and must find an image tagged ``exporting`` in any status it has meanwhile.
        return self.api.describe_images(deadline=self.budget.send_by, visibility="private", tag_filters=tags)

    def _tasks_by_image(self, image_ids: list[str]) -> dict[str, list[Task]]:
        grouped: dict[str, list[Task]] = defaultdict(list)
        for task in self.api.describe_tasks(deadline=self.budget.send_by, resource_ids=image_ids):
            grouped[task.resource_id].append(task)
        return grouped

    def _explain_refusals(self, settled: dict[str, ImageOutcome]) -> None:
        """Turn ExportImage's InvalidImageStatus into what the image's status means: may still change
        (deferred, a later run exports it) or never exportable (failed, with the status). Either way the
        result keeps the API's answer."""
        if not self._refused:
            return
        try:
            found = {
                i.image_id: i
                for i in self.api.describe_images(deadline=self.budget.send_by, image_ids=self._refused)
            }
        except ExporterError:
            # Unsure whether the image is merely still being created: let a later run ask again.
            for image_id, refusal in self._refused.items():
                reason = "the image is not ready for export, and its status could not be read; a later run asks again"
                settled[image_id] = _deferred(image_id, reason, refusal)
            return
        for image_id, refusal in self._refused.items():
            readiness = availability(found.get(image_id), image_id, self.plan.region)
            if readiness.verdict == "never":
                info = ErrorInfo.from_error(refusal)
                error = info.model_copy(update={"message": f"{info.message} ({readiness.reason})"})
                settled[image_id] = settled[image_id].model_copy(update={"error": error})
            else:  # "wait", or "ready" (available since the refusal): a later run exports it
                settled[image_id] = _deferred(
                    image_id, readiness.reason or "the image is not ready yet", refusal
                )

    # -- clearing each image just before its export ---------------------------------------------------

    def _chunk_size(self) -> int:
        """How many images one look-up clears: as many as the limiter lets the flow export within the
        clearance window less a tenth of it, after the look-up itself and the requests the other workers may
        have queued ahead of the last export (at 10 requests a second and 10 s: 89 with one worker, 86 with
        four). :meth:`_stale` then finds none of them too old, at that rate."""
        usable = self.plan.clearance_seconds * (1 - _MARGIN) * self.plan.max_rps
        return max(1, min(LOOKUP_BATCH, int(usable + 1e-9) - self._workers))

    def _next_export(self) -> str | None:
        """The next image cleared for export, every image before it in the command's order settled or handed
        out; None when none is left. Workers share it under the lock, so none hands out an image twice."""
        with self._lock:
            while self._next < len(self._order):
                image_id = self._order[self._next]
                outcome = self._clear(image_id)
                self._next += 1
                if outcome is None:
                    return image_id
                self._settled[image_id] = outcome
        return None

    def _clear(self, image_id: str) -> ImageOutcome | None:
        """``None``: cleared, send the export now. Else the image's outcome: skipped (a task found), held by
        the in-flight cap, deferred by the budget or by a look-up that took the whole window to answer, or the
        look-up's failure. The image's tasks are looked up, with the next images', when no look-up covers it
        yet or when its look-up would be too old by the time its export is sent (throttling, slow answers)."""
        budget_low = self.clock.monotonic() > self.budget.start_by
        exporting = self._slots != 0 and not budget_low
        unknown = image_id not in self._found and image_id not in self._lookup_failed
        if unknown or (exporting and self._stale(image_id)):
            self._look_up(self._chunk_size() if exporting else LOOKUP_BATCH)
        if image_id in self._lookup_failed:
            return _not_done(image_id, self._lookup_failed[image_id], self.budget)
        found = self._found[image_id]
        if found.task is not None:
            return _skipped(image_id, found.task, found.reason)
        if self._slots == 0:
            return ImageOutcome(image_id=image_id, status=self._held_status, reason=self._held_reason)
        if budget_low:
            reason = "the time budget ran low before this export could start; a later run exports it"
            return ImageOutcome(image_id=image_id, status="deferred", reason=reason)
        if self._age(image_id) > self.plan.clearance_seconds:
            reason = "the task look-up answered too slowly to clear this export; a later run exports it"
            return ImageOutcome(image_id=image_id, status="deferred", reason=reason)
        if self._slots is not None:
            self._slots -= 1
        self._handed_out()
        return None

    def _look_up(self, size: int) -> None:
        """Look up the tasks of the next ``size`` images from the one being cleared (one request, or as many
        pages as the answer has). A look-up's age counts from when it was asked for."""
        batch = list(dict.fromkeys(self._order[self._next : self._next + size]))
        looked_at = self.clock.monotonic()
        try:
            tasks = self._tasks_by_image(batch)
        except ExporterError as error:
            # Without the look-up an export could start twice: nothing it covers is exported blind.
            for image_id in batch:
                self._found.pop(image_id, None)
                self._lookup_failed[image_id] = error
            return
        for image_id in batch:
            self._lookup_failed.pop(image_id, None)
            self._looked_at[image_id] = looked_at
            self._found[image_id] = dedupe(
                tasks.get(image_id, ()), now=self.now, window_hours=self.plan.dedupe_hours
            )

    def _stale(self, image_id: str) -> bool:
        """Whether an image still due would be sent on a look-up older than the window less half the margin:
        the workers' requests go first, each taking the time recently seen between two exports (at least the
        limiter's step)."""
        found = self._found.get(image_id)
        if found is None or found.task is not None:
            return False
        wait = self._workers * self._step
        return self._age(image_id) + wait > self.plan.clearance_seconds * (1 - _MARGIN / 2)

    def _handed_out(self) -> None:
        """Note when an export was handed out: the pace is the mean gap over the last few (one per worker)."""
        self._handouts.append(self.clock.monotonic())
        if len(self._handouts) > 1:
            mean_gap = (self._handouts[-1] - self._handouts[0]) / (len(self._handouts) - 1)
            self._step = max(1.0 / self.plan.max_rps, mean_gap)

    def _age(self, image_id: str) -> float:
        return self.clock.monotonic() - self._looked_at.get(image_id, float("-inf"))

    # -- exporting ---------------------------------------------------------------------------------------

    def _export_all(self) -> None:
        if self._workers <= 1:
            self._export_due()
            return
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - only batches need threads

        with ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="export") as pool:
            # Each worker runs in a copy of the caller's context, so its log lines keep the correlation id.
            futures = [
                pool.submit(contextvars.copy_context().run, self._export_due) for _ in range(self._workers)
            ]
            for future in futures:
                future.result()

    def _export_due(self) -> None:
        while (image_id := self._next_export()) is not None:
            outcome = self._export_one(image_id)
            with self._lock:
                self._settled[image_id] = outcome

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
        for attempt in range(1, UNKNOWN_OUTCOME_TRIES + 1):
            outcome = self._try_export(image_id, last_try=attempt == UNKNOWN_OUTCOME_TRIES)
            if outcome is not None:
                return outcome
        raise AssertionError("unreachable")  # pragma: no cover

    def _try_export(self, image_id: str, *, last_try: bool) -> ImageOutcome | None:
        """Send ExportImage once; ``None`` means its answer was lost, no task appeared: send it again."""
        try:
            started = self.api.export_image(
                image_id, self.plan.bucket, self.plan.prefix, deadline=self.budget.send_by
            )
        except UnknownOutcomeError as lost:
            return self._after_lost_answer(image_id, lost, last_try=last_try)
        except ResourceLocked as locked:
            return self._after_locked(image_id, locked)
        except ImageNotReady as refused:
            with self._lock:
                self._refused[image_id] = refused
            return ImageOutcome(image_id=image_id, status="failed", error=ErrorInfo.from_error(refused))
        except ImageNotFound as missing:
            where = f"no image {image_id} in region {self.plan.region}: check the id and VOLCENGINE_REGION"
            info = ErrorInfo.from_error(missing).model_copy(update={"message": where})
            return ImageOutcome(image_id=image_id, status="failed", error=info)
        except ExporterError as error:
            return _not_done(image_id, error, self.budget)
        return self._started(image_id, started.task_id)

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
            return _not_done(image_id, lost, self.budget)
        found = dedupe(tasks, now=self.now, window_hours=self.plan.dedupe_hours)
        if found.task is not None:
            return self._started(
                image_id, found.task.task_id, "the answer was lost; the export task was found"
            )
        return _not_done(image_id, lost, self.budget) if last_try else None

    def _after_locked(self, image_id: str, locked: ResourceLocked) -> ImageOutcome:
        """The image is locked: by an export (skipped, with its task) or by something else (deferred)."""
        try:
            tasks = self._export_tasks(image_id)
        except ExporterError:
            tasks = []
        running = [t for t in tasks if maybe_running(t)]
        if running:
            found = dedupe(running, now=self.now, window_hours=self.plan.dedupe_hours)
            return _skipped(image_id, found.task or running[0], found.reason)
        reason = "the image is locked by another operation; a later run exports it"
        return _deferred(image_id, reason, locked)


def _skipped(image_id: str, task: Task, reason: str) -> ImageOutcome:
    return ImageOutcome(image_id=image_id, status="skipped", task_id=task.task_id, reason=reason)


def _deferred(image_id: str, reason: str, cause: ExporterError) -> ImageOutcome:
    """Deferred because of an API answer: the result keeps that answer (code, message, request id)."""
    return ImageOutcome(
        image_id=image_id, status="deferred", reason=reason, error=ErrorInfo.from_error(cause)
    )
