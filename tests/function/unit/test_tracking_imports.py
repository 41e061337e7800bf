"""Importing the export-tracking modules does nothing: no variable read, no socket, no limiter or client built."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
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

    print(json.dumps({
        "reads": reads,
        "sockets": len(sockets),
        "limiters": len(handler.adapters.tos._limiters),
        "tools": [m for m in sys.modules if m.startswith("exporter_tools")],
    }))
    """
)


def test_importing_the_tracking_modules_reads_nothing_and_builds_nothing() -> None:
    """The TOS client, its signer, the tracking decisions and flow import without reading the environment,
    opening a socket, building a rate limiter or pulling in the tools."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    probe = json.loads(out.stdout)
    assert probe == {"reads": [], "sockets": 0, "limiters": 0, "tools": []}
