"""Following exports to their end (docs/contract.md, "Following exports to their end"): the flow.

An invocation with ``EXPORT_TRACKING=tags`` runs in three steps, all against protocols (no I/O here):

1. :func:`run_tracked`: a timer first follows up the images tagged ``exporting`` (their latest ExportImage
   task, then a HeadObject where the task Succeeded or is no longer listed) and turns each finished export
   into an ``exported`` or ``export_failed`` outcome; then the command runs under the in-flight cap; then
   every export started is tagged ``exporting`` with its destination (one TagResources request per 50
   images with the same tags).
2. The caller logs and notifies the outcomes.
3. :func:`settle`: the finished exports' state tags change (``exported`` / ``failed``). Only now: a crash
   before this step reports them again next time rather than never.

The pure decisions (tag values and their transitions, the latest task, the outcome of a task and an object)
are ``handler.core.tracking``'s; which images are looked at, ``handler.core.selection``'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

import structlog

from handler.clock import SYSTEM_CLOCK, Clock
from handler.core import export_flow
from handler.core.apis import EcsApi, ObjectStore, TrackingApi
from handler.core.budget import Budget
from handler.core.export_flow import TAG_SCAN_CAP
from handler.core.in_flight import Tracked
from handler.core.plan import ExportPlan
from handler.core.selection import pick_exporting
from handler.core.tracking import (
    STATE_KEY,
    TRANSITIONS,
    Destination,
    TrackingState,
    decide_follow_up,
    latest_export_task,
    needs_object,
    state_tags,
)
from handler.errors import ExporterError
from handler.models.api import ExportStarted, Image, Task
from handler.models.events import Command, ScanCommand
from handler.models.objects import HeadResult
from handler.models.results import ImageOutcome

__all__ = [
    "FollowUpReport",
    "TrackedRun",
    "follow_up",
    "group_by_tags",
    "run_tracked",
    "settle",
    "tag_started",
]

_log = structlog.get_logger("handler.tracking")

EXPORTING_FILTER = {STATE_KEY: "exporting"}


@dataclass(frozen=True, slots=True)
class FollowUpReport:
    """What the follow-up found: the finished exports to report, the state each image is tagged with once
    they are reported, and how many exports are still in flight (None: not counted, the follow-up failed)."""

    outcomes: tuple[ImageOutcome, ...] = ()
    next_states: tuple[tuple[str, TrackingState], ...] = ()
    in_flight: int | None = 0
    listing: EcsApi | None = None  # the scan's listing, already read by the follow-up


@dataclass(frozen=True, slots=True)
class TrackedRun:
    """One invocation's outcomes (the follow-up's first) and the tag changes :func:`settle` makes after they
    are logged and notified."""

    outcomes: tuple[ImageOutcome, ...]
    next_states: tuple[tuple[str, TrackingState], ...] = ()


def is_timer(command: Command) -> bool:
    """A timer invocation: a scan (only timers scan, also through the HTTP trigger), or a timer naming images."""
    return isinstance(command, ScanCommand) or command.trigger == "timer"


def run_tracked(
    command: Command,
    *,
    api: TrackingApi,
    store: ObjectStore | None,
    plan: ExportPlan,
    budget: Budget,
    cap: int | None,
    clock: Clock = SYSTEM_CLOCK,
) -> TrackedRun:
    """Follow up (timers), run the command under the cap, tag the exports started; see the module's steps.
    ``store`` None (``EXPORT_TRACKING=off``): the command alone, no tags read or written, no cap."""
    report = _before_exporting(command, api, store, cap=cap, deadline=budget.send_by)
    shared = report.listing or api
    tracked = Tracked(cap=cap, in_flight=report.in_flight) if store is not None else None
    outcomes = export_flow.run_command(
        command, api=shared, plan=plan, budget=budget, clock=clock, tracked=tracked
    )
    if store is not None:
        outcomes = tag_started(api, outcomes, Destination(plan.bucket, plan.prefix), deadline=budget.send_by)
    return TrackedRun(outcomes=report.outcomes + outcomes, next_states=report.next_states)


def _before_exporting(
    command: Command, api: TrackingApi, store: ObjectStore | None, *, cap: int | None, deadline: float
) -> FollowUpReport:
    """What tracking finds before the command runs: a timer follows up the exports in flight; an event under a
    cap counts them; nothing without tracking. A whole scan without a cap finds the exports in flight in its
    own listing (every private image, whatever its status while it is exported), which the scan then reads."""
    if store is None:
        return FollowUpReport()
    if is_timer(command):
        whole_scan = isinstance(command, ScanCommand) and not command.tags and cap is None
        listing = _OneListing(api) if whole_scan else None
        report = follow_up(api, store, deadline=deadline, listing=listing)
        return replace(report, listing=listing)
    if cap is not None:
        return FollowUpReport(in_flight=_count_exporting(api, deadline=deadline))
    return FollowUpReport()


def follow_up(
    api: EcsApi, store: ObjectStore, *, deadline: float, listing: EcsApi | None = None
) -> FollowUpReport:
    """The outcome of every export tagged ``exporting``. ``listing``: find those images in the scan's own
    listing of private available images (no request of their own) instead of a tag search. A failed look-up
    is logged and leaves everything for the next run."""
    try:
        exporting = _exporting_images(api, deadline=deadline, listing=listing)
        ids = [image.image_id for image, _ in exporting]
        tasks: list[Task] = list(api.describe_tasks(deadline=deadline, resource_ids=ids)) if ids else []
    except ExporterError as error:
        _log.warning("follow_up.failed", error=error.code, message=error.message)
        return FollowUpReport(in_flight=None)
    outcomes: list[ImageOutcome] = []
    next_states: list[tuple[str, TrackingState]] = []
    in_flight = 0
    for image, dest in exporting:
        task = latest_export_task(image.image_id, tasks)
        head = _head(store, image.image_id, dest, deadline=deadline) if needs_object(task) else None
        if needs_object(task) and head is None:
            in_flight += 1  # TOS did not answer: the next run looks again
            continue
        decided = decide_follow_up(image.image_id, dest, task, head)
        if decided.outcome is None or decided.next_state is None:
            in_flight += 1
            continue
        outcomes.append(decided.outcome)
        next_states.append((image.image_id, decided.next_state))
    return FollowUpReport(tuple(outcomes), tuple(next_states), in_flight)


def tag_started(
    api: TrackingApi, outcomes: tuple[ImageOutcome, ...], dest: Destination, *, deadline: float
) -> tuple[ImageOutcome, ...]:
    """Tag every image whose export started ``exporting`` with ``dest``, in as few requests as the tags
    allow; an image left untagged keeps its ``started`` result, whose reason (and a log line) says that a
    later run will not report the export's end."""
    started = [o.image_id for o in outcomes if o.status == "started" and o.image_id]
    if not started:
        return outcomes
    exporting = TRANSITIONS[None, "started"]
    untracked: dict[str, str] = {}
    for tags, ids in group_by_tags((i, state_tags(exporting, dest)) for i in started):
        try:
            report = api.tag_images(ids, tags, deadline=deadline)
        except ExporterError as error:
            untracked.update(dict.fromkeys(ids, error.code))
            continue
        for failure in report.failures:
            untracked.update(dict.fromkeys(failure.image_ids, failure.error.code))
    if not untracked:
        return outcomes
    _log.warning("tracking.untracked", image_ids=sorted(untracked), errors=sorted(set(untracked.values())))
    return tuple(_untracked(o, untracked[o.image_id]) if o.image_id in untracked else o for o in outcomes)


def settle(api: TrackingApi, next_states: Iterable[tuple[str, TrackingState]], *, deadline: float) -> None:
    """Tag each finished export with its new state, after its outcome was logged and notified. An image
    left as it was is reported again by the next run (logged here as ``tracking.retag_failed``)."""
    for tags, ids in group_by_tags((i, state_tags(state)) for i, state in next_states):
        try:
            report = api.tag_images(ids, tags, deadline=deadline)
        except ExporterError as error:
            _log.warning("tracking.retag_failed", image_ids=list(ids), error=error.code)
            continue
        for failure in report.failures:
            _log.warning("tracking.retag_failed", image_ids=list(failure.image_ids), error=failure.error.code)
        if report.done:
            _log.info("tracking.retagged", image_ids=list(report.done), state=tags[STATE_KEY])


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


def _untracked(outcome: ImageOutcome, code: str) -> ImageOutcome:
    note = (
        f"not tracked: tagging the image failed ({code}); grant ecs:TagResources, "
        "or no later run reports how this export ends"
    )
    reason = f"{outcome.reason}; {note}" if outcome.reason else note
    return outcome.model_copy(update={"reason": reason})


def _head(store: ObjectStore, image_id: str, dest: Destination, *, deadline: float) -> HeadResult | None:
    try:
        return store.head_object(dest.bucket, dest.object_key(image_id), deadline=deadline)
    except ExporterError as error:
        _log.warning("follow_up.head_failed", image_id=image_id, error=error.code, message=error.message)
        return None


def _exporting_images(
    api: EcsApi, *, deadline: float, listing: EcsApi | None
) -> list[tuple[Image, Destination]]:
    """The images tagged ``exporting`` with a readable destination (one without is logged and left)."""
    if listing is not None:
        found = list(listing.describe_images(deadline=deadline, visibility="private"))
    else:
        found = list(api.describe_images(deadline=deadline, tag_filters=EXPORTING_FILTER))
        if len(found) >= TAG_SCAN_CAP:  # a tag search lists at most 1,000 images: list them all instead
            found = list(api.describe_images(deadline=deadline))
    exporting, no_destination = pick_exporting(found)
    for image_id in no_destination:
        _log.warning("follow_up.no_destination", image_id=image_id)
    return exporting


def _count_exporting(api: EcsApi, *, deadline: float) -> int | None:
    try:
        return len(_exporting_images(api, deadline=deadline, listing=None))
    except ExporterError as error:
        _log.warning("tracking.count_failed", error=error.code, message=error.message)
        return None


class _OneListing:
    """The ECS API with the scan's listing (every private image, no status or tag filter) asked for once: the
    follow-up and the scan read the same pages, so following up costs a scan no request of its own."""

    def __init__(self, api: EcsApi) -> None:
        self._api = api
        self._listing: list[Image] | None = None

    def export_image(self, image_id: str, bucket: str, prefix: str, *, deadline: float) -> ExportStarted:
        return self._api.export_image(image_id, bucket, prefix, deadline=deadline)

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
            self._listing = list(
                self._api.describe_images(deadline=deadline, visibility=visibility, status=status)
            )
        return iter(self._listing)

    def describe_tasks(
        self, *, deadline: float, task_ids: Iterable[str] = (), resource_ids: Iterable[str] = ()
    ) -> Iterator[Task]:
        return self._api.describe_tasks(deadline=deadline, task_ids=task_ids, resource_ids=resource_ids)
