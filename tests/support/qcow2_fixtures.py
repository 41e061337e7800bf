"""The committed qcow2 fixtures (``tests/fixtures/qcow2/``, each gzipped: they are mostly zeros): how each was made with ``qemu-img`` / ``qemu-io``
(Debian ``qemu-utils``), and what the structure check must say of it. ``python -m tests.support.qcow2_fixtures``
writes them again; the tests read the committed files everywhere, and where ``qemu-img`` is installed they
make each one again and hold both to QEMU's own check.

Damage QEMU will not make on purpose (a dirty bit, an encrypted header without its secret, a cut) is made
here, on QEMU's own output, the way it happens: a flag set by a crash, bytes that never arrived.
"""

from __future__ import annotations

import gzip
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FIXTURES", "FIXTURE_DIR", "Fixture", "make_fixture", "read_fixture"]

FIXTURE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "qcow2"
GIB = 1024**3
_DIRTY = 1  # incompatible_features bit 0 (docs/facts.md §13)


@dataclass(frozen=True)
class Fixture:
    """One fixture: its file name, the virtual size the check is told to expect, whether the check passes,
    a word its failure names, and whether ``qemu-img check`` accepts the file."""

    name: str
    expected_size: int
    passes: bool
    names: str = ""
    qemu_accepts: bool = True


FIXTURES: tuple[Fixture, ...] = (
    Fixture("empty-40g.qcow2", 40 * GIB, passes=True),
    Fixture("data-1g.qcow2", 1 * GIB, passes=True),
    Fixture("v2-1g.qcow2", 1 * GIB, passes=True),
    Fixture("truncated-1g.qcow2", 1 * GIB, passes=False, names="truncated", qemu_accepts=False),
    Fixture("dirty-1g.qcow2", 1 * GIB, passes=False, names="dirty"),
    Fixture("encrypted-header.qcow2", 1 * GIB, passes=False, names="encrypt", qemu_accepts=False),
    Fixture("wrong-size-20g.qcow2", 40 * GIB, passes=False, names="virtual size"),
)


def _run(*command: str) -> None:
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        msg = f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-500:]}"
        raise RuntimeError(msg)


def _create(path: Path, size: str, *options: str) -> None:
    _run("qemu-img", "create", "-q", "-f", "qcow2", *options, str(path), size)


def _with_data(path: Path, *options: str) -> None:
    """A 1 GiB image with data in three places (three guest clusters far apart, two L2 tables' worth)."""
    _create(path, "1G", *options)
    for offset, pattern in (("0", "0xab"), ("600M", "0xcd"), ("1023M", "0xef")):
        _run("qemu-io", "-f", "qcow2", "-c", f"write -P {pattern} {offset} 64k", str(path))


def _set_dirty(path: Path) -> None:
    data = bytearray(path.read_bytes())
    (features,) = struct.unpack_from(">Q", data, 72)
    struct.pack_into(">Q", data, 72, features | _DIRTY)
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _encrypted_header(path: Path) -> None:
    """An image encrypted with LUKS, cut to its first cluster: the header says encrypted, which is all the
    check reads before it refuses (the whole file would be megabytes of LUKS key slots)."""
    whole = path.with_suffix(".whole")
    for attempt in range(5):
        try:
            _run(
                "qemu-img", "create", "-q", "-f", "qcow2",
                "--object", "secret,id=sec0,data=fixture-only",
                "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=100",
                str(whole), "1G",
            )  # fmt: skip
            break
        except RuntimeError as failed:
            # LUKS times its key derivation first; on a loaded machine QEMU may find the timing unreliable
            # ("Unable to get accurate CPU usage") and give up: try again.
            if "accurate CPU usage" not in str(failed) or attempt == 4:
                raise
    path.write_bytes(whole.read_bytes()[:65536])
    whole.unlink()


def _truncated(path: Path) -> None:
    _with_data(path)
    _truncate(path)


def _dirty(path: Path) -> None:
    _with_data(path)
    _set_dirty(path)


_RECIPES: dict[str, Callable[[Path], None]] = {
    "empty-40g.qcow2": lambda p: _create(p, "40G"),
    "data-1g.qcow2": _with_data,
    "v2-1g.qcow2": lambda p: _with_data(p, "-o", "compat=0.10"),
    "truncated-1g.qcow2": _truncated,
    "dirty-1g.qcow2": _dirty,
    "encrypted-header.qcow2": _encrypted_header,
    "wrong-size-20g.qcow2": lambda p: _create(p, "20G"),
}


def make_fixture(name: str, directory: Path) -> Path:
    """Make fixture ``name`` in ``directory`` with qemu-img (and qemu-io); its path."""
    path = directory / name
    _RECIPES[name](path)
    return path


def read_fixture(name: str) -> bytes:
    """The committed fixture's bytes."""
    return gzip.decompress((FIXTURE_DIR / f"{name}.gz").read_bytes())


def main() -> int:
    if shutil.which("qemu-img") is None or shutil.which("qemu-io") is None:
        print("qemu-img and qemu-io are needed (Debian: apt-get install qemu-utils)", file=sys.stderr)
        return 2
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    for fixture in FIXTURES:
        path = make_fixture(fixture.name, FIXTURE_DIR)
        packed = FIXTURE_DIR / f"{fixture.name}.gz"
        packed.write_bytes(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0))
        size, packed_size = path.stat().st_size, packed.stat().st_size
        print(f"{packed.relative_to(FIXTURE_DIR.parents[1])}: {size} bytes, {packed_size} gzipped")
        path.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
