"""The follow-up cost and memory benchmarks: their figures from the emulator's records, consistent with each
other, their targets and their report; run for real on a few images (figures checked, never timings)."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from exporter_tools.bench.follow_up import run_follow_up_cost, run_memory
from exporter_tools.bench.markdown import MEMORY_STEPS, render_markdown
from exporter_tools.bench.profile import FOLLOW_UP_ONLY, compare_imports
from exporter_tools.bench.report import (
    FOLLOW_UP_BYTES_PER_EXPORT,
    MEMORY_IMAGES,
    MEMORY_PEAK_MIB,
    FollowUpCost,
    Machine,
    MemoryResult,
    Report,
    check_targets,
)
from exporter_tools.bench.run import ROOT, build_parser

MACHINE = Machine("CPython 3.11.7", "Linux-x86_64", "AMD EPYC", 2, "2026-01-01 00:00 UTC", "5.0.54")
KINDS = {"list": 150, "ranged GET": 900, "GET": 0, "PUT": 150, "HEAD": 0, "other": 0}


def _cost(**changes: object) -> FollowUpCost:
    cost = FollowUpCost(
        verify="structure",
        images=150,
        with_data_disk=30,
        objects=180,
        exported=150,
        requests=KINDS,
        bytes_read=(201_344,) * 120 + (402_688,) * 30,
        ecs_requests=14,
        wall_seconds=125.0,
        max_rps=10.0,
    )
    return replace(cost, **changes)  # type: ignore[arg-type]


def _memory(images: int = 20_000, rss: float = 100.0) -> MemoryResult:
    return MemoryResult(images, images * 6 // 5, "structure", rss, images, 0, 300.0, images * 8, 1000.0)


def _names(report: Report, *, met: bool) -> set[str]:
    return {c.name for c in check_targets(report) if c.met is met}


def test_the_cost_figures_follow_from_the_request_counts() -> None:
    """Requests beyond the ranged reads are every TOS request but those; per object over the objects; the ideal
    is every TOS request at the rate limit."""
    cost = _cost()
    assert cost.tos_requests == 1200
    assert cost.beyond_ranged == 300
    assert cost.per_object_beyond_ranged == pytest.approx(300 / 180)
    assert cost.ranged_per_object == pytest.approx(5.0)
    assert cost.ideal_seconds == pytest.approx(120.0)
    assert cost.wall_over_ideal == pytest.approx(125 / 120)
    assert cost.max_bytes == 402_688
    assert cost.mean_bytes == pytest.approx((120 * 201_344 + 30 * 402_688) / 150)


def test_the_follow_up_targets_judge_the_structure_run_only() -> None:
    """Per object beyond the ranged reads, bytes per export and wall against the ideal are judged on the
    default check; a head run beside it is shown, not judged."""
    report = Report(MACHINE, runs=1)
    report.follow_up = [
        _cost(),
        _cost(verify="head", requests=KINDS | {"ranged GET": 0}, bytes_read=(0,) * 150),
    ]
    assert _names(report, met=False) == {"follow-up: TOS requests per object beyond the ranged reads"}
    report.follow_up = [_cost(requests=KINDS | {"list": 0, "PUT": 180})]
    assert not _names(report, met=False)
    report.follow_up = [_cost(bytes_read=(FOLLOW_UP_BYTES_PER_EXPORT + 1,), wall_seconds=200.0, exported=149)]
    assert _names(report, met=False) == {
        "follow-up: TOS requests per object beyond the ranged reads",
        "follow-up: bytes read per export (max)",
        "follow-up: wall time vs the ideal at the TOS rate limit",
        "follow-up: exports reported exported",
    }


@pytest.mark.parametrize(
    ("images", "rss", "verdict"), [(20_000, 119.0, True), (20_000, 121.0, False), (200, 500.0, None)]
)
def test_peak_memory_is_judged_at_20000_images_only(images: int, rss: float, verdict: bool | None) -> None:
    """The 120 MiB target holds a 20,000-image follow-up; a smaller run (the test's) is reported unjudged."""
    report = Report(MACHINE, runs=1)
    report.memory = _memory(images, rss)
    checks = [c for c in check_targets(report) if c.name.startswith("peak RSS of a")]
    assert [c.met for c in checks] == ([] if verdict is None else [verdict])
    assert f"| {images:,} | " in render_markdown(report)


def test_a_direct_exports_cold_path_should_import_no_follow_up_module() -> None:
    """The import profile watches the follow-up-only modules: any of them imported misses the target."""
    report = Report(MACHINE, runs=1)
    report.profile = compare_imports({"handler.entry": (1.0, 9.0)}, {})
    assert _names(report, met=True) == {"cold direct export: follow-up-only modules imported"}
    report.profile = compare_imports(
        {"handler.core.verification": (4.5, 7.4), "handler.models.manifest": (4.0, 4.5)}, {}
    )
    (check,) = check_targets(report)
    assert (check.met, check.measured) == (False, "2 (verification, manifest)")
    markdown = render_markdown(report)
    assert "| `handler.core.verification` | 7.4 |" in markdown
    assert "| `handler.core.qcow2` | not imported |" in markdown
    assert len(report.profile.watched) == len(FOLLOW_UP_ONLY)


def test_the_report_says_how_to_ask_for_the_memory_run_when_it_did_not_run() -> None:
    """Without ``--memory`` the memory section says how to run it, and still how the figure came down; the
    follow-up tables show every kind."""
    report = Report(MACHINE, runs=1)
    report.follow_up = [_cost()]
    markdown = render_markdown(report)
    assert "`exporter-tools bench --memory`" in markdown
    for date, images, peak, what in MEMORY_STEPS:
        assert f"| {date} | {images:,} | {peak:.1f} MiB | {what} |" in markdown
    assert "| `EXPORT_VERIFY=structure` | 150 | 900 | 0 | 150 | 0 | 0 | 1200 | 14 |" in markdown
    assert (
        "| `structure` | 150/150 | 1.67 | 5.00 | 0.23 MiB | 0.38 MiB | 125.0 s | 120.0 s | 1.04x |"
        in markdown
    )


def test_the_memory_run_is_asked_for_and_sized_on_the_command_line() -> None:
    """``--memory`` turns the memory benchmark on (off by default); ``--memory-images`` sizes it."""
    assert build_parser().parse_args([]).memory is False
    args = build_parser().parse_args(["--memory", "--memory-images", "200", "--follow-up-images", "6"])
    assert (args.memory, args.memory_images, args.follow_up_images) == (True, 200, 6)


def test_a_follow_up_of_six_exports_is_measured_from_the_emulators_records(tmp_path: Path) -> None:
    """Six 40 GiB exports (two with a data disk: eight objects) followed up at structure and head: every one
    exported; structure reads each export's objects by ranges, head reads nothing; each figure follows from
    the counts."""
    structure, head = run_follow_up_cost(
        images=6, max_rps=100.0, project_python=sys.executable, base_env=os.environ, cwd=ROOT,
        scratch=tmp_path, progress=lambda _: None,
    )  # fmt: skip
    for cost in (structure, head):
        assert (cost.images, cost.with_data_disk, cost.objects, cost.exported) == (6, 2, 8, 6)
        # One listing of the start records, one of the destination for all six checks, a manifest an export.
        assert (cost.requests["list"], cost.requests["PUT"]) == (2, 6)
        assert cost.per_object_beyond_ranged == (cost.tos_requests - cost.requests["ranged GET"]) / 8
        assert cost.ideal_seconds == cost.tos_requests / 100.0
        assert cost.wall_seconds > 0
        assert cost.ecs_requests > 0
    assert structure.requests["ranged GET"] >= 8
    assert all(0 < read <= FOLLOW_UP_BYTES_PER_EXPORT for read in structure.bytes_read)
    assert head.requests["ranged GET"] == 1  # the start record of the six exports, read back
    assert head.bytes_read == (0,) * 6


def test_the_memory_run_reports_a_peak_for_a_small_follow_up(tmp_path: Path) -> None:
    """At 200 seeded exports the memory run reports the child's own peak RSS and every export exported."""
    memory = run_memory(
        images=200, project_python=sys.executable, base_env=os.environ, cwd=ROOT, scratch=tmp_path,
        progress=lambda _: None,
    )  # fmt: skip
    assert memory.peak_rss_mib > 0
    assert (memory.images, memory.objects, memory.exported, memory.deferred) == (200, 240, 200, 0)
    assert memory.tos_requests > 0


@pytest.mark.soak
def test_a_20000_image_follow_up_peaks_within_its_memory_target(tmp_path: Path) -> None:
    """The memory benchmark at its judged size (minutes): every export exported, none deferred, and the
    child's own peak RSS within the 120 MiB target. Its budget is the benchmark's (two hours), not a guess at
    this machine's speed."""
    memory = run_memory(
        images=MEMORY_IMAGES, project_python=sys.executable, base_env=os.environ, cwd=ROOT, scratch=tmp_path,
        progress=lambda _: None,
    )  # fmt: skip
    assert (memory.exported, memory.deferred) == (MEMORY_IMAGES, 0)
    assert memory.peak_rss_mib <= MEMORY_PEAK_MIB
