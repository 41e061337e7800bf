"""The one client factory: what it builds under the settings, and that credentials never reach a log line."""

from __future__ import annotations

import io
import sys

import httpx
import structlog

from handler.adapters import openapi, tos
from handler.adapters.clients import LazyTosClient, build_clients, reset_process_state
from handler.adapters.log import configure_logging, first_invocation, redactor, set_quiet
from handler.adapters.signing import Credentials
from handler.adapters.tos import TosClient
from handler.models.settings import Settings, _ca_file_loads

CREDENTIALS = Credentials("AKLTfactorytest", "factory-secret-value", "factory-session-token")
BASE = {"EXPORT_TOS_BUCKET": "backups", "VOLCENGINE_REGION": "cn-beijing"}


def test_tracked_exports_get_a_tos_client_and_untracked_ones_none() -> None:
    """EXPORT_TRACKING=off builds no TOS client (nothing follows an export up); the default does, on its
    first request (an event's export never sends one, so a cold start does not pay for it)."""
    with httpx.Client() as http:
        tracked = build_clients(Settings.from_env(BASE), CREDENTIALS, http=http)
        untracked = build_clients(
            Settings.from_env({**BASE, "EXPORT_TRACKING": "off"}), CREDENTIALS, http=http
        )
    assert isinstance(tracked.store, LazyTosClient)
    assert isinstance(tracked.store.client, TosClient)
    assert tracked.store.client is tracked.store.client
    assert untracked.store is None


def test_building_the_clients_masks_the_credentials_and_the_webhook_secrets() -> None:
    """From the moment the clients exist, the secret key, session token and webhook secret are masked in
    every log line, and the access key keeps only its first four characters."""
    with httpx.Client() as http:
        build_clients(Settings.from_env(BASE), CREDENTIALS, secrets=["webhook-secret-123"], http=http)
    text = "AKLTfactorytest factory-secret-value factory-session-token webhook-secret-123"
    masked = redactor.mask_text(text)
    for secret in ("factory-secret-value", "factory-session-token", "webhook-secret-123", "AKLTfactorytest"):
        assert secret not in masked
    assert masked.startswith("AKLT")


def test_a_reset_leaves_every_piece_of_process_state_fresh() -> None:
    """After ``reset_process_state`` the process is as a new one: no HTTP client kept (the old one closed),
    new OpenAPI and TOS rate limiters, no secret masked, the CA-file check's cache empty, structlog at its
    defaults with nothing bound, the log no longer quiet, and the next invocation marked cold."""
    http = openapi.shared_http_client(connect_timeout=1.0, read_timeout=2.0)
    limiter = openapi.shared_rate_limiter(10.0)
    tos_limiter = tos.shared_tos_rate_limiter(10.0)
    redactor.set_secrets(["process-secret-value"])
    _ca_file_loads(sys.executable, 0, 0)
    configure_logging("ERROR", stream=io.StringIO())
    structlog.contextvars.bind_contextvars(correlation_id="evt-1")
    first_invocation()  # this process's cold start is over
    set_quiet(True)

    reset_process_state()

    assert http.is_closed
    assert openapi._http_clients == {}
    assert openapi.shared_http_client(connect_timeout=1.0, read_timeout=2.0) is not http
    assert openapi.shared_rate_limiter(10.0) is not limiter
    assert tos.shared_tos_rate_limiter(10.0) is not tos_limiter
    assert redactor.mask_text("process-secret-value") == "process-secret-value"
    assert _ca_file_loads.cache_info().currsize == 0
    assert not structlog.is_configured()
    assert structlog.contextvars.get_contextvars() == {}
    assert first_invocation() is True
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    structlog.get_logger("test").info("heard")
    assert "heard" in stream.getvalue()
