"""Starting a measured process: wall time from spawn to exit, and that child's own peak RSS (``wait4``)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BenchError", "Finished", "child_env", "run_measured"]

# Variables that configure either side: a child sees only what the benchmark sets.
_CONFIG_PREFIXES = (
    "VOLCENGINE_",
    "VOLC_",
    "EXPORT_",
    "WEBHOOK_",
    "BENCH_",
    "SSL_CERT_",
    "LOG_LEVEL",
    "FUNCTION_",
)
_PYTHON_NOISE = ("PYTHONPROFILEIMPORTTIME", "PYTHONTRACEMALLOC", "PYTHONDEVMODE", "PYTHONWARNINGS")


class BenchError(RuntimeError):
    """A measured process did not do its job: its numbers would mean nothing."""


@dataclass(frozen=True, slots=True)
class Finished:
    """A child that ran to its end."""

    seconds: float
    max_rss_mib: float
    returncode: int
    stdout: str
    stderr: str

    def tail(self, lines: int = 8) -> str:
        return "\n".join((self.stderr or self.stdout).strip().splitlines()[-lines:])


def child_env(base: Mapping[str, str], **settings: str) -> dict[str, str]:
    """``base`` without anything that configures either side, plus ``settings``."""
    env = {k: v for k, v in base.items() if not k.startswith(_CONFIG_PREFIXES) and k not in _PYTHON_NOISE}
    env.update(settings)
    return env


def run_measured(
    argv: Sequence[str], env: Mapping[str, str], *, cwd: Path, timeout: float = 600.0
) -> Finished:
    """Run ``argv`` to its end; ``seconds`` is spawn to exit, ``max_rss_mib`` the child's own peak (MiB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(
            list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        watchdog = threading.Timer(timeout, child.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            watchdog.cancel()
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Finished(
            seconds=seconds,
            max_rss_mib=usage.ru_maxrss / 1024,  # kibibytes on Linux
            returncode=child.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )
