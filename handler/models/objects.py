"""What TOS answered, typed: the records the TOS adapter builds and the core reads.

HeadObject answers the object found, missing (404), or unreadable (403); ListObjectsV2 a listing (or
unreadable, 403); HeadBucket the bucket's region; PutObject what was stored. Plain records shared by the TOS
adapter, which builds them, and the decisions in ``handler.core``, which read them.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime

from handler.errors import TosAccessDenied

__all__ = [
    "LIST_UNREADABLE_REASON",
    "UNREADABLE_REASON",
    "BucketInfo",
    "HeadResult",
    "ListResult",
    "ListedObject",
    "ObjectFound",
    "ObjectListing",
    "ObjectMissing",
    "ObjectUnreadable",
    "PutResult",
]

UNREADABLE_REASON = (
    "TOS refused to show the object (HTTP 403): the function's role may lack read access to the bucket's "
    "objects, so the export could not be verified"
)
LIST_UNREADABLE_REASON = (
    "TOS refused to list the bucket (HTTP 403): the function's role may lack tos:ListBucket on it, so "
    "its objects could not be verified"
)


@dataclass(frozen=True, slots=True)
class ObjectFound:
    """The object exists: its size in bytes, CRC-64/ECMA (decimal, as TOS writes it), ETag, Last-Modified."""

    bucket: str
    key: str
    size_bytes: int
    crc64: str | None
    etag: str | None
    last_modified: datetime | None
    request_id: str | None


@dataclass(frozen=True, slots=True)
class ObjectMissing:
    """TOS answered 404: no object under this key."""

    bucket: str
    key: str
    request_id: str | None


@dataclass(frozen=True, slots=True)
class ObjectUnreadable:
    """TOS answered 403: whether the object exists could not be verified (never a failed export). For a
    listing, ``key`` is the prefix listed."""

    bucket: str
    key: str
    reason: str
    request_id: str | None

    def listing_refused(self) -> TosAccessDenied:
        """The error that stops a read of the whole destination (the drill's, retention's) when this was its
        listing (ListObjectsV2 answered 403)."""
        return TosAccessDenied(
            self.reason, code="TosAccessDenied.ListObjects", http_status=403, request_id=self.request_id
        )


HeadResult = ObjectFound | ObjectMissing | ObjectUnreadable


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One object of a listing: its key, size in bytes, ETag (quotes removed), CRC-64/ECMA (decimal) and
    Last-Modified; TOS may leave the last three out."""

    key: str
    size_bytes: int
    etag: str | None
    crc64: str | None
    last_modified: datetime | None


@dataclass(frozen=True, slots=True)
class ObjectListing:
    """Every object under ``prefix``, in TOS's order (by key), every page read (``complete``; False: the
    listing stopped at its page limit, and only the keys up to the last one listed are known). ``server_time``
    is the last page's ``Date`` (no object listed was modified after it), ``request_id`` that page's id."""

    bucket: str
    prefix: str
    objects: tuple[ListedObject, ...]
    server_time: datetime | None
    request_id: str | None
    complete: bool = True

    def under(self, prefix: str) -> tuple[ListedObject, ...]:
        """The objects whose key starts with ``prefix`` (found by bisection: the listing is in key order)."""
        start = bisect.bisect_left(self.objects, prefix, key=lambda o: o.key)
        end = start
        while end < len(self.objects) and self.objects[end].key.startswith(prefix):
            end += 1
        return self.objects[start:end]

    def covers(self, prefix: str) -> bool:
        """Whether every key starting with ``prefix`` is in this listing: it read to the end, or past every
        such key (TOS lists in key order)."""
        if self.complete:
            return True
        last = self.objects[-1].key if self.objects else ""
        return last > prefix and not last.startswith(prefix)


ListResult = ObjectListing | ObjectUnreadable


@dataclass(frozen=True, slots=True)
class PutResult:
    """What PutObject stored: the ETag (quotes removed) and CRC-64/ECMA (decimal) TOS answered."""

    etag: str | None
    crc64: str | None
    request_id: str | None


@dataclass(frozen=True, slots=True)
class BucketInfo:
    """What HeadBucket answered: the bucket's region (``x-tos-bucket-region``), its default storage class
    and the server's time (``Date``)."""

    region: str
    storage_class: str | None
    server_time: datetime | None
    request_id: str | None
