"""The shared rate limiter, with a fake clock: no sleeping, no timing."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handler.adapters.pacing import RateLimiter
from handler.errors import BudgetExhausted, ClearanceExpired
from tests.support.builders import examples
from tests.support.fakes import FakeClock


def test_a_small_invocation_never_waits_and_sustained_traffic_is_spaced() -> None:
    """At 10 rps the first 5 requests go at once (a direct event's 2-3 calls never wait); after that
    requests are spaced 100 ms apart."""
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    starts = []
    for _ in range(10):
        limiter.acquire(deadline=1e9)
        starts.append(clock.t - 100.0)
    assert starts[:5] == [0.0] * 5
    gaps = [b - a for a, b in itertools.pairwise(starts[4:])]
    assert gaps == pytest.approx([0.1] * 5)


@settings(max_examples=examples(150), deadline=None)
@given(
    rate=st.sampled_from([1.0, 2.5, 10.0, 20.0, 40.0]),
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.3), min_size=1, max_size=150),
)
def test_no_second_ever_sees_more_than_the_rate(rate: float, gaps: list[float]) -> None:
    """Whatever the arrival pattern (bursts, pauses, many threads at once), no one-second window holds
    more than the rate's worth of requests."""
    clock = FakeClock(0.0, still=True)  # callers never wait in line: each wait ends at a slot
    limiter = RateLimiter(rate, clock=clock)
    for gap in gaps:
        clock.t += gap
        before = len(clock.woke)
        limiter.acquire(deadline=1e9)
        if len(clock.woke) == before:  # no wait: the slot is now
            clock.woke.append(clock.t)
    slots = clock.woke
    slots.sort()
    limit = max(1, int(rate))
    for i, start in enumerate(slots):
        in_window = sum(1 for s in slots[i:] if s < start + 1.0 - 1e-9)
        assert in_window <= limit


def test_throttling_halves_the_rate_and_honours_retry_after() -> None:
    """A 429 halves the rate and pauses the next slot for Retry-After; successes bring the rate back."""
    clock = FakeClock()
    limiter = RateLimiter(40, burst=1, clock=clock)
    limiter.acquire(deadline=1e9)
    limiter.on_throttled(retry_after=2.0)
    assert limiter.rate == 20
    before = clock.t
    limiter.acquire(deadline=1e9)
    assert clock.t - before == pytest.approx(2.0)
    for _ in range(40):
        limiter.on_success()
    assert limiter.rate == 40


def test_rate_never_falls_below_the_floor() -> None:
    """Repeated throttling slows down to the floor, never to a stop."""
    limiter = RateLimiter(4)
    for _ in range(20):
        limiter.on_throttled()
    assert limiter.rate == limiter.min_rps == 0.5


def test_a_slot_past_the_deadline_is_refused_without_waiting() -> None:
    """When the next free slot lies past the deadline, the caller learns it at once and nothing is reserved."""
    clock = FakeClock()
    limiter = RateLimiter(1, clock=clock)
    assert limiter.burst == 1
    limiter.acquire(deadline=clock.t + 10)
    with pytest.raises(BudgetExhausted):
        limiter.acquire(deadline=clock.t + 0.5)
    assert clock.slept == []
    limiter.acquire(deadline=clock.t + 10)
    assert clock.slept == [pytest.approx(1.0)]


def test_a_slot_past_the_clearance_is_refused_without_waiting() -> None:
    """A request that may go out only until ``cleared_until`` is refused with ``ClearanceExpired`` when its
    slot lies later (throttling paused the limiter): nothing waited for, nothing reserved."""
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    limiter.on_throttled(15.0)
    with pytest.raises(ClearanceExpired, match=r"rate limit would hold it until 5\.0 s after") as caught:
        limiter.acquire(deadline=clock.t + 60, cleared_until=clock.t + 10)
    assert caught.value.late_by == pytest.approx(5.0)
    assert clock.slept == []
    limiter.acquire(deadline=clock.t + 60, cleared_until=clock.t + 20)
    assert clock.slept == [pytest.approx(15.0)]
