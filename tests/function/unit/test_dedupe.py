"""What counts as already exported or still running: the rule that keeps an image from being exported twice."""

from __future__ import annotations

import pytest

from handler.core.dedupe import dedupe
from handler.models.api import Task
from tests.support.builders import NOW, task


@pytest.mark.parametrize(
    ("tasks", "window", "skipped_by"),
    [
        ([], None, None),
        ([task("Pending")], None, "t-pending1"),
        ([task("Running")], 1.0, "t-running1"),
        ([task("Failed")], None, None),
        ([task("UnknownStatus")], 1.0, "t-unknownstatus1"),
        ([task("Failed"), task("Paused", hours_ago=9000)], 1.0, "t-paused9000"),
        ([task("Succeeded", hours_ago=5000)], None, "t-succeeded5000"),
        ([task("Succeeded", hours_ago=50)], 48.0, None),
        ([task("Succeeded", hours_ago=20)], 48.0, "t-succeeded20"),
        ([task("Succeeded", kind="CreateImage")], None, None),
        (
            [task("Failed"), task("Succeeded", hours_ago=3), task("Succeeded", hours_ago=2)],
            None,
            "t-succeeded2",
        ),
    ],
)
def test_dedupe_skips_active_and_succeeded_exports(
    tasks: list[Task], window: float | None, skipped_by: str | None
) -> None:
    """Pending, running, or succeeded-within-window exports make a new export unnecessary; failures don't."""
    found = dedupe(tasks, now=NOW, window_hours=window)
    assert (found.task.task_id if found.task else None) == skipped_by
    if skipped_by:
        assert found.reason


def test_a_task_status_not_known_counts_as_maybe_running_and_says_so() -> None:
    """An export task in a status the function does not know (UnknownStatus) may be running: no second
    export, and the reason names the status."""
    found = dedupe([task("UnknownStatus")], now=NOW, window_hours=None)
    assert found.task is not None
    assert "UnknownStatus" in found.reason
