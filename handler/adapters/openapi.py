"""A signed Volcengine OpenAPI client: one call = sign, send, parse, classify, and retry where it is safe.

Shared by the ECS client (GET with the canonical query) and the deployment client (veFaaS: POST with a JSON
body). Sending, pacing and retrying are the signed sender's (``handler.adapters.signed``); what is left here
is the URL, the signer and how an OpenAPI answer is read.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from handler.adapters.exchange import Answer, bounded_client, http_date
from handler.adapters.log import redactor
from handler.adapters.pacing import RateLimiter, RateLimiters
from handler.adapters.retry import RetryPolicy, parse_retry_after
from handler.adapters.signed import Mask, SignedSender
from handler.adapters.signing import Credentials, VolcSigner, canonical_query
from handler.clock import SYSTEM_CLOCK, Clock
from handler.errors import ApiError, MalformedResponse, api_error_for
from handler.models.api import Probe

__all__ = [
    "MAX_ANSWER_BYTES",
    "OpenApiClient",
    "parse_response",
    "reset_shared_state",
    "shared_http_client",
    "shared_rate_limiter",
]

# The most of an answer that is read (DescribeImages pages of 100 images are the biggest, well under 1 MiB).
MAX_ANSWER_BYTES = 8 * 1024 * 1024
# An API error message is kept to this many characters (a gateway may quote a whole request in it).
MAX_MESSAGE_CHARS = 500

_lock = threading.Lock()
_http_clients: dict[tuple[float, float], httpx.Client] = {}
_limiters = RateLimiters()


def shared_http_client(*, connect_timeout: float, read_timeout: float) -> httpx.Client:
    """The process's HTTP client, built on first use and kept for warm invocations (connection reuse); each
    exchange on it is bounded by its deadline (``handler.adapters.exchange``).

    ``SSL_CERT_FILE`` is honoured (httpx reads it when the client is built)."""
    key = (connect_timeout, read_timeout)
    with _lock:
        client = _http_clients.get(key)
        if client is None or client.is_closed:
            client = bounded_client(connect_timeout=connect_timeout, read_timeout=read_timeout)
            _http_clients[key] = client
        return client


def shared_rate_limiter(max_rps: float) -> RateLimiter:
    """The process's rate limiter for this rate: shared by all concurrent calls, remembers throttling."""
    return _limiters.get(max_rps)


def reset_shared_state() -> None:
    """Close the process's HTTP clients and forget its rate limiters (tests; a long-lived host reloading)."""
    with _lock:
        for client in _http_clients.values():
            client.close()
        _http_clients.clear()
        _limiters.clear()


def _decode(answer: Answer, action: str) -> Any:
    """The answer's JSON document; ``None`` when it is not JSON at all; ``MalformedResponse`` when it is too
    big, compressed although identity was asked, or nested too deep to parse."""
    status = answer.status
    if answer.encoding != "identity":
        msg = f"the answer came with Content-Encoding {answer.encoding[:40]!r} although identity was asked"
        raise MalformedResponse(msg, http_status=status, action=action)
    if not answer.complete:
        msg = f"the answer is larger than {MAX_ANSWER_BYTES // (1024 * 1024)} MiB; only that much is read"
        raise MalformedResponse(msg, http_status=status, action=action)
    try:
        return json.loads(answer.body)
    except ValueError:
        return None
    except RecursionError:
        msg = "the answer's JSON nests too deep to be read"
        raise MalformedResponse(msg, http_status=status, action=action) from None


def parse_response(
    answer: Answer, action: str, *, mask: Mask = redactor.mask_text
) -> tuple[dict[str, Any], str | None]:
    """The ``Result`` and ``RequestId`` of a successful answer; else raise the typed error it describes.

    An ``Error`` inside an HTTP 200 is an error too; an answer that cannot be read (too big, too deep, or a
    success without a ``Result`` object) is a ``MalformedResponse``: something may have happened, and we
    cannot tell what. The error's message passes through ``mask`` (the request's secrets are masked: a
    gateway may quote the request) and is cut to ``MAX_MESSAGE_CHARS``."""
    body = _decode(answer, action)
    meta = body.get("ResponseMetadata") if isinstance(body, dict) else None
    request_id = meta.get("RequestId") if isinstance(meta, dict) else None
    request_id = request_id if isinstance(request_id, str) else None
    error = meta.get("Error") if isinstance(meta, dict) else None
    status = answer.status
    if isinstance(error, dict) or status >= 400:
        err = error if isinstance(error, dict) else {}
        message = mask(str(err.get("Message") or answer.reason or "no message"))
        raise api_error_for(
            status,
            mask(str(err.get("Code") or f"HTTP{status}"))[:100],
            message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 1] + "…",
            request_id=request_id,
            action=action,
            retry_after=parse_retry_after(answer.headers.get("retry-after"), now=time.time()),
        )
    result = body.get("Result") if isinstance(body, dict) else None
    if not isinstance(result, dict):
        msg = f"HTTP {status} without a Result object"
        raise MalformedResponse(msg, http_status=status, request_id=request_id, action=action)
    return result, request_id


class OpenApiClient:
    """Calls one service's actions (``Action`` and ``Version`` in the query) with signing, pacing and retries.

    Every call takes a ``deadline`` (a reading of ``clock.monotonic()``): the moment by which the call is over,
    answered or not. Waiting for the rate limiter or a backoff never runs past it; each request's connect and
    read timeouts are clipped to what is left, and the whole exchange (headers and body, however slowly they
    come) is abandoned at the deadline. A request is not sent with less than ``MIN_SEND_SECONDS`` left.
    At most ``MAX_ANSWER_BYTES`` of an answer are read. ``clock`` paces the retries and the rate limiter's
    caller; the exchange itself runs in real time.
    """

    def __init__(
        self,
        *,
        http: httpx.Client,
        endpoint: str,
        region: str,
        service: str,
        version: str,
        credentials: Credentials | Callable[[], Credentials],
        policy: RetryPolicy,
        limiter: RateLimiter,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._version = version
        auth = VolcSigner(credentials, region=region, service=service)
        self._signer = auth
        self._sender = SignedSender(
            http=http,
            auth=auth,
            limiter=limiter,
            policy=policy,
            known_secrets=auth.known_secrets,
            log="api",
            request_id_field="api_request_id",
            variable="VOLCENGINE_ENDPOINT",
            session_header="x-security-token",
            clock=clock,
        )

    def call(
        self,
        action: str,
        params: Mapping[str, str] | None = None,
        *,
        body: Mapping[str, Any] | None = None,
        deadline: float,
        idempotent: bool,
        cleared_until: float | None = None,
    ) -> tuple[dict[str, Any], str | None]:
        """Send ``action``: a GET with ``params`` in the query, or a POST of ``body`` as JSON.

        ``idempotent``: the action's effect is the same however often it lands (a read, setting a tag); it is
        then sent again on an unknown outcome too (``retry.may_resend``). ``cleared_until``: no attempt goes
        out after this ``clock.monotonic()`` reading (``SignedSender.send``). Returns the answer's ``Result``
        and ``RequestId``; raises a typed ``ApiError``, ``BudgetExhausted`` or ``ClearanceExpired``.
        """
        query = canonical_query({"Action": action, "Version": self._version, **(params or {})})
        content = None if body is None else json.dumps(body, ensure_ascii=False, sort_keys=True).encode()

        def read(answer: Answer, mask: Mask) -> tuple[tuple[dict[str, Any], str | None], str | None]:
            result, request_id = parse_response(answer, action, mask=mask)
            return (result, request_id), request_id

        return self._sender.send(
            action,
            "GET" if content is None else "POST",
            f"{self._endpoint}/?{query}",
            deadline=deadline,
            idempotent=idempotent,
            read=read,
            max_bytes=MAX_ANSWER_BYTES,
            content=content,
            headers=None if content is None else {"Content-Type": "application/json"},
            cleared_until=cleared_until,
        )

    def probe(self, action: str, params: Mapping[str, str] | None = None, *, deadline: float) -> Probe:
        """Send the read ``action`` (a GET, retried as any read is) and keep what the answer says of the server
        whatever it was: its ``Date``, the local time it came, its request id. A final refusal (a signature,
        a permission) is returned in the probe rather than raised, with its ``Date``: a refused request still
        tells the server's time. A retryable failure past its retries is raised, as :meth:`call` raises it."""
        query = canonical_query({"Action": action, "Version": self._version, **(params or {})})

        def read(answer: Answer, mask: Mask) -> tuple[Probe, str | None]:
            # Against the time requests are signed with: the clock the gateway's own is compared with.
            seen = Probe(http_date(answer.headers.get("date")), self._signer.now(), None)
            try:
                _, request_id = parse_response(answer, action, mask=mask)
            except ApiError as error:
                if error.retryable:
                    raise
                return Probe(seen.server_time, seen.local_time, error.request_id, error), error.request_id
            return Probe(seen.server_time, seen.local_time, request_id), request_id

        return self._sender.send(
            action,
            "GET",
            f"{self._endpoint}/?{query}",
            deadline=deadline,
            idempotent=True,
            read=read,
            max_bytes=MAX_ANSWER_BYTES,
        )
