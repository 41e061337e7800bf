"""How fast we call a service: a shared, self-adjusting rate limiter per service (retries: ``retry.py``)."""

from __future__ import annotations

import threading
from collections import deque

from handler.clock import SYSTEM_CLOCK, Clock
from handler.errors import BudgetExhausted, ClearanceExpired

__all__ = ["RateLimiter", "RateLimiters"]


class RateLimiter:
    """Keeps every thread that shares it to at most ``max_rps`` requests in any one second.

    An idle client may send a short burst (``burst`` requests, 5 by default) at once, so a small invocation
    never waits; sustained traffic is spaced evenly at the rate (a cell-rate algorithm), and a sliding
    one-second window caps the total, so a burst never pushes any second above the limit. Each caller
    reserves its slot under a lock and sleeps outside it.

    A throttling answer (HTTP 429) halves the rate and pauses new slots for the ``Retry-After`` the API
    asked for; every success afterwards adds back a twentieth of the configured rate.
    """

    def __init__(
        self,
        max_rps: float,
        *,
        burst: int | None = None,
        min_rps: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.max_rps = max_rps
        self.min_rps = min_rps if min_rps is not None else min(max_rps, 0.5)
        self.burst = burst if burst is not None else max(1, min(5, int(max_rps // 2)))
        self._rate = max_rps
        self._theoretical = 0.0  # when the next request would be due at an even spacing
        self._paused_until = 0.0  # no slot before this (the API asked us to wait)
        self._recent: deque[float] = deque()  # slots given out within the last second
        self._lock = threading.Lock()
        self._clock = clock

    @property
    def rate(self) -> float:
        """The rate in force now, in requests per second."""
        return self._rate

    def acquire(self, deadline: float, *, cleared_until: float | None = None) -> None:
        """Wait for this caller's slot; raise ``BudgetExhausted`` (having waited for nothing) if it lies past
        ``deadline``, ``ClearanceExpired`` if it lies past ``cleared_until`` (the request may go out only
        until then; None: any time), both readings of the limiter's clock (``monotonic``)."""
        with self._lock:
            now = self._clock.monotonic()
            interval = 1.0 / self._rate
            slot = max(now, self._paused_until, self._theoretical - (self.burst - 1) * interval)
            per_second = max(1, int(self.max_rps))
            while self._recent and self._recent[0] <= slot - 1.0:
                self._recent.popleft()
            if len(self._recent) >= per_second:
                slot = max(slot, self._recent[-per_second] + 1.0)
            if slot > deadline:
                msg = "the time budget ran out while waiting for the request rate limit"
                raise BudgetExhausted(msg)
            if cleared_until is not None and slot > cleared_until:
                late = slot - cleared_until
                msg = f"the request rate limit would hold it until {late:.1f} s after its clearance ran out"
                raise ClearanceExpired(msg, late_by=late)
            self._theoretical = max(self._theoretical, slot) + interval
            self._recent.append(slot)
        wait = slot - now
        if wait > 0:
            self._clock.sleep(wait)

    def on_throttled(self, retry_after: float | None = None) -> None:
        """The API answered 429: halve the rate, and leave the API alone for ``retry_after`` seconds."""
        with self._lock:
            self._rate = max(self.min_rps, self._rate / 2)
            resume = self._clock.monotonic() + (retry_after or 0.0)
            self._paused_until = max(self._paused_until, resume)
            # No burst straight after throttling: the next slots are spaced at the new, lower rate.
            self._theoretical = max(self._theoretical, resume + (self.burst - 1) / self._rate)

    def on_success(self) -> None:
        """A request went through: step back towards the configured rate."""
        if self._rate < self.max_rps:
            with self._lock:
                self._rate = min(self.max_rps, self._rate + self.max_rps / 20)


class RateLimiters:
    """A process's rate limiters, one per rate, built on first use and shared by every call to one service
    (each service keeps its own: TOS's requests never spend the ECS API's budget)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_rate: dict[float, RateLimiter] = {}

    def get(self, max_rps: float) -> RateLimiter:
        with self._lock:
            limiter = self._by_rate.get(max_rps)
            if limiter is None:
                limiter = self._by_rate[max_rps] = RateLimiter(max_rps)
            return limiter

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_rate)

    def clear(self) -> None:
        """Forget them all (tests; a long-lived host reloading)."""
        with self._lock:
            self._by_rate.clear()
