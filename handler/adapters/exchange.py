"""One HTTP exchange with hard limits: an overall deadline, and a cap on how much of the answer is read.

httpx bounds each socket read, not the exchange: a server that drips its answer one byte at a time never trips
a read timeout and can hold a caller for as long as it likes. :func:`exchange` gives every exchange a number of
seconds it may take in all (connect, send, status line, headers, body) and reads at most ``max_bytes`` of the
body, so neither a slow nor a flooding server can hold the invocation past its budget or grow its memory.

Clients made by :func:`bounded_client` enforce the deadline on every socket operation, the status line and
headers included (each read waits at most what the exchange has left). With any other client (a test's mock
transport) the deadline is still checked between the body's chunks.
"""

from __future__ import annotations

import math
import ssl
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpcore
import httpx

__all__ = ["Answer", "bounded_client", "certificate_rejected", "exchange", "http_date"]

# The real (time.monotonic) moment the exchange running in this thread must be over; None: no overall bound.
_deadline: ContextVar[float | None] = ContextVar("exchange_deadline", default=None)


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back: the status, headers and at most ``max_bytes`` of the body.

    ``complete`` is False when the body was longer and only its first ``max_bytes`` were read; ``encoding`` is
    the answer's ``Content-Encoding`` (the body is left empty for anything but ``identity``: it is never
    decoded, so a compressed answer cannot expand in memory). ``sent`` are the headers of the request as
    signed and sent.
    """

    status: int
    reason: str
    headers: httpx.Headers
    body: bytes
    complete: bool
    encoding: str
    sent: httpx.Headers


def http_date(value: str | None) -> datetime | None:
    """An HTTP date (``Tue, 24 Nov 2026 08:30:00 GMT``: a ``Date`` or ``Last-Modified`` header) as an aware UTC
    datetime; None when absent or odd."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _or_clients(given: float | None, clients: float | None) -> float:
    if given is not None:
        return given
    return clients if clients is not None else math.inf


def exchange(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    seconds: float,
    max_bytes: int | Callable[[int], int],
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | None = None,
) -> Answer:
    """Send one request and read its answer, all within ``seconds`` (``inf``: per-read timeouts only).

    The connect and read timeouts (by default the client's own; none set: no limit but ``seconds``) are
    clipped to ``seconds``. ``max_bytes`` may be a function of the answer's status, for a request whose
    success and error bodies differ in size (a ranged read takes its range, an error its document). Raises ``httpx.TransportError`` as httpx does,
    and ``httpx.ReadTimeout`` when the answer is still arriving at the deadline. Redirects are not followed.
    """
    connect_timeout = _or_clients(connect_timeout, client.timeout.connect)
    read_timeout = _or_clients(read_timeout, client.timeout.read)
    finite = math.isfinite(seconds)
    deadline = time.monotonic() + seconds if finite else None
    timeout = httpx.Timeout(
        min(read_timeout, seconds),
        connect=min(connect_timeout, seconds),
        pool=min(connect_timeout, seconds),
    )
    request_headers = {"Accept-Encoding": "identity", **(headers or {})}
    token = _deadline.set(deadline)
    try:
        with client.stream(
            method,
            url,
            content=content,
            headers=request_headers,
            auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
            timeout=timeout,
            follow_redirects=False,
        ) as response:
            encoding = response.headers.get("content-encoding", "identity").strip().lower() or "identity"
            body, complete = b"", False
            if encoding == "identity":
                limit = max_bytes(response.status_code) if callable(max_bytes) else max_bytes
                body, complete = _read_body(response, limit, deadline)
            return Answer(
                status=response.status_code,
                reason=response.reason_phrase,
                headers=response.headers,
                body=body,
                complete=complete,
                encoding=encoding,
                sent=response.request.headers,
            )
    finally:
        _deadline.reset(token)


def certificate_rejected(exc: BaseException) -> bool:
    """Whether a transport failure comes from the server's TLS certificate failing verification: an
    ``ssl.SSLCertVerificationError`` among the exception's causes (httpx wraps it in httpcore's ``ConnectError``
    and that in its own)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _read_body(response: httpx.Response, max_bytes: int, deadline: float | None) -> tuple[bytes, bool]:
    """At most ``max_bytes`` of the raw body, and whether that was all of it."""
    try:
        read_already = response.content  # a mock transport's answer arrives whole
    except httpx.ResponseNotRead:
        pass
    else:
        return read_already[:max_bytes], len(read_already) <= max_bytes
    buffer = bytearray()
    for chunk in response.iter_raw():
        room = max_bytes - len(buffer)
        if len(chunk) > room:
            buffer += chunk[:room]
            return bytes(buffer), False
        buffer += chunk
        if deadline is not None and time.monotonic() > deadline:
            msg = "the answer was still arriving when the exchange's time ran out"
            raise httpx.ReadTimeout(msg, request=response.request)
    return bytes(buffer), True


def bounded_client(*, connect_timeout: float, read_timeout: float, max_connections: int = 32) -> httpx.Client:
    """An ``httpx.Client`` whose every socket operation waits at most what the current exchange has left.

    ``SSL_CERT_FILE`` is honoured (httpx reads it when the transport is built)."""
    transport = httpx.HTTPTransport(limits=httpx.Limits(max_connections=max_connections))
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, httpcore.NetworkBackend):
        pool._network_backend = _BoundedBackend(backend)  # type: ignore[union-attr]
    timeout = httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout)
    return httpx.Client(transport=transport, timeout=timeout)


def _clipped(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` cut to what the current exchange has left; ``expired`` is raised when nothing is left."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        msg = "the exchange's time ran out"
        raise expired(msg)
    return left if timeout is None else min(timeout, left)


class _BoundedStream(httpcore.NetworkStream):
    """A socket stream whose reads and writes never wait past the current exchange's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clipped(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clipped(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(
            ssl_context, server_hostname, _clipped(timeout, httpcore.ConnectTimeout)
        )
        return _BoundedStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _BoundedBackend(httpcore.NetworkBackend):
    """httpcore's socket backend, its connections wrapped in :class:`_BoundedStream`."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        clipped = _clipped(timeout, httpcore.ConnectTimeout)
        return _BoundedStream(self._inner.connect_tcp(host, port, clipped, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        clipped = _clipped(timeout, httpcore.ConnectTimeout)
        return _BoundedStream(self._inner.connect_unix_socket(path, clipped, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)
