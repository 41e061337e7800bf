"""How the entry answers for follow-up outcomes: HTTP status, retrying, and the log level."""

from __future__ import annotations

import json

from structlog.testing import capture_logs

from handler.entry import _report, http_response
from handler.models.results import ErrorInfo, ImageOutcome, InvocationResult

EXPORT_FAILED = ImageOutcome(
    image_id="image-bad",
    status="export_failed",
    task_id="t-bad",
    error=ErrorInfo(code="ExportTaskFailed", message="export task t-bad Failed"),
)
EXPORTED = ImageOutcome(image_id="image-ok", status="exported", task_id="t-ok", size_bytes=1, verified=True)
QUEUED = ImageOutcome(image_id="image-later", status="queued", reason="EXPORT_MAX_IN_FLIGHT=3")


def test_an_export_that_ended_badly_is_a_502_that_is_not_retried() -> None:
    """An export_failed result makes ok false and the HTTP status 502 without Retry-After: re-running the
    request cannot change how an earlier export ended, and the invocation does not raise."""
    result = InvocationResult.of("http", "evt-1", (EXPORTED, EXPORT_FAILED))

    response = http_response(result)

    assert response["statusCode"] == 502
    assert "Retry-After" not in response["headers"]
    assert json.loads(response["body"])["ok"] is False
    assert not result.should_raise


def test_exported_and_queued_results_are_ok() -> None:
    """exported and queued leave ok true: a 200, nothing to retry."""
    result = InvocationResult.of("http", "evt-1", (EXPORTED, QUEUED))

    assert http_response(result)["statusCode"] == 200


def test_export_failed_is_logged_as_an_error_with_its_code() -> None:
    """The log line of an export_failed outcome is at error level and carries its code; exported is info
    with its size."""
    with capture_logs() as logs:
        _report(InvocationResult.of("timer", "evt-1", (EXPORTED, EXPORT_FAILED)))

    lines = {line["image_id"]: line for line in logs if line["event"] == "image.outcome"}
    assert lines["image-bad"]["log_level"] == "error"
    assert lines["image-bad"]["error"]["code"] == "ExportTaskFailed"
    assert lines["image-ok"]["log_level"] == "info"
    assert lines["image-ok"]["size_bytes"] == 1
