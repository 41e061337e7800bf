"""Zipping and unpacking as ``zip -r`` and ``unzip`` do, mtimes kept or reset, and what that does to
timestamp-based bytecode."""

from __future__ import annotations

import os
import py_compile
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from exporter_tools.bench.archive import RESET_MTIME, BytecodeState, bytecode_state, unzip, zip_files

ODD_SECOND = 1_700_000_001.75  # a DOS time (two-second steps) cannot hold it


def _package(root: Path) -> list[tuple[str, Path]]:
    """A package of one module with its timestamp-based bytecode, the module's mtime on an odd second."""
    source = root / "pkg" / "mod.py"
    source.parent.mkdir(parents=True)
    source.write_text("VALUE = 1\n", encoding="utf-8")
    os.utime(source, (ODD_SECOND, ODD_SECOND))
    pyc = Path(py_compile.compile(str(source), invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP))
    return [(p.relative_to(root).as_posix(), p) for p in (source, pyc)]


def test_mtimes_survive_the_round_trip_to_the_second(tmp_path: Path) -> None:
    """Unpacked with its mtimes, each file has the mtime it was zipped with, whole seconds (as ``unzip``)."""
    archive = zip_files(tmp_path / "f.zip", _package(tmp_path / "src"))
    tree = unzip(archive, tmp_path / "tree")
    assert (tree / "pkg" / "mod.py").stat().st_mtime == int(ODD_SECOND)
    assert (tree / "pkg" / "mod.py").read_text(encoding="utf-8") == "VALUE = 1\n"


def test_pips_bytecode_stays_valid_with_the_mtimes_and_goes_stale_without(tmp_path: Path) -> None:
    """Kept mtimes leave the timestamp-based .pyc valid; reset ones leave it stale, every file at the reset
    instant."""
    archive = zip_files(tmp_path / "f.zip", _package(tmp_path / "src"))
    kept = unzip(archive, tmp_path / "kept")
    reset = unzip(archive, tmp_path / "reset", keep_mtimes=False)
    assert bytecode_state(tmp_path / "src") == BytecodeState(valid=1, stale=0)
    assert bytecode_state(kept) == BytecodeState(valid=1, stale=0)
    assert bytecode_state(reset) == BytecodeState(valid=0, stale=1)
    assert {p.stat().st_mtime for p in reset.rglob("*") if p.is_file()} == {RESET_MTIME}


def test_an_archive_without_extended_timestamps_unpacks_at_its_dos_times(tmp_path: Path) -> None:
    """A zip holding DOS times only (ours: one fixed time) unpacks each file at that time, as ``unzip``."""
    archive = tmp_path / "fixed.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr(zipfile.ZipInfo("a.py", date_time=(2026, 1, 2, 3, 4, 6)), "x = 1\n")
    tree = unzip(archive, tmp_path / "tree")
    assert (tree / "a.py").stat().st_mtime == time.mktime((2026, 1, 2, 3, 4, 6, 0, 0, -1))


def test_hash_based_bytecode_is_not_counted(tmp_path: Path) -> None:
    """Unchecked-hash .pyc (ours) do not depend on mtimes: they are neither valid nor stale here; a .pyc
    whose source is gone is stale."""
    source = tmp_path / "m.py"
    source.write_text("x = 1\n", encoding="utf-8")
    py_compile.compile(str(source), invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    assert bytecode_state(tmp_path) == BytecodeState(valid=0, stale=0)
    orphan = tmp_path / "__pycache__" / "gone.cpython-312.pyc"
    orphan.write_bytes(b"\0" * 16)
    assert bytecode_state(tmp_path) == BytecodeState(valid=0, stale=1)


@pytest.mark.skipif(
    not (shutil.which("zip") and shutil.which("unzip")), reason="needs Info-ZIP's zip and unzip"
)
def test_the_archive_agrees_with_info_zip_both_ways(tmp_path: Path) -> None:
    """``unzip`` restores the mtimes this archive records, and a ``zip -r`` archive unpacks here with the
    mtimes ``zip`` recorded: both keep the bytecode valid."""
    files = _package(tmp_path / "src")
    ours = zip_files(tmp_path / "ours.zip", files)
    by_unzip = tmp_path / "by-unzip"
    subprocess.run(["unzip", "-q", str(ours), "-d", str(by_unzip)], check=True, timeout=60)
    assert bytecode_state(by_unzip) == BytecodeState(valid=1, stale=0)
    info_zip = tmp_path / "info.zip"
    subprocess.run(["zip", "-q", "-r", str(info_zip), "pkg"], cwd=tmp_path / "src", check=True, timeout=60)
    tree = unzip(info_zip, tmp_path / "from-zip")
    assert (tree / "pkg" / "mod.py").stat().st_mtime == int(ODD_SECOND)
    assert bytecode_state(tree) == BytecodeState(valid=1, stale=0)
