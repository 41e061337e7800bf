"""The function entry: glue between the platform and the export flow. Errors are caught here, once."""

from __future__ import annotations

import dataclasses
import os
import uuid
from typing import TYPE_CHECKING, Any, TypeAlias

import structlog

from handler.adapters.log import configure_logging, first_invocation
from handler.clock import SYSTEM_CLOCK
from handler.core.budget import Budget
from handler.errors import ConfigurationError, ExporterError, InvalidEvent, InvocationIncomplete
from handler.models.commands import (
    DoctorCommand,
    ExportingCommand,
    RestoreCommand,
    TargetedCommand,
    forced,
    is_timer,
)
from handler.models.events import Command, parse_event
from handler.models.results import (
    CHECK_STATUSES,
    TRIGGERS,
    ErrorInfo,
    ImageOutcome,
    InvocationResult,
    Trigger,
)
from handler.models.settings import KNOWN_REGIONS, LogFormat, Settings
from handler.version import build_info

if TYPE_CHECKING:
    from handler.adapters.clients import Clients
    from handler.core.catalogue import ManifestCache
    from handler.core.follow_up import TrackedRun
    from handler.core.plan import ExportPlan
    from handler.core.restore import RestoreRun
    from handler.core.retention import RetentionRun
    from handler.models.api import Image

__all__ = ["handle", "http_response", "reject"]

_log = structlog.get_logger("handler")


def handle(event: Any, context: Any = None) -> dict[str, Any]:
    """Run one invocation; see docs/contract.md for the result, the HTTP response and when this raises."""
    request_id, cold = _begin(context)
    try:
        command: Command | InvalidEvent = parse_event(event)
    except InvalidEvent as refused:
        command = refused  # reported once the settings are read: a broken configuration is said first
    trigger, event_id = _recognised(command, cold=cold)
    if isinstance(command, DoctorCommand):
        return _doctor(trigger, event_id or request_id, context)
    settings: Settings | None = None
    budget: Budget | None = None
    stopped_by: ExporterError | None = None
    exported: _Run | None = None
    try:
        settings = Settings.from_env(os.environ)
        configure_logging(settings.log_level, fmt=settings.log_format)
        if not settings.region_known:
            _log.warning("settings.unknown_region", region=settings.region, known=list(KNOWN_REGIONS))
        budget = Budget.for_invocation(_remaining(context), now=SYSTEM_CLOCK.monotonic(), settings=settings)
        if isinstance(command, InvalidEvent):
            raise command
        exported = _export(command, settings, budget, holder=request_id)
        result = InvocationResult.of(trigger, event_id or request_id, exported.outcomes)
    except ExporterError as error:
        stopped_by = error
        failed = ImageOutcome(image_id=None, status="failed", error=ErrorInfo.from_error(error))
        result = InvocationResult.of(trigger, event_id or request_id, (failed,))
    except Exception:
        return _crashed(trigger, event_id or request_id)
    _report(result)
    if settings is not None and budget is not None:
        _notify(result, settings, budget)
        if exported is not None:
            exported.settle(deadline=budget.report_by)  # only now: reported again rather than never
    return _respond(result, stopped_by)


def _begin(context: Any) -> tuple[str, bool]:
    """Start the invocation's log context (logging at INFO until the settings are read); its request id, and
    whether it is the process's first invocation."""
    cold = first_invocation()
    request_id = str(getattr(context, "request_id", "") or uuid.uuid4())
    configure_logging("INFO", fmt=_early_format())
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(correlation_id=request_id, request_id=request_id, cold_start=cold)
    return request_id, cold


def _early_format() -> LogFormat:
    """``LOG_FORMAT`` before the settings are read (the first lines): ``console`` when it says so, else JSON (a
    value the settings refuse is reported with them)."""
    return "console" if os.environ.get("LOG_FORMAT", "").strip().lower() == "console" else "json"


def _recognised(command: Command | InvalidEvent, *, cold: bool) -> tuple[Trigger, str | None]:
    """The trigger and event id of the event (recognised even when it was refused); the log lines are
    correlated by the id from now on, the first of a process saying what code it runs."""
    trigger, event_id = command.trigger, command.event_id
    if event_id:
        structlog.contextvars.bind_contextvars(correlation_id=event_id)
    if cold:
        _log.info("cold_start", **build_info())
    return (trigger if trigger in TRIGGERS else "direct"), event_id


def _remaining(context: Any) -> float | None:
    """The seconds the platform leaves this invocation, when its context says."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        try:
            return max(0.0, float(remaining()) / 1000)
        except (TypeError, ValueError):
            pass
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class _Settled:
    """Outcomes with nothing to settle after they are reported: an untracked run's exports, a drill's start."""

    outcomes: tuple[ImageOutcome, ...]
    listed: None = None

    def settle(self, *, deadline: float) -> None:
        """Nothing to do."""


# A part of an invocation: its outcomes, and what it settles once they are reported.
_Part: TypeAlias = "TrackedRun | RestoreRun | RetentionRun | _Settled"


@dataclasses.dataclass(frozen=True, slots=True)
class _Run:
    """The invocation's outcomes, and the parts that settle once they are logged and notified (the restores'
    retags and drill deletes, the exports' retags)."""

    outcomes: tuple[ImageOutcome, ...]
    parts: tuple[_Part, ...] = ()

    def settle(self, *, deadline: float) -> None:
        for part in self.parts:
            part.settle(deadline=deadline)


def _export(command: TargetedCommand, settings: Settings, budget: Budget, *, holder: str) -> _Run:
    """Resolve credentials and the target, build the clients, run the flow within the time budget.
    ``holder`` names this invocation in the claims it writes: its request id, so that a retry of the same
    event running at the same time is another holder. A timer, after the exports (their follow-up first),
    follows the restores in flight, may start a restore drill, then runs retention."""
    from handler.adapters.clients import build_clients, webhook_secrets  # noqa: PLC0415 - after the event is valid
    from handler.adapters.credentials import resolve_credentials  # noqa: PLC0415
    from handler.core.plan import ExportPlan  # noqa: PLC0415

    plan = ExportPlan.of(command, settings)
    restoring = isinstance(command, RestoreCommand)
    retaining = (
        not isinstance(command, RestoreCommand) and is_timer(command) and settings.retention_mode != "off"
    )
    clients = build_clients(
        settings,
        resolve_credentials(os.environ),
        secrets=webhook_secrets(settings),
        with_store=restoring or retaining,
    )
    if isinstance(command, RestoreCommand):
        return _Run((_restore(command, clients, plan, settings, budget),))
    parts: list[_Part] = []
    timer = is_timer(command) and settings.tracking != "off"
    cache = _manifest_cache() if retaining or (timer and settings.drill_days is not None) else None
    tracked = _tracked(command, clients, plan, settings, budget, holder=holder)
    # A whole scan's listing serves the restores' follow-up and the drill's count, and nothing after them: the
    # part kept until it settles holds none of it (tens of thousands of images).
    listed, tracked = tracked.listed, dataclasses.replace(tracked, listed=None)
    parts.append(tracked)
    drill: _Settled | None = None
    if timer and clients.store is not None:
        from handler.core.restore import follow_restores  # noqa: PLC0415 - timers only

        # After the exports: a whole scan's listing holds the imports in flight, so following them costs nothing.
        restores = follow_restores(
            clients.ecs, clients.store, deadline=budget.send_by, clock=SYSTEM_CLOCK, listed=listed
        )
        parts.append(restores)
        if settings.drill_days is not None and restores.checked and not restores.drills_in_flight:
            drill = _drill(clients, plan, settings, budget, cache=cache, listed=listed)  # one at a time
            parts.append(drill)
    del listed
    if retaining:
        started = [o.image_id for o in tracked.outcomes if o.status == "started" and o.image_id]
        importing = [o.image_id for o in (drill.outcomes if drill else ()) if o.image_id]
        parts.append(_retention(clients, plan, settings, budget, cache, started=started, importing=importing))
    return _Run(tuple(o for part in parts for o in part.outcomes), tuple(parts))


def _manifest_cache() -> ManifestCache:
    from handler.core.catalogue import ManifestCache  # noqa: PLC0415 - drills and retention only

    return ManifestCache()


def _retention(
    clients: Clients,
    plan: ExportPlan,
    settings: Settings,
    budget: Budget,
    cache: ManifestCache | None,
    *,
    started: list[str],
    importing: list[str],
) -> RetentionRun:
    """Retention (``RETENTION_MODE`` plan or apply) on the bucket and prefix this timer exports to (the drill's
    too), after everything else it did: the exports it started and the drill it began hold their groups and
    exports."""
    from handler.core.retention import RetentionRun, run_retention  # noqa: PLC0415 - retention only
    from handler.core.retention_rules import Policy  # noqa: PLC0415
    from handler.core.tracking import Destination  # noqa: PLC0415

    if clients.store is None:  # pragma: no cover - built with_store
        return RetentionRun()
    return run_retention(
        clients.ecs,
        clients.store,
        dest=Destination(plan.bucket, plan.prefix),
        group_by=settings.retention_group_by,
        policy=Policy.of(settings),
        mode="apply" if settings.retention_mode == "apply" else "plan",
        max_deletes=settings.max_deletes,
        deadline=budget.send_by,
        workers=plan.concurrency,
        clock=SYSTEM_CLOCK,
        cache=cache,
        started=started,
        importing=importing,
    )


def _drill(
    clients: Clients,
    plan: ExportPlan,
    settings: Settings,
    budget: Budget,
    *,
    cache: ManifestCache | None,
    listed: tuple[Image, ...] | None,
) -> _Settled:
    """The restore drill's start, when one is due (``RESTORE_DRILL_DAYS``), as a part with nothing to settle;
    ``listed``: every private image, when the scan listed them (their count is the region's room)."""
    from handler.core.restore import drill_if_due  # noqa: PLC0415 - drills only
    from handler.core.tracking import Destination  # noqa: PLC0415

    if clients.store is None or settings.drill_days is None:  # pragma: no cover - checked by the caller
        return _Settled(outcomes=())
    outcome = drill_if_due(
        clients.ecs,
        clients.store,
        dest=Destination(plan.bucket, plan.prefix),
        group_by=settings.retention_group_by,
        days=settings.drill_days,
        tos_origin=settings.tos_origin,
        deadline=budget.send_by,
        workers=plan.concurrency,
        clock=SYSTEM_CLOCK,
        cache=cache,
        private_images=len(listed) if listed is not None else None,
    )
    return _Settled(outcomes=() if outcome is None else (outcome,))


def _restore(
    command: RestoreCommand, clients: Clients, plan: ExportPlan, settings: Settings, budget: Budget
) -> ImageOutcome:
    from handler.core.restore import start_restore  # noqa: PLC0415 - restores only
    from handler.core.tracking import Destination  # noqa: PLC0415

    if clients.store is None:  # pragma: no cover - built with_store
        msg = "a restore needs the TOS client"
        raise RuntimeError(msg)
    return start_restore(
        clients.ecs,
        clients.store,
        source_id=command.image_id,
        dest=Destination(plan.bucket, plan.prefix),
        tos_origin=settings.tos_origin,
        name=command.image_name,
        deadline=budget.send_by,
        clock=SYSTEM_CLOCK,
    )


def _tracked(
    command: ExportingCommand,
    clients: Clients,
    plan: ExportPlan,
    settings: Settings,
    budget: Budget,
    *,
    holder: str,
) -> TrackedRun | _Settled:
    """The command's exports: with tracking, after the follow-up and tagged as they start
    (``handler.core.follow_up``); without (``EXPORT_TRACKING=off``), the export flow alone, and none of
    tracking's modules is imported."""
    if settings.tracking == "off" or clients.store is None:
        from handler.core.export_flow import run_command  # noqa: PLC0415

        outcomes = run_command(
            command, api=clients.ecs, plan=plan, budget=budget, clock=SYSTEM_CLOCK, redo=forced(command)
        )
        return _Settled(outcomes)
    from handler.core.follow_up import run_tracked  # noqa: PLC0415

    return run_tracked(
        command,
        api=clients.ecs,
        store=clients.store,
        plan=plan,
        budget=budget,
        cap=settings.max_in_flight,
        holder=holder,
        settle=settings.claim_settle,
        missing_confirm=settings.missing_confirm,
        clock=SYSTEM_CLOCK,
    )


def _respond(result: InvocationResult, stopped_by: ExporterError | None) -> dict[str, Any]:
    """The HTTP answer, the result, or ``InvocationIncomplete`` so the platform retries (docs/contract.md)."""
    if result.trigger == "http":
        return http_response(result, stopped_by=stopped_by)
    if result.should_raise:
        counts = result.counts
        failed_retryable = sum(1 for r in result.results if r.status == "failed" and r.raises)
        raise InvocationIncomplete(result.to_json(), deferred=counts["deferred"], failed=failed_retryable)
    return result.to_json()


def _crashed(trigger: Trigger, event_id: str) -> dict[str, Any]:
    """A defect, not a typed error (called in its ``except``): logged with its traceback (secrets masked),
    then raised again so the platform records the failure and retries; an HTTP caller gets a 503 with the
    same advice."""
    _log.exception("invocation.crashed")
    if trigger != "http":
        raise  # noqa: PLE0704 - only ever called while handling the defect
    message = "the function failed unexpectedly; its log has the details (invocation.crashed)"
    error = ErrorInfo(code="InternalError", message=message, retryable=True)
    failed = ImageOutcome(image_id=None, status="failed", error=error)
    return http_response(InvocationResult.of("http", event_id, (failed,)))


def _doctor(trigger: Trigger, event_id: str, context: Any) -> dict[str, Any]:
    """The ``Doctor`` event: the doctor's checks with the function's own identity and settings, within the
    invocation's budget, in the result's ``checks`` (``ok`` false when one failed). Never raised to be
    retried: a failed check is not transient. A bad setting is the settings check's failure, not an error."""
    from handler.doctor import examine, read_settings  # noqa: PLC0415 - the doctor's path only

    try:
        reading = read_settings(os.environ)
        configure_logging(reading.settings.log_level)
        budget = Budget.for_invocation(
            _remaining(context), now=SYSTEM_CLOCK.monotonic(), settings=reading.settings
        )
        checks = examine(reading, os.environ, deadline=budget.send_by)
    except Exception:
        return _crashed(trigger, event_id)
    result = InvocationResult.of(trigger, event_id, (), checks=checks)
    for check in checks:
        log = {"pass": _log.info, "warn": _log.warning, "fail": _log.error}[check.status]
        log("doctor.check", check=check.name, status=check.status, detail=check.detail, fix=check.fix)
    counts = {status: sum(1 for c in checks if c.status == status) for status in CHECK_STATUSES}
    _log.info("invocation.result", ok=result.ok, trigger=result.trigger, **counts)
    return http_response(result) if trigger == "http" else result.to_json()


def reject(error: ExporterError, *, request_id: str, trigger: Trigger = "direct") -> dict[str, Any]:
    """The logged result for an event that never reached the handler as JSON (the CLI's unreadable file)."""
    configure_logging(os.environ.get("LOG_LEVEL", "INFO").upper(), fmt=_early_format())
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(correlation_id=request_id, request_id=request_id)
    failed = ImageOutcome(image_id=None, status="failed", error=ErrorInfo.from_error(error))
    result = InvocationResult.of(trigger, request_id, (failed,))
    _report(result)
    return result.to_json()


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
            "verification": outcome.verification,
            "manifest_key": outcome.manifest_key,
            "restored_image_id": outcome.restored_image_id,
            "objects": len(outcome.objects) if outcome.objects is not None else None,
        }
        if outcome.error is not None:
            fields["error"] = {k: v for k, v in dataclasses.asdict(outcome.error).items() if v is not None}
        fields = {k: v for k, v in fields.items() if v is not None}
        if outcome.status in ("failed", "export_failed", "restore_failed"):
            _log.error("image.outcome", **fields)
        elif outcome.status == "deferred":
            _log.warning("image.outcome", **fields)
        else:
            _log.info("image.outcome", **fields)
    _log.info("invocation.result", ok=result.ok, trigger=result.trigger, **result.counts)


def _notify(result: InvocationResult, settings: Settings, budget: Budget) -> None:
    if not settings.webhook_url:
        return
    from handler.adapters.webhooks import notify  # noqa: PLC0415 - only when a webhook is set

    notify(result, settings, region=settings.region, deadline=budget.report_by)


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
