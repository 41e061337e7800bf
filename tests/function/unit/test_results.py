"""The result model with the follow-up statuses: ok, counts, raising and invoke's exit status per the contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import handler
from handler import cli
from handler.models.results import STATUSES, ErrorInfo, ImageOutcome, Status
from tests.support.builders import result_of

FAILED_FOR_GOOD = ErrorInfo(code="InvalidImage.NotFound", message="no such image")
RETRYABLE = ErrorInfo(code="InternalError", message="try again", retryable=True)
TASK_FAILED = ErrorInfo(code="ExportTaskFailed", message="task t-1 failed")


def outcome(status: Status, error: ErrorInfo | None = None) -> ImageOutcome:
    return ImageOutcome(image_id=f"image-{status}", status=status, error=error)


@pytest.mark.parametrize(
    ("statuses", "ok"),
    [
        (("started", "skipped", "queued", "exported"), True),
        (("queued",), True),
        (("expired", "would_expire"), True),
        (("exported", "export_failed"), False),
        (("started", "deferred"), False),
        (("started", "failed"), False),
        ((), True),
    ],
)
def test_ok_is_false_only_for_failed_deferred_or_export_failed(
    statuses: tuple[Status, ...], ok: bool
) -> None:
    """queued, exported, expired and would_expire are not errors; failed, deferred and export_failed make ok
    false."""
    error = {"failed": FAILED_FOR_GOOD, "export_failed": TASK_FAILED}
    assert result_of(*(outcome(s, error.get(s)) for s in statuses)).ok is ok


@given(st.lists(st.sampled_from(STATUSES), max_size=12))
def test_counts_cover_every_status_and_add_up(statuses: list[Status]) -> None:
    """counts() lists every status, the follow-up ones included, and sums to the number of results."""
    counts = result_of(*(outcome(s) for s in statuses)).counts
    assert list(counts) == list(STATUSES)
    assert sum(counts.values()) == len(statuses)
    assert all(counts[s] == statuses.count(s) for s in STATUSES)


@pytest.mark.parametrize(
    ("item", "raises"),
    [
        (outcome("queued"), False),
        (outcome("exported"), False),
        (outcome("expired"), False),
        (outcome("would_expire"), False),
        (outcome("export_failed", TASK_FAILED), False),
        (outcome("deferred"), True),
        (outcome("failed", RETRYABLE), True),
        (outcome("failed", FAILED_FOR_GOOD), False),
    ],
)
def test_only_deferred_or_retryable_failures_ask_for_a_rerun(item: ImageOutcome, raises: bool) -> None:
    """A queued, exported or export_failed result never makes the entry raise: rerunning cannot change it."""
    assert result_of(item).should_raise is raises


def test_an_exported_result_publishes_the_objects_fields() -> None:
    """An exported result carries task, bucket, key, size, CRC-64, duration and verified in its JSON."""
    item = ImageOutcome(
        image_id="image-a",
        status="exported",
        task_id="t-1",
        tos_bucket="b-1",
        object_key="imgexport_image-a_system.qcow2",
        size_bytes=42_949_672_960,
        crc64="12345678901234567890",
        duration_s=1080.0,
        verified=True,
    )
    (published,) = result_of(item).to_json()["results"]
    assert published == {
        "image_id": "image-a",
        "status": "exported",
        "task_id": "t-1",
        "tos_bucket": "b-1",
        "object_key": "imgexport_image-a_system.qcow2",
        "size_bytes": 42_949_672_960,
        "crc64": "12345678901234567890",
        "duration_s": 1080.0,
        "verified": True,
    }


def test_older_statuses_publish_no_follow_up_fields() -> None:
    """A started result's JSON has no size, crc64, duration or verified keys (unset fields are left out)."""
    (published,) = result_of(outcome("started")).to_json()["results"]
    assert set(published) == {"image_id", "status"}


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        (("started", "queued", "exported"), 0),
        (("exported", "export_failed"), 1),
        (("skipped", "queued"), 0),
    ],
)
def test_invoke_exits_0_for_queued_and_exported_and_1_for_export_failed(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    statuses: tuple[Status, ...],
    code: int,
) -> None:
    """python -m handler invoke maps the entry's result to the contract's exit status and prints it whole."""
    error = {"export_failed": TASK_FAILED}
    result = result_of(*(outcome(s, error.get(s)) for s in statuses))

    def entry(event: dict[str, Any], context: object) -> dict[str, Any]:
        return result.to_json()

    monkeypatch.setattr(handler, "handler", entry)
    event = tmp_path / "event.json"
    event.write_text('{"ImageId": "image-a"}', encoding="utf-8")
    assert cli.invoke(cli.Invocation(str(event), 5.0)) == code
    printed = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in printed["results"]] == list(statuses)
