"""The official SDK as a veFaaS function, built as its users build one, to compare deployed cold starts.

``pip install --target`` of the SDK's core and ECS packages under CPython 3.12, the 20-line ``index.py``
beside them (``scripts.SDK_INDEX``), ``zip -r``. pip compiles what it installs into timestamp-based bytecode,
which a new instance can use only if the upload keeps every file's mtime. Two read-only trees of the one zip:

- at its best: unpacked as ``unzip`` does, mtimes restored, every ``.pyc`` valid;
- stale: unpacked with every mtime reset, every ``.pyc`` stale, so under ``-B`` in a read-only directory each
  module the function imports is compiled again at every cold start.

The installed tree is kept between runs (``.bench/sdk-function``); a changed pin or Python installs it again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from exporter_tools.bench.archive import BytecodeState, bytecode_state, read_only, unzip, zip_files
from exporter_tools.bench.process import BenchError
from exporter_tools.bench.sdk_env import SDK_REQUIREMENTS

__all__ = ["SdkFunctionTrees", "install_sdk", "prepare_sdk_function"]

_MARKER = ".bench-installed"


@dataclass(frozen=True, slots=True)
class SdkFunctionTrees:
    """The SDK function's zip and its two read-only unpackings, with the state of pip's bytecode in each."""

    zip_path: Path
    best: Path
    stale: Path
    best_bytecode: BytecodeState
    stale_bytecode: BytecodeState


def install_sdk(directory: Path, python: str) -> Path:
    """The SDK's pins installed by ``python -m pip install --target`` (pip compiling their bytecode, as it does
    by default) into ``directory/site``; reused when the same pins and interpreter made it before."""
    site, marker = directory / "site", directory / _MARKER
    wanted = " ".join([python, *SDK_REQUIREMENTS])
    if site.is_dir() and marker.is_file() and marker.read_text(encoding="utf-8").strip() == wanted:
        return site
    staging = directory / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    marker.unlink(missing_ok=True)
    # SOURCE_DATE_EPOCH would make pip write hash-based bytecode: the SDK's users get timestamp-based.
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    completed = subprocess.run(
        [python, "-I", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target",
         str(staging), *SDK_REQUIREMENTS],
        capture_output=True, text=True, timeout=900, check=False, env=env,
    )  # fmt: skip
    if completed.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        detail = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-8:])
        msg = f"pip ({python}) could not install the SDK's function ({' '.join(SDK_REQUIREMENTS)}):\n{detail}"
        raise BenchError(msg)
    shutil.rmtree(site, ignore_errors=True)
    staging.rename(site)
    marker.write_text(wanted + "\n", encoding="utf-8")
    return site


def _function_files(site: Path, index: Path) -> list[tuple[str, Path]]:
    """What ``zip -r`` of the function's directory takes: everything pip installed, and ``index.py``."""
    files = [(path.relative_to(site).as_posix(), path) for path in sorted(site.rglob("*")) if path.is_file()]
    return [*files, ("index.py", index)]


def prepare_sdk_function(scratch: Path, cache: Path, python: str, index: Path) -> SdkFunctionTrees:
    """Install the SDK under ``cache`` with ``python`` (CPython 3.12), zip it with ``index`` as ``index.py`` into
    ``scratch`` and unpack it both ways, read-only. ``BenchError`` when pip fails, or when either tree's
    bytecode is not what it stands for (a run on it would measure something else)."""
    site = install_sdk(cache, python)
    archive = zip_files(scratch / "sdk-function.zip", _function_files(site, index))
    best = unzip(archive, scratch / "deployed-sdk")
    stale = unzip(archive, scratch / "deployed-sdk-stale", keep_mtimes=False)
    best_state, stale_state = bytecode_state(best), bytecode_state(stale)
    if best_state.stale or not best_state.valid or stale_state.valid:
        msg = (
            f"the SDK function's bytecode: unzipped with mtimes {best_state.valid} valid, {best_state.stale} "
            f"stale; with mtimes reset {stale_state.valid} valid (expected all valid, then none)"
        )
        raise BenchError(msg)
    for tree in (best, stale):
        read_only(tree)
    return SdkFunctionTrees(archive, best, stale, best_state, stale_state)
