"""The one retry engine: every client (the OpenAPI client, TOS, the webhooks) sends through :func:`with_retries`.

One loop, one backoff (full jitter), one ``Retry-After`` reader, and one rule for writes
(:func:`may_resend`). What differs between the clients is only which failures may be sent again, what a
failure asks to wait, and the log line a retry writes; each passes those in.

Hand-written rather than a retry library: the loop is a dozen lines, it must stop at the invocation's
deadline, honour ``Retry-After``, feed throttling back to the caller's rate limiter and read our error types,
and a library would add its import to every cold start for none of that.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

from handler.clock import Clock
from handler.errors import ApiError, ResourceLocked, RetryableApiError

__all__ = [
    "MAX_RETRY_AFTER_SECONDS",
    "RetryPolicy",
    "backoff_delay",
    "may_resend",
    "parse_retry_after",
    "with_retries",
]

# The longest wait a Retry-After is honoured for; a longer one is ignored (the backoff applies instead).
MAX_RETRY_AFTER_SECONDS = 300.0

T = TypeVar("T")
E = TypeVar("E", bound=Exception)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts a call gets (the first included) and how long to wait between them."""

    max_attempts: int = 4
    base: float = 0.3
    cap: float = 5.0


def backoff_delay(retry: int, *, base: float, cap: float, jitter: float) -> float:
    """Full-jitter exponential backoff: ``jitter * min(cap, base * 2**retry)``, jitter drawn from [0, 1).

    ``retry`` counts retries from 0 (the delay before the first retry).
    """
    return jitter * min(cap, base * 2.0 ** min(retry, 32))


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """A ``Retry-After`` value in seconds from ``now`` (a Unix time): a number of seconds or an HTTP date, a
    past one counting as 0. ``None`` when absent, unreadable, or longer than ``MAX_RETRY_AFTER_SECONDS``."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(text).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if not math.isfinite(seconds):
        return None
    seconds = max(0.0, seconds)
    return seconds if seconds <= MAX_RETRY_AFTER_SECONDS else None


def may_resend(error: ApiError, *, idempotent: bool) -> bool:
    """Whether a request that failed with ``error`` may be sent again.

    The rule for writes, stated once: a request whose effect is the same however often it lands (a read,
    setting a tag, a HEAD) is sent again on every retryable error and on an unknown outcome; any other write
    only when it cannot have started anything. A write whose answer was lost is never resent blindly: the
    caller looks its effect up first. Nor is one refused by a lock (the lock may be our own export)."""
    if idempotent:
        return error.retryable
    return isinstance(error, RetryableApiError) and not isinstance(error, ResourceLocked)


def with_retries(
    send: Callable[[int], T],
    *,
    failure: type[E],
    may_retry: Callable[[E], bool],
    policy: RetryPolicy,
    clock: Clock,
    deadline: float,
    wait_at_least: Callable[[E], float | None] = lambda _: None,
    on_failure: Callable[[E], None] = lambda _: None,
    before_wait: Callable[[E, float], None] = lambda _error, _delay: None,
    on_retry: Callable[[E, int, float], None] = lambda _error, _attempt, _delay: None,
) -> T:
    """``send(attempt)`` (attempts count from 1) until it returns, then its value.

    A ``failure`` it raises is sent again while ``may_retry`` allows it, attempts are left and the wait
    (full-jitter backoff, at least ``wait_at_least``: the answer's ``Retry-After``) ends before ``deadline``
    (a ``clock.monotonic()`` reading); otherwise it is raised as it is. ``on_failure`` sees every failure
    (a throttling answer slows the caller's rate limiter); ``before_wait`` gets the failure and the wait once
    it is known, and may raise instead of waiting (a write whose clearance would run out meanwhile);
    ``on_retry`` gets the failure, the attempt and the wait before the next one (the caller's log line)."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return send(attempt)
        except failure as error:
            on_failure(error)
            if attempt >= policy.max_attempts or not may_retry(error):
                raise
            delay = backoff_delay(attempt - 1, base=policy.base, cap=policy.cap, jitter=clock.random())
            delay = max(delay, wait_at_least(error) or 0.0)
            if clock.monotonic() + delay >= deadline:
                raise
            before_wait(error, delay)
            on_retry(error, attempt, delay)
            clock.sleep(delay)
