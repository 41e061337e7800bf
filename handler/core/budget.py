"""How an invocation's time budget is split: the one place that arithmetic lives. Pure: no clock is read here.

Of the budget, a reserve is kept back for logging the outcomes and notifying the webhook (a tenth, at most
``NOTIFY_RESERVE_SECONDS``). Every request must be done by ``send_by`` (the client clips each request's
timeouts to what is left, so no request needs its full timeouts reserved). No new image's export begins
after ``start_by``: an export begun keeps time for its answer (a quarter of the budget, at least
``MIN_ANSWER_SECONDS`` and at most the connect and read timeouts together). No request is sent with less
than ``MIN_SEND_SECONDS`` left. The result is reported by ``report_by``, ``REPORT_MARGIN_SECONDS`` before the
platform ends the invocation; a function whose timeout is not known gets ``DEFAULT_FUNCTION_TIMEOUT``.
"""

from __future__ import annotations

from dataclasses import dataclass

from handler.models.settings import Settings

__all__ = [
    "DEFAULT_FUNCTION_TIMEOUT",
    "FOLLOW_UP_SHARE",
    "LOOKUP_SECONDS",
    "MIN_ANSWER_SECONDS",
    "MIN_SEND_SECONDS",
    "NOTIFY_RESERVE_SECONDS",
    "REPORT_MARGIN_SECONDS",
    "Budget",
    "smallest_workable_budget",
]

# veFaaS's own default function timeout: the budget when neither the context nor FUNCTION_TIMEOUT gives one.
DEFAULT_FUNCTION_TIMEOUT = 900.0
# The result is returned this long before the platform would end the invocation.
REPORT_MARGIN_SECONDS = 0.5

# Kept back from the time budget for logging the outcomes and notifying the webhook.
NOTIFY_RESERVE_SECONDS = 5.0
# The least time an export begun keeps for its answer: a prompt API answers in a fraction of it.
MIN_ANSWER_SECONDS = 2.0
# A request is sent only with at least this much time left to answer it; less would end as an unknown outcome.
MIN_SEND_SECONDS = 0.5
# What the look-ups before the first export may take (a scan lists the images, then their tasks).
LOOKUP_SECONDS = 2 * MIN_ANSWER_SECONDS
# The share of what is left of the budget the follow-up's object checks may take before the new exports
# get their turn: a slow or silent TOS defers the checks, never the exports.
FOLLOW_UP_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class Budget:
    """Time limits as ``Clock.monotonic()`` values: every request is done by ``send_by``, no new image's
    export begins after ``start_by``, and the webhook and the retagging after it are over by ``report_by``.
    ``seconds`` is the whole budget, for the reasons a result gives."""

    send_by: float
    start_by: float
    seconds: float
    report_by: float

    def follow_up_by(self, now: float) -> float:
        """When the follow-up's object checks must be done (``FOLLOW_UP_SHARE`` of what is left at ``now``)."""
        return now + FOLLOW_UP_SHARE * max(0.0, self.send_by - now)

    @classmethod
    def ending_at(cls, end: float, *, now: float, settings: Settings) -> Budget:
        """Split the time from ``now`` to ``end`` (both monotonic) for an invocation under ``settings``."""
        seconds = max(0.0, end - now)
        send_by = end - min(NOTIFY_RESERVE_SECONDS, 0.1 * seconds)
        return cls(
            send_by=send_by,
            start_by=send_by - _answer_allowance(seconds, settings),
            seconds=seconds,
            report_by=end - REPORT_MARGIN_SECONDS,
        )

    @classmethod
    def for_invocation(cls, remaining: float | None, *, now: float, settings: Settings) -> Budget:
        """The budget of an invocation the platform gives ``remaining`` seconds from ``now``; when it does not
        say, ``FUNCTION_TIMEOUT_SECONDS``, else veFaaS's default timeout."""
        if remaining is None:
            remaining = settings.function_timeout or DEFAULT_FUNCTION_TIMEOUT
        return cls.ending_at(now + max(0.0, remaining), now=now, settings=settings)


def _answer_allowance(seconds: float, settings: Settings) -> float:
    """The time an export begun keeps for its answer."""
    ceiling = settings.connect_timeout + settings.read_timeout
    return min(max(ceiling, MIN_ANSWER_SECONDS), max(MIN_ANSWER_SECONDS, seconds / 4))


def smallest_workable_budget(settings: Settings) -> float:
    """The shortest budget (seconds, rounded up to a tenth) that leaves ``LOOKUP_SECONDS`` for the look-ups
    before the first export must begin. Below it, an export begins only if those look-ups answer at once."""

    def room(seconds: float) -> float:
        budget = Budget.ending_at(seconds, now=0.0, settings=settings)
        return budget.start_by - LOOKUP_SECONDS

    low, high = 0.0, DEFAULT_FUNCTION_TIMEOUT
    for _ in range(60):  # room() grows with the budget, so halving finds where it crosses zero
        middle = (low + high) / 2
        low, high = (middle, high) if room(middle) < 0 else (low, middle)
    return round(-(-high // 0.1) * 0.1, 1)
