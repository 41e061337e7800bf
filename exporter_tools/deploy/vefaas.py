"""The veFaaS client for deploying: functions, releases and timers, and deleting them (service ``vefaas``,
Version 2024-06-06).

Every action is a POST with ``Action`` and ``Version`` in the query and the parameters as a signed JSON body,
through the same ``OpenApiClient`` (signer, pacing, retries) as the function's ECS calls. Reads are retried on
any retryable error; writes only when nothing can have started. veFaaS has no idempotency token, so deploy
is idempotent by looking up first, then creating or updating.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from handler.adapters.openapi import OpenApiClient
from handler.errors import ApiError, UnknownOutcomeError

__all__ = [
    "API_VERSION",
    "PAGE_SIZE",
    "SERVICE",
    "DeployedFunction",
    "DeployedTimer",
    "FunctionConfig",
    "ReleaseStarted",
    "ReleaseStatus",
    "TimerConfig",
    "TriggerRef",
    "VefaasClient",
    "is_name_clash",
    "is_role_problem",
    "same_runtime",
]

SERVICE = "vefaas"
API_VERSION = "2024-06-06"
PAGE_SIZE = 100
RELEASE_DONE = "done"
RELEASE_FAILED = "failed"
RELEASE_IN_PROGRESS = "inprogress"
RELEASE_NEVER = "pending"  # GetReleaseStatus of a function that was never released (StableRevisionNumber -1)

_M = TypeVar("_M", bound="_Answer")
# A runtime's language and version inside any of its spellings: python3.12/v1, vefaas.base.python3.12.v1.
_RUNTIME_VERSION = re.compile(r"([a-z]+)(\d+(?:\.\d+)*)")


def _pairs_to_dict(value: object) -> object:
    """``[{"Key": k, "Value": v}, …]`` (how Envs and Tags travel) as a dict; a dict or null is taken as is."""
    if value is None:
        return {}
    if isinstance(value, list):
        return {
            str(item.get("Key")): "" if item.get("Value") is None else str(item.get("Value"))
            for item in value
            if isinstance(item, Mapping) and item.get("Key") is not None
        }
    return value


def pairs(values: Mapping[str, str]) -> list[dict[str, str]]:
    """A dict as the API's ``[{"Key": k, "Value": v}, …]``, sorted by key so the body is the same every time."""
    return [{"Key": key, "Value": values[key]} for key in sorted(values)]


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class DeployedFunction(_Answer):
    """A function as ListFunctions / GetFunction report it (the fields deploy manages).

    ``tags`` is ``None`` when the answer has no ``Tags`` field: GetFunction never has one, a ListFunctions
    item does, so tags are compared from the ListFunctions item."""

    id: str = Field(alias="Id")
    name: str = Field(alias="Name")
    runtime: str = Field(default="", alias="Runtime")
    memory_mb: int | None = Field(default=None, alias="MemoryMB")
    request_timeout: int | None = Field(default=None, alias="RequestTimeout")
    role: str = Field(default="", alias="Role")
    description: str = Field(default="", alias="Description")
    envs: dict[str, str] = Field(default_factory=dict, alias="Envs")
    tags: dict[str, str] | None = Field(default=None, alias="Tags")

    @field_validator("envs", "tags", mode="before")
    @classmethod
    def _pairs(cls, value: object) -> object:
        return _pairs_to_dict(value)

    @field_validator("role", "description", "runtime", mode="before")
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        return "" if value is None else value


class TriggerRef(_Answer):
    """A trigger as ListTriggers lists it: enough to find a timer by name."""

    id: str = Field(alias="Id")
    name: str = Field(default="", alias="Name")
    type: str = Field(default="", alias="Type")

    @property
    def is_timer(self) -> bool:
        return self.type.lower() == "timer"


class DeployedTimer(_Answer):
    """A timer as GetTimer reports it."""

    id: str = Field(alias="Id")
    name: str = Field(default="", alias="Name")
    crontab: str = Field(default="", alias="Crontab")
    payload: str = Field(default="", alias="Payload")
    enabled: bool = Field(default=True, alias="Enabled")
    retries: int = Field(default=0, alias="Retries")
    enable_concurrency: bool = Field(default=False, alias="EnableConcurrency")
    description: str = Field(default="", alias="Description")

    @field_validator("payload", "description", "crontab", mode="before")
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        return "" if value is None else value


class ReleaseStatus(_Answer):
    """Where the function's latest release stands (GetReleaseStatus).

    ``pending`` means the function was never released (``StableRevisionNumber`` -1); a release runs as
    ``inprogress`` and ends ``done`` or ``failed`` (with an error code, a message and the instance logs).
    ``NewRevisionNumber`` and ``ReleaseRecordId`` say which release the status is about."""

    status: str = Field(default="", alias="Status")
    error_code: str = Field(default="", alias="ErrorCode")
    status_message: str = Field(default="", alias="StatusMessage")
    failed_instance_logs: str = Field(default="", alias="FailedInstanceLogs")
    new_revision_number: int | None = Field(default=None, alias="NewRevisionNumber")
    stable_revision_number: int | None = Field(default=None, alias="StableRevisionNumber")
    release_record_id: str = Field(default="", alias="ReleaseRecordId")
    start_time: str = Field(default="", alias="StartTime")  # "2024-06-27 07:05:12", not ISO 8601

    @field_validator(
        "status", "error_code", "status_message", "release_record_id", "start_time", mode="before"
    )
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        return "" if value is None else value

    @field_validator("failed_instance_logs", mode="before")
    @classmethod
    def _logs_as_text(cls, value: object) -> object:
        return "" if value is None else value

    @property
    def finished(self) -> bool:
        return self.status in (RELEASE_DONE, RELEASE_FAILED)

    @property
    def in_progress(self) -> bool:
        return self.status == RELEASE_IN_PROGRESS

    @property
    def never_released(self) -> bool:
        return self.status == RELEASE_NEVER or (self.stable_revision_number == -1 and not self.status)

    def is_about(self, started: ReleaseStarted) -> bool:
        """Whether this status is about the release ``started`` (by its record id, else by its revision)."""
        if started.record_id and self.release_record_id:
            return self.release_record_id == started.record_id
        return started.revision is not None and self.new_revision_number == started.revision


@dataclass(frozen=True, slots=True)
class ReleaseStarted:
    """What Release answers: the revision it publishes and the release record that tracks it."""

    revision: int | None
    record_id: str


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """The function as the template wants it, in the API's terms."""

    name: str
    runtime: str
    memory_mb: int
    request_timeout: int
    role: str | None
    description: str
    envs: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def create_body(self) -> dict[str, Any]:
        """CreateFunction's parameters (without the code)."""
        body: dict[str, Any] = {
            "Name": self.name,
            "Runtime": self.runtime,
            "MemoryMB": self.memory_mb,
            "RequestTimeout": self.request_timeout,
            "Description": self.description,
            "Envs": pairs(self.envs),
        }
        if self.role:
            body["Role"] = self.role
        if self.tags:
            body["Tags"] = pairs(self.tags)
        return body


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """A timer as the template wants it, in the API's terms."""

    name: str
    crontab: str
    payload: str
    enabled: bool
    retries: int
    enable_concurrency: bool
    description: str

    def fields(self) -> dict[str, Any]:
        """The timer's settable parameters (CreateTimer's, without FunctionId)."""
        return {
            "Name": self.name,
            "Crontab": self.crontab,
            "Payload": self.payload,
            "Enabled": self.enabled,
            "Retries": self.retries,
            "EnableConcurrency": self.enable_concurrency,
            "Description": self.description,
        }


def _parsed(model: type[_M], data: object, action: str, request_id: str | None) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        msg = f"{action} answered an unexpected shape ({where}: {first['msg']})"
        raise UnknownOutcomeError(
            msg, code="MalformedResponse", request_id=request_id, action=action
        ) from None


class VefaasClient:
    """The deploy actions over a signed ``OpenApiClient`` (service ``vefaas``), all within one deadline."""

    def __init__(self, api: OpenApiClient, *, deadline: float) -> None:
        self._api = api
        self._deadline = deadline

    def _read(self, action: str, body: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
        return self._api.call(action, body=body, deadline=self._deadline, idempotent=True)

    def _write(self, action: str, body: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
        return self._api.call(action, body=body, deadline=self._deadline, idempotent=False)

    # -- functions --------------------------------------------------------------------------------------

    def functions_named(self, name: str) -> list[DeployedFunction]:
        """Every function whose name is exactly ``name``, over all pages (the API's filter is looser)."""
        return [item for item in self._list_functions(name) if item.name == name]

    def _list_functions(self, name: str) -> Iterator[DeployedFunction]:
        page = 1
        seen = 0
        while True:
            body = {
                "Filters": [{"Name": "Name", "Values": [name]}],
                "PageNumber": page,
                "PageSize": PAGE_SIZE,
            }
            result, request_id = self._read("ListFunctions", body)
            items = result.get("Items") or []
            for item in items:
                yield _parsed(DeployedFunction, item, "ListFunctions", request_id)
            seen += len(items)
            total = result.get("Total")
            if not items or len(items) < PAGE_SIZE or (isinstance(total, int) and seen >= total):
                return
            page += 1

    def get_function(self, function_id: str) -> DeployedFunction:
        result, request_id = self._read("GetFunction", {"Id": function_id})
        return _parsed(DeployedFunction, result, "GetFunction", request_id)

    def create_function(self, config: FunctionConfig, *, zip_base64: str) -> str:
        """Create the function with its code inline; returns its id."""
        body = {**config.create_body(), "SourceType": "zip", "Source": zip_base64}
        result, request_id = self._write("CreateFunction", body)
        function_id = result.get("Id")
        if not isinstance(function_id, str) or not function_id:
            msg = "CreateFunction answered without an Id"
            raise UnknownOutcomeError(
                msg, code="MalformedResponse", request_id=request_id, action="CreateFunction"
            )
        return function_id

    def update_function(self, function_id: str, changes: Mapping[str, Any]) -> None:
        """Send only ``changes`` (API field names; ``Envs`` replaces the whole list; code as Source)."""
        self._write("UpdateFunction", {"Id": function_id, **changes})

    def delete_function(self, function_id: str) -> None:
        """Delete the function (its code, configuration and revisions)."""
        self._write("DeleteFunction", {"Id": function_id})

    # -- releases ---------------------------------------------------------------------------------------

    def release(self, function_id: str, *, description: str) -> ReleaseStarted:
        """Publish the latest code and configuration (revision 0) to all traffic at once."""
        body = {
            "FunctionId": function_id,
            "RevisionNumber": 0,
            "TargetTrafficWeight": 100,
            "RollingStep": 100,
            "Description": description,
        }
        result, request_id = self._write("Release", body)
        revision = result.get("NewRevisionNumber")
        record_id = result.get("ReleaseRecordId")
        if not isinstance(revision, int) and not (isinstance(record_id, str) and record_id):
            msg = "Release answered without NewRevisionNumber or ReleaseRecordId"
            raise UnknownOutcomeError(msg, code="MalformedResponse", request_id=request_id, action="Release")
        return ReleaseStarted(
            revision if isinstance(revision, int) else None, record_id if isinstance(record_id, str) else ""
        )

    def release_status(self, function_id: str) -> ReleaseStatus:
        """The latest release's status (``pending`` for a function that was never released)."""
        result, request_id = self._read("GetReleaseStatus", {"FunctionId": function_id})
        return _parsed(ReleaseStatus, result, "GetReleaseStatus", request_id)

    # -- timers -----------------------------------------------------------------------------------------

    def triggers(self, function_id: str) -> list[TriggerRef]:
        """Every trigger of the function, of any type (ListTriggers)."""
        result, request_id = self._read("ListTriggers", {"FunctionId": function_id})
        return [_parsed(TriggerRef, item, "ListTriggers", request_id) for item in result.get("Items") or []]

    def timers(self, function_id: str) -> list[DeployedTimer]:
        """The function's timers (ListTriggers, keeping ``Type == "timer"``), each read with GetTimer."""
        refs = self.triggers(function_id)
        return [self.get_timer(function_id, ref.id) for ref in refs if ref.is_timer]

    def get_timer(self, function_id: str, timer_id: str) -> DeployedTimer:
        result, request_id = self._read("GetTimer", {"FunctionId": function_id, "Id": timer_id})
        return _parsed(DeployedTimer, {"Id": timer_id, **result}, "GetTimer", request_id)

    def create_timer(self, function_id: str, timer: TimerConfig) -> str:
        result, request_id = self._write("CreateTimer", {"FunctionId": function_id, **timer.fields()})
        timer_id = result.get("Id")
        if not isinstance(timer_id, str) or not timer_id:
            msg = "CreateTimer answered without an Id"
            raise UnknownOutcomeError(
                msg, code="MalformedResponse", request_id=request_id, action="CreateTimer"
            )
        return timer_id

    def update_timer(self, function_id: str, timer_id: str, changes: Mapping[str, Any]) -> None:
        """Send only ``changes`` (a timer's name cannot change)."""
        self._write("UpdateTimer", {"FunctionId": function_id, "Id": timer_id, **changes})

    def delete_timer(self, function_id: str, timer_id: str) -> None:
        self._write("DeleteTimer", {"FunctionId": function_id, "Id": timer_id})


def same_runtime(deployed: str, wanted: str) -> bool:
    """Whether two runtimes are the same language at the same version, however each is spelled: veFaaS's
    documentation writes ``python3.12/v1`` and ``vefaas.base.python3.12.v1`` (docs/facts.md §16), and an
    answer in the other spelling is still this project's runtime. A spelling without a version is compared
    whole (case aside)."""

    def key(runtime: str) -> str:
        text = runtime.strip().lower()
        found = _RUNTIME_VERSION.search(text)
        return f"{found[1]}{found[2]}" if found else text

    return key(deployed) == key(wanted)


def is_name_clash(error: ApiError) -> bool:
    """True for the answer to creating something whose name is taken (veFaaS says "already exists")."""
    text = f"{error.code} {error.message}".lower()
    return "already exist" in text or "alreadyexist" in text or "duplicate" in text


def is_role_problem(error: ApiError) -> bool:
    """True when veFaaS refused the function's role (it does not exist, or may not be used by veFaaS)."""
    return "role" in f"{error.code} {error.message}".lower()
