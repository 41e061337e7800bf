"""The emulated veFaaS account's records (functions, releases, timers), shared by
``exporter_tools.emulator.vefaas``'s actions; the checks on parameters are in ``vefaas_checks``.

Each record's ``to_api`` is the answer's shape, holding only the fields the official SDK's response models know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from exporter_tools.emulator.vefaas_checks import checked_integer, checked_text, invalid

__all__ = ["FunctionRecord", "ReleaseRecord", "TimerRecord", "release_view", "set_timer"]


@dataclass(slots=True)
class ReleaseRecord:
    revision: int
    record_id: str
    old_revision: int
    started: str  # "2024-06-27 07:05:12", as the API writes StartTime
    statuses: list[str]  # what the next GetReleaseStatus calls report; the last one stays
    error_code: str = ""
    message: str = ""
    logs: str = ""

    @property
    def status(self) -> str:
        return self.statuses[0]

    def advance(self) -> None:
        if len(self.statuses) > 1:
            self.statuses.pop(0)


@dataclass(slots=True)
class TimerRecord:
    id: str
    name: str
    crontab: str
    payload: str = ""
    enabled: bool = True
    enable_concurrency: bool = False
    retries: int = 0
    description: str = ""
    created: str = ""
    updated: str = ""

    def to_api(self, function_id: str) -> dict[str, Any]:
        return {
            "Id": self.id,
            "FunctionId": function_id,
            "Name": self.name,
            "Crontab": self.crontab,
            "Payload": self.payload,
            "Enabled": self.enabled,
            "EnableConcurrency": self.enable_concurrency,
            "Retries": self.retries,
            "Description": self.description,
            "CreationTime": self.created,
            "LastUpdateTime": self.updated,
        }


@dataclass(slots=True)
class FunctionRecord:
    id: str
    name: str
    runtime: str
    config: dict[str, Any]
    code: bytes
    created: str
    updated: str
    revisions: list[dict[str, Any]] = field(default_factory=list)
    release: ReleaseRecord | None = None
    stable_revision: int = -1  # the revision serving traffic; -1 until a release is done
    timers: dict[str, TimerRecord] = field(default_factory=dict)

    def to_api(self, *, tags: bool = True) -> dict[str, Any]:
        """The function as CreateFunction, UpdateFunction and ListFunctions answer it; GetFunction's answer
        has no ``Tags`` (``tags=False``)."""
        config = self.config if tags else {k: v for k, v in self.config.items() if k != "Tags"}
        return {
            "Id": self.id,
            "Name": self.name,
            "Runtime": self.runtime,
            **config,
            "SourceType": "zip",
            "CodeSize": len(self.code),
            "CreationTime": self.created,
            "LastUpdateTime": self.updated,
            "TriggersCount": len(self.timers),
        }


def release_view(function: FunctionRecord, release: ReleaseRecord) -> dict[str, Any]:
    """Release's and GetReleaseStatus' answer: which release, where it stands, and why it failed."""
    failed = release.status == "failed"
    return {
        "FunctionId": function.id,
        "Status": release.status,
        "NewRevisionNumber": release.revision,
        "OldRevisionNumber": release.old_revision,
        "StableRevisionNumber": function.stable_revision,
        "ReleaseRecordId": release.record_id,
        "StartTime": release.started,
        "TargetTrafficWeight": 100,
        "CurrentTrafficWeight": 100 if release.status == "done" else 0,
        "ErrorCode": release.error_code if failed else "",
        "StatusMessage": release.message if failed else "",
        "FailedInstanceLogs": release.logs if failed else "",
    }


def set_timer(timer: TimerRecord, body: Mapping[str, Any]) -> None:
    if "Crontab" in body:
        crontab = body["Crontab"]
        if not isinstance(crontab, str) or len(crontab.split()) != 5:
            msg = "Crontab must have five fields (minute hour day-of-month month day-of-week)"
            raise invalid(msg)
        timer.crontab = crontab
    if "Payload" in body:
        timer.payload = checked_text(body, "Payload", 4096)
    for name, attribute in (("Enabled", "enabled"), ("EnableConcurrency", "enable_concurrency")):
        if name in body:
            if not isinstance(body[name], bool):
                msg = f"{name} must be true or false"
                raise invalid(msg)
            setattr(timer, attribute, body[name])
    if "Retries" in body:
        timer.retries = checked_integer(body, "Retries", 0, 0, 10)
    if "Description" in body:
        timer.description = checked_text(body, "Description", 256)
