"""What retention costs on a bucket of many exports, counted by the emulator: ``measure_retention`` seeds
exports and their manifests into the emulator's TOS (directly, not over HTTP: the seeding is not measured),
then runs the function's retention core (``handler.core.retention.run_retention``) through the function's own
clients over loopback, and reads the requests the emulator answered, ECS by action and TOS by method.

``python -m exporter_tools.bench.retention [--exports N]`` prints the section; ``exporter-tools bench`` puts it
in its report.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from exporter_tools.bench.markdown import retention_section
from exporter_tools.bench.report import RetentionCost
from exporter_tools.emulator.api import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY
from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import Fleet, FleetBucket
from handler.adapters.clients import Clients, build_clients
from handler.adapters.log import configure_logging
from handler.adapters.signing import Credentials
from handler.core.catalogue import ManifestCache
from handler.core.retention import RetentionMode, run_retention
from handler.core.retention_rules import Policy
from handler.core.tracking import Destination
from handler.models.manifest import (
    Manifest,
    ManifestExport,
    ManifestImage,
    ManifestObject,
    ManifestVerification,
    manifest_key,
)
from handler.models.settings import Settings

__all__ = ["PER_GROUP", "main", "measure_retention"]

BUCKET, PREFIX = "bench-exports", "imgexport"
PER_GROUP = 10
_DISK = b"QFI\xfb" + b"\0" * 60


def _manifest(group: int, day: int, *, start: datetime) -> Manifest:
    image_id = f"image-g{group:04d}d{day:02d}"
    at = start + timedelta(days=day, hours=3)
    return Manifest(
        image=ManifestImage(id=image_id, name=f"app{group:04d}-{at:%Y%m%d}", size_gib=40),
        export=ManifestExport(task_id=f"t-{image_id}", region="cn-beijing", bucket=BUCKET, prefix=PREFIX, finished_at=at),
        objects=(ManifestObject(key=f"{PREFIX}_{image_id}_system.qcow2", disk="system", size_bytes=len(_DISK)),),
        verification=ManifestVerification(level="structure", verified=True, checked_at=at),
    )  # fmt: skip


def _seed(emulator: EcsEmulator, exports: int) -> int:
    """``exports`` exports, ``PER_GROUP`` daily ones a group, each a system disk and its manifest; how many
    groups."""
    groups = math.ceil(exports / PER_GROUP)
    start = datetime.now(UTC) - timedelta(days=PER_GROUP + 30)
    for n in range(exports):
        found = _manifest(n // PER_GROUP, n % PER_GROUP, start=start)
        emulator.tos.put_object(BUCKET, found.objects[0].key, _DISK)
        emulator.tos.put_object(BUCKET, manifest_key(PREFIX, found.image.id), found.to_bytes())
    return groups


def _clients(emulator: EcsEmulator, http: httpx.Client) -> Clients:
    settings = Settings.model_validate(
        {
            "VOLCENGINE_ENDPOINT": emulator.endpoint,
            "TOS_ENDPOINT": emulator.endpoint,
            "EXPORT_TOS_BUCKET": BUCKET,
            "VOLCENGINE_MAX_RPS": 1000,  # requests are counted, not paced
        }
    )
    return build_clients(
        settings, Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY), http=http, with_store=True
    )


def _counts(stats: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """(ListObjectsV2 pages, GetObject, DescribeImages, DeleteObject) the emulator answered so far."""
    tos: Mapping[str, int] = stats["tos"]["requests"]
    ecs: Mapping[str, Mapping[str, int]] = stats["requests"]
    listed = sum(n for label, n in tos.items() if label == "GET 200")
    ranged = sum(n for label, n in tos.items() if label.startswith("GET ") and label != "GET 200")
    deletes = sum(n for label, n in tos.items() if label.startswith("DELETE "))
    return listed, ranged, sum(ecs.get("DescribeImages", {}).values()), deletes


def measure_retention(exports: int = 1000) -> list[RetentionCost]:
    """Three runs over a bucket of ``exports`` exports (``PER_GROUP`` daily exports a group): a plan that keeps
    everything (``RETENTION_KEEP_LAST=10``: nothing goes), the defaults' plan reading every manifest
    (``KEEP_LAST=7``: 3 go in each group), and apply with the manifests already read in the invocation (the
    drill read them: the cache), deleting ``RETENTION_MAX_DELETES`` (10)."""
    emulator = EcsEmulator(Fleet(buckets=(FleetBucket(name=BUCKET),)), port=0)
    emulator.start()
    try:
        groups = _seed(emulator, exports)
        objects = 2 * exports
        with httpx.Client(timeout=30) as http:
            clients = _clients(emulator, http)
            cache = ManifestCache()
            cases: tuple[tuple[str, Policy, RetentionMode, ManifestCache | None], ...] = (
                ("nothing goes (KEEP_LAST=10): plan", Policy(keep_last=10), "plan", None),
                ("the defaults, every manifest read: plan", Policy(), "plan", cache),
                ("the defaults, manifests already read in the invocation: apply", Policy(), "apply", cache),
            )
            out = []
            for case, policy, mode, shared in cases:
                before = _counts(emulator.stats())
                started = time.perf_counter()
                run = run_retention(
                    clients.ecs,
                    clients.store,  # type: ignore[arg-type]  # built with_store
                    dest=Destination(BUCKET, PREFIX),
                    group_by="name",
                    policy=policy,
                    mode=mode,
                    max_deletes=10,
                    deadline=time.monotonic() + 600,
                    workers=4,
                    cache=shared,
                )
                seconds = time.perf_counter() - started
                after = _counts(emulator.stats())
                pages, gets, described, deletes = (b - a for a, b in zip(before, after, strict=True))
                out.append(
                    RetentionCost(
                        case, exports, groups, objects, pages, gets, described, deletes, run.deleted, seconds
                    )
                )
            return out
    finally:
        emulator.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m exporter_tools.bench.retention", description="retention's requests, counted"
    )
    parser.add_argument("--exports", type=int, default=1000, help="exports in the bucket (default 1000)")
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    print("\n".join(retention_section(measure_retention(args.exports))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
