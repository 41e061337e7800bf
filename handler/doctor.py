"""The doctor's glue, shared by the ``Doctor`` event (``handler.entry``) and ``exporter-tools doctor``: the
credentials and the clients for what the settings check read, then the checks of ``handler.core.doctor``.

Imported only when the doctor runs: the function's cold path never pays for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import httpx

from handler.adapters.clients import build_clients, webhook_secrets
from handler.adapters.credentials import resolve_credentials
from handler.adapters.log import redactor
from handler.clock import SYSTEM_CLOCK, Clock
from handler.core.doctor import SettingsReading, read_settings, run_doctor
from handler.core.doctor_checks import Subjects, WebhookReport
from handler.errors import ConfigurationError, ExporterError
from handler.models.results import DoctorCheck
from handler.models.settings import Settings

__all__ = ["examine", "read_settings"]


def examine(
    reading: SettingsReading,
    environ: Mapping[str, str],
    *,
    deadline: float,
    clock: Clock = SYSTEM_CLOCK,
    http: httpx.Client | None = None,
) -> tuple[DoctorCheck, ...]:
    """Every check for ``reading`` (``read_settings(environ)``) with the credentials ``environ`` gives, each
    done by ``deadline`` (a ``clock.monotonic()`` reading). ``http``: the client to send with (default: the
    process's shared one). From now on the credentials and the webhook's secrets are masked in the log."""
    settings = reading.settings
    secrets = webhook_secrets(settings)
    unsigned = Subjects(
        settings=settings, api=None, store=None, send_test=_sender(settings, clock), clock=clock
    )
    try:
        credentials = resolve_credentials(environ)
    except ExporterError as error:
        redactor.set_secrets(secrets)
        return run_doctor(reading, dataclasses.replace(unsigned, unsigned=error), deadline=deadline)
    try:
        clients = build_clients(  # masks the credentials and the secrets first
            settings, credentials, secrets=secrets, http=http, clock=clock, with_store=True
        )
    except (OSError, ValueError) as error:  # httpx loads SSL_CERT_FILE when it builds the client
        msg = f"the HTTP client could not be built ({type(error).__name__}): check SSL_CERT_FILE"
        refused = ConfigurationError(msg, source="SSL_CERT_FILE")
        return run_doctor(reading, dataclasses.replace(unsigned, unsigned=refused), deadline=deadline)
    signed = dataclasses.replace(
        unsigned, api=clients.ecs, store=clients.store, access_key=credentials.access_key
    )
    return run_doctor(reading, signed, deadline=deadline)


def _sender(settings: Settings, clock: Clock) -> Callable[[float], WebhookReport | None] | None:
    """The webhook check's sender of the test message, when ``WEBHOOK_URL`` is set: over a short-lived client
    of its own (the receiver is no Volcengine host)."""
    if not settings.webhook_url:
        return None

    def send(deadline: float) -> WebhookReport | None:
        from handler.adapters.webhooks import send_test  # noqa: PLC0415 - only when a webhook is set

        return send_test(settings, deadline=deadline, clock=clock)

    return send
