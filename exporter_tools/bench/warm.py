"""Warm latency: many invocations in one long-lived process, over TLS with connections kept alive.

Each invocation exports a different image of a fresh account, so none is skipped as already exported and the
account never holds a lock on the next one. Ours and the SDK do the same work (look the image's export tasks
up, then ExportImage); ours runs with its rate limiter not binding for the comparison, and once more with the
default ``VOLCENGINE_MAX_RPS``, which spaces a tight loop's requests as configured (reported apart).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from exporter_tools.bench.cold import UNPACED_RPS, Endpoints
from exporter_tools.bench.process import BenchError, run_measured
from exporter_tools.bench.report import Samples, WarmResult

__all__ = ["run_warm"]


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
    """Ours (limiter not binding, then default pacing) and the SDK, each exporting ``image_ids`` in one
    process: the first is a warm-up, the others are timed. ``endpoints.tls`` must hold those images."""
    ids_file = scratch / "warm_ids.json"
    ids_file.write_text(json.dumps(list(image_ids)), encoding="utf-8")
    ours = (project_python, str(scripts["ours_warm.py"]), str(ids_file))
    sdk = (sdk_python, str(scripts["sdk_warm.py"]), str(ids_file))
    unpaced = {"VOLCENGINE_MAX_RPS": UNPACED_RPS}
    kinds = [
        ("ours", f"ours (VOLCENGINE_MAX_RPS={UNPACED_RPS}: the limiter does not bind)", ours, unpaced),
        ("sdk", "official SDK: DescribeTasks, then ExportImage", sdk, {}),
        ("ours-paced", "ours, default VOLCENGINE_MAX_RPS (10)", ours, {}),
    ]
    results = []
    for key, label, argv, extra in kinds:
        endpoints.tls.reset()
        finished = run_measured(argv, endpoints.env(base_env, "tls", **extra), cwd=cwd, timeout=600)
        if finished.returncode != 0:
            msg = f"warm {label} exited {finished.returncode}:\n{finished.tail()}"
            raise BenchError(msg)
        seconds = json.loads(finished.stdout.strip().splitlines()[-1])["seconds"]
        requests = int(endpoints.tls.stats()["requests_total"]) / len(image_ids)
        results.append(WarmResult(key, label, Samples.of(seconds), round(requests, 2), finished.max_rss_mib))
        progress(f"warm: {label} done ({len(seconds)} invocations)")
    return results
