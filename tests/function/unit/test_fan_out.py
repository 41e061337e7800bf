"""One call over many items, several at a time: answers in order, the caller's context in each call."""

from __future__ import annotations

import contextvars
import threading

import pytest

from handler.core.fan_out import fan_out

BOUND = contextvars.ContextVar("bound", default="unset")


def test_answers_come_in_the_items_order_whatever_finishes_first() -> None:
    """Four workers over eight items: each answer is in its item's place, the calls ran on named threads."""
    started = threading.Barrier(4)
    threads: set[str] = set()

    def call(n: int) -> int:
        if n < 4:
            started.wait(timeout=5)  # the first four run at once
        threads.add(threading.current_thread().name)
        return n * n

    assert fan_out(call, list(range(8)), workers=4, name="probe") == [n * n for n in range(8)]
    assert all(name.startswith("probe") for name in threads)


@pytest.mark.parametrize(("workers", "items"), [(1, [1, 2, 3]), (8, [1])])
def test_one_worker_or_one_item_runs_in_this_thread(workers: int, items: list[int]) -> None:
    """No pool is started for a single worker or a single item."""
    here = threading.current_thread().name
    assert fan_out(lambda _: threading.current_thread().name, items, workers=workers, name="x") == [
        here
    ] * len(items)


def test_each_call_sees_the_callers_context() -> None:
    """A value bound in the caller (the log's correlation id) is seen by every call, on every thread."""
    token = BOUND.set("invocation-1")
    try:
        assert set(fan_out(lambda _: BOUND.get(), list(range(6)), workers=3, name="ctx")) == {"invocation-1"}
    finally:
        BOUND.reset(token)


def test_an_exception_from_a_call_is_raised_to_the_caller() -> None:
    """A call that raises is not swallowed."""

    def call(n: int) -> int:
        if n == 2:
            raise ValueError(n)
        return n

    with pytest.raises(ValueError, match="2"):
        fan_out(call, [1, 2, 3], workers=2, name="raise")


def test_every_call_runs_and_the_first_items_exception_is_raised() -> None:
    """Two calls raise: every item is still called, and the exception raised is the earlier item's."""
    called: list[int] = []

    def call(n: int) -> int:
        called.append(n)
        if n in (3, 5):
            raise ValueError(n)
        return n

    with pytest.raises(ValueError, match="3"):
        fan_out(call, list(range(8)), workers=3, name="raise")
    assert sorted(called) == list(range(8))
