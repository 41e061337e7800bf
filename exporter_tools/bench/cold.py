"""Cold invocations: a fresh process per event, ours and the SDK's over plain HTTP and TLS, the floor, and
deployed under CPython 3.12: our zip (as shipped, without bytecode, and precompiled), the SDK's function (its
bytecode valid, and stale) and the floor of our stack from our zip.

Every process kind runs once per round, in an order that rotates from round to round, so slow moments of
the machine fall on every kind alike. The emulator is reset before each run: every run exports the same new
image into the same empty account. A run that does not export (or an SDK signature the emulator refuses)
stops the benchmark: its time would measure nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from exporter_tools.bench.deployed import DeployedTrees
from exporter_tools.bench.process import BenchError, Finished, child_env, run_measured
from exporter_tools.bench.report import ColdResult, Samples
from exporter_tools.bench.sdk_function import SdkFunctionTrees
from exporter_tools.emulator.ecs import EcsEmulator

__all__ = ["ColdKind", "Endpoints", "cold_kinds", "deployed_kinds", "run_cold"]

UNPACED_RPS = "1000"


@dataclass(frozen=True, slots=True)
class Endpoints:
    """The two emulators (same account, plain and TLS) and what both clients need to reach them."""

    plain: EcsEmulator
    tls: EcsEmulator
    plain_url: str
    tls_url: str
    cert: Path
    access_key: str
    secret_key: str
    bucket: str

    def emulator(self, transport: str) -> EcsEmulator:
        return self.tls if transport == "tls" else self.plain

    def env(self, base: Mapping[str, str], transport: str, **extra: str) -> dict[str, str]:
        url = self.tls_url if transport == "tls" else self.plain_url
        scheme, _, host = url.partition("://")
        settings = {
            "VOLCENGINE_ACCESS_KEY": self.access_key,
            "VOLCENGINE_SECRET_KEY": self.secret_key,
            "VOLCENGINE_REGION": "cn-beijing",
            "VOLCENGINE_ENDPOINT": url,
            "EXPORT_TOS_BUCKET": self.bucket,
            # Like with like: the SDK scripts export and look tasks up, but tag nothing.
            "EXPORT_TRACKING": "off",
            "BENCH_SDK_HOST": host,
            "BENCH_SDK_SCHEME": scheme,
            **extra,
        }
        if transport == "tls":
            settings["SSL_CERT_FILE"] = str(self.cert)
        return child_env(base, **settings)


@dataclass(frozen=True, slots=True)
class ColdKind:
    """One kind of process to start cold: how, and how to tell it did its job."""

    key: str
    transport: str
    label: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(repr=False)
    exports: bool  # talks to the emulator and must start one export

    @property
    def is_sdk(self) -> bool:
        """Signed by the official SDK: prints ``{"image_id", "task_id"}`` rather than our result."""
        return self.key.startswith(("sdk", "deployed-sdk"))

    def check(self, finished: Finished, image_id: str) -> None:
        """Raise ``BenchError`` unless the process exited 0 having started the export of ``image_id``."""
        if finished.returncode != 0:
            msg = f"{self.label} ({self.transport}) exited {finished.returncode}:\n{finished.tail()}"
            raise BenchError(msg)
        if not self.exports:
            return
        try:
            printed = json.loads(finished.stdout)
        except ValueError:
            printed = None
        if self.is_sdk:
            ok = (
                isinstance(printed, dict)
                and printed.get("image_id") == image_id
                and bool(printed.get("task_id"))
            )
        else:
            results = printed.get("results") if isinstance(printed, dict) else None
            ok = isinstance(results, list) and [r.get("status") for r in results] == ["started"]
        if not ok:
            msg = f"{self.label} ({self.transport}) did not start the export:\n{finished.stdout[-600:]}"
            raise BenchError(msg)


def cold_kinds(
    endpoints: Endpoints,
    *,
    project_python: str,
    sdk_python: str,
    scripts: Mapping[str, Path],
    event_file: Path,
    base_env: Mapping[str, str],
) -> list[ColdKind]:
    """The floor of the stack, ours and the SDK's over each transport, and ours with its rate limiter out of
    the way (to show what pacing costs)."""
    ours = (project_python, "-m", "handler", "invoke", str(event_file), "--timeout", "60")
    sdk = (sdk_python, str(scripts["sdk_cold.py"]), str(event_file))
    floor = (project_python, str(scripts["floor.py"]))
    kinds = [ColdKind("floor", "tls", "floor", floor, endpoints.env(base_env, "tls"), False)]
    for transport in ("plain", "tls"):
        kinds.append(ColdKind("ours", transport, "ours", ours, endpoints.env(base_env, transport), True))
        kinds.append(
            ColdKind("sdk", transport, "official SDK", sdk, endpoints.env(base_env, transport), True)
        )
    unpaced = endpoints.env(base_env, "tls", VOLCENGINE_MAX_RPS=UNPACED_RPS)
    kinds.append(
        ColdKind("ours-unpaced", "tls", f"ours, VOLCENGINE_MAX_RPS={UNPACED_RPS}", ours, unpaced, True)
    )
    return kinds


def deployed_kinds(
    trees: DeployedTrees,
    sdk: SdkFunctionTrees,
    endpoints: Endpoints,
    *,
    scripts: Mapping[str, Path],
    event_file: Path,
    base_env: Mapping[str, str],
) -> list[ColdKind]:
    """Each read-only tree run by ``python3.12 -I -B`` over TLS as the runtime runs it: our zip as shipped,
    the SDK's function at its best and stale, the floor from our zip, then our zip precompiled and without
    ``.pyc``."""
    env = endpoints.env(base_env, "tls")

    def function(key: str, label: str, tree: Path) -> ColdKind:
        argv = (trees.python, "-I", "-B", str(scripts["deployed.py"]), str(tree), str(event_file))
        return ColdKind(key, "tls", label, argv, env, True)

    floor = (trees.python, "-I", "-B", str(scripts["deployed_floor.py"]), str(trees.shipped))
    return [
        function("deployed", "our zip as shipped (with its bytecode)", trees.shipped),
        function("deployed-sdk", "the SDK's function, its bytecode valid (at its best)", sdk.best),
        function("deployed-sdk-stale", "the SDK's function, its bytecode stale (mtimes reset)", sdk.stale),
        ColdKind("deployed-floor", "tls", "the floor, from our zip", floor, env, False),
        function("deployed-precompiled", "our zip's files, precompiled here", trees.precompiled),
        function("deployed-sources", "our zip without .pyc", trees.sources),
    ]


def run_cold(
    kinds: Sequence[ColdKind],
    endpoints: Endpoints,
    *,
    runs: int,
    image_id: str,
    cwd: Path,
    progress: Callable[[str], None],
) -> tuple[list[ColdResult], int]:
    """``runs`` measured rounds after one warm-up round; returns the results in ``kinds`` order and how
    many SDK requests passed the emulator's signature check."""
    seconds: dict[int, list[float]] = {i: [] for i in range(len(kinds))}
    cpu: dict[int, list[float]] = {i: [] for i in range(len(kinds))}
    rss: dict[int, list[float]] = {i: [] for i in range(len(kinds))}
    requests: dict[int, list[int]] = {i: [] for i in range(len(kinds))}
    sdk_signed = 0
    for round_no in range(runs + 1):
        shift = round_no % len(kinds)
        order = list(range(len(kinds)))[shift:] + list(range(len(kinds)))[:shift]
        for index in order:
            kind = kinds[index]
            emulator = endpoints.emulator(kind.transport)
            emulator.reset()
            finished = run_measured(kind.argv, kind.env, cwd=cwd, timeout=120)
            kind.check(finished, image_id)
            stats = emulator.stats()
            if stats["signature_failures"]:
                msg = f"the emulator refused {stats['signature_failures']} signature(s) from {kind.label}"
                raise BenchError(msg)
            if round_no == 0:
                continue  # the warm-up round fills the OS caches and the bytecode caches
            seconds[index].append(finished.seconds)
            cpu[index].append(finished.cpu_seconds)
            rss[index].append(finished.max_rss_mib)
            requests[index].append(int(stats["requests_total"]) if kind.exports else 0)
            if kind.is_sdk:
                sdk_signed += int(stats["requests_total"])
        progress(f"cold: round {round_no}/{runs} done" + (" (warm-up)" if round_no == 0 else ""))
    results = [
        ColdResult(
            kind.key,
            kind.transport,
            kind.label,
            Samples.of(seconds[i]),
            Samples.of(rss[i]),
            Samples.of(requests[i]).median,
            Samples.of(cpu[i]),
        )
        for i, kind in enumerate(kinds)
    ]
    return results, sdk_signed
