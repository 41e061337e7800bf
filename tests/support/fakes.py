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
    """The one fake :class:`handler.clock.Clock` of the suites; ``sleep`` never really waits.

    ``t`` is the monotonic reading; ``now()`` is ``wall`` moved on by as much as ``t`` moved from ``start``
    (``wall=None``: the real time moved on so, for an emulator whose signatures must stay fresh while its
    tasks progress). ``sleep`` records the wait in ``slept`` and the moment it ends in ``woke``, and moves
    ``t`` on, unless the clock is ``still`` (callers that never wait in line: time moves only when told).
    ``advance`` moves time on, ``set_now`` puts the wall clock at a moment; ``random()`` always draws
    ``jitter``, so backoff waits are exact. Called, it answers ``now()``: the emulator's ``clock``.
    """

    def __init__(
        self,
        start: float = 100.0,
        *,
        jitter: float = 1.0,
        wall: datetime | None = WALL_START,
        still: bool = False,
    ) -> None:
        self.t = start
        self.start = start
        self.jitter = jitter
        self.wall = wall
        self.still = still
        self.slept: list[float] = []
        self.woke: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.woke.append(self.t + seconds)
        if not self.still:
            self.t += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds`` (back, if negative), the wall clock with it."""
        self.t += seconds

    def set_now(self, moment: datetime) -> None:
        """Put the wall clock at ``moment`` (the monotonic reading moves by as much)."""
        self.t = self.start + (moment - self._wall()).total_seconds()

    def now(self) -> datetime:
        return self._wall() + timedelta(seconds=self.t - self.start)

    def __call__(self) -> datetime:
        return self.now()

    def random(self) -> float:
        return self.jitter

    def _wall(self) -> datetime:
        return self.wall if self.wall is not None else datetime.now(UTC)


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
