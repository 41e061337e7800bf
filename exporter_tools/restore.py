"""``exporter-tools restore IMAGE_ID [--name N] [--wait]``: import an image's newest verified export back into
ECS, with the function's own restore core (the ``Restore`` event's) and the caller's credentials.

Without ``--wait`` it starts the import and prints ``restore_started`` with the new image; the next timer run
of the function reports ``restored`` or ``restore_failed``. With ``--wait`` it follows the import itself
(DescribeTasks ``Process`` as a progress bar on stderr) to its end, records the check in the manifest and
retags the new image, so that no timer run reports it again.

Exit status: 0 started (or, with ``--wait``, restored); 1 refused, failed, or still importing when
``--timeout`` ran out; 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from exporter_tools.bucket_session import open_bucket
from handler.adapters.clients import Clients
from handler.clock import SYSTEM_CLOCK
from handler.core.restore import follow_restores, start_restore
from handler.core.restoring import latest_import_tasks
from handler.errors import ExporterError, fix_for
from handler.models.commands import RefusedValue, check_bucket, check_image_id, check_image_name, check_prefix
from handler.models.results import ImageOutcome

__all__ = ["build_parser", "main"]

_BAR = 30


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exporter-tools restore",
        description=(
            "Import IMAGE_ID's newest verified export (its manifest in the bucket) back into ECS as a new "
            "image, with the metadata the manifest recorded. Bucket, prefix, endpoints, region and keys come "
            "from the function's variables (EXPORT_TOS_BUCKET, EXPORT_TOS_PREFIX, TOS_ENDPOINT, "
            "VOLCENGINE_REGION, VOLCENGINE_ACCESS_KEY...)."
        ),
    )
    parser.add_argument(
        "image_id", type=_checked(check_image_id), help="the source image whose export to restore"
    )
    parser.add_argument("--name", type=_checked(check_image_name), help="the new image's name")
    parser.add_argument(
        "--bucket", type=_checked(check_bucket), help="the bucket (default: EXPORT_TOS_BUCKET)"
    )
    parser.add_argument(
        "--prefix", type=_checked(check_prefix), help="the prefix (default: EXPORT_TOS_PREFIX)"
    )
    parser.add_argument(
        "--wait", action="store_true", help="follow the import to its end, with a progress bar"
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds to wait at most with --wait (default 1800)"
    )
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between looks (default 10)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--verbose", action="store_true", help="log each API call (JSON lines on stderr)")
    return parser


def _checked(rule: Callable[[object], str]) -> Callable[[str], str]:
    def check(text: str) -> str:
        try:
            return rule(text)
        except RefusedValue as refused:
            raise argparse.ArgumentTypeError(refused.message) from None

    return check


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.timeout <= 24 * 3600 or not 0 < args.interval <= 600:
        parser.error(
            "--timeout must be above 0 and at most 86400 seconds, --interval above 0 and at most 600"
        )
    session = open_bucket("restore", args)
    if isinstance(session, int):
        return session
    clients, settings = session.clients, session.settings
    deadline = time.monotonic() + 120.0
    outcome = start_restore(
        clients.ecs,
        session.store,
        source_id=args.image_id,
        dest=session.dest,
        tos_origin=settings.tos_origin,
        name=args.name,
        deadline=deadline,
        clock=SYSTEM_CLOCK,
    )
    if outcome.status == "restore_started" and args.wait and outcome.restored_image_id:
        outcome = _wait(clients, outcome, timeout=args.timeout, interval=args.interval, progress=sys.stderr)
    _print(outcome, as_json=args.json)
    return 0 if outcome.status in ("restore_started", "restored") and not _timed_out(outcome) else 1


def _wait(
    clients: Clients, started: ImageOutcome, *, timeout: float, interval: float, progress: TextIO
) -> ImageOutcome:
    """Look at the import every ``interval`` seconds until it ends or ``timeout`` runs out; then record and
    retag it as a timer run would (so that none reports it again)."""
    assert clients.store is not None  # noqa: S101 - built with_store
    new = started.restored_image_id or ""
    bar = _Bar(progress)
    ends_at = time.monotonic() + timeout
    while True:
        deadline = min(ends_at, time.monotonic() + 60.0)
        run = follow_restores(clients.ecs, clients.store, deadline=deadline, image_ids=(new,))
        ended = [o for o in run.outcomes if o.restored_image_id == new]
        if ended:
            run.settle(deadline=deadline)
            bar(100 if ended[0].status == "restored" else None, new, ended[0].status, done=True)
            return ended[0]
        percent, status = _progress(clients, new, deadline)
        bar(percent, new, status)
        if time.monotonic() + interval > ends_at:
            bar.stop()
            reason = (
                f"still importing after {timeout:g} s; a later timer run of the function reports its end "
                f"(or run exporter-tools status)"
            )
            return dataclasses.replace(started, reason=reason)
        time.sleep(interval)


def _progress(clients: Clients, image_id: str, deadline: float) -> tuple[int | None, str]:
    try:
        tasks = latest_import_tasks(clients.ecs.describe_tasks(deadline=deadline, resource_ids=[image_id]))
    except ExporterError as error:
        return None, f"task look-up failed: {error.code}"
    task = tasks.get(image_id)
    if task is None:
        return None, "waiting for its import task"
    return task.progress, task.status or "unknown"


class _Bar:
    """The import's progress: one line redrawn on a terminal; elsewhere (a CI log, a file) one line a change,
    so that the log does not become one long line of carriage returns."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.redraw = _is_terminal(out)
        self.last = ""

    def __call__(self, percent: int | None, image_id: str, status: str, *, done: bool = False) -> None:
        filled = round(_BAR * (percent or 0) / 100)
        shown = f"{percent:3d}%" if percent is not None else "  ?%"
        line = f"[{'#' * filled}{'.' * (_BAR - filled)}] {shown} {image_id} {status}"
        if self.redraw:
            self.out.write(f"\r{line}".ljust(79) + ("\n" if done else ""))
        elif line != self.last:
            self.out.write(line + "\n")
        self.last = line
        self.out.flush()

    def stop(self) -> None:
        """End the redrawn line (a timeout: no last state to draw)."""
        if self.redraw:
            self.out.write("\n")


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False


def _timed_out(outcome: ImageOutcome) -> bool:
    return outcome.status == "restore_started" and (outcome.reason or "").startswith("still importing")


def _print(outcome: ImageOutcome, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(outcome.to_json(), indent=2))
        return
    line = f"{outcome.image_id}: {outcome.status}"
    if outcome.restored_image_id:
        line += f" → {outcome.restored_image_id}"
    if outcome.task_id:
        line += f" (task {outcome.task_id})"
    print(line)
    if outcome.reason:
        print(f"  {outcome.reason}")
    if outcome.error is not None:
        print(f"  {outcome.error.code}: {outcome.error.message}")
        fix = fix_for(outcome.error.code)
        if fix:
            print(f"  fix: {fix}")
