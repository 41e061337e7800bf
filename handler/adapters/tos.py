"""The TOS client: the signed object and bucket requests the function makes (docs/facts.md §11 and §15).

Every request goes through the one sending engine (``handler.adapters.signed.SignedSender``): retries, the
deadline, TOS's own rate limiter (never the ECS one), secret masking, and a stated cap on every answer
read. Each request here has the same effect however often it lands (a PutObject sends the same bytes to
the same key), so each is sent again on any retryable failure. Nothing is sent or built at import.

- HeadObject answers one of three records (``handler.models.objects``): :class:`ObjectFound` (size, CRC-64,
  ETag, Last-Modified), :class:`ObjectMissing` (404) or :class:`ObjectUnreadable` (403: the function's role
  may not read the bucket, so the export could not be verified; never a failed export).
- ListObjectsV2 reads every page (at most ``MAX_LIST_PAGES``, each at most ``MAX_LISTING_BYTES``) into an
  :class:`ObjectListing`, or :class:`ObjectUnreadable` on a 403. A listing that does not end, repeats a
  continuation token, or names a key outside the prefix asked for is a ``MalformedResponse``: such a server
  is not answering the question asked, and dropping what it said would hide that.
- GetObject reads one byte range and never more of the body than the range (:class:`ObjectRangeReader`
  binds it to one object and one deadline for the qcow2 check); PutObject writes a small body (at most
  ``MAX_PUT_BYTES``); DeleteObject removes a key (204 whether or not it existed); HeadBucket gives the
  bucket's region.

Any other answer is a typed ``ApiError`` (``handler.errors.api_error_for``): a 404 without a code is
``NoSuchKey`` for a read and ``NoSuchBucket`` otherwise; a 403 ``AccessDenied`` (or a 403 without a code) on
GetObject, PutObject, DeleteObject or HeadBucket is ``TosAccessDenied.<Action>``, whose fix names the
permission to grant.

Addressing is virtual-hosted (``<bucket>.<host>/<key>``), or path-style (``<host>/<bucket>/<key>``, and
``<host>/<bucket>/`` for a bucket's own requests) for an IP or ``localhost`` endpoint.

:func:`tos_sender` is how every TOS request is sent (this client's, and the deploy tool's bucket-lifecycle
requests, which never run in the function); :func:`answer_error`, :func:`answer_code` and
:func:`tos_request_id` read an answer as this client does.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from handler.adapters.exchange import Answer
from handler.adapters.exchange import http_date as _http_date
from handler.adapters.pacing import RateLimiter, RateLimiters
from handler.adapters.retry import RetryPolicy, parse_retry_after
from handler.adapters.signed import Mask, SignedSender
from handler.adapters.signing import Credentials, canonical_query, fixed_secrets
from handler.adapters.tos_signing import TosSigner, encode_key_path
from handler.clock import SYSTEM_CLOCK, Clock
from handler.errors import ApiError, MalformedResponse, api_error_for, error_for
from handler.models.objects import (
    LIST_UNREADABLE_REASON,
    UNREADABLE_REASON,
    BucketInfo,
    HeadResult,
    ListedObject,
    ListResult,
    ObjectFound,
    ObjectListing,
    ObjectMissing,
    ObjectUnreadable,
    PutResult,
)
from handler.models.settings import BUCKET_PATTERN, default_tos_endpoint

__all__ = [
    "DELETE_OBJECT",
    "GET_OBJECT",
    "HEAD_BUCKET",
    "HEAD_OBJECT",
    "LIST_OBJECTS",
    "MAX_LISTING_BYTES",
    "MAX_LIST_KEYS",
    "MAX_LIST_PAGES",
    "MAX_PUT_BYTES",
    "PUT_OBJECT",
    "BucketInfo",
    "HeadResult",
    "ListResult",
    "ListedObject",
    "ObjectFound",
    "ObjectListing",
    "ObjectMissing",
    "ObjectUnreadable",
    "PutResult",
    "TosClient",
    "answer_code",
    "answer_error",
    "bucket_url",
    "default_tos_endpoint",
    "object_url",
    "reset_tos_rate_limiter",
    "shared_tos_rate_limiter",
    "tos_request_id",
    "tos_sender",
    "uses_path_style",
]

HEAD_OBJECT = "HeadObject"
LIST_OBJECTS = "ListObjectsV2"
GET_OBJECT = "GetObject"
PUT_OBJECT = "PutObject"
DELETE_OBJECT = "DeleteObject"
HEAD_BUCKET = "HeadBucket"
# A HEAD answer has no body; an error answer's body is read up to this much (TOS's error documents are small).
MAX_ANSWER_BYTES = 64 * 1024
# A page of 1000 keys is about 400 KiB of JSON; a page larger than this is not read.
MAX_LISTING_BYTES = 4 * 1024 * 1024
MAX_LIST_KEYS = 1000
# The most pages a listing reads: 20 000 keys at 1000 a page. A listing that goes on is malformed.
MAX_LIST_PAGES = 20
# The largest body PutObject sends: the function writes small objects (manifests), in one request.
MAX_PUT_BYTES = 5 * 1024 * 1024
MAX_MESSAGE_CHARS = 500

# What a 403 AccessDenied (or a 403 without a code: a HEAD's) becomes for each action that raises on it.
_DENIED = {
    GET_OBJECT: "TosAccessDenied.GetObject",
    PUT_OBJECT: "TosAccessDenied.PutObject",
    DELETE_OBJECT: "TosAccessDenied.DeleteObject",
    HEAD_BUCKET: "TosAccessDenied.HeadBucket",
}
_CONTENT_RANGE = re.compile(r"\A\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*\Z")

_limiters = RateLimiters()


def shared_tos_rate_limiter(max_rps: float) -> RateLimiter:
    """The process's TOS rate limiter for this rate: separate from the OpenAPI ones, shared by all calls."""
    return _limiters.get(max_rps)


def reset_tos_rate_limiter() -> None:
    """Forget the process's TOS rate limiters (tests; a long-lived host reloading)."""
    _limiters.clear()


def uses_path_style(host: str) -> bool:
    """True for an IP address or ``localhost``: such an endpoint takes ``/<bucket>/<key>`` paths, like S3."""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def object_url(endpoint: str, bucket: str, key: str) -> str:
    """The URL of an object: ``<scheme>://<bucket>.<host>/<key>``, or ``<scheme>://<host>/<bucket>/<key>``
    for an IP or ``localhost`` endpoint. The key is encoded as TOS signs it."""
    parts = urlsplit(endpoint)
    if uses_path_style(parts.hostname or ""):
        return f"{parts.scheme}://{parts.netloc}{encode_key_path(f'/{bucket}/{key}')}"
    return f"{parts.scheme}://{bucket}.{parts.netloc}{encode_key_path(f'/{key}')}"


def bucket_url(endpoint: str, bucket: str, query: Mapping[str, str] | None = None) -> str:
    """The URL of a bucket's own requests: ``<scheme>://<bucket>.<host>/``, or ``<scheme>://<host>/<bucket>/``
    for an IP or ``localhost`` endpoint, with ``query`` encoded exactly as it is signed."""
    parts = urlsplit(endpoint)
    if uses_path_style(parts.hostname or ""):
        base = f"{parts.scheme}://{parts.netloc}/{bucket}/"
    else:
        base = f"{parts.scheme}://{bucket}.{parts.netloc}/"
    return f"{base}?{canonical_query(query)}" if query else base


def tos_sender(
    *,
    http: httpx.Client,
    region: str,
    credentials: Credentials | Callable[[], Credentials],
    policy: RetryPolicy,
    limiter: RateLimiter,
    clock: Clock = SYSTEM_CLOCK,
) -> SignedSender:
    """The one sending engine of TOS requests: signed ``TOS4-HMAC-SHA256``, paced by ``limiter``, retried
    under ``policy``, logged as ``tos.call`` with the ``tos_request_id``, secrets masked."""
    return SignedSender(
        http=http,
        auth=TosSigner(credentials, region=region, clock=clock.now),
        limiter=limiter,
        policy=policy,
        known_secrets=lambda: fixed_secrets(credentials),
        log="tos",
        request_id_field="tos_request_id",
        variable="TOS_ENDPOINT",
        session_header="x-tos-security-token",
        clock=clock,
    )


@dataclass(frozen=True, slots=True)
class _Page:
    """One ListObjectsV2 page: its objects, the token of the next page (None: the last), its Date."""

    objects: tuple[ListedObject, ...]
    next_token: str | None
    server_time: datetime | None
    request_id: str | None


class TosClient:
    """Signed TOS requests with retries, a deadline and TOS's own rate limiter.

    ``endpoint`` is scheme + host[:port] (``TOS_ENDPOINT``); ``deadline`` on each call is a
    ``clock.monotonic()`` value, the last moment a request may be sent. A bucket that is not 3-63 lowercase
    letters, digits or hyphens, or a key that is empty or has a ``.`` or ``..`` segment, is refused before
    anything is sent (``InvalidBucketName``, ``InvalidObjectName``).
    """

    def __init__(
        self,
        *,
        http: httpx.Client,
        endpoint: str,
        region: str,
        credentials: Credentials | Callable[[], Credentials],
        policy: RetryPolicy,
        limiter: RateLimiter,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._sender = tos_sender(
            http=http, region=region, credentials=credentials, policy=policy, limiter=limiter, clock=clock
        )

    def head_object(self, bucket: str, key: str, *, deadline: float) -> HeadResult:
        """Look ``key`` up in ``bucket``: found, missing (404) or unreadable (403); else a typed error."""
        _check_object(bucket, key, HEAD_OBJECT)
        return self._sender.send(
            HEAD_OBJECT,
            "HEAD",
            object_url(self._endpoint, bucket, key),
            deadline=deadline,
            idempotent=True,
            read=lambda answer, mask: (_head_result(answer, bucket, key, mask=mask), _request_id(answer)),
            max_bytes=MAX_ANSWER_BYTES,
        )

    def list_objects(
        self,
        bucket: str,
        prefix: str,
        *,
        deadline: float,
        max_keys: int = MAX_LIST_KEYS,
        max_pages: int | None = None,
    ) -> ListResult:
        """Every object in ``bucket`` whose key starts with ``prefix`` (ListObjectsV2, ``max_keys`` a page,
        every page), or :class:`ObjectUnreadable` (its ``key`` the prefix) when TOS answers 403. ``max_pages``:
        stop after that many pages, the listing then not ``complete`` when more were to come.

        ``MalformedResponse`` when the paging does not end within ``MAX_LIST_PAGES`` pages, a continuation
        token comes back twice, a page names a key outside ``prefix`` or cannot be read; a 404 is
        ``NoSuchBucket`` (``BucketNotFound``)."""
        _check_bucket(bucket, LIST_OBJECTS)
        if not 1 <= max_keys <= MAX_LIST_KEYS:
            msg = f"max_keys must be 1-{MAX_LIST_KEYS}, got {max_keys}"
            raise ValueError(msg)
        objects: list[ListedObject] = []
        sent: set[str] = set()
        token: str | None = None
        for number in range(1, MAX_LIST_PAGES + 1):
            query = {"list-type": "2", "prefix": prefix, "max-keys": str(max_keys)}
            if token is not None:
                query["continuation-token"] = token
            page = self._sender.send(
                LIST_OBJECTS,
                "GET",
                bucket_url(self._endpoint, bucket, query),
                deadline=deadline,
                idempotent=True,
                read=lambda answer, mask: (_list_page(answer, bucket, prefix, mask), _request_id(answer)),
                max_bytes=MAX_LISTING_BYTES,
            )
            if isinstance(page, ObjectUnreadable):
                return page
            objects.extend(page.objects)
            if page.next_token is None:
                return ObjectListing(bucket, prefix, tuple(objects), page.server_time, page.request_id)
            if max_pages is not None and number >= max_pages:
                return ObjectListing(
                    bucket, prefix, tuple(objects), page.server_time, page.request_id, complete=False
                )
            if page.next_token in sent:
                msg = "ListObjectsV2 answered a continuation token it had answered before: the paging loops"
                raise MalformedResponse(msg, request_id=page.request_id, action=LIST_OBJECTS)
            token = page.next_token
            sent.add(token)
        msg = f"ListObjectsV2 paging did not end within {MAX_LIST_PAGES} pages of {max_keys} keys"
        raise MalformedResponse(msg, action=LIST_OBJECTS)

    def get_range(self, bucket: str, key: str, start: int, length: int, *, deadline: float) -> bytes:
        """``length`` bytes of ``key`` from byte ``start`` (GetObject, ``Range: bytes=start-end``); fewer only
        when the answer's ``Content-Range`` says the object ends there. At most ``length`` bytes of the body
        are read: a 206 whose Content-Range is not the range asked, a body of another length, or a 200 (the
        whole object, left unread) is a ``MalformedResponse``. A 416 is ``InvalidRange``
        (``RangeNotSatisfiable``), a 404 ``NoSuchKey`` (``ObjectNotFound``) unless TOS names another code, a
        403 ``TosAccessDenied.GetObject``."""
        _check_object(bucket, key, GET_OBJECT)
        if start < 0 or length < 1:
            msg = f"a range starts at 0 or later and holds at least a byte, got start {start} length {length}"
            raise ValueError(msg)
        end = start + length - 1

        def limit(status: int) -> int:
            # A 206 is read to the range; a 200 (the whole object) not at all; an error to its document.
            if status == 206:
                return length
            return 0 if status < 300 else MAX_ANSWER_BYTES

        return self._sender.send(
            GET_OBJECT,
            "GET",
            object_url(self._endpoint, bucket, key),
            deadline=deadline,
            idempotent=True,
            read=lambda answer, mask: (_range_body(answer, start, end, mask), _request_id(answer)),
            max_bytes=limit,
            headers={"Range": f"bytes={start}-{end}"},
        )

    def put_object(
        self, bucket: str, key: str, body: bytes, *, content_type: str, deadline: float
    ) -> PutResult:
        """Write ``body`` (at most ``MAX_PUT_BYTES``, else ``ObjectTooLarge`` with nothing sent) to ``key``
        with ``content_type`` (signed): the ETag and CRC-64 TOS stored. Sending the same body again is safe,
        so a lost answer is resent. A 403 is ``TosAccessDenied.PutObject``, a 404 ``NoSuchBucket``."""
        _check_object(bucket, key, PUT_OBJECT)
        if len(body) > MAX_PUT_BYTES:
            msg = f"key {key[:60]!r}: {len(body)} bytes is more than the {MAX_PUT_BYTES} one PutObject sends"
            raise error_for("ObjectTooLarge", msg, action=PUT_OBJECT)
        if not content_type.strip():
            msg = "content_type: expected a media type such as application/json, got ''"
            raise ValueError(msg)
        return self._sender.send(
            PUT_OBJECT,
            "PUT",
            object_url(self._endpoint, bucket, key),
            deadline=deadline,
            idempotent=True,
            read=lambda answer, mask: (_put_result(answer, mask), _request_id(answer)),
            max_bytes=MAX_ANSWER_BYTES,
            content=body,
            headers={"Content-Type": content_type},
        )

    def delete_object(self, bucket: str, key: str, *, deadline: float) -> None:
        """Remove ``key`` from ``bucket``: done when TOS answers 204, also for a key that did not exist. A 403
        is ``TosAccessDenied.DeleteObject``, a 404 ``NoSuchBucket``."""
        _check_object(bucket, key, DELETE_OBJECT)
        self._sender.send(
            DELETE_OBJECT,
            "DELETE",
            object_url(self._endpoint, bucket, key),
            deadline=deadline,
            idempotent=True,
            read=_deleted,
            max_bytes=MAX_ANSWER_BYTES,
        )

    def head_bucket(self, bucket: str, *, deadline: float) -> BucketInfo:
        """The bucket's region (``x-tos-bucket-region``, required), default storage class and the server's
        time. A 404 is ``NoSuchBucket`` (``BucketNotFound``), a 403 ``TosAccessDenied.HeadBucket``."""
        _check_bucket(bucket, HEAD_BUCKET)
        return self._sender.send(
            HEAD_BUCKET,
            "HEAD",
            bucket_url(self._endpoint, bucket),
            deadline=deadline,
            idempotent=True,
            read=lambda answer, mask: (_bucket_info(answer, mask), _request_id(answer)),
            max_bytes=MAX_ANSWER_BYTES,
        )


def _check_bucket(bucket: str, action: str) -> None:
    if not BUCKET_PATTERN.match(bucket):
        msg = f"bucket {bucket!r}: expected 3-63 lowercase letters, digits or hyphens"
        raise error_for("InvalidBucketName", msg, action=action)


def _check_object(bucket: str, key: str, action: str) -> None:
    _check_bucket(bucket, action)
    if not key:
        msg = "key: expected the object's name, got ''"
        raise error_for("InvalidObjectName", msg, action=action)
    if any(segment in (".", "..") for segment in key.split("/")):
        # An HTTP client resolves dot segments in a path, so the request would name another object.
        msg = f"key {key[:60]!r}: a '.' or '..' path segment cannot be sent as it is"
        raise error_for("InvalidObjectName", msg, action=action)


def _request_id(answer: Answer) -> str | None:
    request_id: str | None = answer.headers.get("x-tos-request-id")
    return request_id


def tos_request_id(answer: Answer) -> str | None:
    """The request id TOS gave an answer (``x-tos-request-id``), if any."""
    return _request_id(answer)


def answer_error(answer: Answer, mask: Mask, action: str, *, missing: str | None = None) -> ApiError:
    """The typed error a TOS error answer stands for, read as this client reads its own (``_error_for``): the
    JSON body's ``Code``, else ``missing`` for a 404; the message masked and cut."""
    return _error_for(answer, mask, action, missing=missing)


def _malformed(answer: Answer, action: str, what: str) -> MalformedResponse:
    msg = f"{action} answered {what}"
    return MalformedResponse(msg, http_status=answer.status, request_id=_request_id(answer), action=action)


def _head_result(answer: Answer, bucket: str, key: str, *, mask: Mask) -> HeadResult:
    """The record a HeadObject answer stands for, or the typed error it describes (its message masked)."""
    status = answer.status
    request_id = _request_id(answer)
    if status == 404:
        return ObjectMissing(bucket, key, request_id)
    if status == 403:
        return ObjectUnreadable(bucket, key, UNREADABLE_REASON, request_id)
    if status >= 300:
        raise _error_for(answer, mask, HEAD_OBJECT)
    try:
        size = int(answer.headers.get("content-length", ""))
    except ValueError:
        size = -1
    if size < 0:
        raise _malformed(answer, HEAD_OBJECT, "without a valid Content-Length")
    return ObjectFound(
        bucket=bucket,
        key=key,
        size_bytes=size,
        crc64=_crc64(answer.headers.get("x-tos-hash-crc64ecma")),
        etag=_etag(answer.headers.get("etag")),
        last_modified=_http_date(answer.headers.get("last-modified")),
        request_id=request_id,
    )


def _list_page(answer: Answer, bucket: str, prefix: str, mask: Mask) -> _Page | ObjectUnreadable:
    """One ListObjectsV2 page, :class:`ObjectUnreadable` for a 403 denial, or the typed error it describes."""
    if answer.status == 403 and _error_code(answer) in (None, "AccessDenied"):
        return ObjectUnreadable(bucket, prefix, LIST_UNREADABLE_REASON, _request_id(answer))
    if answer.status >= 300:
        raise _error_for(answer, mask, LIST_OBJECTS, missing="NoSuchBucket")
    if answer.status != 200:
        raise _malformed(answer, LIST_OBJECTS, f"HTTP {answer.status} where a listing was expected")
    if not answer.complete:
        raise _malformed(
            answer, LIST_OBJECTS, f"a page larger than {MAX_LISTING_BYTES} bytes (or compressed)"
        )
    try:
        document = json.loads(answer.body)
    except (ValueError, RecursionError):
        document = None
    if not isinstance(document, dict):
        raise _malformed(answer, LIST_OBJECTS, "a page that is not a JSON object")
    contents = document.get("Contents") or []
    if not isinstance(contents, list):
        raise _malformed(answer, LIST_OBJECTS, "Contents that is not a list")
    objects = tuple(_listed_object(answer, entry, prefix) for entry in contents)
    truncated = document.get("IsTruncated", False)
    if not isinstance(truncated, bool):
        raise _malformed(answer, LIST_OBJECTS, "an IsTruncated that is neither true nor false")
    token = document.get("NextContinuationToken")
    if truncated and not (isinstance(token, str) and token):
        raise _malformed(answer, LIST_OBJECTS, "IsTruncated without a NextContinuationToken")
    return _Page(
        objects=objects,
        next_token=token if truncated else None,
        server_time=_http_date(answer.headers.get("date")),
        request_id=_request_id(answer),
    )


def _listed_object(answer: Answer, entry: Any, prefix: str) -> ListedObject:
    if not isinstance(entry, dict):
        raise _malformed(answer, LIST_OBJECTS, "a Contents entry that is not an object")
    key, size = entry.get("Key"), entry.get("Size")
    if not isinstance(key, str) or not key:
        raise _malformed(answer, LIST_OBJECTS, "an entry without a Key")
    if not key.startswith(prefix):
        raise _malformed(
            answer, LIST_OBJECTS, f"key {key[:60]!r}, outside the prefix {prefix[:60]!r} asked for"
        )
    if isinstance(size, str) and size.isdigit():
        size = int(size)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _malformed(answer, LIST_OBJECTS, f"key {key[:60]!r} without a valid Size")
    crc64, etag, modified = entry.get("HashCrc64ecma"), entry.get("ETag"), entry.get("LastModified")
    return ListedObject(
        key=key,
        size_bytes=size,
        etag=_etag(etag) if isinstance(etag, str) else None,
        crc64=_crc64(str(crc64) if isinstance(crc64, int | str) and not isinstance(crc64, bool) else None),
        last_modified=_iso_date(modified) if isinstance(modified, str) else None,
    )


def _range_body(answer: Answer, start: int, end: int, mask: Mask) -> bytes:
    """The bytes a GetObject answer holds for ``bytes=start-end``, checked against its Content-Range."""
    status = answer.status
    if status >= 300:
        raise _error_for(answer, mask, GET_OBJECT, missing="NoSuchKey")
    if status == 200:
        raise _malformed(answer, GET_OBJECT, "the whole object (HTTP 200) to a ranged read: left unread")
    if status != 206:
        raise _malformed(answer, GET_OBJECT, f"HTTP {status} to a ranged read")
    content_range = answer.headers.get("content-range", "")
    match = _CONTENT_RANGE.match(content_range)
    asked = f"bytes={start}-{end}"
    if match is None:
        raise _malformed(answer, GET_OBJECT, f"Content-Range {content_range[:80]!r} to {asked}")
    first, last = int(match[1]), int(match[2])
    total = int(match[3]) if match[3] != "*" else None
    if first != start or last > end or last < first or (total is not None and last >= total):
        raise _malformed(answer, GET_OBJECT, f"Content-Range {content_range[:80]!r} to {asked}")
    if last < end and total != last + 1:
        raise _malformed(
            answer, GET_OBJECT, f"a short range {content_range[:80]!r} to {asked} before the object's end"
        )
    if answer.encoding != "identity":
        raise _malformed(answer, GET_OBJECT, f"a range encoded {answer.encoding[:40]!r}, left unread")
    if not answer.complete or len(answer.body) != last - first + 1:
        got = "more" if not answer.complete else str(len(answer.body))
        raise _malformed(answer, GET_OBJECT, f"{got} bytes for Content-Range {content_range[:80]!r}")
    return answer.body


def _put_result(answer: Answer, mask: Mask) -> PutResult:
    if answer.status >= 300:
        raise _error_for(answer, mask, PUT_OBJECT, missing="NoSuchBucket")
    if answer.status != 200:
        raise _malformed(answer, PUT_OBJECT, f"HTTP {answer.status} where 200 was expected")
    return PutResult(
        etag=_etag(answer.headers.get("etag")),
        crc64=_crc64(answer.headers.get("x-tos-hash-crc64ecma")),
        request_id=_request_id(answer),
    )


def _deleted(answer: Answer, mask: Mask) -> tuple[None, str | None]:
    if answer.status >= 300:
        raise _error_for(answer, mask, DELETE_OBJECT, missing="NoSuchBucket")
    if answer.status not in (200, 204):
        raise _malformed(answer, DELETE_OBJECT, f"HTTP {answer.status} where 204 was expected")
    return None, _request_id(answer)


def _bucket_info(answer: Answer, mask: Mask) -> BucketInfo:
    if answer.status >= 300:
        raise _error_for(answer, mask, HEAD_BUCKET, missing="NoSuchBucket")
    region = (answer.headers.get("x-tos-bucket-region") or "").strip()
    if answer.status != 200 or not region:
        raise _malformed(answer, HEAD_BUCKET, f"HTTP {answer.status} without x-tos-bucket-region")
    return BucketInfo(
        region=region,
        storage_class=answer.headers.get("x-tos-storage-class") or None,
        server_time=_http_date(answer.headers.get("date")),
        request_id=_request_id(answer),
    )


def _error_document(answer: Answer) -> dict[str, Any]:
    """An error answer's JSON body (``{"Code", "Message", "RequestId", …}``); empty when it has none."""
    try:
        body = json.loads(answer.body) if answer.body and answer.complete else None
    except (ValueError, RecursionError):
        body = None
    return body if isinstance(body, dict) else {}


def _error_code(answer: Answer) -> str | None:
    code = _error_document(answer).get("Code")
    return str(code) if code else None


def answer_code(answer: Answer) -> str | None:
    """The ``Code`` of an error answer's JSON body; None when it has none (a HEAD's)."""
    return _error_code(answer)


def _error_for(answer: Answer, mask: Mask, action: str, *, missing: str | None = None) -> ApiError:
    """A TOS error answer as a typed error: the JSON body's ``Code`` when there is one (a HEAD has none);
    without one a 404 is ``missing`` and a 416 ``InvalidRange``. A 403 denial on an action of ``_DENIED`` is
    coded by that action. The message is masked and cut to ``MAX_MESSAGE_CHARS``: a server may quote the
    request in it."""
    status = answer.status
    body = _error_document(answer)
    code = str(body.get("Code") or "") or None
    message = body.get("Message")
    if status == 403 and code in (None, "AccessDenied") and action in _DENIED:
        code = _DENIED[action]
    elif code is None and status == 404 and missing:
        code = missing
    elif code is None and status == 416:
        code = "InvalidRange"
    ec = answer.headers.get("x-tos-ec")
    text = str(message or f"TOS answered HTTP {status} {answer.reason}".rstrip())
    text = mask(f"{text} (ec {ec})" if ec else text)
    return api_error_for(
        status,
        mask(code or f"HTTP{status}")[:100],
        text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…",
        request_id=str(body.get("RequestId") or "") or _request_id(answer),
        action=action,
        retry_after=parse_retry_after(answer.headers.get("retry-after"), now=time.time()),
    )


def _etag(value: str | None) -> str | None:
    """An ETag without its quotes; None when absent or empty."""
    etag = (value or "").strip().strip('"')
    return etag or None


def _crc64(value: str | None) -> str | None:
    """TOS's CRC-64/ECMA, a decimal string; anything else is left out."""
    return value if value and value.isdigit() else None


def _iso_date(value: str) -> datetime | None:
    """A listing's LastModified (ISO 8601, ``2026-11-27T08:30:00.000Z``; an HTTP date is read too) in UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return _http_date(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
