"""The export flow against the emulated ECS account, through the function's own client: dedupe, deferral,
lost answers, locks, batching, the deadline."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from handler.core.budget import Budget
from handler.core.export_flow import run_command
from handler.core.plan import ExportPlan
from handler.errors import ApiError, BudgetExhausted, UnknownOutcomeError
from handler.models.api import Image, Task
from handler.models.events import ExportCommand, ScanCommand
from handler.models.settings import Settings
from tests.support.account import Account
from tests.support.builders import fleet_image, fleet_task, task
from tests.support.fakes import Call, failing

PLAN = ExportPlan(
    bucket="b-1", prefix="nightly", region="cn-beijing", concurrency=4, dedupe_hours=None, lookback_hours=25
)
WIDE = Budget(send_by=1e12, start_by=1e12, seconds=900, report_by=1e12)
LOST = UnknownOutcomeError("lost", code="ReadTimeout", action="ExportImage")
FOREVER = 100  # an emulator fault armed for this many calls: every call of the test


def export(*ids: str) -> ExportCommand:
    return ExportCommand(trigger="direct", image_ids=ids)


def run(
    command: Any, ecs: Account, *, plan: ExportPlan = PLAN, budget: Budget = WIDE, clock: float | None = None
) -> dict[str, Any]:
    """The outcomes by image; ``clock`` puts the monotonic clock at that reading first."""
    if clock is not None:
        ecs.clock.advance(clock - ecs.clock.t)
    outcomes = run_command(command, api=ecs.api, plan=plan, budget=budget, clock=ecs.clock)
    return {o.image_id: o for o in outcomes}


def task_id_of(ecs: Account, image_id: str) -> str:
    """The id of the image's newest task in the account."""
    return str(ecs.tasks_of(image_id)[0]["Id"])


def test_named_image_is_exported_once_and_reported() -> None:
    """A direct event starts one export and reports its task, bucket and object key."""
    ecs = Account([fleet_image("image-a")])
    (outcome,) = run(export("image-a"), ecs).values()
    assert outcome.status == "started"
    assert (outcome.task_id, outcome.tos_bucket, outcome.object_key) == (
        task_id_of(ecs, "image-a"),
        "b-1",
        "nightly_image-a_system.qcow2",
    )
    assert ecs.exports_of("image-a") == 1


def test_same_event_twice_exports_once() -> None:
    """Delivering the same event again skips the image with the first export's task: never a duplicate."""
    ecs = Account([fleet_image("image-a")])
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
    ecs = Account([fleet_image("image-a")], [fleet_task("image-a", existing)])
    plan = dataclasses.replace(PLAN, dedupe_hours=window)
    outcome = run(export("image-a"), ecs, plan=plan)["image-a"]
    assert outcome.status == status


def test_dedupe_window_allows_periodic_reexport() -> None:
    """With EXPORT_DEDUPE_HOURS set, an export older than the window is repeated."""
    ecs = Account([fleet_image("image-a")], [fleet_task("image-a", "Succeeded", hours_ago=100)])
    plan = dataclasses.replace(PLAN, dedupe_hours=48.0)
    assert run(export("image-a"), ecs, plan=plan)["image-a"].status == "started"


def test_images_not_ready_are_deferred_and_missing_ones_fail() -> None:
    """Creating images wait for a later run; unknown ids and broken images fail with a clear code."""
    ecs = Account(
        [
            fleet_image("image-new", status="creating"),
            fleet_image("image-bad", status="error"),
            fleet_image("image-ok"),
        ]
    )
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
    images = [fleet_image(f"image-{n:03d}") for n in range(250)] + [fleet_image("image-old", hours_ago=40)]
    ecs = Account(images)
    outcomes = run(ScanCommand(trigger="timer"), ecs)
    assert len(outcomes) == 250
    assert {o.status for o in outcomes.values()} == {"started"}
    lookups = [ids for action, ids in ecs.calls if action == "DescribeTasks"]
    assert [len(ids) for ids in lookups] == [86, 86, 78]
    assert [i for ids in lookups for i in ids] == [f"image-{n:03d}" for n in range(250)]
    assert ecs.count("DescribeImages") == 1
    assert ecs.exports_of("image-old") == 0


def test_scan_honours_lookback_and_name_prefix_from_the_event() -> None:
    """The timer payload's LookbackHours and ImageNamePrefix override the defaults."""
    ecs = Account(
        [
            fleet_image("image-a", hours_ago=30, name="prod-a"),
            fleet_image("image-b", hours_ago=30, name="dev-b"),
        ]
    )
    command = ScanCommand(trigger="timer", lookback_hours=48, image_name_prefix="prod")
    plan = ExportPlan.of(command, Settings.model_validate({"EXPORT_TOS_BUCKET": "b-1"}))
    outcomes = run(command, ecs, plan=plan)
    assert list(outcomes) == ["image-a"]


def test_unknown_outcome_with_a_task_found_is_started_without_resending() -> None:
    """When the answer is lost but the export task exists, it is reported as started, and not sent again."""
    ecs = Account([fleet_image("image-a")])
    ecs.emulator.drop_next("ExportImage")  # the export is committed, the connection closes unanswered
    outcome = run(export("image-a"), ecs)["image-a"]
    assert (outcome.status, outcome.task_id) == ("started", task_id_of(ecs, "image-a"))
    assert ecs.exports_of("image-a") == 1
    assert [c for c in ecs.calls if c[0] == "ExportImage"] == [("ExportImage", "image-a")]


def test_unknown_outcome_without_a_task_is_sent_again() -> None:
    """When the answer is lost and no task appeared, the export is sent again: still exactly one export."""
    ecs = Account([fleet_image("image-a")])
    ecs.api.on(
        "ExportImage", failing(UnknownOutcomeError("lost", code="ConnectionReset", action="ExportImage"))
    )
    outcome = run(export("image-a"), ecs)["image-a"]
    assert outcome.status == "started"
    assert ecs.exports_of("image-a") == 1
    assert ecs.count("ExportImage") == 2


def test_repeated_lost_answers_end_as_a_retryable_failure() -> None:
    """Three lost answers with no task to show for them fail retryably, so the platform runs the event again."""
    ecs = Account([fleet_image("image-a")])
    ecs.api.on("ExportImage", failing(LOST, LOST, LOST))
    outcome = run(export("image-a"), ecs)["image-a"]
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.retryable) == ("ReadTimeout", True)


def test_lost_answer_and_failed_lookup_is_a_retryable_failure() -> None:
    """If the tasks cannot be looked up after a lost answer, nothing is resent blind."""
    ecs = Account([fleet_image("image-a")])
    ecs.api.on("ExportImage", failing(LOST))
    outcomes = run_command(export("image-a"), api=ecs.api, plan=PLAN, budget=WIDE, clock=ecs.clock)
    assert outcomes[0].status == "started"  # the pre-export look-up worked, then the export was resent
    ecs2 = Account([fleet_image("image-b")])
    ecs2.api.on("ExportImage", failing(LOST))

    def down_after_the_first(call: Call, send: Callable[[], Any]) -> Any:
        if call.n > 1:
            ecs2.emulator.fail_next("DescribeTasks", 500, "InternalError", "down")
        return send()

    ecs2.api.on("DescribeTasks", down_after_the_first)
    outcome = run(export("image-b"), ecs2)["image-b"]
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error.retryable
    assert ecs2.count("ExportImage") == 1


def _a_rival_exports_first(ecs: Account) -> dict[str, str]:
    """Another copy of the function exports each image just before our ExportImage for it; the rival's task
    ids by image."""
    rivals: dict[str, str] = {}

    def hook(call: Call, send: Callable[[], Any]) -> Any:
        rivals.setdefault(call.asked, ecs.export_now(call.asked))
        return send()

    ecs.api.on("ExportImage", hook)
    return rivals


def test_resource_locked_by_an_export_is_skipped_with_its_task() -> None:
    """OperationDenied.ResourceLocked with an export running reports that export as skipped."""
    ecs = Account([fleet_image("image-a")])
    rivals = _a_rival_exports_first(ecs)  # the "other" export is visible when we look
    outcome = run(export("image-a"), ecs)["image-a"]
    assert (outcome.status, outcome.task_id) == ("skipped", rivals["image-a"])
    assert ecs.exports_of("image-a") == 1  # the rival's only


def test_resource_locked_by_something_else_is_deferred() -> None:
    """A lock held by another operation (not an export) defers the image to a later run."""
    ecs = Account([fleet_image("image-a")], [fleet_task("image-a", "Running", kind="CreateImage")])
    outcome = run(export("image-a"), ecs)["image-a"]
    assert outcome.status == "deferred"
    assert outcome.error is not None
    assert outcome.error.code == "OperationDenied.ResourceLocked"


def _refuse(status: int, code: str) -> Callable[[Account], None]:
    return lambda ecs: ecs.emulator.fail_next("ExportImage", status, code, "refused")


@pytest.mark.parametrize(
    ("fault", "status", "retryable"),
    [
        pytest.param(_refuse(400, "InvalidTosPutObject.AccessDenied"), "failed", False, id="access-denied"),
        pytest.param(_refuse(500, "InternalError"), "failed", True, id="server-error"),
        pytest.param(_refuse(429, "FlowLimitExceeded"), "deferred", True, id="throttled"),
        pytest.param(
            lambda ecs: ecs.api.on("ExportImage", failing(BudgetExhausted("out of time"))),
            "deferred",
            True,
            id="budget",
        ),
    ],
)
def test_export_errors_become_outcomes(
    fault: Callable[[Account], None], status: str, retryable: bool
) -> None:
    """Terminal errors fail for good; exhausted retries fail retryably; throttling and the budget defer."""
    ecs = Account([fleet_image("image-a"), fleet_image("image-b")])
    fault(ecs)
    outcomes = run(
        export("image-a", "image-b"), ecs, plan=dataclasses.replace(PLAN, prefix="p", concurrency=1)
    )
    assert outcomes["image-a"].status == status
    assert outcomes["image-a"].error is not None
    assert outcomes["image-a"].error.retryable is retryable
    assert outcomes["image-b"].status == "started"  # one image's failure never stops the batch


def test_failed_task_lookup_exports_nothing() -> None:
    """Without the dedupe look-up nothing is exported blind: every candidate fails retryably."""
    ecs = Account([fleet_image("image-a"), fleet_image("image-b")])
    ecs.emulator.fail_next("DescribeTasks", 500, "InternalError", "down", times=FOREVER)
    outcomes = run(export("image-a", "image-b"), ecs)
    assert {o.status for o in outcomes.values()} == {"failed"}
    assert all(o.error is not None and o.error.retryable for o in outcomes.values())
    assert not any(c[0] == "ExportImage" for c in ecs.calls)


def test_failed_scan_is_one_retryable_failure() -> None:
    """A scan whose DescribeImages fails reports one failure the platform retries."""
    ecs = Account()
    ecs.emulator.fail_next("DescribeImages", 500, "InternalError", "down", times=FOREVER)
    (outcome,) = run(ScanCommand(trigger="timer"), ecs).values()
    assert outcome.image_id is None
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error.retryable


def test_throttled_dedupe_lookup_defers_every_image() -> None:
    """Throttling on the dedupe look-up defers every named image rather than failing it."""
    ecs = Account([fleet_image("image-a")])
    ecs.emulator.fail_next("DescribeTasks", 429, "FlowLimitExceeded", "slow", times=FOREVER)
    outcomes = run(export("image-a", "image-b"), ecs)
    assert [o.status for o in outcomes.values()] == ["deferred", "deferred"]


def test_a_direct_event_costs_two_requests() -> None:
    """The usual event asks for the image's tasks, then exports: the image itself is looked up only when
    ExportImage refuses it."""
    ecs = Account([fleet_image("image-a")])
    run(export("image-a"), ecs)
    assert [c[0] for c in ecs.calls] == ["DescribeTasks", "ExportImage"]
    assert ecs.emulator.stats()["requests_total"] == 2


def test_refused_image_that_cannot_be_looked_up_is_deferred_not_lost() -> None:
    """If ExportImage refuses an image's status and the look-up fails, a later run asks again."""
    ecs = Account([fleet_image("image-a", status="creating")])
    ecs.emulator.fail_next("DescribeImages", 500, "InternalError", "down", times=FOREVER)
    outcome = run(export("image-a"), ecs)["image-a"]
    assert outcome.status == "deferred"


def test_images_not_started_before_the_cutoff_are_deferred() -> None:
    """Past the start cutoff, no new export begins: the images are deferred, none cut off mid-request."""
    ecs = Account([fleet_image("image-a"), fleet_image("image-b")])
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
    ecs = Account([fleet_image(i) for i in ids])
    outcomes = run(export(*ids), ecs)
    assert list(outcomes) == ids
    assert all(ecs.exports_of(i) == 1 for i in ids)


class Timing:
    """Each ExportImage moves the clock ``step`` seconds on (a slow, rate-limited copy), and each look-up
    after the first takes ``slow_lookups`` seconds to answer; records when each image was last looked up
    and how old that look-up was when its ExportImage went out. Another copy of the function exports
    ``rival_image`` right after our first export (its task in ``rival_task``)."""

    def __init__(
        self, ecs: Account, *, step: float, rival_image: str | None = None, slow_lookups: float = 0.0
    ) -> None:
        self.ecs, self.step, self.rival_image, self.slow_lookups = ecs, step, rival_image, slow_lookups
        self.looked_at: dict[str, float] = {}
        self.ages: dict[str, float] = {}
        self.rival_task: str | None = None
        ecs.api.on("DescribeTasks", self.look_up)
        ecs.api.on("ExportImage", self.export)

    def look_up(self, call: Call, send: Callable[[], Any]) -> Any:
        if call.n > 1:
            self.ecs.clock.advance(self.slow_lookups)
        self.looked_at.update(dict.fromkeys(call.asked, self.ecs.clock.monotonic()))
        return send()

    def export(self, call: Call, send: Callable[[], Any]) -> Any:
        self.ecs.clock.advance(self.step)
        self.ages[call.asked] = self.ecs.clock.monotonic() - self.looked_at[call.asked]
        started = send()
        if self.rival_image is not None and self.rival_task is None:
            self.rival_task = self.ecs.export_now(self.rival_image)
        return started


def test_each_export_is_cleared_by_a_look_up_at_most_ten_seconds_old() -> None:
    """A slow scan looks its remaining images up again as it goes (batched), so an image another copy
    exported meanwhile is skipped, and no ExportImage goes out on a look-up older than 10 seconds."""
    ids = [f"image-{c}" for c in "abcdefgh"]
    ecs = Account([fleet_image(i) for i in ids])
    timing = Timing(ecs, step=3.0, rival_image="image-e")
    plan = dataclasses.replace(PLAN, concurrency=1)
    outcomes = {
        o.image_id: o for o in run_command(export(*ids), api=ecs.api, plan=plan, budget=WIDE, clock=ecs.clock)
    }
    assert outcomes["image-e"].status == "skipped"
    assert outcomes["image-e"].task_id == timing.rival_task
    assert {i for i, o in outcomes.items() if o.status == "started"} == set(ids) - {"image-e"}
    assert max(timing.ages.values()) <= 10
    lookups = [batch for action, batch in ecs.calls if action == "DescribeTasks"]
    assert len(lookups) < len(ids)  # batched: one look-up covers the next images due
    assert all(len(batch) > 1 for batch in lookups[:-1])


def test_a_refused_image_the_api_calls_available_is_deferred_with_the_apis_error() -> None:
    """ExportImage says InvalidImageStatus, DescribeImages says available: deferred, keeping the API's code,
    message and request id."""
    ecs = Account([fleet_image("image-a", status="creating", ready_after_seconds=5)])
    refused: list[ApiError] = []

    def keep_the_refusal(_call: Call, send: Callable[[], Any]) -> Any:
        try:
            return send()
        except ApiError as error:
            refused.append(error)
            raise

    def ready_by_now(_call: Call, send: Callable[[], Any]) -> Any:
        ecs.clock.advance(5)  # the image became available between the refusal and the look-up
        return send()

    ecs.api.on("ExportImage", keep_the_refusal)
    ecs.api.on("DescribeImages", ready_by_now)
    outcome = run(export("image-a"), ecs)["image-a"]
    assert outcome.status == "deferred"
    assert outcome.error is not None
    (error,) = refused
    assert error.request_id
    assert (outcome.error.code, outcome.error.request_id) == ("InvalidImageStatus", error.request_id)
    assert outcome.error.message == str(error.message)


@pytest.mark.parametrize("image_status", ["creating", "frozen"])
def test_a_refused_image_whose_status_may_change_is_deferred_naming_it(image_status: str) -> None:
    """An image still creating, or in a status the function does not know, is deferred (the status in the
    reason), never failed for good."""
    ecs = Account([fleet_image("image-a", status="creating")])
    if image_status != "creating":  # a status the emulated account cannot hold: DescribeImages says it

        def in_that_status(_call: Call, send: Callable[[], Any]) -> list[Image]:
            return [dataclasses.replace(i, status=image_status) for i in send()]

        ecs.api.on("DescribeImages", in_that_status)
    outcome = run(export("image-a"), ecs)["image-a"]
    assert outcome.status == "deferred"
    assert image_status in (outcome.reason or "")
    assert outcome.error is not None
    assert outcome.error.code == "InvalidImageStatus"


def _also_listing(ecs: Account, extra: Task, *, from_call: int = 1) -> None:
    """DescribeTasks answers ``extra`` too from call ``from_call`` on: a task in a status the emulated
    account cannot hold."""

    def hook(call: Call, send: Callable[[], Any]) -> list[Task]:
        return [*send(), extra] if call.n >= from_call else list(send())

    ecs.api.on("DescribeTasks", hook)


def test_an_unknown_task_status_is_never_exported_over() -> None:
    """An export task in UnknownStatus may be running: the image is skipped with that task, not exported."""
    ecs = Account([fleet_image("image-a")])
    unknown = task("UnknownStatus", image_id="image-a")
    _also_listing(ecs, unknown)
    outcome = run(export("image-a"), ecs)["image-a"]
    assert (outcome.status, outcome.task_id) == ("skipped", unknown.task_id)
    assert "UnknownStatus" in (outcome.reason or "")
    assert ecs.exports_of("image-a") == 0  # only the task that was already there
    assert ecs.count("ExportImage") == 0


def test_a_lock_held_by_an_export_in_an_unknown_status_is_skipped() -> None:
    """ResourceLocked while an export task's status is not known: skipped with that task, not deferred."""
    ecs = Account([fleet_image("image-a")])
    ecs.emulator.fail_next("ExportImage", 412, "OperationDenied.ResourceLocked", "locked")
    unknown = task("UnknownStatus", image_id="image-a")
    _also_listing(ecs, unknown, from_call=2)  # the second look sees it
    outcome = run(export("image-a"), ecs)["image-a"]
    assert (outcome.status, outcome.task_id) == ("skipped", unknown.task_id)


def test_the_budget_running_out_mid_request_says_so() -> None:
    """When the budget stops an image's request, the reason names the time budget, not the rate limit."""
    ecs = Account([fleet_image("image-a")])
    ecs.api.on(
        "ExportImage",
        failing(BudgetExhausted("the time budget ran out while waiting for the request rate limit")),
    )
    outcome = run(
        export("image-a"), ecs, budget=Budget(send_by=1e12, start_by=1e12, seconds=20, report_by=1e12)
    )["image-a"]
    assert outcome.status == "deferred"
    assert "time budget (20 s)" in (outcome.reason or "")
    assert "rate limit" not in (outcome.reason or "")


def test_a_tag_scan_reaching_the_apis_cap_filters_on_our_side() -> None:
    """When a tag search lists 1,000 images (the API's cap), the scan lists without the filter and keeps
    the tagged images itself, so none past the cap is missed; the log says so."""
    ids = [f"image-t{n:04d}" for n in range(1001)]
    images = [fleet_image(i, tags={"env": "prod"}) for i in ids]
    done = [fleet_task(i, "Running") for i in ids]  # each one found (and skipped): no export to send
    ecs = Account([*images, fleet_image("image-dev", tags={"env": "dev"})], done)
    with capture_logs() as logs:
        outcomes = run(ScanCommand(trigger="timer", tags={"env": "prod"}), ecs)
    assert sorted(outcomes) == ids
    assert {o.status for o in outcomes.values()} == {"skipped"}
    assert "image-dev" not in outcomes
    assert [c[1] for c in ecs.calls if c[0] == "DescribeImages"] == [{"env": "prod"}, {}]
    assert any(entry["event"] == "scan.tags_filtered_locally" for entry in logs)


def test_a_tag_scan_under_the_cap_trusts_the_server() -> None:
    """Below the cap, the server's filtered list is the scan: one DescribeImages pass."""
    ecs = Account([fleet_image("image-a", tags={"env": "prod"}), fleet_image("image-b", tags={"env": "dev"})])
    outcomes = run(ScanCommand(trigger="timer", tags={"env": "prod"}), ecs)
    assert list(outcomes) == ["image-a"]
    assert sum(1 for c in ecs.calls if c[0] == "DescribeImages") == 1


def test_an_export_is_never_sent_on_a_look_up_that_answered_too_slowly() -> None:
    """When the look-up that should clear an image takes the whole clearance window to answer, the image is
    deferred rather than exported on a stale view."""
    ecs = Account([fleet_image(f"image-{c}") for c in "abcd"])
    timing = Timing(ecs, step=3.0, slow_lookups=11.0)
    plan = dataclasses.replace(PLAN, concurrency=1)
    outcomes = run_command(
        export("image-a", "image-b", "image-c", "image-d"),
        api=ecs.api,
        plan=plan,
        budget=WIDE,
        clock=ecs.clock,
    )
    # 3 s an export: image-c goes out 9 s after the first look-up; image-d needs a new one, which is slow.
    assert [o.status for o in outcomes] == ["started", "started", "started", "deferred"]
    assert "too slowly" in (outcomes[3].reason or "")
    assert max(timing.ages.values()) <= 10
