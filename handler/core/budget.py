"""How an invocation's time budget is split: the one place that arithmetic lives. Pure: no clock is read here.

Of the budget, a reserve is kept back for logging the outcomes and notifying the webhook (a tenth, at most
``NOTIFY_RESERVE_SECONDS``). Every request must be done by ``send_by`` (the client clips each request's
timeouts to what is left, so no request needs its full timeouts reserved). No new image's export begins
after ``start_by``: an export begun keeps time for its answer (a quarter of the budget, at least
``MIN_EXCHANGE_SECONDS`` and at most the connect and read timeouts together).
"""

from __future__ import annotations

from dataclasses import dataclass

from handler.models.settings import Settings

__all__ = [
    "LOOKUP_SECONDS",
    "MIN_EXCHANGE_SECONDS",
    "NOTIFY_RESERVE_SECONDS",
    "Budget",
    "smallest_workable_budget",
]

# Kept back from the time budget for logging the outcomes and notifying the webhook.
NOTIFY_RESERVE_SECONDS = 5.0
# The least time one request is given: a prompt API answers in a fraction of it.
MIN_EXCHANGE_SECONDS = 2.0
# What the look-ups before the first export may take (a scan lists the images, then their tasks).
LOOKUP_SECONDS = 2 * MIN_EXCHANGE_SECONDS


@dataclass(frozen=True, slots=True)
class Budget:
    """Time limits as ``Clock.monotonic()`` values: every request is done by ``send_by``, and no new image's
    export begins after ``start_by``. ``seconds`` is the whole budget, for the reasons a result gives."""

    send_by: float
    start_by: float
    seconds: float

    @classmethod
    def ending_at(cls, end: float, *, now: float, settings: Settings) -> Budget:
        """Split the time from ``now`` to ``end`` (both monotonic) for an invocation under ``settings``."""
        seconds = max(0.0, end - now)
        send_by = end - min(NOTIFY_RESERVE_SECONDS, 0.1 * seconds)
        return cls(send_by=send_by, start_by=send_by - _answer_allowance(seconds, settings), seconds=seconds)


def _answer_allowance(seconds: float, settings: Settings) -> float:
    """The time an export begun keeps for its answer."""
    ceiling = settings.connect_timeout + settings.read_timeout
    return min(max(ceiling, MIN_EXCHANGE_SECONDS), max(MIN_EXCHANGE_SECONDS, seconds / 4))


def smallest_workable_budget(settings: Settings) -> float:
    """The shortest budget (seconds, rounded up to a tenth) that leaves ``LOOKUP_SECONDS`` for the look-ups
    before the first export must begin. Below it, an export begins only if those look-ups answer at once."""

    def room(seconds: float) -> float:
        budget = Budget.ending_at(seconds, now=0.0, settings=settings)
        return budget.start_by - LOOKUP_SECONDS

    low, high = 0.0, 900.0
    for _ in range(60):  # room() grows with the budget, so halving finds where it crosses zero
        middle = (low + high) / 2
        low, high = (middle, high) if room(middle) < 0 else (low, middle)
    return round(-(-high // 0.1) * 0.1, 1)
