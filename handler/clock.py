"""The one view of time the function has: a clock for deadlines, waits, timestamps and jitter.

Everything that waits, times out, stamps or jitters takes a :class:`Clock` (default :data:`SYSTEM_CLOCK`),
so tests drive it with a fake instead of threading separate callables through every layer.
"""

from __future__ import annotations

import random as _random
import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "as_utc"]


class Clock(Protocol):
    """``monotonic`` for deadlines and spacing, ``sleep`` to wait, ``now`` (aware, UTC) for timestamps,
    ``random`` in [0, 1) for jitter."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def now(self) -> datetime: ...

    def random(self) -> float: ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.sleep``, ``datetime.now(UTC)`` and ``random.random``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def now(self) -> datetime:
        return datetime.now(UTC)

    def random(self) -> float:
        return _random.random()  # noqa: S311 - backoff jitter, not security


SYSTEM_CLOCK: Clock = SystemClock()


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; one without a zone (the APIs and the manifests write UTC) is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
