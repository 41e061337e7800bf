"""Sending one webhook: at most three attempts of at most 5 s each, full-jitter backoff, never past the deadline.

Each attempt is one bounded exchange (``handler.adapters.exchange``): it is over within ``ATTEMPT_TIMEOUT``
seconds and the invocation's deadline, however slowly the receiver answers, and at most 64 KiB of the answer
are read (all that is parsed), however much the receiver sends.

What one attempt's outcome means::

    network error (httpx.TransportError)           retried
    HTTP 429                                        retried, after Retry-After when the receiver sends one
    HTTP 5xx                                        retried
    HTTP 2xx + the platform's success code          delivered (Feishu code/StatusCode 0; DingTalk, WeCom errcode 0)
    HTTP 2xx + the platform's rate-limit code       retried (Feishu 9499, DingTalk 130101, WeCom 45009)
    anything else: other platform codes, 3xx, 4xx   failed, not retried: sending the same again cannot help

Nothing here raises for a failed delivery: the caller gets a ``DeliveryReport``. Reports and reasons never
carry the secret or the URL's credential parts: what a platform echoes back is scrubbed first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import httpx
import structlog

from handler.adapters.exchange import Answer, exchange
from handler.adapters.retry import RetryPolicy, parse_retry_after, with_retries
from handler.adapters.webhooks._formats import WebhookRequest, scrub
from handler.clock import Clock
from handler.errors import ExporterError
from handler.models.settings import WebhookFormat

__all__ = [
    "ATTEMPT_TIMEOUT",
    "CONNECT_TIMEOUT",
    "MAX_ATTEMPTS",
    "POLICY",
    "DeliveryReport",
    "deliver",
]

MAX_ATTEMPTS = 3
CONNECT_TIMEOUT = 3.0
ATTEMPT_TIMEOUT = 5.0
# Full-jitter backoff of 0.5 s doubling up to 4 s between the attempts.
POLICY = RetryPolicy(max_attempts=MAX_ATTEMPTS, base=0.5, cap=4.0)
USER_AGENT = "vefaas-image-exporter-webhooks/1"

_SUCCESS_FIELDS: dict[WebhookFormat, tuple[str, ...]] = {
    "feishu": ("code", "StatusCode"),  # StatusCode: the older custom-bot answer
    "dingtalk": ("errcode",),
    "wecom": ("errcode",),
}
_MESSAGE_FIELDS = ("msg", "StatusMessage", "errmsg")
_RATE_LIMIT_CODES: dict[WebhookFormat, frozenset[str]] = {
    "feishu": frozenset({"9499"}),
    "dingtalk": frozenset({"130101"}),
    "wecom": frozenset({"45009"}),
}
_MAX_ANSWER_BYTES = 65_536


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What happened to one delivery. ``target`` is the redacted URL; nothing here is secret."""

    format: WebhookFormat
    target: str
    delivered: bool
    attempts: int
    status: int | None = None
    platform_code: str | None = None
    platform_message: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class _Verdict:
    """One attempt, judged."""

    delivered: bool
    retry: bool
    status: int | None = None
    platform_code: str | None = None
    platform_message: str | None = None
    reason: str | None = None
    retry_after: float | None = None


def _answer_json(answer: Answer) -> dict[str, Any] | None:
    try:
        data = json.loads(answer.body)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _platform_answer(fmt: WebhookFormat, answer: Answer) -> tuple[str | None, str | None, bool]:
    """``(code, message, has a success code)`` from the answer's body, per platform."""
    if fmt not in _SUCCESS_FIELDS:
        text = answer.body[:200].decode("utf-8", "replace").strip()
        # Slack answers errors as a bare token such as ``no_service`` or ``invalid_payload``.
        code = text if text and text.replace("_", "").isalnum() and text.isascii() else None
        return code, None, True
    data = _answer_json(answer) or {}
    raw = next((data[field] for field in _SUCCESS_FIELDS[fmt] if data.get(field) is not None), None)
    message = next((str(data[field]) for field in _MESSAGE_FIELDS if data.get(field)), None)
    code = None if raw is None else str(raw)
    return code, message, code == "0"


def _judge(fmt: WebhookFormat, answer: Answer, now: float) -> _Verdict:
    status = answer.status
    code, message, success = _platform_answer(fmt, answer)
    facts: dict[str, Any] = {"status": status, "platform_code": code, "platform_message": message}
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(answer.headers.get("retry-after"), now=now)
        return _Verdict(False, True, reason=f"HTTP {status}", retry_after=retry_after, **facts)
    if not 200 <= status < 300:
        return _Verdict(False, False, reason=f"HTTP {status}", **facts)
    if success:
        return _Verdict(True, False, **facts)
    if code in _RATE_LIMIT_CODES.get(fmt, frozenset()):
        return _Verdict(False, True, reason="platform rate limit", **facts)
    reason = "platform error" if code is not None else "no success code in the answer"
    return _Verdict(False, False, reason=reason, **facts)


def _failure_reason(error: Exception) -> str:
    """A short reason that cannot carry a secret: our own messages, else only the exception's type."""
    if isinstance(error, ExporterError):
        return error.message
    return type(error).__name__


class _Undelivered(Exception):
    """One attempt that did not deliver, carrying its verdict to the retry engine."""

    def __init__(self, verdict: _Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


def deliver(
    prepare: Callable[[], WebhookRequest],
    *,
    fmt: WebhookFormat,
    target: str,
    client: httpx.Client,
    deadline: float,
    clock: Clock,
    secrets: Iterable[str] = (),
) -> DeliveryReport:
    """Send what ``prepare`` builds (again for each attempt, so signatures stay fresh) until it is delivered,
    a failure is final, three attempts are spent or the deadline (a ``clock.monotonic()`` reading) would be
    passed. The attempts run on the one retry engine (``handler.adapters.retry``)."""
    secrets = tuple(secrets)
    log = structlog.get_logger()
    attempts = 0

    def attempt(number: int) -> _Verdict:
        nonlocal attempts
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            reason = "deadline reached"
            raise _Undelivered(_Verdict(False, False, reason=reason))
        try:
            request = prepare()
        except Exception as error:  # a message that cannot be built is a failed delivery, not a crash
            raise _Undelivered(_Verdict(False, False, reason=_failure_reason(error))) from None
        attempts = number
        verdict = _attempt(request, fmt, client, remaining, clock)
        if not verdict.delivered:
            raise _Undelivered(verdict)
        return verdict

    def on_retry(failure: _Undelivered, number: int, delay: float) -> None:
        verdict = failure.verdict
        log.info(
            "webhook.retry",
            format=fmt,
            url=target,
            attempt=number,
            status=verdict.status,
            platform_code=verdict.platform_code,
            reason=scrub(verdict.reason or "", secrets),
            delay_seconds=round(delay, 3),
        )

    try:
        verdict = with_retries(
            attempt,
            failure=_Undelivered,
            may_retry=lambda failure: failure.verdict.retry,
            policy=POLICY,
            clock=clock,
            deadline=deadline,
            wait_at_least=lambda failure: failure.verdict.retry_after,
            on_retry=on_retry,
        )
    except _Undelivered as failure:
        verdict = failure.verdict
        if verdict.retry and attempts < MAX_ATTEMPTS:  # the engine stopped at the deadline, not the count
            verdict = _with_note(verdict, "deadline reached")
    return DeliveryReport(
        format=fmt,
        target=target,
        delivered=verdict.delivered,
        attempts=attempts,
        status=verdict.status,
        platform_code=verdict.platform_code,
        platform_message=scrub(verdict.platform_message[:200], secrets) if verdict.platform_message else None,
        reason=scrub(verdict.reason, secrets) if verdict.reason else None,
    )


def _with_note(verdict: _Verdict, note: str) -> _Verdict:
    """``verdict`` made final, its reason completed by why no further attempt was made."""
    reason = f"{verdict.reason}; {note}" if verdict.reason else note
    return replace(verdict, retry=False, reason=reason)


def _attempt(
    request: WebhookRequest, fmt: WebhookFormat, client: httpx.Client, remaining: float, clock: Clock
) -> _Verdict:
    try:
        answer = exchange(
            client,
            "POST",
            request.url,
            content=request.content,
            headers={"user-agent": USER_AGENT, **request.headers},
            seconds=min(ATTEMPT_TIMEOUT, remaining),
            max_bytes=_MAX_ANSWER_BYTES,
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=ATTEMPT_TIMEOUT,
        )
    except httpx.TransportError as error:
        return _Verdict(False, True, reason=type(error).__name__)
    except Exception as error:  # whatever the client raises, the result must not change
        return _Verdict(False, False, reason=_failure_reason(error))
    return _judge(fmt, answer, clock.now().timestamp())
