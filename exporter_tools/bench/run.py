"""``exporter-tools bench [--quick] [--runs N] [--memory] [--only deployed] [--write]``: every benchmark in
one run, then the report. The memory benchmark (a 20,000-image follow-up: several minutes) runs only with
``--memory``; ``--only deployed`` runs the deployed cold start alone (to iterate on it; never ``--write``).

The SDK baseline's environment is created on first use (``.bench/sdk-venv``), and so is the SDK installed for
its deployed function (``.bench/sdk-function``); the function's zip is built into ``.bench/run`` (its wheels
cached in ``dist/.vendor``), which also holds the SDK function's zip and the scratch files. The report is
printed and written to ``.bench/benchmarks.md`` (untracked); ``--write`` writes ``docs/benchmarks.md``
instead. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from exporter_tools.bench.cold import UNPACED_RPS, Endpoints, cold_kinds, deployed_kinds, run_cold
from exporter_tools.bench.deployed import prepare_deployed
from exporter_tools.bench.follow_up import FOLLOW_UP_IMAGES, run_follow_up_cost, run_memory
from exporter_tools.bench.markdown import render_markdown
from exporter_tools.bench.process import BenchError, child_env, run_measured
from exporter_tools.bench.profile import compare_imports, median_importtime, parse_importtime
from exporter_tools.bench.report import MEMORY_IMAGES, ImportProfile, Machine, Report, check_targets, ratio
from exporter_tools.bench.retention import measure_retention
from exporter_tools.bench.scripts import write_scripts
from exporter_tools.bench.sdk_env import SDK_VERSION, ensure_sdk_venv, site_packages
from exporter_tools.bench.sdk_function import prepare_sdk_function
from exporter_tools.bench.size import measure_sizes
from exporter_tools.bench.throughput import run_throughput
from exporter_tools.bench.tls import CertPair, make_self_signed_cert, serve_over_tls
from exporter_tools.bench.warm import profile_warm, run_warm
from exporter_tools.emulator.api import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY
from exporter_tools.emulator.ecs import EcsEmulator, Faults
from exporter_tools.emulator.fleet import new_images_fleet

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[2]
THROUGHPUT_RPS = 40.0
THROUGHPUT_LATENCY_MS = 50.0
ONLY = ("deployed",)  # what --only can run alone


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _machine() -> Machine:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    return Machine(
        python=f"{platform.python_implementation()} {platform.python_version()}",
        platform=platform.platform(terse=True),
        cpu=cpu,
        cores=os.cpu_count() or 1,
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        sdk_version=SDK_VERSION,
    )


def _import_profile(
    endpoints: Endpoints, project_python: str, floor_script: Path, event: Path, *, runs: int = 5
) -> ImportProfile:
    """Cold TLS invocations of ours and floor processes, alternating, all under ``-X importtime``: each
    module's median over ``runs`` of each (one run alone is noisy)."""
    ours_runs, floor_runs = [], []
    env = endpoints.env(os.environ, "tls")
    for _ in range(runs):
        endpoints.tls.reset()
        ours = run_measured(
            (project_python, "-X", "importtime", "-m", "handler", "invoke", str(event), "--timeout", "60"),
            env,
            cwd=ROOT,
        )
        floor = run_measured((project_python, "-X", "importtime", str(floor_script)), env, cwd=ROOT)
        ours_runs.append(parse_importtime(ours.stderr))
        floor_runs.append(parse_importtime(floor.stderr))
    return compare_imports(median_importtime(ours_runs), median_importtime(floor_runs))


def _notes(report: Report, sdk_signed: int, sdk_pyc: int) -> list[str]:
    notes = [
        (
            f"The emulator checked the signature of every SDK request: all {sdk_signed} requests signed by "
            f"volcenginesdkcore {SDK_VERSION} in the timed cold runs were accepted."
        ),
    ]
    shipped, sources = report.cold_of("deployed", "tls"), report.cold_of("deployed-sources", "tls")
    if shipped and sources:
        notes.append(
            f"Shipping bytecode: a new instance of the zip as shipped uses "
            f"{shipped.cpu.median * 1000:.0f} ms of CPU; the same zip without `.pyc` uses "
            f"{sources.cpu.median * 1000:.0f} ms ({ratio(sources.cpu.median, shipped.cpu.median):.2f}x), "
            "compiling every module it imports, at every cold start."
        )
    sdk_best, sdk_stale = report.cold_of("deployed-sdk", "tls"), report.cold_of("deployed-sdk-stale", "tls")
    if sdk_best and sdk_stale:
        notes.append(
            f"The SDK's bytecode: pip wrote {sdk_pyc} timestamp-based `.pyc`, all valid when the upload keeps "
            f"every mtime, and its function then uses {sdk_best.cpu.median * 1000:.0f} ms of CPU; with the "
            f"mtimes reset they are all stale and it uses {sdk_stale.cpu.median * 1000:.0f} ms "
            f"({ratio(sdk_stale.cpu.median, sdk_best.cpu.median):.2f}x). Ours ships unchecked-hash bytecode, "
            "valid whatever the mtimes."
        )
    ours, unpaced, sdk = (report.cold_of("ours", "tls"), report.cold_of("ours-unpaced", "tls"),
                          report.cold_of("sdk", "tls"))  # fmt: skip
    if ours and unpaced and sdk:
        notes.append(
            f"Requests: a cold direct event sends {ours.requests:g} (the export-task look-up that prevents a "
            f"duplicate export, then ExportImage); the SDK script sends {sdk.requests:g}. The limiter does not "
            f"delay a cold start: with `VOLCENGINE_MAX_RPS={UNPACED_RPS}` ours is "
            f"{ratio(unpaced.seconds.median, ours.seconds.median):.2f}x the default's time."
        )
    floor = report.cold_of("floor", "tls")
    if ours and floor and sdk:
        notes.append(
            f"Cold against the SDK: the floor of our stack alone (httpx, pydantic, structlog, one model, one "
            f"client; no request) uses {ratio(floor.cpu.median, sdk.cpu.median):.2f}x the CPU of the SDK's whole "
            f"cold invocation (volcenginesdkcore on urllib3); ours adds "
            f"{ratio(ours.cpu.median, floor.cpu.median):.2f}x on top of that floor: our modules, "
            "settings, signing, two requests over TLS and the log lines."
        )
    warm, warm_sdk = report.warm_of("ours"), report.warm_of("sdk")
    if warm and warm_sdk:
        notes.append(
            f"Warm, the same two requests each: ours {warm.seconds.median * 1000:.1f} ms p50, the SDK "
            f"{warm_sdk.seconds.median * 1000:.1f} ms. Per request, httpx (h11, httpcore) does more Python work "
            "than urllib3; ours also reads its settings and credentials, signs, and logs on every invocation."
        )
    if report.profile:
        extra = sum(ms for _, ms in report.profile.extra)
        notes.append(
            f"Imports beyond the floor's: the {len(report.profile.extra)} largest cost {extra:.0f} ms of self "
            "time under `-X importtime` (which inflates every import)."
        )
    return notes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exporter-tools bench",
        description=(
            "Benchmark the function against the official SDK and the floor of its stack; prints the report "
            "and writes .bench/benchmarks.md (docs/benchmarks.md with --write)."
        ),
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer runs (5 cold rounds, 50 warm invocations)"
    )
    parser.add_argument("--runs", type=int, default=None, metavar="N", help="cold rounds (default 20)")
    parser.add_argument("--warm", type=int, default=None, metavar="N", help="warm invocations (default 200)")
    parser.add_argument(
        "--images", type=int, default=300, metavar="N", help="throughput images (default 300)"
    )
    parser.add_argument(
        "--follow-up-images",
        type=int,
        default=FOLLOW_UP_IMAGES,
        metavar="N",
        help=f"finished exports the follow-up cost is measured on (default {FOLLOW_UP_IMAGES})",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help=f"also measure the peak RSS of a {MEMORY_IMAGES:,}-image follow-up (several minutes)",
    )
    parser.add_argument(
        "--memory-images",
        type=int,
        default=MEMORY_IMAGES,
        metavar="N",
        help=f"images of the memory benchmark (default {MEMORY_IMAGES:,}; its target is judged at that size)",
    )
    parser.add_argument(
        "--only",
        choices=ONLY,
        default=None,
        help=(
            "run one benchmark alone: deployed (the deployed cold start: our zip, the SDK's function, the "
            "floor); not with --write, which needs every benchmark"
        ),
    )
    parser.add_argument(
        "--write", action="store_true", help="write the report to docs/benchmarks.md (the tracked copy)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where the report is written (default .bench/benchmarks.md, or docs/benchmarks.md with --write)",
    )
    return parser


def _cold_endpoints(stack: contextlib.ExitStack, cert: CertPair) -> Endpoints:
    """The cold runs' two emulators of one new image, plain and TLS, started; ``stack`` closes them."""
    plain = EcsEmulator(new_images_fleet(1))
    stack.callback(plain.close)
    plain.start()
    tls = EcsEmulator(new_images_fleet(1))
    stack.callback(tls.close)
    tls_url = serve_over_tls(tls, cert)
    tls.start()
    return Endpoints(
        plain, tls, plain.endpoint, tls_url, cert.cert, DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, "demo-exports"
    )


def _measure(args: argparse.Namespace, work: Path) -> Report:
    """Every benchmark, in order: cold (deployed included) and the import profile, warm, throughput, the
    follow-up's cost, memory (when asked), retention's requests, sizes; with ``--only deployed`` the deployed
    cold start alone."""
    runs = args.runs or (5 if args.quick else 20)
    warm_count = args.warm or (50 if args.quick else 200)
    scratch = work / "run"
    project_python = sys.executable
    sdk_python = ""
    if not args.only:
        _progress("preparing the SDK environment (.bench/sdk-venv)")
        sdk_python = str(ensure_sdk_venv(work / "sdk-venv"))
    cert = make_self_signed_cert(work / "tls")
    scripts = write_scripts(scratch)
    _progress("building the function's zip and unpacking it read-only (.bench/run)")
    trees = prepare_deployed(scratch, ROOT / "dist" / ".vendor")
    _progress("building the SDK's function (.bench/sdk-function) and unpacking it read-only, two ways")
    sdk_function = prepare_sdk_function(scratch, work / "sdk-function", trees.python, scripts["sdk_index.py"])
    event = scratch / "direct.json"
    report = Report(_machine(), runs, deployed_python=f"CPython {trees.version}", only=args.only or "")
    with contextlib.ExitStack() as stack:
        endpoints = _cold_endpoints(stack, cert)
        image_id = new_images_fleet(1).images[0].id
        event.write_text(json.dumps({"ImageId": image_id}), encoding="utf-8")
        kinds = [] if args.only else cold_kinds(
            endpoints,
            project_python=project_python,
            sdk_python=sdk_python,
            scripts=scripts,
            event_file=event,
            base_env=os.environ,
        )  # fmt: skip
        kinds += deployed_kinds(
            trees, sdk_function, endpoints, scripts=scripts, event_file=event, base_env=os.environ
        )
        report.cold, sdk_signed = run_cold(
            kinds, endpoints, runs=runs, image_id=image_id, cwd=ROOT, progress=_progress
        )
        if args.only:
            report.notes = _notes(report, sdk_signed, sdk_function.best_bytecode.valid)
            return report
        report.profile = _import_profile(endpoints, project_python, scripts["floor.py"], event)

        warm_fleet = new_images_fleet(warm_count + 1)
        warm_tls = EcsEmulator(warm_fleet)
        stack.callback(warm_tls.close)
        warm_url = serve_over_tls(warm_tls, cert)
        warm_tls.start()
        report.warm = run_warm(
            dataclasses.replace(endpoints, tls=warm_tls, tls_url=warm_url),
            image_ids=[image.id for image in warm_fleet.images],
            project_python=project_python,
            sdk_python=sdk_python,
            scripts=scripts,
            base_env=os.environ,
            cwd=ROOT,
            scratch=scratch,
            progress=_progress,
        )
        report.warm_profile = profile_warm(
            dataclasses.replace(endpoints, tls=warm_tls, tls_url=warm_url),
            image_ids=[image.id for image in warm_fleet.images][:101],
            project_python=project_python,
            sdk_python=sdk_python,
            scripts=scripts,
            base_env=os.environ,
            cwd=ROOT,
            scratch=scratch,
        )

        limited = EcsEmulator(
            new_images_fleet(args.images),
            faults=Faults(max_rps=THROUGHPUT_RPS, latency_ms=THROUGHPUT_LATENCY_MS),
        )
        stack.callback(limited.close)
        limited.start()
        report.throughput, job_notes = run_throughput(
            limited,
            images=args.images,
            max_rps=THROUGHPUT_RPS,
            project_python=project_python,
            sdk_python=sdk_python,
            scripts=scripts,
            base_env=child_env(os.environ),
            cwd=ROOT,
            scratch=scratch,
            progress=_progress,
        )
    report.follow_up = run_follow_up_cost(
        images=args.follow_up_images,
        project_python=project_python,
        base_env=os.environ,
        cwd=ROOT,
        scratch=scratch,
        progress=_progress,
    )
    if args.memory:
        report.memory = run_memory(
            images=args.memory_images,
            project_python=project_python,
            base_env=os.environ,
            cwd=ROOT,
            scratch=scratch,
            progress=_progress,
        )
    _progress("counting retention's requests on 1,000 exports")
    report.retention = measure_retention(1000)
    _progress("measuring package sizes")
    report.sizes = measure_sizes(ROOT, site_packages(Path(sdk_python)), scratch)
    report.notes = [*_notes(report, sdk_signed, sdk_function.best_bytecode.valid), *job_notes]
    return report


def report_path(args: argparse.Namespace) -> Path:
    """Where the report goes: ``--output``, else ``docs/benchmarks.md`` with ``--write``, else the untracked
    ``.bench/benchmarks.md`` (a plain run leaves the working tree as it was)."""
    if args.output:
        return Path(args.output)
    return ROOT / "docs" / "benchmarks.md" if args.write else ROOT / ".bench" / "benchmarks.md"


def main(argv: Sequence[str] | None = None) -> int:
    """Run every benchmark; 0 when they ran (missed targets are in the report), 1 when one could not."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.only and args.write and args.output is None:
        parser.error("--write replaces docs/benchmarks.md with every benchmark's figures: leave out --only")
    work = ROOT / ".bench"
    try:
        report = _measure(args, work)
    except (BenchError, OSError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    markdown = render_markdown(report, check_targets(report))
    output = report_path(args)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(markdown, encoding="utf-8")
    print(markdown)
    _progress(f"written to {output}")
    return 0
