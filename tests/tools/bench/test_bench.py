"""The benchmark's maths, verdicts, report, certificate and process plumbing: deterministic, nothing timed."""

from __future__ import annotations

import math
import socket
import ssl
import sys
import threading
import zipfile
from pathlib import Path

import httpx
import pytest

from exporter_tools.bench.cold import ColdKind
from exporter_tools.bench.earlier import EARLIER_RUNS
from exporter_tools.bench.markdown import render_markdown
from exporter_tools.bench.process import BenchError, Finished, child_env, run_measured
from exporter_tools.bench.profile import compare_imports, median_importtime, parse_importtime
from exporter_tools.bench.report import (
    ColdResult,
    Machine,
    Report,
    Samples,
    SizeResult,
    ThroughputResult,
    WarmResult,
    check_targets,
    percentile,
    ratio,
)
from exporter_tools.bench.run import ROOT, build_parser, main, report_path
from exporter_tools.bench.scripts import SCRIPTS, write_scripts
from exporter_tools.bench.size import distribution_closure, installed_files, zip_bytes
from exporter_tools.bench.tls import CertPair, make_self_signed_cert, serve_over_tls
from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import new_images_fleet

MACHINE = Machine("CPython 3.11.7", "Linux-x86_64", "AMD EPYC", 2, "2026-01-01 00:00 UTC", "5.0.54")


def _cold(key: str, transport: str, cpu: float, rss: float, requests: float = 1) -> ColdResult:
    """A cold result whose wall time is its CPU time plus 50 ms spent waiting."""
    return ColdResult(
        key,
        transport,
        key,
        Samples.of([cpu + 0.05] * 3),
        Samples.of([rss] * 3),
        requests,
        Samples.of([cpu] * 3),
    )


def _throughput(**changes: float) -> ThroughputResult:
    values: dict[str, float] = {
        "images": 300,
        "exported": 300,
        "failures": 0,
        "wall_seconds": 8.0,
        "requests_served": 306,
        "throttled": 3,
        "peak_rps": 41,
        "max_rps": 40.0,
    }
    values.update(changes)
    return ThroughputResult(
        "ours",
        "ours: one timer scan",
        images=int(values["images"]),
        exported=int(values["exported"]),
        failures=int(values["failures"]),
        wall_seconds=values["wall_seconds"],
        requests_served=int(values["requests_served"]),
        throttled=int(values["throttled"]),
        peak_rps=int(values["peak_rps"]),
        max_rps=values["max_rps"],
    )


def _report(
    *,
    ours_tls: float = 0.140,
    ours_rss: float = 38.0,
    warm: float = 0.0005,
    wall: float = 8.0,
    shipped: float = 0.290,
    sdk_best: float = 0.260,
    deployed_floor: float = 0.240,
) -> Report:
    report = Report(MACHINE, runs=15)
    report.cold = [
        _cold("floor", "tls", 0.130, 37.0, 0),
        _cold("ours", "plain", 0.135, 38.0, 2),
        _cold("sdk", "plain", 0.150, 39.0),
        _cold("ours", "tls", ours_tls, ours_rss, 2),
        _cold("sdk", "tls", 0.160, 39.0),
        _cold("deployed", "tls", shipped, 40.0, 2),
        _cold("deployed-sdk", "tls", sdk_best, 38.0, 1),
        _cold("deployed-sdk-stale", "tls", 0.700, 48.0, 1),
        _cold("deployed-floor", "tls", deployed_floor, 32.0, 0),
        _cold("deployed-precompiled", "tls", 0.280, 40.0, 2),
        _cold("deployed-sources", "tls", 0.560, 44.0, 2),
    ]
    report.warm = [
        WarmResult("ours", "ours", Samples.of([warm] * 10), 2, 38.0, Samples.of([warm / 2] * 10)),
        WarmResult("sdk", "official SDK", Samples.of([0.0006] * 10), 2, 39.0, Samples.of([0.0004] * 10)),
        WarmResult("ours-paced", "ours, paced", Samples.of([0.2] * 10), 2, 38.0, Samples.of([0.001] * 10)),
    ]
    report.throughput = [_throughput(wall_seconds=wall)]
    report.sizes = [
        SizeResult("ours", "ours", 3_400_000, 9_800_000),
        SizeResult("sdk", "SDK", 1_500_000, 5_100_000),
    ]
    return report


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1, 2, 3, 4], 50, 2.5),
        ([1, 2, 3, 4], 0, 1),
        ([1, 2, 3, 4], 100, 4),
        ([1, 2, 3, 4], 25, 1.75),
        ([4, 1, 3, 2], 75, 3.25),
        ([7], 99, 7),
        (list(range(1, 101)), 99, 99.01),
    ],
)
def test_percentile_interpolates_between_ranks(values: list[float], q: float, expected: float) -> None:
    """Percentiles interpolate linearly between the closest ranks, whatever the input order."""
    assert percentile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize(("values", "q"), [([], 50), ([1.0], -1), ([1.0], 101)])
def test_percentile_refuses_no_values_or_a_bad_rank(values: list[float], q: float) -> None:
    """A percentile of nothing, or outside 0-100, is an error rather than a made-up number."""
    with pytest.raises(ValueError, match=r"no values|between 0 and 100"):
        percentile(values, q)


@pytest.mark.parametrize(
    ("ours", "baseline", "expected"), [(2.0, 1.0, 2.0), (1.0, 4.0, 0.25), (0.0, 0.0, 1.0)]
)
def test_ratio_is_ours_over_the_baseline(ours: float, baseline: float, expected: float) -> None:
    """A ratio reads as how many times the baseline ours takes; nothing over nothing is parity."""
    assert ratio(ours, baseline) == pytest.approx(expected)


def test_ratio_over_a_zero_baseline_is_infinite() -> None:
    """Something against a baseline of nothing is infinitely worse, never a division error."""
    assert math.isinf(ratio(1.0, 0.0))


def test_throughput_measures_against_the_ideal_at_the_limit() -> None:
    """The ideal is the requests served at the limit; the turned-away share counts 429s among all requests."""
    run = _throughput(wall_seconds=9.18, requests_served=306, throttled=34)
    assert run.ideal_seconds == pytest.approx(7.65)
    assert run.wall_over_ideal == pytest.approx(1.2)
    assert run.turned_away_share == pytest.approx(0.1)
    assert run.requests_per_image == pytest.approx(1.02)


def test_every_target_is_met_by_numbers_within_the_limits() -> None:
    """Numbers inside every limit meet every target."""
    checks = check_targets(_report())
    assert len(checks) == 12
    assert all(check.met for check in checks), [c for c in checks if not c.met]


@pytest.mark.parametrize(
    ("changes", "missed"),
    [
        ({"ours_tls": 0.150}, {"cold invocation over TLS (CPU) vs the floor"}),
        (
            {"ours_tls": 0.200},
            {"cold invocation over TLS (CPU) vs the floor", "cold invocation over TLS (CPU) vs the SDK"},
        ),
        ({"ours_rss": 41.5}, {"peak RSS vs the SDK (cold)"}),
        ({"warm": 0.003}, {"warm p50 vs the SDK doing the same two calls"}),
        (
            {"shipped": 0.330},
            {
                "deployed cold start (CPU): our zip as shipped vs precompiled",
                "deployed cold start: ours vs the SDK at its best",
                "deployed cold start: ours vs the floor",
            },
        ),
        ({"sdk_best": 0.250}, {"deployed cold start: ours vs the SDK at its best"}),
        ({"deployed_floor": 0.230}, {"deployed cold start: ours vs the floor"}),
        ({"wall": 9.6}, {"throughput: wall time vs the ideal"}),
    ],
)
def test_a_number_past_its_limit_misses_that_target_only(changes: dict[str, float], missed: set[str]) -> None:
    """Each target is judged on its own numbers: one slow measurement misses its own target(s) only."""
    checks = check_targets(_report(**changes))
    assert {c.name for c in checks if not c.met} == missed


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"failures": 1}, "throughput: failures"),
        ({"throttled": 40}, "throughput: requests turned away (429)"),
        ({"requests_served": 330}, "throughput: API requests per image"),
    ],
)
def test_throughput_targets_catch_failures_throttling_and_chatter(
    changes: dict[str, float], name: str
) -> None:
    """A failure, too many 429s or too many requests per image each miss their target."""
    report = _report()
    report.throughput = [_throughput(**changes)]
    assert [c.name for c in check_targets(report) if not c.met] == [name]


def test_a_zip_over_ten_megabytes_misses_the_size_target() -> None:
    """The package target holds the zip to 10 MB; without a zip the installed size stands in, and says so."""
    report = _report()
    report.sizes = [SizeResult("ours", "ours", None, 12_000_000)]
    (check,) = [c for c in check_targets(report) if c.name.startswith("package size")]
    assert not check.met
    assert "installed" in check.name


def test_missing_measurements_give_no_verdict() -> None:
    """A report with nothing measured claims no target met or missed."""
    assert check_targets(Report(MACHINE, runs=1)) == []


def test_the_report_shows_the_machine_the_verdicts_and_each_ratio() -> None:
    """The Markdown names the machine and Python, marks misses, and shows each ratio against floor and SDK."""
    markdown = render_markdown(_report(ours_tls=0.200))
    assert "- **Python**: CPython 3.11.7" in markdown
    assert "- **Machine**: Linux-x86_64, AMD EPYC, 2 cores" in markdown
    assert "| cold invocation over TLS (CPU) vs the floor | 1.54x | ≤ 1.15x | **missed** |" in markdown
    assert "| throughput: failures | 0 | 0 | met |" in markdown
    assert "| ours | TLS | 200 ms | 200 ms - 200 ms | 250 ms | 1.54x | 1.25x | 38.0 MiB | 2 |" in markdown
    assert "| ours | 0.5 ms | 0.5 ms | 0.83x | 0.2 ms | 0.62x | 2 | 38.0 MiB |" in markdown
    assert (
        "| ours: one timer scan | 300/300 | 8.0 s | 7.7 s | 1.05x | 41 | 3 (1.0%) | 0 | 1.020 |" in markdown
    )
    assert "| ours | 3.4 MB | 9.8 MB |" in markdown


def test_every_report_ends_with_the_first_releases_figures() -> None:
    """The fixed section survives ``bench --write``: each report ends with it, and so does the committed copy."""
    section = "\n".join(EARLIER_RUNS)
    assert render_markdown(_report()).endswith("\n" + section)
    assert render_markdown(Report(MACHINE, runs=1)).endswith("\n" + section)
    assert (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8").endswith("\n" + section)


def test_the_report_lists_what_we_import_beyond_the_floor() -> None:
    """The import profile section names each extra module with its cost."""
    report = _report()
    report.profile = compare_imports({"a": (1.0, 1.0), "handler.x": (2.5, 4.0)}, {"a": (1.0, 1.0)})
    markdown = render_markdown(report)
    assert "| `handler.x` | 2.5 |" in markdown
    assert "| `handler.x` | 4.0 |" in markdown


IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       103 |       3912 | handler.cli
import time:      4124 |       4124 |     annotated_types
import time:       500 |       9000 |   pydantic
some other line on stderr
import time:      2387 |      93459 | handler.entry
"""


def test_importtime_output_parses_to_self_and_cumulative_milliseconds() -> None:
    """Each module's self and cumulative times come out in milliseconds, names unindented."""
    parsed = parse_importtime(IMPORTTIME)
    assert parsed == {
        "handler.cli": (0.103, 3.912),
        "annotated_types": (4.124, 4.124),
        "pydantic": (0.5, 9.0),
        "handler.entry": (2.387, 93.459),
    }


def test_the_import_comparison_keeps_only_what_the_floor_lacks_largest_first() -> None:
    """Modules the floor imports too are not charged to us; ours are ranked by their cumulative time."""
    profile = compare_imports(parse_importtime(IMPORTTIME), {"pydantic": (0.5, 9.0)}, top=2)
    assert profile.extra == (("annotated_types", 4.1), ("handler.entry", 2.4))
    assert profile.ours_top == (("handler.entry", 93.5), ("handler.cli", 3.9))
    assert profile.floor_ms == pytest.approx(0.5)


def test_repeated_import_profiles_combine_by_median_per_module() -> None:
    """Several noisy importtime runs combine into each module's median; a module seen once keeps its time."""
    runs = [{"a": (1.0, 2.0), "b": (5.0, 5.0)}, {"a": (3.0, 6.0)}, {"a": (2.0, 4.0)}]
    assert median_importtime(runs) == {"a": (2.0, 4.0), "b": (5.0, 5.0)}


def test_the_deployed_runs_are_each_compared_with_our_zip_as_shipped() -> None:
    """The deployed runs (CPython 3.12) get their own table, each row ours as shipped ÷ it in CPU and peak RSS
    (the SDK's stale function among them), their targets first, and never appear beside the floor or the SDK
    of the local runs (another interpreter)."""
    report = _report()
    markdown = render_markdown(report)
    assert "| deployed | 290 ms | 290 ms - 290 ms | 340 ms | 40.0 MiB | 2 | — | — |" in markdown
    assert "| deployed-sdk | 260 ms | 260 ms - 260 ms | 310 ms | 38.0 MiB | 1 | 1.12x | 1.05x |" in markdown
    assert (
        "| deployed-sdk-stale | 700 ms | 700 ms - 700 ms | 750 ms | 48.0 MiB | 1 | 0.41x | 0.83x |"
        in markdown
    )
    assert "| deployed-floor | 240 ms | 240 ms - 240 ms | 290 ms | 32.0 MiB | 0 | 1.21x | 1.25x |" in markdown
    assert (
        "| deployed-precompiled | 280 ms | 280 ms - 280 ms | 330 ms | 40.0 MiB | 2 | 1.04x | 1.00x |"
        in markdown
    )
    assert (
        "| deployed-sources | 560 ms | 560 ms - 560 ms | 610 ms | 44.0 MiB | 2 | 0.52x | 0.91x |" in markdown
    )
    assert "| deployed | TLS |" not in markdown
    assert [c.name for c in check_targets(report)[:3]] == [
        "deployed cold start: ours vs the SDK at its best",
        "deployed cold start: ours vs the floor",
        "deployed cold start (CPU): our zip as shipped vs precompiled",
    ]
    assert "| deployed cold start: ours vs the SDK at its best | 1.12x | ≤ 1.15x | met |" in markdown
    assert "| deployed cold start: ours vs the floor | 1.21x | ≤ 1.25x | met |" in markdown


def test_without_the_sdks_function_its_target_has_no_verdict() -> None:
    """A report lacking the SDK's deployed run holds ours to the floor and precompiled only."""
    report = _report()
    report.cold = [c for c in report.cold if c.key != "deployed-sdk"]
    names = {c.name for c in check_targets(report)}
    assert "deployed cold start: ours vs the SDK at its best" not in names
    assert "deployed cold start: ours vs the floor" in names


def test_the_rate_limited_warm_run_is_reported_apart_and_judged_by_no_target() -> None:
    """Ours paced by the default limit is shown as what it is, outside the comparison with the SDK."""
    report = _report()
    markdown = render_markdown(report)
    assert all(check.met for check in check_targets(report))
    assert "| ours, paced |" not in markdown
    assert "default `VOLCENGINE_MAX_RPS` (10) takes 200 ms p50" in markdown


def test_the_warm_profiles_of_ours_and_the_sdk_stand_side_by_side() -> None:
    """Each side's packages are listed by their own time per invocation, with each side's total."""
    report = _report()
    report.warm_profile = {"ours": (("httpx", 1.5), ("handler (ours)", 0.5)), "sdk": (("urllib3", 0.75),)}
    markdown = render_markdown(report)
    assert "| httpx | 1.500 | urllib3 | 0.750 |" in markdown
    assert "| handler (ours) | 0.500 |  |  |" in markdown
    assert "ours 2.00 ms in all, the SDK 0.75 ms" in markdown


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ".bench/benchmarks.md"),
        (["--write"], "docs/benchmarks.md"),
        (["--write", "--output", "elsewhere/report.md"], "elsewhere/report.md"),
    ],
)
def test_the_report_goes_to_an_untracked_file_unless_asked(argv: list[str], expected: str) -> None:
    """By default the report lands under .bench/ (ignored by git); only --write replaces docs/benchmarks.md."""
    path = report_path(build_parser().parse_args(argv))
    assert path == (Path(expected) if "--output" in argv else ROOT / expected)


def test_only_deployed_runs_alone_and_never_replaces_the_tracked_report(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--only deployed`` is an option of its own; with ``--write`` it is a usage error (exit 2) before
    anything runs, since docs/benchmarks.md holds every benchmark. ``--output`` names another file."""
    assert build_parser().parse_args(["--only", "deployed"]).only == "deployed"
    with pytest.raises(SystemExit) as exited:
        main(["--only", "deployed", "--write"])
    assert exited.value.code == 2
    assert "leave out --only" in capsys.readouterr().err
    args = build_parser().parse_args(["--only", "deployed", "--write", "--output", "x.md"])
    assert report_path(args) == Path("x.md")


def test_a_partial_report_says_so_and_claims_nothing_of_what_did_not_run() -> None:
    """A report of ``--only deployed`` names the option and leaves out the memory section's placeholder."""
    report = Report(MACHINE, runs=9, only="deployed")
    report.cold = [c for c in _report().cold if c.key.startswith("deployed")]
    markdown = render_markdown(report)
    assert "- **Only**: `--only deployed`: the other benchmarks did not run" in markdown
    assert "## Deployed cold start" in markdown
    assert "## Peak memory" not in markdown
    assert "## Cold invocation and peak memory" not in markdown
    assert [c.name for c in check_targets(report)] == [
        "deployed cold start: ours vs the SDK at its best",
        "deployed cold start: ours vs the floor",
        "deployed cold start (CPU): our zip as shipped vs precompiled",
    ]


def test_the_bench_directory_is_ignored_by_git() -> None:
    """.bench/ (the SDK environment, the scratch files and the default report) never shows as a change."""
    assert ".bench/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


def _handshake(pair: CertPair) -> str:
    """Serve one TLS handshake with ``pair`` on loopback; return the protocol a verifying client agreed."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server_context = pair.server_context()
    errors: list[BaseException] = []

    def accept() -> None:
        try:
            connection, _ = listener.accept()
            with server_context.wrap_socket(connection, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError) as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(pair.cert))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        client_context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        version = tls.version() or ""
        tls.sendall(b"x")
    thread.join(10)
    listener.close()
    assert not errors
    return version


def test_the_certificate_is_trusted_for_127_0_0_1_by_a_verifying_client(tmp_path: Path) -> None:
    """A client that trusts only the bench certificate completes a verified handshake with 127.0.0.1."""
    pair = make_self_signed_cert(tmp_path)
    assert pair.key.stat().st_mode & 0o077 == 0
    assert _handshake(pair).startswith("TLS")


def test_the_emulator_answers_over_tls_with_the_bench_certificate(tmp_path: Path) -> None:
    """Wrapped with the bench certificate, the emulator answers HTTPS clients that trust it."""
    pair = make_self_signed_cert(tmp_path)
    emulator = EcsEmulator(new_images_fleet(1))
    try:
        endpoint = serve_over_tls(emulator, pair)
        emulator.start()
        assert endpoint.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(pair.cert))
        with httpx.Client(verify=context) as client:
            stats = client.get(f"{endpoint}/__admin/stats").json()
        assert stats["ecs"]["images"] == 1
    finally:
        emulator.close()


def test_child_processes_see_only_the_configuration_the_bench_gives() -> None:
    """Variables that configure either side are dropped from the inherited environment, then set anew."""
    base = {
        "PATH": "/bin",
        "VOLCENGINE_MAX_RPS": "5",
        "SSL_CERT_FILE": "/corp.pem",
        "WEBHOOK_URL": "https://x",
        "LOG_LEVEL": "DEBUG",
        "PYTHONPROFILEIMPORTTIME": "1",
    }
    assert child_env(base, VOLCENGINE_ENDPOINT="http://127.0.0.1:1") == {
        "PATH": "/bin",
        "VOLCENGINE_ENDPOINT": "http://127.0.0.1:1",
    }


def test_a_measured_process_reports_its_exit_output_and_memory(tmp_path: Path) -> None:
    """A child's exit status, output and own peak memory come back with its wall time."""
    finished = run_measured(
        [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"],
        {"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert (finished.returncode, finished.stdout.strip(), finished.stderr.strip()) == (3, "out", "err")
    assert finished.max_rss_mib > 1
    assert finished.seconds > 0
    assert finished.cpu_seconds > 0


def test_a_childs_peak_memory_is_its_own_not_the_benchmarks(tmp_path: Path) -> None:
    """A small child started by a benchmark holding 200 MiB reports its own peak, not its parent's."""
    held = bytearray(200 * 1024 * 1024)
    held[:: 1 << 12] = b"x" * len(held[:: 1 << 12])  # touch every page: resident, not just reserved
    finished = run_measured([sys.executable, "-c", "pass"], {"PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert finished.returncode == 0
    assert 1 < finished.max_rss_mib < 100
    del held


def test_a_childs_cpu_time_leaves_out_its_waiting(tmp_path: Path) -> None:
    """A child that mostly sleeps shows its whole wall time but only the CPU it used."""
    finished = run_measured(
        [sys.executable, "-c", "import time; time.sleep(0.5)"], {"PATH": "/usr/bin:/bin"}, cwd=tmp_path
    )
    assert finished.seconds >= 0.5
    assert 0 < finished.cpu_seconds < finished.seconds - 0.3


def test_a_child_that_overruns_its_time_is_stopped_with_an_error(tmp_path: Path) -> None:
    """A child still running at the timeout is killed and the benchmark stops, naming what hung."""
    with pytest.raises(BenchError, match=r"did not finish within 0.5 s"):
        run_measured(
            [sys.executable, "-c", "import time; time.sleep(60)"], {"PATH": "/usr/bin:/bin"}, cwd=tmp_path,
            timeout=0.5,
        )  # fmt: skip


def _finished(stdout: str, returncode: int = 0) -> Finished:
    return Finished(
        seconds=0.1, max_rss_mib=30.0, cpu_seconds=0.08, returncode=returncode, stdout=stdout, stderr="boom"
    )


@pytest.mark.parametrize(
    ("key", "stdout", "returncode", "ok"),
    [
        ("ours", '{"results": [{"status": "started"}]}', 0, True),
        ("ours", '{"results": [{"status": "skipped"}]}', 0, False),
        ("ours", '{"results": [{"status": "started"}]}', 1, False),
        ("ours", "not json", 0, False),
        ("deployed", '{"results": [{"status": "started"}]}', 0, True),
        ("deployed", '{"results": [{"status": "failed"}]}', 0, False),
        ("sdk", '{"image_id": "image-new0000", "task_id": "t-1"}', 0, True),
        ("sdk", '{"image_id": "image-other", "task_id": "t-1"}', 0, False),
        ("sdk", '{"image_id": "image-new0000", "task_id": ""}', 0, False),
        ("deployed-sdk", '{"image_id": "image-new0000", "task_id": "t-1"}', 0, True),
        ("deployed-sdk-stale", '{"image_id": "image-new0000", "task_id": "t-1"}', 0, True),
        ("deployed-sdk", '{"results": [{"status": "started"}]}', 0, False),
    ],
)
def test_a_run_counts_only_when_it_started_the_export(
    key: str, stdout: str, returncode: int, ok: bool
) -> None:
    """A cold run that failed, skipped, or exported another image stops the benchmark instead of counting."""
    kind = ColdKind(key, "tls", key, ("python",), {}, exports=True)
    finished = _finished(stdout, returncode)
    if ok:
        kind.check(finished, "image-new0000")
    else:
        with pytest.raises(BenchError):
            kind.check(finished, "image-new0000")


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_child_script_is_valid_python(name: str, tmp_path: Path) -> None:
    """Each script written for a child process (the SDK's included) compiles."""
    path = write_scripts(tmp_path)[name]
    compile(path.read_text(encoding="utf-8"), str(path), "exec")


def test_installed_size_follows_dependencies_and_skips_bytecode() -> None:
    """A distribution's closure brings its dependencies; its files exclude compiled bytecode."""
    names = {d.metadata["Name"].lower() for d in distribution_closure(["httpx"])}
    assert {"httpx", "httpcore", "h11", "idna", "certifi", "anyio"} <= names
    files = list(installed_files(distribution_closure(["h11"])))
    assert files
    assert not any(name.endswith(".pyc") or "__pycache__" in name for name, _ in files)


def test_the_zip_size_is_that_of_a_real_zip(tmp_path: Path) -> None:
    """The like-for-like zip size is the size of a readable deflated archive of exactly those files."""
    source = tmp_path / "a.py"
    source.write_text("x = 1\n" * 1000, encoding="utf-8")
    size = zip_bytes([("pkg/a.py", source)])
    assert 0 < size < source.stat().st_size
    archive = tmp_path / "check.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("pkg/a.py", source.read_bytes(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    assert size == archive.stat().st_size
