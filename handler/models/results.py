"""The result of one invocation, exactly as docs/contract.md publishes it."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, TypeAdapter
from pydantic.dataclasses import dataclass as pydantic_dataclass

from handler.errors import ApiError, ExporterError
from handler.models.exported import ManifestObject, VerifyLevel

__all__ = [
    "CHECK_STATUSES",
    "NEEDS_ATTENTION",
    "NOT_OK",
    "STATUSES",
    "TRIGGERS",
    "CheckStatus",
    "DoctorCheck",
    "ErrorInfo",
    "ImageOutcome",
    "InvocationResult",
    "Status",
    "Trigger",
    "object_key_for",
]

Status = Literal[
    "started",
    "skipped",
    "failed",
    "deferred",
    "queued",
    "exported",
    "export_failed",
    "restore_started",
    "restored",
    "restore_failed",
    "restore_verified",
    "expired",
    "would_expire",
]
# Every status, in the order counts and summaries list them.
STATUSES: tuple[Status, ...] = get_args(Status)
# The statuses that make ``ok`` false (and ``invoke`` exit 1): something needs a person or a later run.
NOT_OK: frozenset[Status] = frozenset({"failed", "deferred", "export_failed", "restore_failed"})
# How the reason of a finished export's last notice begins, once re-reporting it stops (its state tag could not
# be changed): the notice gets a webhook-id of its own, so that a receiver that dedupes still sees it.
NEEDS_ATTENTION = "needs attention"
Trigger = Literal["timer", "event", "http", "direct"]
TRIGGERS: tuple[Trigger, ...] = get_args(Trigger)
# A doctor check's verdict (docs/doctor.md): a ``fail`` makes ``ok`` false, a ``warn`` does not.
CheckStatus = Literal["pass", "warn", "fail"]
CHECK_STATUSES: tuple[CheckStatus, ...] = get_args(CheckStatus)


def object_key_for(prefix: str, image_id: str) -> str:
    """The object ExportImage writes: ``<TOSPrefix>_<ImageId>_system.qcow2`` (docs/facts.md §1)."""
    return f"{prefix}_{image_id}_system.qcow2"


# The records of a result are slotted dataclasses, validated as pydantic models are: a follow-up holds one
# per export (tens of thousands), and a model instance costs about four times as much memory.
_RECORD = ConfigDict(defer_build=True)


@pydantic_dataclass(frozen=True, slots=True, config=_RECORD)
class ErrorInfo:
    """What went wrong, for a person: the code to look up, a message that says what to fix."""

    code: str
    message: str
    retryable: bool = False
    request_id: str | None = None

    @classmethod
    def from_error(cls, error: ExporterError) -> ErrorInfo:
        request_id = error.request_id if isinstance(error, ApiError) else None
        return cls(code=error.code, message=error.message, retryable=error.retryable, request_id=request_id)


@pydantic_dataclass(frozen=True, slots=True, config=_RECORD)
class ImageOutcome:
    """What happened to one image in this invocation (``dataclasses.replace`` makes a changed copy)."""

    image_id: str | None
    status: Status
    task_id: str | None = None
    tos_bucket: str | None = None
    object_key: str | None = None
    reason: str | None = None
    error: ErrorInfo | None = None
    # An ``exported`` result's object, as TOS reported it, and how long the export took (task CreatedAt→EndAt);
    # an ``expired`` / ``would_expire`` one's (retention) bytes of the whole export that were in the bucket.
    size_bytes: int | None = None
    crc64: str | None = None
    duration_s: float | None = None
    # How an ``exported`` result was checked (``EXPORT_VERIFY``), whether the checks ran and passed, every
    # object of the export (the system disk first) and the manifest written beside them.
    verified: bool | None = None
    verification: VerifyLevel | None = None
    objects: tuple[ManifestObject, ...] | None = None
    manifest_key: str | None = None
    # A restore's (or a restore drill's) new image: ``image_id`` is the source image it was exported from.
    restored_image_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The published shape of one result: unset optional fields are left out."""
        shape: dict[str, Any] = _outcome_adapter().dump_python(self, mode="json", exclude_none=True)
        return shape

    @property
    def raises(self) -> bool:
        """True when this outcome asks the trigger to run the invocation again."""
        return self.status == "deferred" or (
            self.status == "failed" and self.error is not None and self.error.retryable
        )


@pydantic_dataclass(frozen=True, slots=True, config=_RECORD)
class DoctorCheck:
    """One of the doctor's named checks: its verdict, what it found, and (a ``warn`` or a ``fail``) the one
    line that says what to do. Neither line ever holds a secret."""

    name: str
    status: CheckStatus
    detail: str
    fix: str | None = None


_ADAPTER: list[TypeAdapter[ImageOutcome]] = []


def _outcome_adapter() -> TypeAdapter[ImageOutcome]:
    """Built on first use, not at import."""
    if not _ADAPTER:
        _ADAPTER.append(TypeAdapter(ImageOutcome))
    return _ADAPTER[0]


class InvocationResult(BaseModel):
    """The entry's return value (inside an HTTP response body for the HTTP trigger)."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    trigger: Trigger
    event_id: str
    results: tuple[ImageOutcome, ...] = ()
    # The doctor's checks (a Doctor event only; left out of every other result).
    checks: tuple[DoctorCheck, ...] | None = None

    @classmethod
    def of(
        cls,
        trigger: Trigger,
        event_id: str,
        results: tuple[ImageOutcome, ...],
        *,
        checks: tuple[DoctorCheck, ...] | None = None,
    ) -> InvocationResult:
        """``ok`` is false when any result needs attention (``NOT_OK``) or any check failed."""
        ok = not any(r.status in NOT_OK for r in results) and not any(
            c.status == "fail" for c in checks or ()
        )
        return cls(ok=ok, trigger=trigger, event_id=event_id, results=results, checks=checks)

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
