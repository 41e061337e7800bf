"""The emulated TOS's answers, as pure functions: an object's headers, a ListObjectsV2 page, a ``Range``
header read, an error (docs/facts.md §11 and §15). ``exporter_tools.emulator.tos`` decides which to send.

Shapes the official ``tos`` SDK 2.9.3 parses, where it is stricter than the documentation: a listing's
``LastModified`` is ``%Y-%m-%dT%H:%M:%S.%fZ`` (milliseconds and ``Z``: the SDK's ``strptime`` refuses a bare
``…:SSZ`` or an offset); ``HashCrc64ecma`` is read with ``int()``, so it goes as a decimal string (a 64-bit
number does not survive every JSON parser); an ETag is quoted and the SDK strips the quotes; an error body's
``Code``, ``Message``, ``HostId``, ``Resource`` and ``EC`` are each read when present.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from exporter_tools.emulator.object_store import StoredObject

__all__ = [
    "MAX_KEYS",
    "OWNER",
    "TosReply",
    "decode_token",
    "encode_token",
    "error_reply",
    "http_date",
    "json_reply",
    "listed_time",
    "listing",
    "object_headers",
    "parse_range",
]

MAX_KEYS = 1000  # ListObjectsV2's default and cap for max-keys
OWNER = {"ID": "2100000001", "DisplayName": "2100000001"}  # the emulated account
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True, slots=True)
class TosReply:
    """The HTTP answer to one TOS request; the gateway sends it (without the body for HEAD)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""


def http_date(moment: datetime) -> str:
    """``Thu, 03 Dec 2026 18:00:00 GMT`` (``Date``, ``Last-Modified``)."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def listed_time(moment: datetime) -> str:
    """A listing's ``LastModified``: UTC to the millisecond with ``Z`` (``2026-12-03T18:00:00.000Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def object_headers(found: StoredObject, *, shift: timedelta = timedelta(0)) -> tuple[tuple[str, str], ...]:
    """What HeadObject and GetObject say of an object, whatever part of it is sent (its time as TOS's clock,
    ``shift`` from the emulator's, reports it)."""
    return (
        ("Content-Type", "application/octet-stream"),
        ("Accept-Ranges", "bytes"),
        ("ETag", found.etag),
        ("Last-Modified", http_date(found.written_at + shift)),
        ("x-tos-hash-crc64ecma", str(found.crc64)),
        ("x-tos-storage-class", found.storage_class),
    )


def parse_range(header: str, total: int) -> range | None:
    """The bytes a ``Range`` header asks of ``total`` bytes; None when there is no header or it is not one
    range of bytes (the whole object is sent, as HTTP says); an empty range when it asks nothing the object
    holds (416)."""
    matched = _RANGE.fullmatch(header.strip()) if header else None
    if matched is None or matched.group(1) == matched.group(2) == "":
        return None
    first_text, last_text = matched.groups()
    if first_text == "":  # a suffix: the last N bytes
        return range(max(total - int(last_text), 0), total)
    first = int(first_text)
    if first >= total:
        return range(0)
    last = int(last_text) if last_text else total - 1
    return None if last < first else range(first, min(last, total - 1) + 1)


def encode_token(key: str) -> str:
    """An opaque continuation token: the last key shown, base64url."""
    return base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii")


def decode_token(token: str) -> str | None:
    """The key a continuation token names; None when it is not one this emulator gave."""
    try:
        key = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeError):
        return None
    return key or None


def listing(
    bucket: str,
    *,
    prefix: str,
    max_keys: int,
    found: list[StoredObject],
    truncated: bool,
    continuation_token: str,
    start_after: str,
    shift: timedelta = timedelta(0),
) -> dict[str, Any]:
    """A ListObjectsV2 page (docs/facts.md §15); times as TOS's clock (``shift`` from the emulator's) has them."""
    page: dict[str, Any] = {
        "Name": bucket,
        "Prefix": prefix,
        "KeyCount": len(found),
        "MaxKeys": max_keys,
        "IsTruncated": truncated,
        "EncodingType": "",
        "Contents": [
            {
                "Key": item.key,
                "LastModified": listed_time(item.written_at + shift),
                "ETag": item.etag,
                "Size": item.size_bytes,
                "StorageClass": item.storage_class,
                "HashCrc64ecma": str(item.crc64),
                "Owner": OWNER,
                "Type": "Normal",
            }
            for item in found
        ],
    }
    if continuation_token:
        page["ContinuationToken"] = continuation_token
    if start_after:
        page["StartAfter"] = start_after
    if truncated and found:
        page["NextContinuationToken"] = encode_token(found[-1].key)
    return page


def json_reply(status: int, payload: Mapping[str, Any], *extra: tuple[str, str]) -> TosReply:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    headers = (("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra)
    return TosReply(status, headers, body)


def error_reply(
    status: int, code: str, message: str, *, request_id: str, resource: str, method: str
) -> TosReply:
    """An error: the JSON body ``{"Code", "Message", "RequestId", "HostId", "Resource", "EC"}`` with the
    ``x-tos-ec`` header; to a HEAD, the headers alone and no body length."""
    ec = f"0000-{status:08d}"  # the EC of each case is not known; the shape is TOS's
    extra = (("x-tos-ec", ec),)  # the service adds Date and x-tos-request-id to every answer
    if method == "HEAD":
        return TosReply(status, (*extra, ("Content-Length", "0")))
    payload = {
        "Code": code,
        "Message": message,
        "RequestId": request_id,
        "HostId": "tos-emulator",
        "Resource": resource,
        "EC": ec,
    }
    return json_reply(status, payload, *extra)
