"""The qcow2 structure check, pure (docs/contract.md, "The export's objects, its verification and its manifest").

:func:`check_structure` reads a qcow2 object through a :class:`RangeReader` (a ranged GET in the TOS adapter,
a bytes buffer or a file in tests) and says whether its header is one the exporter accepts and whether the L1
table, the refcount table, every refcount block, every allocated L2 table and every allocated data cluster
those tables name lie inside the object: a truncated or garbage upload fails with a message naming the check.
The layout is QEMU's ``docs/interop/qcow2.rst`` (docs/facts.md §13); all numbers are big-endian.

What it reads is bounded (``max_read_bytes``, 64 MiB by default): the header, the L1 table and the refcount
table in one read each, then each L2 table in one read. Every L2 table's position is checked from the L1
table; when reading all of them would pass the budget, an evenly spread, deterministic sample of them is read
and the report says so (``sampled``). Whatever the bytes, the answer is a :class:`StructureReport`: a hostile
header never raises, and no read or allocation is larger than the object or the budget. Errors from the
reader itself (the network) are the adapter's and pass through.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final, Protocol

__all__ = [
    "DEFAULT_MAX_READ_BYTES",
    "MAGIC",
    "BytesReader",
    "RangeReader",
    "StructureReport",
    "check_structure",
]

MAGIC: Final = b"QFI\xfb"
DEFAULT_MAX_READ_BYTES: Final = 64 * 1024 * 1024

# What the first read takes: more than any header QEMU writes (104 bytes plus extensions), so one read
# covers it; the header length a version 3 file states is checked against what was read.
_HEADER_READ: Final = 4096
_V2_HEADER_LENGTH: Final = 72
_V3_HEADER_LENGTH: Final = 104
_MIN_CLUSTER_BITS: Final = 9
_MAX_CLUSTER_BITS: Final = 21
# QEMU's own limits (block/qcow2.h): a larger L1 or refcount table is refused when QEMU opens the file.
_MAX_L1_BYTES: Final = 32 * 1024 * 1024
_MAX_REFTABLE_BYTES: Final = 8 * 1024 * 1024
_MAX_REFCOUNT_ORDER: Final = 6

# Version 3's incompatible feature bits (docs/facts.md §13).
_DIRTY: Final = 1 << 0
_CORRUPT: Final = 1 << 1
_EXTERNAL_DATA_FILE: Final = 1 << 2
_COMPRESSION_TYPE: Final = 1 << 3
_EXTENDED_L2: Final = 1 << 4
_KNOWN_INCOMPATIBLE: Final = _DIRTY | _CORRUPT | _EXTERNAL_DATA_FILE | _COMPRESSION_TYPE | _EXTENDED_L2

# Bits 9-55: the offset of an L2 table (in an L1 entry), of a refcount block (in the refcount table, whose
# entries use bits 9-63) or of an uncompressed data cluster (in an L2 entry).
_OFFSET_MASK: Final = 0x00FF_FFFF_FFFF_FE00
_REFTABLE_OFFSET_MASK: Final = 0xFFFF_FFFF_FFFF_FE00
_COMPRESSED: Final = 1 << 62


class RangeReader(Protocol):
    """An object read by ranges: ``length`` bytes from ``offset``; fewer at the end of the object."""

    def read(self, offset: int, length: int) -> bytes: ...


@dataclass(frozen=True, slots=True)
class BytesReader:
    """A :class:`RangeReader` over bytes already in memory (tests, and small objects)."""

    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self.data[offset : offset + length])


@dataclass(frozen=True, slots=True)
class StructureReport:
    """What the check found. ``failure`` names the check that failed (None when ``ok``); the sizes are None
    when the header was never read that far; ``bytes_read`` and ``reads`` are what the check cost."""

    ok: bool
    failure: str | None
    virtual_size: int | None
    cluster_size: int | None
    l2_tables_checked: int
    l2_tables_total: int
    sampled: bool
    bytes_read: int
    reads: int


class _Failed(Exception):
    """A check failed; internal, always turned into a report."""


@dataclass(frozen=True, slots=True)
class _Header:
    version: int
    cluster_bits: int
    virtual_size: int
    l1_size: int
    l1_table_offset: int
    refcount_table_offset: int
    refcount_table_clusters: int
    extended_l2: bool

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits

    @property
    def l2_entry_bytes(self) -> int:
        return 16 if self.extended_l2 else 8

    @property
    def l2_entries(self) -> int:
        return self.cluster_size // self.l2_entry_bytes


class _Budget:
    """Counts what the check reads and refuses a read past the object's end or the budget."""

    def __init__(self, reader: RangeReader, size: int, max_read_bytes: int) -> None:
        self._reader = reader
        self.size = size
        self.remaining = max_read_bytes
        self.bytes_read = 0
        self.reads = 0

    def read(self, offset: int, length: int, what: str) -> bytes:
        if offset + length > self.size:
            raise _Failed(
                f"{what} at offset {offset:#x} ({length} bytes) lies past the end of the object "
                f"(size {self.size}): the object is truncated"
            )
        if length > self.remaining:
            raise _Failed(
                f"{what} ({length} bytes) would pass the read budget ({self.remaining} bytes left): "
                "the object cannot be checked within it"
            )
        data = self._reader.read(offset, length)
        self.reads += 1
        self.bytes_read += len(data)
        self.remaining -= len(data)
        if len(data) != length:
            raise _Failed(
                f"{what} at offset {offset:#x}: {len(data)} of {length} bytes could be read "
                f"(object size {self.size}): the object is truncated"
            )
        return data


@dataclass
class _Progress:
    """What the report says even when a check fails midway."""

    virtual_size: int | None = None
    cluster_size: int | None = None
    l2_tables_checked: int = 0
    l2_tables_total: int = 0
    sampled: bool = False


def check_structure(
    reader: RangeReader,
    size: int,
    *,
    expected_virtual_size: int | None,
    max_read_bytes: int = DEFAULT_MAX_READ_BYTES,
) -> StructureReport:
    """Check the qcow2 object of ``size`` bytes behind ``reader``, reading at most ``max_read_bytes``; its
    virtual size must be ``expected_virtual_size`` when one is given."""
    budget = _Budget(reader, size, max_read_bytes)
    progress = _Progress()
    failure: str | None = None
    try:
        _check(budget, progress, expected_virtual_size)
    except _Failed as failed:
        failure = str(failed)
    return StructureReport(
        ok=failure is None,
        failure=failure,
        virtual_size=progress.virtual_size,
        cluster_size=progress.cluster_size,
        l2_tables_checked=progress.l2_tables_checked,
        l2_tables_total=progress.l2_tables_total,
        sampled=progress.sampled,
        bytes_read=budget.bytes_read,
        reads=budget.reads,
    )


def _check(budget: _Budget, progress: _Progress, expected_virtual_size: int | None) -> None:
    header = _read_header(budget)
    progress.virtual_size = header.virtual_size
    progress.cluster_size = header.cluster_size
    if expected_virtual_size is not None and header.virtual_size != expected_virtual_size:
        raise _Failed(
            f"virtual size: the header says {header.virtual_size} bytes, the image is "
            f"{expected_virtual_size} bytes"
        )
    _check_refcount_table(budget, header)
    l2_offsets = _l2_table_offsets(budget, header, progress)
    chosen = _sample(len(l2_offsets), budget.remaining // header.cluster_size)
    progress.sampled = len(chosen) < len(l2_offsets)
    for index in chosen:
        l1_index, offset = l2_offsets[index]
        table = budget.read(offset, header.cluster_size, f"L2 table {l1_index}")
        _check_l2_table(table, l1_index, header, budget.size)
        progress.l2_tables_checked += 1


def _read_header(budget: _Budget) -> _Header:
    data = budget.read(0, min(budget.size, _HEADER_READ), "header") if budget.size else b""
    if data[:4] != MAGIC:
        raise _Failed(f"not a qcow2 file: magic {data[:4]!r}, expected {MAGIC!r}")
    version = int.from_bytes(data[4:8]) if len(data) >= 8 else 0
    if version not in (2, 3):
        raise _Failed(f"header: qcow2 version {version} is not 2 or 3")
    header_length = _V2_HEADER_LENGTH if version == 2 else _V3_HEADER_LENGTH
    if len(data) < header_length:
        raise _Failed(
            f"header: the object (size {budget.size}) is shorter than a version {version} header "
            f"({header_length} bytes): the object is truncated"
        )
    (_, _, backing_offset, backing_size, cluster_bits, virtual_size, crypt_method, l1_size, l1_offset) = (
        struct.unpack_from(">4sIQIIQIIQ", data)
    )
    refcount_offset, refcount_clusters, nb_snapshots, snapshots_offset = struct.unpack_from(">QIIQ", data, 48)
    if not _MIN_CLUSTER_BITS <= cluster_bits <= _MAX_CLUSTER_BITS:
        raise _Failed(
            f"header: cluster_bits {cluster_bits} is outside {_MIN_CLUSTER_BITS} to {_MAX_CLUSTER_BITS}"
        )
    if crypt_method != 0:
        raise _Failed(f"header: the image is encrypted (crypt_method {crypt_method})")
    extended_l2 = False
    if version == 3:
        extended_l2 = _check_v3_fields(data, budget.size, 1 << cluster_bits)
    cluster_size = 1 << cluster_bits
    if backing_offset and backing_offset + backing_size > budget.size:
        raise _Failed(f"header: the backing file name at {backing_offset:#x} lies past the end of the object")
    if nb_snapshots and snapshots_offset >= budget.size:
        raise _Failed(
            f"header: the snapshot table at offset {snapshots_offset:#x} lies past the end of the object "
            f"(size {budget.size}): the object is truncated"
        )
    for name, offset in (("L1 table", l1_offset), ("refcount table", refcount_offset)):
        if offset % cluster_size:
            raise _Failed(f"header: the {name} offset {offset:#x} is not aligned to a cluster")
    return _Header(
        version=version,
        cluster_bits=cluster_bits,
        virtual_size=virtual_size,
        l1_size=l1_size,
        l1_table_offset=l1_offset,
        refcount_table_offset=refcount_offset,
        refcount_table_clusters=refcount_clusters,
        extended_l2=extended_l2,
    )


def _check_v3_fields(data: bytes, size: int, cluster_size: int) -> bool:
    """Refuse what version 3's feature bits and lengths forbid; whether L2 entries are extended (128 bits)."""
    incompatible, _, _, refcount_order, header_length = struct.unpack_from(">QQQII", data, 72)
    for bit, meaning in (
        (_DIRTY, "dirty (it was not closed cleanly: its refcounts may be wrong)"),
        (_CORRUPT, "corrupt (QEMU found it inconsistent)"),
        (_EXTERNAL_DATA_FILE, "stored in an external data file (the object holds no data)"),
    ):
        if incompatible & bit:
            raise _Failed(f"header: the image is marked {meaning}")
    if incompatible & ~_KNOWN_INCOMPATIBLE:
        raise _Failed(f"header: unknown incompatible features {incompatible & ~_KNOWN_INCOMPATIBLE:#x}")
    if refcount_order > _MAX_REFCOUNT_ORDER:
        raise _Failed(f"header: refcount_order {refcount_order} is above {_MAX_REFCOUNT_ORDER}")
    if header_length < _V3_HEADER_LENGTH or header_length > min(cluster_size, len(data), size):
        raise _Failed(
            f"header: header_length {header_length} is outside {_V3_HEADER_LENGTH} to "
            f"{min(cluster_size, len(data), size)} bytes"
        )
    return bool(incompatible & _EXTENDED_L2)


def _check_refcount_table(budget: _Budget, header: _Header) -> None:
    """The refcount table lies inside the object, and so does every refcount block it names."""
    if header.refcount_table_clusters == 0:
        raise _Failed("header: the image has no refcount table (refcount_table_clusters 0)")
    length = header.refcount_table_clusters * header.cluster_size
    if length > _MAX_REFTABLE_BYTES:
        raise _Failed(f"header: the refcount table ({length} bytes) is larger than QEMU allows")
    table = budget.read(header.refcount_table_offset, length, "refcount table")
    for index, entry in enumerate(struct.unpack(f">{length // 8}Q", table)):
        offset = entry & _REFTABLE_OFFSET_MASK
        if offset % header.cluster_size:
            raise _Failed(f"refcount block {index} at offset {offset:#x} is not aligned to a cluster")
        if offset and offset + header.cluster_size > budget.size:
            raise _Failed(
                f"refcount block {index} at offset {offset:#x} lies past the end of the object "
                f"(size {budget.size}): the object is truncated"
            )


def _l2_table_offsets(budget: _Budget, header: _Header, progress: _Progress) -> list[tuple[int, int]]:
    """Read the L1 table (its entries the virtual size needs) and check where each allocated L2 table lies:
    (L1 index, offset) of each."""
    guest_per_l2 = header.cluster_size * header.l2_entries
    needed = -(-header.virtual_size // guest_per_l2)
    if header.l1_size < needed:
        raise _Failed(
            f"header: l1_size {header.l1_size} is too small for the virtual size "
            f"{header.virtual_size} (it needs {needed} entries)"
        )
    if header.l1_size * 8 > _MAX_L1_BYTES:
        raise _Failed(f"header: l1_size {header.l1_size} is larger than QEMU allows")
    if header.l1_table_offset + header.l1_size * 8 > budget.size:
        raise _Failed(
            f"L1 table at offset {header.l1_table_offset:#x} ({header.l1_size} entries) lies past the end "
            f"of the object (size {budget.size}): the object is truncated"
        )
    # Entries past what the virtual size needs map nothing a guest reads: only the needed ones are read.
    table = budget.read(header.l1_table_offset, needed * 8, "L1 table") if needed else b""
    entries = struct.unpack(f">{needed}Q", table)
    offsets = [(index, entry & _OFFSET_MASK) for index, entry in enumerate(entries) if entry & _OFFSET_MASK]
    progress.l2_tables_total = len(offsets)
    for index, offset in offsets:
        if offset % header.cluster_size:
            raise _Failed(f"L2 table {index} at offset {offset:#x} is not aligned to a cluster")
        if offset + header.cluster_size > budget.size:
            raise _Failed(
                f"L2 table {index} at offset {offset:#x} lies past the end of the object "
                f"(size {budget.size}): the object is truncated"
            )
    return offsets


def _sample(total: int, affordable: int) -> list[int]:
    """All of ``range(total)`` when it is affordable, else ``affordable`` indices spread evenly over it."""
    if affordable >= total:
        return list(range(total))
    return [i * total // affordable for i in range(max(affordable, 0))]


def _check_l2_table(table: bytes, l1_index: int, header: _Header, size: int) -> None:
    """Every allocated data cluster the L2 table names starts inside the object (as ``qemu-img check``
    counts it) and, uncompressed, is aligned to a cluster."""
    # A compressed entry keeps its host offset in the low 62 - (cluster_bits - 8) bits.
    compressed_mask = (1 << (62 - (header.cluster_bits - 8))) - 1
    step = header.l2_entry_bytes // 8
    entries = struct.unpack(f">{len(table) // 8}Q", table)[::step]
    for index, entry in enumerate(entries):
        if not entry:
            continue
        compressed = bool(entry & _COMPRESSED)
        offset = entry & compressed_mask if compressed else entry & _OFFSET_MASK
        if not offset:
            continue
        kind = "compressed cluster" if compressed else "data cluster"
        if offset >= size:
            guest = (l1_index * header.l2_entries + index) * header.cluster_size
            raise _Failed(
                f"{kind} at guest offset {guest:#x} (L2 table {l1_index}, entry {index}) has host offset "
                f"{offset:#x}, past the end of the object (size {size}): the object is truncated"
            )
        if not compressed and offset % header.cluster_size:
            raise _Failed(
                f"data cluster (L2 table {l1_index}, entry {index}) at host offset {offset:#x} is not "
                "aligned to a cluster"
            )
