"""How fast and how often we call the API: full-jitter backoff and a shared, self-adjusting rate limiter.

Retries are hand-written rather than delegated to a retry library: the loop is a dozen lines, it must honour
``Retry-After``, stop at the invocation's deadline, feed 429s back into the rate limiter and read our error
types, and a library would add its import to every cold start for none of that.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from handler.errors import BudgetExhausted

__all__ = ["RateLimiter", "RetryPolicy", "backoff_delay"]


def backoff_delay(attempt: int, *, base: float, cap: float, jitter: float) -> float:
    """Full-jitter exponential backoff: ``jitter * min(cap, base * 2**attempt)``, jitter drawn from [0, 1).

    ``attempt`` counts retries from 0 (the delay before the first retry).
    """
    return jitter * min(cap, base * 2.0 ** min(attempt, 32))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts a call gets (the first included) and how long to wait between them."""

    max_attempts: int = 4
    base: float = 0.3
    cap: float = 5.0


class RateLimiter:
    """Spaces requests evenly at no more than ``max_rps``, across every thread that shares it.

    Each caller reserves the next free slot, so traffic never bursts above the rate. A throttling answer
    (HTTP 429) halves the rate and pauses new slots for the ``Retry-After`` the API asked for; every success
    afterwards adds back a twentieth of the configured rate, so the limiter recovers within a few seconds.
    """

    def __init__(
        self,
        max_rps: float,
        *,
        min_rps: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_rps = max_rps
        self.min_rps = min_rps if min_rps is not None else min(max_rps, 0.5)
        self._rate = max_rps
        self._next_slot = 0.0
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._sleep = sleep

    @property
    def rate(self) -> float:
        """The rate in force now, in requests per second."""
        return self._rate

    def acquire(self, deadline: float) -> None:
        """Wait for this caller's slot; raise ``BudgetExhausted`` (having waited for nothing) if it lies past
        ``deadline``, a ``time.monotonic()`` value."""
        with self._lock:
            now = self._monotonic()
            slot = max(now, self._next_slot)
            if slot > deadline:
                msg = "the time budget ran out while waiting for the request rate limit"
                raise BudgetExhausted(msg)
            self._next_slot = slot + 1.0 / self._rate
        wait = slot - now
        if wait > 0:
            self._sleep(wait)

    def on_throttled(self, retry_after: float | None = None) -> None:
        """The API answered 429: halve the rate, and leave the API alone for ``retry_after`` seconds."""
        with self._lock:
            self._rate = max(self.min_rps, self._rate / 2)
            if retry_after:
                self._next_slot = max(self._next_slot, self._monotonic() + retry_after)

    def on_success(self) -> None:
        """A request went through: step back towards the configured rate."""
        if self._rate < self.max_rps:
            with self._lock:
                self._rate = min(self.max_rps, self._rate + self.max_rps / 20)
