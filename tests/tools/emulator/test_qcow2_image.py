"""The qcow2 files the emulator's exports write: sound to the function's structure check and to
``qemu-img check``, of the image's virtual size, a little over 1 MiB, and the same bytes however they are
read."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter_tools.emulator.object_store import crc64_ecma
from exporter_tools.emulator.qcow2_image import CLUSTER_SIZE, Qcow2Layout, qcow2_layout
from handler.core.qcow2 import BytesReader, check_structure
from handler.core.verification import MIN_SYSTEM_OBJECT_BYTES
from tests.support.qemu_img import needs_qemu, qemu_check

GIB = 1 << 30
SIZES = [1, 20, 40, 500, 2048, 8192]


def whole(layout: Qcow2Layout) -> bytes:
    return layout.read(0, layout.length)


@pytest.mark.parametrize("size_gb", SIZES)
def test_a_generated_file_passes_the_functions_check(size_gb: int) -> None:
    """The file is qcow2 of the image's virtual size, every table and cluster inside it, over 1 MiB and
    at most a few MiB."""
    layout = qcow2_layout(size_gb * GIB)
    data = whole(layout)
    report = check_structure(BytesReader(data), len(data), expected_virtual_size=size_gb * GIB)
    assert report.ok, report.failure
    assert report.cluster_size == CLUSTER_SIZE
    assert report.l2_tables_checked == report.l2_tables_total == 2
    assert MIN_SYSTEM_OBJECT_BYTES < len(data) <= 4 * 1024 * 1024


@needs_qemu
@pytest.mark.parametrize("size_gb", SIZES)
def test_a_generated_file_passes_qemu_img_check(size_gb: int, tmp_path: Path) -> None:
    """``qemu-img check`` finds no error, leak or corruption in the file."""
    path = tmp_path / "disk.qcow2"
    path.write_bytes(whole(qcow2_layout(size_gb * GIB)))
    checked = qemu_check(path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "No errors were found" in checked.stdout


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, 104), (CLUSTER_SIZE - 10, 20), (5 * CLUSTER_SIZE + 7, 3 * CLUSTER_SIZE), (-5, 10), (10**9, 5)],
)
def test_any_range_reads_the_same_bytes_as_the_whole_file(offset: int, length: int) -> None:
    """A range is the slice of the whole file (clipped at its ends), wherever it falls across clusters."""
    layout = qcow2_layout(40 * GIB)
    data = whole(layout)
    start = max(offset, 0)
    assert layout.read(offset, length) == data[start : max(offset + length, 0)]


def test_the_hashes_are_of_the_content_and_layouts_are_shared() -> None:
    """The CRC-64 is of the bytes; images of one size share a layout, different sizes differ."""
    layout = qcow2_layout(40 * GIB)
    assert layout.crc64 == crc64_ecma(whole(layout))
    assert qcow2_layout(40 * GIB) is layout
    assert qcow2_layout(20 * GIB).md5_hex != layout.md5_hex


def test_a_nonpositive_virtual_size_is_refused() -> None:
    """A layout needs a virtual size."""
    with pytest.raises(ValueError, match="positive"):
        Qcow2Layout(0)
