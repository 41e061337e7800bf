"""End-to-end fixtures: a real ECS emulator on a free loopback port, and the function pointed at it.

Every test gets a fresh HTTP client and rate limiter in the function (the process keeps them between warm
invocations, which would carry one test's throttling into the next), closed again at teardown.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from exporter_tools.emulator.ecs import API_VERSION, EcsEmulator
from handler.adapters.signing import Credentials, VolcSigner, canonical_query
from handler.cli import LocalContext
from handler.errors import InvocationIncomplete

CREDENTIALS = Credentials("AKLTe2etest00000001", "e2e-secret-key-0000000001")

# Small timeouts and backoffs, so that retries and lost answers cost tenths of a second, not seconds.
FAST_ENV = {
    "VOLCENGINE_BACKOFF_BASE": "0.05",
    "VOLCENGINE_BACKOFF_CAP": "0.5",
    "VOLCENGINE_READ_TIMEOUT": "2",
    "VOLCENGINE_CONNECT_TIMEOUT": "1",
    "LOG_LEVEL": "INFO",
}
_OWN_PREFIXES = ("VOLCENGINE_", "VOLC_", "EXPORT_", "WEBHOOK_", "FUNCTION_", "LOG_LEVEL", "TOS_")


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., EcsEmulator]]:
    """Start an ``EcsEmulator`` (demo fleet and the test credentials unless told otherwise); all stop after."""
    started: list[EcsEmulator] = []

    def start(fleet: Any = None, **options: Any) -> EcsEmulator:
        options.setdefault("credentials", CREDENTIALS)
        emulator = EcsEmulator(fleet, **options)
        emulator.start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.close()


@pytest.fixture
def emulator(start_emulator: Callable[..., EcsEmulator]) -> EcsEmulator:
    """The demo fleet behind the emulator, accepting ``CREDENTIALS``."""
    return start_emulator()


def handler_env(
    emulator: EcsEmulator, *, credentials: Credentials = CREDENTIALS, **extra: str
) -> dict[str, str]:
    """The function's own variables for an emulator: endpoint, keys, bucket, fast retries, then ``extra``."""
    env = {
        "VOLCENGINE_ENDPOINT": emulator.endpoint,
        "VOLCENGINE_REGION": emulator.region,
        "VOLCENGINE_ACCESS_KEY": credentials.access_key,
        "VOLCENGINE_SECRET_KEY": credentials.secret_key,
        "EXPORT_TOS_BUCKET": "demo-exports",
        "TOS_ENDPOINT": emulator.endpoint,  # HeadObject on the emulator's port
        **FAST_ENV,
        **extra,
    }
    if credentials.session_token:
        env["VOLCENGINE_SESSION_TOKEN"] = credentials.session_token
    return env


def process_env(
    emulator: EcsEmulator, *, credentials: Credentials = CREDENTIALS, **extra: str
) -> dict[str, str]:
    """The whole environment of a function process pointed at an emulator: this one's, without any of the
    function's own variables, plus ``handler_env``."""
    inherited = {name: value for name, value in os.environ.items() if not name.startswith(_OWN_PREFIXES)}
    return inherited | handler_env(emulator, credentials=credentials, **extra)


@pytest.fixture
def point_handler_at(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set the function's environment for an emulator: endpoint, keys, bucket, fast retries, extras."""

    def point(emulator: EcsEmulator, *, credentials: Credentials = CREDENTIALS, **extra: str) -> None:
        for name in list(os.environ):
            if name.startswith(_OWN_PREFIXES):
                monkeypatch.delenv(name)
        for name, value in handler_env(emulator, credentials=credentials, **extra).items():
            monkeypatch.setenv(name, value)

    return point


@pytest.fixture
def emulated(
    start_emulator: Callable[..., EcsEmulator], point_handler_at: Callable[..., None]
) -> Callable[..., EcsEmulator]:
    """Start an emulator and point the function at it: ``emulated(fleet, handler_credentials=…, env={…},
    **emulator_options)``."""

    def start(
        fleet: Any = None,
        *,
        handler_credentials: Credentials = CREDENTIALS,
        env: dict[str, str] | None = None,
        **options: Any,
    ) -> EcsEmulator:
        emulator = start_emulator(fleet, **options)
        point_handler_at(emulator, credentials=handler_credentials, **(env or {}))
        return emulator

    return start


def invoke(event: dict[str, Any], timeout: float = 60.0) -> tuple[dict[str, Any], bool]:
    """Run the entry once as the platform would: (the result, whether the entry raised to be retried)."""
    from handler import handler

    try:
        return handler(event, LocalContext(timeout)), False
    except InvocationIncomplete as incomplete:
        return incomplete.result, True


@pytest.fixture
def run_handler() -> Callable[..., tuple[dict[str, Any], bool]]:
    """``invoke``: run the entry in this process; returns (result, raised)."""
    return invoke


def signed_get(
    emulator: EcsEmulator,
    action: str,
    params: dict[str, str] | None = None,
    *,
    credentials: Credentials = CREDENTIALS,
    region: str | None = None,
    service: str = "ecs",
    version: str = API_VERSION,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """One signed GET to the emulator, as the function's client sends it."""
    query = canonical_query({"Action": action, "Version": version, **(params or {})})
    auth = VolcSigner(credentials, region=region or emulator.region, service=service)
    if client is not None:
        return client.get(f"{emulator.endpoint}/?{query}", auth=auth)
    with httpx.Client(timeout=5) as own:
        return own.get(f"{emulator.endpoint}/?{query}", auth=auth)


@pytest.fixture(scope="session")
def http_client() -> Iterator[httpx.Client]:
    """One HTTP client for the tests' own requests (building one per request costs tens of milliseconds)."""
    with httpx.Client(timeout=5) as client:
        yield client


@pytest.fixture
def call(http_client: httpx.Client) -> Callable[..., httpx.Response]:
    """``signed_get`` through the shared client: one signed request to an emulator."""
    return functools.partial(signed_get, client=http_client)
