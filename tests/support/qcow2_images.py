"""A builder of small, valid qcow2 images (docs/facts.md §13), so a test of the structure check says only
what it breaks: ``build_qcow2()`` lays out one header cluster, the refcount table, one refcount block, the L1
table, the L2 tables and the data clusters, with refcounts right (``qemu-img check`` accepts it), and
returns the bytes with where each part went."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

__all__ = ["Qcow2Image", "build_qcow2", "set_u32", "set_u64"]

MIB = 1024 * 1024
_COMPRESSED = 1 << 62
_COPIED = 1 << 63


@dataclass
class Qcow2Image:
    """The image's bytes and where the builder put each part (host offsets)."""

    data: bytearray
    cluster_bits: int
    l1_table_offset: int
    refcount_table_offset: int
    l2_offsets: dict[int, int] = field(default_factory=dict)  # L1 index → L2 table offset
    data_offsets: dict[int, int] = field(default_factory=dict)  # guest cluster → host offset

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits

    def l2_entry_offset(self, guest_cluster: int, *, extended: bool = False) -> int:
        """Where the L2 entry of ``guest_cluster`` sits in the file."""
        per_table = self.cluster_size // (16 if extended else 8)
        table = self.l2_offsets[guest_cluster // per_table]
        return table + (guest_cluster % per_table) * (16 if extended else 8)


def set_u64(data: bytearray, offset: int, value: int) -> None:
    struct.pack_into(">Q", data, offset, value)


def set_u32(data: bytearray, offset: int, value: int) -> None:
    struct.pack_into(">I", data, offset, value)


def build_qcow2(
    *,
    virtual_size: int = 64 * MIB,
    cluster_bits: int = 16,
    clusters: dict[int, bytes] | None = None,
    compressed: dict[int, bytes] | None = None,
    incompatible_features: int = 0,
    extended_l2: bool = False,
) -> Qcow2Image:
    """A version 3 image of ``virtual_size`` whose guest clusters ``clusters`` (index → content) are
    allocated, and ``compressed`` ones stored deflated; by default three clusters, two L2 tables apart
    when the virtual size allows."""
    cluster_size = 1 << cluster_bits
    entry_bytes = 16 if extended_l2 else 8
    per_l2 = cluster_size // entry_bytes
    if clusters is None:
        last = virtual_size // cluster_size - 1
        clusters = {0: b"boot" * 16, 1: b"\x01" * cluster_size, last: b"tail"}
    compressed = compressed or {}
    features = incompatible_features | ((1 << 4) if extended_l2 else 0)
    l1_size = -(-virtual_size // (cluster_size * per_l2))
    l1_clusters = max(1, -(-l1_size * 8 // cluster_size))

    # Clusters: 0 header, 1 refcount table, 2 refcount block, then the L1 table, the L2 tables, the data.
    next_cluster = 3 + l1_clusters
    l1_offset = 3 * cluster_size
    image = Qcow2Image(bytearray(), cluster_bits, l1_offset, cluster_size)
    for guest in sorted({*clusters, *compressed}):
        if guest // per_l2 not in image.l2_offsets:
            image.l2_offsets[guest // per_l2] = next_cluster * cluster_size
            next_cluster += 1
    payloads: dict[int, bytes] = {}
    for guest in sorted(clusters):
        image.data_offsets[guest] = next_cluster * cluster_size
        payloads[guest] = clusters[guest][:cluster_size].ljust(cluster_size, b"\0")
        next_cluster += 1
    for guest in sorted(compressed):
        deflate = zlib.compressobj(9, zlib.DEFLATED, -12)
        packed = deflate.compress(compressed[guest].ljust(cluster_size, b"\0")) + deflate.flush()
        assert len(packed) <= cluster_size, "compressed content must fit in one cluster"
        image.data_offsets[guest] = next_cluster * cluster_size
        payloads[guest] = packed
        next_cluster += 1
    assert next_cluster <= cluster_size // 2, "one refcount block (16-bit refcounts) must cover the image"

    data = bytearray(next_cluster * cluster_size)
    struct.pack_into(">4sIQIIQIIQQIIQ", data, 0, b"QFI\xfb", 3, 0, 0, cluster_bits, virtual_size, 0,
                     l1_size, l1_offset, cluster_size, 1, 0, 0)  # fmt: skip
    struct.pack_into(">QQQII", data, 72, features, 0, 0, 4, 104)
    set_u64(data, cluster_size, 2 * cluster_size)  # refcount table → the one refcount block
    for index in range(next_cluster):
        struct.pack_into(">H", data, 2 * cluster_size + 2 * index, 1)
    for l1_index, offset in image.l2_offsets.items():
        set_u64(data, l1_offset + 8 * l1_index, offset | _COPIED)
    for guest, content in payloads.items():
        host = image.data_offsets[guest]
        data[host : host + len(content)] = content
        if guest in compressed:
            sectors = (len(content) - 1) // 512  # additional 512-byte sectors past the first
            entry = _COMPRESSED | (sectors << (62 - (cluster_bits - 8))) | host
        else:
            entry = _COPIED | host
        set_u64(data, image.l2_entry_offset(guest, extended=extended_l2), entry)
        if extended_l2 and guest not in compressed:  # every subcluster of it allocated
            set_u64(data, image.l2_entry_offset(guest, extended=True) + 8, 0xFFFF_FFFF)
    image.data = data
    return image
