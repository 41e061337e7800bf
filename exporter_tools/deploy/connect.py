"""What deploy connects with: the deployer's keys, the endpoints and the request rate (each read from the
environment and checked before any call), and the signed veFaaS and TOS clients built from them.

The keys are the deployer's own (never the function's); once they are read, log lines and error messages mask
them, and every secret-looking value of the function's environment (``mask``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import httpx

from exporter_tools.deploy.tos_lifecycle import LifecycleClient
from exporter_tools.deploy.vefaas import VefaasClient
from handler.adapters.signing import Credentials
from handler.errors import ConfigurationError, NoCredentials

__all__ = ["DEFAULT_ENDPOINT", "Connection", "connection", "lifecycle_client", "mask", "vefaas_client"]

DEFAULT_ENDPOINT = "https://open.volcengineapi.com"

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Connection:
    """Where deploy's requests go, signed with which keys, at what rate."""

    credentials: Credentials
    gateway: str
    tos_endpoint: str
    max_rps: float


def connection(
    environ: Mapping[str, str], *, region: str, endpoint: str | None, tos_endpoint: str | None
) -> tuple[Connection | None, list[ConfigurationError]]:
    """The connection the environment (and ``--endpoint``, ``--tos-endpoint``) describes, or every problem
    with it at once (no keys, an endpoint without a scheme, a rate out of range)."""
    problems: list[ConfigurationError] = []
    credentials = _attempt(lambda: _credentials(environ), problems)
    gateway = _attempt(
        lambda: _endpoint(
            endpoint or environ.get("VOLCENGINE_ENDPOINT"), DEFAULT_ENDPOINT, "VOLCENGINE_ENDPOINT"
        ),
        problems,
    )
    tos = _attempt(lambda: _tos_endpoint(environ, tos_endpoint, region), problems)
    rate = _attempt(lambda: _max_rps(environ), problems)
    if credentials is None or gateway is None or tos is None or rate is None:
        return None, problems
    return Connection(credentials, gateway, tos, rate), []


def _attempt(read: Callable[[], _T], problems: list[ConfigurationError]) -> _T | None:
    """``read()``, or None with its ``ConfigurationError`` added to ``problems``."""
    try:
        return read()
    except ConfigurationError as exc:
        problems.append(exc)
        return None


def mask(credentials: Credentials, values: Iterable[str]) -> None:
    """From now on, log lines and error messages mask the keys and these values (the function's secrets)."""
    from handler.adapters.log import redactor  # noqa: PLC0415

    redactor.set_secrets(
        [credentials.secret_key, credentials.session_token, *values], access_key=credentials.access_key
    )


def _credentials(environ: Mapping[str, str]) -> Credentials:
    from handler.adapters.credentials import resolve_credentials  # noqa: PLC0415

    try:
        return resolve_credentials(environ)
    except NoCredentials:
        msg = (
            "no credentials to deploy with: set VOLCENGINE_ACCESS_KEY and VOLCENGINE_SECRET_KEY (and "
            "VOLCENGINE_SESSION_TOKEN for temporary keys) to keys allowed to manage veFaaS functions"
        )
        raise ConfigurationError(msg) from None


def _endpoint(given: str | None, default: str, source: str) -> str:
    endpoint = (given or default).rstrip("/")
    if not endpoint.startswith(("https://", "http://")):
        msg = f"expected scheme and host, like {default}"
        raise ConfigurationError(msg, source=source)
    return endpoint


def _tos_endpoint(environ: Mapping[str, str], given: str | None, region: str) -> str:
    """Where the lifecycle requests go: ``--tos-endpoint``, ``TOS_ENDPOINT``, else the region's public one."""
    from handler.adapters.tos import default_tos_endpoint  # noqa: PLC0415

    return _endpoint(given or environ.get("TOS_ENDPOINT"), default_tos_endpoint(region), "TOS_ENDPOINT")


def _max_rps(environ: Mapping[str, str]) -> float:
    """The request rate deploy keeps to: ``VOLCENGINE_MAX_RPS``, as for the function (default 10)."""
    text = environ.get("VOLCENGINE_MAX_RPS", "").strip() or "10"
    try:
        rate = float(text)
    except ValueError:
        rate = 0.0
    if not 0 < rate <= 1000:
        msg = "expected a number of requests per second above 0 and at most 1000"
        raise ConfigurationError(msg, source="VOLCENGINE_MAX_RPS")
    return rate


def vefaas_client(connected: Connection, http: httpx.Client, *, region: str) -> VefaasClient:
    """A signed veFaaS client: the same signer and retry policy as the function's ECS client."""
    from exporter_tools.deploy.vefaas import API_VERSION, SERVICE  # noqa: PLC0415
    from handler.adapters.clients import openapi_client  # noqa: PLC0415
    from handler.adapters.pacing import RateLimiter  # noqa: PLC0415
    from handler.adapters.retry import RetryPolicy  # noqa: PLC0415

    api = openapi_client(
        connected.credentials,
        service=SERVICE,
        version=API_VERSION,
        endpoint=connected.gateway,
        region=region,
        # veFaaS's control plane is slower to recover than ECS's: longer waits, the same four attempts.
        policy=RetryPolicy(max_attempts=4, base=0.5, cap=8.0),
        limiter=RateLimiter(connected.max_rps),
        http=http,
    )
    return VefaasClient(api, deadline=time.monotonic() + 1800.0)


def lifecycle_client(connected: Connection, http: httpx.Client, *, region: str) -> LifecycleClient:
    """The bucket's lifecycle over TOS: the function's TOS sender (signer, retries, masking), deploy's keys."""
    from handler.adapters.pacing import RateLimiter  # noqa: PLC0415
    from handler.adapters.retry import RetryPolicy  # noqa: PLC0415
    from handler.adapters.tos import tos_sender  # noqa: PLC0415

    sender = tos_sender(
        http=http,
        region=region,
        credentials=connected.credentials,
        policy=RetryPolicy(max_attempts=4, base=0.5, cap=8.0),
        limiter=RateLimiter(connected.max_rps),
    )
    return LifecycleClient(sender, connected.tos_endpoint, deadline=time.monotonic() + 1800.0)
