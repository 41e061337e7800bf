"""What a notice says about follow-up outcomes: the chat lines, the headline, when it is sent, and its id."""

from __future__ import annotations

from dataclasses import replace

import pytest

from handler.adapters.webhooks import should_notify
from handler.adapters.webhooks._formats import compose_text, headline, message_id
from handler.adapters.webhooks._lines import human_duration, human_size
from handler.models.results import ImageOutcome
from handler.models.settings import NotifyWhen, WebhookFormat
from tests.support.builders import EXPORT_FAILED, EXPORTED, GIB, QUEUED, STARTED, outcome, result_of

SKIPPED = outcome("image-seen", "skipped", task_id="t-seen", reason="an export is already running")
DEFERRED = outcome("image-late", "deferred", reason="the time budget ran low")


@pytest.mark.parametrize("fmt", ["feishu", "slack"])
def test_finished_exports_get_their_own_chat_lines(fmt: WebhookFormat) -> None:
    """An exported image shows where it went, that it was verified, its disk count, size and how long it
    took; a failed one its task and the code with its fix."""
    text = compose_text(fmt, result_of(EXPORTED, EXPORT_FAILED), region="cn-beijing", bucket=None)

    assert (
        "✅ image-ok exported → tos://bkt/p_image-ok_system.qcow2 (verified, 3 disks, 40.0 GiB, 18 min)"
        in text
    )
    assert "❌ image-bad export failed (task t-bad): ExportTaskFailed → the API gives no reason" in text


def test_an_unverified_export_says_so_in_its_line() -> None:
    """An export TOS would not show is exported but marked not verified, with the reason."""
    unverified = replace(EXPORTED, size_bytes=None, verified=False, objects=None, reason="TOS said 403")

    text = compose_text("slack", result_of(unverified), region="cn-beijing", bucket=None)

    assert "(18 min, not verified: TOS said 403)" in text


@pytest.mark.parametrize(
    ("outcomes", "mark"),
    [((EXPORTED, STARTED), "✅"), ((EXPORTED, EXPORT_FAILED), "❌"), ((QUEUED,), "✅")],
)
def test_the_headline_is_never_a_tick_when_an_export_failed(
    outcomes: tuple[ImageOutcome, ...], mark: str
) -> None:
    """An export_failed result turns the headline's mark into ❌; queued and exported do not."""
    assert headline(result_of(*outcomes)).startswith(mark)


@pytest.mark.parametrize(
    ("outcomes", "when", "expected"),
    [
        ((EXPORTED,), "changes", True),
        ((EXPORT_FAILED,), "changes", True),
        ((QUEUED,), "changes", False),
        ((EXPORTED,), "failures", False),
        ((EXPORT_FAILED,), "failures", True),
    ],
)
def test_follow_up_outcomes_are_changes_and_export_failed_is_a_failure(
    outcomes: tuple[ImageOutcome, ...], when: NotifyWhen, expected: bool
) -> None:
    """WEBHOOK_NOTIFY=changes sends exported and export_failed; failures sends export_failed."""
    assert should_notify(result_of(*outcomes), when) is expected


def test_the_same_follow_up_outcomes_keep_their_webhook_id_across_runs() -> None:
    """A notice of follow-up outcomes only has the same webhook-id whichever run reports them, in any order
    (a run that could not retag reports them again)."""
    assert message_id(result_of(EXPORTED, EXPORT_FAILED, event_id="run-1")) == message_id(
        result_of(EXPORT_FAILED, EXPORTED, event_id="run-2")
    )


@pytest.mark.parametrize(
    "others",
    [(STARTED,), (QUEUED,), (SKIPPED, DEFERRED), (STARTED, SKIPPED, QUEUED, DEFERRED)],
    ids=["started", "queued", "skipped-deferred", "all"],
)
def test_a_re_report_keeps_its_webhook_id_whatever_else_the_run_did(others: tuple[ImageOutcome, ...]) -> None:
    """The id of a notice that carries follow-up outcomes depends on those alone: a later run (after a crash
    or a failed retag) that reports the same finished exports beside other results sends the same id, so
    the receiver drops the re-report."""
    first = message_id(result_of(EXPORTED, EXPORT_FAILED, event_id="run-1"))
    again = message_id(result_of(*others, EXPORT_FAILED, EXPORTED, event_id="run-2"))
    assert again == first
    assert message_id(result_of(EXPORTED, *others, event_id="run-1")) == message_id(
        result_of(EXPORTED, event_id="run-2")
    )


@pytest.mark.parametrize(
    "changed",
    [
        (replace(EXPORTED, image_id="image-other"), EXPORT_FAILED),
        (replace(EXPORTED, task_id="t-other"), EXPORT_FAILED),
        (replace(EXPORTED, status="export_failed"), EXPORT_FAILED),
        (EXPORTED,),
        (EXPORTED, EXPORT_FAILED, replace(EXPORTED, image_id="image-3", task_id="t-3")),
    ],
    ids=["image", "task", "status", "one-fewer", "one-more"],
)
def test_different_follow_up_outcomes_get_different_webhook_ids(changed: tuple[ImageOutcome, ...]) -> None:
    """Another image, task or outcome, or one outcome more or fewer, is another notice: another id, even
    from the same run with the same other results."""
    reported = message_id(result_of(EXPORTED, EXPORT_FAILED, STARTED, event_id="run-1"))
    assert message_id(result_of(*changed, STARTED, event_id="run-1")) != reported


def test_a_notice_without_follow_up_outcomes_keeps_the_event_in_its_id() -> None:
    """Without follow-up outcomes the id is the event's and its outcomes', as before: another run's notice
    of the same starts is another notice (the value is pinned: receivers already hold such ids)."""
    assert message_id(result_of(STARTED, QUEUED, event_id="evt-7")) == "msg_ee0c6877b42518ee116e8b0d510ae218"
    assert message_id(result_of(STARTED, event_id="run-1")) != message_id(
        result_of(STARTED, event_id="run-2")
    )


@pytest.mark.parametrize(
    ("size", "shown"),
    [(512, "512 B"), (1536, "1.5 KiB"), (20 * GIB, "20.0 GiB"), (3 * 1024 * GIB, "3.0 TiB")],
)
def test_sizes_read_in_binary_units(size: int, shown: str) -> None:
    """Object sizes are shown in B, KiB, MiB, GiB or TiB with one decimal."""
    assert human_size(size) == shown


@pytest.mark.parametrize(("seconds", "shown"), [(45, "45 s"), (18 * 60 + 10, "18 min"), (9000, "2.5 h")])
def test_durations_read_in_seconds_minutes_or_hours(seconds: float, shown: str) -> None:
    """How long an export took: seconds under a minute, minutes under two hours, else hours."""
    assert human_duration(seconds) == shown
