"""Test doubles shared across the suites: a clock that never really sleeps, and the ExportImage API's error
table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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

WALL_START = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)


class FakeClock:
    """A :class:`handler.clock.Clock` whose ``sleep`` only moves time forward and records the wait.

    ``t`` is the monotonic reading; ``now()`` is ``wall`` moved on by the same amount; ``random()`` always
    draws ``jitter``, so backoff waits are exact.
    """

    def __init__(self, start: float = 100.0, *, jitter: float = 1.0, wall: datetime = WALL_START) -> None:
        self.t = start
        self.start = start
        self.jitter = jitter
        self.wall = wall
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += max(0.0, seconds)

    def now(self) -> datetime:
        return self.wall + timedelta(seconds=self.t - self.start)

    def random(self) -> float:
        return self.jitter


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
