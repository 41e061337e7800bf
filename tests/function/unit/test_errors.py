"""Every API error code lands in the error class whose retry behaviour it needs."""

from __future__ import annotations

import pytest

from handler.errors import (
    RetryableApiError,
    TerminalApiError,
    ThrottledError,
    UnknownOutcomeError,
    api_error_for,
)
from tests.support.fakes import SEED_ERRORS

GATEWAY = [
    (400, "InvalidTimestamp", TerminalApiError),
    (401, "InvalidAccessKey", TerminalApiError),
    (401, "SignatureDoesNotMatch", TerminalApiError),
    (403, "AccessDenied", TerminalApiError),
    (401, "InvalidSecretToken", TerminalApiError),
    (429, "FlowLimitExceeded", ThrottledError),
]
FALLBACK = [
    (400, "SomethingNew", TerminalApiError),
    (409, "Conflict.Unknown", TerminalApiError),
    (429, "SomethingThrottly", ThrottledError),
    (502, "BadGateway", RetryableApiError),
    (503, "ServiceUnavailable", RetryableApiError),
    (200, "InternalError", RetryableApiError),
    (200, "InvalidImage.NotFound", TerminalApiError),
]


@pytest.mark.parametrize(("status", "code", "kind"), SEED_ERRORS + GATEWAY + FALLBACK)
def test_codes_map_to_their_retry_class(status: int, code: str, kind: type[Exception]) -> None:
    """Each seed and gateway code, and unknown codes by HTTP status, get the class that decides retries."""
    error = api_error_for(status, code, "message", request_id="req-1", action="ExportImage")
    assert type(error) is kind
    assert (error.code, error.http_status, error.request_id) == (code, status, "req-1")
    assert error.retryable is (kind is not TerminalApiError)


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
