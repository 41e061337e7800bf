"""The qcow2 files the emulator's exports write, generated range by range, never held whole.

A file is qcow2 version 3 with 64 KiB clusters, no backing file and no encryption (docs/facts.md §13), of the
image's virtual size, laid out by cluster::

    0              header (104 bytes, then zeros: no header extension)
    1              refcount table (one cluster; entry 0 names the refcount block)
    2              refcount block (16-bit refcounts: every cluster of the file counts 1)
    3 …            L1 table (``ceil(virtual size / 512 MiB)`` entries; one cluster up to 4 TiB)
    then           two L2 tables: L1 entry 0 and the last L1 entry (one when the L1 has a single entry)
    then           16 data clusters: 12 at the guest's first clusters, 4 at the start of the last table's range

so a 40 GiB image is 22 clusters, 1,441,792 bytes: a little over the 1 MiB under which the function calls a
system object implausibly small. A data cluster holds a 256-byte pattern that depends on its ordinal,
repeated. ``qemu-img check`` finds no error in it and neither does the function's own check
(``handler.core.qcow2.check_structure``).

A ``Damage`` spoils the file in one way, each tripping one check the function makes:

- ``truncated``: the file ends before its last three data clusters (they lie past the end);
- ``garbage``: the header cluster holds data instead (the magic is wrong: not qcow2);
- ``wrong_virtual_size``: the header says 1 GiB more than the image's size (the file is otherwise sound);
- ``l2_past_end``: the last L1 entry names an L2 table past the end of the file;
- ``data_past_end``: the last L2 table's last allocated entry names a data cluster past the end;
- ``dirty``: version 3's dirty bit is set (incompatible feature bit 0);
- ``encrypted``: ``crypt_method`` is 1 (AES);
- ``tiny``: a sound file with two data clusters, 8 clusters (512 KiB): under the 1 MiB a system disk needs.

The metadata clusters of a layout (without their trailing zeros) are built once and cached (``qcow2_layout``: one per virtual size and
damage, whatever the number of images sharing it); data clusters are computed on each read. The CRC-64 and
MD5 of the content are computed on first use and kept with the layout.
"""

from __future__ import annotations

import functools
import hashlib
import struct
import threading
from typing import Final, Literal, get_args

from exporter_tools.emulator.object_store import crc64_ecma

__all__ = ["CLUSTER_SIZE", "DAMAGES", "Damage", "Qcow2Layout", "qcow2_layout"]

Damage = Literal[
    "truncated", "garbage", "wrong_virtual_size", "l2_past_end", "data_past_end", "dirty", "encrypted", "tiny"
]
DAMAGES: Final[tuple[str, ...]] = get_args(Damage)

CLUSTER_BITS: Final = 16
CLUSTER_SIZE: Final = 1 << CLUSTER_BITS
_L2_ENTRIES: Final = CLUSTER_SIZE // 8
_GUEST_PER_L2: Final = CLUSTER_SIZE * _L2_ENTRIES  # 512 MiB of guest space per L2 table
_REFCOUNT_ORDER: Final = 4  # 16-bit refcounts
_REFCOUNTS_PER_BLOCK: Final = CLUSTER_SIZE * 8 // (1 << _REFCOUNT_ORDER)
_COPIED: Final = 1 << 63  # refcount exactly one: set on every L1 and L2 entry of a file without snapshots
_DATA_CLUSTERS: Final = 16
_TINY_DATA_CLUSTERS: Final = 2
_FIRST_TABLE_SHARE: Final = 12  # of the data clusters, those mapped by L1 entry 0's table
_TRUNCATED_CLUSTERS: Final = 3
_PAST_END: Final = 64 * CLUSTER_SIZE  # how far past the end a damaged entry points
_GIB: Final = 1 << 30
_HASH_CHUNK: Final = 1 << 20


class Qcow2Layout:
    """One generated qcow2 file: its ``length`` and the bytes of any range (``read``)."""

    def __init__(self, virtual_size: int, damage: Damage | None = None) -> None:
        if virtual_size <= 0:
            msg = f"the virtual size must be positive, not {virtual_size}"
            raise ValueError(msg)
        self.virtual_size = virtual_size
        self.damage = damage
        stated = virtual_size + _GIB if damage == "wrong_virtual_size" else virtual_size
        self.l1_size = -(-stated // _GUEST_PER_L2)
        l1_clusters = -(-self.l1_size * 8 // CLUSTER_SIZE)
        tables = [0] if self.l1_size == 1 else [0, self.l1_size - 1]
        data_count = _TINY_DATA_CLUSTERS if damage == "tiny" else _DATA_CLUSTERS
        first_share = data_count if len(tables) == 1 else min(_FIRST_TABLE_SHARE, data_count - 1)
        self._l1_cluster = 3
        self._first_l2_cluster = self._l1_cluster + l1_clusters
        self._first_data_cluster = self._first_l2_cluster + len(tables)
        self.clusters = self._first_data_cluster + data_count
        if (
            self.clusters > _REFCOUNTS_PER_BLOCK
        ):  # a virtual size of petabytes: one refcount block is not enough
            msg = f"a virtual size of {virtual_size} bytes needs more than one refcount block"
            raise ValueError(msg)
        full_length = self.clusters * CLUSTER_SIZE
        self.length = (
            full_length - _TRUNCATED_CLUSTERS * CLUSTER_SIZE if damage == "truncated" else full_length
        )
        # guest cluster → data cluster ordinal, per L2 table (by L1 index)
        mapped: dict[int, list[int]] = {tables[0]: list(range(first_share))}
        if len(tables) > 1:
            mapped[tables[1]] = list(range(data_count - first_share))
        self._metadata = self._build_metadata(stated, tables, mapped, full_length)
        self._hash_lock = threading.Lock()
        self._hashed: tuple[int, str] | None = None  # CRC-64, MD5

    def _build_metadata(
        self, stated: int, tables: list[int], mapped: dict[int, list[int]], full_length: int
    ) -> dict[int, bytes]:
        """Every cluster but the data ones, by cluster index, without their trailing zeros (most of each is
        zeros: a layout keeps a few KiB, not 384 KiB)."""
        header = bytearray(CLUSTER_SIZE)
        struct.pack_into(
            ">4sIQIIQIIQQIIQ",
            header,
            0,
            b"QFI\xfb",
            3,
            0,  # no backing file
            0,
            CLUSTER_BITS,
            stated,
            1 if self.damage == "encrypted" else 0,
            self.l1_size,
            self._l1_cluster * CLUSTER_SIZE,
            CLUSTER_SIZE,  # the refcount table is cluster 1
            1,
            0,  # no snapshots
            0,
        )
        struct.pack_into(">QQQII", header, 72, 1 if self.damage == "dirty" else 0, 0, 0, _REFCOUNT_ORDER, 104)
        out: dict[int, bytes] = {0: self._data_cluster(0xFF) if self.damage == "garbage" else bytes(header)}
        out[1] = struct.pack(">Q", 2 * CLUSTER_SIZE).ljust(CLUSTER_SIZE, b"\0")
        out[2] = struct.pack(f">{self.clusters}H", *([1] * self.clusters)).ljust(CLUSTER_SIZE, b"\0")
        l1 = bytearray(self._first_l2_cluster * CLUSTER_SIZE - self._l1_cluster * CLUSTER_SIZE)
        ordinal = 0
        for position, l1_index in enumerate(tables):
            table_cluster = self._first_l2_cluster + position
            table_offset = table_cluster * CLUSTER_SIZE
            if self.damage == "l2_past_end" and position == len(tables) - 1:
                table_offset = full_length + _PAST_END
            struct.pack_into(">Q", l1, l1_index * 8, table_offset | _COPIED)
            l2 = bytearray(CLUSTER_SIZE)
            entries = mapped[l1_index]
            for entry, _ in enumerate(entries):
                host = (self._first_data_cluster + ordinal) * CLUSTER_SIZE
                if (
                    self.damage == "data_past_end"
                    and position == len(tables) - 1
                    and entry == len(entries) - 1
                ):
                    host = full_length + _PAST_END
                struct.pack_into(">Q", l2, entry * 8, host | _COPIED)
                ordinal += 1
            out[table_cluster] = bytes(l2)
        for index in range(self._first_l2_cluster - self._l1_cluster):
            out[self._l1_cluster + index] = bytes(l1[index * CLUSTER_SIZE : (index + 1) * CLUSTER_SIZE])
        return {index: cluster.rstrip(b"\0") for index, cluster in out.items()}

    @staticmethod
    def _data_cluster(ordinal: int) -> bytes:
        return bytes((ordinal * 37 + i) & 0xFF for i in range(256)) * (CLUSTER_SIZE // 256)

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset``; fewer at the end of the file."""
        stop = min(self.length, offset + length)
        pieces: list[bytes] = []
        position = max(offset, 0)
        while position < stop:
            index, within = divmod(position, CLUSTER_SIZE)
            take = min(CLUSTER_SIZE - within, stop - position)
            held = self._metadata.get(index)
            if held is None:
                pieces.append(self._data_cluster(index - self._first_data_cluster)[within : within + take])
            else:  # a metadata cluster is kept without its trailing zeros
                pieces.append(held[within : within + take].ljust(take, b"\0"))
            position += take
        return b"".join(pieces)

    @property
    def crc64(self) -> int:
        """CRC-64/ECMA of the whole file (computed once)."""
        return self._hashes()[0]

    @property
    def md5_hex(self) -> str:
        """MD5 of the whole file, hex (computed once)."""
        return self._hashes()[1]

    def _hashes(self) -> tuple[int, str]:
        with self._hash_lock:
            if self._hashed is not None:
                return self._hashed
            crc, md5 = 0, hashlib.md5(usedforsecurity=False)
            for start in range(0, self.length, _HASH_CHUNK):
                chunk = self.read(start, _HASH_CHUNK)
                crc = crc64_ecma(chunk, crc)
                md5.update(chunk)
            self._hashed = (crc, md5.hexdigest())
            return self._hashed


@functools.lru_cache(maxsize=64)
def qcow2_layout(virtual_size: int, damage: Damage | None = None) -> Qcow2Layout:
    """The layout for ``virtual_size`` and ``damage``, shared by every object that has them."""
    return Qcow2Layout(virtual_size, damage)
