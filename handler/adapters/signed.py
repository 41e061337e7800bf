"""How a signed client sends: one request paced by its service's rate limiter, bounded by the call's deadline
and retried by the one engine (``handler.adapters.retry``); and what it reads from a failed exchange (the
typed error for a transport failure, a mask for text that may quote the request).

The OpenAPI client and TOS each hold a :class:`SignedSender` and keep only what differs: the URL, the
signer, and how an answer is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import httpx
import structlog

from handler.adapters.exchange import Answer, certificate_rejected, exchange
from handler.adapters.log import MASK, redactor
from handler.adapters.pacing import RateLimiter
from handler.adapters.retry import RetryPolicy, may_resend, with_retries
from handler.clock import SYSTEM_CLOCK, Clock
from handler.core.budget import MIN_SEND_SECONDS
from handler.errors import (
    ERROR_CODES,
    ApiError,
    BudgetExhausted,
    ClearanceExpired,
    Throttled,
    error_for,
)

__all__ = ["Mask", "SignedSender", "request_masker", "transport_error"]

Mask = Callable[[str], str]
T = TypeVar("T")

# Shorter values are not masked in text: they would mask ordinary words.
_MIN_MASKED = 6
_SIGNATURE = re.compile(r"Signature=([0-9A-Za-z+/=]+)")
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)")
# What a ClearanceExpired message ends with: why the request was held back, and what the caller does next.
_LOOK_AGAIN = "(the look-up that cleared it is older than the clearance window by then): look again first"


@dataclass(frozen=True, slots=True)
class SignedSender:
    """Sends one service's signed requests. ``log`` names its log lines (``api`` gives ``api.call`` and
    ``api.retry``), ``request_id_field`` the field their request id goes in; ``variable`` is the setting to
    check when the service cannot be reached; ``session_header`` the header that carries a session token."""

    http: httpx.Client
    auth: httpx.Auth
    limiter: RateLimiter
    policy: RetryPolicy
    known_secrets: Callable[[], tuple[str, ...]]
    log: str
    request_id_field: str
    variable: str
    session_header: str
    clock: Clock = SYSTEM_CLOCK

    def send(
        self,
        action: str,
        method: str,
        url: str,
        *,
        deadline: float,
        idempotent: bool,
        read: Callable[[Answer, Mask], tuple[T, str | None]],
        max_bytes: int | Callable[[int], int],
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        cleared_until: float | None = None,
    ) -> T:
        """Send the request until it is answered or may not be sent again (``retry.may_resend``), never past
        ``deadline`` (a ``clock.monotonic()`` reading); ``read`` turns an answer into the value and its
        request id, or raises the typed ``ApiError`` it describes; at most ``max_bytes`` of the body are read
        (a function of the answer's status: ``exchange.exchange``). A request is not sent with less than
        ``MIN_SEND_SECONDS`` left (``BudgetExhausted``).

        ``cleared_until`` (a ``clock.monotonic()`` reading; None: no bound): no attempt goes out after it.
        One that would, after its backoff or ``Retry-After`` or in the rate limiter's queue, is not sent:
        ``ClearanceExpired`` is raised instead (a write the caller cleared with a look-up, ExportImage by its
        image's tasks, must not go out on a look-up grown too old)."""
        log = structlog.get_logger(f"handler.{self.log}")

        request = _Request(action, method, url, read, max_bytes, content, headers)

        def once(attempt: int) -> T:
            return self._once(request, attempt=attempt, deadline=deadline, cleared_until=cleared_until)

        def before_wait(error: ApiError, delay: float) -> None:
            late = 0.0 if cleared_until is None else self.clock.monotonic() + delay - cleared_until
            if late > 0:
                asked = (
                    " (Retry-After)" if error.retry_after is not None and delay <= error.retry_after else ""
                )
                msg = (
                    f"{action} was not sent again after {error.code}: waiting {delay:.1f} s{asked} would send "
                    f"it {late:.1f} s after its clearance ran out {_LOOK_AGAIN}"
                )
                raise ClearanceExpired(msg, late_by=late, cause=error) from error

        retry_event = f"{self.log}.retry"

        def on_retry(error: ApiError, attempt: int, delay: float) -> None:
            log.info(
                retry_event,
                action=action,
                attempt=attempt,
                code=error.code,
                delay_ms=round(delay * 1000),
            )

        return with_retries(
            once,
            failure=ApiError,
            may_retry=lambda error: may_resend(error, idempotent=idempotent),
            policy=self.policy,
            clock=self.clock,
            deadline=deadline,
            wait_at_least=lambda error: error.retry_after,
            on_failure=self._slow_down_if_throttled,
            before_wait=before_wait,
            on_retry=on_retry,
        )

    def _slow_down_if_throttled(self, error: ApiError) -> None:
        if isinstance(error, Throttled):
            self.limiter.on_throttled(error.retry_after)

    def _once(self, request: _Request[T], *, attempt: int, deadline: float, cleared_until: float | None) -> T:
        action = request.action
        call = f"{self.log}.call"
        log = structlog.get_logger(f"handler.{self.log}")
        try:
            self.limiter.acquire(deadline, cleared_until=cleared_until)
        except ClearanceExpired as held:
            msg = f"{action} was not sent: {held.message} {_LOOK_AGAIN}"
            raise ClearanceExpired(msg, late_by=held.late_by) from None
        left = deadline - self.clock.monotonic()
        if not left >= MIN_SEND_SECONDS:
            msg = f"the time budget ran out before {action} could be sent"
            raise BudgetExhausted(msg)
        started = self.clock.monotonic()
        try:
            answer = exchange(
                self.http,
                request.method,
                request.url,
                content=request.content,
                headers=request.headers,
                auth=self.auth,
                seconds=left,
                max_bytes=request.max_bytes,
            )
        except httpx.TransportError as exc:
            error = transport_error(
                exc, action=action, host=httpx.URL(request.url).netloc.decode(), variable=self.variable
            )
            elapsed = round((self.clock.monotonic() - started) * 1000)
            log.warning(call, action=action, attempt=attempt, error=error.code, duration_ms=elapsed)
            raise error from None
        fields = {
            "action": action,
            "attempt": attempt,
            "http_status": answer.status,
            "duration_ms": round((self.clock.monotonic() - started) * 1000),
        }
        mask = request_masker(answer.sent, self.known_secrets(), session_header=self.session_header)
        try:
            value, request_id = request.read(answer, mask)
        except ApiError as error:
            log.warning(call, **fields, error=error.code, **{self.request_id_field: error.request_id})
            raise
        self.limiter.on_success()
        log.info(call, **fields, **{self.request_id_field: request_id})
        return value


@dataclass(frozen=True, slots=True)
class _Request(Generic[T]):
    """One request as the retry engine sends it again: the same bytes each time, signed afresh."""

    action: str
    method: str
    url: str
    read: Callable[[Answer, Mask], tuple[T, str | None]]
    max_bytes: int | Callable[[int], int]
    content: bytes | None
    headers: Mapping[str, str] | None


def transport_error(exc: httpx.TransportError, *, action: str, host: str, variable: str) -> ApiError:
    """Sort a transport failure by whether the request can have reached the server; ``variable`` names the
    setting to check when it could not. The exception's own text is left out: it may quote the request."""
    name = type(exc).__name__
    if certificate_rejected(exc):
        msg = f"{host} presented a TLS certificate this function does not trust: set SSL_CERT_FILE to its CA bundle"
        return error_for("CertificateVerifyFailed", msg, action=action)
    if isinstance(
        exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout | httpx.UnsupportedProtocol
    ):
        msg = f"could not reach {host} ({name}): check {variable} and the function's network access"
        return error_for(name if name in ERROR_CODES else "ConnectError", msg, action=action)
    msg = f"the request reached {host} but no answer came back ({name}); whether it took effect is unknown"
    return error_for(name if name in ERROR_CODES else "ReadError", msg, action=action)


def request_masker(sent: httpx.Headers, known: tuple[str, ...], *, session_header: str) -> Mask:
    """A mask for text that may quote the request sent: its Authorization and session-token headers, the
    signature, the ``known`` secrets and every secret the log redactor knows; an access key keeps its first
    four characters."""
    authorization = sent.get("authorization") or ""
    values = {authorization, sent.get(session_header) or "", *known}
    values.update(_SIGNATURE.findall(authorization))
    secrets = sorted((v for v in values if len(v) >= _MIN_MASKED), key=len, reverse=True)
    access_keys = [k for k in _CREDENTIAL.findall(authorization) if len(k) >= _MIN_MASKED]

    def mask(text: str) -> str:
        for value in secrets:
            text = text.replace(value, MASK)
        for key in access_keys:
            text = text.replace(key, key[:4] + MASK)
        return redactor.mask_text(text)

    return mask
