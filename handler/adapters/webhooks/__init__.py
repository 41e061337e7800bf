"""Webhook notifications: one delivery per invocation that has something to say, never at the result's expense.

The entry calls ``notify`` after every outcome is logged. A delivery that fails is logged as ``webhook.failed``
and reported back; it never raises and never changes the result: the exports already happened. The doctor
calls ``send_test``: a test message, delivered and judged the same way.

Formats (``WEBHOOK_FORMAT``, else inferred from the URL's host by ``infer_format``)::

    standard   Standard Webhooks 1.0: the result as JSON, signed with WEBHOOK_SECRET (whsec_...)
    feishu     Feishu / Lark custom bot text message, signed when WEBHOOK_SECRET is set
    dingtalk   DingTalk robot markdown message, signed when WEBHOOK_SECRET is set
    wecom      WeCom group robot markdown message (the URL's key is the credential)
    slack      Slack incoming webhook text (the URL is the credential)
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import structlog

from handler.adapters.exchange import bounded_client
from handler.adapters.log import redactor
from handler.adapters.webhooks._delivery import ATTEMPT_TIMEOUT, CONNECT_TIMEOUT, DeliveryReport, deliver
from handler.adapters.webhooks._formats import (
    WebhookRequest,
    build_request,
    build_test_request,
    fix_for,
    infer_format,
    redact_url,
    scrub,
    secret_parts,
)
from handler.clock import SYSTEM_CLOCK, Clock
from handler.models.results import InvocationResult
from handler.models.settings import NotifyWhen, Settings, WebhookFormat

__all__ = [
    "DeliveryReport",
    "NotifyWhen",
    "WebhookFormat",
    "WebhookRequest",
    "build_request",
    "fix_for",
    "infer_format",
    "notify",
    "redact_url",
    "secret_parts",
    "send_test",
    "should_notify",
]


def notify(
    result: InvocationResult,
    settings: Settings,
    *,
    region: str,
    deadline: float,
    client: httpx.Client | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> DeliveryReport | None:
    """Deliver ``result`` to ``WEBHOOK_URL`` if ``WEBHOOK_NOTIFY`` says it is worth it; never raises.

    ``deadline`` is a ``clock.monotonic()`` reading no attempt or retry may pass. Returns what happened, or
    None when nothing was due (no URL, or nothing worth saying: logged as ``webhook.skipped``). ``client`` is
    used as is and left open; without one a short-lived client is made and closed. ``clock`` drives the
    backoff and stamps the signatures (tests pass a fake). Every known secret (the API credentials, the
    webhook's secret and URL token) is masked in what is sent.
    """
    url = settings.webhook_url
    if not url:
        return None
    log = structlog.get_logger()
    fmt: WebhookFormat = "standard"
    target = redact_url(url)
    secrets = secret_parts(url, settings.webhook_secret)

    def mask(text: str) -> str:
        return redactor.mask_text(scrub(text, secrets))

    def prepare() -> WebhookRequest:
        return build_request(
            fmt,
            result,
            url=url,
            secret=settings.webhook_secret,
            region=region,
            bucket=settings.tos_bucket,
            now=clock.now().timestamp(),
            mask=mask,
            max_results=settings.webhook_max_results,
        )

    try:
        if not should_notify(result, settings.webhook_notify):
            log.info("webhook.skipped", url=target, reason=_skip_reason(settings.webhook_notify))
            return None
        fmt = settings.webhook_format or infer_format(url)
        report = _send(
            prepare, fmt=fmt, target=target, secrets=secrets, deadline=deadline, client=client, clock=clock
        )
    except Exception as error:  # the safety net: a notification must never change the invocation
        report = DeliveryReport(fmt, target, delivered=False, attempts=0, reason=type(error).__name__)
    _log_report(report)
    return report


def send_test(
    settings: Settings,
    *,
    deadline: float,
    client: httpx.Client | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> DeliveryReport | None:
    """Deliver the doctor's test message (``build_test_request``) to ``WEBHOOK_URL``, signed and judged as a
    notice is (``deliver``), whatever ``WEBHOOK_NOTIFY`` says; never raises. None when no URL is set.
    ``deadline``, ``client`` and ``clock`` as for :func:`notify`."""
    url = settings.webhook_url
    if not url:
        return None
    fmt: WebhookFormat = settings.webhook_format or infer_format(url)
    target = redact_url(url)

    def prepare() -> WebhookRequest:
        return build_test_request(
            fmt,
            url=url,
            secret=settings.webhook_secret,
            region=settings.region,
            bucket=settings.tos_bucket,
            now=clock.now().timestamp(),
        )

    secrets = secret_parts(url, settings.webhook_secret)
    try:
        report = _send(
            prepare, fmt=fmt, target=target, secrets=secrets, deadline=deadline, client=client, clock=clock
        )
    except Exception as error:  # the safety net: the doctor reports a failed delivery, never a crash
        report = DeliveryReport(fmt, target, delivered=False, attempts=0, reason=type(error).__name__)
    _log_report(report)
    return report


def _log_report(report: DeliveryReport) -> None:
    log = structlog.get_logger()
    if report.delivered:
        log.info(
            "webhook.delivered",
            format=report.format,
            url=report.target,
            attempts=report.attempts,
            status=report.status,
        )
    else:
        log.warning(
            "webhook.failed",
            format=report.format,
            url=report.target,
            attempts=report.attempts,
            status=report.status,
            platform_code=report.platform_code,
            platform_message=report.platform_message,
            reason=report.reason,
        )


def should_notify(result: InvocationResult, when: NotifyWhen) -> bool:
    """Whether this result is worth a delivery under ``WEBHOOK_NOTIFY``.

    ``all``: whenever there are results; ``changes``: when anything was started, failed, deferred, exported,
    export_failed, a restore started or ended, or retention deleted an export (``expired``; a plan's
    ``would_expire`` alone is no change); ``failures``: when anything failed, was deferred,
    export_failed or restore_failed.
    """
    statuses = {r.status for r in result.results}
    if when == "all":
        return bool(statuses)
    wanted = _FAILURES if when == "failures" else _CHANGES
    return bool(statuses & wanted)


_FAILURES = frozenset({"failed", "deferred", "export_failed", "restore_failed"})
_CHANGES = _FAILURES | {"started", "exported", "restore_started", "restored", "restore_verified", "expired"}


def _skip_reason(when: NotifyWhen) -> str:
    if when == "failures":
        return "WEBHOOK_NOTIFY=failures and nothing failed, was deferred, export_failed or restore_failed"
    if when == "changes":
        return (
            "WEBHOOK_NOTIFY=changes and nothing was started, failed, deferred, exported, restored or deleted"
        )
    return "WEBHOOK_NOTIFY=all and there were no results"


def _send(
    prepare: Callable[[], WebhookRequest],
    *,
    fmt: WebhookFormat,
    target: str,
    secrets: tuple[str, ...],
    deadline: float,
    client: httpx.Client | None,
    clock: Clock,
) -> DeliveryReport:
    """``deliver`` over ``client``, else over a short-lived client of its own."""

    def send(http: httpx.Client) -> DeliveryReport:
        return deliver(
            prepare, fmt=fmt, target=target, client=http, deadline=deadline, clock=clock, secrets=secrets
        )

    if client is not None:
        return send(client)
    with bounded_client(connect_timeout=CONNECT_TIMEOUT, read_timeout=ATTEMPT_TIMEOUT) as own:
        return send(own)
