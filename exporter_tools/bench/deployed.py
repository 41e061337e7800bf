"""The deployed cold start: our zip as a new veFaaS instance starts it, and the same files precompiled.

A new instance unpacks the zip into a directory it cannot write and runs it with CPython 3.12: whatever
bytecode the zip lacks is compiled at every cold start. Three read-only trees of the same build show what the
shipped bytecode buys: the zip as built (sources and their unchecked-hash ``.pyc``), the same zip without any
``.pyc`` (what a sources-only zip costs), and the same sources precompiled here by ``compileall`` (the ideal:
every module already compiled, as in a warmed-up local environment). Each runs as ``python3.12 -I -B``.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from exporter_tools.bench.archive import read_only, unzip
from exporter_tools.bench.process import BenchError
from exporter_tools.deploy.package import DEFAULT_CACHE, PackageError, build_package, find_python

__all__ = ["DeployedTrees", "prepare_deployed"]


@dataclass(frozen=True, slots=True)
class DeployedTrees:
    """The interpreter, and the three unpacked trees of one build of the function's zip."""

    python: str
    version: str
    zip_path: Path
    shipped: Path  # the zip as built: sources and the bytecode it ships
    sources: Path  # the same files without any .pyc
    precompiled: Path  # the same sources compiled here by compileall (timestamp-based, as a local run leaves)


def prepare_deployed(scratch: Path, cache: Path = DEFAULT_CACHE) -> DeployedTrees:
    """Build the function's zip (cp312 wheels, 3.12 bytecode) under ``scratch`` and unpack it three ways,
    each read-only. ``BenchError`` when the zip cannot be built (no CPython 3.12, pip failing...)."""
    try:
        compiler = find_python("3.12")
        built = build_package(scratch / "function.zip", cache=cache, python=compiler.python)
    except PackageError as exc:
        msg = f"the deployed cold start needs the function's zip: {exc.message}"
        raise BenchError(msg) from None
    shipped = unzip(built.path, scratch / "deployed-shipped")
    sources = unzip(built.path, scratch / "deployed-sources", bytecode=False)
    precompiled = unzip(built.path, scratch / "deployed-precompiled", bytecode=False)
    completed = subprocess.run(
        [compiler.python, "-I", "-m", "compileall", "-q", "-j", "1", str(precompiled)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    if completed.returncode != 0:
        msg = f"compileall failed on the unpacked zip:\n{completed.stdout[-600:]}{completed.stderr[-600:]}"
        raise BenchError(msg)
    for tree in (shipped, sources, precompiled):
        read_only(tree)
    return DeployedTrees(compiler.python, compiler.version, built.path, shipped, sources, precompiled)
