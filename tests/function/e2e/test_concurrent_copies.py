"""Two copies of the function scanning the same images at once, against the ECS emulator over real sockets."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

import httpx

from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import new_images_fleet
from handler.adapters.clients import openapi_client
from handler.adapters.ecs import API_VERSION, SERVICE, EcsClient
from handler.adapters.pacing import RateLimiter
from handler.adapters.retry import RetryPolicy
from handler.core.budget import Budget
from handler.core.plan import ExportPlan
from handler.core.run import run_command
from handler.models.events import ScanCommand
from handler.models.results import ImageOutcome
from handler.models.settings import Settings
from tests.support.emulated import CREDENTIALS

IMAGES = 8
# The clearance window, scaled down from the product's 10 s so that the test takes seconds, and export tasks
# that finish a little after it: a copy relying on a look-up older than the window would export again.
CLEARANCE = 1.0
TASK_SECONDS = 1.5
PLAN = ExportPlan(
    bucket="demo-exports",
    prefix="nightly",
    region="cn-beijing",
    concurrency=4,
    dedupe_hours=None,
    lookback_hours=25,
    clearance_seconds=CLEARANCE,
)


def scan_copy(
    emulator: EcsEmulator, http: httpx.Client, *, max_rps: float, plan: ExportPlan
) -> tuple[ImageOutcome, ...]:
    """One copy of the function: its own rate limiter at ``max_rps``, a timer scan with a 30 s budget."""
    api = openapi_client(
        CREDENTIALS,
        service=SERVICE,
        version=API_VERSION,
        endpoint=emulator.endpoint,
        region=emulator.region,
        policy=RetryPolicy(3, 0.05, 0.2),
        limiter=RateLimiter(max_rps, burst=1),
        http=http,
    )
    budget = Budget.ending_at(time.monotonic() + 30, now=time.monotonic(), settings=Settings())
    return run_command(ScanCommand(trigger="timer"), api=EcsClient(api), plan=plan, budget=budget)


def test_two_concurrent_scans_at_different_rates_export_each_image_once(
    start_emulator: Callable[..., EcsEmulator],
) -> None:
    """A fast copy and one sixteen times slower scan the same images at once; the slow one clears the images
    first, and would reach most of them after the fast one's exports have finished (and the API's lock is
    gone), yet every image is exported exactly once: each export is cleared by a look-up younger than the
    window."""
    emulator = start_emulator(new_images_fleet(IMAGES), task_seconds=TASK_SECONDS)
    results: dict[str, tuple[ImageOutcome, ...]] = {}
    began = time.monotonic()
    with httpx.Client(timeout=5) as http:

        def run(name: str, max_rps: float, plan: ExportPlan) -> None:
            results[name] = scan_copy(emulator, http, max_rps=max_rps, plan=plan)

        slow = threading.Thread(target=run, args=("slow", 2.0, dataclasses.replace(PLAN, concurrency=1)))
        fast = threading.Thread(target=run, args=("fast", 32.0, PLAN))
        slow.start()
        # The slow copy has cleared every image (its first task look-up) before the fast one exports any.
        while not emulator.stats()["requests"].get("DescribeTasks") and time.monotonic() - began < 5:
            time.sleep(0.01)
        fast.start()
        for copy in (slow, fast):
            copy.join(timeout=20)
    elapsed = time.monotonic() - began

    assert emulator.export_tasks_by_image() == {f"image-new{n:04d}": 1 for n in range(IMAGES)}
    assert elapsed < 15
    for name in ("fast", "slow"):
        assert len(results[name]) == IMAGES
        assert {o.status for o in results[name]} <= {"started", "skipped"}
    started = [o.image_id for name in ("fast", "slow") for o in results[name] if o.status == "started"]
    assert sorted(started) == [f"image-new{n:04d}" for n in range(IMAGES)]
