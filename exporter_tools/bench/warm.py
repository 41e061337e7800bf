"""Warm latency: many invocations in one long-lived process, over TLS with connections kept alive.

Each invocation exports a different image of a fresh account, so none is skipped as already exported and the
account never holds a lock on the next one. Ours and the SDK do the same work (look the image's export tasks
up, then ExportImage), in processes that alternate so that the machine's load falls on both alike; ours runs
with its rate limiter not binding for the comparison, and once more with the default ``VOLCENGINE_MAX_RPS``,
which spaces a tight loop's requests as configured (reported apart). Each invocation's wall time and CPU time
(``time.process_time``) are recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from exporter_tools.bench.cold import UNPACED_RPS, Endpoints
from exporter_tools.bench.process import BenchError, run_measured
from exporter_tools.bench.report import Samples, WarmResult

__all__ = ["profile_warm", "run_warm"]


WARM_ROUNDS = 4  # ours and the SDK alternate over this many processes each, so load falls on both alike
PACED_INVOCATIONS = 40  # the rate-limited run only shows the pacing: a few dozen invocations do


def _run_one(
    endpoints: Endpoints, argv: tuple[str, ...], env: dict[str, str], ids: Sequence[str], *, label: str,
    cwd: Path, scratch: Path,
) -> tuple[list[float], list[float], float, float]:  # fmt: skip
    """One process exporting ``ids`` (the first a warm-up) in a reset account: seconds and CPU seconds per
    timed invocation, API requests per invocation, and the process's peak RSS (MiB)."""
    ids_file = scratch / "warm_ids.json"
    ids_file.write_text(json.dumps(list(ids)), encoding="utf-8")
    endpoints.tls.reset()
    finished = run_measured((*argv, str(ids_file)), env, cwd=cwd, timeout=600)
    if finished.returncode != 0:
        msg = f"warm {label} exited {finished.returncode}:\n{finished.tail()}"
        raise BenchError(msg)
    printed = json.loads(finished.stdout.strip().splitlines()[-1])
    requests = int(endpoints.tls.stats()["requests_total"]) / len(ids)
    return printed["seconds"], printed["cpu"], requests, finished.max_rss_mib


def run_warm(
    endpoints: Endpoints,
    *,
    image_ids: Sequence[str],
    project_python: str,
    sdk_python: str,
    scripts: Mapping[str, Path],
    base_env: Mapping[str, str],
    cwd: Path,
    scratch: Path,
    progress: Callable[[str], None],
) -> list[WarmResult]:
    """Ours with the limiter not binding and the SDK, alternating over ``WARM_ROUNDS`` processes each that
    share ``image_ids[1:]`` out (each process warms up on ``image_ids[0]`` first, in a reset account); then
    ours with default pacing over the first ``PACED_INVOCATIONS``. ``endpoints.tls`` must hold the images."""
    ours = (project_python, str(scripts["ours_warm.py"]))
    sdk = (sdk_python, str(scripts["sdk_warm.py"]))
    compared = [
        ("ours", f"ours (VOLCENGINE_MAX_RPS={UNPACED_RPS}: the limiter does not bind)", ours,
         endpoints.env(base_env, "tls", VOLCENGINE_MAX_RPS=UNPACED_RPS)),
        ("sdk", "official SDK: DescribeTasks, then ExportImage", sdk, endpoints.env(base_env, "tls")),
    ]  # fmt: skip
    timed = list(image_ids[1:])
    samples: dict[str, tuple[list[float], list[float], list[float], list[float]]] = {
        key: ([], [], [], []) for key, *_ in compared
    }
    for round_no in range(WARM_ROUNDS):
        chunk = [image_ids[0], *timed[round_no::WARM_ROUNDS]]
        for key, label, argv, env in compared if round_no % 2 == 0 else compared[::-1]:
            seconds, cpu, requests, rss = _run_one(endpoints, argv, env, chunk, label=label, cwd=cwd,
                                                   scratch=scratch)  # fmt: skip
            for bucket, values in zip(samples[key], (seconds, cpu, [requests], [rss]), strict=True):
                bucket.extend(values)
        progress(f"warm: round {round_no + 1}/{WARM_ROUNDS} done (ours and the SDK)")
    results = [
        WarmResult(key, label, Samples.of(samples[key][0]), round(Samples.of(samples[key][2]).median, 2),
                   max(samples[key][3]), Samples.of(samples[key][1]))
        for key, label, *_ in compared
    ]  # fmt: skip
    label = "ours, default VOLCENGINE_MAX_RPS (10)"
    paced = image_ids[: PACED_INVOCATIONS + 1]
    seconds, cpu, requests, rss = _run_one(endpoints, ours, endpoints.env(base_env, "tls"), paced, label=label,
                                           cwd=cwd, scratch=scratch)  # fmt: skip
    results.append(
        WarmResult("ours-paced", label, Samples.of(seconds), round(requests, 2), rss, Samples.of(cpu))
    )
    progress(f"warm: {label} done ({len(seconds)} invocations)")
    return results


def profile_warm(
    endpoints: Endpoints,
    *,
    image_ids: Sequence[str],
    project_python: str,
    sdk_python: str,
    scripts: Mapping[str, Path],
    base_env: Mapping[str, str],
    cwd: Path,
    scratch: Path,
) -> dict[str, tuple[tuple[str, float], ...]]:
    """Ours (the limiter not binding) and the SDK, warm, under cProfile: for each, (package, own ms per
    invocation), largest first. The evidence a missed warm target is read from."""
    ids_file = scratch / "warm_profile_ids.json"
    ids_file.write_text(json.dumps(list(image_ids)), encoding="utf-8")
    profiles = {}
    for key, python, script, extra in (
        ("ours", project_python, "ours_warm_profile.py", {"VOLCENGINE_MAX_RPS": UNPACED_RPS}),
        ("sdk", sdk_python, "sdk_warm_profile.py", {}),
    ):
        endpoints.tls.reset()
        argv = (python, str(scripts[script]), str(ids_file))
        finished = run_measured(argv, endpoints.env(base_env, "tls", **extra), cwd=cwd, timeout=600)
        if finished.returncode != 0:
            msg = f"the warm profile of {key} exited {finished.returncode}:\n{finished.tail()}"
            raise BenchError(msg)
        groups: dict[str, float] = json.loads(finished.stdout.strip().splitlines()[-1])
        profiles[key] = tuple((name, round(seconds * 1000, 3)) for name, seconds in groups.items())
    return profiles
