"""The structure check on real files made by QEMU's own tools (tests/fixtures/qcow2, committed): each gives
the verdict a user needs. Where qemu-img is installed (always under CI), each fixture is made again from its
recipe and both copies are held to the same verdict, and to ``qemu-img check`` where QEMU can judge it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from handler.core.qcow2 import StructureReport, check_structure
from tests.support.qcow2_fixtures import FIXTURES, Fixture, make_fixture, read_fixture
from tests.support.qemu_img import needs_qemu, qemu_check


@dataclass(frozen=True)
class Bytes:
    data: bytes

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]


def verdict(data: bytes, fixture: Fixture) -> StructureReport:
    return check_structure(Bytes(data), len(data), expected_virtual_size=fixture.expected_size)


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_each_committed_fixture_gets_its_verdict(fixture: Fixture) -> None:
    """An empty 40 GiB disk, one with data, a version 2 file pass; a truncated, a dirty, an encrypted file
    and one of the wrong virtual size fail, each naming what is wrong."""
    report = verdict(read_fixture(fixture.name), fixture)
    assert report.ok is fixture.passes, report.failure
    if not fixture.passes:
        assert report.failure is not None
        assert fixture.names in report.failure.lower()


@needs_qemu
@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_each_fixture_made_again_by_qemu_gets_the_same_verdict_and_qemus_own(
    fixture: Fixture, tmp_path: Path
) -> None:
    """The recipe run again with this machine's qemu-img: the same verdict as the committed file, and
    qemu-img check agrees where it can judge (it repairs a dirty file's refcounts on open and so accepts it,
    where the export check refuses an image that was not closed cleanly, as the contract says)."""
    made = make_fixture(fixture.name, tmp_path)
    report = verdict(made.read_bytes(), fixture)
    assert report.ok is fixture.passes, report.failure
    assert (qemu_check(made).returncode == 0) is fixture.qemu_accepts
