"""Task look-ups just in time: a scan looks the next chunk of images up only when it reaches them, sized so
that every export of the chunk goes out within the clearance window at the rate the limiter allows."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta

from handler.core.budget import Budget
from handler.core.plan import ExportPlan
from handler.core.run import Tracked, run_command
from handler.errors import RetryableApiError
from handler.models.api import ExportStarted, Image, Task
from handler.models.events import ScanCommand
from tests.support.fakes import WALL_START, FakeClock

PLAN = ExportPlan(
    bucket="b-1", prefix="nightly", region="cn-beijing", concurrency=4, dedupe_hours=None, lookback_hours=25
)
WIDE = Budget(send_by=1e12, start_by=1e12, seconds=900, report_by=1e12)
SCAN = ScanCommand(trigger="timer")


def new_ids(count: int) -> list[str]:
    return [f"image-{n:03d}" for n in range(count)]


class PacedEcs:
    """An ECS account in memory where every request takes ``step`` seconds of a fake clock (one request at a
    time, as through the rate limiter), recording when each image was last looked up and how old that look-up
    was when the image's ExportImage went out."""

    def __init__(self, ids: Iterable[str], clock: FakeClock, step: float, done: Iterable[str] = ()) -> None:
        created = (WALL_START - timedelta(hours=1)).isoformat()
        self.images = [
            Image.model_validate(
                {"ImageId": i, "Status": "available", "Visibility": "private", "CreatedAt": created}
            )
            for i in ids
        ]
        self.tasks = [self._task(f"t-old-{i}", i, "Succeeded") for i in done]
        self.clock = clock
        self.step = step
        self.lookup_fault_on: int | None = None  # the look-up (1-based) that fails
        self.lookups: list[list[str]] = []
        self.exports: list[str] = []
        self.ages: dict[str, float] = {}
        self._looked_at: dict[str, float] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    @staticmethod
    def _task(task_id: str, image_id: str, status: str) -> Task:
        return Task.model_validate(
            {
                "Id": task_id,
                "Type": "ExportImage",
                "Status": status,
                "ResourceId": image_id,
                "CreatedAt": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
            }
        )

    def _request(self) -> float:
        sent = self.clock.monotonic()
        self.clock.t += self.step
        return sent

    def export_image(self, image_id: str, bucket: str, prefix: str, *, deadline: float) -> ExportStarted:
        with self._lock:
            sent = self._request()
            self.ages[image_id] = max(self.ages.get(image_id, 0.0), sent - self._looked_at[image_id])
            self.exports.append(image_id)
            task = self._task(f"t-{next(self._ids)}", image_id, "Pending")
            self.tasks.append(task)
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
        with self._lock:
            self._request()
            return iter(list(self.images))

    def describe_tasks(
        self, *, deadline: float, task_ids: Iterable[str] = (), resource_ids: Iterable[str] = ()
    ) -> Iterator[Task]:
        ids = list(resource_ids)
        with self._lock:
            sent = self._request()
            self.lookups.append(ids)
            if self.lookup_fault_on == len(self.lookups):
                raise RetryableApiError("down", code="InternalError", action="DescribeTasks")
            self._looked_at.update(dict.fromkeys(ids, sent))
            return iter([t for t in self.tasks if t.resource_id in ids])


def scan(
    ecs: PacedEcs, clock: FakeClock, plan: ExportPlan = PLAN, tracked: Tracked | None = None
) -> list[str]:
    outcomes = run_command(SCAN, api=ecs, plan=plan, budget=WIDE, clock=clock, tracked=tracked)
    assert [o.image_id for o in outcomes] == [image.image_id for image in ecs.images]
    return [o.status for o in outcomes]


def test_a_scan_of_150_new_images_at_10_rps_looks_tasks_up_twice() -> None:
    """At 10 requests a second, 150 new images cost two DescribeTasks (89 images, then 61) and 150 exports,
    each sent at most 10 s after the look-up that cleared it."""
    clock = FakeClock()
    ecs = PacedEcs(new_ids(150), clock, step=0.1)
    assert scan(ecs, clock, dataclasses.replace(PLAN, concurrency=1)) == ["started"] * 150
    assert [len(ids) for ids in ecs.lookups] == [89, 61]
    assert ecs.exports == new_ids(150)
    assert max(ecs.ages.values()) <= 10


def test_four_workers_share_the_chunks_and_export_each_image_once() -> None:
    """Four workers export the same 150 images with two DescribeTasks (the first covering 3 images fewer, for
    the requests the other workers may have queued ahead of its last export), each image exactly once."""
    clock = FakeClock()
    ecs = PacedEcs(new_ids(150), clock, step=0.1)
    assert scan(ecs, clock) == ["started"] * 150
    assert [len(ids) for ids in ecs.lookups] == [86, 64]
    assert sorted(ecs.exports) == new_ids(150)


def test_the_chunk_follows_the_rate_the_limiter_allows() -> None:
    """At VOLCENGINE_MAX_RPS=2 a look-up covers 17 images (18 requests in 9 s), so 150 images take 9
    look-ups and no export goes out on a look-up older than 10 s."""
    clock = FakeClock()
    ecs = PacedEcs(new_ids(150), clock, step=0.5)
    assert scan(ecs, clock, dataclasses.replace(PLAN, max_rps=2.0, concurrency=1)) == ["started"] * 150
    assert [len(ids) for ids in ecs.lookups] == [17] * 8 + [14]
    assert max(ecs.ages.values()) <= 10


def test_requests_slower_than_planned_are_looked_up_again_in_time() -> None:
    """When requests take three times longer than the configured rate promises (throttling, slow answers),
    the images still due are looked up again as the scan goes on, and every export still goes out within
    10 s of its look-up."""
    clock = FakeClock()
    ecs = PacedEcs(new_ids(150), clock, step=0.3)
    assert scan(ecs, clock, dataclasses.replace(PLAN, concurrency=1)) == ["started"] * 150
    assert len(ecs.lookups) > 2
    assert sorted(ecs.exports) == new_ids(150)
    assert max(ecs.ages.values()) <= 10


def test_a_failed_chunk_look_up_holds_back_only_its_images() -> None:
    """When the second chunk's look-up fails, its images fail retryably without being exported blind, and the
    first chunk's exports stand."""
    clock = FakeClock()
    ecs = PacedEcs(new_ids(150), clock, step=0.1)
    ecs.lookup_fault_on = 2
    outcomes = run_command(SCAN, api=ecs, plan=PLAN, budget=WIDE, clock=clock)
    assert [o.status for o in outcomes] == ["started"] * 86 + ["failed"] * 64
    assert all(o.error is not None and o.error.retryable for o in outcomes[86:])
    assert sorted(ecs.exports) == new_ids(86)


def test_the_cap_is_spent_in_order_on_images_found_due() -> None:
    """Under EXPORT_MAX_IN_FLIGHT=3 the first three images found due start; images already exported are
    skipped wherever they stand and never take a slot; the rest are queued, looked up 100 at a time."""
    ids = new_ids(150)
    clock = FakeClock()
    ecs = PacedEcs(ids, clock, step=0.1, done=["image-001", "image-003", "image-120"])
    statuses = scan(ecs, clock, tracked=Tracked(cap=3, in_flight=0))
    expected = ["started", "skipped", "started", "skipped", "started"] + ["queued"] * 145
    expected[120] = "skipped"
    assert statuses == expected
    assert ecs.exports == ["image-000", "image-002", "image-004"]
    assert [len(batch) for batch in ecs.lookups] == [86, 64]
