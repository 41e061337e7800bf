"""The function entry: glue between the platform and the export flow. Errors are caught here, once."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

import structlog

from handler.adapters.log import configure_logging, redactor
from handler.clock import SYSTEM_CLOCK
from handler.errors import ConfigurationError, ExporterError, InvalidEvent, InvocationIncomplete
from handler.models.events import Command, event_id_of, is_http_event, parse_event, trigger_of
from handler.models.results import ErrorInfo, ImageOutcome, InvocationResult, Trigger
from handler.models.settings import Settings

__all__ = ["handle", "http_response", "reject"]

_log = structlog.get_logger("handler")
_cold = True


def _remaining_seconds(context: Any, settings: Settings | None) -> float:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        try:
            return max(0.0, float(remaining()) / 1000)
        except (TypeError, ValueError):
            pass
    return settings.function_timeout if settings else 900.0


def handle(event: Any, context: Any = None) -> dict[str, Any]:
    """Run one invocation; see docs/contract.md for the result, the HTTP response and when this raises."""
    global _cold
    cold, _cold = _cold, False
    clock_start = SYSTEM_CLOCK.monotonic()
    request_id = str(getattr(context, "request_id", "") or uuid.uuid4())
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        correlation_id=event_id_of(event) or request_id, request_id=request_id, cold_start=cold
    )
    http = is_http_event(event)
    settings: Settings | None = None
    stopped_by: ExporterError | None = None
    settle_tags: Callable[[], None] | None = None
    try:
        settings = Settings.from_env(os.environ)
        # The budget's end, read once: the export and the webhook both work to it.
        end = clock_start + _remaining_seconds(context, settings)
        configure_logging(settings.log_level)
        webhook_secrets = _webhook_secrets(settings)
        redactor.set_secrets(webhook_secrets)
        command = parse_event(event)
        if command.event_id:
            structlog.contextvars.bind_contextvars(correlation_id=command.event_id)
        outcomes, settle_tags = _export(command, settings, end, webhook_secrets)
        result = InvocationResult.of(command.trigger, command.event_id or request_id, outcomes)
    except ExporterError as error:
        if settings is None:
            configure_logging("INFO")
        stopped_by = error
        failed = ImageOutcome(image_id=None, status="failed", error=ErrorInfo.from_error(error))
        result = InvocationResult.of(trigger_of(event), event_id_of(event) or request_id, (failed,))
    except Exception:
        # A defect, not a typed error: logged with its traceback (secrets masked), then surfaced so the
        # platform records the failure and retries; an HTTP caller gets a 503 with the same advice.
        if settings is None:
            configure_logging("INFO")
        _log.exception("invocation.crashed")
        if not http:
            raise
        return http_response(_crashed(event_id_of(event) or request_id))

    _report(result)
    if settings is not None and settings.webhook_url:
        _notify(result, settings, end)
    if settle_tags is not None:
        settle_tags()  # only now: a finished export is reported again rather than never
    if http:
        return http_response(result, stopped_by=stopped_by)
    if result.should_raise:
        counts = result.counts()
        failed_retryable = sum(1 for r in result.results if r.status == "failed" and r.raises)
        raise InvocationIncomplete(result.to_json(), deferred=counts["deferred"], failed=failed_retryable)
    return result.to_json()


def _crashed(event_id: str) -> InvocationResult:
    """The HTTP caller's result for a defect: retry later, the log has the traceback."""
    message = "the function failed unexpectedly; its log has the details (invocation.crashed)"
    error = ErrorInfo(code="InternalError", message=message, retryable=True)
    return InvocationResult.of("http", event_id, (ImageOutcome(image_id=None, status="failed", error=error),))


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
) -> tuple[tuple[ImageOutcome, ...], Callable[[], None] | None]:
    """Resolve credentials and the target, build the clients, run the flow within the time budget. Returns
    the outcomes and, when finished exports were followed up, what retags them once they are reported."""
    from handler.adapters.credentials import resolve_credentials  # noqa: PLC0415 - after the event is valid
    from handler.adapters.ecs import API_VERSION, SERVICE, EcsClient  # noqa: PLC0415
    from handler.adapters.openapi import OpenApiClient, shared_http_client, shared_rate_limiter  # noqa: PLC0415
    from handler.adapters.retry import RetryPolicy  # noqa: PLC0415
    from handler.core.budget import Budget  # noqa: PLC0415
    from handler.core.plan import ExportPlan  # noqa: PLC0415
    from handler.core.run import run_command  # noqa: PLC0415

    plan = ExportPlan.of(command, settings)
    credentials = resolve_credentials(os.environ)
    redactor.set_secrets(
        [credentials.secret_key, credentials.session_token, *webhook_secrets],
        access_key=credentials.access_key,
    )
    http = shared_http_client(connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout)
    policy = RetryPolicy(settings.max_attempts, settings.backoff_base, settings.backoff_cap)
    api = OpenApiClient(
        http=http,
        endpoint=settings.endpoint,
        region=settings.region,
        service=SERVICE,
        version=API_VERSION,
        credentials=credentials,
        policy=policy,
        limiter=shared_rate_limiter(settings.max_rps),
    )
    budget = Budget.ending_at(end, now=SYSTEM_CLOCK.monotonic(), settings=settings)
    ecs = EcsClient(api)
    if settings.tracking == "off":
        return run_command(command, api=ecs, plan=plan, budget=budget, clock=SYSTEM_CLOCK), None

    from handler.adapters.tos import TosClient, shared_tos_rate_limiter  # noqa: PLC0415
    from handler.core.follow_up import run_tracked, settle  # noqa: PLC0415

    store = TosClient(
        http=http,
        endpoint=settings.tos_origin,
        region=settings.region,
        credentials=credentials,
        policy=policy,
        limiter=shared_tos_rate_limiter(settings.max_rps),
    )
    run = run_tracked(
        command,
        api=ecs,
        store=store,
        plan=plan,
        budget=budget,
        cap=settings.max_in_flight,
        clock=SYSTEM_CLOCK,
    )
    if not run.next_states:
        return run.outcomes, None
    return run.outcomes, lambda: settle(ecs, run.next_states, deadline=end - 0.5)


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
            "size_bytes": outcome.size_bytes,
            "crc64": outcome.crc64,
            "duration_s": outcome.duration_s,
            "verified": outcome.verified,
        }
        if outcome.error is not None:
            fields["error"] = outcome.error.model_dump(exclude_none=True)
        fields = {k: v for k, v in fields.items() if v is not None}
        if outcome.status in ("failed", "export_failed"):
            _log.error("image.outcome", **fields)
        elif outcome.status == "deferred":
            _log.warning("image.outcome", **fields)
        else:
            _log.info("image.outcome", **fields)
    _log.info("invocation.result", ok=result.ok, trigger=result.trigger, **result.counts())


def _notify(result: InvocationResult, settings: Settings, end: float) -> None:
    from handler.adapters.webhooks import notify  # noqa: PLC0415 - only when a webhook is set

    notify(result, settings, region=settings.region, deadline=end - 0.5)


def http_response(result: InvocationResult, *, stopped_by: ExporterError | None = None) -> dict[str, Any]:
    """The API-gateway answer: the status tells the caller what to do (docs/contract.md, HTTP).
    ``stopped_by`` is the typed error that ended the invocation before any image, when one did."""
    import json  # noqa: PLC0415 - only the HTTP trigger serialises here

    headers = {"Content-Type": "application/json"}
    if result.ok:
        status = 200
    elif isinstance(stopped_by, InvalidEvent):
        status = 400
    elif result.should_raise:
        status, headers["Retry-After"] = 503, "60"
    elif isinstance(stopped_by, ConfigurationError):
        status = 500
    else:
        status = 502
    return {"statusCode": status, "headers": headers, "body": json.dumps(result.to_json())}
