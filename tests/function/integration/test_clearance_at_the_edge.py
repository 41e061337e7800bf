"""The clearance at the HTTP edge (respx): what the export flow sends, request by request, when ExportImage
is throttled with a Retry-After longer or shorter than the clearance window, through the function's own
client (its retries, its rate limiter) on a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl

import httpx
import pytest
import respx

from handler.adapters.pacing import RateLimiter
from handler.adapters.signing import Credentials
from handler.core.budget import Budget
from handler.core.export_flow import run_command
from handler.core.plan import ExportPlan
from handler.models.events import ExportCommand
from handler.models.results import ImageOutcome
from tests.support.builders import NOW, api_error, api_ok, ecs_client
from tests.support.fakes import FakeClock

ENDPOINT = "https://open.volcengineapi.com"
CREDS = Credentials("AKLTclearance00000001", "clearance-secret-key-01")
PLAN = ExportPlan(
    bucket="b-1", prefix="nightly", region="cn-beijing", concurrency=1, dedupe_hours=None, lookback_hours=25
)
WIDE = Budget(send_by=1e12, start_by=1e12, seconds=900, report_by=1e12)
EXPORT_A = ExportCommand(trigger="direct", image_ids=("image-a",))
RIVAL_TASK = {
    "Id": "t-rival",
    "Type": "ExportImage",
    "Status": "Running",
    "ResourceId": "image-a",
    "CreatedAt": NOW.isoformat(),
}

Answer = Callable[[int], httpx.Response]


class Api:
    """The ECS API as respx answers it: each action's n-th call (from 1) answered by its script, every
    request's action kept in order in ``sent`` and the clock's reading when it came in ``at``."""

    def __init__(self, clock: FakeClock, *, export: Answer, tasks: Answer) -> None:
        self.sent: list[str] = []
        self.at: list[float] = []
        self._clock = clock
        self._scripts = {"ExportImage": export, "DescribeTasks": tasks}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        action = dict(parse_qsl(request.url.query.decode()))["Action"]
        self.sent.append(action)
        self.at.append(self._clock.monotonic())
        return self._scripts[action](self.sent.count(action))


def throttled(seconds: str) -> Answer:
    """ExportImage throttled once with ``Retry-After: seconds``, then accepted."""
    return lambda n: (
        api_error(429, "FlowLimitExceeded", **{"Retry-After": seconds})
        if n == 1
        else api_ok({"TaskId": "t-ours"})
    )


def no_tasks(_n: int) -> httpx.Response:
    return api_ok({"Tasks": [], "NextToken": ""})


def run(api: Api, clock: FakeClock) -> ImageOutcome:
    respx.get(ENDPOINT).mock(side_effect=api)
    client = ecs_client(clock, CREDS, limiter=RateLimiter(10, clock=clock))
    (outcome,) = run_command(EXPORT_A, api=client, plan=PLAN, budget=WIDE, clock=clock)
    return outcome


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0, wall=NOW)


@respx.mock
def test_a_retry_after_longer_than_the_window_means_look_up_again_then_send(clock: FakeClock) -> None:
    """A 429 with Retry-After 15 s: the next request is a DescribeTasks, sent when the 15 s are over, not a
    second ExportImage on a 15 s-old look-up; nothing found, the export is sent on that fresh look-up."""
    api = Api(clock, export=throttled("15"), tasks=no_tasks)
    outcome = run(api, clock)
    assert api.sent == ["DescribeTasks", "ExportImage", "DescribeTasks", "ExportImage"]
    assert (outcome.status, outcome.task_id) == ("started", "t-ours")
    _, throttled_at, looked_again_at, sent_at = api.at
    assert looked_again_at - throttled_at >= 15.0
    assert sent_at - looked_again_at < 1.0  # well within the window of the look-up that cleared it


@respx.mock
def test_a_task_that_appeared_meanwhile_means_no_second_export(clock: FakeClock) -> None:
    """When another copy exported the image during the 15 s, the fresh look-up finds its task: the image
    is skipped with it and ExportImage is not sent again."""
    api = Api(
        clock,
        export=throttled("15"),
        tasks=lambda n: api_ok({"Tasks": [RIVAL_TASK] if n > 1 else [], "NextToken": ""}),
    )
    outcome = run(api, clock)
    assert api.sent == ["DescribeTasks", "ExportImage", "DescribeTasks"]
    assert (outcome.status, outcome.task_id) == ("skipped", "t-rival")


@respx.mock
def test_a_retry_after_within_the_window_resends_without_a_look_up(clock: FakeClock) -> None:
    """A 429 with Retry-After 3 s leaves the look-up young enough: ExportImage is sent again after the wait,
    with no look-up between."""
    api = Api(clock, export=throttled("3"), tasks=no_tasks)
    outcome = run(api, clock)
    assert api.sent == ["DescribeTasks", "ExportImage", "ExportImage"]
    assert (outcome.status, outcome.task_id) == ("started", "t-ours")
    assert api.at[2] - api.at[0] == pytest.approx(3.0)
