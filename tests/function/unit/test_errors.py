"""Every API error code lands in the error class whose retry behaviour it needs."""

from __future__ import annotations

import pathlib
import re

import pytest

from handler import errors
from handler.errors import (
    ERROR_CODES,
    AccessDenied,
    ApiError,
    AuthenticationFailed,
    BucketNotFound,
    ImageNotFound,
    ImageNotReady,
    ObjectNotFound,
    RangeNotSatisfiable,
    RetryableApiError,
    ServerError,
    TerminalApiError,
    Throttled,
    TosAccessDenied,
    UnknownOutcomeError,
    api_error_for,
    error_for,
    fix_for,
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
    "code", sorted(c for c, row in ERROR_CODES.items() if row.source in ("api", "gateway", "tos"))
)
def test_each_answer_code_in_the_table_has_its_class_retryability_and_fix(code: str) -> None:
    """Every API or TOS code the exporter reacts to is typed by the one table: class, retryability, fix."""
    row = ERROR_CODES[code]
    error = api_error_for(400, code, "message")
    assert type(error) is row.kind
    assert issubclass(row.kind, ApiError)
    assert error.retryable is row.retryable
    assert error.code == code
    assert row.fix
    assert "\n" not in row.fix


def _codes_made_in_the_package() -> dict[str, str]:
    """Every error code the function's code names: ``code="…"``, ``error_for("…"``, a class's ``code = "…"``
    and a comparison with a code, mapped to the file that names it."""
    root = pathlib.Path(__file__).resolve().parents[3] / "handler"
    pattern = re.compile(r"""(?:\bcode\s*=\s*|error_for\(\s*|\.code\s*==\s*|\bcode\s*==\s*)"([^"]+)\"""")
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        if path.name == "errors.py" and path.parent == root:
            continue
        for code in pattern.findall(path.read_text(encoding="utf-8")):
            found.setdefault(code, str(path.relative_to(root.parent)))
    return found


def test_every_error_code_the_function_makes_is_in_the_table() -> None:
    """A code made outside ``ERROR_CODES`` would reach users with no class and no fix line: none is."""
    made = _codes_made_in_the_package()
    assert "InternalError" in made  # the scan sees the entry's own code
    # webhook platforms' success codes ("0") are the platforms' words, not errors the exporter makes
    outside = {code: where for code, where in made.items() if code not in ERROR_CODES and code != "0"}
    assert outside == {}


def test_every_exporter_error_class_code_is_in_the_table() -> None:
    """The exporter's own error classes name codes the table has, with a fix line for each."""

    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.ExporterError) and "code" in vars(value)
    ]
    assert len(classes) >= 5
    for cls in classes:
        if cls is errors.ExporterError:
            continue
        assert cls.code in ERROR_CODES, cls.__name__
        assert ERROR_CODES[cls.code].fix


@pytest.mark.parametrize(
    "code", sorted(c for c, row in ERROR_CODES.items() if row.source in ("transport", "exporter"))
)
def test_each_code_the_exporter_makes_itself_has_a_fix(code: str) -> None:
    """Transport failures and values refused before sending get the table's class and fix line."""
    row = ERROR_CODES[code]
    assert row.fix
    assert "\n" not in row.fix
    if issubclass(row.kind, ApiError):
        error = error_for(code, "message", action="ExportImage")
        assert type(error) is row.kind
        assert error.code == code
        assert error.retryable is row.retryable


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (404, "NoSuchBucket", BucketNotFound),
        (404, "NoSuchKey", ObjectNotFound),
        (416, "InvalidRange", RangeNotSatisfiable),
        (403, "RequestTimeTooSkewed", AuthenticationFailed),
        (403, "TosAccessDenied.PutObject", TosAccessDenied),
    ],
)
def test_tos_answers_are_typed_by_the_table(status: int, code: str, kind: type[ApiError]) -> None:
    """TOS's own codes get their class: a missing bucket is the same BucketNotFound ECS's answer gives."""
    error = api_error_for(status, code, "message", action="GetObject")
    assert type(error) is kind
    assert not error.retryable


@pytest.mark.parametrize("action", ["GetObject", "PutObject", "DeleteObject", "HeadBucket"])
def test_a_tos_denial_is_access_denied_and_its_fix_names_the_permission(action: str) -> None:
    """Each TosAccessDenied.<Action> is an AccessDenied whose fix names tos:<Action> for the function's role."""
    error = api_error_for(403, f"TosAccessDenied.{action}", "denied", action=action)
    assert isinstance(error, AccessDenied)
    assert f"tos:{action}" in (fix_for(error.code) or "")
