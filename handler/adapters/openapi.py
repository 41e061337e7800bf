"""A signed Volcengine OpenAPI client: one call = sign, send, parse, classify, and retry where it is safe.

Shared by the ECS client (GET with the canonical query) and the deployment client (veFaaS: POST with a JSON
body). Read-only calls are retried on every retryable error and on unknown outcomes; writes are retried only
when nothing can have started, and an unknown outcome is raised for the caller to look the effect up.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import structlog

from handler.adapters.pacing import RateLimiter, RetryPolicy, backoff_delay
from handler.adapters.signing import Credentials, VolcSigner, canonical_query
from handler.errors import (
    ApiError,
    BudgetExhausted,
    ResourceLocked,
    RetryableApiError,
    TerminalApiError,
    ThrottledError,
    UnknownOutcomeError,
    api_error_for,
)

__all__ = ["OpenApiClient", "reset_shared_state", "shared_http_client", "shared_rate_limiter"]

_log = structlog.get_logger("handler.openapi")

_lock = threading.Lock()
_http_clients: dict[tuple[float, float], httpx.Client] = {}
_limiters: dict[float, RateLimiter] = {}


def shared_http_client(*, connect_timeout: float, read_timeout: float) -> httpx.Client:
    """The process's HTTP client, built on first use and kept for warm invocations (connection reuse).

    ``SSL_CERT_FILE`` is honoured (httpx reads it when the client is built)."""
    key = (connect_timeout, read_timeout)
    with _lock:
        client = _http_clients.get(key)
        if client is None or client.is_closed:
            timeout = httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout)
            client = httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=32))
            _http_clients[key] = client
        return client


def shared_rate_limiter(max_rps: float) -> RateLimiter:
    """The process's rate limiter for this rate: shared by all concurrent calls, remembers throttling."""
    with _lock:
        limiter = _limiters.get(max_rps)
        if limiter is None:
            limiter = _limiters[max_rps] = RateLimiter(max_rps)
        return limiter


def reset_shared_state() -> None:
    """Close the process's HTTP clients and forget its rate limiters (tests; a long-lived host reloading)."""
    with _lock:
        for client in _http_clients.values():
            client.close()
        _http_clients.clear()
        _limiters.clear()


def _retry_after(response: httpx.Response) -> float | None:
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 300 else None


def _transport_error(exc: httpx.TransportError, action: str, host: str) -> ApiError:
    """Sort a transport failure by whether the request can have reached the server. The exception's own text
    is left out: it may quote the request."""
    name = type(exc).__name__
    if isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
        msg = f"{host} presented a TLS certificate this function does not trust: set SSL_CERT_FILE to its CA bundle"
        return TerminalApiError(msg, code="CertificateVerifyFailed", action=action)
    if isinstance(
        exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout | httpx.UnsupportedProtocol
    ):
        msg = f"could not reach {host} ({name}): check VOLCENGINE_ENDPOINT and the function's network access"
        return RetryableApiError(msg, code=name, action=action)
    msg = f"the request reached {host} but no answer came back ({name}); whether it took effect is unknown"
    return UnknownOutcomeError(msg, code=name, action=action)


def parse_response(response: httpx.Response, action: str) -> tuple[dict[str, Any], str | None]:
    """The ``Result`` and ``RequestId`` of a successful answer; else raise the typed error it describes.

    An ``Error`` inside an HTTP 200 is an error too; a success without a ``Result`` object is an unknown
    outcome (something may have happened, and we cannot tell what)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    meta = body.get("ResponseMetadata") if isinstance(body, dict) else None
    request_id = meta.get("RequestId") if isinstance(meta, dict) else None
    error = meta.get("Error") if isinstance(meta, dict) else None
    status = response.status_code
    if isinstance(error, dict) or status >= 400:
        err = error if isinstance(error, dict) else {}
        raise api_error_for(
            status,
            str(err.get("Code") or f"HTTP{status}"),
            str(err.get("Message") or response.reason_phrase or "no message"),
            request_id=request_id,
            action=action,
            retry_after=_retry_after(response),
        )
    result = body.get("Result") if isinstance(body, dict) else None
    if not isinstance(result, dict):
        raise UnknownOutcomeError(
            f"HTTP {status} without a Result object",
            code="MalformedResponse",
            http_status=status,
            request_id=request_id,
            action=action,
        )
    return result, request_id


class OpenApiClient:
    """Calls one service's actions (``Action`` and ``Version`` in the query) with signing, pacing and retries.

    Every call takes a ``deadline`` (a ``time.monotonic()`` value): the last moment a request may be sent.
    Waiting for the rate limiter or a backoff never runs past it.
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
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._http = http
        self._endpoint = endpoint.rstrip("/")
        self._version = version
        self._auth = VolcSigner(credentials, region=region, service=service)
        self._policy = policy
        self._limiter = limiter
        self._sleep = sleep
        self._monotonic = monotonic
        self._jitter = jitter

    def call(
        self,
        action: str,
        params: Mapping[str, str] | None = None,
        *,
        body: Mapping[str, Any] | None = None,
        deadline: float,
        read_only: bool,
    ) -> tuple[dict[str, Any], str | None]:
        """Send ``action``: a GET with ``params`` in the query, or a POST of ``body`` as JSON.

        Returns the answer's ``Result`` and ``RequestId``; raises a typed ``ApiError`` or ``BudgetExhausted``.
        """
        query = canonical_query({"Action": action, "Version": self._version, **(params or {})})
        content = None if body is None else json.dumps(body, ensure_ascii=False, sort_keys=True).encode()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._send(action, query, content, attempt, deadline)
            except ApiError as error:
                if isinstance(error, ThrottledError):
                    self._limiter.on_throttled(error.retry_after)
                if not self._should_retry(error, read_only=read_only, attempt=attempt):
                    raise
                delay = backoff_delay(
                    attempt - 1, base=self._policy.base, cap=self._policy.cap, jitter=self._jitter()
                )
                delay = max(delay, error.retry_after or 0.0)
                if self._monotonic() + delay >= deadline:
                    raise
                _log.info(
                    "api.retry", action=action, attempt=attempt, code=error.code, delay_ms=round(delay * 1000)
                )
                self._sleep(delay)

    def _should_retry(self, error: ApiError, *, read_only: bool, attempt: int) -> bool:
        if attempt >= self._policy.max_attempts:
            return False
        if read_only:
            return error.retryable
        # A write is sent again only when it cannot have started anything.
        return isinstance(error, RetryableApiError) and not isinstance(error, ResourceLocked)

    def _send(
        self, action: str, query: str, content: bytes | None, attempt: int, deadline: float
    ) -> tuple[dict[str, Any], str | None]:
        self._limiter.acquire(deadline)
        if self._monotonic() > deadline:
            msg = f"the time budget ran out before {action} could be sent"
            raise BudgetExhausted(msg)
        url = f"{self._endpoint}/?{query}"
        started = self._monotonic()
        try:
            if content is None:
                response = self._http.get(url, auth=self._auth)
            else:
                headers = {"Content-Type": "application/json"}
                response = self._http.post(url, content=content, headers=headers, auth=self._auth)
        except httpx.TransportError as exc:
            error = _transport_error(exc, action, httpx.URL(self._endpoint).netloc.decode())
            elapsed = round((self._monotonic() - started) * 1000)
            _log.warning("api.call", action=action, attempt=attempt, error=error.code, duration_ms=elapsed)
            raise error from None
        elapsed = round((self._monotonic() - started) * 1000)
        fields = {
            "action": action,
            "attempt": attempt,
            "http_status": response.status_code,
            "duration_ms": elapsed,
        }
        try:
            result, request_id = parse_response(response, action)
        except ApiError as error:
            _log.warning("api.call", **fields, error=error.code, api_request_id=error.request_id)
            raise
        self._limiter.on_success()
        _log.info("api.call", **fields, api_request_id=request_id)
        return result, request_id
