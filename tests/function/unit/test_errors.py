"""Every API error code lands in the error class whose retry behaviour it needs."""

from __future__ import annotations

import pytest

from handler.errors import (
    ERROR_CODES,
    AccessDenied,
    ApiError,
    AuthenticationFailed,
    ImageNotFound,
    ImageNotReady,
    RetryableApiError,
    ServerError,
    TerminalApiError,
    Throttled,
    UnknownOutcomeError,
    api_error_for,
)
from tests.support.fakes import EXPORT_IMAGE_ERRORS

GATEWAY = [
    (400, "InvalidTimestamp", AuthenticationFailed),
    (401, "InvalidAccessKey", AuthenticationFailed),
    (401, "SignatureDoesNotMatch", AuthenticationFailed),
    (403, "AccessDenied", AccessDenied),
    (401, "InvalidSecretToken", AuthenticationFailed),
    (429, "FlowLimitExceeded", Throttled),
]
FALLBACK = [
    (400, "SomethingNew", TerminalApiError),
    (409, "Conflict.Unknown", TerminalApiError),
    (429, "SomethingThrottly", Throttled),
    (502, "BadGateway", RetryableApiError),
    (503, "ServiceUnavailable", ServerError),
    (200, "InternalError", ServerError),
    (200, "InvalidImage.NotFound", ImageNotFound),
    (429, "InvalidImageStatus", ImageNotReady),
    (400, "ReadTimeout", TerminalApiError),
]


@pytest.mark.parametrize(("status", "code", "kind"), EXPORT_IMAGE_ERRORS + GATEWAY + FALLBACK)
def test_codes_map_to_their_retry_class(status: int, code: str, kind: type[Exception]) -> None:
    """Each code of the ExportImage API's error table and the gateway, and unknown codes by HTTP status, get
    the class that decides retries."""
    error = api_error_for(status, code, "message", request_id="req-1", action="ExportImage")
    assert type(error) is kind
    assert (error.code, error.http_status, error.request_id) == (code, status, "req-1")
    assert error.retryable is (not issubclass(kind, TerminalApiError))


def test_message_names_code_and_action() -> None:
    """A person reading the error sees the code, the message and which call failed."""
    error = api_error_for(
        404, "InvalidImage.NotFound", "The specified image does not exist.", action="ExportImage"
    )
    assert str(error) == "InvalidImage.NotFound: The specified image does not exist. (ExportImage, HTTP 404)"


def test_unknown_outcome_is_retryable_but_not_a_plain_retry() -> None:
    """An unknown outcome is its own kind: retry only after a look, never as if nothing happened."""
    error = UnknownOutcomeError("lost", code="ReadTimeout", action="ExportImage")
    assert error.retryable
    assert not isinstance(error, RetryableApiError)


@pytest.mark.parametrize(
    "code", sorted(c for c, row in ERROR_CODES.items() if row.source in ("api", "gateway"))
)
def test_each_answer_code_in_the_table_has_its_class_retryability_and_fix(code: str) -> None:
    """Every API code the exporter reacts to is typed by the one table: class, retryability, one-line fix."""
    row = ERROR_CODES[code]
    error = api_error_for(400, code, "message")
    assert type(error) is row.kind
    assert issubclass(row.kind, ApiError)
    assert error.retryable is row.retryable
    assert error.code == code
    assert row.fix
    assert "\n" not in row.fix
