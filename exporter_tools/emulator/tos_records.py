"""What the emulator's TOS side served, by kind of request and by object: what a benchmark reads its cost from.

Every signed request is counted under one kind, whatever its answer: ``list`` (ListObjectsV2), ``ranged GET``
(GetObject with a ``Range``), ``GET`` (a whole object), ``PUT``, ``HEAD`` (HeadObject and HeadBucket) or
``other`` (DeleteObject, and anything the emulator refuses to understand). The body bytes of every GetObject
answered 200 or 206 are added to its object's total: the bytes a client read.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["REQUEST_KINDS", "TosRecords", "request_kind"]

REQUEST_KINDS: Final = ("list", "ranged GET", "GET", "PUT", "HEAD", "other")


def request_kind(method: str, *, key: str, query: Mapping[str, str], headers: Mapping[str, str]) -> str:
    """The kind a request counts under (one of ``REQUEST_KINDS``)."""
    if method == "GET" and not key:
        return "list" if query.get("list-type") == "2" else "other"
    if method == "GET":
        return "ranged GET" if headers.get("range") else "GET"
    if method in ("PUT", "HEAD"):
        return method
    return "other"


class TosRecords:
    """Requests by kind and the bytes read from each object, since the start or the last ``reset``.
    Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kinds: Counter[str] = Counter()
        self._read: Counter[tuple[str, str]] = Counter()

    def count(self, kind: str, *, bucket: str = "", key: str = "", body_bytes: int = 0) -> None:
        """One request of ``kind``; ``body_bytes`` of ``bucket``/``key`` were sent back to be read."""
        with self._lock:
            self._kinds[kind] += 1
            if body_bytes:
                self._read[(bucket, key)] += body_bytes

    def bytes_read_by_object(self) -> dict[tuple[str, str], int]:
        """The body bytes GetObject sent, by (bucket, key)."""
        with self._lock:
            return dict(self._read)

    def stats(self) -> dict[str, Any]:
        """Requests by kind (every kind, zeros included) and the body bytes read in all."""
        with self._lock:
            return {
                "kinds": {kind: self._kinds[kind] for kind in REQUEST_KINDS},
                "bytes_read": sum(self._read.values()),
            }

    def reset(self) -> None:
        with self._lock:
            self._kinds.clear()
            self._read.clear()
