"""Task look-ups just in time: a scan looks the next chunk of images up only when it reaches them, sized so
that every export of the chunk goes out within the clearance window at the rate the limiter allows (against
the emulated account, each request taking time on the fake clock)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable
from typing import Any

from handler.core.budget import Budget
from handler.core.export_flow import run_command
from handler.core.in_flight import Tracked
from handler.core.plan import ExportPlan
from handler.models.events import ScanCommand
from tests.support.account import Account
from tests.support.builders import fleet_image, fleet_task
from tests.support.fakes import Call, FakeClock

PLAN = ExportPlan(
    bucket="b-1", prefix="nightly", region="cn-beijing", concurrency=4, dedupe_hours=None, lookback_hours=25
)
WIDE = Budget(send_by=1e12, start_by=1e12, seconds=900, report_by=1e12)
SCAN = ScanCommand(trigger="timer")


def new_ids(count: int) -> list[str]:
    return [f"image-{n:03d}" for n in range(count)]


class Paced:
    """The emulated account where every request takes ``step`` seconds of the fake clock (one request at a
    time, as through the rate limiter), recording when each image was last looked up and how old that
    look-up was when the image's ExportImage went out; look-up number ``lookup_fault_on`` (from 1) fails."""

    def __init__(self, ids: Iterable[str], step: float, done: Iterable[str] = ()) -> None:
        self.ids = list(ids)
        self.account = Account(
            [fleet_image(i) for i in self.ids],
            [fleet_task(i, "Succeeded") for i in done],
            clock=FakeClock(),
        )
        self.clock = self.account.clock
        self.step = step
        self.lookup_fault_on: int | None = None
        self.lookups: list[list[str]] = []
        self.exports: list[str] = []
        self.ages: dict[str, float] = {}
        self._looked_at: dict[str, float] = {}
        self._lock = threading.Lock()
        for action in ("DescribeImages", "DescribeTasks", "ExportImage"):
            self.account.api.on(action, self._request)

    def _request(self, call: Call, send: Callable[[], Any]) -> Any:
        with self._lock:
            sent = self.clock.monotonic()
            self.clock.advance(self.step)
            if call.action == "DescribeTasks":
                self.lookups.append(call.asked)
                if self.lookup_fault_on == call.n:
                    self.account.emulator.fail_next("DescribeTasks", 500, "InternalError", "down")
                answer = send()
                self._looked_at.update(dict.fromkeys(call.asked, sent))
                return answer
            if call.action == "ExportImage":
                image_id = call.asked
                self.ages[image_id] = max(self.ages.get(image_id, 0.0), sent - self._looked_at[image_id])
                self.exports.append(image_id)
            return send()


def scan(ecs: Paced, plan: ExportPlan = PLAN, tracked: Tracked | None = None) -> list[str]:
    outcomes = run_command(
        SCAN, api=ecs.account.api, plan=plan, budget=WIDE, clock=ecs.clock, tracked=tracked
    )
    assert [o.image_id for o in outcomes] == ecs.ids
    return [o.status for o in outcomes]


def test_a_scan_of_150_new_images_at_10_rps_looks_tasks_up_twice() -> None:
    """At 10 requests a second, 150 new images cost two DescribeTasks (89 images, then 61) and 150 exports,
    each sent at most 10 s after the look-up that cleared it."""
    ecs = Paced(new_ids(150), step=0.1)
    assert scan(ecs, dataclasses.replace(PLAN, concurrency=1)) == ["started"] * 150
    assert [len(ids) for ids in ecs.lookups] == [89, 61]
    assert ecs.exports == new_ids(150)
    assert max(ecs.ages.values()) <= 10


def test_four_workers_share_the_chunks_and_export_each_image_once() -> None:
    """Four workers export the same 150 images with two DescribeTasks (the first covering 3 images fewer, for
    the requests the other workers may have queued ahead of its last export), each image exactly once."""
    ecs = Paced(new_ids(150), step=0.1)
    assert scan(ecs) == ["started"] * 150
    assert [len(ids) for ids in ecs.lookups] == [86, 64]
    assert sorted(ecs.exports) == new_ids(150)


def test_the_chunk_follows_the_rate_the_limiter_allows() -> None:
    """At VOLCENGINE_MAX_RPS=2 a look-up covers 17 images (18 requests in 9 s), so 150 images take 9
    look-ups and no export goes out on a look-up older than 10 s."""
    ecs = Paced(new_ids(150), step=0.5)
    assert scan(ecs, dataclasses.replace(PLAN, max_rps=2.0, concurrency=1)) == ["started"] * 150
    assert [len(ids) for ids in ecs.lookups] == [17] * 8 + [14]
    assert max(ecs.ages.values()) <= 10


def test_requests_slower_than_planned_are_looked_up_again_in_time() -> None:
    """When requests take three times longer than the configured rate promises (throttling, slow answers),
    the images still due are looked up again as the scan goes on, and every export still goes out within
    10 s of its look-up."""
    ecs = Paced(new_ids(150), step=0.3)
    assert scan(ecs, dataclasses.replace(PLAN, concurrency=1)) == ["started"] * 150
    assert len(ecs.lookups) > 2
    assert sorted(ecs.exports) == new_ids(150)
    assert max(ecs.ages.values()) <= 10


def test_a_failed_chunk_look_up_holds_back_only_its_images() -> None:
    """When the second chunk's look-up fails, its images fail retryably without being exported blind, and the
    first chunk's exports stand."""
    ecs = Paced(new_ids(150), step=0.1)
    ecs.lookup_fault_on = 2
    outcomes = run_command(SCAN, api=ecs.account.api, plan=PLAN, budget=WIDE, clock=ecs.clock)
    assert [o.status for o in outcomes] == ["started"] * 86 + ["failed"] * 64
    assert all(o.error is not None and o.error.retryable for o in outcomes[86:])
    assert sorted(ecs.exports) == new_ids(86)


def test_the_cap_is_spent_in_order_on_images_found_due() -> None:
    """Under EXPORT_MAX_IN_FLIGHT=3 the first three images found due start; images already exported are
    skipped wherever they stand and never take a slot; the rest are queued, looked up 100 at a time."""
    ids = new_ids(150)
    ecs = Paced(ids, step=0.1, done=["image-001", "image-003", "image-120"])
    statuses = scan(ecs, tracked=Tracked(cap=3, in_flight=0))
    expected = ["started", "skipped", "started", "skipped", "started"] + ["queued"] * 145
    expected[120] = "skipped"
    assert statuses == expected
    assert sorted(ecs.exports) == ["image-000", "image-002", "image-004"]  # four workers: in any order
    assert [len(batch) for batch in ecs.lookups] == [86, 64]
