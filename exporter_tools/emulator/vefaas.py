"""The emulated veFaaS API (Version 2024-06-06): functions, revisions, releases and timers, in memory.

Every action is a signed POST with a JSON body, behind the same local gateway as ECS
(``exporter_tools.emulator.server``), which routes on the signature scope's service (``vefaas``) and wraps every
answer in the usual envelope. What the account holds decides each answer:

- a function name is unique (``already exists``); a role must be one the account knows, when told which
  (``roles=``); memory, timeout, runtime, code size and crontabs are checked as the API documents them;
- a release goes ``pending`` → ``inprogress`` → ``done`` (or ``failed``), one step per GetReleaseStatus, and
  fails as the platform would when the code cannot start: a zip that is not a zip, no ``index.py`` at its
  root, or no ``handler`` in it (``function_start_failed``, with the instance's log); ``fail_next_release``
  makes the next one fail on purpose;
- ListFunctions' name filter matches names that *contain* the value, as a search box does: clients must
  match the name exactly themselves.

veFaaS documents no error codes of its own: the codes here are the emulator's (``InvalidParameter``,
``ResourceNotFound``, ``ResourceAlreadyExists``, ``InvalidRole``, ``ReleaseInProgress``); the messages say
what a real answer says ("already exists").

``VefaasEmulator`` is the service behind its own gateway, for tests::

    with VefaasEmulator(credentials=Credentials("AK", "SK")) as emu:
        emu.endpoint                         # VOLCENGINE_ENDPOINT for exporter-tools deploy
        emu.vefaas.writes                    # [(action, body), …] every write received, Source left out
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import random
import threading
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from exporter_tools.emulator.api import (
    CHINA_STANDARD_TIME,
    DEFAULT_ACCESS_KEY,
    DEFAULT_SECRET_KEY,
    ApiAnswer,
    ApiCall,
    Faults,
)
from exporter_tools.emulator.server import OpenApiEmulator
from handler.adapters.signing import Credentials

__all__ = ["API_VERSION", "SERVICE", "VefaasEmulator", "VefaasService"]

SERVICE = "vefaas"
API_VERSION = "2024-06-06"
MAX_INLINE_SOURCE = 15 * 1000 * 1000  # base64 characters of an inline zip
MAX_PAGE_SIZE = 100
RUNTIMES = frozenset(
    {
        "python3.8/v1",
        "python3.9/v1",
        "python3.10/v1",
        "python3.12/v1",
        "nodejs14/v1",
        "nodejs16/v1",
        "golang/v1",
    }
)
WRITES = frozenset(
    {
        "CreateFunction",
        "UpdateFunction",
        "DeleteFunction",
        "Release",
        "CreateTimer",
        "UpdateTimer",
        "DeleteTimer",
    }
)
_READS = frozenset({"ListFunctions", "GetFunction", "GetReleaseStatus", "ListTriggers", "GetTimer"})
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_CONFIG_FIELDS = ("MemoryMB", "RequestTimeout", "Role", "Description", "Envs", "Tags", "MaxConcurrency")
_TIMER_FIELDS = ("Crontab", "Payload", "Enabled", "EnableConcurrency", "Retries", "Description")


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.answer = ApiAnswer.error(status, code, message)


def _invalid(message: str) -> _Refused:
    return _Refused(400, "InvalidParameter", message)


@dataclass(slots=True)
class _Release:
    revision: int
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
class _Timer:
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

    def to_api(self) -> dict[str, Any]:
        return {
            "Id": self.id,
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
class _Function:
    id: str
    name: str
    runtime: str
    config: dict[str, Any]
    code: bytes
    created: str
    updated: str
    revisions: list[dict[str, Any]] = field(default_factory=list)
    release: _Release | None = None
    timers: dict[str, _Timer] = field(default_factory=dict)

    def to_api(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Name": self.name,
            "Runtime": self.runtime,
            **self.config,
            "SourceType": "zip",
            "CodeSize": len(self.code),
            "CreationTime": self.created,
            "LastUpdateTime": self.updated,
            "TriggersCount": len(self.timers),
        }


class VefaasService:
    """The veFaaS actions deploy uses, on an in-memory account (the gateway's ``ApiService``).

    ``roles``: the role TRNs the account has and veFaaS may use; ``None`` accepts any well-formed role.
    """

    service = SERVICE
    version = API_VERSION
    actions = WRITES | _READS

    def __init__(
        self,
        *,
        roles: Iterable[str] | None = None,
        seed: int | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.roles = None if roles is None else frozenset(roles)
        self._seed = seed
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """An empty account."""
        with self._lock:
            self._rng = random.Random(self._seed)  # noqa: S311 - ids, not security
            self._functions: dict[str, _Function] = {}
            self._next_failure: tuple[str, str, str] | None = None
            self.writes: list[tuple[str, dict[str, Any]]] = []

    # -- what tests look at -----------------------------------------------------------------------------

    def fail_next_release(
        self,
        error_code: str = "function_start_failed",
        message: str = "the instance exited while starting",
        logs: str = "Traceback (most recent call last):\nRuntimeError: boom",
    ) -> None:
        """Make the next release fail with this error code, status message and instance logs."""
        with self._lock:
            self._next_failure = (error_code, message, logs)

    def function_named(self, name: str) -> dict[str, Any] | None:
        """The function with exactly this name, as GetFunction shows it (with its released revision)."""
        with self._lock:
            for function in self._functions.values():
                if function.name == name:
                    view = function.to_api()
                    view["Revisions"] = [dict(r) for r in function.revisions]
                    view["Code"] = function.code
                    view["Timers"] = [t.to_api() for t in function.timers.values()]
                    return view
        return None

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "functions": len(self._functions),
                "timers": sum(len(f.timers) for f in self._functions.values()),
                "releases": sum(len(f.revisions) for f in self._functions.values()),
                "writes": len(self.writes),
            }

    # -- dispatch ---------------------------------------------------------------------------------------

    def handle(self, call: ApiCall) -> ApiAnswer:
        try:
            body = self._body(call)
            with self._lock:
                if call.action in WRITES:
                    shown = {k: v for k, v in body.items() if k != "Source"}
                    self.writes.append((call.action, shown))
                handler = getattr(self, f"_{call.action}")
                result: dict[str, Any] = handler(body)
        except _Refused as refused:
            return refused.answer
        return ApiAnswer.ok(result, committed=call.action in WRITES)

    @staticmethod
    def _body(call: ApiCall) -> dict[str, Any]:
        if call.method != "POST" or not call.content_type.startswith("application/json"):
            msg = f"{call.action} takes a POST with a JSON body (Content-Type: application/json)"
            raise _invalid(msg)
        try:
            body = json.loads(call.body or b"{}")
        except ValueError:
            msg = "the body is not valid JSON"
            raise _invalid(msg) from None
        if not isinstance(body, dict):
            msg = "the body must be a JSON object"
            raise _invalid(msg)
        return body

    def _now(self) -> str:
        return self._clock().astimezone(CHINA_STANDARD_TIME).isoformat(timespec="seconds")

    def _new_id(self, length: int = 8) -> str:
        return "".join(self._rng.choice(_ID_ALPHABET) for _ in range(length))

    def _function(self, body: Mapping[str, Any], key: str = "Id") -> _Function:
        function_id = body.get(key)
        if not isinstance(function_id, str) or not function_id:
            msg = f"{key} is required"
            raise _invalid(msg)
        function = self._functions.get(function_id)
        if function is None:
            raise _Refused(404, "ResourceNotFound", f"function {function_id} does not exist")
        return function

    # -- functions --------------------------------------------------------------------------------------

    def _ListFunctions(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802 - the action's name
        page = _integer(body, "PageNumber", 1, 1, 1_000_000)
        size = _integer(body, "PageSize", 10, 1, MAX_PAGE_SIZE)
        wanted: list[str] = []
        for item in body.get("Filters") or []:
            if isinstance(item, Mapping) and item.get("Name") == "Name":
                wanted.extend(str(v) for v in item.get("Values") or [])
        matching = [
            f for f in self._functions.values() if not wanted or any(value in f.name for value in wanted)
        ]
        matching.sort(key=lambda f: f.created)
        chunk = matching[(page - 1) * size : page * size]
        return {"Items": [f.to_api() for f in chunk], "Total": len(matching)}

    def _GetFunction(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        return self._function(body).to_api()

    def _CreateFunction(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        name = body.get("Name")
        if not isinstance(name, str) or not 4 <= len(name) <= 64:
            msg = "Name must be 4 to 64 characters"
            raise _invalid(msg)
        if any(f.name == name for f in self._functions.values()):
            raise _Refused(400, "ResourceAlreadyExists", f"the function name {name} already exists")
        runtime = body.get("Runtime")
        if runtime not in RUNTIMES:
            msg = f"Runtime {runtime!r} is not supported"
            raise _invalid(msg)
        config = {
            "MemoryMB": 1024,
            "RequestTimeout": 30,
            "Role": "",
            "Description": "",
            "Envs": [],
            "Tags": [],
        }
        config.update(self._config(body))
        code = self._code(body, required=True)
        now = self._now()
        function = _Function(self._new_id(), name, str(runtime), config, code, now, now)
        self._functions[function.id] = function
        return function.to_api()

    def _UpdateFunction(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        function = self._function(body)
        if "Name" in body and body["Name"] != function.name:
            msg = "Name cannot change"
            raise _invalid(msg)
        if "Runtime" in body and body["Runtime"] != function.runtime:
            msg = "Runtime cannot change"
            raise _invalid(msg)
        function.config.update(self._config(body))
        if "Source" in body or "SourceType" in body:
            function.code = self._code(body, required=True)
        function.updated = self._now()
        return function.to_api()

    def _DeleteFunction(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        function = self._function(body)
        del self._functions[function.id]
        return {}

    def _config(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The configuration fields present in ``body``, checked."""
        config: dict[str, Any] = {}
        if "MemoryMB" in body:
            memory = body["MemoryMB"]
            if not (isinstance(memory, int) and 512 <= memory <= 4096 and memory % 512 == 0):
                msg = "MemoryMB must be 512 to 4096 in steps of 512"
                raise _invalid(msg)
            config["MemoryMB"] = memory
        if "RequestTimeout" in body:
            config["RequestTimeout"] = _integer(body, "RequestTimeout", 30, 1, 900)
        if "MaxConcurrency" in body:
            config["MaxConcurrency"] = _integer(body, "MaxConcurrency", 100, 1, 1000)
        if "Role" in body:
            config["Role"] = self._role(body["Role"])
        if "Description" in body:
            config["Description"] = _text(body, "Description", 1000)
        for name in ("Envs", "Tags"):
            if name in body:
                config[name] = _pairs(body[name], name)
        return config

    def _role(self, role: object) -> str:
        if role in ("", None):
            return ""
        if not isinstance(role, str) or not role.startswith("trn:iam::") or ":role/" not in role:
            msg = "Role must look like trn:iam::<account id>:role/<name>"
            raise _invalid(msg)
        if self.roles is not None and role not in self.roles:
            msg = f"the role {role} does not exist, or does not trust the veFaaS service"
            raise _Refused(400, "InvalidRole", msg)
        return role

    @staticmethod
    def _code(body: Mapping[str, Any], *, required: bool) -> bytes:
        source_type, source = body.get("SourceType"), body.get("Source")
        if source_type is None and source is None and not required:
            return b""
        if source_type != "zip":
            msg = "SourceType must be zip (the emulator keeps inline code only)"
            raise _invalid(msg)
        if not isinstance(source, str) or not source:
            msg = "Source must be the base64 of the zip"
            raise _invalid(msg)
        if len(source) > MAX_INLINE_SOURCE:
            msg = f"Source is {len(source)} base64 characters: the inline limit is {MAX_INLINE_SOURCE}"
            raise _invalid(msg)
        try:
            return base64.b64decode(source, validate=True)
        except (binascii.Error, ValueError):
            msg = "Source is not valid base64"
            raise _invalid(msg) from None

    # -- releases ---------------------------------------------------------------------------------------

    def _Release(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        function = self._function(body, "FunctionId")
        if body.get("RevisionNumber", 0) != 0:
            msg = "RevisionNumber: the emulator publishes the latest code only (0)"
            raise _invalid(msg)
        if function.release is not None and function.release.status not in ("done", "failed"):
            raise _Refused(400, "ReleaseInProgress", f"a release of function {function.id} is in progress")
        revision = len(function.revisions) + 1
        function.revisions.append(
            {"RevisionNumber": revision, "Description": str(body.get("Description") or ""), **function.config}
        )
        failure = self._next_failure or _start_failure(function.code)
        self._next_failure = None
        if failure is None:
            function.release = _Release(revision, ["pending", "inprogress", "done"])
        else:
            code, message, logs = failure
            function.release = _Release(revision, ["pending", "inprogress", "failed"], code, message, logs)
        return {"FunctionId": function.id, "Status": "pending", "TargetRevisionNumber": revision}

    def _GetReleaseStatus(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        function = self._function(body, "FunctionId")
        release = function.release
        if release is None:
            raise _Refused(404, "ResourceNotFound", f"function {function.id} has never been released")
        answer = {
            "FunctionId": function.id,
            "Status": release.status,
            "TargetRevisionNumber": release.revision,
            "ErrorCode": release.error_code if release.status == "failed" else "",
            "StatusMessage": release.message if release.status == "failed" else "",
            "FailedInstanceLogs": release.logs if release.status == "failed" else "",
        }
        release.advance()
        return answer

    # -- timers -----------------------------------------------------------------------------------------

    def _ListTriggers(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        function = self._function(body, "FunctionId")
        items = [
            {
                "Id": t.id,
                "Name": t.name,
                "Type": "timer",
                "Enabled": t.enabled,
                "Description": t.description,
                "CreationTime": t.created,
                "LastUpdateTime": t.updated,
            }
            for t in function.timers.values()
        ]
        return {"Items": items, "Total": len(items)}

    def _timer(self, function: _Function, body: Mapping[str, Any]) -> _Timer:
        timer = function.timers.get(str(body.get("Id") or ""))
        if timer is None:
            raise _Refused(404, "ResourceNotFound", f"timer {body.get('Id')} does not exist")
        return timer

    def _GetTimer(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        function = self._function(body, "FunctionId")
        return self._timer(function, body).to_api()

    def _CreateTimer(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        function = self._function(body, "FunctionId")
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            msg = "Name is required"
            raise _invalid(msg)
        if any(t.name == name for t in function.timers.values()):
            raise _Refused(400, "ResourceAlreadyExists", f"the timer name {name} already exists")
        if "Crontab" not in body:
            msg = "Crontab is required"
            raise _invalid(msg)
        now = self._now()
        timer = _Timer(self._new_id(12), name, "", created=now, updated=now)
        _set_timer(timer, body)
        function.timers[timer.id] = timer
        return timer.to_api()

    def _UpdateTimer(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        function = self._function(body, "FunctionId")
        timer = self._timer(function, body)
        if "Name" in body and body["Name"] != timer.name:
            msg = "Name cannot change"
            raise _invalid(msg)
        _set_timer(timer, body)
        timer.updated = self._now()
        return timer.to_api()

    def _DeleteTimer(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        function = self._function(body, "FunctionId")
        del function.timers[self._timer(function, body).id]
        return {}


def _integer(body: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        msg = f"{name} must be a whole number from {low} to {high}"
        raise _invalid(msg)
    return value


def _text(body: Mapping[str, Any], name: str, limit: int) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        msg = f"{name} must be a string of at most {limit} characters"
        raise _invalid(msg)
    return value


def _pairs(value: object, name: str) -> list[dict[str, str]]:
    if not isinstance(value, list):
        msg = f'{name} must be a list of {{"Key", "Value"}} objects'
        raise _invalid(msg)
    out: list[dict[str, str]] = []
    for index, item in enumerate(value):
        if not (
            isinstance(item, Mapping)
            and isinstance(item.get("Key"), str)
            and isinstance(item.get("Value"), str)
        ):
            msg = f'{name}[{index}] must be {{"Key": string, "Value": string}}'
            raise _invalid(msg)
        out.append({"Key": item["Key"], "Value": item["Value"]})
    return out


def _set_timer(timer: _Timer, body: Mapping[str, Any]) -> None:
    if "Crontab" in body:
        crontab = body["Crontab"]
        if not isinstance(crontab, str) or len(crontab.split()) != 5:
            msg = "Crontab must have five fields (minute hour day-of-month month day-of-week)"
            raise _invalid(msg)
        timer.crontab = crontab
    if "Payload" in body:
        timer.payload = _text(body, "Payload", 4096)
    for name, attribute in (("Enabled", "enabled"), ("EnableConcurrency", "enable_concurrency")):
        if name in body:
            if not isinstance(body[name], bool):
                msg = f"{name} must be true or false"
                raise _invalid(msg)
            setattr(timer, attribute, body[name])
    if "Retries" in body:
        timer.retries = _integer(body, "Retries", 0, 0, 10)
    if "Description" in body:
        timer.description = _text(body, "Description", 256)


def _start_failure(code: bytes) -> tuple[str, str, str] | None:
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


class VefaasEmulator(OpenApiEmulator):
    """veFaaS behind a local gateway on 127.0.0.1, for tests and trying ``exporter-tools deploy``."""

    def __init__(
        self,
        *,
        credentials: Credentials | Iterable[Credentials] | None = None,
        region: str = "cn-beijing",
        roles: Iterable[str] | None = None,
        faults: Faults | None = None,
        seed: int | None = None,
        port: int = 0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.vefaas = VefaasService(roles=roles, seed=seed, clock=clock)
        super().__init__(
            [self.vefaas],
            credentials=credentials or Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY),
            region=region,
            faults=faults,
            seed=seed,
            port=port,
            clock=clock,
        )

    def write_actions(self) -> list[str]:
        """The write actions received so far, in order."""
        return [action for action, _ in self.vefaas.writes]
