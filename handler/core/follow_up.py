"""Following exports to their end (docs/contract.md, "Following exports to their end"): the flow.

An invocation with ``EXPORT_TRACKING=tags`` runs in three steps, all against protocols (no I/O here):

1. :func:`run_tracked`: a timer first follows up the images tagged ``exporting`` (their latest ExportImage
   task, then a HeadObject where the task Succeeded or is no longer listed), claims the finished ones for
   reporting (``handler.core.claims``: two copies at once report each once) and turns each it holds into an
   ``exported`` or ``export_failed`` outcome; then the command runs under the in-flight cap, and every
   export is tagged ``exporting`` with its destination as it starts (``handler.core.tracker``: batches of
   up to 50, sent within seconds); a scan also adopts an untracked image it finds exporting or exported.
2. The caller logs and notifies the outcomes.
3. :meth:`TrackedRun.settle`: the reported exports' state tags change (``exported`` / ``failed``), where
   the image still carries this invocation's claim. Only now: a crash before this step reports them again
   next time rather than never.

The pure decisions (tag values and their transitions, the latest task, the outcome of a task and an object)
are ``handler.core.tracking``'s; which images are looked at, ``handler.core.selection``'s.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC
from typing import TYPE_CHECKING

import structlog

from handler.clock import SYSTEM_CLOCK, Clock
from handler.core import export_flow
from handler.core.apis import EcsApi, ObjectStore, TrackingApi
from handler.core.budget import Budget
from handler.core.checks import STRUCTURE, ExportCheck, Stopped, Verify
from handler.core.claims import (
    DEFAULT_SETTLE_SECONDS,
    REPORT_LIMIT,
    TASK_CLOCK_SKEW_SECONDS,
    Claim,
    claim_of,
    millis,
)
from handler.core.fan_out import fan_out
from handler.core.follow_up_rules import FollowUp, decide_follow_up, needs_object
from handler.core.in_flight import Tracked
from handler.core.plan import ExportPlan
from handler.core.selection import pick_exporting
from handler.core.start_records import StartRecorder
from handler.core.tracker import ReportClaim, Retag, Tracker, list_exporting
from handler.core.tracking import (
    DEST_KEY,
    MISSING_CONFIRM_SECONDS,
    Destination,
    latest_export_tasks,
    sighting_of,
    tracking_of,
)
from handler.errors import (
    ERROR_CODES,
    AccessDenied,
    AuthenticationFailed,
    BudgetExhausted,
    ExporterError,
    ListingTruncated,
    TosAccessDenied,
    fix_for,
)
from handler.models.api import ExportStarted, Image, Task
from handler.models.commands import ExportingCommand, forced, is_timer
from handler.models.events import ScanCommand
from handler.models.results import NEEDS_ATTENTION, ErrorInfo, ImageOutcome

__all__ = ["FollowUpReport", "TrackedRun", "follow_up", "run_tracked"]

if TYPE_CHECKING:
    from handler.core.deleted_images import DeletedImages

_log = structlog.get_logger("handler.tracking")


@dataclass(frozen=True, slots=True)
class FollowUpReport:
    """What the follow-up found: the finished exports to report, the retag of each once they are reported,
    how many exports are still in flight (None: not counted, the follow-up failed), the images it found
    finished (still tagged ``exporting`` until their retag), every image tagged ``exporting`` (None: the
    listing failed), and the exports whose image was deleted (``handler.core.deleted_images``)."""

    outcomes: tuple[ImageOutcome, ...] = ()
    retags: tuple[Retag, ...] = ()
    in_flight: int | None = 0
    listing: EcsApi | None = None  # the scan's listing, already read by the follow-up
    finished: frozenset[str] = frozenset()
    exporting: frozenset[str] | None = None
    deleted: DeletedImages | None = None


@dataclass(frozen=True, slots=True)
class TrackedRun:
    """One invocation's outcomes (the follow-up's first) and the retags its ``tracker`` makes after they are
    logged and notified (:meth:`Tracker.retag`), then the start records' settle."""

    outcomes: tuple[ImageOutcome, ...]
    tracker: Tracker
    retags: tuple[Retag, ...] = ()
    # A whole scan's listing of every private image, whole (not cut), when this run read one: later parts of
    # the invocation (the restores' follow-up, the drill's count) find what they need in it at no cost.
    listed: tuple[Image, ...] | None = None
    deleted: DeletedImages | None = None

    def settle(self, *, deadline: float) -> None:
        """Retag the reported exports (only now: a finished export is reported again rather than never)."""
        self.tracker.retag(self.retags, deadline=deadline)
        if self.deleted is not None:
            self.deleted.settle(deadline=deadline)


def run_tracked(
    command: ExportingCommand,
    *,
    api: TrackingApi,
    store: ObjectStore,
    plan: ExportPlan,
    budget: Budget,
    cap: int | None,
    holder: str,
    settle: float = DEFAULT_SETTLE_SECONDS,
    missing_confirm: float = MISSING_CONFIRM_SECONDS,
    clock: Clock = SYSTEM_CLOCK,
) -> TrackedRun:
    """Follow up (timers), run the command under the cap, tag the exports as they start; see the module's
    steps. ``holder`` names this invocation in its claims; ``settle`` is the wait before a claim is read
    back; ``missing_confirm`` how long after a first "no object" the object may be called missing (without
    tracking, the entry runs the export flow alone)."""
    redo = forced(command)
    dest = Destination(plan.bucket, plan.prefix)
    records = StartRecorder(api, store, dest, holder=holder, clock=clock, deadline=budget.send_by)
    tracker = Tracker(
        api,
        dest,
        holder=holder,
        clock=clock,
        settle=settle,
        ends_at=budget.report_by,
        deadline=budget.send_by,
        records=records,
    )
    checks_by = budget.follow_up_by(clock.monotonic())
    report = _before_exporting(
        command,
        api,
        store,
        tracker,
        cap=cap,
        deadline=budget.send_by,
        checks_by=checks_by,
        workers=plan.concurrency,
        missing_confirm=missing_confirm,
        verify=Verify(plan.verify, plan.region),
    )
    tracked = Tracked(
        cap=cap,
        in_flight=report.in_flight,
        tracker=tracker,
        finished=report.finished,
        adopt=isinstance(command, ScanCommand),
    )
    outcomes = export_flow.run_command(
        command,
        api=report.listing or api,
        plan=plan,
        budget=budget,
        clock=clock,
        tracked=tracked,
        redo=redo,
    )
    tracker.flush()
    if tracker.untracked:
        outcomes = tuple(
            _untracked(o, tracker.untracked[o.image_id]) if o.image_id in tracker.untracked else o
            for o in outcomes
        )
    listed = report.listing.whole() if isinstance(report.listing, _OneListing) else None
    deleted = _deleted_outcomes(report.deleted) if report.deleted is not None else ()
    return TrackedRun(
        outcomes=report.outcomes + deleted + outcomes,
        retags=report.retags,
        tracker=tracker,
        listed=listed,
        deleted=report.deleted,
    )


def _before_exporting(
    command: ExportingCommand,
    api: TrackingApi,
    store: ObjectStore,
    tracker: Tracker,
    *,
    cap: int | None,
    deadline: float,
    checks_by: float,
    workers: int,
    missing_confirm: float,
    verify: Verify,
) -> FollowUpReport:
    """What tracking finds before the command runs: a timer follows up the exports in flight; an event under a
    cap counts them. A whole scan without a cap finds the exports in flight in its own listing (every private
    image, whatever its status while it is exported), which the scan then reads."""
    if is_timer(command):
        whole_scan = isinstance(command, ScanCommand) and not command.tags and cap is None
        listing = _OneListing(api) if whole_scan else None
        report = follow_up(
            api,
            store,
            tracker,
            deadline=deadline,
            listing=listing,
            checks_by=checks_by,
            workers=workers,
            missing_confirm=missing_confirm,
            verify=verify,
        )
        if report.exporting is not None:  # the exports whose image is gone, found by their start records
            from handler.core.deleted_images import follow_up_deleted  # noqa: PLC0415 - timers only

            deleted = follow_up_deleted(
                api,
                store,
                tracker,
                exporting=report.exporting,
                reported=frozenset(r.image_id for r in report.retags),
                deadline=min(deadline, checks_by),
                workers=workers,
                verify=verify,
                missing_confirm=missing_confirm,
            )
            report = replace(report, deleted=deleted)
        return replace(report, listing=listing)
    if cap is not None:
        return FollowUpReport(in_flight=_count_exporting(api, deadline=deadline))
    return FollowUpReport()


def follow_up(
    api: EcsApi,
    store: ObjectStore,
    tracker: Tracker,
    *,
    deadline: float,
    listing: EcsApi | None = None,
    checks_by: float | None = None,
    workers: int = 1,
    missing_confirm: float = MISSING_CONFIRM_SECONDS,
    verify: Verify = STRUCTURE,
) -> FollowUpReport:
    """The outcome of every export tagged ``exporting`` that this invocation holds the claim to report.
    ``listing``: find those images in the scan's own listing of private images (no request of their own)
    instead of a tag search. The object checks (HeadObject, ``workers`` at a time) are done by ``checks_by``
    (default ``deadline``): the rest of the budget is the new exports'. An export whose follow-up a failure
    stopped (the listing, DescribeTasks, TOS, its claim, the checks' share of the budget) is ``deferred``
    with the error: unchecked, never silently left for the next run."""
    found = _in_flight(api, deadline=deadline, listing=listing, fallback=tracker.dest)
    if isinstance(found, FollowUpReport):
        return found
    exporting, latest = found
    now = tracker.clock.now()
    in_flight = 0
    abandoned: list[str] = []
    finished: list[tuple[ReportClaim, FollowUp]] = []
    outcomes: list[ImageOutcome] = []
    due: list[tuple[Image, Destination, Task | None]] = []
    unseen: list[str] = []
    for image, dest in exporting:
        task = latest.get(image.image_id)
        claim = claim_of(image)
        if claim is not None and claim.fresh(now) and claim.holder != tracker.holder:
            in_flight += 1  # another copy is starting it, or reporting its end
            continue
        if claim is not None and claim.kind == "start" and not _exported_since(task, claim):
            abandoned.append(image.image_id)  # claimed to start by a copy that ended before its export
            continue
        due.append((image, dest, task))
    checks = _checks(
        store,
        [(image, dest, task) for image, dest, task in due if needs_object(task)],
        verify,
        deadline=min(deadline, checks_by or deadline),
        workers=workers,
        clock=tracker.clock,
    )
    for image, dest, task in due:
        checked = checks.get(image.image_id)
        task_id = task.task_id if task is not None else None
        if isinstance(checked, Stopped):
            in_flight += 1  # TOS did not answer in time, or refused: unchecked, the next run looks again
            outcomes.append(_unchecked(image.image_id, task_id, checked.error, checked.step))
            continue
        decided = decide_follow_up(
            image.image_id,
            dest,
            task,
            checked,
            now=now,
            sighted=sighting_of(image, task),
            confirm=missing_confirm,
        )
        if decided.sighted:
            unseen.append(image.image_id)
        if decided.outcome is None or decided.next_state is None:
            in_flight += 1  # still running, or not checked yet (a 403, a first 404): deferred
            if decided.outcome is not None:
                outcomes.append(decided.outcome)
            continue
        if tracking_of(image).dest is None:
            decided = replace(decided, outcome=_noted(decided.outcome, _ODD_DEST.format(_dest_value(image))))
        finished.append((ReportClaim(image.image_id, dest, task_id), decided))
    exporting_ids = frozenset(image.image_id for image, _ in exporting)
    # Decided: claiming and reporting need neither the tasks nor the checks (a follow-up holds tens of thousands).
    del found, exporting, latest, due, checks
    tracker.note_unseen(unseen)
    tracker.release(abandoned)
    report = _report(tracker, finished, outcomes, in_flight)
    return replace(report, exporting=exporting_ids)


def _in_flight(
    api: EcsApi, *, deadline: float, listing: EcsApi | None, fallback: Destination
) -> tuple[list[tuple[Image, Destination]], dict[str, Task]] | FollowUpReport:
    """The images tagged ``exporting`` and each one's latest export task; or, when either look-up failed, the report that
    says every export in flight is unchecked."""
    try:
        exporting = _exporting_images(api, deadline=deadline, listing=listing, fallback=fallback)
    except ExporterError as error:
        _log.warning("follow_up.failed", error=error.code, message=error.message)
        unchecked = _unchecked(None, None, error, "listing the exports in flight")
        return FollowUpReport(outcomes=(unchecked,), in_flight=None)
    ids = [image.image_id for image, _ in exporting]
    try:
        tasks = latest_export_tasks(api.describe_tasks(deadline=deadline, resource_ids=ids)) if ids else {}
    except ExporterError as error:
        _log.warning("follow_up.failed", error=error.code, message=error.message)
        each = tuple(_unchecked(i, None, error, "looking up its export task") for i in ids)
        return FollowUpReport(outcomes=each, in_flight=None)
    return exporting, tasks  # only each image's latest task is kept, not every page


def _report(
    tracker: Tracker,
    finished: list[tuple[ReportClaim, FollowUp]],
    outcomes: list[ImageOutcome],
    in_flight: int,
) -> FollowUpReport:
    """Claim the finished exports, then the outcomes of those held, each with its retag; an export whose
    claim a transient failure stopped is ``deferred``."""
    held, unclaimed = tracker.claim_reports([want for want, _ in finished])
    retags: list[Retag] = []
    for want, decided in finished:
        if want.image_id in unclaimed:
            stopped = unclaimed[want.image_id]
            outcomes.append(
                _unchecked(want.image_id, want.task_id, stopped, "claiming its end for reporting")
            )
            continue
        if want.image_id not in held or decided.outcome is None or decided.next_state is None:
            continue
        claim = held[want.image_id]
        outcome = _counted(decided.outcome, claim) if claim is not None else decided.outcome
        if outcome is not None:
            outcomes.append(outcome)
        retags.append(Retag(want.image_id, decided.next_state, claim))
    done = frozenset(want.image_id for want, _ in finished)
    return FollowUpReport(tuple(outcomes), tuple(retags), in_flight, finished=done)


def _deleted_outcomes(deleted: DeletedImages) -> tuple[ImageOutcome, ...]:
    """The outcomes of the exports whose image was deleted: as counted by their claims, and deferred where a
    failure stopped them."""
    reported = (
        _counted(r.outcome, r.claim, _START_RECORD) if r.claim is not None else r.outcome
        for r in deleted.reports
    )
    stopped = (_unchecked(s.image_id, s.task_id, s.error, s.step) for s in deleted.stopped)
    return tuple(o for o in reported if o is not None) + tuple(stopped)


def _unchecked(image_id: str | None, task_id: str | None, error: ExporterError, step: str) -> ImageOutcome:
    """``deferred``: the follow-up of an export (``image_id`` None: of every export in flight) stopped at
    ``step`` on ``error``; the export itself may well be fine."""
    what = "the exports in flight" if image_id is None else "this export"
    fix = _fix_for(error)
    reason = (
        f"{what} could not be checked ({step} failed: {error.code}); the export itself may well be fine; "
        f"{fix}, and a later timer run checks again"
    )
    return ImageOutcome(
        image_id=image_id,
        status="deferred",
        task_id=task_id,
        reason=reason,
        error=ErrorInfo.from_error(error),
    )


def _fix_for(error: ExporterError) -> str:
    """What to do about an error that stopped a follow-up, from its class and the error table."""
    if isinstance(error, BudgetExhausted):
        return (
            "the follow-up's share of the time budget ran out first (TOS answered slowly: check "
            "TOS_ENDPOINT; new exports kept their time)"
        )
    known = ERROR_CODES.get(error.code)
    if known is not None and known.source == "transport":
        return "check TOS_ENDPOINT (or VOLCENGINE_ENDPOINT) and that the function can reach it"
    if isinstance(error, TosAccessDenied):
        return fix_for(error.code) or "grant the function's identity access to the bucket"
    if isinstance(error, AccessDenied | AuthenticationFailed):
        return "grant the function's identity read access to the bucket and ecs:TagResources"
    if error.retryable:
        return "nothing to fix if it passes (throttling, a server error or a timeout)"
    return fix_for(error.code) or f"look up {error.code} in docs/troubleshooting.md"


def _exported_since(task: Task | None, claim: Claim) -> bool:
    """Whether the export task found can be the one a start claim led to (made at most
    ``TASK_CLOCK_SKEW_SECONDS`` before the claim's time, which is the claimer's clock)."""
    if task is None:
        return False
    if task.created_at is None:
        return True
    created = task.created_at if task.created_at.tzinfo else task.created_at.replace(tzinfo=UTC)
    return millis(created) >= claim.since - int(TASK_CLOCK_SKEW_SECONDS * 1000)


_ODD_DEST = (
    "its image-exporter:dest tag was missing or unreadable ({}): it was checked at this function's own "
    "destination"
)


def _dest_value(image: Image) -> str:
    return repr(dict(image.tags).get(DEST_KEY, "")[:64])


def _noted(outcome: ImageOutcome, note: str) -> ImageOutcome:
    reason = f"{note}; {outcome.reason}" if outcome.reason else note
    return dataclasses.replace(outcome, reason=reason)


_STATE_TAG = ("its state tag", "tracking.retag_failed", "the tag changes")
_START_RECORD = ("its start record", "deleted_images.settle_failed", "the record is removed")


def _counted(
    outcome: ImageOutcome, claim: Claim, settled: tuple[str, str, str] = _STATE_TAG
) -> ImageOutcome | None:
    """The outcome as reported for the ``claim.reports``-th time: as is the first time; noted as a re-report
    up to ``REPORT_LIMIT``; once more as needing attention; then not at all (logged). ``settled``: what could
    not be changed after the earlier reports, the log line that says so, and what ends the re-reports."""
    what, line, until = settled
    if claim.reports <= 1:
        return outcome
    if claim.reports <= REPORT_LIMIT:
        note = (
            f"reported again ({claim.reports} of {REPORT_LIMIT}): an earlier run could not change {what} "
            f"(the log has {line})"
        )
    elif claim.reports == REPORT_LIMIT + 1:
        note = (
            f"{NEEDS_ATTENTION}: reported {REPORT_LIMIT} times, but {what} could not be changed "
            f"(the log has {line}); it is not reported again until {until}"
        )
    else:
        _log.warning("follow_up.not_reported_again", image_id=outcome.image_id, reports=claim.reports)
        return None
    return _noted(outcome, note)


def _untracked(outcome: ImageOutcome, error: ExporterError) -> ImageOutcome:
    """The outcome of an export whose image could not be tagged, with what to do about it."""
    code = error.code
    if isinstance(error, AccessDenied | AuthenticationFailed):
        note = (
            f"not tracked: tagging the image was refused ({code}); grant ecs:TagResources, "
            "or no later run reports how this export ends"
        )
    elif "TagsPerResource" in code or code.startswith(("QuotaExceeded", "LimitExceeded")):
        note = (
            f"not tracked: the image carries too many tags to take the tracking tags ({code}; at most 50 a "
            "resource); remove some, and a later scan tracks the export"
        )
    elif error.retryable:
        note = (
            f"not tracked yet: tagging the image failed ({code}); a later scan finds the export and tracks it"
        )
    else:
        note = f"not tracked: tagging the image failed ({code}: {error.message[:200]})"
    reason = f"{outcome.reason}; {note}" if outcome.reason else note
    return dataclasses.replace(outcome, reason=reason)


def _checks(
    store: ObjectStore,
    due: list[tuple[Image, Destination, Task | None]],
    verify: Verify,
    *,
    deadline: float,
    workers: int,
    clock: Clock,
) -> dict[str, ExportCheck]:
    """Each finished export checked (``handler.core.verification``), ``workers`` exports at a time (the TOS
    client's limiter paces their requests), all done by ``deadline``: a check that has no time left is
    stopped by ``BudgetExhausted``, never a wait past it."""
    if not due:
        return {}
    from handler.core.verification import check_export, shared_listing  # noqa: PLC0415 - follow-ups only

    # One listing a destination for all its checks (at most as many pages as it has exports to check).
    per_dest = Counter(dest for _, dest, _ in due)
    listings = {
        dest: shared_listing(store, dest.bucket, dest.prefix, count, deadline=deadline)
        for dest, count in per_dest.items()
        if verify.level != "off"
    }

    def check(image: Image, dest: Destination, task: Task | None) -> ExportCheck:
        if clock.monotonic() >= deadline:
            ran_out = BudgetExhausted("the follow-up's share of the time budget ran out before this check")
            return Stopped(f"checking tos://{dest.bucket}/{dest.object_key(image.image_id)}", ran_out)
        checked = check_export(
            store,
            image,
            task,
            bucket=dest.bucket,
            prefix=dest.prefix,
            region=verify.region,
            level=verify.level,
            deadline=deadline,
            now=clock.now,
            listed=listings.get(dest),
        )
        if isinstance(checked, Stopped):
            error = checked.error
            _log.warning(
                "follow_up.check_failed", image_id=image.image_id, error=error.code, step=checked.step
            )
        return checked

    checked = fan_out(lambda one: check(*one), due, workers=workers, name="check")
    return {image.image_id: found for (image, _, _), found in zip(due, checked, strict=True)}


def _exporting_images(
    api: EcsApi, *, deadline: float, listing: EcsApi | None, fallback: Destination | None = None
) -> list[tuple[Image, Destination]]:
    """The images tagged ``exporting``, each with the destination its tag names. One whose destination tag
    is missing or unreadable (edited by hand) is logged and followed up at ``fallback``, the function's own
    destination, so it is neither left in flight forever nor left out of the count; its outcome says so."""
    found: list[Image] | None = None
    if listing is not None:
        try:
            found = list(listing.describe_images(deadline=deadline, visibility="private"))
        except ListingTruncated:
            found = None  # too many images to list them all: the tag search finds those exporting
    if found is None:
        found = list_exporting(api, deadline=deadline)
    exporting, no_destination = pick_exporting(found)
    odd = set(no_destination)
    for image in found:
        if image.image_id in odd:
            value = dict(image.tags).get(DEST_KEY, "")
            _log.warning("follow_up.no_destination", image_id=image.image_id, value=value[:64])
            if fallback is not None:
                exporting.append((image, fallback))
    return exporting


def _count_exporting(api: EcsApi, *, deadline: float) -> int | None:
    try:
        everywhere = Destination("-", "-")  # every image tagged exporting counts, whatever its dest tag
        return len(_exporting_images(api, deadline=deadline, listing=None, fallback=everywhere))
    except ExporterError as error:
        _log.warning("tracking.count_failed", error=error.code, message=error.message)
        return None


class _OneListing:
    """The ECS API with the scan's listing (every private image, no status or tag filter) asked for once: the
    follow-up and the scan read the same pages, so following up costs a scan no request of its own."""

    def __init__(self, api: EcsApi) -> None:
        self._api = api
        self._listing: list[Image] | None = None
        self._cut: ListingTruncated | None = None

    def export_image(
        self, image_id: str, bucket: str, prefix: str, *, deadline: float, cleared_until: float | None = None
    ) -> ExportStarted:
        return self._api.export_image(
            image_id, bucket, prefix, deadline=deadline, cleared_until=cleared_until
        )

    def describe_images(
        self,
        *,
        deadline: float,
        image_ids: Iterable[str] = (),
        visibility: str | None = None,
        status: str | None = None,
        tag_filters: Mapping[str, str] | None = None,
    ) -> Iterator[Image]:
        ids = list(image_ids)
        whole = not ids and not tag_filters and (visibility, status) == ("private", None)
        if not whole:
            return self._api.describe_images(
                deadline=deadline,
                image_ids=ids,
                visibility=visibility,
                status=status,
                tag_filters=tag_filters,
            )
        if self._listing is None:
            self._listing = []
            try:
                for image in self._api.describe_images(
                    deadline=deadline, visibility=visibility, status=status
                ):
                    self._listing.append(image)
            except ListingTruncated as cut:
                self._cut = cut  # the pages read are kept; each reader is told the listing was cut
        return self._replay(self._listing)

    def whole(self) -> tuple[Image, ...] | None:
        """Every private image, when the listing was read to its end (None: not read, or cut)."""
        if self._listing is None or self._cut is not None:
            return None
        return tuple(self._listing)

    def _replay(self, images: list[Image]) -> Iterator[Image]:
        yield from images
        if self._cut is not None:
            raise self._cut

    def describe_tasks(
        self, *, deadline: float, task_ids: Iterable[str] = (), resource_ids: Iterable[str] = ()
    ) -> Iterator[Task]:
        return self._api.describe_tasks(deadline=deadline, task_ids=task_ids, resource_ids=resource_ids)
