"""The result of one invocation, exactly as docs/contract.md publishes it."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict

from handler.errors import ApiError, ExporterError

__all__ = [
    "NEEDS_ATTENTION",
    "NOT_OK",
    "STATUSES",
    "TRIGGERS",
    "ErrorInfo",
    "ImageOutcome",
    "InvocationResult",
    "Status",
    "Trigger",
    "object_key_for",
]

Status = Literal["started", "skipped", "failed", "deferred", "queued", "exported", "export_failed"]
# Every status, in the order counts and summaries list them.
STATUSES: tuple[Status, ...] = get_args(Status)
# The statuses that make ``ok`` false (and ``invoke`` exit 1): something needs a person or a later run.
NOT_OK: frozenset[Status] = frozenset({"failed", "deferred", "export_failed"})
# How the reason of a finished export's last notice begins, once re-reporting it stops (its state tag could not
# be changed): the notice gets a webhook-id of its own, so that a receiver that dedupes still sees it.
NEEDS_ATTENTION = "needs attention"
Trigger = Literal["timer", "event", "http", "direct"]
TRIGGERS: tuple[Trigger, ...] = get_args(Trigger)


def object_key_for(prefix: str, image_id: str) -> str:
    """The object ExportImage writes: ``<TOSPrefix>_<ImageId>_system.qcow2`` (docs/facts.md §1)."""
    return f"{prefix}_{image_id}_system.qcow2"


class ErrorInfo(BaseModel):
    """What went wrong, for a person: the code to look up, a message that says what to fix."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str
    retryable: bool = False
    request_id: str | None = None

    @classmethod
    def from_error(cls, error: ExporterError) -> ErrorInfo:
        request_id = error.request_id if isinstance(error, ApiError) else None
        return cls(code=error.code, message=error.message, retryable=error.retryable, request_id=request_id)


class ImageOutcome(BaseModel):
    """What happened to one image in this invocation."""

    model_config = ConfigDict(frozen=True)

    image_id: str | None
    status: Status
    task_id: str | None = None
    tos_bucket: str | None = None
    object_key: str | None = None
    reason: str | None = None
    error: ErrorInfo | None = None
    # An ``exported`` result's object, as TOS reported it, and how long the export took (task CreatedAt→EndAt).
    size_bytes: int | None = None
    crc64: str | None = None
    duration_s: float | None = None
    # False (with ``reason``) when TOS would not show the object: the export could not be verified.
    verified: bool | None = None

    @property
    def raises(self) -> bool:
        """True when this outcome asks the trigger to run the invocation again."""
        return self.status == "deferred" or (
            self.status == "failed" and self.error is not None and self.error.retryable
        )


class InvocationResult(BaseModel):
    """The entry's return value (inside an HTTP response body for the HTTP trigger)."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    trigger: Trigger
    event_id: str
    results: tuple[ImageOutcome, ...] = ()

    @classmethod
    def of(cls, trigger: Trigger, event_id: str, results: tuple[ImageOutcome, ...]) -> InvocationResult:
        ok = not any(r.status in NOT_OK for r in results)
        return cls(ok=ok, trigger=trigger, event_id=event_id, results=results)

    @property
    def should_raise(self) -> bool:
        """True when any result is deferred, or failed retryably: the platform should retry the event."""
        return any(r.raises for r in self.results)

    @property
    def counts(self) -> dict[str, int]:
        """How many results have each status, in a fixed order."""
        out: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for r in self.results:
            out[r.status] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        """The published shape: unset optional fields are left out."""
        return self.model_dump(mode="json", exclude_none=True)
