"""Retention end to end: timer runs of the function against the emulator over real sockets, with exports and
their manifests seeded into the emulator's TOS through the function's own TOS client
(``tests.support.seeded_exports``: the README's worked example in group web, a pinned export in pin,
unverified ones in raw, and busy, a group with an export in flight)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from exporter_tools.emulator.ecs import EcsEmulator
from tests.support.events import load_event
from tests.support.seeded_exports import (
    ALL,
    BUCKET,
    DISK,
    EXPORTS,
    PREFIX,
    RETENTION,
    WORKED_GO,
    exports_in,
    fleet,
    present,
    seed,
)

Emulated = Callable[..., EcsEmulator]
Run = Callable[..., tuple[dict[str, Any], bool]]


def timer(n: int) -> dict[str, Any]:
    return {**load_event("timer_empty"), "id": f"timer-retention-{n}"}


def by_status(result: dict[str, Any], status: str) -> list[str]:
    return [r["image_id"].removeprefix("image-") for r in result["results"] if r["status"] == status]


def test_the_plan_for_the_worked_example_is_exactly_the_expected_set(
    seeded_bucket: Callable[..., EcsEmulator], run_handler: Run
) -> None:
    """RETENTION_MODE=plan: the 8 exports of web the rules let go are would_expire, oldest first, each naming
    its place and the policy; pin's oldest (kept by its tag), raw's (unverified) and busy's (in flight) are
    not among them; nothing is deleted."""
    emulator = seeded_bucket(RETENTION_MODE="plan")

    result, raised = run_handler(timer(1))

    assert not raised
    assert result["ok"]
    assert by_status(result, "would_expire") == WORKED_GO
    first = result["results"][0]
    assert first["reason"] == "group web: 12th newest; keep_last=3, keep_weekly=4, min_verified=2"
    assert (first["manifest_key"], first["tos_bucket"], first["size_bytes"]) == (
        "imgexport_image-web1112.manifest.json",
        BUCKET,
        len(DISK),
    )
    assert exports_in(emulator) == ALL


def test_apply_with_a_cap_of_5_deletes_the_5_oldest_whole_and_a_second_run_finishes(
    seeded_bucket: Callable[..., EcsEmulator], run_handler: Run
) -> None:
    """RETENTION_MAX_DELETES=5: the first timer run deletes the 5 oldest of web, each with its file and its
    manifest, and reports the other 3 waiting; the second deletes those 3; a third finds nothing to do. The
    pinned, the unverified, the newest and the in-flight group are untouched throughout."""
    emulator = seeded_bucket()

    first, raised = run_handler(timer(1))

    assert not raised
    assert first["ok"]
    assert by_status(first, "expired") == WORKED_GO[:5]
    assert by_status(first, "would_expire") == WORKED_GO[5:]
    waiting = [r for r in first["results"] if r["status"] == "would_expire"]
    assert all("waits for the next run: RETENTION_MAX_DELETES=5" in r["reason"] for r in waiting)
    assert exports_in(emulator) == ALL - set(WORKED_GO[:5])
    for gone in WORKED_GO[:5]:
        assert f"{PREFIX}_image-{gone}_system.qcow2" not in present(emulator)

    second, _ = run_handler(timer(2))

    assert by_status(second, "expired") == WORKED_GO[5:]
    assert by_status(second, "would_expire") == []
    left = exports_in(emulator)
    assert left == ALL - set(WORKED_GO)
    assert {
        "web1123",
        "pin1116",
        "raw1102",
        "busy1116",
    } <= left  # the newest, the pinned, unverified, in flight
    assert {f"{PREFIX}_image-{k}_system.qcow2" for k in left} <= present(emulator)

    third, _ = run_handler(timer(3))
    assert [r for r in third["results"] if r["status"] in ("expired", "would_expire")] == []


def test_a_ten_minute_clock_offset_deletes_nothing_and_says_why(emulated: Emulated, run_handler: Run) -> None:
    """The emulator's clock (TOS's Date) 10 minutes ahead of the function's: the timer run deletes nothing and
    every export that would go says why."""
    emulator = emulated(
        fleet(),
        env=RETENTION,
        task_seconds=1.0,
        clock=lambda: datetime.now(UTC) + timedelta(minutes=10),
    )
    seed(EXPORTS)

    result, _ = run_handler(timer(1))

    assert by_status(result, "expired") == []
    going = [r for r in result["results"] if r["status"] == "would_expire"]
    assert [r["image_id"].removeprefix("image-") for r in going] == WORKED_GO
    assert all("not deleted: TOS's Date (" in r["reason"] for r in going)
    assert all("ahead of the local clock, more than 5 min" in r["reason"] for r in going)
    assert exports_in(emulator) == ALL
