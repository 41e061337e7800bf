"""The report as Markdown: the machine, the targets, then each measurement's table and the notes."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from exporter_tools.bench.earlier import EARLIER_RUNS
from exporter_tools.bench.report import (
    MEMORY_IMAGES,
    Report,
    RetentionCost,
    TargetCheck,
    check_targets,
    mb,
    mib,
    ms,
    ratio,
    x_ratio,
)

__all__ = ["render_markdown", "retention_section"]


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _cold_rows(report: Report) -> list[list[str]]:
    floor = report.cold_of("floor", "tls")
    rows = []
    for result in report.cold:
        if result.key.startswith("deployed"):
            continue
        sdk = report.cold_of("sdk", result.transport)
        over_floor = ratio(result.cpu.median, floor.cpu.median) if floor else math.nan
        over_sdk = ratio(result.cpu.median, sdk.cpu.median) if sdk else math.nan
        rows.append(
            [
                result.label,
                result.transport.upper() if result.transport == "tls" else result.transport,
                ms(result.cpu.median),
                f"{ms(result.cpu.p25)} - {ms(result.cpu.p75)}",
                ms(result.seconds.median),
                "—" if result.key == "floor" else x_ratio(over_floor),
                "—"
                if result.key == "sdk" or result.key.startswith("floor") or not sdk
                else x_ratio(over_sdk),
                f"{result.rss_mib.median:.1f} MiB",
                f"{result.requests:g}",
            ]
        )
    return rows


_DEPLOYED_COLUMNS = (
    "process", "CPU", "CPU p25 - p75", "wall", "peak RSS", "requests", "ours ÷ it: CPU", "ours ÷ it: peak RSS",
)  # fmt: skip


def _deployed_rows(report: Report) -> list[list[str]]:
    """One row a deployed process, each against ours as shipped (ours ÷ it: the targets' ratios)."""
    ours = report.cold_of("deployed", "tls")
    return [
        [
            result.label,
            ms(result.cpu.median),
            f"{ms(result.cpu.p25)} - {ms(result.cpu.p75)}",
            ms(result.seconds.median),
            f"{result.rss_mib.median:.1f} MiB",
            f"{result.requests:g}",
            "—" if result is ours or not ours else x_ratio(ratio(ours.cpu.median, result.cpu.median)),
            "—" if result is ours or not ours else x_ratio(ratio(ours.rss_mib.median, result.rss_mib.median)),
        ]
        for result in report.cold
        if result.key.startswith("deployed")
    ]


def _deployed_lines(report: Report) -> list[str]:
    rows = _deployed_rows(report)
    if not rows:
        return []
    python = report.deployed_python or "CPython 3.12"
    return [
        "## Deployed cold start",
        "",
        "Each function as a new veFaaS instance starts it: its zip unpacked into a read-only directory and run",
        f"by `python3.12 -I -B` ({python}: nothing but the zip on its path, no bytecode written), one direct",
        "event over TLS to the emulator per fresh process. Ours is the zip `exporter-tools package` builds, as",
        "shipped (unchecked-hash bytecode for every module; `EXPORT_TRACKING=off`: 2 requests, DescribeTasks",
        "then ExportImage). The SDK's function is built as its users build one: `pip install --target` of",
        f"`volcenginesdk-core` and `volcenginesdk-ecs` {report.machine.sdk_version} under CPython 3.12 (pip",
        "writes timestamp-based `.pyc`), a 20-line `index.handler` calling `export_image` once (1 request),",
        "`zip -r`. At its best it is unpacked as `unzip` does, every mtime kept, so pip's bytecode is valid;",
        "stale, every mtime is reset (an unpacking that keeps none), so each module it imports is compiled",
        "again at every cold start. The floor is `import structlog, pydantic, httpx; httpx.Client()` run from",
        'our zip. "Precompiled" is our zip\'s sources compiled here beforehand by `compileall` (the ideal);',
        '"without .pyc" is what a sources-only zip costs. Medians; CPU is user + system time; the last two',
        "columns are ours as shipped ÷ that row (the targets' ratios); peak RSS from `wait4`.",
        "",
        *_table(_DEPLOYED_COLUMNS, rows),
        "",
    ]


def _profile_cells(profile: Sequence[tuple[str, float]], index: int) -> tuple[str, str]:
    if index >= len(profile):
        return "", ""
    name, each = profile[index]
    return name, f"{each:.3f}"


def _summary_rows(checks: Sequence[TargetCheck]) -> list[list[str]]:
    return [[c.name, c.measured, c.limit, "met" if c.met else "**missed**"] for c in checks]


def _follow_up_lines(report: Report) -> list[str]:
    if not report.follow_up:
        return []
    first = report.follow_up[0]
    kinds = ["list", "ranged GET", "GET", "PUT", "HEAD", "other"]
    requests = [
        [f"`EXPORT_VERIFY={c.verify}`", *(str(c.requests.get(k, 0)) for k in kinds), str(c.tos_requests),
         str(c.ecs_requests)]
        for c in report.follow_up
    ]  # fmt: skip
    costs = [
        [
            f"`{c.verify}`",
            f"{c.exported}/{c.images}",
            f"{c.per_object_beyond_ranged:.2f}",
            f"{c.ranged_per_object:.2f}",
            mib(c.mean_bytes),
            mib(c.max_bytes),
            f"{c.wall_seconds:.1f} s",
            f"{c.ideal_seconds:.1f} s",
            x_ratio(c.wall_over_ideal),
        ]
        for c in report.follow_up
    ]
    return [
        "## Following up finished exports",
        "",
        (
            f"{first.images} new images of 40 GiB ({first.with_data_disk} with a 40 GiB data disk: "
            f"{first.objects} qcow2 objects) exported through the function (one timer scan), their tasks left"
        ),
        "to end, then one timer run follows them up: a fresh `python -m handler invoke` against the emulator",
        f"over loopback, at `VOLCENGINE_MAX_RPS={first.max_rps:g}` (the default, which the TOS client's own",
        "limiter uses too), once for each `EXPORT_VERIFY`, the account reset between them. The emulator's",
        "objects are real qcow2 files (a 40 GiB one is 1.4 MB of metadata and data clusters). Requests and",
        "bytes are what the emulator's TOS side recorded; ECS counts the follow-up's OpenAPI requests. The",
        f"ideal is the TOS requests ÷ {first.max_rps:g}, what the TOS limiter lets through; the wall time",
        "is the whole invocation (start, ECS look-ups, the claim and its settle time, the checks, the retag).",
        "",
        *_table(["run", *kinds, "TOS in all", "ECS"], requests),
        "",
        *_table(
            [
                "run",
                "exported",
                "TOS requests / object beyond the ranged reads",
                "ranged GETs / object",
                "read / export (mean)",
                "read / export (max)",
                "wall",
                "ideal",
                "wall / ideal",
            ],
            costs,
        ),
        "",
    ]


# How the memory benchmark's figure came down, each step measured by this benchmark at MEMORY_IMAGES: (date,
# images, peak RSS in MiB, what changed). Kept here so that every report says what each change bought.
MEMORY_STEPS: tuple[tuple[str, int, float, str], ...] = (
    (
        "2026-12-04",
        20_000,
        138.5,
        "slotted records, claims read and written 100 at a time, only each image's latest task kept",
    ),
    (
        "2026-12-04",
        20_000,
        104.6,
        (
            "the checks' fan-out queues no future an export; the scan's listing is let go before the settle; "
            "listed images share tag values, destinations and time zones, claims their holder; the tasks and "
            "the checks are let go once every export is decided"
        ),
    ),
)


def _memory_steps() -> list[str]:
    rows = [[date, f"{images:,}", f"{peak:.1f} MiB", what] for date, images, peak, what in MEMORY_STEPS]
    return [
        "How the figure came down, run by run:",
        "",
        *_table(["date", "images", "peak RSS", "what changed"], rows),
        "",
    ]


def _memory_lines(report: Report) -> list[str]:
    memory = report.memory
    if memory is None:
        return [
            "## Peak memory of a large follow-up",
            "",
            (
                f"Not measured in this run: it takes several minutes. `exporter-tools bench --memory` (or "
                f"`make bench BENCH_ARGS=--memory`) follows up {MEMORY_IMAGES:,} finished exports in one"
            ),
            "fresh process and reports its peak RSS.",
            "",
            *_memory_steps(),
        ]
    row = [
        f"{memory.images:,}",
        f"{memory.objects:,}",
        f"`{memory.verify}`",
        f"{memory.peak_rss_mib:.1f} MiB",
        f"{memory.exported:,}",
        f"{memory.deferred:,}",
        f"{memory.tos_requests:,}",
        f"{memory.wall_seconds:.0f} s",
    ]
    return [
        "## Peak memory of a large follow-up",
        "",
        (
            f"One timer run following up {memory.images:,} finished exports (every fifth image with a data "
            "disk), seeded into the emulator as"
        ),
        "Succeeded ExportImage tasks with their objects and the `exporting` tags the function writes; a fresh",
        f"`python -m handler invoke` at `VOLCENGINE_MAX_RPS={memory.max_rps:g}` (the limiter out of the way)",
        "with a budget that leaves time for every check. Peak RSS is that process's own (`wait4`).",
        "",
        *_table(
            ["images", "objects", "check", "peak RSS", "exported", "deferred", "TOS requests", "wall"], [row]
        ),
        "",
        *_memory_steps(),
    ]


def render_markdown(report: Report, checks: Sequence[TargetCheck] | None = None) -> str:
    """The whole report: the machine, the targets, then each measurement's table, the notes and the first
    release's figures (``EARLIER_RUNS``, the same in every report)."""
    checks = check_targets(report) if checks is None else checks
    m = report.machine
    out = [
        "# Benchmarks: this function against the official SDK",
        "",
        "Written by `exporter-tools bench --write` (`make bench` prints the same report and keeps it in",
        "`.bench/benchmarks.md`); every number below comes from one run on one machine, ours and the baselines",
        "interleaved. The baseline is the official SDK's split packages",
        f"(`volcenginesdk-core` and `volcenginesdk-ecs` {m.sdk_version}) in their own virtual environment, and,",
        "deployed, the same packages zipped as a function; both talk to the local ECS emulator, which checks",
        "every signature. Ours runs with `EXPORT_TRACKING=off`: the SDK scripts do not tag what they export, so",
        "neither side does (tracking adds one TagResources request per 50 exports started).",
        "",
        f"- **Machine**: {m.platform}, {m.cpu}, {m.cores} cores",
        f"- **Python**: {m.python}"
        + (f"; the deployed zip on {report.deployed_python}" if report.deployed_python else ""),
        f"- **Date**: {m.date}",
        f"- **Runs**: {report.runs} cold runs of each process, interleaved",
        *([f"- **Only**: `--only {report.only}`: the other benchmarks did not run"] if report.only else []),
        "",
        "## Targets",
        "",
        *_table(["target", "measured", "limit", ""], _summary_rows(checks)),
        "",
    ]
    out += _deployed_lines(report)
    if any(not c.key.startswith("deployed") for c in report.cold):
        out += [
            "## Cold invocation and peak memory",
            "",
            'A fresh process handling one direct event (`{"ImageId": …}`) end to end: start, import, settings,',
            "sign, call, log, result. Ours is `python -m handler invoke EVENT_FILE`; the SDK's is a script calling",
            "`ECSApi().export_image`; the floor of the stack imports httpx, pydantic and structlog, defines and",
            "validates one pydantic model and builds one TLS-capable httpx client, and does nothing else. CPU is",
            "the process's user + system time and the ratios compare it (on a shared machine it moves far less",
            "with other load than wall time); wall is spawn to exit; peak RSS from `wait4` (each process's own);",
            "requests as the emulator counted them. Medians of the runs.",
            "",
            *_table(
                [
                    "process",
                    "transport",
                    "CPU",
                    "CPU p25 - p75",
                    "wall",
                    "CPU vs floor",
                    "CPU vs SDK",
                    "peak RSS",
                    "requests",
                ],
                _cold_rows(report),
            ),
            "",
        ]
    compared = [w for w in report.warm if w.key != "ours-paced"]
    if compared:
        sdk = report.warm_of("sdk")
        rows = [
            [
                w.label,
                ms(w.seconds.median),
                ms(w.seconds.p99),
                "—" if w.key == "sdk" or not sdk else x_ratio(ratio(w.seconds.median, sdk.seconds.median)),
                ms(w.cpu.median),
                "—" if w.key == "sdk" or not sdk else x_ratio(ratio(w.cpu.median, sdk.cpu.median)),
                f"{w.requests:g}",
                f"{w.rss_mib:.1f} MiB",
            ]
            for w in compared
        ]
        count = len(compared[0].seconds.values)
        out += [
            "## Warm latency",
            "",
            f"{count} invocations over TLS (keep-alive), each a new image, in processes that alternate between",
            "ours and the SDK (each after one untimed warm-up): ours calls `handler.handler(event, None)`; the",
            "SDK script does the same work, looking the image's export tasks up (`describe_tasks`) then",
            "`export_image`. p50 is wall time per invocation (the target); CPU is the client process's own.",
            "",
            *_table(
                ["process", "p50", "p99", "p50 vs SDK", "CPU p50", "CPU p50 vs SDK", "requests", "peak RSS"],
                rows,
            ),
            "",
        ]
    ours_profile, sdk_profile = report.warm_profile.get("ours", ()), report.warm_profile.get("sdk", ())
    if ours_profile and sdk_profile:
        ours_total = sum(each for _, each in ours_profile)
        sdk_total = sum(each for _, each in sdk_profile)
        rows = [
            [*_profile_cells(ours_profile, i), *_profile_cells(sdk_profile, i)]
            for i in range(min(8, max(len(ours_profile), len(sdk_profile))))
        ]
        out += [
            "Where a warm invocation goes (cProfile, each package's own time per invocation; the profiler",
            f"inflates Python-level work): ours {ours_total:.2f} ms in all, the SDK {sdk_total:.2f} ms.",
            "",
            *_table(["ours: package", "ms", "SDK: package", "ms"], rows),
            "",
        ]
    paced = report.warm_of("ours-paced")
    if paced:
        out += [
            (
                f"Rate-limited, as configured: the same loop with the default `VOLCENGINE_MAX_RPS` (10) takes "
                f"{ms(paced.seconds.median)} p50 ({ms(paced.seconds.p99)} p99) per invocation: the limiter "
                f"spaces its {paced.requests:g} requests 100 ms apart, which is its job, not overhead."
            ),
            "",
        ]
    if report.throughput:
        first = report.throughput[0]
        rows = [
            [
                t.label,
                f"{t.exported}/{t.images}",
                f"{t.wall_seconds:.1f} s",
                f"{t.ideal_seconds:.1f} s",
                x_ratio(t.wall_over_ideal),
                str(t.peak_rps),
                f"{t.throttled} ({t.turned_away_share:.1%})",
                str(t.failures),
                f"{t.requests_per_image:.3f}",
            ]
            for t in report.throughput
        ]
        out += [
            "## Throughput under a rate limit",
            "",
            f"The emulator answers 429 `FlowLimitExceeded` above {first.max_rps:g} requests per second and takes",
            (
                f"50 ms per answer; {first.images} new images. Ours: one timer scan, `VOLCENGINE_MAX_RPS="
                f"{first.max_rps:g}`. The SDK: `DescribeImages` pages, then `ExportImage` for each image in a plain"
            ),
            "loop (its users write it that way), and the same loop on 4 threads. The ideal is the requests",
            f"served ÷ {first.max_rps:g}; requests per image counts the requests served.",
            "",
            *_table(
                [
                    "job",
                    "exported",
                    "wall",
                    "ideal",
                    "wall / ideal",
                    "peak rps",
                    "429s",
                    "failures",
                    "requests / image",
                ],
                rows,
            ),
            "",
        ]
    out += _follow_up_lines(report)
    out += [] if report.only else _memory_lines(report)  # a partial run says nothing of memory
    out += retention_section(report.retention)
    if report.sizes:
        rows = [
            [
                s.label,
                "—" if s.zip_bytes is None else mb(s.zip_bytes),
                mb(s.installed_bytes),
                s.note,
            ]
            for s in report.sizes
        ]
        out += [
            "## Package size",
            "",
            *_table(["what", "zip", "installed (sources)", "contents"], rows),
            "",
        ]
    if report.profile:
        p = report.profile
        out += [
            "## Where the cold start goes (`python -X importtime`, medians of 5 runs each)",
            "",
            (
                f"Import self time, all modules: ours {p.ours_ms:.0f} ms, floor {p.floor_ms:.0f} ms. "
                "Imported by ours and not by the floor (largest self times):"
            ),
            "",
            *_table(["module", "self ms"], [[f"`{name}`", f"{ms:.1f}"] for name, ms in p.extra]),
            "",
        ]
        if p.ours_top:
            out += [
                "Our own modules, cumulative:",
                "",
                *_table(["module", "cumulative ms"], [[f"`{name}`", f"{ms:.1f}"] for name, ms in p.ours_top]),
                "",
            ]
        if p.watched:
            out += [
                "Modules only a follow-up needs (the qcow2 check, the manifest), on this direct export's path:",
                "",
                *_table(
                    ["module", "cumulative ms"],
                    [[f"`{name}`", "not imported" if ms is None else f"{ms:.1f}"] for name, ms in p.watched],
                ),
                "",
            ]
    if report.notes:
        out += ["## Notes", "", *(f"- {note}" for note in report.notes), ""]
    out += EARLIER_RUNS
    return "\n".join(out)


def retention_section(costs: Sequence[RetentionCost]) -> list[str]:
    """The report's section: how the figures were counted, then one row a run."""
    if not costs:
        return []
    first = costs[0]
    rows = [
        f"| {c.case} | {c.list_pages} | {c.gets} | {c.describe_images} | {c.deletes} ({c.deleted} exports) "
        f"| {c.tos_requests + c.describe_images} | {c.seconds:.2f} s |"
        for c in costs
    ]
    return [
        "## Retention on a bucket of many exports",
        "",
        (
            f"{first.exports:,} exports in {first.groups} groups of {first.exports // first.groups} daily "
            "exports, each one system disk and its manifest"
        ),
        (
            f"({first.objects:,} objects under the prefix), nothing in flight, no pins. "
            "`exporter_tools/bench/retention.py` runs"
        ),
        "the function's retention core through its own clients over loopback and counts the requests the",
        "emulator answered; the counts are exact (they depend on the bucket alone, and",
        "`tests/tools/bench/test_retention_cost.py` holds them), the wall times are this machine's.",
        "ListObjectsV2 lists 1,000 keys a page, the disks with the manifests; a manifest already read in the",
        "invocation (by the restore drill) is not read again; when nothing would go no ECS request is made,",
        "otherwise two tag searches (exports and imports in flight) and one DescribeImages per 100 source",
        "images that would go (their keep tags); a deleted export is one DeleteObject per file, then one for",
        "its manifest.",
        "",
        "| run | ListObjectsV2 pages | GetObject | DescribeImages | DeleteObject | requests | wall |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
    ]
