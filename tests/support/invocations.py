"""The function as its own process, as the platform runs it: ``python -m handler invoke`` against an emulator,
run to its end, started beside another, or killed (SIGKILL) at a chosen point; then its result and the image
outcomes its log reported.

Two ways to start one, with the same handle (``FunctionProcess``) and the same reading back (``Invocation``):
``FunctionLauncher.start`` forks it from a process that has imported the function already
(``tests.support.fork_server``; milliseconds, so that a test can start dozens), and ``spawn`` starts a fresh
interpreter on ``python -m handler invoke`` (most of a second), exactly as a person would.

A killed process prints no result, but every log line it wrote before the kill is read back: an outcome it
logged counts as reported, as it would in the platform's log. ``kill_after_requests`` counts the kill point in
the emulator's requests (the function is killed once the emulator has answered that many more, then after a
short delay), so that a seeded test hits the same phases of an invocation whatever the machine's speed.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from exporter_tools.emulator.ecs import EcsEmulator

__all__ = [
    "FOLLOW_UP_STATUSES",
    "FunctionLauncher",
    "FunctionProcess",
    "Invocation",
    "launcher",
    "spawn",
]

# The statuses a follow-up reports an export's end with.
FOLLOW_UP_STATUSES = frozenset({"exported", "export_failed"})
_ROOT = Path(__file__).resolve().parents[2]
_POLL = 0.002
_names = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Invocation:
    """One finished (or killed) invocation: its exit status (None when killed), its printed result (None
    when there is none) and its log lines, parsed (a line cut short by the kill is left out)."""

    exit_code: int | None
    killed: bool
    result: dict[str, Any] | None
    log: tuple[dict[str, Any], ...]

    @property
    def outcomes(self) -> list[dict[str, Any]]:
        """The ``image.outcome`` log lines: every outcome the invocation reported, in order."""
        return [line for line in self.log if line.get("event") == "image.outcome"]

    @property
    def follow_ups(self) -> list[dict[str, Any]]:
        """The reported ends of exports (``exported`` / ``export_failed`` outcomes)."""
        return [line for line in self.outcomes if line.get("status") in FOLLOW_UP_STATUSES]

    def statuses(self) -> dict[str, str]:
        """Each image's status in the printed result (empty when there is none)."""
        results = (self.result or {}).get("results", [])
        return {r["image_id"]: r["status"] for r in results if r.get("image_id")}


@dataclass(frozen=True, slots=True)
class _Files:
    """Where one invocation's event, output and exit status live."""

    event: Path
    stdout: Path
    stderr: Path
    exit: Path

    @classmethod
    def writing(cls, event: Mapping[str, Any], workdir: Path) -> _Files:
        name = f"invocation-{next(_names)}"
        files = cls(*(workdir / f"{name}.{part}" for part in ("event.json", "stdout", "stderr", "exit")))
        files.event.write_text(json.dumps(event), encoding="utf-8")
        return files

    def argv(self, timeout: float) -> list[str]:
        return ["invoke", str(self.event), "--timeout", f"{timeout:g}"]


class FunctionProcess:
    """One invocation running in a process of its own (``FunctionLauncher.start`` or ``spawn``)."""

    def __init__(
        self, files: _Files, budget: float, *, pid: int, popen: subprocess.Popen[bytes] | None
    ) -> None:
        self._files = files
        self._budget = budget
        self._pid = pid
        self._popen = popen  # a fresh interpreter; None: forked by the launcher (which reaps it)
        self._killed = False

    @property
    def running(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        try:
            os.kill(self._pid, 0)
        except ProcessLookupError:
            return False
        return True

    def log_so_far(self) -> list[dict[str, Any]]:
        """The log lines written until now (the process may still run)."""
        return _parsed_lines(_read(self._files.stderr))

    def kill(self) -> Invocation:
        """SIGKILL (no handler runs, nothing is flushed), unless the process has ended already."""
        if self.running:
            try:
                os.kill(self._pid, signal.SIGKILL)
                self._killed = True
            except ProcessLookupError:
                pass
        return self.wait()

    def kill_after_requests(self, emulator: EcsEmulator, requests: int, *, delay: float = 0.0) -> Invocation:
        """Kill the process once ``emulator`` has answered ``requests`` more signed requests than when this
        was called (then ``delay`` seconds later); an invocation that ends first is not killed."""
        target = emulator.stats()["requests_total"] + requests
        deadline = time.monotonic() + self._budget + 5
        while self.running and emulator.stats()["requests_total"] < target and time.monotonic() < deadline:
            time.sleep(_POLL)
        if delay > 0 and self.running:
            time.sleep(delay)
        return self.kill()

    def wait(self, timeout: float | None = None) -> Invocation:
        """Wait for the end (at most the invocation's budget and 10 s more; then kill it) and read it back."""
        deadline = time.monotonic() + (timeout if timeout is not None else self._budget + 10)
        while self.running and time.monotonic() < deadline:
            time.sleep(_POLL)
        if self.running:
            self.kill()
        if self._popen is not None:
            code: int | None = self._popen.wait()
            killed = self._killed or code == -signal.SIGKILL
        else:
            written = _read(self._files.exit).strip()
            code = int(written) if written else None
            killed = self._killed or code is None
        stdout = _read(self._files.stdout)
        try:
            result = json.loads(stdout) if stdout.strip() else None
        except json.JSONDecodeError:
            result = None  # killed while printing
        return Invocation(
            exit_code=None if killed else code,
            killed=killed,
            result=result if isinstance(result, dict) else None,
            log=tuple(self.log_so_far()),
        )


class FunctionLauncher:
    """Starts invocations forked from one process that has imported the function (``fork_server``)."""

    def __init__(self) -> None:
        command = [sys.executable, "-c", "from tests.support.fork_server import serve; serve()"]
        self._server = subprocess.Popen(  # a long-lived helper process, closed by close()
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=_ROOT, env=dict(os.environ)
        )
        self._lock = threading.Lock()

    def start(
        self, event: Mapping[str, Any], env: Mapping[str, str], workdir: Path, *, timeout: float = 30.0
    ) -> FunctionProcess:
        """Start one invocation of ``event`` with exactly the environment ``env``."""
        files = _Files.writing(event, workdir)
        request = {
            "argv": files.argv(timeout),
            "env": dict(env),
            "stdout": str(files.stdout),
            "stderr": str(files.stderr),
            "exit": str(files.exit),
        }
        with self._lock:
            pipe_in, pipe_out = self._pipes()
            pipe_in.write(json.dumps(request).encode() + b"\n")
            pipe_in.flush()
            answer = json.loads(pipe_out.readline() or b"{}")
        if "pid" not in answer:
            msg = "the fork server stopped answering"
            raise RuntimeError(msg)
        return FunctionProcess(files, timeout, pid=int(answer["pid"]), popen=None)

    def run(
        self, event: Mapping[str, Any], env: Mapping[str, str], workdir: Path, *, timeout: float = 30.0
    ) -> Invocation:
        """One invocation, to its end."""
        return self.start(event, env, workdir, timeout=timeout).wait()

    def start_together(
        self,
        events: Sequence[Mapping[str, Any]],
        env: Mapping[str, str],
        workdir: Path,
        *,
        offset: float = 0.0,
        timeout: float = 30.0,
    ) -> list[FunctionProcess]:
        """One process per event, each started ``offset`` seconds after the one before (0: at once)."""
        started: list[FunctionProcess] = []
        for event in events:
            if started and offset > 0:
                time.sleep(offset)
            started.append(self.start(event, env, workdir, timeout=timeout))
        return started

    def close(self) -> None:
        pipe_in, _ = self._pipes()
        pipe_in.close()
        try:
            self._server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._server.kill()
            self._server.wait()
        if self._server.stdout is not None:
            self._server.stdout.close()

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        if self._server.stdin is None or self._server.stdout is None:
            msg = "the fork server has no pipes"
            raise RuntimeError(msg)
        return self._server.stdin, self._server.stdout


@pytest.fixture(scope="session")
def launcher() -> Iterator[FunctionLauncher]:
    """One fork server for the session: ``launcher.start(event, env, workdir)``."""
    started = FunctionLauncher()
    yield started
    started.close()


def spawn(
    event: Mapping[str, Any], env: Mapping[str, str], workdir: Path, *, timeout: float = 30.0
) -> FunctionProcess:
    """``python -m handler invoke`` in a fresh interpreter, output to files (never a pipe nobody reads)."""
    files = _Files.writing(event, workdir)
    with files.stdout.open("wb") as stdout, files.stderr.open("wb") as stderr:
        popen = subprocess.Popen(
            [sys.executable, "-m", "handler", *files.argv(timeout)],
            stdout=stdout,
            stderr=stderr,
            env=dict(env),
            cwd=_ROOT,
        )
    return FunctionProcess(files, timeout, pid=popen.pid, popen=popen)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _parsed_lines(text: str) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for line in text.splitlines():
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError:
            continue  # the last line of a killed process, cut short
        if isinstance(parsed, dict):
            lines.append(parsed)
    return lines
