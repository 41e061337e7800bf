"""``python -m handler invoke EVENT_FILE [--timeout SECONDS] [--quiet]``: run the function once, as the
platform would.

Logs go to stderr (none with ``--quiet``; lines for a person when stderr is a terminal and ``LOG_FORMAT`` is
unset, as if it said ``console``); stdout carries the result alone, as one JSON document. The argument parsing
is a few lines of our own rather than argparse: this runs on every local invocation and should start as fast
as the function does. The development and deployment tools are ``exporter-tools`` (a separate package).
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Invocation", "LocalContext", "main"]

DEFAULT_TIMEOUT = 900.0

USAGE = (
    "usage: python -m handler invoke EVENT_FILE [--timeout SECONDS] [--quiet]\n"
    "       python -m handler --version\n"
)

HELP = (
    USAGE
    + """
Run the function once on EVENT_FILE (- reads stdin). The result goes to stdout, logs to stderr.

options:
  --timeout SECONDS   the time budget, a positive number of seconds (default 900)
  --quiet             no log lines (the result alone, on stdout)

logs: JSON lines on stderr; on a terminal, lines for a person (LOG_FORMAT=console) unless LOG_FORMAT is set

events (see docs/events.md and the samples in events/):
  timer     {"type": "faas.timer.event", "data": "<JSON payload or empty>", ...}   scan, or ImageIds
  event     a CloudEvent whose data names ImageId (or subject is an image id); EventBridge detail.ImageId
  http      {"httpMethod": "POST", "body": "<any of these events>", "isBase64Encoded": false}
  direct    {"ImageId": "image-...", "TOSBucket"?: "...", "TOSPrefix"?: "..."} or {"ImageIds": [...]}

environment (see docs/configuration.md):
  VOLCENGINE_ACCESS_KEY / VOLCENGINE_SECRET_KEY [/ VOLCENGINE_SESSION_TOKEN], or VOLCENGINE_CREDENTIAL_FILE
  VOLCENGINE_REGION (cn-beijing), VOLCENGINE_ENDPOINT, EXPORT_TOS_BUCKET (required), EXPORT_TOS_PREFIX

exit status: 0 all started, skipped, queued, exported, restore_started, restored, restore_verified, expired or
would_expire; 1 anything failed, deferred, export_failed or restore_failed (or the event is invalid); 2 usage error
"""
)


class UsageError(Exception):
    """The command line is wrong: the message says how, and the exit status is 2."""


class LocalContext:
    """What the platform passes as ``context``: a request id and the time left."""

    def __init__(self, timeout: float) -> None:
        self.request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def parse_timeout(text: str) -> float:
    """A positive, finite number of seconds, small enough to add to the clock."""
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--timeout: expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0 or value > 86_400:
        raise UsageError(f"--timeout: expected a positive number of seconds up to 86400, got {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class Invocation:
    """What ``invoke``'s command line asks for."""

    event: str
    timeout: float = DEFAULT_TIMEOUT
    quiet: bool = False


def parse_invoke(words: Sequence[str]) -> Invocation:
    """``EVENT_FILE [--timeout SECONDS] [--quiet]`` (also ``--timeout=SECONDS``, in any order)."""
    event: str | None = None
    timeout = DEFAULT_TIMEOUT
    quiet = False
    rest = list(words)
    while rest:
        word = rest.pop(0)
        if word == "--quiet":
            quiet = True
        elif word == "--timeout":
            if not rest:
                raise UsageError("--timeout: expected a number of seconds")
            timeout = parse_timeout(rest.pop(0))
        elif word.startswith("--timeout="):
            timeout = parse_timeout(word.partition("=")[2])
        elif word.startswith("-") and word != "-":
            raise UsageError(f"unknown option {word}")
        elif event is None:
            event = word
        else:
            raise UsageError(f"one event file at a time, got {event!r} and {word!r}")
    if event is None:
        raise UsageError("EVENT_FILE is missing (- reads the event from stdin)")
    return Invocation(event, timeout, quiet)


# The largest event read: 6 MB, the request size veFaaS accepts for an invocation (its documented limit for
# a synchronous request; the function never gets a larger event from the platform).
MAX_EVENT_BYTES = 6 * 1000 * 1000


class _Unreadable(Exception):
    """The event file is not one the function reads: the message says why."""


def _read(path: str) -> bytes:
    """The event's bytes: at most ``MAX_EVENT_BYTES``, from a regular file (checked before it is opened, so a
    FIFO or a device never blocks or floods) or from stdin (read with the same cap)."""
    if path == "-":
        data = sys.stdin.buffer.read(MAX_EVENT_BYTES + 1)
    else:
        status = os.stat(path)
        if not stat.S_ISREG(status.st_mode):
            msg = (
                f"{path} is not a regular file (a directory, a FIFO or a device): name the event's JSON file"
            )
            raise _Unreadable(msg)
        if status.st_size > MAX_EVENT_BYTES:
            raise _Unreadable(_too_big(path, status.st_size))
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as file:
            data = file.read(MAX_EVENT_BYTES + 1)
    if len(data) > MAX_EVENT_BYTES:
        raise _Unreadable(_too_big("stdin" if path == "-" else path, len(data)))
    return data


def _too_big(where: str, size: int) -> str:
    shown = f"{size:,} bytes" if size <= MAX_EVENT_BYTES + 1 else "more"
    return f"{where}: the event is {shown}, over the {MAX_EVENT_BYTES:,} bytes an invocation takes (veFaaS's limit)"


def _print(result: dict[str, Any]) -> None:
    json.dump(result, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def _logs_for(invocation: Invocation) -> None:
    """No log line with ``--quiet``; on a terminal with ``LOG_FORMAT`` unset, lines for a person."""
    from handler.adapters.log import set_quiet  # noqa: PLC0415

    set_quiet(invocation.quiet)
    if not os.environ.get("LOG_FORMAT", "").strip() and sys.stderr.isatty():
        os.environ["LOG_FORMAT"] = "console"  # this process only: the function reads it as a user's setting


def invoke(invocation: Invocation) -> int:
    from handler import handler, without_pydantic_plugins  # noqa: PLC0415 - nothing to import for --help

    without_pydantic_plugins()  # before the event's module imports pydantic
    _logs_for(invocation)
    path, timeout = invocation.event, invocation.timeout
    from handler.errors import InvalidEvent, InvocationIncomplete  # noqa: PLC0415
    from handler.models.events import decode_event_document  # noqa: PLC0415

    try:
        raw = _read(path)
        event = decode_event_document(raw)
    except (OSError, _Unreadable) as exc:
        # Unreadable or refused before parsing: an event error all the same, reported as the entry reports one.
        from handler.entry import reject  # noqa: PLC0415

        why = f"cannot read {path}: {exc.strerror}" if isinstance(exc, OSError) else str(exc)
        _print(reject(InvalidEvent(why), request_id=str(uuid.uuid4())))
        return 2
    except InvalidEvent as error:
        # Not a JSON document: still an event error, logged and reported as the entry reports one.
        from handler.entry import reject  # noqa: PLC0415

        _print(reject(error, request_id=str(uuid.uuid4())))
        return 1
    try:
        result = handler(event, LocalContext(timeout))
        ok = result["statusCode"] == 200 if "statusCode" in result else bool(result.get("ok"))
        code = 0 if ok else 1
    except InvocationIncomplete as incomplete:
        result, code = incomplete.result, 1
    _print(result)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] in (["-h"], ["--help"]) or (words[:1] == ["invoke"] and {"-h", "--help"} & set(words)):
        sys.stdout.write(HELP)
        return 0
    if words == ["--version"]:
        from handler.version import build_info  # noqa: PLC0415

        info = build_info()
        sys.stdout.write(f"vefaas-image-exporter {info['version']} (source_sha256 {info['source_sha256']})\n")
        return 0
    try:
        if words[:1] != ["invoke"]:
            what = f"unknown command {words[0]!r}" if words else "a command is missing"
            raise UsageError(f"{what} (the tools are `exporter-tools`)")
        invocation = parse_invoke(words[1:])
    except UsageError as error:
        sys.stderr.write(f"{USAGE}python -m handler: error: {error}\n")
        return 2
    return invoke(invocation)
