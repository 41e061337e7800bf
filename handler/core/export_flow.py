"""The export flow for one command: find the images, drop those already exported, export the rest.

Every API call goes through ``EcsApi`` (the signed client in production, fakes in tests), so this module
decides and orchestrates but does no I/O of its own (its one log line goes through structlog, which the
adapters configure). It never raises for an image: each ends as an outcome. Its rules live beside it: which
images a scan picks (``selection``), what counts as already exported (``dedupe``), when each image's tasks are
looked up (``lookups``) and how many exports may start (``in_flight``).
"""

from __future__ import annotations

import contextvars
import dataclasses
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import structlog

from handler.clock import SYSTEM_CLOCK, Clock
from handler.core.apis import EcsApi
from handler.core.budget import Budget
from handler.core.dedupe import Dedupe, dedupe, maybe_running
from handler.core.in_flight import Slots, Tracked
from handler.core.lookups import LOOKUP_BATCH, Lookups
from handler.core.plan import ExportPlan
from handler.core.selection import availability, pick_scan_images
from handler.core.tracking import tracking_of
from handler.errors import (
    BudgetExhausted,
    ClearanceExpired,
    ExporterError,
    ImageNotFound,
    ImageNotReady,
    ListingTruncated,
    ResourceLocked,
    Throttled,
    UnknownOutcomeError,
)
from handler.models.api import EXPORT_TASK_TYPE, SUCCEEDED, Image, Task
from handler.models.commands import ExportingCommand
from handler.models.events import ScanCommand
from handler.models.results import ErrorInfo, ImageOutcome, object_key_for

__all__ = ["TAG_SCAN_CAP", "run_command"]

_log = structlog.get_logger("handler.run")

# How often an ExportImage whose answer was lost is sent in all (each resend only after a look at the tasks).
UNKNOWN_OUTCOME_TRIES = 3
# How often an image's clearance may run out before its ExportImage goes out (a Retry-After or a backoff longer
# than the window), each time followed by a fresh look-up; then the image is left to a later run.
CLEARANCE_TRIES = 3
_LOST_BUT_FOUND = "the answer was lost; the export task was found"
# DescribeImages with TagFilters lists at most this many images (docs/facts.md §3).
TAG_SCAN_CAP = 1000
_ADOPTED = "it was not tracked: it is now tagged exporting, and a later timer run reports how it ends"


def run_command(
    command: ExportingCommand,
    *,
    api: EcsApi,
    plan: ExportPlan,
    budget: Budget,
    clock: Clock = SYSTEM_CLOCK,
    tracked: Tracked | None = None,
    redo: frozenset[str] = frozenset(),
) -> tuple[ImageOutcome, ...]:
    """Carry the command out and say what happened to each image, in a stable order. ``tracked`` None: the
    image's tags and the number of exports in flight play no part. ``redo``: named images exported again
    even after a succeeded export (``Force``, or an export that ended ``export_failed``); never while one may
    be running."""
    flow = _ExportFlow(api, plan, budget, clock, tracked)
    flow.redo = redo
    return flow.execute(command)


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
    """One command's run: the images walked in order, their tasks looked up just in time (``Lookups``), and
    one export per image still due, each cleared by a look-up younger than the clearance window."""

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
        self._workers = 1
        self._lookups = Lookups(self._tasks_by_image, plan, clock, now=self.now, workers=1)
        self._slots = Slots(None, scan=False)
        self._refused: dict[str, ImageNotReady] = {}
        self._tracker = tracked.tracker if tracked is not None else None  # tags the exports as they start
        self._claiming = self._tracker is not None and tracked is not None and tracked.cap is not None
        self._granted: list[str] = []  # claimed and granted, not yet handed out
        self._adopted: list[
            tuple[str, str]
        ] = []  # found exporting untracked (with its task): tagged from now on
        self._images: dict[str, Image] = {}  # the scan's picks, as DescribeImages gave them (start records)
        self.redo: frozenset[str] = frozenset()  # exported again after a succeeded export
        self._scanning = False
        self._truncated: ListingTruncated | None = None  # the scan's listing reached its page cap

    def execute(self, command: ExportingCommand) -> tuple[ImageOutcome, ...]:
        scan = self._scanning = isinstance(command, ScanCommand)
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
        self._lookups = Lookups(
            self._tasks_by_image, self.plan, self.clock, now=self.now, workers=self._workers
        )
        self._slots = Slots(self.tracked, scan=scan)
        self._export_all()
        self._tag_adopted()
        self._explain_refusals(self._settled)
        outcomes = tuple(self._settled[i] for i in order)
        if self._truncated is not None:
            reason = "the scan exported what it found in the pages it read; the images listed after them were not looked at"
            cut = ImageOutcome(
                image_id=None, status="failed", reason=reason, error=ErrorInfo.from_error(self._truncated)
            )
            outcomes = (*outcomes, cut)
        return outcomes

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
            images = list(images)
            for image in images:
                if (odd := tracking_of(image).odd) is not None:
                    # Edited by hand: neither exported blindly nor trusted. The tag says what to do.
                    _log.warning("scan.odd_state_tag", image_id=image.image_id, value=odd[:64])
        picked = pick_scan_images(
            images,
            now=self.now,
            lookback_hours=self.plan.lookback_hours,
            name_prefix=command.image_name_prefix,
            tags=command.tags,
            skip_tracked=self.tracked is not None,
        )
        if self._tracker is not None:
            self._images = {image.image_id: image for image in picked}
        return [image.image_id for image in picked]

    def _list_images(self, tags: Mapping[str, str] | None) -> Iterator[Image]:
        """Every private image, whatever its status (the scan keeps the available ones itself): the follow-up
        reads the same pages, and must find an image tagged ``exporting`` in any status it has meanwhile. A
        listing cut at the scan's page cap ends here: the scan goes on with what it read, and says so."""
        listing = self.api.describe_images(
            deadline=self.budget.send_by, visibility="private", tag_filters=tags
        )
        try:
            yield from listing
        except ListingTruncated as cut:
            _log.warning("scan.listing_truncated", message=cut.message)
            self._truncated = cut

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
                error = dataclasses.replace(info, message=f"{info.message} ({readiness.reason})")
                settled[image_id] = dataclasses.replace(settled[image_id], error=error)
            else:  # "wait", or "ready" (available since the refusal): a later run exports it
                settled[image_id] = _deferred(
                    image_id, readiness.reason or "the image is not ready yet", refusal
                )

    # -- clearing each image just before its export ---------------------------------------------------

    def _next_export(self) -> str | None:
        """The next image cleared for export, every image before it in the command's order settled or handed
        out; None when none is left. Workers share it under the lock, so none hands out an image twice. Under
        a cap with tracking, the images are cleared a round at a time and claimed across copies first
        (``Tracker.reserve``): only those granted are handed out."""
        with self._lock:
            if self._granted:
                return self._granted.pop(0)
            while self._next < len(self._order):
                cleared = self._clear_round()
                if not cleared:
                    continue
                if not self._claiming:
                    return cleared[0]
                self._granted = self._reserve(cleared)
                if self._granted:
                    return self._granted.pop(0)
        return None

    def _clear_round(self) -> list[str]:
        """Clear the next images in order: one (no claims), or as many as the cap and the workers allow."""
        size = 1
        if self._claiming:
            size = max(1, min(self._workers, self._slots.left or 1))
        cleared: list[str] = []
        while self._next < len(self._order) and len(cleared) < size:
            image_id = self._order[self._next]
            outcome = self._clear(image_id)
            self._next += 1
            if outcome is None:
                cleared.append(image_id)
            else:
                self._settled[image_id] = outcome
        return cleared

    def _reserve(self, cleared: list[str]) -> list[str]:
        """Claim the cleared images under the cap across copies; the ones not granted wait for a later run."""
        tracked = self.tracked
        if tracked is None or tracked.tracker is None or tracked.cap is None:  # pragma: no cover - _claiming
            return cleared
        granted = tracked.tracker.reserve(cleared, cap=tracked.cap, finished=tracked.finished)
        if len(granted) < len(cleared):
            self._slots.close()
        for image_id in cleared:
            if image_id not in granted:
                self._settled[image_id] = self._slots.yielded(image_id, tracked.cap)
        return [i for i in cleared if i in granted]

    def _clear(self, image_id: str) -> ImageOutcome | None:
        """``None``: cleared, send the export now. Else the image's outcome: skipped (a task found), held by
        the in-flight cap, deferred by the budget or by a look-up that took the whole window to answer, or the
        look-up's failure. The image's tasks are looked up, with the next images', when no look-up covers it
        yet or when its look-up would be too old by the time its export is sent (throttling, slow answers)."""
        lookups = self._lookups
        budget_low = self.clock.monotonic() > self.budget.start_by
        exporting = not self._slots.exhausted and not budget_low
        if not lookups.covers(image_id) or (exporting and lookups.stale(image_id)):
            size = lookups.chunk_size() if exporting else LOOKUP_BATCH
            lookups.look_up(self._order[self._next : self._next + size])
        failure = lookups.failure(image_id)
        if failure is not None:
            return _not_done(image_id, failure, self.budget)
        found = lookups.found(image_id)
        if found.task is not None and not self._export_again(image_id, found.task):
            return self._found_exporting(image_id, found.task, found.reason)
        if self._slots.exhausted:
            return self._slots.held(image_id)
        if budget_low:
            reason = "the time budget ran low before this export could start; a later run exports it"
            return ImageOutcome(image_id=image_id, status="deferred", reason=reason)
        if lookups.too_old(image_id):
            reason = "the task look-up answered too slowly to clear this export; a later run exports it"
            return ImageOutcome(image_id=image_id, status="deferred", reason=reason)
        self._slots.take()
        lookups.handed_out()
        return None

    def _export_again(self, image_id: str, task: Task) -> bool:
        """Whether a named image whose export Succeeded is exported again: ``Force``, or its tags say that
        export ended badly (``failed``: its object was missing), which does not count as done. Never while an
        export may be running (the dedupe found that first). The tags are read only here, so the usual event
        costs no request for them."""
        if task.status != SUCCEEDED or self._scanning:
            return False
        if image_id in self.redo:
            return True
        if self.tracked is None:
            return False
        try:
            images = list(self.api.describe_images(deadline=self.budget.send_by, image_ids=[image_id]))
        except ExporterError:
            return False  # the tags could not be read: the dedupe stands
        return any(i.image_id == image_id and tracking_of(i).state == "failed" for i in images)

    def _found_exporting(self, image_id: str, task: Task, reason: str) -> ImageOutcome:
        """Skipped: an export of the image is under way or done. A scan with tracking adopts it when it is not
        tracked (every image a tracked scan considers is untracked): it is tagged and followed up."""
        if self._tracker is not None and self.tracked is not None and self.tracked.adopt:
            self._adopted.append((image_id, task.task_id))
            return _skipped(image_id, task, f"{reason}; {_ADOPTED}")
        return _skipped(image_id, task, reason)

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
            self._track(image_id, outcome)

    def _track(self, image_id: str, outcome: ImageOutcome) -> None:
        """Tag a started export as it goes; under claims, release an image claimed but not exported (or adopt
        the export found holding it)."""
        if self._tracker is None:
            return
        if outcome.status == "started" or (self._claiming and outcome.status == "skipped"):
            self._tracker.started(image_id, task_id=outcome.task_id, image=self._images.get(image_id))
        elif self._claiming:
            self._tracker.release_start(image_id)

    def _tag_adopted(self) -> None:
        if self._tracker is not None:
            for image_id, task_id in self._adopted:
                self._tracker.started(image_id, task_id=task_id, image=self._images.get(image_id))

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
        """Send the image's ExportImage until it has an outcome. Every send goes out on a look-up at most the
        clearance window old (the one that cleared the image, or a fresh one after a lost answer or a
        clearance that ran out), and never two sends without a look-up between them."""
        # No lock: a handed-out image's look-up is never redone (the next look-ups cover the images after it).
        sends = _Sends(cleared_until=self._lookups.cleared_until(image_id))
        outcome = None
        while outcome is None:  # each pass but the last lost an answer or a clearance: both are bounded
            outcome = self._try_export(image_id, sends)
        return outcome

    def _try_export(self, image_id: str, sends: _Sends) -> ImageOutcome | None:
        """Send ExportImage once (its attempts go out only while ``sends`` clears them); ``None`` means
        nothing was started that a fresh look-up can find: send it again."""
        try:
            started = self.api.export_image(
                image_id,
                self.plan.bucket,
                self.plan.prefix,
                deadline=self.budget.send_by,
                cleared_until=sends.cleared_until,
            )
        except ClearanceExpired as expired:
            return self._after_clearance_expired(image_id, expired, sends)
        except UnknownOutcomeError as lost:
            return self._after_lost_answer(image_id, lost, sends)
        except ResourceLocked as locked:
            return self._after_locked(image_id, locked)
        except (ImageNotReady, ImageNotFound) as refused:
            return self._after_refused(image_id, refused)
        except ExporterError as error:
            return _not_done(image_id, error, self.budget)
        return self._started(image_id, started.task_id)

    def _after_refused(self, image_id: str, refused: ImageNotReady | ImageNotFound) -> ImageOutcome:
        """ExportImage refused the image: for its status (explained once every export is done) or its id."""
        info = ErrorInfo.from_error(refused)
        if isinstance(refused, ImageNotFound):
            where = f"no image {image_id} in region {self.plan.region}: check the id and VOLCENGINE_REGION"
            info = dataclasses.replace(info, message=where)
        else:
            with self._lock:
                self._refused[image_id] = refused
        return ImageOutcome(image_id=image_id, status="failed", error=info)

    def _export_tasks(self, image_id: str) -> list[Task]:
        tasks = self.api.describe_tasks(deadline=self.budget.send_by, resource_ids=[image_id])
        return [t for t in tasks if t.type == EXPORT_TASK_TYPE]

    def _look_again(self, image_id: str, sends: _Sends) -> Dedupe:
        """Look the image's tasks up again: what counts as an export under way, and the look-up clears the
        next send for the window from when it was asked for. Raises the look-up's ``ExporterError``."""
        asked = self.clock.monotonic()
        found = dedupe(self._export_tasks(image_id), now=self.now, window_hours=self.plan.dedupe_hours)
        sends.cleared_until = asked + self.plan.clearance_seconds
        return found

    def _after_lost_answer(
        self, image_id: str, lost: UnknownOutcomeError, sends: _Sends
    ) -> ImageOutcome | None:
        """ExportImage's answer was lost. Report the task it made, if any; ``None`` means send it again."""
        sends.lost, sends.lost_count = lost, sends.lost_count + 1
        try:
            found = self._look_again(image_id, sends)
        except ExporterError:
            return _not_done(image_id, lost, self.budget)
        if found.task is not None:
            return self._started(image_id, found.task.task_id, _LOST_BUT_FOUND)
        return _not_done(image_id, lost, self.budget) if sends.lost_count >= UNKNOWN_OUTCOME_TRIES else None

    def _after_clearance_expired(
        self, image_id: str, expired: ClearanceExpired, sends: _Sends
    ) -> ImageOutcome | None:
        """An ExportImage attempt was held past its clearance and not sent (what went out before it started
        nothing). When its turn comes, look the image's tasks up again: a task found is another copy's export
        (skipped), or, when an earlier send's answer was lost, maybe that send's (started, as after a lost
        answer); none found clears one more send, while the budget and ``CLEARANCE_TRIES`` allow it.
        ``None``: send it again."""
        sends.expired_count += 1
        _log.info(
            "export.clearance_expired",
            image_id=image_id,
            late_s=round(expired.late_by, 1),
            after=expired.cause.code if expired.cause is not None else None,
        )
        # The held attempt's turn (the API's Retry-After, the backoff, the rate limiter's pause): the look-up
        # waits for it, so that it goes out when the API takes requests again and clears the send from then.
        turn = sends.cleared_until + expired.late_by
        wait = turn - self.clock.monotonic()
        if wait > 0 and turn <= self.budget.start_by:
            self.clock.sleep(wait)
        try:
            found = self._look_again(image_id, sends)
        except ExporterError as error:
            return _not_done(image_id, sends.lost or error, self.budget)
        if found.task is not None and sends.lost is not None:
            return self._started(image_id, found.task.task_id, _LOST_BUT_FOUND)
        if found.task is not None:
            return _skipped(image_id, found.task, found.reason)
        if self.clock.monotonic() > self.budget.start_by:
            reason = "the time budget ran low before this export could be sent again; a later run exports it"
        elif sends.expired_count >= CLEARANCE_TRIES:
            reason = (
                f"throttling held this export past the clearance of its task look-up {CLEARANCE_TRIES} times; "
                "a later run exports it"
            )
        else:
            return None
        if sends.lost is not None:  # an earlier send may have started it: say so, as after a lost answer
            return _not_done(image_id, sends.lost, self.budget)
        return _deferred(image_id, reason, expired)

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


@dataclass(slots=True)
class _Sends:
    """One image's ExportImage sends so far: until when the latest look-up clears the next one (a
    ``Clock.monotonic()`` reading), the latest lost answer (an earlier send may have started the export), and
    how many answers were lost and clearances ran out."""

    cleared_until: float
    lost: UnknownOutcomeError | None = None
    lost_count: int = 0
    expired_count: int = 0


def _skipped(image_id: str, task: Task, reason: str) -> ImageOutcome:
    return ImageOutcome(image_id=image_id, status="skipped", task_id=task.task_id, reason=reason)


def _deferred(image_id: str, reason: str, cause: ExporterError) -> ImageOutcome:
    """Deferred because of an API answer: the result keeps that answer (code, message, request id)."""
    return ImageOutcome(
        image_id=image_id, status="deferred", reason=reason, error=ErrorInfo.from_error(cause)
    )
