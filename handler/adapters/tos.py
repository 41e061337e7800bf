"""The TOS client: a signed HeadObject, to check that an export's object is there (docs/facts.md §11).

HeadObject answers one of three records (``handler.models.objects``): :class:`ObjectFound` (size, CRC-64,
ETag, Last-Modified), :class:`ObjectMissing` (404) or :class:`ObjectUnreadable` (403: the function's role
may not read the bucket, so the export could not be verified; never a failed export). Any other answer is a typed ``ApiError``
(``handler.errors.api_error_for``). Retries, the deadline and the rate limiter work as in the OpenAPI
client; the limiter is TOS's own, never the ECS one. Nothing is sent or built at import.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx

from handler.adapters.exchange import Answer
from handler.adapters.pacing import RateLimiter, RateLimiters
from handler.adapters.retry import RetryPolicy, parse_retry_after
from handler.adapters.signed import Mask, SignedSender
from handler.adapters.signing import Credentials, fixed_secrets
from handler.adapters.tos_signing import TosSigner, encode_key_path
from handler.clock import SYSTEM_CLOCK, Clock
from handler.errors import ApiError, MalformedResponse, api_error_for, error_for
from handler.models.objects import (
    UNREADABLE_REASON,
    HeadResult,
    ObjectFound,
    ObjectMissing,
    ObjectUnreadable,
)
from handler.models.settings import BUCKET_PATTERN, default_tos_endpoint

__all__ = [
    "HEAD_OBJECT",
    "HeadResult",
    "ObjectFound",
    "ObjectMissing",
    "ObjectUnreadable",
    "TosClient",
    "default_tos_endpoint",
    "object_url",
    "reset_tos_rate_limiter",
    "shared_tos_rate_limiter",
    "uses_path_style",
]

HEAD_OBJECT = "HeadObject"
# A HEAD answer has no body; an error answer's body is read up to this much (TOS's error documents are small).
MAX_ANSWER_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 500

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


class TosClient:
    """Signed HeadObject requests with retries, a deadline and TOS's own rate limiter.

    ``endpoint`` is scheme + host[:port] (``TOS_ENDPOINT``); ``deadline`` on each call is a
    ``clock.monotonic()`` value, the last moment a request may be sent.
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
        self._sender = SignedSender(
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

    def head_object(self, bucket: str, key: str, *, deadline: float) -> HeadResult:
        """Look ``key`` up in ``bucket``: found, missing (404) or unreadable (403); else a typed error."""
        if not BUCKET_PATTERN.match(bucket):
            msg = f"bucket {bucket!r}: expected 3-63 lowercase letters, digits or hyphens"
            raise error_for("InvalidBucketName", msg, action=HEAD_OBJECT)
        if not key:
            msg = "key: expected the object's name, got ''"
            raise error_for("InvalidObjectName", msg, action=HEAD_OBJECT)
        if any(segment in (".", "..") for segment in key.split("/")):
            # An HTTP client resolves dot segments in a path, so the request would name another object.
            msg = f"key {key[:60]!r}: a '.' or '..' path segment cannot be sent as it is"
            raise error_for("InvalidObjectName", msg, action=HEAD_OBJECT)
        return self._sender.send(
            HEAD_OBJECT,
            "HEAD",
            object_url(self._endpoint, bucket, key),
            deadline=deadline,
            idempotent=True,
            read=lambda answer, mask: (_head_result(answer, bucket, key, mask=mask), _request_id(answer)),
            max_bytes=MAX_ANSWER_BYTES,
        )


def _request_id(answer: Answer) -> str | None:
    request_id: str | None = answer.headers.get("x-tos-request-id")
    return request_id


def _head_result(answer: Answer, bucket: str, key: str, *, mask: Mask) -> HeadResult:
    """The record a HeadObject answer stands for, or the typed error it describes (its message masked)."""
    status = answer.status
    request_id = answer.headers.get("x-tos-request-id")
    if status == 404:
        return ObjectMissing(bucket, key, request_id)
    if status == 403:
        return ObjectUnreadable(bucket, key, UNREADABLE_REASON, request_id)
    if status >= 300:
        raise _error_for(answer, request_id, mask)
    try:
        size = int(answer.headers.get("content-length", ""))
    except ValueError:
        size = -1
    if size < 0:
        msg = "HeadObject answered without a valid Content-Length"
        raise MalformedResponse(msg, http_status=status, request_id=request_id, action=HEAD_OBJECT)
    crc64 = answer.headers.get("x-tos-hash-crc64ecma")
    etag = answer.headers.get("etag")
    return ObjectFound(
        bucket=bucket,
        key=key,
        size_bytes=size,
        crc64=crc64 if crc64 and crc64.isdigit() else None,
        etag=etag.strip('"') if etag else None,
        last_modified=_http_date(answer.headers.get("last-modified")),
        request_id=request_id,
    )


def _error_for(answer: Answer, request_id: str | None, mask: Mask) -> ApiError:
    """A TOS error answer as a typed error: the JSON body's ``Code`` when there is one (a HEAD has none).
    The message is masked and cut to ``MAX_MESSAGE_CHARS``: a server may quote the request in it."""
    status = answer.status
    try:
        body = json.loads(answer.body) if answer.body and answer.complete else None
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        body = {}
    code, message = body.get("Code"), body.get("Message")
    ec = answer.headers.get("x-tos-ec")
    text = str(message or f"TOS answered HTTP {status} {answer.reason}".rstrip())
    text = mask(f"{text} (ec {ec})" if ec else text)
    return api_error_for(
        status,
        mask(str(code or f"HTTP{status}"))[:100],
        text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…",
        request_id=str(body.get("RequestId") or "") or request_id,
        action=HEAD_OBJECT,
        retry_after=parse_retry_after(answer.headers.get("retry-after"), now=time.time()),
    )


def _http_date(value: str | None) -> datetime | None:
    """An HTTP date (``Tue, 24 Nov 2026 08:30:00 GMT``) as an aware UTC datetime; None when absent or odd."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
