"""The emulated TOS buckets' objects, indexed: per bucket a dict key → writes and a sorted key list.

An object is known before it exists: an export task's object is recorded when the task is created, stamped
with the moment the task will end, and is present from that moment on. So each key holds its writes in time
order (a deletion is a write of nothing), and the object present at ``now`` is the key's latest write at or
before ``now``; of two writes at the same moment the one recorded later wins. A lookup is a dict access and
a short scan of that key's writes; a prefix listing bisects the sorted key list and walks one page. Nothing
here is computed per request from every task, so 20,000 exported images cost no more per request than one.
"""

from __future__ import annotations

import bisect
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

__all__ = ["BytesContent", "ObjectContent", "ObjectStore", "StoredObject", "crc64_ecma"]

_CRC64_ECMA_REFLECTED = 0xC96C5795D7870F42
_CRC64_TABLE: list[int] = []


def crc64_ecma(data: bytes, crc: int = 0) -> int:
    """CRC-64/ECMA as TOS reports it (``x-tos-hash-crc64ecma``): reflected, init and xorout all ones.
    ``crc`` is the value over the bytes before ``data``, so a long content can be hashed in pieces."""
    if not _CRC64_TABLE:
        for byte in range(256):
            value = byte
            for _ in range(8):
                value = (value >> 1) ^ _CRC64_ECMA_REFLECTED if value & 1 else value >> 1
            _CRC64_TABLE.append(value)
    crc ^= 0xFFFFFFFFFFFFFFFF
    table = _CRC64_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


class ObjectContent(Protocol):
    """What an object holds: its length, the bytes of any range, and its hashes (of the whole content)."""

    @property
    def length(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes: ...

    @property
    def crc64(self) -> int: ...

    @property
    def md5_hex(self) -> str: ...


class BytesContent:
    """Content held as bytes (an object put through TOS); its hashes are computed once, when it is made."""

    __slots__ = ("crc64", "data", "md5_hex")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.crc64 = crc64_ecma(data)
        self.md5_hex = hashlib.md5(data, usedforsecurity=False).hexdigest()

    @property
    def length(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[max(offset, 0) : max(offset, 0) + length]


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object in a bucket: where, what it holds, when it was written."""

    bucket: str
    key: str
    content: ObjectContent
    written_at: datetime
    storage_class: str = "STANDARD"

    @property
    def size_bytes(self) -> int:
        return self.content.length

    @property
    def crc64(self) -> int:
        return self.content.crc64

    @property
    def etag(self) -> str:
        """The content's MD5, quoted, as TOS writes an ETag of an object put in one piece."""
        return '"' + self.content.md5_hex + '"'


@dataclass(frozen=True, slots=True)
class _Write:
    at: datetime
    found: StoredObject | None  # None: the key was deleted at ``at``
    exported: bool  # written by an export task (kept by ``forget_changes``)


@dataclass(slots=True)
class _Bucket:
    keys: list[str] = field(default_factory=list)  # sorted; every key with a write, present or not
    writes: dict[str, list[_Write]] = field(default_factory=dict)  # by key, in time order


class ObjectStore:
    """Every bucket's objects over time. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def write(self, found: StoredObject, *, exported: bool = False) -> None:
        """Record ``found`` as written at its ``written_at`` (which may still be to come)."""
        self._record(found.bucket, found.key, _Write(found.written_at, found, exported))

    def delete(self, bucket: str, key: str, at: datetime) -> None:
        """Record that the key is deleted at ``at``: absent from then until a later write."""
        self._record(bucket, key, _Write(at, None, exported=False))

    def get(self, bucket: str, key: str, now: datetime) -> StoredObject | None:
        """The object under ``key`` at ``now``, if any."""
        with self._lock:
            held = self._buckets.get(bucket)
            writes = held.writes.get(key) if held is not None else None
            return _current(writes, now) if writes else None

    def listing(
        self, bucket: str, *, prefix: str, after: str, limit: int, now: datetime
    ) -> tuple[list[StoredObject], bool]:
        """Up to ``limit`` objects present at ``now`` whose keys start with ``prefix`` and sort after
        ``after``, in key order, and whether more follow."""
        found: list[StoredObject] = []
        with self._lock:
            held = self._buckets.get(bucket)
            if held is None:
                return [], False
            keys = held.keys
            start = max(bisect.bisect_left(keys, prefix), bisect.bisect_right(keys, after) if after else 0)
            for key in _keys_from(keys, start, prefix):
                present = _current(held.writes[key], now)
                if present is None:
                    continue
                if len(found) == limit:
                    return found, True
                found.append(present)
        return found, False

    def present(self, now: datetime) -> list[StoredObject]:
        """Every object present at ``now``, by bucket and key (for inspection: walks everything)."""
        with self._lock:
            listed = [
                _current(held.writes[key], now)
                for _, held in sorted(self._buckets.items())
                for key in held.keys
            ]
        return [found for found in listed if found is not None]

    def exported(self, now: datetime) -> dict[tuple[str, str], StoredObject]:
        """The latest object each key's export tasks have written by ``now``, deletions aside."""
        out: dict[tuple[str, str], StoredObject] = {}
        with self._lock:
            for held in self._buckets.values():
                for key, writes in held.writes.items():
                    done = [w.found for w in writes if w.exported and w.at <= now and w.found is not None]
                    if done:
                        out[(done[-1].bucket, key)] = done[-1]
        return out

    def deletions(self) -> int:
        """How many deletions were recorded."""
        with self._lock:
            return sum(
                w.found is None for held in self._buckets.values() for ws in held.writes.values() for w in ws
            )

    def forget_changes(self) -> None:
        """Drop every write but the export tasks' (objects put, deletions)."""
        with self._lock:
            for held in self._buckets.values():
                for key in list(held.writes):
                    kept = [w for w in held.writes[key] if w.exported]
                    if kept:
                        held.writes[key] = kept
                    else:
                        del held.writes[key]
                held.keys = sorted(held.writes)

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()

    def _record(self, bucket: str, key: str, write: _Write) -> None:
        with self._lock:
            held = self._buckets.setdefault(bucket, _Bucket())
            writes = held.writes.get(key)
            if writes is None:
                held.writes[key] = [write]
                bisect.insort(held.keys, key)
                return
            at = len(writes)
            while at and writes[at - 1].at > write.at:  # usually appended: writes arrive in time order
                at -= 1
            writes.insert(at, write)


def _current(writes: list[_Write], now: datetime) -> StoredObject | None:
    for write in reversed(writes):
        if write.at <= now:
            return write.found
    return None


def _keys_from(keys: list[str], start: int, prefix: str) -> Iterator[str]:
    for index in range(start, len(keys)):
        key = keys[index]
        if not key.startswith(prefix):
            return
        yield key
