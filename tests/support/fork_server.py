"""The other end of ``tests.support.invocations.FunctionLauncher``: a process that has imported the function
once and forks a child for each invocation asked of it, so that starting one costs milliseconds instead of an
interpreter's start (most of a second here), which is what lets a test kill twenty of them at random points
and still take seconds.

A child is what ``python -m handler invoke`` would be: ``handler.cli.main`` in a process of its own, with the
environment it was given (read afresh, as nothing happens at import), stdout and stderr in files, and no
invocation run before it (its first is a cold start). Its exit status is written to a file as it ends; a
child killed first writes none. Run as ``python -c "from tests.support.fork_server import serve; serve()"``:
each line on stdin is a JSON request ``{"argv", "env", "stdout", "stderr", "exit"}``, each answer a JSON line
``{"pid": N}`` on stdout. Children are reaped by the system (SIGCHLD ignored): none is left a zombie.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import signal
import sys
import traceback
from typing import Any

__all__ = ["serve"]


def _preload() -> None:
    """Import every module of the function (each would be imported by some invocation), pydantic's plugin
    scan off as the command line has it."""
    import handler

    handler.without_pydantic_plugins()
    for module in pkgutil.walk_packages(handler.__path__, "handler."):
        if module.name.endswith(".__main__"):
            continue  # running it is the command line itself
        try:
            importlib.import_module(module.name)
        except Exception:  # noqa: S112 - preloading is an optimisation: the child imports it again
            continue


def _child(request: dict[str, Any]) -> None:
    """Become the invocation: never returns."""
    code = 70
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(request["env"])
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        for source, target in ((null, 0), (out, 1), (err, 2)):
            os.dup2(source, target)
            os.close(source)
        from handler.cli import main

        try:
            code = main(request["argv"])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        sys.stdout.flush()
        sys.stderr.flush()
        with open(request["exit"], "w", encoding="utf-8") as exit_file:
            exit_file.write(str(code))
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
    finally:
        os._exit(code)


def serve() -> None:
    """Fork one child per request line until stdin closes."""
    _preload()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _child(request)
        sys.stdout.write(json.dumps({"pid": pid}) + "\n")
        sys.stdout.flush()
