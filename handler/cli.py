"""The command line: run the entry on an event file as the platform would, and the development tools.

Only ``invoke`` belongs to the product; the other commands import their modules when they are asked for.
Logs go to stderr; stdout carries the result alone, as one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

__all__ = ["LocalContext", "main"]

EVENTS_HELP = """\
events (see README.md, "Events", and the samples in events/):
  timer     {"type": "faas.timer.event", "data": "<JSON payload or empty>", ...}   scan, or ImageIds
  event     a CloudEvent whose data names ImageId (or subject is an image id); EventBridge detail.ImageId
  http      {"httpMethod": "POST", "body": "<any of these events>", "isBase64Encoded": false}
  direct    {"ImageId": "image-...", "TOSBucket"?: "...", "TOSPrefix"?: "..."} or {"ImageIds": [...]}

environment (see README.md, "Configuration"):
  VOLCENGINE_ACCESS_KEY / VOLCENGINE_SECRET_KEY [/ VOLCENGINE_SESSION_TOKEN], or VOLCENGINE_CREDENTIAL_FILE
  VOLCENGINE_REGION (cn-beijing), VOLCENGINE_ENDPOINT, EXPORT_TOS_BUCKET (required), EXPORT_TOS_PREFIX

exit status: 0 all started or skipped; 1 anything failed or deferred (or the event is invalid); 2 usage error
"""


class LocalContext:
    """What the platform passes as ``context``: a request id and the time left."""

    def __init__(self, timeout: float) -> None:
        self.request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _invoke(args: argparse.Namespace) -> int:
    from handler import handler  # noqa: PLC0415 - nothing to import for --help
    from handler.errors import InvocationIncomplete  # noqa: PLC0415

    try:
        text = sys.stdin.read() if args.event == "-" else open(args.event, encoding="utf-8").read()  # noqa: SIM115
    except OSError as exc:
        print(f"handler invoke: cannot read {args.event}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        event: Any = json.loads(text)
    except ValueError as exc:
        # Not JSON at all: still an event error, logged and reported as the entry reports one.
        from handler.entry import reject  # noqa: PLC0415
        from handler.errors import InvalidEvent  # noqa: PLC0415

        rejected = reject(
            InvalidEvent(f"the event file is not valid JSON: {exc}"), request_id=str(uuid.uuid4())
        )
        json.dump(rejected, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 1
    try:
        result = handler(event, LocalContext(args.timeout))
        ok = result["statusCode"] == 200 if "statusCode" in result else bool(result.get("ok"))
        code = 0 if ok else 1
    except InvocationIncomplete as incomplete:
        result, code = incomplete.result, 1
    json.dump(result, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    return code


# Development and deployment tools: each module's ``main(argv) -> int`` takes the rest of the command line.
TOOLS = {
    "emulator": ("handler.emulator.server", "run the local ECS emulator (a real HTTP server on 127.0.0.1)"),
    "validate-template": ("handler.deploy.template", "check template.yaml; errors name the field's path"),
    "package": ("handler.deploy.package", "build dist/function.zip, reproducibly"),
    "deploy": (
        "handler.deploy.apply",
        "plan or apply the deployment of template.yaml through the veFaaS OpenAPI",
    ),
}


def _tool(args: argparse.Namespace) -> int:
    import importlib  # noqa: PLC0415

    module = importlib.import_module(TOOLS[args.command][0])
    status: int = module.main(list(args.rest))
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m handler",
        description="Export Volcengine ECS custom images to TOS: run the function locally, and its tools.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    invoke = commands.add_parser(
        "invoke",
        help="run the function once on an event, as the platform would",
        description="Run the function once on EVENT_FILE (- reads stdin). The result goes to stdout, logs to stderr.",
        epilog=EVENTS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    invoke.add_argument("event", metavar="EVENT_FILE", help="a JSON event file, or - for stdin")
    invoke.add_argument(
        "--timeout", type=float, default=900.0, metavar="SECONDS", help="the time budget (default 900)"
    )
    invoke.set_defaults(run=_invoke)
    for name, (_module, summary) in TOOLS.items():
        tool = commands.add_parser(name, help=summary, add_help=False)
        tool.add_argument("rest", nargs=argparse.REMAINDER)
        tool.set_defaults(run=_tool)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in TOOLS:
        # A tool parses its own options (``deploy --apply``): hand it the rest before argparse sees them.
        return _tool(argparse.Namespace(command=words[0], rest=words[1:]))
    args = build_parser().parse_args(words)
    status: int = args.run(args)
    return status
