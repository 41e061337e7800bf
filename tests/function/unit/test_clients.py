"""The one client factory: what it builds under the settings, and that credentials never reach a log line."""

from __future__ import annotations

import httpx

from handler.adapters.clients import build_clients
from handler.adapters.log import redactor
from handler.adapters.signing import Credentials
from handler.adapters.tos import TosClient
from handler.models.settings import Settings

CREDENTIALS = Credentials("AKLTfactorytest", "factory-secret-value", "factory-session-token")
BASE = {"EXPORT_TOS_BUCKET": "backups", "VOLCENGINE_REGION": "cn-beijing"}


def test_tracked_exports_get_a_tos_client_and_untracked_ones_none() -> None:
    """EXPORT_TRACKING=off builds no TOS client (nothing follows an export up); the default does."""
    with httpx.Client() as http:
        tracked = build_clients(Settings.from_env(BASE), CREDENTIALS, http=http)
        untracked = build_clients(
            Settings.from_env({**BASE, "EXPORT_TRACKING": "off"}), CREDENTIALS, http=http
        )
    assert isinstance(tracked.store, TosClient)
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
