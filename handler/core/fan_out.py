"""One call over many items, several at a time: the follow-up's object checks and the catalogue's manifest
reads. The clients they call are thread-safe and paced by their own rate limiters; each call bounds itself
by its deadline, so nothing here waits on time.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

__all__ = ["fan_out"]

_Item = TypeVar("_Item")
_Answer = TypeVar("_Answer")


def fan_out(
    call: Callable[[_Item], _Answer], items: Sequence[_Item], *, workers: int, name: str
) -> list[_Answer]:
    """``call`` of each item, answers in the items' order, ``workers`` at a time on threads named ``name``
    (one worker or one item: in this thread, no pool). Each call runs in a copy of the caller's context, so
    its log lines keep the invocation's bound ids. Every call runs; the exception of the first item whose
    call raised is raised here.

    Each worker takes the next item as it finishes one, rather than one future queued per item: a follow-up
    checks tens of thousands of exports, and a future with its lock and condition costs about 1.8 KiB."""
    if workers <= 1 or len(items) <= 1:
        return [call(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - only many items need threads

    caller = contextvars.copy_context()
    answers: list[_Answer | None] = [None] * len(items)
    raised: dict[int, Exception] = {}
    order = iter(range(len(items)))
    taking = threading.Lock()

    def work() -> None:
        while True:
            with taking:
                index = next(order, None)
            if index is None:
                return
            try:
                answers[index] = caller.copy().run(call, items[index])
            except Exception as error:  # raised below, once every call has run
                raised[index] = error

    count = min(workers, len(items))
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix=name) as pool:
        for worker in [pool.submit(work) for _ in range(count)]:
            worker.result()
    if raised:
        raise raised[min(raised)]
    return cast("list[_Answer]", answers)
