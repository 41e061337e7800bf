"""What following up finished exports costs: TOS requests, bytes read, wall time, and memory at 20,000 images.

The cost run exports ``images`` new 40 GiB images (every ``DATA_DISK_EVERY``-th with a 40 GiB data disk, so
two objects) through the function: one timer scan, its limiter out of the way. Once their tasks have ended, the
next timer run follows them up, a fresh ``python -m handler invoke`` at the configured ``VOLCENGINE_MAX_RPS``
(the TOS client's rate limit too) with ``EXPORT_VERIFY`` set to each level compared. What the emulator's TOS
side recorded is the measure (``exporter_tools.emulator.tos_records``): requests by kind, and the bytes each
export's objects sent. The ideal wall time is the TOS requests at the rate limit.

The memory run follows up ``images`` finished exports seeded into the emulator
(``exporter_tools.emulator.fleet.finished_exports_fleet``: starting 20,000 exports first would take longer
than the follow-up), with the limiter out of the way and a budget that lets every check finish; the
measure is that one process's own peak RSS (``wait4``, ``exporter_tools.bench.process``).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from exporter_tools.bench.process import BenchError, Finished, child_env, run_measured
from exporter_tools.bench.report import FollowUpCost, MemoryResult
from exporter_tools.emulator.api import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY
from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import finished_exports_fleet, new_images_fleet

__all__ = [
    "DATA_DISK_EVERY",
    "FOLLOW_UP_IMAGES",
    "FOLLOW_UP_RPS",
    "VERIFY_LEVELS",
    "run_follow_up_cost",
    "run_memory",
]

FOLLOW_UP_IMAGES = 150
DATA_DISK_EVERY = 5
FOLLOW_UP_RPS = 10.0  # VOLCENGINE_MAX_RPS's default: what a deployed function runs with
VERIFY_LEVELS = ("structure", "head")
UNPACED_RPS = "1000"
TASK_SECONDS = 1.0  # the emulator's export tasks end this long after they start
BUCKET = "demo-exports"
PREFIX = "imgexport"
FOLLOW_UP_TIMEOUT = 900.0  # veFaaS's longest function timeout
MEMORY_TIMEOUT = 7200.0  # the memory run's budget: every check done, none deferred for lack of time


def _timer(event_id: str) -> dict[str, str]:
    return {
        "id": event_id,
        "source": "/faas/event/timer/bench",
        "specversion": "1.0",
        "type": "faas.timer.event",
        "datacontenttype": "application/octet-stream",
        "data": "",
    }


def _env(emulator: EcsEmulator, base_env: Mapping[str, str], **settings: str) -> dict[str, str]:
    return child_env(
        base_env,
        VOLCENGINE_ACCESS_KEY=DEFAULT_ACCESS_KEY,
        VOLCENGINE_SECRET_KEY=DEFAULT_SECRET_KEY,
        VOLCENGINE_ENDPOINT=emulator.endpoint,
        TOS_ENDPOINT=emulator.endpoint,
        EXPORT_TOS_BUCKET=BUCKET,
        EXPORT_TOS_PREFIX=PREFIX,
        **settings,
    )


def _statuses(finished: Finished, what: str) -> Counter[str]:
    """The statuses of the results a run printed; ``BenchError`` when it printed none."""
    try:
        results = json.loads(finished.stdout)["results"]
        return Counter(str(r.get("status")) for r in results)
    except (ValueError, KeyError, TypeError, AttributeError):
        msg = f"{what} printed no result (exit {finished.returncode}):\n{finished.tail()}"
        raise BenchError(msg) from None


def _invoke(
    project_python: str, event: Path, env: Mapping[str, str], *, cwd: Path, timeout: float
) -> Finished:
    argv = (project_python, "-m", "handler", "invoke", str(event), "--timeout", f"{timeout:g}")
    return run_measured(argv, env, cwd=cwd, timeout=timeout + 120)


def _export_id(key: str) -> str:
    """The image id in ``<prefix>_<ImageId>_<disk>.qcow2``."""
    return key.removeprefix(PREFIX + "_").partition("_")[0]


def _start_exports(
    emulator: EcsEmulator, *, images: int, project_python: str, base_env: Mapping[str, str], cwd: Path,
    scratch: Path,
) -> None:  # fmt: skip
    """A timer scan that starts (and tags) every image's export, then the wait until every task has ended."""
    event = scratch / "follow_up_start.json"
    event.write_text(json.dumps(_timer("bench-follow-up-start")), encoding="utf-8")
    env = _env(emulator, base_env, VOLCENGINE_MAX_RPS=UNPACED_RPS)
    finished = _invoke(project_python, event, env, cwd=cwd, timeout=FOLLOW_UP_TIMEOUT)
    started = _statuses(finished, "the scan starting the exports")["started"]
    if started != images:
        msg = f"the scan started {started} of {images} exports:\n{finished.tail()}"
        raise BenchError(msg)
    time.sleep(TASK_SECONDS + 0.5)


def follow_up_once(
    emulator: EcsEmulator, *, verify: str, max_rps: float, project_python: str, base_env: Mapping[str, str],
    cwd: Path, scratch: Path,
) -> FollowUpCost:  # fmt: skip
    """Export every image of ``emulator``'s fleet through the function, then measure one timer follow-up of
    them at ``verify`` and ``max_rps``."""
    fleet = emulator.ecs.fleet
    emulator.reset()
    _start_exports(
        emulator, images=len(fleet.images), project_python=project_python, base_env=base_env, cwd=cwd,
        scratch=scratch,
    )  # fmt: skip
    event = scratch / "follow_up.json"
    event.write_text(json.dumps(_timer(f"bench-follow-up-{verify}")), encoding="utf-8")
    env = _env(emulator, base_env, VOLCENGINE_MAX_RPS=f"{max_rps:g}", EXPORT_VERIFY=verify)
    ecs_before = int(emulator.stats()["requests_total"])
    emulator.tos.records.reset()
    finished = _invoke(project_python, event, env, cwd=cwd, timeout=FOLLOW_UP_TIMEOUT)
    statuses = _statuses(finished, f"the follow-up (EXPORT_VERIFY={verify})")
    stats = emulator.stats()
    read: Counter[str] = Counter()
    for (_, key), count in emulator.tos.records.bytes_read_by_object().items():
        read[_export_id(key)] += count
    return FollowUpCost(
        verify=verify,
        images=len(fleet.images),
        with_data_disk=sum(1 for image in fleet.images if image.data_disks),
        objects=len(emulator.ecs.exported_objects()),
        exported=statuses["exported"],
        requests=dict(stats["tos"]["kinds"]),
        bytes_read=tuple(read[image.id] for image in fleet.images),
        ecs_requests=int(stats["requests_total"]) - ecs_before,
        wall_seconds=finished.seconds,
        max_rps=max_rps,
    )


def run_follow_up_cost(
    *,
    images: int = FOLLOW_UP_IMAGES,
    levels: Sequence[str] = VERIFY_LEVELS,
    max_rps: float = FOLLOW_UP_RPS,
    project_python: str,
    base_env: Mapping[str, str],
    cwd: Path,
    scratch: Path,
    progress: Callable[[str], None],
) -> list[FollowUpCost]:
    """The follow-up of ``images`` finished exports at each of ``levels``, one emulator reset between them."""
    fleet = new_images_fleet(images, bucket=BUCKET, data_disk_every=DATA_DISK_EVERY)
    results = []
    emulator = EcsEmulator(fleet, task_seconds=TASK_SECONDS)
    with emulator:
        for verify in levels:
            cost = follow_up_once(
                emulator, verify=verify, max_rps=max_rps, project_python=project_python,
                base_env=base_env, cwd=cwd, scratch=scratch,
            )  # fmt: skip
            results.append(cost)
            progress(
                f"follow-up cost: EXPORT_VERIFY={verify}, {cost.tos_requests} TOS requests in "
                f"{cost.wall_seconds:.1f} s"
            )
    return results


def run_memory(
    *,
    images: int,
    project_python: str,
    base_env: Mapping[str, str],
    cwd: Path,
    scratch: Path,
    progress: Callable[[str], None],
) -> MemoryResult:
    """Peak RSS of one timer follow-up of ``images`` finished exports (structure checks) in a fresh process."""
    progress(f"memory: seeding {images} finished exports")
    fleet = finished_exports_fleet(images, bucket=BUCKET, prefix=PREFIX, data_disk_every=DATA_DISK_EVERY)
    event = scratch / "memory_follow_up.json"
    event.write_text(json.dumps(_timer("bench-memory-follow-up")), encoding="utf-8")
    emulator = EcsEmulator(fleet)
    with emulator:
        env = _env(emulator, base_env, VOLCENGINE_MAX_RPS=UNPACED_RPS, EXPORT_VERIFY="structure")
        progress(f"memory: following up {images} exports (minutes at 20,000)")
        finished = _invoke(project_python, event, env, cwd=cwd, timeout=MEMORY_TIMEOUT)
        statuses = _statuses(finished, "the memory follow-up")
        stats = emulator.stats()
        objects = len(emulator.ecs.exported_objects())
    progress(f"memory: peak RSS {finished.max_rss_mib:.1f} MiB in {finished.seconds:.0f} s")
    return MemoryResult(
        images=images,
        objects=objects,
        verify="structure",
        peak_rss_mib=finished.max_rss_mib,
        exported=statuses["exported"],
        deferred=statuses["deferred"],
        wall_seconds=finished.seconds,
        tos_requests=sum(stats["tos"]["kinds"].values()),
        max_rps=float(UNPACED_RPS),
    )
