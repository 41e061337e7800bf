"""A loopback HTTP server that misbehaves on purpose: it drips its answer a byte at a time, or floods.

Every loop is bounded: a connection is served for at most ``lifetime`` seconds, and the server stops by
itself after that even if a test forgets to close it. ``sent`` counts the bytes that left the server.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Literal

__all__ = ["HostileServer", "http_head"]


def http_head(status: str = "200 OK", *, length: int, content_type: str = "application/json") -> bytes:
    """A status line and headers announcing ``length`` bytes of body."""
    return (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n").encode()


class HostileServer:
    """``drip``: sends ``at_once``, then ``answer`` one byte every ``interval`` seconds. ``flood``: sends
    ``at_once``, then ``flood_bytes`` of filler in 64 KiB writes, until the client hangs up."""

    def __init__(
        self,
        mode: Literal["drip", "flood"],
        *,
        answer: bytes = b"",
        at_once: bytes = b"",
        interval: float = 0.05,
        flood_bytes: int = 200 * 1024 * 1024,
        lifetime: float = 20.0,
    ) -> None:
        self.mode = mode
        self.answer = answer
        self.at_once = at_once
        self.interval = interval
        self.flood_bytes = flood_bytes
        self.lifetime = lifetime
        self.sent = 0
        self.connections = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._ends_at = time.monotonic() + lifetime
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _over(self) -> bool:
        return self._stop.is_set() or time.monotonic() > self._ends_at

    def _accept(self) -> None:
        while not self._over():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _count(self, n: int) -> None:
        with self._lock:
            self.sent += n

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(1.0)
            try:
                connection.recv(65536)  # the request (its head is all a misbehaving server needs)
                connection.sendall(self.at_once)
                self._count(len(self.at_once))
                if self.mode == "drip":
                    self._drip(connection)
                else:
                    self._flood(connection)
            except OSError:
                return  # the client hung up: what these tests want

    def _drip(self, connection: socket.socket) -> None:
        for index in range(len(self.answer)):
            if self._over():
                return
            connection.sendall(self.answer[index : index + 1])
            self._count(1)
            time.sleep(self.interval)

    def _flood(self, connection: socket.socket) -> None:
        filler = b"x" * 65536
        remaining = self.flood_bytes
        while remaining > 0 and not self._over():
            piece = filler[: min(remaining, len(filler))]
            connection.sendall(piece)
            self._count(len(piece))
            remaining -= len(piece)
