"""The emulated veFaaS account's records (functions, releases, timers) and the checks the API makes on
parameters, shared by ``exporter_tools.emulator.vefaas``'s actions.

Each record's ``to_api`` is the answer's shape, holding only the fields the official SDK's response models know.
"""

from __future__ import annotations

import base64
import binascii
import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from exporter_tools.emulator.api import ApiAnswer

__all__ = [
    "MAX_INLINE_SOURCE",
    "FunctionRecord",
    "Refused",
    "ReleaseRecord",
    "TimerRecord",
    "checked_integer",
    "checked_pairs",
    "checked_text",
    "decode_code",
    "invalid",
    "release_view",
    "set_timer",
    "start_failure",
]

MAX_INLINE_SOURCE = 15 * 1000 * 1000  # base64 characters of an inline zip


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.answer = ApiAnswer.error(status, code, message)


def invalid(message: str) -> Refused:
    return Refused(400, "InvalidParameter", message)


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


def checked_integer(body: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        msg = f"{name} must be a whole number from {low} to {high}"
        raise invalid(msg)
    return value


def checked_text(body: Mapping[str, Any], name: str, limit: int) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        msg = f"{name} must be a string of at most {limit} characters"
        raise invalid(msg)
    return value


def checked_pairs(value: object, name: str) -> list[dict[str, str]]:
    if not isinstance(value, list):
        msg = f'{name} must be a list of {{"Key", "Value"}} objects'
        raise invalid(msg)
    out: list[dict[str, str]] = []
    for index, item in enumerate(value):
        if not (
            isinstance(item, Mapping)
            and isinstance(item.get("Key"), str)
            and isinstance(item.get("Value"), str)
        ):
            msg = f'{name}[{index}] must be {{"Key": string, "Value": string}}'
            raise invalid(msg)
        out.append({"Key": item["Key"], "Value": item["Value"]})
    return out


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


def start_failure(code: bytes) -> tuple[str, str, str] | None:
    """Why an instance of this code could not start (error code, message, instance log), or ``None``."""
    try:
        with zipfile.ZipFile(io.BytesIO(code)) as archive:
            names = set(archive.namelist())
            index = archive.read("index.py") if "index.py" in names else None
    except zipfile.BadZipFile:
        return "function_start_failed", "the code is not a zip file", "cannot unpack the code: not a zip file"
    if index is None:
        log = "Traceback (most recent call last):\nModuleNotFoundError: No module named 'index'"
        return "function_start_failed", "the runtime could not import index.handler", log
    if b"def handler" not in index:
        log = "Traceback (most recent call last):\nAttributeError: module 'index' has no attribute 'handler'"
        return "function_start_failed", "the runtime could not import index.handler", log
    return None


def decode_code(body: Mapping[str, Any], *, required: bool) -> bytes:
    """The inline zip of CreateFunction/UpdateFunction, checked as the API checks it."""
    source_type, source = body.get("SourceType"), body.get("Source")
    if source_type is None and source is None and not required:
        return b""
    if source_type != "zip":
        msg = "SourceType must be zip (the emulator keeps inline code only)"
        raise invalid(msg)
    if not isinstance(source, str) or not source:
        msg = "Source must be the base64 of the zip"
        raise invalid(msg)
    if len(source) > MAX_INLINE_SOURCE:
        msg = f"Source is {len(source)} base64 characters: the inline limit is {MAX_INLINE_SOURCE}"
        raise invalid(msg)
    try:
        return base64.b64decode(source, validate=True)
    except (binascii.Error, ValueError):
        msg = "Source is not valid base64"
        raise invalid(msg) from None
