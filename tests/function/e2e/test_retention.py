"""Retention end to end: timer runs of the function against the emulator over real sockets, with exports and
their manifests seeded into the emulator's TOS through the function's own TOS client.

The bucket holds the README's worked example (group web: 12 daily exports, Thursday 2026-11-12 to Monday
2026-11-23, under RETENTION_KEEP_LAST=3 and RETENTION_KEEP_WEEKLY=4), and beside it a group whose oldest
export's source image carries ``image-exporter:keep`` (pin), a group of unverified exports (raw) and a group
with an export in flight (busy)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage, FleetTask
from handler.adapters.clients import build_clients
from handler.core.tracking import DEST_KEY, STATE_KEY
from handler.models.manifest import (
    Manifest,
    ManifestExport,
    ManifestImage,
    ManifestObject,
    ManifestVerification,
    manifest_key,
)
from handler.models.settings import Settings
from tests.support.emulated import CREDENTIALS
from tests.support.events import load_event

Emulated = Callable[..., EcsEmulator]
Run = Callable[..., tuple[dict[str, Any], bool]]

BUCKET, PREFIX = "demo-exports", "imgexport"
DISK = b"QFI\xfb" + b"\0" * 1020
RETENTION = {
    "RETENTION_MODE": "apply",
    "RETENTION_KEEP_LAST": "3",
    "RETENTION_KEEP_WEEKLY": "4",
    "RETENTION_MIN_VERIFIED": "2",
    "RETENTION_MAX_DELETES": "5",
    "VOLCENGINE_MAX_RPS": "1000",  # the seeding's 48 PUTs, and the deletes, at loopback speed
}
WORKED_STAY = ["web1123", "web1122", "web1121", "web1115"]
WORKED_GO = ["web1112", "web1113", "web1114", "web1116", "web1117", "web1118", "web1119", "web1120"]


def exported(group: str, day: int, *, verified: bool = True) -> Manifest:
    """The manifest of image-<group>11<day>, exported 2026-11-<day> at 03:20 UTC as <group>-202611<day>."""
    image_id = f"image-{group}11{day:02d}"
    at = datetime(2026, 11, day, 3, 20, tzinfo=UTC)
    return Manifest(
        image=ManifestImage(id=image_id, name=f"{group}-202611{day:02d}", size_gib=40),
        export=ManifestExport(
            task_id=f"t-{image_id}", region="cn-beijing", bucket=BUCKET, prefix=PREFIX, finished_at=at
        ),
        objects=(
            ManifestObject(key=f"{PREFIX}_{image_id}_system.qcow2", disk="system", size_bytes=len(DISK)),
        ),
        verification=ManifestVerification(
            level="structure" if verified else "off", verified=verified, checked_at=at
        ),
    )


EXPORTS = (
    [exported("web", d) for d in range(12, 24)]
    + [exported("pin", d) for d in (16, 17, 18, 19)]
    + [exported("raw", d, verified=False) for d in (2, 3, 4)]
    + [exported("busy", d) for d in (16, 17, 18, 19, 20)]
)


def fleet() -> Fleet:
    """The source image of pin's oldest export, tagged keep, and an image of group busy being exported (its
    task Running); both made long ago, so no scan exports them."""
    return Fleet(
        images=(
            FleetImage(id="image-pin1116", name="pin-20261116", created_hours_ago=500, tags={"image-exporter:keep": "audit"}),
            FleetImage(
                id="image-busy1204",
                name="busy-20261204",
                created_hours_ago=500,
                tags={STATE_KEY: "exporting", DEST_KEY: f"tos://{BUCKET}/{PREFIX}"},
            ),
        ),
        tasks=(FleetTask(image_id="image-busy1204", status="Running", created_hours_ago=1),),
        buckets=(FleetBucket(name=BUCKET),),
    )  # fmt: skip


def seed(exports: list[Manifest]) -> None:
    """Each export's files, then its manifest, written with the function's own TOS client."""
    clients = build_clients(Settings.from_env(os.environ), CREDENTIALS, with_store=True)
    assert clients.store is not None
    deadline = time.monotonic() + 60
    for found in exports:
        for one in found.objects:
            clients.store.put_object(
                BUCKET, one.key, DISK, content_type="application/octet-stream", deadline=deadline
            )
        key = manifest_key(PREFIX, found.image.id)
        clients.store.put_object(
            BUCKET, key, found.to_bytes(), content_type="application/json", deadline=deadline
        )


@pytest.fixture
def bucket(emulated: Emulated) -> Callable[..., EcsEmulator]:
    """Start the emulator with the fleet, point the function at it (RETENTION plus ``env``), seed the exports."""

    def start(**env: str) -> EcsEmulator:
        emulator = emulated(fleet(), env={**RETENTION, **env}, task_seconds=1.0)
        seed(EXPORTS)
        return emulator

    return start


def timer(n: int) -> dict[str, Any]:
    return {**load_event("timer_empty"), "id": f"timer-retention-{n}"}


def present(emulator: EcsEmulator) -> set[str]:
    return {o.key for o in emulator.tos.objects() if o.bucket == BUCKET}


def exports_in(emulator: EcsEmulator) -> set[str]:
    """The exports whose manifest is still in the bucket (image-<id> without the image- prefix)."""
    held = present(emulator)
    return {m.image.id.removeprefix("image-") for m in EXPORTS if manifest_key(PREFIX, m.image.id) in held}


def by_status(result: dict[str, Any], status: str) -> list[str]:
    return [r["image_id"].removeprefix("image-") for r in result["results"] if r["status"] == status]


ALL = {m.image.id.removeprefix("image-") for m in EXPORTS}


def test_the_plan_for_the_worked_example_is_exactly_the_expected_set(
    bucket: Callable[..., EcsEmulator], run_handler: Run
) -> None:
    """RETENTION_MODE=plan: the 8 exports of web the rules let go are would_expire, oldest first, each naming
    its place and the policy; pin's oldest (kept by its tag), raw's (unverified) and busy's (in flight) are
    not among them; nothing is deleted."""
    emulator = bucket(RETENTION_MODE="plan")

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
    bucket: Callable[..., EcsEmulator], run_handler: Run
) -> None:
    """RETENTION_MAX_DELETES=5: the first timer run deletes the 5 oldest of web, each with its file and its
    manifest, and reports the other 3 waiting; the second deletes those 3; a third finds nothing to do. The
    pinned, the unverified, the newest and the in-flight group are untouched throughout."""
    emulator = bucket()

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
