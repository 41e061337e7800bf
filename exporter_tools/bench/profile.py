"""``python -X importtime`` of a cold invocation against the floor's: what we import beyond httpx, pydantic
and structlog, and what our own modules cost. The evidence a missed cold-start target is read from."""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence

from exporter_tools.bench.report import ImportProfile

__all__ = ["FOLLOW_UP_ONLY", "compare_imports", "median_importtime", "parse_importtime"]

# Modules only a follow-up needs (checking an export's objects, writing its manifest): a direct export's cold
# start should not import them (issue "follow-up cost": the deployed cold start must not grow).
FOLLOW_UP_ONLY = ("handler.core.verification", "handler.core.qcow2", "handler.models.manifest")

_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|\s+(.+?)\s*$")


def parse_importtime(text: str) -> dict[str, tuple[float, float]]:
    """Module name → (self ms, cumulative ms) from ``-X importtime`` output (other lines are ignored)."""
    modules: dict[str, tuple[float, float]] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            modules[match.group(3).strip()] = (int(match.group(1)) / 1000, int(match.group(2)) / 1000)
    return modules


def median_importtime(runs: Sequence[Mapping[str, tuple[float, float]]]) -> dict[str, tuple[float, float]]:
    """Each module's median self and cumulative times over several parsed runs (one run is noisy); a module
    imported in only some runs keeps the median of those."""
    names = {name for run in runs for name in run}
    return {
        name: (
            statistics.median(run[name][0] for run in runs if name in run),
            statistics.median(run[name][1] for run in runs if name in run),
        )
        for name in sorted(names)
    }


def compare_imports(
    ours: Mapping[str, tuple[float, float]],
    floor: Mapping[str, tuple[float, float]],
    *,
    own_prefix: str = "handler",
    top: int = 12,
    watched: Sequence[str] = FOLLOW_UP_ONLY,
) -> ImportProfile:
    """What ours imports that the floor does not (largest self time first), our modules' cumulative
    times (largest first), and the cumulative time of each ``watched`` module (None: not imported)."""
    extra = sorted(
        ((name, times[0]) for name, times in ours.items() if name not in floor),
        key=lambda item: (-item[1], item[0]),
    )
    own = sorted(
        (
            (name, times[1])
            for name, times in ours.items()
            if name == own_prefix or name.startswith(own_prefix + ".")
        ),
        key=lambda item: (-item[1], item[0]),
    )
    return ImportProfile(
        ours_ms=sum(t[0] for t in ours.values()),
        floor_ms=sum(t[0] for t in floor.values()),
        extra=tuple((name, round(ms, 1)) for name, ms in extra[:top]),
        ours_top=tuple((name, round(ms, 1)) for name, ms in own[:top]),
        watched=tuple((name, round(ours[name][1], 1) if name in ours else None) for name in watched),
    )
