"""One call over many items, several at a time: the follow-up's object checks and the catalogue's manifest
reads. The clients they call are thread-safe and paced by their own rate limiters; each call bounds itself
by its deadline, so nothing here waits on time.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["fan_out"]

_Item = TypeVar("_Item")
_Answer = TypeVar("_Answer")


def fan_out(
    call: Callable[[_Item], _Answer], items: Sequence[_Item], *, workers: int, name: str
) -> list[_Answer]:
    """``call`` of each item, answers in the items' order, ``workers`` at a time on threads named ``name``
    (one worker or one item: in this thread, no pool). Each call runs in a copy of the caller's context, so
    its log lines keep the invocation's bound ids. An exception a call raises is raised here."""
    if workers <= 1 or len(items) <= 1:
        return [call(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - only many items need threads

    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix=name) as pool:
        futures = [pool.submit(contextvars.copy_context().run, call, item) for item in items]
        return [future.result() for future in futures]
