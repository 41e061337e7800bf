"""The clearance holds on every send: an ExportImage goes out only on a task look-up at most the clearance
window old, its retries included; one held past it is not sent, and the image is looked up again first
(against the emulated account, through the function's own client)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from handler.core.budget import Budget
from handler.core.export_flow import CLEARANCE_TRIES, run_command
from handler.core.plan import ExportPlan
from handler.errors import ClearanceExpired, Throttled, UnknownOutcomeError
from handler.models.events import ExportCommand
from handler.models.results import ImageOutcome
from tests.support.account import Account
from tests.support.builders import fleet_image
from tests.support.fakes import Call, failing

PLAN = ExportPlan(
    bucket="b-1", prefix="nightly", region="cn-beijing", concurrency=1, dedupe_hours=None, lookback_hours=25
)
WIDE = Budget(send_by=1e12, start_by=1e12, seconds=900, report_by=1e12)
THROTTLED = Throttled("slow down", code="HTTP429", action="ExportImage", retry_after=15.0)
EXPIRED = ClearanceExpired("ExportImage was not sent again after HTTP429", late_by=5.0, cause=THROTTLED)
LOST = UnknownOutcomeError("lost", code="ReadTimeout", action="ExportImage")
EXPORT_A = ExportCommand(trigger="direct", image_ids=("image-a",))


def run(ecs: Account, *, budget: Budget = WIDE) -> ImageOutcome:
    (outcome,) = run_command(EXPORT_A, api=ecs.api, plan=PLAN, budget=budget, clock=ecs.clock)
    return outcome


def actions(ecs: Account) -> list[str]:
    return [action for action, _ in ecs.calls]


def test_a_send_held_past_its_clearance_is_looked_up_again_then_sent() -> None:
    """An ExportImage the client did not send (its 15 s wait would end 5 s past the window) is followed, when
    that wait is over, by a fresh DescribeTasks, then sent once more: one export, never two sends without a
    look-up between."""
    ecs = Account([fleet_image("image-a")])
    ecs.api.on("ExportImage", failing(EXPIRED))
    outcome = run(ecs)
    assert outcome.status == "started"
    assert actions(ecs) == ["DescribeTasks", "ExportImage", "DescribeTasks", "ExportImage"]
    assert ecs.clock.slept == [15.0]  # the look-up at 0 s cleared it until 10 s; the turn came 5 s later
    assert ecs.exports_of("image-a") == 1


@pytest.mark.parametrize("ended", [False, True], ids=["running", "ended"])
def test_an_export_another_copy_started_meanwhile_is_skipped_not_repeated(ended: bool) -> None:
    """While our ExportImage waited, another copy of the function exported the image (its task maybe
    already ended, releasing the API's lock): the fresh look-up finds that task, the image is skipped with
    it and no second export is sent."""
    ecs = Account([fleet_image("image-a")])
    rival: list[str] = []

    def rival_exports_while_we_wait(call: Call, send: Callable[[], Any]) -> Any:
        rival.append(ecs.export_now("image-a"))
        if ended:
            ecs.clock.advance(60)  # the rival's export (30 s) is over
        raise EXPIRED

    ecs.api.on("ExportImage", rival_exports_while_we_wait)
    outcome = run(ecs)
    assert (outcome.status, outcome.task_id) == ("skipped", rival[0])
    assert outcome.reason == ("already exported" if ended else "an export is already running")
    assert ecs.count("ExportImage") == 1
    assert ecs.exports_of("image-a") == 1


def test_a_task_found_after_a_lost_answer_is_reported_as_ours() -> None:
    """When an earlier send's answer was lost, the task the fresh look-up finds may be that send's: it is
    reported started, as after a lost answer, not skipped."""
    ecs = Account([fleet_image("image-a")])

    def lost_then_held(call: Call, send: Callable[[], Any]) -> Any:
        if call.n == 1:
            raise LOST  # nothing appears at first
        ecs.export_now("image-a")  # the first request's export, showing late
        raise EXPIRED

    ecs.api.on("ExportImage", lost_then_held)
    outcome = run(ecs)
    assert (outcome.status, outcome.reason) == ("started", "the answer was lost; the export task was found")
    assert outcome.task_id == str(ecs.tasks_of("image-a")[0]["Id"])
    assert ecs.exports_of("image-a") == 1


def test_a_clearance_that_keeps_running_out_defers_the_image() -> None:
    """Throttling that holds every send past its clearance ends, after CLEARANCE_TRIES fresh look-ups, as
    deferred with ClearanceExpired kept: a later run exports it; nothing was exported."""
    ecs = Account([fleet_image("image-a")])
    ecs.api.on("ExportImage", failing(*[EXPIRED] * CLEARANCE_TRIES))
    outcome = run(ecs)
    assert outcome.status == "deferred"
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.retryable) == ("ClearanceExpired", True)
    assert f"{CLEARANCE_TRIES} times" in (outcome.reason or "")
    assert ecs.count("ExportImage") == CLEARANCE_TRIES
    assert ecs.count("DescribeTasks") == 1 + CLEARANCE_TRIES
    assert ecs.exports_of("image-a") == 0


def test_a_clearance_that_runs_out_after_a_lost_answer_stays_a_lost_answer() -> None:
    """When the sends that follow a lost answer keep running past their clearance, the image fails
    retryably with the lost answer's code: an earlier send may have started it, a later run checks."""
    ecs = Account([fleet_image("image-a")])
    ecs.api.on("ExportImage", failing(LOST, *[EXPIRED] * CLEARANCE_TRIES))
    outcome = run(ecs)
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.retryable) == ("ReadTimeout", True)


def test_no_fresh_send_once_the_budget_ran_low() -> None:
    """A clearance that ran out past the start cutoff is looked up again (a task found is still reported)
    but not sent again: the image is deferred."""
    ecs = Account([fleet_image("image-a")])

    def held_past_the_cutoff(call: Call, send: Callable[[], Any]) -> Any:
        ecs.clock.advance(60)
        raise EXPIRED

    ecs.api.on("ExportImage", held_past_the_cutoff)
    outcome = run(ecs, budget=dataclasses.replace(WIDE, start_by=50))
    assert outcome.status == "deferred"
    assert "time budget ran low" in (outcome.reason or "")
    assert actions(ecs) == ["DescribeTasks", "ExportImage", "DescribeTasks"]


def test_a_failed_fresh_look_up_sends_nothing_blind() -> None:
    """When the look-up after a clearance ran out fails, the image is not sent again: it fails retryably
    with the look-up's error."""
    ecs = Account([fleet_image("image-a")])

    def held_then_down(call: Call, send: Callable[[], Any]) -> Any:
        ecs.emulator.fail_next("DescribeTasks", 500, "InternalError", "down")
        raise EXPIRED

    ecs.api.on("ExportImage", held_then_down)
    outcome = run(ecs)
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.retryable) == ("InternalError", True)
    assert ecs.count("ExportImage") == 1


def test_each_send_is_cleared_for_the_window_from_when_its_look_up_was_asked_for() -> None:
    """The first send is cleared until 10 s after the look-up that cleared the image was asked for (not
    answered); the send after a lost answer until 10 s after the look-up made then."""
    ecs = Account([fleet_image("image-a")])
    asked: list[float] = []
    cleared: list[float | None] = []

    def slow_look_up(call: Call, send: Callable[[], Any]) -> Any:
        asked.append(ecs.clock.monotonic())
        ecs.clock.advance(1.0)
        return send()

    def note_the_clearance(call: Call, send: Callable[[], Any]) -> Any:
        cleared.append(ecs.api.cleared[-1])
        if call.n == 1:
            raise LOST
        return send()

    ecs.api.on("DescribeTasks", slow_look_up)
    ecs.api.on("ExportImage", note_the_clearance)
    assert run(ecs).status == "started"
    assert cleared == [asked[0] + 10, asked[1] + 10]


def test_the_client_itself_refuses_a_send_past_the_clearance() -> None:
    """Through the function's own client: a send whose turn comes 11 s after the look-up is not made
    (ClearanceExpired from the client), the image is looked up again and the next send goes out."""
    ecs = Account([fleet_image("image-a")])

    def late_first_turn(call: Call, send: Callable[[], Any]) -> Any:
        if call.n == 1:
            ecs.clock.advance(11)
        return send()

    ecs.api.on("ExportImage", late_first_turn)
    outcome = run(ecs)
    assert outcome.status == "started"
    assert actions(ecs) == ["DescribeTasks", "ExportImage", "DescribeTasks", "ExportImage"]
    assert ecs.emulator.stats()["requests_total"] == 3  # the held send never reached the API
    assert ecs.exports_of("image-a") == 1
