"""Starting a measured process: wall time from spawn to exit, and that child's own peak RSS (``wait4``).

A process started by ``vfork`` or ``fork`` inherits its parent's peak RSS into its own ``ru_maxrss`` (Linux
carries the old memory's high-water mark across ``exec``), so a child started by the benchmark, which holds
emulators and reports, would report the benchmark's peak instead of its own. Each child is therefore started
by a small spawner (a bare ``python -I -S``, smaller than any measured process) that forks, execs, times it
and reads its ``wait4`` usage.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
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


# Run by a bare interpreter: fork, exec the spec's argv with its env and cwd, and report the child's wall time
# (fork to exit), its CPU time (user + system), its own peak RSS and its exit status as one JSON line.
_SPAWNER = """
import json, os, sys, time
spec = json.loads(sys.stdin.read())
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.chdir(spec["cwd"])
        for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, spec["stdout"], os.O_WRONLY),
                                (2, spec["stderr"], os.O_WRONLY)):
            os.dup2(os.open(path, flags), fd)
        os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kib": usage.ru_maxrss,
                  "returncode": os.waitstatus_to_exitcode(status)}))
"""


class BenchError(RuntimeError):
    """A measured process did not do its job: its numbers would mean nothing."""


@dataclass(frozen=True, slots=True)
class Finished:
    """A child that ran to its end."""

    seconds: float
    max_rss_mib: float
    cpu_seconds: float
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
    """Run ``argv`` to its end; ``seconds`` is spawn to exit, ``cpu_seconds`` the child's user and system
    time, ``max_rss_mib`` its own peak (MiB)."""
    with tempfile.NamedTemporaryFile() as out, tempfile.NamedTemporaryFile() as err:
        spec = {"argv": list(argv), "env": dict(env), "cwd": str(cwd), "stdout": out.name, "stderr": err.name}
        spawner = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _SPAWNER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # the child joins the spawner's group: one kill stops both
        )
        try:
            report, problem = spawner.communicate(json.dumps(spec), timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(spawner.pid, signal.SIGKILL)
            spawner.communicate()
            msg = f"{argv[0]} did not finish within {timeout:g} s"
            raise BenchError(msg) from None
        if spawner.returncode != 0:
            msg = f"could not start {argv[0]}: {problem.strip()[-600:]}"
            raise BenchError(msg)
        measured = json.loads(report)
        return Finished(
            seconds=measured["seconds"],
            max_rss_mib=measured["maxrss_kib"] / 1024,  # kibibytes on Linux
            cpu_seconds=measured["cpu"],
            returncode=measured["returncode"],
            stdout=Path(out.name).read_text(encoding="utf-8", errors="replace"),
            stderr=Path(err.name).read_text(encoding="utf-8", errors="replace"),
        )
