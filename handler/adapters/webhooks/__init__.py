"""Webhook notifications: one delivery per invocation that has something to say, never at the result's expense.

The entry calls ``notify`` after every outcome is logged. A delivery that fails is logged as ``webhook.failed``
and reported back; it never raises and never changes the result: the exports already happened.

Formats (``WEBHOOK_FORMAT``, else inferred from the URL's host by ``infer_format``)::

    standard   Standard Webhooks 1.0: the result as JSON, signed with WEBHOOK_SECRET (whsec_...)
    feishu     Feishu / Lark custom bot text message, signed when WEBHOOK_SECRET is set
    dingtalk   DingTalk robot markdown message, signed when WEBHOOK_SECRET is set
    wecom      WeCom group robot markdown message (the URL's key is the credential)
    slack      Slack incoming webhook text (the URL is the credential)
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import httpx
import structlog

from handler.adapters.webhooks._delivery import ATTEMPT_TIMEOUT, CONNECT_TIMEOUT, DeliveryReport, deliver
from handler.adapters.webhooks._formats import (
    WebhookRequest,
    build_request,
    fix_for,
    infer_format,
    redact_url,
    secret_parts,
    should_notify,
)
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
    "should_notify",
]


def notify(
    result: InvocationResult,
    settings: Settings,
    *,
    region: str,
    deadline: float,
    client: httpx.Client | None = None,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
) -> DeliveryReport | None:
    """Deliver ``result`` to ``WEBHOOK_URL`` if ``WEBHOOK_NOTIFY`` says it is worth it; never raises.

    ``deadline`` is a ``monotonic()`` value no attempt or retry may pass. Returns what happened, or None when
    nothing was due (no URL, or nothing worth saying). ``client`` is used as is and left open; without one a
    short-lived client is made and closed. ``sleep`` and ``rand`` drive the backoff (tests pass fakes).
    """
    url = settings.webhook_url
    if not url:
        return None
    log = structlog.get_logger()
    fmt: WebhookFormat = "standard"
    target = redact_url(url)
    secrets = secret_parts(url, settings.webhook_secret)
    try:
        if not should_notify(result, settings.webhook_notify):
            return None
        fmt = settings.webhook_format or infer_format(url)
        report = _send(
            result,
            settings,
            fmt=fmt,
            target=target,
            secrets=secrets,
            region=region,
            deadline=deadline,
            client=client,
            clock=clock,
            monotonic=monotonic,
            sleep=sleep,
            rand=rand,
        )
    except Exception as error:  # the safety net: a notification must never change the invocation
        report = DeliveryReport(fmt, target, delivered=False, attempts=0, reason=type(error).__name__)
    if report.delivered:
        log.info("webhook.delivered", format=fmt, url=target, attempts=report.attempts, status=report.status)
    else:
        log.warning(
            "webhook.failed",
            format=fmt,
            url=target,
            attempts=report.attempts,
            status=report.status,
            platform_code=report.platform_code,
            platform_message=report.platform_message,
            reason=report.reason,
        )
    return report


def _send(
    result: InvocationResult,
    settings: Settings,
    *,
    fmt: WebhookFormat,
    target: str,
    secrets: tuple[str, ...],
    region: str,
    deadline: float,
    client: httpx.Client | None,
    clock: Callable[[], float],
    monotonic: Callable[[], float],
    sleep: Callable[[float], None],
    rand: Callable[[], float],
) -> DeliveryReport:
    url = settings.webhook_url or ""

    def prepare() -> WebhookRequest:
        return build_request(
            fmt,
            result,
            url=url,
            secret=settings.webhook_secret,
            region=region,
            bucket=settings.tos_bucket,
            now=clock(),
        )

    def send(http: httpx.Client) -> DeliveryReport:
        return deliver(
            prepare,
            fmt=fmt,
            target=target,
            client=http,
            deadline=deadline,
            clock=clock,
            monotonic=monotonic,
            sleep=sleep,
            rand=rand,
            secrets=secrets,
        )

    if client is not None:
        return send(client)
    with httpx.Client(timeout=httpx.Timeout(ATTEMPT_TIMEOUT, connect=CONNECT_TIMEOUT)) as own:
        return send(own)
