"""The export flow against an in-memory ECS: dedupe, deferral, lost answers, locks, batching, the deadline."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from handler.core.budget import Budget
from handler.core.export_flow import run_command
from handler.core.plan import ExportPlan
from handler.errors import (
    ApiError,
    BucketAccessDenied,
    BudgetExhausted,
    ImageNotFound,
    ImageNotReady,
    ResourceLocked,
    RetryableApiError,
    ServerError,
    Throttled,
    UnknownOutcomeError,
)
from handler.models.api import ExportStarted, Image, Task
from handler.models.events import ExportCommand, ScanCommand
from handler.models.settings import Settings
from tests.support.fakes import FakeClock

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PLAN = ExportPlan(
    bucket="b-1", prefix="nightly", region="cn-beijing", concurrency=4, dedupe_hours=None, lookback_hours=25
)
WIDE = Budget(send_by=1e12, start_by=1e12, seconds=900, report_by=1e12)


class FakeEcs:
    """An ECS account in memory; ``export_faults`` are raised, in order, by successive ExportImage calls."""

    def __init__(self, images: Iterable[dict[str, Any]] = (), tasks: Iterable[Task] = ()) -> None:
        self.images = [Image.model_validate(i) for i in images]
        self.tasks = list(tasks)
        self.export_faults: list[ApiError | None] = []
        self.commit_before_fault = False
        self.describe_fault: ApiError | None = None
        self.task_lookup_fault: ApiError | None = None
        self.calls: list[tuple[str, Any]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def export_image(self, image_id: str, bucket: str, prefix: str, *, deadline: float) -> ExportStarted:
        with self._lock:
            self.calls.append(("ExportImage", image_id))
            image = next((i for i in self.images if i.image_id == image_id), None)
            if image is None:
                raise ImageNotFound("not found", code="InvalidImage.NotFound", action="ExportImage")
            if image.status != "available":
                raise ImageNotReady(
                    "wrong status", code="InvalidImageStatus", action="ExportImage", request_id="req-refused"
                )
            fault = self.export_faults.pop(0) if self.export_faults else None
            if fault is None or self.commit_before_fault:
                task = Task.model_validate(
                    {
                        "Id": f"t-{next(self._ids)}",
                        "Type": "ExportImage",
                        "Status": "Pending",
                        "ResourceId": image_id,
                        "CreatedAt": NOW.isoformat(),
                    }
                )
                self.tasks.append(task)
            if fault is not None:
                raise fault
            return ExportStarted(task_id=task.task_id, request_id="req-1")

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
        self.calls.append(("DescribeImages", ids))
        if self.describe_fault:
            raise self.describe_fault
        for image in self.images:
            if ids and image.image_id not in ids:
                continue
            if status and image.status != status:
                continue
            yield image

    def describe_tasks(
        self, *, deadline: float, task_ids: Iterable[str] = (), resource_ids: Iterable[str] = ()
    ) -> Iterator[Task]:
        ids = list(resource_ids)
        self.calls.append(("DescribeTasks", ids))
        if self.task_lookup_fault:
            raise self.task_lookup_fault
        yield from [t for t in self.tasks if t.resource_id in ids]

    def exports_of(self, image_id: str) -> int:
        return sum(1 for t in self.tasks if t.resource_id == image_id and t.type == "ExportImage")


def img(image_id: str, status: str = "available", hours_ago: float = 1, **extra: Any) -> dict[str, Any]:
    return {
        "ImageId": image_id,
        "ImageName": extra.get("name", image_id),
        "Status": status,
        "Visibility": extra.get("visibility", "private"),
        "CreatedAt": (NOW - timedelta(hours=hours_ago)).isoformat(),
    }


def task(image_id: str, status: str, *, kind: str = "ExportImage", hours_ago: float = 1) -> Task:
    moment = (NOW - timedelta(hours=hours_ago)).isoformat()
    return Task.model_validate(
        {
            "Id": f"t-old-{image_id}-{status}",
            "Type": kind,
            "Status": status,
            "ResourceId": image_id,
            "CreatedAt": moment,
            "EndAt": moment,
        }
    )


def export(*ids: str) -> ExportCommand:
    return ExportCommand(trigger="direct", image_ids=ids)


def still(at: float = 0.0) -> FakeClock:
    """A clock at ``NOW`` and at monotonic ``at``; sleeping moves it on."""
    return FakeClock(at, wall=NOW, jitter=0.5)


def run(
    command: Any, ecs: FakeEcs, *, plan: ExportPlan = PLAN, budget: Budget = WIDE, clock: float = 0.0
) -> dict[str, Any]:
    outcomes = run_command(command, api=ecs, plan=plan, budget=budget, clock=still(clock))
    return {o.image_id: o for o in outcomes}


def test_named_image_is_exported_once_and_reported() -> None:
    """A direct event starts one export and reports its task, bucket and object key."""
    ecs = FakeEcs([img("image-a")])
    (outcome,) = run(export("image-a"), ecs).values()
    assert outcome.status == "started"
    assert (outcome.task_id, outcome.tos_bucket, outcome.object_key) == (
        "t-1",
        "b-1",
        "nightly_image-a_system.qcow2",
    )


def test_same_event_twice_exports_once() -> None:
    """Delivering the same event again skips the image with the first export's task: never a duplicate."""
    ecs = FakeEcs([img("image-a")])
    first = run(export("image-a"), ecs)["image-a"]
    second = run(export("image-a"), ecs)["image-a"]
    assert (second.status, second.task_id) == ("skipped", first.task_id)
    assert ecs.exports_of("image-a") == 1


@pytest.mark.parametrize(
    ("existing", "window", "status"),
    [
        ("Pending", None, "skipped"),
        ("Running", 48.0, "skipped"),
        ("Succeeded", None, "skipped"),
        ("Failed", None, "started"),
    ],
)
def test_existing_tasks_decide(existing: str, window: float | None, status: str) -> None:
    """Active or succeeded exports skip the image; a failed one does not count."""
    ecs = FakeEcs([img("image-a")], [task("image-a", existing)])
    plan = dataclasses.replace(PLAN, dedupe_hours=window)
    outcome = run(export("image-a"), ecs, plan=plan)["image-a"]
    assert outcome.status == status


def test_dedupe_window_allows_periodic_reexport() -> None:
    """With EXPORT_DEDUPE_HOURS set, an export older than the window is repeated."""
    ecs = FakeEcs([img("image-a")], [task("image-a", "Succeeded", hours_ago=100)])
    plan = dataclasses.replace(PLAN, dedupe_hours=48.0)
    assert run(export("image-a"), ecs, plan=plan)["image-a"].status == "started"


def test_images_not_ready_are_deferred_and_missing_ones_fail() -> None:
    """Creating images wait for a later run; unknown ids and broken images fail with a clear code."""
    ecs = FakeEcs([img("image-new", status="creating"), img("image-bad", status="error"), img("image-ok")])
    outcomes = run(export("image-new", "image-gone", "image-bad", "image-ok"), ecs)
    assert list(outcomes) == ["image-new", "image-gone", "image-bad", "image-ok"]
    assert outcomes["image-new"].status == "deferred"
    assert "creating" in (outcomes["image-new"].reason or "")
    assert outcomes["image-gone"].status == "failed"
    assert outcomes["image-gone"].error is not None
    assert outcomes["image-gone"].error.code == "InvalidImage.NotFound"
    assert "cn-beijing" in outcomes["image-gone"].error.message
    assert outcomes["image-bad"].error is not None
    assert outcomes["image-bad"].error.code == "InvalidImageStatus"
    assert outcomes["image-ok"].status == "started"
    assert ecs.exports_of("image-new") == 0


def test_scan_picks_recent_private_images_and_batches_lookups() -> None:
    """A scan of 250 images costs one DescribeImages pass and three DescribeTasks calls, not one per image:
    each looks up the next 86 images (what 10 requests a second export within the clearance window)."""
    images = [img(f"image-{n:03d}") for n in range(250)] + [img("image-old", hours_ago=40)]
    ecs = FakeEcs(images)
    outcomes = run(ScanCommand(trigger="timer"), ecs)
    assert len(outcomes) == 250
    assert {o.status for o in outcomes.values()} == {"started"}
    lookups = [ids for action, ids in ecs.calls if action == "DescribeTasks"]
    assert [len(ids) for ids in lookups] == [86, 86, 78]
    assert [i for ids in lookups for i in ids] == [f"image-{n:03d}" for n in range(250)]
    assert ecs.exports_of("image-old") == 0


def test_scan_honours_lookback_and_name_prefix_from_the_event() -> None:
    """The timer payload's LookbackHours and ImageNamePrefix override the defaults."""
    ecs = FakeEcs([img("image-a", hours_ago=30, name="prod-a"), img("image-b", hours_ago=30, name="dev-b")])
    command = ScanCommand(trigger="timer", lookback_hours=48, image_name_prefix="prod")
    plan = ExportPlan.of(command, Settings.model_validate({"EXPORT_TOS_BUCKET": "b-1"}))
    outcomes = run(command, ecs, plan=plan)
    assert list(outcomes) == ["image-a"]


def test_unknown_outcome_with_a_task_found_is_started_without_resending() -> None:
    """When the answer is lost but the export task exists, it is reported as started, and not sent again."""
    ecs = FakeEcs([img("image-a")])
    ecs.export_faults = [UnknownOutcomeError("lost", code="ReadTimeout", action="ExportImage")]
    ecs.commit_before_fault = True
    outcome = run(export("image-a"), ecs)["image-a"]
    assert (outcome.status, outcome.task_id) == ("started", "t-1")
    assert ecs.exports_of("image-a") == 1
    assert [c for c in ecs.calls if c[0] == "ExportImage"] == [("ExportImage", "image-a")]


def test_unknown_outcome_without_a_task_is_sent_again() -> None:
    """When the answer is lost and no task appeared, the export is sent again: still exactly one export."""
    ecs = FakeEcs([img("image-a")])
    ecs.export_faults = [UnknownOutcomeError("lost", code="ConnectionReset", action="ExportImage")]
    outcome = run(export("image-a"), ecs)["image-a"]
    assert outcome.status == "started"
    assert ecs.exports_of("image-a") == 1
    assert sum(1 for c in ecs.calls if c[0] == "ExportImage") == 2


def test_repeated_lost_answers_end_as_a_retryable_failure() -> None:
    """Three lost answers with no task to show for them fail retryably, so the platform runs the event again."""
    ecs = FakeEcs([img("image-a")])
    ecs.export_faults = [UnknownOutcomeError("lost", code="ReadTimeout", action="ExportImage")] * 3
    outcome = run(export("image-a"), ecs)["image-a"]
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.retryable) == ("ReadTimeout", True)


def test_lost_answer_and_failed_lookup_is_a_retryable_failure() -> None:
    """If the tasks cannot be looked up after a lost answer, nothing is resent blind."""
    ecs = FakeEcs([img("image-a")])
    ecs.export_faults = [UnknownOutcomeError("lost", code="ReadTimeout", action="ExportImage")]
    outcomes = run_command(export("image-a"), api=ecs, plan=PLAN, budget=WIDE, clock=still())
    assert outcomes[0].status == "started"  # the pre-export look-up worked, then the fake resent
    ecs2 = FakeEcs([img("image-b")])
    ecs2.export_faults = [UnknownOutcomeError("lost", code="ReadTimeout", action="ExportImage")]

    original = ecs2.describe_tasks
    looked = {"n": 0}

    def flaky(**kwargs: Any) -> Iterator[Task]:
        looked["n"] += 1
        if looked["n"] > 1:
            raise RetryableApiError("down", code="InternalError", action="DescribeTasks")
        return original(**kwargs)

    ecs2.describe_tasks = flaky  # type: ignore[method-assign]
    outcome = run(export("image-b"), ecs2)["image-b"]
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error.retryable
    assert sum(1 for c in ecs2.calls if c[0] == "ExportImage") == 1


def test_resource_locked_by_an_export_is_skipped_with_its_task() -> None:
    """OperationDenied.ResourceLocked with an export running reports that export as skipped."""
    ecs = FakeEcs([img("image-a")])
    ecs.export_faults = [
        ResourceLocked("locked", code="OperationDenied.ResourceLocked", action="ExportImage")
    ]
    ecs.commit_before_fault = True  # the "other" export is visible when we look
    outcome = run(export("image-a"), ecs)["image-a"]
    assert (outcome.status, outcome.task_id) == ("skipped", "t-1")


def test_resource_locked_by_something_else_is_deferred() -> None:
    """A lock held by another operation (not an export) defers the image to a later run."""
    ecs = FakeEcs([img("image-a")], [task("image-a", "Running", kind="CreateImage")])
    ecs.export_faults = [
        ResourceLocked("locked", code="OperationDenied.ResourceLocked", action="ExportImage")
    ]
    outcome = run(export("image-a"), ecs)["image-a"]
    assert outcome.status == "deferred"
    assert outcome.error is not None
    assert outcome.error.code == "OperationDenied.ResourceLocked"


@pytest.mark.parametrize(
    ("fault", "status", "retryable"),
    [
        (
            BucketAccessDenied("denied", code="InvalidTosPutObject.AccessDenied", action="ExportImage"),
            "failed",
            False,
        ),
        (ServerError("boom", code="InternalError", action="ExportImage"), "failed", True),
        (Throttled("slow down", code="FlowLimitExceeded", action="ExportImage"), "deferred", True),
        (BudgetExhausted("out of time"), "deferred", True),
    ],
)
def test_export_errors_become_outcomes(fault: ApiError, status: str, retryable: bool) -> None:
    """Terminal errors fail for good; exhausted retries fail retryably; throttling and the budget defer."""
    ecs = FakeEcs([img("image-a"), img("image-b")])
    ecs.export_faults = [fault]
    outcomes = run(
        export("image-a", "image-b"), ecs, plan=dataclasses.replace(PLAN, prefix="p", concurrency=1)
    )
    assert outcomes["image-a"].status == status
    assert outcomes["image-a"].error is not None
    assert outcomes["image-a"].error.retryable is retryable
    assert outcomes["image-b"].status == "started"  # one image's failure never stops the batch


def test_failed_task_lookup_exports_nothing() -> None:
    """Without the dedupe look-up nothing is exported blind: every candidate fails retryably."""
    ecs = FakeEcs([img("image-a"), img("image-b")])
    ecs.task_lookup_fault = RetryableApiError("down", code="InternalError", action="DescribeTasks")
    outcomes = run(export("image-a", "image-b"), ecs)
    assert {o.status for o in outcomes.values()} == {"failed"}
    assert all(o.error is not None and o.error.retryable for o in outcomes.values())
    assert not any(c[0] == "ExportImage" for c in ecs.calls)


def test_failed_scan_is_one_retryable_failure() -> None:
    """A scan whose DescribeImages fails reports one failure the platform retries."""
    ecs = FakeEcs()
    ecs.describe_fault = RetryableApiError("down", code="InternalError", action="DescribeImages")
    (outcome,) = run(ScanCommand(trigger="timer"), ecs).values()
    assert outcome.image_id is None
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error.retryable


def test_throttled_dedupe_lookup_defers_every_image() -> None:
    """Throttling on the dedupe look-up defers every named image rather than failing it."""
    ecs = FakeEcs([img("image-a")])
    ecs.task_lookup_fault = Throttled("slow", code="FlowLimitExceeded", action="DescribeTasks")
    outcomes = run(export("image-a", "image-b"), ecs)
    assert [o.status for o in outcomes.values()] == ["deferred", "deferred"]


def test_a_direct_event_costs_two_requests() -> None:
    """The usual event asks for the image's tasks, then exports: the image itself is looked up only when
    ExportImage refuses it."""
    ecs = FakeEcs([img("image-a")])
    run(export("image-a"), ecs)
    assert [c[0] for c in ecs.calls] == ["DescribeTasks", "ExportImage"]


def test_refused_image_that_cannot_be_looked_up_is_deferred_not_lost() -> None:
    """If ExportImage refuses an image's status and the look-up fails, a later run asks again."""
    ecs = FakeEcs([img("image-a", status="creating")])
    ecs.describe_fault = RetryableApiError("down", code="InternalError", action="DescribeImages")
    outcome = run(export("image-a"), ecs)["image-a"]
    assert outcome.status == "deferred"


def test_images_not_started_before_the_cutoff_are_deferred() -> None:
    """Past the start cutoff, no new export begins: the images are deferred, none cut off mid-request."""
    ecs = FakeEcs([img("image-a"), img("image-b")])
    outcomes = run(
        export("image-a", "image-b"),
        ecs,
        budget=Budget(send_by=100, start_by=50, seconds=100, report_by=100),
        clock=60,
    )
    assert [o.status for o in outcomes.values()] == ["deferred", "deferred"]
    assert "time budget" in (outcomes["image-a"].reason or "")
    assert not any(c[0] == "ExportImage" for c in ecs.calls)


def test_concurrent_exports_keep_the_order_of_the_event() -> None:
    """Exports run in parallel but results come back in the order the images were named."""
    ids = [f"image-{n:02d}" for n in range(12)]
    ecs = FakeEcs([img(i) for i in ids])
    outcomes = run(export(*ids), ecs)
    assert list(outcomes) == ids
    assert all(ecs.exports_of(i) == 1 for i in ids)


class TimedEcs(FakeEcs):
    """Each ExportImage moves the clock ``step`` seconds on (a slow, rate-limited copy). Records when each image was last looked up and when its ExportImage was sent; another copy of the
    function exports ``rival_image`` right after our first export."""

    def __init__(
        self, images: Iterable[dict[str, Any]], clock: FakeClock, rival_image: str, *, step: float
    ) -> None:
        super().__init__(images)
        self.clock = clock
        self.step = step
        self.rival_image = rival_image
        self.looked_at: dict[str, float] = {}
        self.ages: dict[str, float] = {}

    def describe_tasks(
        self, *, deadline: float, task_ids: Iterable[str] = (), resource_ids: Iterable[str] = ()
    ) -> Iterator[Task]:
        ids = list(resource_ids)
        self.looked_at.update(dict.fromkeys(ids, self.clock.monotonic()))
        return super().describe_tasks(deadline=deadline, resource_ids=ids)

    def export_image(self, image_id: str, bucket: str, prefix: str, *, deadline: float) -> ExportStarted:
        self.clock.advance(self.step)
        self.ages[image_id] = self.clock.monotonic() - self.looked_at[image_id]
        started = super().export_image(image_id, bucket, prefix, deadline=deadline)
        if self.rival_image not in {t.resource_id for t in self.tasks}:
            self.tasks.append(task(self.rival_image, "Succeeded", hours_ago=0))
        return started


def test_each_export_is_cleared_by_a_look_up_at_most_ten_seconds_old() -> None:
    """A slow scan looks its remaining images up again as it goes (batched), so an image another copy
    exported meanwhile is skipped, and no ExportImage goes out on a look-up older than 10 seconds."""
    ids = [f"image-{c}" for c in "abcdefgh"]
    clock = still()
    ecs = TimedEcs([img(i) for i in ids], clock, rival_image="image-e", step=3.0)
    plan = dataclasses.replace(PLAN, concurrency=1)
    outcomes = {
        o.image_id: o for o in run_command(export(*ids), api=ecs, plan=plan, budget=WIDE, clock=clock)
    }
    assert outcomes["image-e"].status == "skipped"
    assert outcomes["image-e"].task_id == "t-old-image-e-Succeeded"
    assert {i for i, o in outcomes.items() if o.status == "started"} == set(ids) - {"image-e"}
    assert max(ecs.ages.values()) <= 10
    lookups = [batch for action, batch in ecs.calls if action == "DescribeTasks"]
    assert len(lookups) < len(ids)  # batched: one look-up covers the next images due
    assert all(len(batch) > 1 for batch in lookups[:-1])


def test_a_refused_image_the_api_calls_available_is_deferred_with_the_apis_error() -> None:
    """ExportImage says InvalidImageStatus, DescribeImages says available: deferred, keeping the API's code,
    message and request id."""
    ecs = FakeEcs([img("image-a", status="creating")])
    original = ecs.describe_images

    def now_available(**kwargs: Any) -> Iterator[Image]:
        ecs.images = [Image.model_validate(img("image-a"))]
        return original(**kwargs)

    ecs.describe_images = now_available  # type: ignore[method-assign]
    outcome = run(export("image-a"), ecs)["image-a"]
    assert outcome.status == "deferred"
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.request_id) == ("InvalidImageStatus", "req-refused")
    assert outcome.error.message == "wrong status"


@pytest.mark.parametrize("image_status", ["creating", "frozen"])
def test_a_refused_image_whose_status_may_change_is_deferred_naming_it(image_status: str) -> None:
    """An image still creating, or in a status the function does not know, is deferred (the status in the
    reason), never failed for good."""
    ecs = FakeEcs([img("image-a", status=image_status)])
    outcome = run(export("image-a"), ecs)["image-a"]
    assert outcome.status == "deferred"
    assert image_status in (outcome.reason or "")
    assert outcome.error is not None
    assert outcome.error.code == "InvalidImageStatus"


def test_an_unknown_task_status_is_never_exported_over() -> None:
    """An export task in UnknownStatus may be running: the image is skipped with that task, not exported."""
    ecs = FakeEcs([img("image-a")], [task("image-a", "UnknownStatus")])
    outcome = run(export("image-a"), ecs)["image-a"]
    assert (outcome.status, outcome.task_id) == ("skipped", "t-old-image-a-UnknownStatus")
    assert "UnknownStatus" in (outcome.reason or "")
    assert ecs.exports_of("image-a") == 1  # only the task that was already there


def test_a_lock_held_by_an_export_in_an_unknown_status_is_skipped() -> None:
    """ResourceLocked while an export task's status is not known: skipped with that task, not deferred."""
    ecs = FakeEcs([img("image-a")])
    ecs.export_faults = [
        ResourceLocked("locked", code="OperationDenied.ResourceLocked", action="ExportImage")
    ]
    original = ecs.describe_tasks
    calls = {"n": 0}

    def second_look_sees_it(**kwargs: Any) -> Iterator[Task]:
        calls["n"] += 1
        if calls["n"] > 1:
            ecs.tasks.append(task("image-a", "UnknownStatus"))
        return original(**kwargs)

    ecs.describe_tasks = second_look_sees_it  # type: ignore[method-assign]
    outcome = run(export("image-a"), ecs)["image-a"]
    assert (outcome.status, outcome.task_id) == ("skipped", "t-old-image-a-UnknownStatus")


def test_the_budget_running_out_mid_request_says_so() -> None:
    """When the budget stops an image's request, the reason names the time budget, not the rate limit."""
    ecs = FakeEcs([img("image-a")])
    ecs.export_faults = [BudgetExhausted("the time budget ran out while waiting for the request rate limit")]
    outcome = run(
        export("image-a"), ecs, budget=Budget(send_by=1e12, start_by=1e12, seconds=20, report_by=1e12)
    )["image-a"]
    assert outcome.status == "deferred"
    assert "time budget (20 s)" in (outcome.reason or "")
    assert "rate limit" not in (outcome.reason or "")


class TaggedEcs(FakeEcs):
    """An account whose tag search is capped at 1,000 images, like the API's."""

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
        matching = [i for i in self.images if not tag_filters or set(tag_filters.items()) <= set(i.tags)]
        yield from (matching[:1000] if tag_filters else matching)


def tagged(image_id: str, **tags: str) -> dict[str, Any]:
    return {**img(image_id), "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}


def test_a_tag_scan_reaching_the_apis_cap_filters_on_our_side() -> None:
    """When a tag search lists 1,000 images (the API's cap), the scan lists without the filter and keeps
    the tagged images itself, so none past the cap is missed; the log says so."""
    images = [tagged(f"image-t{n:04d}", env="prod") for n in range(1001)] + [tagged("image-dev", env="dev")]
    ecs = TaggedEcs(images)
    with capture_logs() as logs:
        outcomes = run(ScanCommand(trigger="timer", tags={"env": "prod"}), ecs)
    assert len(outcomes) == 1001
    assert "image-dev" not in outcomes
    assert [c[1] for c in ecs.calls if c[0] == "DescribeImages"] == [{"env": "prod"}, {}]
    assert any(entry["event"] == "scan.tags_filtered_locally" for entry in logs)


def test_a_tag_scan_under_the_cap_trusts_the_server() -> None:
    """Below the cap, the server's filtered list is the scan: one DescribeImages pass."""
    ecs = TaggedEcs([tagged("image-a", env="prod"), tagged("image-b", env="dev")])
    outcomes = run(ScanCommand(trigger="timer", tags={"env": "prod"}), ecs)
    assert list(outcomes) == ["image-a"]
    assert sum(1 for c in ecs.calls if c[0] == "DescribeImages") == 1


def test_an_export_is_never_sent_on_a_look_up_that_answered_too_slowly() -> None:
    """When the look-up that should clear an image takes the whole clearance window to answer, the image is
    deferred rather than exported on a stale view."""
    clock = still()
    ecs = TimedEcs([img(f"image-{c}") for c in "abcd"], clock, rival_image="image-z", step=3.0)
    original = ecs.describe_tasks
    lookups = {"n": 0}

    def slow_after_the_first(**kwargs: Any) -> Iterator[Task]:
        lookups["n"] += 1
        if lookups["n"] > 1:
            clock.advance(11.0)
        return original(**kwargs)

    ecs.describe_tasks = slow_after_the_first  # type: ignore[method-assign]
    plan = dataclasses.replace(PLAN, concurrency=1)
    outcomes = run_command(
        export("image-a", "image-b", "image-c", "image-d"), api=ecs, plan=plan, budget=WIDE, clock=clock
    )
    # 3 s an export: image-c goes out 9 s after the first look-up; image-d needs a new one, which is slow.
    assert [o.status for o in outcomes] == ["started", "started", "started", "deferred"]
    assert "too slowly" in (outcomes[3].reason or "")
    assert max(ecs.ages.values()) <= 10
