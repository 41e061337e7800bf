"""The qcow2 structure check: a valid image passes, each kind of damage fails naming its check, any bytes at
all give a report (never an exception), and on real ``qemu-img`` images it agrees with ``qemu-img check``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handler.core.qcow2 import BytesReader, StructureReport, check_structure
from tests.support.qcow2_images import MIB, Qcow2Image, build_qcow2, set_u32, set_u64

GIB = 1024 * MIB


def check(data: bytes | bytearray, expected: int | None = None, **kwargs: int) -> StructureReport:
    return check_structure(BytesReader(bytes(data)), len(data), expected_virtual_size=expected, **kwargs)


def many_tables() -> Qcow2Image:
    """4 KiB clusters, so each L2 table covers 2 MiB: 8 allocated L2 tables over a 16 MiB disk."""
    clusters = {i * 512: bytes([i + 1]) * 64 for i in range(8)}
    return build_qcow2(virtual_size=16 * MIB, cluster_bits=12, clusters=clusters)


# -- (a) hand-built images ---------------------------------------------------------------------------------


def test_a_valid_image_passes_reading_each_table_once() -> None:
    """A valid image is ok; header, refcount table, L1 table and each L2 table are one read each."""
    image = many_tables()
    report = check(image.data, expected=16 * MIB)
    assert report.ok, report.failure
    assert report.failure is None
    assert (report.virtual_size, report.cluster_size) == (16 * MIB, 4096)
    assert (report.l2_tables_checked, report.l2_tables_total, report.sampled) == (8, 8, False)
    assert report.reads == 3 + 8
    assert report.bytes_read == 4096 + 4096 + 8 * 8 + 8 * 4096


def test_extended_l2_and_compressed_entries_pass() -> None:
    """128-bit L2 entries and compressed clusters (offset in the low bits) are read as such."""
    assert check(build_qcow2(extended_l2=True).data).ok
    image = build_qcow2(clusters={0: b"a"}, compressed={3: b"b" * 3000, 9: b"c"})
    assert check(image.data).ok


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda im: im.data.__setitem__(slice(0, 4), b"QFI\x00"), "not a qcow2 file: magic"),
        (lambda im: set_u32(im.data, 4, 4), "version 4 is not 2 or 3"),
        (lambda im: set_u32(im.data, 20, 22), "cluster_bits 22 is outside"),
        (lambda im: set_u32(im.data, 32, 1), "encrypted"),
        (lambda im: set_u64(im.data, 72, 1), "marked dirty"),
        (lambda im: set_u64(im.data, 72, 2), "marked corrupt"),
        (lambda im: set_u64(im.data, 72, 4), "external data file"),
        (lambda im: set_u64(im.data, 72, 1 << 9), "unknown incompatible features"),
        (lambda im: set_u32(im.data, 100, 50), "header_length 50"),
        (lambda im: set_u32(im.data, 56, 0), "no refcount table"),
        (lambda im: set_u64(im.data, 40, 3 * 4096 + 8), "L1 table offset 0x3008 is not aligned"),
        (lambda im: set_u32(im.data, 36, 2**20), "L1 table at offset 0x3000 (1048576 entries) lies past"),
        (lambda im: set_u32(im.data, 36, 2**31), "l1_size 2147483648 is larger than QEMU allows"),
        (lambda im: set_u32(im.data, 36, 1), "l1_size 1 is too small"),
        (lambda im: set_u64(im.data, 4096, 1 << 40), "refcount block 0 at offset 0x10000000000 lies past"),
        (lambda im: set_u64(im.data, 4096, 4096 + 512), "refcount block 0 at offset 0x1200 is not aligned"),
        (lambda im: set_u64(im.data, 3 * 4096 + 8, 1 << 30), "L2 table 1 at offset 0x40000000 lies past the end"),
        (lambda im: set_u64(im.data, 3 * 4096 + 8, 4096 * 5 + 512), "L2 table 1 at offset 0x5200 is not aligned"),
    ],
)  # fmt: skip
def test_each_damage_fails_naming_its_check(damage: object, named: str) -> None:
    """A header field, a feature bit or a table offset out of bounds fails with a message naming the check."""
    image = many_tables()
    assert callable(damage)
    damage(image)
    report = check(image.data)
    assert not report.ok
    assert report.failure is not None
    assert named in report.failure


def test_a_data_cluster_past_the_end_is_truncation() -> None:
    """An allocated data cluster whose host offset is past the object's end names the cluster."""
    image = many_tables()
    set_u64(image.data, image.l2_entry_offset(512 * 3), (1 << 63) | (1 << 24))
    report = check(image.data)
    assert report.failure == (
        f"data cluster at guest offset 0x600000 (L2 table 3, entry 0) has host offset 0x1000000, past the "
        f"end of the object (size {len(image.data)}): the object is truncated"
    )


def test_a_compressed_cluster_past_the_end_is_truncation() -> None:
    """A compressed entry's offset is its low 62 - (cluster_bits - 8) bits; past the end fails."""
    image = build_qcow2(clusters={0: b"a"}, compressed={3: b"b"})
    entry_at = image.l2_entry_offset(3)
    set_u64(image.data, entry_at, (1 << 62) | (1 << 54) | (1 << 40))  # sector count bits above the offset
    report = check(image.data)
    assert report.failure is not None
    assert "compressed cluster at guest offset 0x30000" in report.failure
    assert "host offset 0x10000000000" in report.failure


def test_an_unaligned_data_cluster_fails() -> None:
    image = many_tables()
    set_u64(image.data, image.l2_entry_offset(0), image.data_offsets[0] + 512)
    report = check(image.data)
    assert report.failure is not None
    assert "is not aligned to a cluster" in report.failure


def test_the_virtual_size_must_be_the_images() -> None:
    """Given the image's size, a header saying another virtual size fails; without one, any passes."""
    image = build_qcow2(virtual_size=64 * MIB)
    assert check(image.data, expected=64 * MIB).ok
    report = check(image.data, expected=40 * GIB)
    assert report.failure == f"virtual size: the header says {64 * MIB} bytes, the image is {40 * GIB} bytes"


@pytest.mark.parametrize("cut", [0, 3, 50, 100, 4096, 3 * 4096 + 4, 5 * 4096])
def test_a_truncated_image_fails(cut: int) -> None:
    """Cut anywhere before its last table, the image fails (never raises)."""
    image = many_tables()
    report = check(image.data[:cut])
    assert not report.ok


def test_a_huge_l1_size_reads_nothing_huge() -> None:
    """A hostile l1_size and virtual size are bounded by the object's size before anything is read."""
    image = many_tables()
    set_u32(image.data, 36, 2**32 - 1)
    set_u64(image.data, 24, 2**63)
    report = check(image.data)
    assert not report.ok
    assert report.bytes_read <= 2 * 4096


def test_entries_past_the_virtual_size_are_not_read() -> None:
    """An L1 larger than the virtual size needs is bounds-checked but only its needed entries are read."""
    image = many_tables()
    set_u32(image.data, 36, 500)
    report = check(image.data)
    assert report.ok, report.failure
    assert report.bytes_read == 4096 + 4096 + 8 * 8 + 8 * 4096


def test_past_the_budget_the_l2_tables_are_sampled_evenly() -> None:
    """With room for 3 of 8 L2 tables, 3 evenly spread ones are read and the report says it sampled."""
    image = many_tables()
    budget = 4096 + 4096 + 64 + 3 * 4096
    report = check(image.data, max_read_bytes=budget)
    assert report.ok, report.failure
    assert (report.l2_tables_checked, report.l2_tables_total, report.sampled) == (3, 8, True)
    assert report.bytes_read <= budget
    # The sample reaches the last tables too: damage in table 5 (of 0, 2, 5) is found.
    set_u64(image.data, image.l2_entry_offset(512 * 5), 1 << 40)
    assert not check(image.data, max_read_bytes=budget).ok


def test_a_budget_too_small_for_the_tables_fails_clearly() -> None:
    report = check(many_tables().data, max_read_bytes=4096 + 100)
    assert report.failure is not None
    assert "read budget" in report.failure


# -- (b) whatever the bytes, a report ----------------------------------------------------------------------

VALID = bytes(many_tables().data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_any_bytes_give_a_report(data: bytes) -> None:
    assert isinstance(check(data), StructureReport)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=4, max_size=200).map(lambda tail: b"QFI\xfb\x00\x00\x00\x03" + tail))
def test_any_header_after_the_magic_gives_a_report(data: bytes) -> None:
    assert isinstance(check(data), StructureReport)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, len(VALID)),
    st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=8),
)
def test_any_truncation_or_corruption_of_a_valid_image_gives_a_report(
    cut: int, flips: list[tuple[int, int]]
) -> None:
    """A cut valid image fails unless only its last data cluster's tail was cut; flipped bytes never raise."""
    data = bytearray(VALID)
    for at, value in flips:
        data[at] = value
    report = check(data[:cut])
    assert isinstance(report, StructureReport)
    if not flips and cut < len(VALID) - 4096:
        assert not report.ok


# -- (c) real images from qemu-img ---------------------------------------------------------------------------

QEMU_IMG = shutil.which("qemu-img")
if QEMU_IMG is None and os.environ.get("CI"):
    pytest.fail("qemu-img is not on PATH under CI: install qemu-utils (.ci/run does as root)", pytrace=False)
needs_qemu = pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img not on PATH (Debian package qemu-utils)")


def qemu_check(path: Path) -> subprocess.CompletedProcess[str]:
    assert QEMU_IMG is not None
    return subprocess.run(
        [QEMU_IMG, "check", str(path)], capture_output=True, text=True, check=False, timeout=60
    )


def check_file(path: Path, expected: int | None = None) -> StructureReport:
    with path.open("rb") as file:

        class FileReader:
            def read(self, offset: int, length: int) -> bytes:
                file.seek(offset)
                return file.read(length)

        return check_structure(FileReader(), path.stat().st_size, expected_virtual_size=expected)


@needs_qemu
def test_an_empty_qemu_image_passes(tmp_path: Path) -> None:
    """``qemu-img create -f qcow2 X 1G``: no L2 table allocated; qemu-img check and this agree it is fine."""
    assert QEMU_IMG is not None
    image = tmp_path / "empty.qcow2"
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", str(image), "1G"], check=True, timeout=60)
    assert qemu_check(image).returncode == 0
    report = check_file(image, expected=GIB)
    assert report.ok, report.failure
    assert (report.l2_tables_total, report.cluster_size) == (0, 65536)


@needs_qemu
def test_a_converted_image_passes_and_its_truncation_fails_as_qemu_says(tmp_path: Path) -> None:
    """``qemu-img convert`` of a raw disk with data passes; truncated, qemu-img check finds clusters
    "exceeding the end of the file" and this check fails calling it truncated."""
    assert QEMU_IMG is not None
    raw = tmp_path / "disk.raw"
    with raw.open("wb") as file:
        file.truncate(1 * GIB)
        for at in range(0, GIB, 96 * MIB):  # scattered data: several L2 tables' worth of offsets
            file.seek(at)
            file.write(os.urandom(256 * 1024))
    image = tmp_path / "disk.qcow2"
    subprocess.run([QEMU_IMG, "convert", "-O", "qcow2", str(raw), str(image)], check=True, timeout=120)
    assert qemu_check(image).returncode == 0
    report = check_file(image, expected=GIB)
    assert report.ok, report.failure
    assert report.l2_tables_checked == report.l2_tables_total >= 1

    size = image.stat().st_size
    os.truncate(image, size // 2)
    qemu = qemu_check(image)
    assert qemu.returncode != 0
    assert "exceeding the end of the file" in qemu.stdout + qemu.stderr
    report = check_file(image, expected=GIB)
    assert not report.ok
    assert report.failure is not None
    assert "truncated" in report.failure
    assert report.l2_tables_total >= 1


@needs_qemu
def test_the_builders_images_are_valid_to_qemu(tmp_path: Path) -> None:
    """The hand-built images the tests above damage are themselves ones qemu-img check accepts."""
    for image in (many_tables(), build_qcow2(extended_l2=True), build_qcow2(compressed={3: b"b" * 3000})):
        path = tmp_path / "built.qcow2"
        path.write_bytes(image.data)
        assert qemu_check(path).returncode == 0
        assert check_file(path).ok
