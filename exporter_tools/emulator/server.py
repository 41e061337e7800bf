"""A local Volcengine OpenAPI gateway: a real HTTP server on 127.0.0.1 in front of emulated services.

The gateway does what the real one does before a service sees a request: it checks the signature
(``SignatureDoesNotMatch``, ``InvalidAccessKey``… with their ``CodeN``), routes on the credential scope's
service, checks Action and Version, and wraps every answer in ``ResponseMetadata``. It can also misbehave on
purpose, reproducibly (``Faults`` with a seed): 500 ``InternalError``, 429 ``FlowLimitExceeded`` (at random,
or above a requests-per-second limit), added latency, and "commit then drop" (a write takes effect, then the
connection closes with no answer at all). Signatures are checked before any fault, as the gateway does.

A service is anything with the small ``ApiService`` interface: ECS lives in ``exporter_tools.emulator.ecs``; another
API (veFaaS: POST with JSON bodies) plugs in the same way, each keyed by its signature scope's service name.

``GET /__admin/stats`` (unsigned, loopback only) answers with ``stats()`` as JSON; ``POST /__admin/reset``
puts every service back to its starting state and clears the statistics.

This package is a development tool: the function itself never imports it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import socket
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Protocol
from urllib.parse import parse_qsl

import httpx

from exporter_tools.emulator.signature import verify_signature
from handler.adapters.signing import Credentials

__all__ = [
    "ADMIN_RESET_PATH",
    "ADMIN_STATS_PATH",
    "CHINA_STANDARD_TIME",
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_SECRET_KEY",
    "ApiAnswer",
    "ApiCall",
    "ApiService",
    "Faults",
    "OpenApiEmulator",
    "main",
    "request_id",
]

ADMIN_STATS_PATH = "/__admin/stats"
ADMIN_RESET_PATH = "/__admin/reset"
CHINA_STANDARD_TIME = timezone(timedelta(hours=8))
_MAX_BODY = 16 << 20
# The key pair the emulator accepts unless told otherwise: fakes, documented in the README.
DEFAULT_ACCESS_KEY = "AKLTemulator"
DEFAULT_SECRET_KEY = "emulator-secret-key"  # noqa: S105 - a documented fake

# The gateway's own error codes (docs/facts.md §2): HTTP status and CodeN (None where no CodeN is documented).
_GATEWAY_ERRORS: dict[str, tuple[int, int | None]] = {
    "InvalidTimestamp": (401, 100006),
    "InvalidAccessKey": (401, 100009),
    "SignatureDoesNotMatch": (401, 100010),
    "InvalidSecretToken": (401, None),
}


@dataclass(frozen=True, slots=True)
class Faults:
    """Misbehaviour on purpose. Rates are shares of requests in [0, 1]; ``drop_rate`` applies to writes
    that succeeded (the service says which: ExportImage), ``max_rps`` to every signed request."""

    error_rate: float = 0.0
    throttle_rate: float = 0.0
    drop_rate: float = 0.0
    max_rps: float | None = None
    latency_ms: float = 0.0

    def __post_init__(self) -> None:
        for name in ("error_rate", "throttle_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                msg = f"{name} must be between 0 and 1"
                raise ValueError(msg)
        if self.max_rps is not None and self.max_rps <= 0:
            msg = "max_rps must be above 0"
            raise ValueError(msg)
        if self.latency_ms < 0:
            msg = "latency_ms must not be negative"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One signed request, as a service sees it: Action, Version, the decoded query and the raw body."""

    method: str
    action: str
    version: str
    query: Mapping[str, str]
    body: bytes = b""
    content_type: str = ""


@dataclass(frozen=True, slots=True)
class ApiAnswer:
    """A service's answer: a ``Result``, or an error code with its HTTP status. ``committed`` marks a write
    that took effect, which the gateway may then drop (``Faults.drop_rate``)."""

    status: int = 200
    result: Mapping[str, Any] | None = None
    code: str | None = None
    message: str = ""
    committed: bool = False

    @classmethod
    def ok(cls, result: Mapping[str, Any], *, committed: bool = False) -> ApiAnswer:
        return cls(result=result, committed=committed)

    @classmethod
    def error(cls, status: int, code: str, message: str) -> ApiAnswer:
        return cls(status=status, code=code, message=message)


class ApiService(Protocol):
    """What the gateway needs from an emulated API. ``service`` is the signature scope's service name."""

    service: str
    version: str
    actions: frozenset[str]

    def handle(self, call: ApiCall) -> ApiAnswer:
        """Answer one request whose signature, Action and Version the gateway has checked."""
        ...

    def stats(self) -> dict[str, Any]:
        """What the service holds or did, for ``OpenApiEmulator.stats()`` (JSON-serialisable)."""
        ...

    def reset(self) -> None:
        """Go back to the starting state."""
        ...


class SideReply(Protocol):
    """An HTTP answer from a side service: sent as is (no body for HEAD)."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def body(self) -> bytes: ...


class SideService(Protocol):
    """A service on the same port that is not an OpenAPI one (TOS, ``exporter_tools.emulator.tos``): it
    claims its requests before the gateway looks at them, and answers them itself. ``name`` keys its
    statistics in ``stats()``."""

    name: str

    def claims(self, *, path: str, headers: Mapping[str, str]) -> bool: ...

    def answer(
        self, *, method: str, target: str, headers: Mapping[str, str], loopback: bool
    ) -> SideReply: ...

    def stats(self) -> dict[str, Any]: ...

    def reset(self) -> None: ...


def request_id(now: datetime, rng: random.Random) -> str:
    """A RequestId shaped like the gateway's: the time in UTC+8 to the second, then 20 random digits."""
    stamp = now.astimezone(CHINA_STANDARD_TIME).strftime("%Y%m%d%H%M%S")
    return stamp + "".join(rng.choice("0123456789") for _ in range(20))


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    drop: bool = False


@dataclass
class _Stats:
    requests: dict[str, dict[str, int]] = field(default_factory=dict)
    signature_failures: int = 0
    throttled: int = 0
    injected_errors: int = 0
    dropped: int = 0
    peak_rps: int = 0

    def count(self, action: str, outcome: str) -> None:
        by_outcome = self.requests.setdefault(action or "(none)", {})
        by_outcome[outcome] = by_outcome.get(outcome, 0) + 1


class OpenApiEmulator:
    """The gateway and its HTTP server. Use as a context manager, or ``start()`` / ``close()``.

    ``credentials`` are the key pairs the gateway accepts; ``clock`` gives the time (aware) for signature
    freshness and every timestamp the services report; ``monotonic`` and ``sleep`` drive the rate limit, the
    one-second peak and the added latency (tests pass fakes).
    """

    def __init__(
        self,
        services: Iterable[ApiService],
        *,
        credentials: Credentials | Iterable[Credentials],
        region: str = "cn-beijing",
        faults: Faults | None = None,
        seed: int | None = None,
        port: int = 0,
        verbose: bool = False,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.services: dict[str, ApiService] = {s.service: s for s in services}
        if not self.services:
            msg = "the emulator needs at least one service"
            raise ValueError(msg)
        keys = [credentials] if isinstance(credentials, Credentials) else list(credentials)
        self._credentials = {c.access_key: c for c in keys}
        self.region = region
        self.faults = faults or Faults()
        self.clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep
        self._monotonic = monotonic
        self._verbose = verbose
        self._rng = random.Random(seed)  # noqa: S311 - fault injection, not security
        self._lock = threading.Lock()
        self._stats = _Stats()
        self._admitted: deque[float] = deque()  # monotonic times of requests let through (max_rps)
        self._arrivals: deque[float] = deque()  # monotonic times of every signed request (peak_rps)
        self._server = _Server(("127.0.0.1", port), _RequestHandler)
        self._server.gateway = self
        self._thread: threading.Thread | None = None
        self._scheme = "http"
        self.side_service: SideService | None = None  # TOS on the same port, when set

    # -- life cycle -------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        """What ``VOLCENGINE_ENDPOINT`` should be: ``http://127.0.0.1:PORT`` (``https`` after ``use_tls``)."""
        return f"{self._scheme}://127.0.0.1:{self.port}"

    def use_tls(self, context: ssl.SSLContext) -> str:
        """Answer over TLS only, with this server context (call before ``start``); returns the endpoint.

        Each connection's handshake happens as it is accepted, as behind a real gateway."""
        if self._thread is not None:
            msg = "use_tls must be called before the emulator starts"
            raise RuntimeError(msg)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https"
        return self.endpoint

    def start(self) -> OpenApiEmulator:
        """Serve in a background (daemon) thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"emulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``close()`` is called from another thread or a signal handler."""
        self._server.serve_forever(poll_interval=0.2)

    def stop_serving(self) -> None:
        """Make ``serve_forever`` return soon; safe to call from a signal handler."""
        # shutdown() waits for serve_forever to return, so it must not run on the serving thread itself.
        threading.Thread(target=self._server.shutdown, daemon=True).start()

    def close(self) -> None:
        """Stop serving, close every open connection and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.close_connections()
        self._server.server_close()

    def __enter__(self) -> OpenApiEmulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    def transport(self) -> httpx.MockTransport:
        """The same gateway in-process, as an ``httpx.MockTransport``: no socket, no thread, the same
        signature checks, faults and state. A committed-then-dropped answer raises ``httpx.ReadError``, as
        a connection closed before the answer does."""

        def respond(request: httpx.Request) -> httpx.Response:
            target = request.url.raw_path.decode("ascii")
            headers = {name.lower(): value for name, value in request.headers.items()}
            reply = self.answer(
                method=request.method, target=target, headers=headers, body=request.read(), loopback=True
            )
            if reply.drop:
                msg = "the emulator dropped the answer after committing the request"
                raise httpx.ReadError(msg, request=request)
            return httpx.Response(reply.status, headers=reply.headers, content=reply.body)

        return httpx.MockTransport(respond)

    # -- what happened ----------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Requests by action and outcome (HTTP status, or ``dropped``), signature failures, throttled and
        injected answers, the most requests seen in any one-second window, and each service's own."""
        with self._lock:
            out: dict[str, Any] = {
                "requests": {action: dict(by) for action, by in self._stats.requests.items()},
                "requests_total": sum(sum(by.values()) for by in self._stats.requests.values()),
                "signature_failures": self._stats.signature_failures,
                "throttled": self._stats.throttled,
                "injected_errors": self._stats.injected_errors,
                "dropped": self._stats.dropped,
                "peak_rps": self._stats.peak_rps,
            }
        for name, service in self.services.items():
            out[name] = service.stats()
        if self.side_service is not None:
            out[self.side_service.name] = self.side_service.stats()
        return out

    def reset(self) -> None:
        """Every service back to its starting state; statistics cleared."""
        with self._lock:
            self._stats = _Stats()
            self._admitted.clear()
            self._arrivals.clear()
        for service in self.services.values():
            service.reset()
        if self.side_service is not None:
            self.side_service.reset()

    # -- one request ------------------------------------------------------------------------------------

    def answer(
        self, *, method: str, target: str, headers: Mapping[str, str], body: bytes, loopback: bool
    ) -> _Reply:
        """The reply to one HTTP request (the HTTP plumbing is ``_RequestHandler``'s)."""
        path, _, raw_query = target.partition("?")
        side = self.side_service
        if side is not None and side.claims(path=path, headers=headers):
            reply = side.answer(method=method, target=target, headers=headers, loopback=loopback)
            return _Reply(reply.status, reply.body, reply.headers)
        if path.startswith("/__admin/"):
            return self._admin(method, path, loopback)
        try:
            query = dict(parse_qsl(raw_query, keep_blank_values=True, errors="strict"))
        except UnicodeDecodeError:
            query = {}
        action, version = query.get("Action", ""), query.get("Version", "")
        service = self._service_for(headers.get("authorization", ""))
        with self._lock:
            meta = {
                "RequestId": request_id(self.clock(), self._rng),
                "Action": action,
                "Version": version,
                "Service": service.service,
                "Region": self.region,
            }
        refusal = self._refusal(
            service, method=method, path=path or "/", raw_query=raw_query, headers=headers, body=body
        )
        if refusal is not None:
            status, code, message, code_n = refusal
            return self._finish(action, _error(meta, status, code, message, code_n))
        call = ApiCall(method, action, version, query, body, headers.get("content-type", ""))
        answer = service.handle(call)
        if answer.committed and self._roll(self.faults.drop_rate):
            with self._lock:
                self._stats.dropped += 1
                self._stats.count(action, "dropped")
            return _Reply(0, b"", drop=True)
        if answer.code is not None:
            return self._finish(action, _error(meta, answer.status, answer.code, answer.message))
        payload = {"ResponseMetadata": meta, "Result": dict(answer.result or {})}
        return self._finish(action, _json_reply(answer.status, payload))

    def _refusal(
        self,
        service: ApiService,
        *,
        method: str,
        path: str,
        raw_query: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> tuple[int, str, str, int | None] | None:
        """Why the gateway answers this request itself, in its order: the signature, then the injected
        faults, then an unknown Action or Version. None when the service should answer."""
        moment = self._monotonic()
        self._arrived(moment)
        problem = verify_signature(
            method=method,
            host=headers.get("host", ""),
            path=path,
            raw_query=raw_query,
            headers=headers,
            body=body,
            credentials_for=self._credentials.get,
            region=self.region,
            service=service.service,
            now=self.clock(),
        )
        if problem is not None:
            code, _, message = problem.partition(": ")
            status, code_n = _GATEWAY_ERRORS.get(code, (401, None))
            with self._lock:
                self._stats.signature_failures += 1
            return status, code, message or code, code_n
        fault = self._fault(moment)
        if fault is not None:
            return (*fault, None)
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        action, version = query.get("Action", ""), query.get("Version", "")
        if action not in service.actions or version != service.version:
            message = f"the action {action or '(none)'} of version {version or '(none)'} does not exist"
            return 404, "InvalidActionOrVersion", message, None
        return None

    def _service_for(self, authorization: str) -> ApiService:
        """The service the credential scope names (``Credential=AK/date/region/SERVICE/request``); the first
        service when there is none, so that its signature check reports what is wrong."""
        credential = authorization.partition("Credential=")[2].split(",")[0]
        parts = credential.split("/")
        named = self.services.get(parts[3]) if len(parts) == 5 else None
        return named or next(iter(self.services.values()))

    def _arrived(self, moment: float) -> None:
        with self._lock:
            self._arrivals.append(moment)
            while self._arrivals and self._arrivals[0] <= moment - 1.0:
                self._arrivals.popleft()
            self._stats.peak_rps = max(self._stats.peak_rps, len(self._arrivals))

    def _roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def _fault(self, moment: float) -> tuple[int, str, str] | None:
        """The injected error for this request, if any: the rate limit first, then the random ones."""
        limit = self.faults.max_rps
        if limit is not None:
            with self._lock:
                while self._admitted and self._admitted[0] <= moment - 1.0:
                    self._admitted.popleft()
                over = len(self._admitted) >= limit
                if not over:
                    self._admitted.append(moment)
            if over:
                with self._lock:
                    self._stats.throttled += 1
                return (
                    429,
                    "FlowLimitExceeded",
                    f"the request rate is above the limit of {limit:g} per second",
                )
        if self._roll(self.faults.throttle_rate):
            with self._lock:
                self._stats.throttled += 1
            return 429, "FlowLimitExceeded", "the request was throttled (injected)"
        if self._roll(self.faults.error_rate):
            with self._lock:
                self._stats.injected_errors += 1
            return 500, "InternalError", "an internal error occurred (injected); try again"
        return None

    def _finish(self, action: str, reply: _Reply) -> _Reply:
        with self._lock:
            self._stats.count(action, str(reply.status))
        if self.faults.latency_ms > 0:
            self._sleep(self.faults.latency_ms / 1000)
        if self._verbose:
            print(f"{action or '-'} -> {reply.status}", flush=True)
        return reply

    def _admin(self, method: str, path: str, loopback: bool) -> _Reply:
        if not loopback:
            return _json_reply(403, {"error": "the admin paths answer loopback clients only"})
        if path == ADMIN_STATS_PATH and method == "GET":
            return _json_reply(200, self.stats())
        if path == ADMIN_RESET_PATH and method == "POST":
            self.reset()
            return _json_reply(200, {"reset": True})
        return _json_reply(404, {"error": f"no admin path {method} {path}"})


def _json_reply(status: int, payload: Mapping[str, Any]) -> _Reply:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return _Reply(status, body, (("Content-Type", "application/json; charset=utf-8"),))


def _error(meta: dict[str, Any], status: int, code: str, message: str, code_n: int | None = None) -> _Reply:
    error: dict[str, Any] = {"Code": code, "Message": message}
    if code_n is not None:
        error = {"CodeN": code_n, **error}
    return _json_reply(status, {"ResponseMetadata": {**meta, "Error": error}})


class _Server(ThreadingHTTPServer):
    """Daemon threads, one per connection, and a record of open connections so ``close()`` ends them all."""

    daemon_threads = True
    gateway: OpenApiEmulator

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
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
    server: _Server

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
        if length > _MAX_BODY:
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
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        if not any(name.lower() == "content-length" for name, _ in reply.headers):
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: ``verbose`` prints one line per answer instead of an access log."""


# -- the command line ----------------------------------------------------------------------------------


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        msg = "expected a share between 0 and 1"
        raise argparse.ArgumentTypeError(msg)
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exporter-tools emulator",
        description=(
            "A local ECS OpenAPI (ExportImage, DescribeImages, DescribeTasks, TagResources, UntagResources) "
            "and TOS HeadObject (path-style) on 127.0.0.1, with signature checks and optional faults. Point the "
            "function at it with VOLCENGINE_ENDPOINT (and TOS_ENDPOINT)."
        ),
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default 0: a free port)")
    parser.add_argument("--fleet", metavar="FILE", help="fleet JSON file (default: the demo fleet)")
    parser.add_argument(
        "--access-key", default=None, help=f"accepted access key (default {DEFAULT_ACCESS_KEY})"
    )
    parser.add_argument(
        "--secret-key", default=None, help="its secret key (default: the emulator's fake one)"
    )
    parser.add_argument("--session-token", default=None, help="require this X-Security-Token (STS keys)")
    parser.add_argument("--region", default="cn-beijing", help="region of the signature scope (cn-beijing)")
    parser.add_argument("--error-rate", type=_rate, default=0.0, help="share of 500 InternalError answers")
    parser.add_argument("--throttle-rate", type=_rate, default=0.0, help="share of 429 FlowLimitExceeded")
    parser.add_argument(
        "--drop-rate", type=_rate, default=0.0, help="share of ExportImage calls committed, then dropped"
    )
    parser.add_argument("--max-rps", type=float, default=None, help="answer 429 above this many requests/s")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    parser.add_argument(
        "--task-seconds", type=float, default=30.0, help="how long an export task takes (default 30)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed the faults and ids (reproducible runs)")
    parser.add_argument("--verbose", action="store_true", help="print one line per answer")
    parser.add_argument(
        "--tls-cert", metavar="PEM", help="serve over TLS with this certificate (and --tls-key)"
    )
    parser.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator (ECS, and veFaaS for trying ``deploy``) until interrupted (Ctrl-C or SIGTERM).
    Prints its address as its first line."""
    from exporter_tools.emulator.ecs import EcsService  # noqa: PLC0415 - the ECS service imports this module
    from exporter_tools.emulator.fleet import demo_fleet, load_fleet  # noqa: PLC0415
    from exporter_tools.emulator.vefaas import VefaasService  # noqa: PLC0415 - lets `deploy` be tried locally

    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.access_key is None) != (args.secret_key is None):
        parser.error("give both --access-key and --secret-key, or neither")
    if args.session_token and args.access_key is None:
        parser.error("--session-token needs --access-key and --secret-key")
    try:
        fleet = load_fleet(args.fleet) if args.fleet else demo_fleet()
        faults = Faults(
            error_rate=args.error_rate,
            throttle_rate=args.throttle_rate,
            drop_rate=args.drop_rate,
            max_rps=args.max_rps,
            latency_ms=args.latency_ms,
        )
    except ValueError as exc:
        parser.error(str(exc))
    credentials = Credentials(
        args.access_key or DEFAULT_ACCESS_KEY, args.secret_key or DEFAULT_SECRET_KEY, args.session_token
    )
    ecs = EcsService(fleet, task_seconds=args.task_seconds, seed=args.seed)
    try:
        emulator = OpenApiEmulator(
            [ecs, VefaasService(seed=args.seed)],
            credentials=credentials,
            region=args.region,
            faults=faults,
            seed=args.seed,
            port=args.port,
            verbose=args.verbose,
        )
    except OSError as exc:
        print(f"emulator: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    emulator.side_service = ecs.object_storage(credentials, region=args.region, clock=emulator.clock)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("give both --tls-cert and --tls-key, or neither")
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            parser.error(f"cannot load --tls-cert/--tls-key: {exc}")
        emulator.use_tls(context)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        emulator.stop_serving()

    previous = signal.signal(signal.SIGTERM, stop)
    print(f"emulator listening on {emulator.endpoint}", flush=True)
    print(
        f"accepting access key {credentials.access_key} in region {args.region}; "
        f"{len(fleet.images)} images, {len(fleet.buckets)} buckets",
        file=sys.stderr,
        flush=True,
    )
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        emulator.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
