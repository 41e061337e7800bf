"""A bucket of seeded exports for retention's tests against the emulator (end to end and ``exporter-tools
retention``): the README's worked example (group web: 12 daily exports, Thursday 2026-11-12 to Monday
2026-11-23, under RETENTION_KEEP_LAST=3 and RETENTION_KEEP_WEEKLY=4), and beside it a group whose oldest
export's source image carries ``image-exporter:keep`` (pin), a group of unverified exports (raw) and a group
with an export in flight (busy). The manifests and files are written through the function's own TOS client."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime

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

__all__ = [
    "ALL",
    "BUCKET",
    "DISK",
    "EXPORTS",
    "PREFIX",
    "RETENTION",
    "WORKED_GO",
    "WORKED_STAY",
    "exported",
    "exports_in",
    "fleet",
    "present",
    "seed",
    "seeded_bucket",
]

Emulated = Callable[..., EcsEmulator]

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


def present(emulator: EcsEmulator) -> set[str]:
    return {o.key for o in emulator.tos.objects() if o.bucket == BUCKET}


def exports_in(emulator: EcsEmulator) -> set[str]:
    """The exports whose manifest is still in the bucket (image-<id> without the image- prefix)."""
    held = present(emulator)
    return {m.image.id.removeprefix("image-") for m in EXPORTS if manifest_key(PREFIX, m.image.id) in held}


ALL = {m.image.id.removeprefix("image-") for m in EXPORTS}


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
def seeded_bucket(emulated: Emulated) -> Callable[..., EcsEmulator]:
    """Start the emulator with the fleet, point the function at it (RETENTION plus ``env``), seed the exports."""

    def start(**env: str) -> EcsEmulator:
        emulator = emulated(fleet(), env={**RETENTION, **env}, task_seconds=1.0)
        seed(EXPORTS)
        return emulator

    return start
