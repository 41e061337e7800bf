"""A local Volcengine OpenAPI gateway: a real HTTP server on 127.0.0.1 in front of emulated services.

The gateway does what the real one does before a service sees a request: it checks the signature
(``SignatureDoesNotMatch``, ``InvalidAccessKey``… with their ``CodeN``), routes on the credential scope's
service, checks Action and Version, and wraps every answer in ``ResponseMetadata``. It can also misbehave on
purpose, reproducibly (``Faults`` with a seed): 500 ``InternalError``, 429 ``FlowLimitExceeded`` (at random,
or above a requests-per-second limit; with a ``Retry-After`` when ``Faults.retry_after`` says), added
latency, and "commit then drop" (a write takes effect, then the connection closes with no answer at all).
Signatures are checked before any fault, as the gateway does. Every answer carries a ``Date`` from ``clock``.

A service is anything with the small ``ApiService`` interface: ECS lives in ``exporter_tools.emulator.ecs``; another
API (veFaaS: POST with JSON bodies) plugs in the same way, each keyed by its signature scope's service name.

A side service (``SideService``: TOS, ``exporter_tools.emulator.tos``) may share the port: assigned to
``side_service``, it claims the requests that are its own before the gateway looks at them, and answers them
itself (no OpenAPI signature, faults or ``ResponseMetadata``); ``stats()`` and ``reset()`` cover it too.

``GET /__admin/stats`` (unsigned, loopback only) answers with ``stats()`` as JSON; ``POST /__admin/reset``
puts every service back to its starting state and clears the statistics.

This package is a development tool: the function itself never imports it.
"""

from __future__ import annotations

import json
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx

from exporter_tools.emulator.api import (
    CHINA_STANDARD_TIME,
    DEFAULT_ACCESS_KEY,
    DEFAULT_SECRET_KEY,
    ApiAnswer,
    ApiCall,
    ApiService,
    Faults,
    SideService,
    request_id,
)
from exporter_tools.emulator.faults import FaultInjector
from exporter_tools.emulator.httpd import GatewayServer, Reply
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
    "Reply",
]

ADMIN_STATS_PATH = "/__admin/stats"
ADMIN_RESET_PATH = "/__admin/reset"

# The gateway's own error codes (docs/facts.md §2): HTTP status and CodeN (None where no CodeN is documented).
_GATEWAY_ERRORS: dict[str, tuple[int, int | None]] = {
    "InvalidTimestamp": (401, 100006),
    "InvalidAccessKey": (401, 100009),
    "SignatureDoesNotMatch": (401, 100010),
    "InvalidSecretToken": (401, None),
}


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

    ``credentials`` are the key pairs the gateway accepts (default: the fake ``DEFAULT_ACCESS_KEY`` pair);
    ``clock`` gives the time (aware) for signature freshness and every timestamp the services report;
    ``monotonic`` and ``sleep`` drive the rate limit, the one-second peak and the added latency (tests pass
    fakes). Besides the random ``faults``, ``fail_next`` and ``drop_next`` script the next answers to one
    action, for tests that need one exact failure. ``port=None`` opens no socket: the gateway answers only
    in-process, through ``transport()`` (unit tests).
    """

    def __init__(
        self,
        services: Iterable[ApiService],
        *,
        credentials: Credentials | Iterable[Credentials] | None = None,
        region: str = "cn-beijing",
        faults: Faults | None = None,
        seed: int | None = None,
        port: int | None = 0,
        verbose: bool = False,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.services: dict[str, ApiService] = {s.service: s for s in services}
        if not self.services:
            msg = "the emulator needs at least one service"
            raise ValueError(msg)
        self._lock = threading.Lock()
        self._credentials: dict[str, Credentials] = {}
        self.credentials = credentials or Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)
        self.region = region
        self.clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep
        self._monotonic = monotonic
        self._verbose = verbose
        self._rng = random.Random(seed)  # noqa: S311 - fault injection, not security
        self._stats = _Stats()
        self._arrivals: deque[float] = deque()  # monotonic times of every signed request (peak_rps)
        self._injector = FaultInjector(faults or Faults(), self._rng, self._lock)
        # port None: in-process only (``transport()``), no listening socket at all
        self._server = GatewayServer(("127.0.0.1", port), self) if port is not None else None
        self._thread: threading.Thread | None = None
        self._scheme = "http"
        self.side_service: SideService | None = None  # TOS on the same port, when set

    # -- what the gateway accepts, and scripted faults ----------------------------------------------------

    @property
    def credentials(self) -> tuple[Credentials, ...]:
        """The key pairs the gateway accepts."""
        return tuple(self._credentials.values())

    @credentials.setter
    def credentials(self, keys: Credentials | Iterable[Credentials]) -> None:
        pairs = [keys] if isinstance(keys, Credentials) else list(keys)
        if not pairs:
            msg = "the emulator needs at least one key pair to accept"
            raise ValueError(msg)
        with self._lock:
            self._credentials = {c.access_key: c for c in pairs}

    def accepted_key(self, access_key: str) -> Credentials | None:
        """The accepted key pair with this access key, if any (the TOS side checks its signatures with it)."""
        with self._lock:
            return self._credentials.get(access_key)

    def fail_next(self, action: str, status: int, code: str, message: str = "", *, times: int = 1) -> None:
        """Answer the next ``times`` correctly signed calls to ``action`` with this error (after the
        signature check, before the service: the call has no effect)."""
        self._injector.fail_next(action, status, code, message, times=times)

    def drop_next(self, action: str, *, times: int = 1) -> None:
        """Let the next ``times`` committed writes of ``action`` take effect, then drop their answers (the
        connection closes; through ``transport()``, an ``httpx.ReadError``)."""
        self._injector.drop_next(action, times=times)

    @property
    def faults(self) -> Faults:
        """The random faults in force; assigning new ones takes effect with the next request."""
        return self._injector.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._injector.faults = faults

    # -- life cycle -------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._listening().server_address[1])

    @property
    def endpoint(self) -> str:
        """What ``VOLCENGINE_ENDPOINT`` should be: ``http://127.0.0.1:PORT`` (``https`` after ``use_tls``);
        in-process only, ``http://127.0.0.1`` (any endpoint reaches the transport)."""
        if self._server is None:
            return "http://127.0.0.1"
        return f"{self._scheme}://127.0.0.1:{self.port}"

    def use_tls(self, context: ssl.SSLContext) -> str:
        """Answer over TLS only, with this server context (call before ``start``); returns the endpoint.

        Each connection's handshake happens as it is accepted, as behind a real gateway."""
        if self._thread is not None:
            msg = "use_tls must be called before the emulator starts"
            raise RuntimeError(msg)
        server = self._listening()
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._scheme = "https"
        return self.endpoint

    def start(self) -> OpenApiEmulator:
        """Serve in a background (daemon) thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._listening().serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"emulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``close()`` is called from another thread or a signal handler."""
        self._listening().serve_forever(poll_interval=0.2)

    def stop_serving(self) -> None:
        """Make ``serve_forever`` return soon; safe to call from a signal handler."""
        # shutdown() waits for serve_forever to return, so it must not run on the serving thread itself.
        threading.Thread(target=self._listening().shutdown, daemon=True).start()

    def close(self) -> None:
        """Stop serving, close every open connection and release the port."""
        if self._server is None:
            return
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

    def _listening(self) -> GatewayServer:
        if self._server is None:
            msg = "this emulator answers in-process only (port=None): use transport()"
            raise RuntimeError(msg)
        return self._server

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
            self._arrivals.clear()
        self._injector.clear()
        for service in self.services.values():
            service.reset()
        if self.side_service is not None:
            self.side_service.reset()

    # -- one request ------------------------------------------------------------------------------------

    def answer(
        self, *, method: str, target: str, headers: Mapping[str, str], body: bytes, loopback: bool
    ) -> Reply:
        """The reply to one HTTP request (the HTTP plumbing is ``httpd``'s)."""
        path, _, raw_query = target.partition("?")
        side = self.side_service
        if side is not None and side.claims(path=path, headers=headers):
            reply = side.answer(method=method, target=target, headers=headers, loopback=loopback, body=body)
            return Reply(reply.status, reply.body, reply.headers)
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
            reply = _error(meta, status, code, message, code_n)
            wait = self.faults.retry_after
            if status == 429 and wait is not None:
                reply = Reply(reply.status, reply.body, (*reply.headers, ("Retry-After", f"{wait:g}")))
            return self._finish(action, reply)
        call = ApiCall(method, action, version, query, body, headers.get("content-type", ""))
        answer = service.handle(call)
        if answer.committed and self._injector.drops(action):
            with self._lock:
                self._stats.dropped += 1
                self._stats.count(action, "dropped")
            return Reply(0, b"", drop=True)
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
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        action, version = query.get("Action", ""), query.get("Version", "")
        fault = self._injector.refusal(action, moment)
        if fault is not None:
            with self._lock:
                if fault.kind == "throttled":
                    self._stats.throttled += 1
                else:
                    self._stats.injected_errors += 1
            return fault.status, fault.code, fault.message, None
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

    def _finish(self, action: str, reply: Reply) -> Reply:
        """Count the answer and stamp it with the gateway's ``Date`` (its clock's, as a server's own)."""
        reply = Reply(
            reply.status,
            reply.body,
            (*reply.headers, ("Date", format_datetime(self.clock().astimezone(UTC), usegmt=True))),
        )
        with self._lock:
            self._stats.count(action, str(reply.status))
        if self.faults.latency_ms > 0:
            self._sleep(self.faults.latency_ms / 1000)
        if self._verbose:
            print(f"{action or '-'} -> {reply.status}", flush=True)
        return reply

    def _admin(self, method: str, path: str, loopback: bool) -> Reply:
        if not loopback:
            return _json_reply(403, {"error": "the admin paths answer loopback clients only"})
        if path == ADMIN_STATS_PATH and method == "GET":
            return _json_reply(200, self.stats())
        if path == ADMIN_RESET_PATH and method == "POST":
            self.reset()
            return _json_reply(200, {"reset": True})
        return _json_reply(404, {"error": f"no admin path {method} {path}"})


def _json_reply(status: int, payload: Mapping[str, Any]) -> Reply:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Reply(status, body, (("Content-Type", "application/json; charset=utf-8"),))


def _error(meta: dict[str, Any], status: int, code: str, message: str, code_n: int | None = None) -> Reply:
    error: dict[str, Any] = {"Code": code, "Message": message}
    if code_n is not None:
        error = {"CodeN": code_n, **error}
    return _json_reply(status, {"ResponseMetadata": {**meta, "Error": error}})
