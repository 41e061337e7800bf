"""The function entry: glue between the platform and the export flow. Errors are caught here, once."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import structlog

from handler.adapters.log import configure_logging, redactor
from handler.errors import ConfigurationError, ExporterError, InvalidEvent, InvocationIncomplete
from handler.models.events import Command, is_http_event, parse_event
from handler.models.results import ErrorInfo, ImageOutcome, InvocationResult, Trigger
from handler.models.settings import Settings

__all__ = ["handle", "http_response", "reject"]

_log = structlog.get_logger("handler")
_cold = True
# Kept back from the time budget for logging the outcomes and notifying the webhook.
NOTIFY_RESERVE_SECONDS = 5.0


def _remaining_seconds(context: Any, settings: Settings | None) -> float:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        try:
            return max(0.0, float(remaining()) / 1000)
        except (TypeError, ValueError):
            pass
    return settings.function_timeout if settings else 900.0


def _guess_trigger(event: Any) -> Trigger:
    if is_http_event(event):
        return "http"
    if isinstance(event, dict) and event.get("type") == "faas.timer.event":
        return "timer"
    if isinstance(event, dict) and ("specversion" in event or "detail-type" in event):
        return "event"
    return "direct"


def _event_id(event: Any) -> str | None:
    """The raw event's id for the log and the result, when the event could not be parsed (cut short)."""
    value = event.get("id") if isinstance(event, dict) else None
    return value[:128] if isinstance(value, str) and value else None


def handle(event: Any, context: Any = None) -> dict[str, Any]:
    """Run one invocation; see docs/contract.md for the result, the HTTP response and when this raises."""
    global _cold
    cold, _cold = _cold, False
    clock_start = time.monotonic()
    request_id = str(getattr(context, "request_id", "") or uuid.uuid4())
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        correlation_id=_event_id(event) or request_id, request_id=request_id, cold_start=cold
    )
    http = is_http_event(event)
    settings: Settings | None = None
    try:
        settings = Settings.from_env(os.environ)
        # The budget's end, fixed once: the export and the webhook both work to it.
        end = clock_start + _remaining_seconds(context, settings)
        configure_logging(settings.log_level)
        webhook_secrets = _webhook_secrets(settings)
        redactor.set_secrets(webhook_secrets)
        command = parse_event(event)
        if command.event_id:
            structlog.contextvars.bind_contextvars(correlation_id=command.event_id)
        outcomes = _export(command, settings, end, webhook_secrets)
        result = InvocationResult.of(command.trigger, command.event_id or request_id, outcomes)
    except ExporterError as error:
        if settings is None:
            configure_logging("INFO")
        trigger: Trigger = _guess_trigger(event)
        failed = ImageOutcome(image_id=None, status="failed", error=ErrorInfo.from_error(error))
        result = InvocationResult.of(trigger, _event_id(event) or request_id, (failed,))
    except Exception:
        # A defect, not a typed error: logged with its traceback (secrets masked), then surfaced so the
        # platform records the failure and retries; an HTTP caller gets a 503 with the same advice.
        if settings is None:
            configure_logging("INFO")
        _log.exception("invocation.crashed")
        if not http:
            raise
        message = "the function failed unexpectedly; its log has the details (invocation.crashed)"
        crashed = ImageOutcome(
            image_id=None,
            status="failed",
            error=ErrorInfo(code="InternalError", message=message, retryable=True),
        )
        return http_response(InvocationResult.of("http", _event_id(event) or request_id, (crashed,)))

    _report(result)
    if settings is not None and settings.webhook_url:
        _notify(result, settings, end)
    if http:
        return http_response(result)
    if result.should_raise:
        counts = result.counts()
        failed_retryable = sum(1 for r in result.results if r.status == "failed" and r.raises)
        raise InvocationIncomplete(result.to_json(), deferred=counts["deferred"], failed=failed_retryable)
    return result.to_json()


def reject(error: ExporterError, *, request_id: str, trigger: Trigger = "direct") -> dict[str, Any]:
    """The logged result for an event that never reached the handler as JSON (the CLI's unreadable file)."""
    configure_logging(os.environ.get("LOG_LEVEL", "INFO").upper())
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(correlation_id=request_id, request_id=request_id)
    failed = ImageOutcome(image_id=None, status="failed", error=ErrorInfo.from_error(error))
    result = InvocationResult.of(trigger, request_id, (failed,))
    _report(result)
    return result.to_json()


def _export(
    command: Command, settings: Settings, end: float, webhook_secrets: list[str]
) -> tuple[ImageOutcome, ...]:
    """Resolve credentials and the target, build the client, run the flow within the time budget."""
    from handler.adapters.credentials import resolve_credentials  # noqa: PLC0415 - after the event is valid
    from handler.adapters.ecs import API_VERSION, SERVICE, EcsClient  # noqa: PLC0415
    from handler.adapters.openapi import OpenApiClient, shared_http_client, shared_rate_limiter  # noqa: PLC0415
    from handler.adapters.pacing import RetryPolicy  # noqa: PLC0415
    from handler.core.run import Budget, ExportPlan, run_command  # noqa: PLC0415

    lookback = getattr(command, "lookback_hours", None)
    if lookback is not None and settings.dedupe_hours is not None and lookback > settings.dedupe_hours:
        msg = (
            f"{lookback:g} h is longer than the dedupe window (EXPORT_DEDUPE_HOURS={settings.dedupe_hours:g}): "
            "an image could be exported twice"
        )
        raise InvalidEvent(msg, field="data.LookbackHours")
    bucket = command.tos_bucket or settings.tos_bucket
    if not bucket:
        msg = "no TOS bucket: set EXPORT_TOS_BUCKET, or name TOSBucket in the event"
        raise ConfigurationError(msg, source="EXPORT_TOS_BUCKET")
    credentials = resolve_credentials(os.environ)
    redactor.set_secrets(
        [credentials.secret_key, credentials.session_token, *webhook_secrets],
        access_key=credentials.access_key,
    )
    api = OpenApiClient(
        http=shared_http_client(connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout),
        endpoint=settings.endpoint,
        region=settings.region,
        service=SERVICE,
        version=API_VERSION,
        credentials=credentials,
        policy=RetryPolicy(settings.max_attempts, settings.backoff_base, settings.backoff_cap),
        limiter=shared_rate_limiter(settings.max_rps),
    )
    request_ceiling = settings.connect_timeout + settings.read_timeout
    send_by = end - min(NOTIFY_RESERVE_SECONDS, 0.1 * (end - time.monotonic())) - request_ceiling
    plan = ExportPlan(
        bucket=bucket,
        prefix=command.tos_prefix or settings.tos_prefix,
        region=settings.region,
        concurrency=settings.concurrency,
        dedupe_hours=settings.dedupe_hours,
        lookback_hours=settings.lookback_hours,
    )
    budget = Budget(send_by=send_by, start_by=send_by - request_ceiling)
    return run_command(command, api=EcsClient(api), plan=plan, budget=budget, now=datetime.now(UTC))


def _webhook_secrets(settings: Settings) -> list[str]:
    """The webhook secret, the whole URL and its credential parts (DingTalk token, WeCom key, ...)."""
    if not settings.webhook_url:
        return [settings.webhook_secret] if settings.webhook_secret else []
    from handler.adapters.webhooks import secret_parts  # noqa: PLC0415 - only when a webhook is set

    return [settings.webhook_url, *secret_parts(settings.webhook_url, settings.webhook_secret)]


def _report(result: InvocationResult) -> None:
    """One log line per image outcome, then the totals: written before any webhook is tried."""
    for outcome in result.results:
        fields: dict[str, Any] = {
            "image_id": outcome.image_id,
            "status": outcome.status,
            "task_id": outcome.task_id,
            "object_key": outcome.object_key,
            "reason": outcome.reason,
        }
        if outcome.error is not None:
            fields["error"] = outcome.error.model_dump(exclude_none=True)
        fields = {k: v for k, v in fields.items() if v is not None}
        if outcome.status == "failed":
            _log.error("image.outcome", **fields)
        elif outcome.status == "deferred":
            _log.warning("image.outcome", **fields)
        else:
            _log.info("image.outcome", **fields)
    _log.info("invocation.result", ok=result.ok, trigger=result.trigger, **result.counts())


def _notify(result: InvocationResult, settings: Settings, end: float) -> None:
    from handler.adapters.webhooks import notify  # noqa: PLC0415 - only when a webhook is set

    notify(result, settings, region=settings.region, deadline=end - 0.5)


def http_response(result: InvocationResult) -> dict[str, Any]:
    """The API-gateway answer: the status tells the caller what to do (docs/contract.md, HTTP)."""
    import json  # noqa: PLC0415 - only the HTTP trigger serialises here

    headers = {"Content-Type": "application/json"}
    errors = [r.error for r in result.results if r.error is not None]
    if result.ok:
        status = 200
    elif any(e.code == InvalidEvent.code for e in errors):
        status = 400
    elif result.should_raise:
        status, headers["Retry-After"] = 503, "60"
    elif any(e.code == ConfigurationError.code for e in errors):
        status = 500
    else:
        status = 502
    return {"statusCode": status, "headers": headers, "body": json.dumps(result.to_json())}
