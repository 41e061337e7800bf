"""Test doubles shared across the suites: a clock that never really sleeps, and the seed's error table."""

from __future__ import annotations

from handler.errors import ApiError, RetryableApiError, TerminalApiError

__all__ = ["SEED_ERRORS", "FakeClock"]


class FakeClock:
    """A monotonic clock whose ``sleep`` only moves time forward and records the wait."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


# The ExportImage error table of the API document (docs/facts.md §1): HTTP status, code, the class it must become.
SEED_ERRORS: list[tuple[int, str, type[ApiError]]] = [
    (400, "InvalidImageForExportImage.UnSupported", TerminalApiError),
    (400, "InvalidImageStatus", TerminalApiError),
    (400, "InvalidTOSPrefix.Malformed", TerminalApiError),
    (400, "InvalidTosPutObject.AccessDenied", TerminalApiError),
    (400, "MissingParameter.ImageId", TerminalApiError),
    (400, "MissingParameter.TOSBucket", TerminalApiError),
    (400, "MissingParameter.TOSPrefix", TerminalApiError),
    (404, "InvalidImage.NotFound", TerminalApiError),
    (404, "InvalidTOSBucket.NotFound", TerminalApiError),
    (412, "OperationDenied.ResourceLocked", RetryableApiError),
    (500, "InternalError", RetryableApiError),
]
