"""Test doubles shared across the suites: a clock that never really sleeps, and the ExportImage API's error
table."""

from __future__ import annotations

from handler.errors import (
    ApiError,
    BucketAccessDenied,
    BucketNotFound,
    ImageNotExportable,
    ImageNotFound,
    ImageNotReady,
    InvalidParameter,
    ResourceLocked,
    ServerError,
)

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
    (400, "InvalidImageForExportImage.UnSupported", ImageNotExportable),
    (400, "InvalidImageStatus", ImageNotReady),
    (400, "InvalidTOSPrefix.Malformed", InvalidParameter),
    (400, "InvalidTosPutObject.AccessDenied", BucketAccessDenied),
    (400, "MissingParameter.ImageId", InvalidParameter),
    (400, "MissingParameter.TOSBucket", InvalidParameter),
    (400, "MissingParameter.TOSPrefix", InvalidParameter),
    (404, "InvalidImage.NotFound", ImageNotFound),
    (404, "InvalidTOSBucket.NotFound", BucketNotFound),
    (412, "OperationDenied.ResourceLocked", ResourceLocked),
    (500, "InternalError", ServerError),
]
