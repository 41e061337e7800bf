"""Where exports go and how a run behaves: ``ExportPlan.of`` is the one place the event and the settings
meet (which bucket, prefix and lookback win, and whether the lookback fits the dedupe window). Pure."""

from __future__ import annotations

from dataclasses import dataclass

from handler.errors import ConfigurationError, InvalidEvent
from handler.models.commands import ScanCommand, TargetedCommand
from handler.models.exported import VerifyLevel
from handler.models.settings import Settings

__all__ = ["CLEARANCE_SECONDS", "DEFAULT_MAX_RPS", "ExportPlan"]

# The oldest a task look-up may be when the ExportImage it cleared is sent: a second copy of the function
# running at the same time may have started (and, its task done, released the API's lock on) the image since.
CLEARANCE_SECONDS = 10.0
# VOLCENGINE_MAX_RPS's default: the request rate the export flow plans its task look-ups for.
DEFAULT_MAX_RPS = 10.0


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """Where exports go and how the run behaves: the event's choices, falling back on the settings."""

    bucket: str
    prefix: str
    region: str
    concurrency: int
    dedupe_hours: float | None
    lookback_hours: float
    clearance_seconds: float = CLEARANCE_SECONDS
    max_rps: float = DEFAULT_MAX_RPS  # the rate the API client's limiter allows (VOLCENGINE_MAX_RPS)
    verify: VerifyLevel = "structure"  # how finished exports are checked (EXPORT_VERIFY)

    @classmethod
    def of(cls, command: TargetedCommand, settings: Settings) -> ExportPlan:
        """Merge the command with the settings. Raises ``InvalidEvent`` for a scan lookback longer than the
        dedupe window, ``ConfigurationError`` when neither names a TOS bucket."""
        lookback = command.lookback_hours if isinstance(command, ScanCommand) else None
        if lookback is not None and settings.dedupe_hours is not None and lookback > settings.dedupe_hours:
            msg = (
                f"{lookback:g} h is longer than the dedupe window "
                f"(EXPORT_DEDUPE_HOURS={settings.dedupe_hours:g}): an image could be exported twice"
            )
            raise InvalidEvent(msg, field="data.LookbackHours")
        bucket = command.tos_bucket or settings.tos_bucket
        if not bucket:
            msg = "no TOS bucket: set EXPORT_TOS_BUCKET, or name TOSBucket in the event"
            raise ConfigurationError(msg, source="EXPORT_TOS_BUCKET")
        return cls(
            bucket=bucket,
            prefix=command.tos_prefix or settings.tos_prefix,
            region=settings.region,
            concurrency=settings.concurrency,
            dedupe_hours=settings.dedupe_hours,
            lookback_hours=lookback or settings.lookback_hours,
            max_rps=settings.max_rps,
            verify=settings.verify,
        )
