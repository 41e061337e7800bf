"""Throughput under the API's rate limit: many new images, an emulator that answers 429 above a rate.

Ours is one timer scan (a fresh ``python -m handler invoke`` with ``VOLCENGINE_MAX_RPS`` set to the limit);
the SDK's is the loop its users write, plain and on threads. What the emulator saw (requests by status, the
peak one-second rate, the 429s, the export tasks per image) is the measure, not what either client claims.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

from exporter_tools.bench.process import BenchError, Finished, child_env, run_measured
from exporter_tools.bench.report import ThroughputResult
from exporter_tools.emulator.api import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY
from exporter_tools.emulator.ecs import EcsEmulator

__all__ = ["TIMER_EVENT", "run_throughput"]

TIMER_EVENT = {
    "id": "bench-timer-scan",
    "source": "/faas/event/timer/bench",
    "specversion": "1.0",
    "type": "faas.timer.event",
    "datacontenttype": "application/octet-stream",
    "data": "",
}
SDK_THREADS = 4


def _served(stats: Mapping[str, object]) -> int:
    """Requests the emulator answered, whatever the answer, except the 429s it turned away."""
    by_action = stats["requests"]
    if not isinstance(by_action, dict):
        msg = "the emulator's statistics have no requests by action"
        raise BenchError(msg)
    return sum(n for outcomes in by_action.values() for status, n in outcomes.items() if status != "429")


def _ours_failures(finished: Finished) -> tuple[int, int]:
    """(started, not started) from the result ours printed."""
    try:
        results = json.loads(finished.stdout)["results"]
    except (ValueError, KeyError, TypeError):
        msg = f"ours printed no result (exit {finished.returncode}):\n{finished.tail()}"
        raise BenchError(msg) from None
    started = sum(1 for r in results if r.get("status") == "started")
    return started, len(results) - started


def _sdk_failures(finished: Finished) -> tuple[int, int, dict[str, int]]:
    if finished.returncode != 0:
        msg = f"the SDK job exited {finished.returncode}:\n{finished.tail()}"
        raise BenchError(msg)
    printed = json.loads(finished.stdout.strip().splitlines()[-1])
    return int(printed["exported"]), int(printed["images"]) - int(printed["exported"]), printed["errors"]


def run_throughput(
    emulator: EcsEmulator,
    *,
    images: int,
    max_rps: float,
    project_python: str,
    sdk_python: str,
    scripts: Mapping[str, Path],
    base_env: Mapping[str, str],
    cwd: Path,
    scratch: Path,
    progress: Callable[[str], None],
) -> tuple[list[ThroughputResult], list[str]]:
    """Ours, the SDK loop and the threaded SDK loop against ``emulator`` (rate-limited, holding ``images``
    new images); returns the results and notes on what went wrong for either side."""
    event_file = scratch / "timer_scan.json"
    event_file.write_text(json.dumps(TIMER_EVENT), encoding="utf-8")
    scheme, _, host = emulator.endpoint.partition("://")
    env = child_env(
        base_env,
        VOLCENGINE_ACCESS_KEY=DEFAULT_ACCESS_KEY,
        VOLCENGINE_SECRET_KEY=DEFAULT_SECRET_KEY,
        VOLCENGINE_ENDPOINT=emulator.endpoint,
        VOLCENGINE_MAX_RPS=f"{max_rps:g}",
        EXPORT_TOS_BUCKET="demo-exports",
        BENCH_SDK_HOST=host,
        BENCH_SDK_SCHEME=scheme,
    )
    jobs = [
        ("ours", "ours: one timer scan", (project_python, "-m", "handler", "invoke", str(event_file))),
        ("sdk", "official SDK: plain loop", (sdk_python, str(scripts["sdk_job.py"]), "1")),
        (
            "sdk-threads",
            f"official SDK: loop on {SDK_THREADS} threads",
            (sdk_python, str(scripts["sdk_job.py"]), str(SDK_THREADS)),
        ),
    ]
    results, notes = [], []
    for key, label, argv in jobs:
        emulator.reset()
        finished = run_measured(argv, env, cwd=cwd, timeout=900)
        if key == "ours":
            exported, failures = _ours_failures(finished)
        else:
            exported, failures, errors = _sdk_failures(finished)
            if errors:
                notes.append(f"{label}: {failures} image(s) not exported, errors {errors}.")
        stats = emulator.stats()
        duplicates = sum(n - 1 for n in emulator.export_tasks_by_image().values() if n > 1)
        if duplicates:
            notes.append(f"{label}: {duplicates} image(s) exported more than once.")
        results.append(
            ThroughputResult(
                key,
                label,
                images=images,
                exported=exported,
                failures=failures,
                wall_seconds=finished.seconds,
                requests_served=_served(stats),
                throttled=int(stats["throttled"]),
                peak_rps=int(stats["peak_rps"]),
                max_rps=max_rps,
            )
        )
        progress(f"throughput: {label} done in {finished.seconds:.1f} s")
    return results, notes
