"""What a TOS HeadObject answered, typed: the object found, missing (404), or unreadable (403).

Plain records shared by the TOS adapter, which builds them, and the follow-up decisions in
``handler.core.tracking``, which read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["UNREADABLE_REASON", "HeadResult", "ObjectFound", "ObjectMissing", "ObjectUnreadable"]

UNREADABLE_REASON = (
    "TOS refused to show the object (HTTP 403): the function's role may lack read access to the bucket's "
    "objects, so the export could not be verified"
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
    """TOS answered 403: whether the object exists could not be verified (never a failed export)."""

    bucket: str
    key: str
    reason: str
    request_id: str | None


HeadResult = ObjectFound | ObjectMissing | ObjectUnreadable
