"""The tracking flow against an in-memory ECS and TOS: the follow-up, the tags on started exports, the scan
that respects them, the in-flight cap, and the retag after the outcomes are reported."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from structlog.testing import capture_logs

from handler.core.budget import Budget
from handler.core.follow_up import follow_up, run_tracked, settle, tag_started
from handler.core.plan import ExportPlan
from handler.core.tracking import DEST_KEY, STATE_KEY, Destination
from handler.errors import AccessDenied, ApiError, ServerError, TerminalApiError, Throttled
from handler.models.api import ExportStarted, Image, Task
from handler.models.events import Command, ExportCommand, ScanCommand
from handler.models.objects import HeadResult, ObjectFound, ObjectMissing
from handler.models.results import ImageOutcome
from handler.models.tagging import TaggingFailure, TaggingReport
from tests.support.fakes import FakeClock

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PLAN = ExportPlan(
    bucket="b-1", prefix="nightly", region="cn-beijing", concurrency=1, dedupe_hours=None, lookback_hours=25
)
WIDE = Budget(send_by=1e12, start_by=1e12, seconds=900, report_by=1e12)
DEST = "tos://b-1/nightly"
SCAN = ScanCommand(trigger="timer")
GIB = 1024**3


class FakeAccount:
    """ECS and TOS in memory: images with tags, tasks, objects; every call recorded."""

    def __init__(self) -> None:
        self.images: dict[str, dict[str, str]] = {}
        self.status: dict[str, str] = {}  # an image's status when not "available"
        self.tasks: list[Task] = []
        self.objects: dict[tuple[str, str], int] = {}
        self.calls: list[tuple[str, Any]] = []
        self.tag_fault: ApiError | None = None
        self.tag_raises: ApiError | None = None
        self.tag_search_fault: ApiError | None = None
        self.head_fault: ApiError | None = None
        self._ids = itertools.count(1)

    def add(self, image_id: str, **tags: str) -> None:
        self.images[image_id] = {k.replace("_", ":"): v for k, v in tags.items()}

    def tracked(self, image_id: str, state: str, dest: str = DEST) -> None:
        self.images[image_id] = {STATE_KEY: state, DEST_KEY: dest}

    def ended(self, image_id: str, status: str, minutes: float = 18) -> None:
        created = NOW - timedelta(hours=1)
        self.tasks.append(
            Task.model_validate(
                {
                    "Id": f"t-{image_id}",
                    "Type": "ExportImage",
                    "Status": status,
                    "ResourceId": image_id,
                    "CreatedAt": created.isoformat(),
                    "EndAt": (created + timedelta(minutes=minutes)).isoformat()
                    if status != "Running"
                    else "",
                }
            )
        )

    def export_image(self, image_id: str, bucket: str, prefix: str, *, deadline: float) -> ExportStarted:
        self.calls.append(("ExportImage", image_id))
        task_id = f"t-new-{next(self._ids)}"
        self.tasks.append(
            Task.model_validate(
                {"Id": task_id, "Type": "ExportImage", "Status": "Pending", "ResourceId": image_id}
            )
        )
        return ExportStarted(task_id=task_id, request_id="r-1")

    def describe_images(
        self,
        *,
        deadline: float,
        image_ids: Iterable[str] = (),
        visibility: str | None = None,
        status: str | None = None,
        tag_filters: Mapping[str, str] | None = None,
    ) -> Iterator[Image]:
        self.calls.append(("DescribeImages", dict(tag_filters or {})))
        if tag_filters and self.tag_search_fault is not None:
            raise self.tag_search_fault
        for image_id, tags in self.images.items():
            if any(tags.get(k) != v for k, v in (tag_filters or {}).items()):
                continue
            if status is not None and self.status.get(image_id, "available") != status:
                continue
            yield Image.model_validate(
                {
                    "ImageId": image_id,
                    "Status": self.status.get(image_id, "available"),
                    "Visibility": "private",
                    "CreatedAt": (NOW - timedelta(hours=1)).isoformat(),
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            )

    def describe_tasks(
        self, *, deadline: float, task_ids: Iterable[str] = (), resource_ids: Iterable[str] = ()
    ) -> Iterator[Task]:
        ids = list(resource_ids)
        self.calls.append(("DescribeTasks", ids))
        yield from [t for t in self.tasks if t.resource_id in ids]

    def tag_images(
        self, image_ids: Iterable[str], tags: Mapping[str, str], *, deadline: float
    ) -> TaggingReport:
        ids = tuple(image_ids)
        self.calls.append(("TagResources", (ids, dict(tags))))
        if self.tag_raises is not None:
            raise self.tag_raises
        if self.tag_fault is not None:
            return TaggingReport(failures=(TaggingFailure(ids, self.tag_fault),))
        for image_id in ids:
            self.images[image_id].update(tags)
        return TaggingReport(done=ids)

    def head_object(self, bucket: str, key: str, *, deadline: float) -> HeadResult:
        self.calls.append(("HeadObject", key))
        if self.head_fault is not None:
            raise self.head_fault
        size = self.objects.get((bucket, key))
        if size is None:
            return ObjectMissing(bucket, key, "r-404")
        return ObjectFound(bucket, key, size, "123", None, None, "r-200")

    def count(self, action: str) -> int:
        return sum(1 for name, _ in self.calls if name == action)


def key(image_id: str) -> str:
    return f"nightly_{image_id}_system.qcow2"


def run(account: FakeAccount, command: Command = SCAN, cap: int | None = None) -> Any:
    clock = FakeClock(wall=NOW)
    return run_tracked(command, api=account, store=account, plan=PLAN, budget=WIDE, cap=cap, clock=clock)


def statuses(outcomes: Iterable[ImageOutcome]) -> dict[str | None, str]:
    return {o.image_id: o.status for o in outcomes}


def test_the_follow_up_reports_each_finished_export_and_counts_the_rest_in_flight() -> None:
    """Succeeded with its object → exported (size, duration); Failed → export_failed; Running → nothing,
    counted in flight; each finished one gets its next state, to be set after it is reported."""
    account = FakeAccount()
    for image_id, status in (("image-ok", "Succeeded"), ("image-bad", "Failed"), ("image-busy", "Running")):
        account.tracked(image_id, "exporting")
        account.ended(image_id, status)
    account.objects[("b-1", key("image-ok"))] = 40 * GIB

    report = follow_up(account, account, deadline=1e12)

    exported, failed = report.outcomes
    assert (exported.image_id, exported.status, exported.size_bytes) == ("image-ok", "exported", 40 * GIB)
    assert exported.duration_s == 18 * 60
    assert (failed.image_id, failed.status) == ("image-bad", "export_failed")
    assert failed.error is not None
    assert failed.error.code == "ExportTaskFailed"
    assert report.next_states == (("image-ok", "exported"), ("image-bad", "failed"))
    assert report.in_flight == 1
    assert account.count("HeadObject") == 1  # only the Succeeded task's object is looked at


def test_tos_not_answering_leaves_the_export_for_the_next_run() -> None:
    """A HeadObject that fails after retries reports nothing for the image and counts it in flight, so the
    next run looks again; it is never reported missing on a guess."""
    account = FakeAccount()
    account.tracked("image-ok", "exporting")
    account.ended("image-ok", "Succeeded")
    account.head_fault = ServerError("down", code="InternalError", action="HeadObject")

    with capture_logs() as logs:
        report = follow_up(account, account, deadline=1e12)

    assert report.outcomes == ()
    assert report.in_flight == 1
    assert any(line["event"] == "follow_up.head_failed" for line in logs)


def test_exports_in_flight_that_cannot_be_counted_hold_every_new_export_under_a_cap() -> None:
    """When the images in flight cannot be listed, the follow-up reports nothing and, under a cap, nothing
    is exported blind: a timer's named image is deferred with the reason."""
    account = FakeAccount()
    account.add("image-new")
    account.tag_search_fault = Throttled("slow down", code="FlowLimitExceeded", action="DescribeImages")

    with capture_logs() as logs:
        outcome = run(account, ExportCommand(trigger="timer", image_ids=("image-new",)), cap=5)

    (held,) = outcome.outcomes
    assert held.status == "deferred"
    assert "could not be counted" in str(held.reason)
    assert account.count("ExportImage") == 0
    assert any(line["event"] == "follow_up.failed" for line in logs)


def test_a_scan_never_starts_an_image_that_carries_a_state_tag() -> None:
    """Images tagged exporting, exported (whatever DescribeTasks says) or failed are left out of a scan:
    no export, no result; an untagged image is exported and tagged."""
    account = FakeAccount()
    for state in ("exporting", "exported", "failed"):
        account.tracked(f"image-{state}", state)
    account.ended("image-exporting", "Running")
    account.add("image-new")

    outcome = run(account)

    assert statuses(outcome.outcomes) == {"image-new": "started"}
    assert account.images["image-new"] == {STATE_KEY: "exporting", DEST_KEY: DEST}
    assert [c for c in account.calls if c[0] == "ExportImage"] == [("ExportImage", "image-new")]


def test_a_named_image_tagged_failed_is_exported_again() -> None:
    """An event naming an image whose last export failed exports it again (the tag does not block it)."""
    account = FakeAccount()
    account.tracked("image-retry", "failed")
    account.ended("image-retry", "Failed")

    outcome = run(account, ExportCommand(trigger="event", image_ids=("image-retry",)))

    assert statuses(outcome.outcomes) == {"image-retry": "started"}
    assert account.images["image-retry"][STATE_KEY] == "exporting"


def test_the_scan_and_the_follow_up_share_one_listing() -> None:
    """A timer scan lists the images once: the follow-up finds the exports in flight in the scan's own
    listing, so tracking adds no DescribeImages request."""
    account = FakeAccount()
    account.tracked("image-busy", "exporting")
    account.ended("image-busy", "Running")
    account.add("image-new")

    run(account)

    assert account.count("DescribeImages") == 1


def test_an_export_is_followed_up_whatever_status_its_image_shows_meanwhile() -> None:
    """The shared listing asks for every private image, not only available ones: an image whose status
    changes while it is exported (unconfirmed for the real API) is still followed up, and never exported
    again by the scan."""
    account = FakeAccount()
    account.tracked("image-ok", "exporting")
    account.status["image-ok"] = "exporting"
    account.ended("image-ok", "Succeeded")
    account.objects[("b-1", key("image-ok"))] = 40 * GIB

    tracked = run(account)

    assert statuses(tracked.outcomes) == {"image-ok": "exported"}
    assert account.count("ExportImage") == 0
    assert account.count("DescribeImages") == 1


def test_under_a_cap_the_exports_in_flight_are_counted_by_a_tag_search() -> None:
    """With a cap, a scan counts the exports in flight with a tag search of their own (whatever status their
    images have while they are exported), then lists the images to scan."""
    account = FakeAccount()
    account.tracked("image-busy", "exporting")
    account.ended("image-busy", "Running")

    run(account, cap=3)

    assert [c[1] for c in account.calls if c[0] == "DescribeImages"] == [{STATE_KEY: "exporting"}, {}]


def test_a_scan_over_the_cap_queues_the_rest_counting_exports_still_in_flight() -> None:
    """With a cap of 3 and one export still running, a scan of 4 new images starts 2 and queues 2; queued
    is not an error."""
    account = FakeAccount()
    account.tracked("image-busy", "exporting")
    account.ended("image-busy", "Running")
    for n in range(4):
        account.add(f"image-new{n}")

    outcome = run(account, cap=3)

    assert [o.status for o in outcome.outcomes] == ["started", "started", "queued", "queued"]
    assert all("EXPORT_MAX_IN_FLIGHT=3" in (o.reason or "") for o in outcome.outcomes[2:])


def test_an_event_under_a_cap_counts_the_exports_in_flight_by_their_tag() -> None:
    """An event does not follow up; with a cap it counts the images tagged exporting (one tag search) and
    defers the images over the cap."""
    account = FakeAccount()
    account.tracked("image-busy", "exporting")
    account.add("image-a")
    account.add("image-b")

    outcome = run(account, ExportCommand(trigger="event", image_ids=("image-a", "image-b")), cap=2)

    assert statuses(outcome.outcomes) == {"image-a": "started", "image-b": "deferred"}
    assert ("DescribeImages", {STATE_KEY: "exporting"}) in account.calls


def test_only_started_exports_are_tagged_all_in_one_call() -> None:
    """Every started export gets the same two tags in one tagging call (the client sends 50 images a
    request); skipped and failed images are not tagged."""
    account = FakeAccount()
    for image_id in ("image-a", "image-b", "image-c", "image-d"):
        account.add(image_id)
    outcomes = (
        ImageOutcome(image_id="image-a", status="started", task_id="t-1"),
        ImageOutcome(image_id="image-b", status="skipped", task_id="t-0"),
        ImageOutcome(image_id="image-c", status="failed"),
        ImageOutcome(image_id="image-d", status="started", task_id="t-2"),
    )

    assert tag_started(account, outcomes, Destination("b-1", "nightly"), deadline=1e12) == outcomes

    assert account.calls == [
        ("TagResources", (("image-a", "image-d"), {STATE_KEY: "exporting", DEST_KEY: DEST}))
    ]


def test_an_export_that_could_not_be_tagged_still_counts_as_started_and_says_so() -> None:
    """Tagging refused: the result stays started, its reason says it is not tracked, and a log line names
    the images."""
    account = FakeAccount()
    account.add("image-a")
    account.tag_fault = AccessDenied("no", code="AccessDenied", action="TagResources")
    outcomes = (ImageOutcome(image_id="image-a", status="started", task_id="t-1"),)

    with capture_logs() as logs:
        (tagged,) = tag_started(account, outcomes, Destination("b-1", "nightly"), deadline=1e12)

    assert tagged.status == "started"
    assert "not tracked" in str(tagged.reason)
    assert "AccessDenied" in str(tagged.reason)
    assert [line["image_ids"] for line in logs if line["event"] == "tracking.untracked"] == [["image-a"]]


def test_settle_sets_each_state_once_and_a_refusal_only_logs() -> None:
    """Finished exports are retagged one request per state; a refused retag is logged (the next run reports
    them again) and never raises."""
    account = FakeAccount()
    for image_id in ("image-a", "image-b", "image-c"):
        account.tracked(image_id, "exporting")
    states = (("image-a", "exported"), ("image-b", "failed"), ("image-c", "exported"))

    settle(account, states, deadline=1e12)  # type: ignore[arg-type]

    assert [c[1] for c in account.calls] == [
        (("image-a", "image-c"), {STATE_KEY: "exported"}),
        (("image-b",), {STATE_KEY: "failed"}),
    ]
    assert account.images["image-a"][DEST_KEY] == DEST  # the destination stays
    account.tag_fault = ServerError("down", code="InternalError", action="TagResources")
    with capture_logs() as logs:
        settle(account, states, deadline=1e12)  # type: ignore[arg-type]
    assert sum(line["event"] == "tracking.retag_failed" for line in logs) == 2


def test_a_tagging_call_refused_before_sending_leaves_the_exports_untracked_and_settle_quiet() -> None:
    """A tagging call that raises (a tag the client refuses to send) marks the started exports not tracked,
    and a retag that raises is only logged."""
    account = FakeAccount()
    account.add("image-a")
    account.tag_raises = TerminalApiError("bad key", code="InvalidTagKey.Malformed", action="TagResources")
    outcomes = (ImageOutcome(image_id="image-a", status="started", task_id="t-1"),)

    with capture_logs() as logs:
        (tagged,) = tag_started(account, outcomes, Destination("b-1", "nightly"), deadline=1e12)
        settle(account, [("image-a", "exported")], deadline=1e12)

    assert "InvalidTagKey.Malformed" in str(tagged.reason)
    assert [line["event"] for line in logs if line["log_level"] == "warning"] == [
        "tracking.untracked",
        "tracking.retag_failed",
    ]


def test_an_exporting_tag_without_a_readable_destination_is_left_alone() -> None:
    """An image tagged exporting whose destination tag is missing or edited by hand is neither reported
    nor counted in flight; a log line names it."""
    account = FakeAccount()
    account.images["image-odd"] = {STATE_KEY: "exporting", DEST_KEY: "s3://elsewhere/x"}
    account.ended("image-odd", "Succeeded")

    with capture_logs() as logs:
        report = follow_up(account, account, deadline=1e12)

    assert (report.outcomes, report.in_flight) == ((), 0)
    assert [line["image_id"] for line in logs if line["event"] == "follow_up.no_destination"] == ["image-odd"]


def test_a_tag_search_at_the_apis_cap_lists_every_image_instead() -> None:
    """The API's tag search lists at most 1,000 images: when it returns that many, the follow-up lists all
    images and keeps those tagged exporting itself, so none is missed."""
    account = FakeAccount()
    for n in range(1000):
        account.tracked(f"image-{n:04d}", "exporting")
        account.ended(f"image-{n:04d}", "Running")

    report = follow_up(account, account, deadline=1e12)

    assert report.in_flight == 1000
    assert [c[1] for c in account.calls if c[0] == "DescribeImages"] == [{STATE_KEY: "exporting"}, {}]


def test_an_event_whose_exports_in_flight_cannot_be_counted_defers_under_a_cap() -> None:
    """An event under a cap whose tag search fails starts nothing: its images are deferred."""
    account = FakeAccount()
    account.add("image-a")
    account.tag_search_fault = Throttled("slow down", code="FlowLimitExceeded", action="DescribeImages")

    with capture_logs() as logs:
        outcome = run(account, ExportCommand(trigger="event", image_ids=("image-a",)), cap=2)

    assert statuses(outcome.outcomes) == {"image-a": "deferred"}
    assert any(line["event"] == "tracking.count_failed" for line in logs)
