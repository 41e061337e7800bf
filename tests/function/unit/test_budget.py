"""How the time budget is split: room for the webhook, for an export's answer, and for the look-ups first."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handler.core.budget import (
    LOOKUP_SECONDS,
    NOTIFY_RESERVE_SECONDS,
    Budget,
    smallest_workable_budget,
)
from handler.models.settings import Settings

DEFAULTS = Settings()  # 3 s to connect, 10 s to read


def test_a_twenty_second_budget_leaves_time_to_export() -> None:
    """With the default timeouts, a 20 s budget lets exports begin for 13 s, and every request ends 2 s
    before the budget does (for the log and the webhook)."""
    budget = Budget.ending_at(120.0, now=100.0, settings=DEFAULTS)
    assert budget.send_by == pytest.approx(118.0)
    assert budget.start_by == pytest.approx(113.0)
    assert budget.seconds == pytest.approx(20.0)


def test_a_long_budget_keeps_five_seconds_and_the_full_timeouts() -> None:
    """A 900 s budget keeps 5 s for the webhook and a whole connect + read for the last export's answer."""
    budget = Budget.ending_at(900.0, now=0.0, settings=DEFAULTS)
    assert budget.send_by == pytest.approx(900.0 - NOTIFY_RESERVE_SECONDS)
    assert budget.start_by == pytest.approx(900.0 - NOTIFY_RESERVE_SECONDS - 13.0)


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"VOLCENGINE_CONNECT_TIMEOUT": "60", "VOLCENGINE_READ_TIMEOUT": "300"},
        {"VOLCENGINE_READ_TIMEOUT": "1"},
    ],
)
def test_the_smallest_workable_budget_is_where_the_look_ups_fit(env: dict[str, str]) -> None:
    """At the smallest workable budget the look-ups before the first export have their time; a little less
    does not leave it."""
    settings = Settings.model_validate(env)
    smallest = smallest_workable_budget(settings)
    assert 0 < smallest < 20
    enough = Budget.ending_at(smallest, now=0.0, settings=settings)
    short = Budget.ending_at(smallest - 0.2, now=0.0, settings=settings)
    assert enough.start_by >= LOOKUP_SECONDS
    assert short.start_by < LOOKUP_SECONDS


@given(
    seconds=st.floats(min_value=0, max_value=900),
    connect=st.floats(min_value=0.1, max_value=60),
    read=st.floats(min_value=0.1, max_value=300),
)
def test_requests_always_end_inside_the_budget(seconds: float, connect: float, read: float) -> None:
    """Whatever the budget and timeouts: requests end before the budget does, exports begin before that,
    and the webhook's reserve is never more than 5 s."""
    settings = Settings.model_validate(
        {"VOLCENGINE_CONNECT_TIMEOUT": connect, "VOLCENGINE_READ_TIMEOUT": read}
    )
    budget = Budget.ending_at(1000.0 + seconds, now=1000.0, settings=settings)
    assert budget.start_by < budget.send_by <= 1000.0 + seconds
    assert 1000.0 + seconds - budget.send_by <= NOTIFY_RESERVE_SECONDS
