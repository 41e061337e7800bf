"""Every error the exporter raises, as one small tree. Retry policy reads the type, never a string.

::

    ExporterError
    ├── InvalidEvent              the event is malformed; the message names the field (never retried)
    ├── ConfigurationError        the environment or a credential file is wrong; names the variable or file
    │   └── NoCredentials         no credential source is set at all
    ├── BudgetExhausted           the time budget ran out before a call could start: nothing sent, retry later
    └── ApiError                  the OpenAPI answered with an error, or did not answer at all
        ├── TerminalApiError      the same request can never succeed: 4xx, signature, credentials, access
        ├── RetryableApiError     nothing was started, sending again is safe: 5xx, transport before send,
        │   │                     OperationDenied.ResourceLocked
        │   └── ThrottledError    HTTP 429 / FlowLimitExceeded: slow down, then send again
        └── UnknownOutcomeError   the request was sent and no answer came back (read timeout, reset):
                                  for a write, look the effect up before sending it again

Inner code raises these; the entry point catches them once and turns them into results. Messages never
carry a credential: they name the variable, the file or the field instead.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "BudgetExhausted",
    "ConfigurationError",
    "ExporterError",
    "InvalidEvent",
    "InvocationIncomplete",
    "MalformedResponse",
    "NoCredentials",
    "RetryableApiError",
    "TerminalApiError",
    "ThrottledError",
    "UnknownOutcomeError",
    "api_error_for",
]


class ExporterError(Exception):
    """Base of every error the exporter raises on purpose."""

    code: str = "ExporterError"
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidEvent(ExporterError):
    """The event cannot be understood; ``field`` says where (a dotted path, ``""`` for the whole event)."""

    code = "InvalidEvent"

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class ConfigurationError(ExporterError):
    """The deployment is misconfigured; ``source`` names the variable or file to fix."""

    code = "ConfigurationError"

    def __init__(self, message: str, *, source: str = "") -> None:
        super().__init__(f"{source}: {message}" if source else message)
        self.source = source


class NoCredentials(ConfigurationError):
    """No credential source is set at all (neither variable pair nor a credential file)."""


class ApiError(ExporterError):
    """An OpenAPI call failed. ``code`` is the API's error code (or a transport name like ``ReadTimeout``)."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        http_status: int | None = None,
        request_id: str | None = None,
        action: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
        self.request_id = request_id
        self.action = action
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f" ({self.action}, HTTP {self.http_status})" if self.http_status else f" ({self.action})"
        return f"{self.code}: {self.message}{where if self.action else ''}"


class TerminalApiError(ApiError):
    """Sending the same request again cannot succeed: fix the input, the credentials or the permissions."""

    retryable = False


class RetryableApiError(ApiError):
    """Nothing was started; the same request may succeed later."""

    retryable = True


class ThrottledError(RetryableApiError):
    """The API is rate limiting us (HTTP 429, ``FlowLimitExceeded``)."""


class UnknownOutcomeError(ApiError):
    """The request left us but no answer arrived: it may or may not have taken effect."""

    retryable = True


# The seed's error table, with the gateway codes of docs/facts.md §2. Codes not listed fall back on the HTTP status.
_TERMINAL_CODES = frozenset(
    {
        "InvalidImageForExportImage.UnSupported",
        "InvalidImageStatus",
        "InvalidTOSPrefix.Malformed",
        "InvalidTosPutObject.AccessDenied",
        "MissingParameter.ImageId",
        "MissingParameter.TOSBucket",
        "MissingParameter.TOSPrefix",
        "InvalidImage.NotFound",
        "InvalidTOSBucket.NotFound",
        "InvalidTimestamp",
        "InvalidAccessKey",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "InvalidSecretToken",
    }
)
_RETRYABLE_CODES = frozenset({"InternalError", "OperationDenied.ResourceLocked", "ServiceUnavailable"})
_THROTTLE_CODES = frozenset({"FlowLimitExceeded"})


def api_error_for(
    http_status: int,
    code: str,
    message: str,
    *,
    request_id: str | None = None,
    action: str = "",
    retry_after: float | None = None,
) -> ApiError:
    """Build the typed error for an API error answer: the code decides, else the HTTP status does."""
    kind: type[ApiError]
    if code in _THROTTLE_CODES or (code not in _TERMINAL_CODES and http_status == 429):
        kind = ThrottledError
    elif code in _TERMINAL_CODES:
        kind = TerminalApiError
    elif code in _RETRYABLE_CODES or http_status >= 500:
        kind = RetryableApiError
    else:
        kind = TerminalApiError
    return kind(
        message,
        code=code,
        http_status=http_status,
        request_id=request_id,
        action=action,
        retry_after=retry_after,
    )


class BudgetExhausted(ExporterError):
    """The invocation's time budget ran out before the call could be made: nothing was sent, do it later."""

    code = "TimeBudgetExhausted"
    retryable = True


class InvocationIncomplete(Exception):
    """Raised by the entry, after logging and notifying, when anything was deferred or failed retryably, so
    that the trigger's retry policy runs the event again (the dedupe makes that safe). ``result`` is the
    invocation's result, exactly as it would have been returned."""

    def __init__(self, result: dict[str, object], *, deferred: int, failed: int) -> None:
        super().__init__(
            f"{deferred} image(s) deferred and {failed} failed retryably: run this event again "
            "(images already exported are skipped)"
        )
        self.result = result
        self.deferred = deferred
        self.failed = failed


class MalformedResponse(UnknownOutcomeError):
    """An answer arrived but cannot be read (too big, nested too deep, not the API's shape): for a write,
    whether it took effect is unknown, as when no answer came."""

    def __init__(
        self, message: str, *, http_status: int | None = None, request_id: str | None = None, action: str = ""
    ) -> None:
        super().__init__(
            message, code="MalformedResponse", http_status=http_status, request_id=request_id, action=action
        )
