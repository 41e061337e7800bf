"""Zipping and unpacking a function's files as its users and the platform do, mtimes kept or reset.

``zip -r`` records each file's mtime twice: as a DOS time (two-second steps) and in Info-ZIP's extended
timestamp field (to the second); ``unzip`` restores the latter. Timestamp-based bytecode (what pip writes)
holds its source's mtime to the second, so it stays valid through that round trip and through no other:
an unpacking that sets other mtimes (``keep_mtimes=False`` resets them all to one instant) leaves every
``.pyc`` stale, and a read-only directory under ``-B`` compiles each imported module again at every start.
"""

from __future__ import annotations

import os
import shutil
import struct
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RESET_MTIME", "BytecodeState", "bytecode_state", "read_only", "unzip", "zip_files"]

RESET_MTIME = 315_532_800  # 1980-01-01 00:00 UTC, the zip format's first instant: what a reset leaves
_EXTENDED_TIMESTAMP = 0x5455  # Info-ZIP's "UT" extra field
_MTIME_PRESENT = 0x01
_TIMESTAMP_PYC = 0  # PEP 552 flags word: validated against the source's mtime and size


@dataclass(frozen=True, slots=True)
class BytecodeState:
    """The timestamp-based ``.pyc`` of a tree: how many still match their source, how many are stale."""

    valid: int
    stale: int


def _extended_timestamp(mtime: float) -> bytes:
    return struct.pack("<HHBl", _EXTENDED_TIMESTAMP, 5, _MTIME_PRESENT, int(mtime))


def zip_files(archive: Path, files: Iterable[tuple[str, Path]]) -> Path:
    """Write ``files`` (name in the archive, file on disk) into ``archive`` as ``zip -r`` does: deflated, each
    with its mode and its mtime to the second."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w") as out:
        for name, path in files:
            info = zipfile.ZipInfo.from_file(path, name, strict_timestamps=False)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.extra = _extended_timestamp(path.stat().st_mtime)
            out.writestr(info, path.read_bytes())
    return archive


def _archived_mtime(info: zipfile.ZipInfo) -> float:
    """The mtime ``unzip`` gives ``info``: the extended timestamp when there is one, else the DOS time."""
    extra, offset = info.extra, 0
    while offset + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, offset)
        if tag == _EXTENDED_TIMESTAMP and size >= 5 and extra[offset + 4] & _MTIME_PRESENT:
            return float(struct.unpack_from("<l", extra, offset + 5)[0])
        offset += 4 + size
    return time.mktime((*info.date_time, 0, 0, -1))


def _writable(directory: Path) -> None:
    for path in [directory, *directory.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


def read_only(directory: Path) -> None:
    """Take write permission away from ``directory`` and everything in it, as the platform's code directory."""
    for path in [*directory.rglob("*"), directory]:
        if not path.is_symlink():
            path.chmod(0o555 if path.is_dir() else 0o444)


def unzip(archive: Path, directory: Path, *, bytecode: bool = True, keep_mtimes: bool = True) -> Path:
    """``archive`` unpacked into a fresh ``directory`` (left writable), without its ``.pyc`` if asked. Each
    file keeps its archived mtime, as ``unzip`` restores it, or with ``keep_mtimes=False`` gets
    ``RESET_MTIME``, as an unpacking that keeps no mtimes leaves them."""
    if directory.exists():
        _writable(directory)
        shutil.rmtree(directory)
    with zipfile.ZipFile(archive) as opened:
        members = [i for i in opened.infolist() if bytecode or not i.filename.endswith(".pyc")]
        opened.extractall(directory, members=members)
        for info in members:
            if not info.is_dir():
                mtime = _archived_mtime(info) if keep_mtimes else RESET_MTIME
                os.utime(directory / info.filename, (mtime, mtime))
    return directory


def bytecode_state(tree: Path) -> BytecodeState:
    """Count the timestamp-based ``__pycache__/*.pyc`` under ``tree`` whose recorded source mtime and size
    match their ``.py`` beside the cache (valid) and those that do not (stale, or their source gone)."""
    valid = stale = 0
    for pyc in tree.rglob("__pycache__/*.pyc"):
        header = pyc.read_bytes()[4:16]
        if len(header) < 12:
            stale += 1
            continue
        flags, mtime, size = struct.unpack("<III", header)
        if flags != _TIMESTAMP_PYC:
            continue
        source = pyc.parent.parent / f"{pyc.name.split('.', 1)[0]}.py"
        try:
            stat = source.stat()
        except FileNotFoundError:
            stale += 1
            continue
        matches = mtime == int(stat.st_mtime) & 0xFFFFFFFF and size == stat.st_size & 0xFFFFFFFF
        valid, stale = (valid + 1, stale) if matches else (valid, stale + 1)
    return BytecodeState(valid, stale)
