"""``exporter-tools COMMAND [OPTIONS]``: the development and deployment tools, one module each.

Each command's module has a ``main(argv) -> int`` that parses its own options, and is imported only when
its command runs, so ``exporter-tools --help`` costs nothing. Every command exits 0 on success, 1 when the
operation failed (an API error, a failed check) and 2 on a usage or configuration error
(docs/development.md, "Exit status").
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "main"]

COMMANDS: dict[str, tuple[str, str]] = {
    "emulator": ("exporter_tools.emulator.__main__", "serve the local ECS and veFaaS emulator on 127.0.0.1"),
    "receiver": ("exporter_tools.receiver", "a local webhook receiver that prints and checks each delivery"),
    "demo": ("exporter_tools.demo", "the whole product against the emulator and the receiver (make demo)"),
    "validate-template": ("exporter_tools.deploy.template", "check template.yaml; errors name the field"),
    "package": ("exporter_tools.deploy.package", "build dist/function.zip, reproducibly"),
    "deploy": ("exporter_tools.deploy.cli", "plan, or --apply, the deployment of template.yaml"),
    "bench": ("exporter_tools.bench.run", "benchmarks against the official SDK (make bench)"),
    "status": ("exporter_tools.status", "exports in flight, outcomes (tags) and exports in TOS (manifests)"),
    "restore": ("exporter_tools.restore", "import an image's newest verified export back into ECS"),
    "retention": ("exporter_tools.retention", "retention's plan per group, and --apply to delete what goes"),
    "doctor": (
        "exporter_tools.doctor",
        "check the settings, keys, clocks, bucket, images and webhook (✓ ! ✗)",
    ),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {summary}" for name, (_module, summary) in COMMANDS.items()]
    return (
        "usage: exporter-tools COMMAND [OPTIONS]   (exporter-tools COMMAND --help for its options)\n"
        "       exporter-tools --version\n\n"
        "commands:\n" + "\n".join(lines) + "\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or words[0] in ("-h", "--help"):
        print(usage(), end="", file=sys.stdout if words else sys.stderr)
        return 0 if words else 2
    if words == ["--version"]:
        from handler.version import __version__  # noqa: PLC0415

        print(f"exporter-tools {__version__}")
        return 0
    command, rest = words[0], words[1:]
    if command not in COMMANDS:
        print(f"exporter-tools: unknown command {command!r}\n\n{usage()}", end="", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    status: int = module.main(rest)
    return status
