"""The one retry engine: attempts, waits, the deadline and the rule for resending writes, on a fake clock."""

from __future__ import annotations

import pytest

from handler.adapters.retry import RetryPolicy, backoff_delay, may_resend, with_retries
from handler.errors import (
    ApiError,
    ResourceLocked,
    ServerError,
    TerminalApiError,
    Throttled,
    UnknownOutcomeError,
)
from tests.support.fakes import FakeClock

POLICY = RetryPolicy(max_attempts=4, base=0.5, cap=4.0)


@pytest.mark.parametrize(
    ("retry", "jitter", "expected"),
    [(0, 1.0, 0.3), (1, 1.0, 0.6), (2, 0.5, 0.6), (5, 1.0, 5.0), (60, 1.0, 5.0), (3, 0.0, 0.0)],
)
def test_backoff_is_full_jitter_exponential_with_a_cap(retry: int, jitter: float, expected: float) -> None:
    """The wait grows as base * 2**retry, never above the cap, scaled by the jitter draw."""
    assert backoff_delay(retry, base=0.3, cap=5.0, jitter=jitter) == pytest.approx(expected)


def failing(times: int, error: ApiError) -> tuple[list[int], object]:
    seen: list[int] = []

    def send(attempt: int) -> str:
        seen.append(attempt)
        if attempt <= times:
            raise error
        return "answered"

    return seen, send


def test_a_retryable_failure_is_sent_again_after_the_backoff() -> None:
    """Two server errors, then an answer: three attempts, waits of 0.5 s and 1 s between them."""
    clock = FakeClock()
    seen, send = failing(2, ServerError("busy", code="InternalError"))
    value = with_retries(
        send,  # type: ignore[arg-type]
        failure=ApiError,
        may_retry=lambda _: True,
        policy=POLICY,
        clock=clock,
        deadline=clock.t + 60,
    )
    assert (value, seen, clock.slept) == ("answered", [1, 2, 3], [0.5, 1.0])


def test_the_last_attempt_raises_the_failure_as_it_is() -> None:
    """After max_attempts the caller sees the failure itself, not a wrapper."""
    clock = FakeClock()
    error = ServerError("busy", code="InternalError")
    seen, send = failing(10, error)
    with pytest.raises(ServerError) as caught:
        with_retries(
            send,  # type: ignore[arg-type]
            failure=ApiError,
            may_retry=lambda _: True,
            policy=POLICY,
            clock=clock,
            deadline=clock.t + 60,
        )
    assert caught.value is error
    assert seen == [1, 2, 3, 4]


def test_a_failure_that_may_not_be_retried_is_raised_at_once() -> None:
    """may_retry false: one attempt, no wait."""
    clock = FakeClock()
    seen, send = failing(1, TerminalApiError("no", code="InvalidParameter"))
    with pytest.raises(TerminalApiError):
        with_retries(
            send,  # type: ignore[arg-type]
            failure=ApiError,
            may_retry=lambda error: error.retryable,
            policy=POLICY,
            clock=clock,
            deadline=clock.t + 60,
        )
    assert (seen, clock.slept) == ([1], [])


def test_retry_after_is_waited_for_but_never_past_the_deadline() -> None:
    """A Retry-After longer than the backoff is honoured; one that would end after the deadline stops the
    retries at once, without sleeping."""
    clock = FakeClock()
    seen, send = failing(1, Throttled("slow down", code="FlowLimitExceeded", retry_after=3.0))
    with_retries(
        send,  # type: ignore[arg-type]
        failure=ApiError,
        may_retry=lambda _: True,
        policy=POLICY,
        clock=clock,
        deadline=clock.t + 60,
        wait_at_least=lambda error: error.retry_after,
    )
    assert clock.slept == [3.0]

    clock = FakeClock()
    seen, send = failing(1, Throttled("slow down", code="FlowLimitExceeded", retry_after=30.0))
    with pytest.raises(Throttled):
        with_retries(
            send,  # type: ignore[arg-type]
            failure=ApiError,
            may_retry=lambda _: True,
            policy=POLICY,
            clock=clock,
            deadline=clock.t + 10,
            wait_at_least=lambda error: error.retry_after,
        )
    assert (seen, clock.slept) == ([1], [])


def test_every_failure_is_seen_and_every_retry_announced() -> None:
    """on_failure sees each failure (the limiter slows down on throttling); on_retry gets attempt and wait."""
    clock = FakeClock()
    failures: list[str] = []
    retries: list[tuple[int, float]] = []
    _, send = failing(2, Throttled("slow down", code="FlowLimitExceeded"))
    with_retries(
        send,  # type: ignore[arg-type]
        failure=ApiError,
        may_retry=lambda _: True,
        policy=POLICY,
        clock=clock,
        deadline=clock.t + 60,
        on_failure=lambda error: failures.append(error.code),
        on_retry=lambda _error, attempt, delay: retries.append((attempt, delay)),
    )
    assert failures == ["FlowLimitExceeded", "FlowLimitExceeded"]
    assert retries == [(1, 0.5), (2, 1.0)]


def test_other_exceptions_pass_through_untouched() -> None:
    """Only the named failure type is retried: a bug is never sent again."""
    clock = FakeClock()

    def send(_attempt: int) -> str:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        with_retries(
            send,
            failure=ApiError,
            may_retry=lambda _: True,
            policy=POLICY,
            clock=clock,
            deadline=clock.t + 60,
        )
    assert clock.slept == []


@pytest.mark.parametrize(
    ("error", "idempotent", "expected"),
    [
        (ServerError("busy", code="InternalError"), False, True),
        (Throttled("slow", code="FlowLimitExceeded"), False, True),
        (UnknownOutcomeError("lost", code="ReadTimeout"), False, False),
        (ResourceLocked("held", code="OperationDenied.ResourceLocked"), False, False),
        (TerminalApiError("no", code="InvalidParameter"), False, False),
        (UnknownOutcomeError("lost", code="ReadTimeout"), True, True),
        (ResourceLocked("held", code="OperationDenied.ResourceLocked"), True, True),
        (TerminalApiError("no", code="InvalidParameter"), True, False),
    ],
)
def test_a_write_is_resent_only_when_it_cannot_have_started_anything(
    error: ApiError, idempotent: bool, expected: bool
) -> None:
    """A write whose answer was lost, or that a lock refused, is never resent; an idempotent call is, on any
    retryable failure."""
    assert may_resend(error, idempotent=idempotent) is expected


def test_before_wait_may_stop_the_retries_instead_of_waiting() -> None:
    """``before_wait`` sees the failure and the wait once it is known; what it raises ends the loop at once,
    before the wait (the clearance of a write that would run out meanwhile)."""
    clock = FakeClock()
    seen, send = failing(3, Throttled("slow down", code="HTTP429", retry_after=15.0))
    waits: list[tuple[str, float]] = []

    def before_wait(error: ApiError, delay: float) -> None:
        waits.append((error.code, delay))
        if delay > 10:
            msg = "too late"
            raise RuntimeError(msg)

    with pytest.raises(RuntimeError, match="too late"):
        with_retries(
            send,  # type: ignore[arg-type]
            failure=ApiError,
            may_retry=lambda _: True,
            policy=POLICY,
            clock=clock,
            deadline=clock.t + 60,
            wait_at_least=lambda error: error.retry_after,
            before_wait=before_wait,
        )
    assert (seen, waits, clock.slept) == ([1], [("HTTP429", 15.0)], [])
