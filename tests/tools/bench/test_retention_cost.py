"""Retention's requests on a bucket of 1,000 exports, counted by the emulator (``exporter_tools.bench.retention``):
the figures docs/benchmarks.md states, held here."""

from __future__ import annotations

from exporter_tools.bench.markdown import render_markdown, retention_section
from exporter_tools.bench.report import Machine, Report
from exporter_tools.bench.retention import measure_retention

MACHINE = Machine("CPython 3.11.7", "Linux-x86_64", "AMD EPYC", 2, "2026-01-01 00:00 UTC", "5.0.54")


def test_retention_on_1000_exports_costs_a_page_per_1000_objects_and_a_get_per_manifest_not_yet_read() -> (
    None
):
    """1,000 exports (2,000 objects): 2 ListObjectsV2 pages each run; 1,000 GETs, none when the invocation
    already read them; no ECS request when nothing goes, else 2 tag searches and one DescribeImages per 100
    sources that would go (300: 3); apply deletes RETENTION_MAX_DELETES exports, a DeleteObject per file and
    one for the manifest."""
    keep_all, plan, apply = measure_retention(1000)

    assert (keep_all.groups, keep_all.objects) == (100, 2000)
    assert (keep_all.list_pages, keep_all.gets, keep_all.describe_images, keep_all.deletes) == (2, 1000, 0, 0)
    assert (plan.list_pages, plan.gets, plan.describe_images, plan.deletes) == (2, 1000, 5, 0)
    assert (apply.list_pages, apply.gets, apply.describe_images, apply.deletes, apply.deleted) == (
        2,
        0,
        5,
        20,
        10,
    )
    assert apply.tos_requests + apply.describe_images == 27


def test_the_section_is_part_of_the_report() -> None:
    costs = measure_retention(20)
    section = retention_section(costs)
    assert section[0] == "## Retention on a bucket of many exports"
    assert any(
        line.startswith("| the defaults, every manifest read: plan | 1 | 20 | 3 |") for line in section
    )
    report = Report(MACHINE, 1, retention=costs)
    assert "## Retention on a bucket of many exports" in render_markdown(report)
