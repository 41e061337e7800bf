"""What the emulator's gateway and its services share: the request a service sees (``ApiCall``), its answer
(``ApiAnswer``), the service interface (``ApiService``), the interface of a non-OpenAPI service on the same
port (``SideService``, TOS), the faults the gateway injects (``Faults``), and the defaults (the fake key pair,
UTC+8, RequestIds).

This module imports nothing of the emulator's own: the gateway (``server``), the services (``ecs``,
``vefaas``) and the command line (``__main__``) all import it, and none of them imports the command line.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

__all__ = [
    "CHINA_STANDARD_TIME",
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_SECRET_KEY",
    "ApiAnswer",
    "ApiCall",
    "ApiService",
    "Faults",
    "SideReply",
    "SideService",
    "request_id",
]

CHINA_STANDARD_TIME = timezone(timedelta(hours=8))
# The key pair the emulator accepts unless told otherwise: fakes, documented in the README.
DEFAULT_ACCESS_KEY = "AKLTemulator"
DEFAULT_SECRET_KEY = "emulator-secret-key"  # noqa: S105 - a documented fake


@dataclass(frozen=True, slots=True)
class Faults:
    """Misbehaviour on purpose. Rates are shares of requests in [0, 1]; ``drop_rate`` applies to writes
    that succeeded (the service says which: ExportImage), ``max_rps`` to every signed request.
    ``retry_after`` (seconds) puts a ``Retry-After`` header on every 429 the gateway answers (random or over
    ``max_rps``); None sends none."""

    error_rate: float = 0.0
    throttle_rate: float = 0.0
    drop_rate: float = 0.0
    max_rps: float | None = None
    latency_ms: float = 0.0
    retry_after: float | None = None

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
        if self.retry_after is not None and self.retry_after < 0:
            msg = "retry_after must not be negative"
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
    """An HTTP answer from a side service, sent as is (no body for HEAD; its ``Content-Length`` kept)."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def body(self) -> bytes: ...


class SideService(Protocol):
    """A service on the gateway's port that is not an OpenAPI one (TOS, ``exporter_tools.emulator.tos``): it
    claims its requests before the gateway looks at them, and answers them itself. ``name`` keys its
    statistics in the gateway's ``stats()``."""

    name: str

    def claims(self, *, path: str, headers: Mapping[str, str]) -> bool:
        """True for a request this service answers rather than the gateway."""
        ...

    def answer(
        self, *, method: str, target: str, headers: Mapping[str, str], loopback: bool, body: bytes = b""
    ) -> SideReply:
        """The reply to one request ``claims`` accepted (``body``: the request's)."""
        ...

    def stats(self) -> dict[str, Any]:
        """What the service holds or did (JSON-serialisable)."""
        ...

    def reset(self) -> None:
        """Go back to the starting state."""
        ...


def request_id(now: datetime, rng: random.Random) -> str:
    """A RequestId shaped like the gateway's: the time in UTC+8 to the second, then 20 random digits."""
    stamp = now.astimezone(CHINA_STANDARD_TIME).strftime("%Y%m%d%H%M%S")
    return stamp + "".join(rng.choice("0123456789") for _ in range(20))
