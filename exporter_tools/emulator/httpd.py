"""The HTTP plumbing of the local gateway: a threading server on 127.0.0.1 that hands each request to an
``Answerer`` (the ``OpenApiEmulator``) and writes its ``Reply``, or closes the connection with no answer.

The gateway's logic is transport-free (``OpenApiEmulator.answer``); this module only reads and writes HTTP.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

__all__ = ["MAX_BODY", "Answerer", "GatewayServer", "Reply"]

MAX_BODY = 16 << 20


@dataclass(frozen=True, slots=True)
class Reply:
    """What the gateway answers to one HTTP request; ``drop`` closes the connection with no answer at all.
    A ``Content-Length`` among ``headers`` is sent as is (a HEAD answer's, whose body is never sent)."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    drop: bool = False


class Answerer(Protocol):
    """The transport-free gateway: the reply to one HTTP request."""

    def answer(
        self, *, method: str, target: str, headers: Mapping[str, str], body: bytes, loopback: bool
    ) -> Reply: ...


class GatewayServer(ThreadingHTTPServer):
    """Daemon threads, one per connection, and a record of open connections so ``close()`` ends them all."""

    daemon_threads = True
    gateway: Answerer

    def __init__(self, address: tuple[str, int], gateway: Answerer) -> None:
        super().__init__(address, _RequestHandler)
        self.gateway = gateway
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every connection thread waiting for a next request (keep-alive) so that it ends."""
        with self._open_lock:
            open_now = list(self._open)
        for connection in open_now:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request is normal under fault injection: say nothing."""


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle on, a kept-alive connection stalls 40 ms on each.
    disable_nagle_algorithm = True
    server: GatewayServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        gateway = self.server.gateway
        loopback = str(self.client_address[0]).startswith("127.") or self.client_address[0] == "::1"
        reply = gateway.answer(
            method=self.command, target=self.path, headers=headers, body=body, loopback=loopback
        )
        if reply.drop:
            # Commit then drop: the effect happened, and the client gets no answer at all.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        # send_response would add its own Date (the real clock): an answer that carries one keeps only it.
        self.send_response_only(reply.status)
        self.send_header("Server", self.version_string())
        if not any(name.lower() == "date" for name, _ in reply.headers):
            self.send_header("Date", self.date_time_string())
        for name, value in reply.headers:
            self.send_header(name, value)
        if not any(name.lower() == "content-length" for name, _ in reply.headers):
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: ``verbose`` prints one line per answer instead of an access log."""
