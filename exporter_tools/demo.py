"""``make demo``: the whole product on one machine, with no Volcengine account and no network.

It starts the ECS emulator (with the demo fleet) and a webhook receiver on free loopback ports, then runs the
function as the platform would, ``python -m handler invoke``, once per step:

1. a timer scan of the fleet (``events/timer_scan.json``): the new images matching the scan are exported;
2. an image-created event (``events/image_created.json``): that image is exported;
3. the same event delivered again: skipped, the export is already running;
4. an event for an image still being created: deferred, for the trigger to retry later;
5. a bad event (``events/invalid.json``): a clear ``InvalidEvent`` error naming the field;
6. once the exports started above have ended (the emulator's tasks take ``TASK_SECONDS``), the timer again:
   its follow-up lists each export's files, checks every file's qcow2 structure with ranged reads, writes
   the manifest beside them, reports each ``exported`` (verified, with its disks and size), retags the images
   and posts one notice;
7. a restore (``events/restore.json``): the image-created image's verified export (a system disk and a data
   disk) is imported back into ECS from its manifest: ``restore_started`` with the new image;
8. once the import has ended, the timer again: ``restored``, and the check recorded in the manifest.

It prints what each step did, what the webhook received and what the emulator saw, and exits 0 when every
step behaved as expected. Every process it starts is stopped on the way out, Ctrl-C and failures included.
It writes no file: the one event that is not in ``events/`` goes to the function on its stdin.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from exporter_tools.emulator.server import ADMIN_STATS_PATH

__all__ = ["STEPS", "Step", "deliveries_from", "main", "step_problems"]

REPO = Path(__file__).resolve().parents[1]
EVENTS = REPO / "events"
FLEET = Path(__file__).resolve().parent / "emulator" / "demo_fleet.json"

# Fake keys: the emulator accepts exactly these, and nothing real is ever sent anywhere.
ACCESS_KEY = "AKLTdemo000000000001"
SECRET_KEY = "demo-secret-key-not-a-real-one"  # noqa: S105 - a fake for the local emulator
WEBHOOK_SECRET = "whsec_ZGVtby13ZWJob29rLXNpZ25pbmcta2V5LTMyYnl0ZXM="  # noqa: S105 - a fake, for the receiver
BUCKET = "demo-exports"
# How long the emulator's export tasks take: long enough for step 3 to find step 2's export still running,
# short enough for step 6 to report them all exported.
TASK_SECONDS = 6.0
STARTUP_SECONDS = 15.0
INVOKE_SECONDS = 60.0
# Variables of the function's own that a user's shell may hold: never passed on, so that real keys or a
# real webhook can never be used by the demo.
_OWN_PREFIXES = ("VOLCENGINE_", "VOLC_", "EXPORT_", "WEBHOOK_", "FUNCTION_", "LOG_LEVEL", "TOS_")

CREATING_IMAGE = "image-cr8t1ng5w7e9r1t3y5u7"
CREATING_EVENT = {
    "specversion": "1.0",
    "id": "demo-creating-0001",
    "source": "ecs",
    "type": "ecs:Image:CreateImage.Started",
    "subject": CREATING_IMAGE,
    "datacontenttype": "application/json",
    "data": {"ImageId": CREATING_IMAGE, "Status": "creating"},
}


@dataclass(frozen=True)
class Step:
    """One invocation of the function and what it must do: the CLI's exit status and each image's status
    (``None`` is the whole event, for an event error), with the error code where one is expected."""

    title: str
    event_file: str | None
    expected_exit: int
    expected: dict[str | None, str]
    expected_code: str | None = None
    event: dict[str, Any] | None = None
    after_exports_end: bool = (
        False  # wait until every export or import started by the earlier steps has ended
    )

    @property
    def source(self) -> str:
        return f"events/{self.event_file}" if self.event_file else "stdin"


STEPS: tuple[Step, ...] = (
    Step(
        "timer scan of the fleet",
        "timer_scan.json",
        0,
        {"image-3f7k2m9q1x8w5v6n4b0c": "started", "image-p8d2r5t7y1u3i9o0a6sl": "started"},
    ),
    Step("image-created event", "image_created.json", 0, {"image-ybqi99s7yq8rx7mnk44b": "started"}),
    Step("the same event again", "image_created.json", 0, {"image-ybqi99s7yq8rx7mnk44b": "skipped"}),
    Step("image still creating", None, 1, {CREATING_IMAGE: "deferred"}, event=CREATING_EVENT),
    Step("bad event", "invalid.json", 1, {None: "failed"}, expected_code="InvalidEvent"),
    Step(
        "the timer, once the exports ended",
        "timer_scan.json",
        0,
        {
            "image-3f7k2m9q1x8w5v6n4b0c": "exported",
            "image-p8d2r5t7y1u3i9o0a6sl": "exported",
            "image-ybqi99s7yq8rx7mnk44b": "exported",
        },
        after_exports_end=True,
    ),
    Step("restore an export", "restore.json", 0, {"image-ybqi99s7yq8rx7mnk44b": "restore_started"}),
    Step(
        "the timer, once the import ended",
        "timer_scan.json",
        0,
        {"image-ybqi99s7yq8rx7mnk44b": "restored"},
        after_exports_end=True,
    ),
)


class DemoError(Exception):
    """The demo could not run (a process did not start, a step did not behave): the message says which."""


class _Stopped(Exception):
    """SIGTERM: unwind like Ctrl-C, so that every process started is stopped."""


# -- child processes ---------------------------------------------------------------------------------------


class Child:
    """A process started by the demo: its stdout is read line by line in the background (so it never
    blocks on a full pipe), its stderr kept to explain a failure."""

    def __init__(self, name: str, command: Sequence[str]) -> None:
        self.name = name
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self.errors: list[str] = []
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            list(command),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=_clean_env(),
        )
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None  # noqa: S101 - set by Popen(stdout=PIPE)
        for line in self.process.stdout:
            self.output.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None  # noqa: S101 - set by Popen(stderr=PIPE)
        for line in self.process.stderr:
            self.errors.append(line.rstrip("\n"))

    def wait_for_line(self, prefix: str, timeout: float) -> str:
        """The first stdout line starting with ``prefix`` (its rest), or ``DemoError`` if it never comes."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                detail = "; ".join(self.errors[-3:]) or f"exit status {self.process.wait()}"
                msg = f"the {self.name} stopped before it was ready: {detail}"
                raise DemoError(msg)
            if line.startswith(prefix):
                return line.removeprefix(prefix)
        msg = f"the {self.name} did not say it was listening within {timeout:g} s"
        raise DemoError(msg)

    def stop(self) -> None:
        """Terminate, then kill if it does not exit within five seconds."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}


# -- the steps -----------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one step did, and whether that is what it should have done."""

    step: Step
    exit_code: int
    result: dict[str, Any]
    problems: list[str] = field(default_factory=list)

    @property
    def as_expected(self) -> bool:
        return not self.problems


def run_step(step: Step, env: dict[str, str]) -> Outcome:
    """Run ``python -m handler invoke`` on the step's event and check what it returned."""
    target = str(EVENTS / step.event_file) if step.event_file else "-"
    stdin = json.dumps(step.event) if step.event is not None else None
    command = [sys.executable, "-m", "handler", "invoke", target, "--timeout", str(INVOKE_SECONDS)]
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter and module
            command,
            cwd=REPO,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=INVOKE_SECONDS + 30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        msg = f"step '{step.title}': the function did not finish within {INVOKE_SECONDS + 30:g} s"
        raise DemoError(msg) from None
    try:
        result = json.loads(done.stdout)
    except ValueError:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        msg = f"step '{step.title}': the function printed no result (exit {done.returncode}):\n{tail}"
        raise DemoError(msg) from None
    outcome = Outcome(step, done.returncode, result)
    outcome.problems = step_problems(step, done.returncode, result)
    return outcome


def step_problems(step: Step, exit_code: int, result: dict[str, Any]) -> list[str]:
    problems = []
    if exit_code != step.expected_exit:
        problems.append(f"exit status {exit_code}, expected {step.expected_exit}")
    got = {r.get("image_id"): r.get("status") for r in result.get("results", [])}
    if got != step.expected:
        problems.append(f"results {got}, expected {step.expected}")
    if step.expected_code is not None:
        codes = {(r.get("error") or {}).get("code") for r in result.get("results", [])}
        if step.expected_code not in codes:
            problems.append(f"error codes {sorted(map(str, codes))}, expected {step.expected_code}")
    return problems


# -- what the webhook received -------------------------------------------------------------------------------


def deliveries_from(lines: Sequence[str]) -> list[tuple[str, Any]]:
    """The receiver's printed deliveries: each header line with its body (parsed JSON, else the text)."""
    blocks: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("--- "):
            blocks.append((line.removeprefix("--- "), []))
        elif blocks:
            blocks[-1][1].append(line)
    parsed: list[tuple[str, Any]] = []
    for header, body in blocks:
        text = "\n".join(body)
        try:
            parsed.append((header, json.loads(text)))
        except ValueError:
            parsed.append((header, text))
    return parsed


def _expected_deliveries(outcomes: Sequence[Outcome]) -> int:
    """One delivery per invocation that started, failed, deferred, exported, export_failed, or started or
    ended a restore (WEBHOOK_NOTIFY=changes)."""
    wanted = {"started", "failed", "deferred", "exported", "export_failed", "restore_started", "restored"}
    wanted |= {"restore_failed", "restore_verified"}
    return sum(1 for o in outcomes if any(r.get("status") in wanted for r in o.result.get("results", [])))


def _wait_for_deliveries(receiver: Child, count: int, timeout: float = 5.0) -> list[tuple[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = deliveries_from(receiver.output)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


# -- printing --------------------------------------------------------------------------------------------------


def _detail(item: dict[str, Any]) -> str:
    error = item.get("error")
    if item.get("status") == "started":
        return f"{item.get('task_id')}  ->  tos://{item.get('tos_bucket')}/{item.get('object_key')}"
    if item.get("status") == "exported":
        size = item.get("size_bytes")
        facts = ["verified" if item.get("verified") else "NOT verified"]
        facts.append(f"{len(item.get('objects') or [])} disk(s)")
        facts.append(_size(size) if isinstance(size, int) else "size unknown")
        where = f"tos://{item.get('tos_bucket')}/{item.get('object_key')}"
        return f"{item.get('task_id')}  ->  {where} ({', '.join(facts)}; manifest {item.get('manifest_key')})"
    if item.get("status") in ("restore_started", "restored", "restore_verified"):
        task = f" (import task {item['task_id']})" if item.get("task_id") else ""
        return f"new image {item.get('restored_image_id')}{task}  <-  tos://{item.get('tos_bucket')}/{item.get('manifest_key')}"
    if error:
        return f"{error.get('code')}: {error.get('message')}"
    return f"{item.get('task_id') or ''}  {item.get('reason') or ''}".strip()


def _size(size: int) -> str:
    """``1.4 MiB``: the object's size in TOS (the emulator's files hold the qcow2 metadata only)."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def print_outcomes(outcomes: Sequence[Outcome]) -> None:
    width = max(len(o.step.title) for o in outcomes) + 2
    print(f"\n{'step':<{width + 3}}{'exit':<6}{'image':<29}{'status':<16}task / error")
    print("-" * 110)
    for number, outcome in enumerate(outcomes, start=1):
        verdict = "as expected" if outcome.as_expected else "UNEXPECTED: " + "; ".join(outcome.problems)
        items = outcome.result.get("results") or [{}]
        for index, item in enumerate(items):
            label = f"{number}. {outcome.step.title}" if index == 0 else ""
            code = str(outcome.exit_code) if index == 0 else ""
            image = item.get("image_id") or "-"
            print(f"{label:<{width + 3}}{code:<6}{image:<29}{item.get('status', '?'):<16}{_detail(item)}")
        print(f"{'':<{width + 3}}({outcome.step.source}; {verdict})")


def print_deliveries(deliveries: Sequence[tuple[str, Any]]) -> None:
    print(f"\nThe webhook received {len(deliveries)} deliveries (Standard Webhooks, signed):")
    for header, body in deliveries:
        data = body.get("data") if isinstance(body, dict) else None
        if isinstance(data, dict):
            counts: dict[str, int] = {}
            for item in data.get("results", []):
                counts[item.get("status", "?")] = counts.get(item.get("status", "?"), 0) + 1
            summary = ", ".join(f"{n} {status}" for status, n in counts.items())
            trigger, event_id = data.get("trigger"), data.get("event_id")
            print(f"  {header}\n      {body.get('type')} ({trigger} trigger, event {event_id}): {summary}")
        else:
            print(f"  {header}\n      {str(body)[:200]}")


def print_emulator(stats: dict[str, Any]) -> None:
    exports = stats.get("ecs", {}).get("export_tasks_by_image", {})
    print(f"\nThe emulator saw {stats.get('requests_total')} signed requests:")
    for action, by_status in sorted(stats.get("requests", {}).items()):
        counts = ", ".join(f"{n} x HTTP {status}" for status, n in sorted(by_status.items()))
        print(f"  {action:<16}{counts}")
    print(f"  export tasks per image: {json.dumps(exports)}")


# -- main ------------------------------------------------------------------------------------------------------


def _handler_env(endpoint: str, webhook_url: str) -> dict[str, str]:
    return {
        **_clean_env(),
        "VOLCENGINE_ENDPOINT": endpoint,
        "VOLCENGINE_REGION": "cn-beijing",
        "VOLCENGINE_ACCESS_KEY": ACCESS_KEY,
        "VOLCENGINE_SECRET_KEY": SECRET_KEY,
        "EXPORT_TOS_BUCKET": BUCKET,
        "TOS_ENDPOINT": endpoint,  # the emulator answers TOS HeadObject on the same port
        "WEBHOOK_URL": webhook_url,
        "WEBHOOK_FORMAT": "standard",
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "LOG_LEVEL": "INFO",
    }


def _stats(endpoint: str) -> dict[str, Any]:
    with urllib.request.urlopen(endpoint + ADMIN_STATS_PATH, timeout=5) as response:  # noqa: S310 - loopback
        stats: dict[str, Any] = json.load(response)
        return stats


def _start(children: list[Child]) -> tuple[Child, str, str]:
    """Start the emulator and the receiver; (the receiver, the emulator's endpoint, the webhook URL)."""
    python = sys.executable
    emulator = Child(
        "emulator",
        [
            *(python, "-m", "exporter_tools.emulator", "--port", "0", "--fleet", str(FLEET), "--seed", "1"),
            *("--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY, "--task-seconds", str(TASK_SECONDS)),
        ],
    )
    children.append(emulator)
    receiver = Child(
        "webhook receiver",
        [
            *(python, "-m", "exporter_tools.receiver", "--port", "0"),
            *("--secret", WEBHOOK_SECRET, "--format", "standard"),
        ],
    )
    children.append(receiver)
    endpoint = emulator.wait_for_line("emulator listening on ", STARTUP_SECONDS).strip()
    webhook_url = receiver.wait_for_line("listening on ", STARTUP_SECONDS).split(" ")[0]
    return receiver, endpoint, webhook_url


def _problems(
    outcomes: Sequence[Outcome], deliveries: Sequence[tuple[str, Any]], stats: dict[str, Any]
) -> list[str]:
    """What did not behave as expected: steps, webhook deliveries, repeated exports."""
    problems = [f"step {n}: {'; '.join(o.problems)}" for n, o in enumerate(outcomes, 1) if o.problems]
    expected = _expected_deliveries(outcomes)
    if len(deliveries) != expected:
        problems.append(f"the webhook received {len(deliveries)} deliveries, expected {expected}")
    if any("signature verified" not in header for header, _ in deliveries):
        problems.append("a webhook delivery's signature did not verify")
    exports = stats.get("ecs", {}).get("export_tasks_by_image", {})
    if any(count != 1 for count in exports.values()):
        problems.append(f"an image was exported more than once: {exports}")
    return problems


def run(children: list[Child]) -> bool:
    """Start the stand-ins, run every step, print the report; True when everything behaved as expected."""
    receiver, endpoint, webhook_url = _start(children)
    print(f"ECS emulator on {endpoint} (demo fleet: {FLEET.relative_to(REPO)})")
    print(f"webhook receiver on {webhook_url}")

    env = _handler_env(endpoint, webhook_url)
    outcomes: list[Outcome] = []
    last_start = time.monotonic()  # the latest moment an export can have been started
    for number, step in enumerate(STEPS, start=1):
        if step.after_exports_end:
            wait = last_start + TASK_SECONDS + 0.5 - time.monotonic()
            print(f"waiting {max(wait, 0):.1f} s for the exports to end ...", flush=True)
            time.sleep(max(wait, 0))
        print(f"running step {number}: {step.title} ...", flush=True)
        outcomes.append(run_step(step, env))
        if any(
            r.get("status") in ("started", "restore_started") for r in outcomes[-1].result.get("results", [])
        ):
            last_start = time.monotonic()
    deliveries = _wait_for_deliveries(receiver, _expected_deliveries(outcomes))
    stats = _stats(endpoint)

    print_outcomes(outcomes)
    print_deliveries(deliveries)
    print_emulator(stats)

    problems = _problems(outcomes, deliveries, stats)
    for problem in problems:
        print(f"UNEXPECTED: {problem}", file=sys.stderr)
    return not problems


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; 0 when every step behaved as expected, 1 otherwise, 2 a usage error, 130 when
    interrupted."""
    if argv and list(argv) in (["-h"], ["--help"]):
        print(f"usage: exporter-tools demo (no arguments)\n\n{__doc__.splitlines()[0]}")
        return 0
    if argv:
        print("usage: exporter-tools demo (no arguments)", file=sys.stderr)
        return 2
    started = time.monotonic()
    children: list[Child] = []

    def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        raise _Stopped

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        ok = run(children)
    except (KeyboardInterrupt, _Stopped):
        print("\ninterrupted: stopping the emulator and the receiver", file=sys.stderr)
        return 130
    except DemoError as error:
        print(f"\ndemo failed: {error}", file=sys.stderr)
        return 1
    finally:
        for child in reversed(children):
            with contextlib.suppress(OSError):
                child.stop()
        signal.signal(signal.SIGTERM, previous)
    elapsed = time.monotonic() - started
    if ok:
        print(f"\ndemo finished in {elapsed:.1f} s: every step behaved as expected.")
        return 0
    print(f"\ndemo finished in {elapsed:.1f} s with unexpected results (above).", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
