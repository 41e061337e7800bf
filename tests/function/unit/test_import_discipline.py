"""Importing the function does nothing: no environment read, no file or socket opened, no client built."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import builtins, json, os, socket, sys

    reads, opened, sockets = [], [], []
    OURS = os.sep + "handler" + os.sep

    def from_our_code():
        # Libraries may look at their own variables (NO_COLOR...); our modules must not look at any.
        return OURS in sys._getframe(2).f_code.co_filename

    class Spy(dict):
        def __getitem__(self, key):
            if from_our_code():
                reads.append(key)
            return super().__getitem__(key)
        def get(self, key, default=None):
            if from_our_code():
                reads.append(key)
            return super().get(key, default)
        def __contains__(self, key):
            if from_our_code():
                reads.append(key)
            return super().__contains__(key)

    os.environ = Spy(os.environ)
    real_open = builtins.open
    def spy_open(file, *args, **kwargs):
        if from_our_code():
            opened.append(str(file))
        return real_open(file, *args, **kwargs)
    builtins.open = spy_open
    class NoSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            sockets.append(args)
            super().__init__(*args, **kwargs)
    socket.socket = NoSocket

    import handler
    after_package = sorted(m for m in sys.modules if m.split(".")[0] in ("httpx", "pydantic", "structlog"))
    import handler.entry, handler.core.export_flow, handler.adapters.ecs, handler.adapters.openapi

    builtins.open = real_open
    print(json.dumps({
        "reads": reads, "opened": opened, "sockets": len(sockets), "after_package": after_package,
        "modules": sorted(m for m in sys.modules if m.startswith("handler")),
        "clients": [m for m in sys.modules if m == "handler.adapters.openapi"
                    and sys.modules[m]._http_clients],
    }))
    """
)


def _probe() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_import_reads_no_environment_opens_nothing_builds_no_client() -> None:
    """Importing the package and every runtime module reads no variable, opens no file or socket, builds no client."""
    probe = _probe()
    assert probe["reads"] == []
    assert probe["opened"] == []
    assert probe["sockets"] == 0
    assert probe["clients"] == []


def test_importing_the_package_alone_is_nearly_free() -> None:
    """``import handler`` loads none of httpx, pydantic or structlog: they come with the first invocation."""
    assert _probe()["after_package"] == []


def test_the_entry_does_not_import_dev_tools_or_webhooks() -> None:
    """The runtime path never imports the emulator, the CLI, deployment code, the webhook formats, retention
    and the catalogue it reads (a timer imports them when RETENTION_MODE or RESTORE_DRILL_DAYS asks), or the
    doctor (a Doctor event imports it)."""
    modules = _probe()["modules"]
    assert isinstance(modules, list)
    for absent in (
        "exporter_tools.emulator",
        "handler.cli",
        "exporter_tools.deploy",
        "handler.adapters.webhooks",
        "exporter_tools.bench",
        "handler.core.retention",
        "handler.core.retention_rules",
        "handler.core.catalogue",
        "handler.doctor",
        "handler.core.doctor",
        "handler.core.doctor_checks",
        "handler.core.doctor_bucket",
    ):
        assert not any(m == absent or m.startswith(absent + ".") for m in modules), absent


# -- the export-tracking modules --------------------------------------------------------------------------

TRACKING_PROBE = textwrap.dedent(
    """
    import json, os, socket, sys

    reads, sockets = [], []
    OURS = os.sep + "handler" + os.sep

    def note(key):
        if OURS in sys._getframe(2).f_code.co_filename:
            reads.append(key)

    class Spy(dict):
        def __getitem__(self, key):
            note(key)
            return super().__getitem__(key)
        def get(self, key, default=None):
            note(key)
            return super().get(key, default)
        def __contains__(self, key):
            note(key)
            return super().__contains__(key)

    class NoSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            sockets.append(args)
            super().__init__(*args, **kwargs)

    os.environ = Spy(os.environ)
    socket.socket = NoSocket
    import handler.adapters.tos, handler.adapters.tos_signing, handler.core.tracking, handler.models.objects
    import handler.core.follow_up, handler.models.tagging, handler.adapters.webhooks._lines
    import handler.core.catalogue, handler.core.fan_out, handler.core.retention, handler.core.retention_rules
    import handler.doctor, handler.core.doctor, handler.core.doctor_checks, handler.core.doctor_bucket

    print(json.dumps({
        "reads": reads,
        "sockets": len(sockets),
        "limiters": len(handler.adapters.tos._limiters),
        "tools": [m for m in sys.modules if m.startswith("exporter_tools")],
    }))
    """
)


def test_importing_the_tracking_modules_reads_nothing_and_builds_nothing() -> None:
    """The TOS client, its signer, the tracking decisions and flow, the catalogue, retention and the doctor
    import without reading the environment, opening a socket, building a rate limiter or pulling in the
    tools."""
    out = subprocess.run(
        [sys.executable, "-c", TRACKING_PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    probe = json.loads(out.stdout)
    assert probe == {"reads": [], "sockets": 0, "limiters": 0, "tools": []}
