"""Test doubles shared across the suites: a clock that never really sleeps, an HTTP client facing an untrusted
certificate, and the ExportImage API's error table."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta

import httpcore
import httpx

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

__all__ = ["EXPORT_IMAGE_ERRORS", "FakeClock", "untrusted_tls_client"]

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


def _certificate_failure() -> httpx.ConnectError:
    """The error httpx raises when the server's certificate is not trusted: its ``ConnectError``, caused by
    httpcore's, caused by ``ssl.SSLCertVerificationError``."""
    reason = (
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate (_ssl.c:1000)"
    )
    try:
        try:
            try:
                raise ssl.SSLCertVerificationError(1, reason)
            except ssl.SSLError as exc:
                raise httpcore.ConnectError(str(exc)) from exc
        except httpcore.ConnectError as exc:
            raise httpx.ConnectError(str(exc)) from exc
    except httpx.ConnectError as raised:
        return raised


def untrusted_tls_client() -> tuple[httpx.Client, list[httpx.Request]]:
    """An HTTP client whose every request fails as against a server with an untrusted certificate (the error
    chained as httpx chains it, which respx's side effects do not keep), and the list of requests it got."""
    requests: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        raise _certificate_failure()

    return httpx.Client(transport=httpx.MockTransport(refuse)), requests


# The ExportImage error table of the API document (docs/facts.md §1): HTTP status, code, the class it must become.
EXPORT_IMAGE_ERRORS: list[tuple[int, str, type[ApiError]]] = [
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
