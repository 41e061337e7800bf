"""The gateway's misbehaviour on purpose: random faults (``Faults``, reproducible with a seed), a
requests-per-second limit, and scripted ones (``fail_next``, ``drop_next``) for tests that need one exact
failure. Thread-safe; the gateway (``server``) asks it about each request after the signature check.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

from exporter_tools.emulator.api import Faults

__all__ = ["FaultInjector", "Injected"]


@dataclass(frozen=True, slots=True)
class Injected:
    """An error the gateway answers instead of the service; ``kind`` says which statistic it counts in."""

    status: int
    code: str
    message: str
    kind: Literal["throttled", "injected"]


class FaultInjector:
    """Decides, per request, whether to answer with a fault or drop a committed answer."""

    def __init__(self, faults: Faults, rng: random.Random, lock: threading.Lock) -> None:
        """``rng`` and ``lock`` are the gateway's: one seeded sequence for faults and RequestIds."""
        self.faults = faults
        self._rng = rng
        self._lock = lock
        self._admitted: deque[float] = deque()  # monotonic times of requests let through (max_rps)
        self._scripted: dict[str, deque[Injected]] = {}  # action -> its next errors (fail_next)
        self._drops: dict[str, int] = {}  # action -> committed answers still to drop (drop_next)

    def fail_next(self, action: str, status: int, code: str, message: str = "", *, times: int = 1) -> None:
        """Answer the next ``times`` calls to ``action`` with this error."""
        if times < 1 or not 400 <= status <= 599:
            msg = "fail_next needs times >= 1 and an HTTP error status (400-599)"
            raise ValueError(msg)
        kind: Literal["throttled", "injected"] = "throttled" if status == 429 else "injected"
        with self._lock:
            queued = self._scripted.setdefault(action, deque())
            queued.extend([Injected(status, code, message or code, kind)] * times)

    def drop_next(self, action: str, *, times: int = 1) -> None:
        """Drop the answers of the next ``times`` committed writes of ``action``."""
        if times < 1:
            msg = "drop_next needs times >= 1"
            raise ValueError(msg)
        with self._lock:
            self._drops[action] = self._drops.get(action, 0) + times

    def clear(self) -> None:
        """Forget the rate limit's window and every scripted fault."""
        with self._lock:
            self._admitted.clear()
            self._scripted.clear()
            self._drops.clear()

    def refusal(self, action: str, moment: float) -> Injected | None:
        """The error for this request, if any: a scripted one first, then the rate limit, then the random
        ones. ``moment`` is the request's monotonic arrival time."""
        with self._lock:
            queued = self._scripted.get(action)
            if queued:
                return queued.popleft()
        limit = self.faults.max_rps
        if limit is not None:
            with self._lock:
                while self._admitted and self._admitted[0] <= moment - 1.0:
                    self._admitted.popleft()
                over = len(self._admitted) >= limit
                if not over:
                    self._admitted.append(moment)
            if over:
                message = f"the request rate is above the limit of {limit:g} per second"
                return Injected(429, "FlowLimitExceeded", message, "throttled")
        if self._roll(self.faults.throttle_rate):
            return Injected(429, "FlowLimitExceeded", "the request was throttled (injected)", "throttled")
        if self._roll(self.faults.error_rate):
            message = "an internal error occurred (injected); try again"
            return Injected(500, "InternalError", message, "injected")
        return None

    def drops(self, action: str) -> bool:
        """Whether to drop the answer of this committed write (scripted first, then ``drop_rate``)."""
        with self._lock:
            if self._drops.get(action, 0) > 0:
                self._drops[action] -= 1
                return True
        return self._roll(self.faults.drop_rate)

    def _roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate
