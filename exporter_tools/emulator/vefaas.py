"""The emulated veFaaS API (Version 2024-06-06): functions, revisions, releases and timers, in memory.

Every action is a signed POST with a JSON body, behind the same local gateway as ECS
(``exporter_tools.emulator.server``), which routes on the signature scope's service (``vefaas``) and wraps every
answer in the usual envelope. What the account holds decides each answer:

- a function name is unique (``already exists``); a role must be one the account knows, when told which
  (``roles=``); memory, timeout, runtime, code size and crontabs are checked as the API documents them;
- GetReleaseStatus answers ``pending`` (``StableRevisionNumber`` -1) for a function that was never released;
  a release goes ``inprogress`` (``release_polls`` times) → ``done`` (or ``failed``), one step per
  GetReleaseStatus, each answer naming its ``NewRevisionNumber`` and ``ReleaseRecordId``; it fails as the
  platform would when the code cannot start: a zip that is not a zip, no ``index.py`` at its root, or no
  ``handler`` in it (``function_start_failed``, with the instance's log); ``fail_next_release`` makes the
  next one fail on purpose, ``refuse_next`` answers the next call of an action with an error;
- ListFunctions' name filter matches names that *contain* the value, as a search box does: clients must
  match the name exactly themselves. A ListFunctions item has ``Tags``; GetFunction's answer does not;
- every answer holds only fields the official SDK's response model knows (``volcenginesdk-vefaas``; the
  tests deserialize them strictly).

The records (functions, releases, timers) are in ``exporter_tools.emulator.vefaas_records``, the checks on
parameters in ``vefaas_checks``. veFaaS documents no error codes of its own: the codes here are the emulator's
(``InvalidParameter``, ``ResourceNotFound``, ``ResourceAlreadyExists``, ``InvalidRole``,
``ReleaseInProgress``); the messages say what a real answer says ("already exists").

``VefaasEmulator`` is the service behind its own gateway, for tests, with a TOS on the same port that holds
the ``buckets`` it is given (no objects: deploy reads and writes their lifecycle rules)::

    with VefaasEmulator(credentials=Credentials("AK", "SK"), buckets=["my-exports"]) as emu:
        emu.endpoint                         # VOLCENGINE_ENDPOINT (and TOS_ENDPOINT) for exporter-tools deploy
        emu.vefaas.writes                    # [(action, body), …] every write received, Source left out
        emu.tos.set_lifecycle("my-exports", [{"ID": "logs", …}])  # rules someone else put
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Mapping
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
from exporter_tools.emulator.fleet import BucketAccess
from exporter_tools.emulator.object_store import ObjectStore
from exporter_tools.emulator.server import OpenApiEmulator
from exporter_tools.emulator.tos import TosService
from exporter_tools.emulator.vefaas_checks import (
    RUNTIMES,
    Refused,
    checked_config,
    checked_integer,
    decode_code,
    invalid,
    json_body,
    start_failure,
)
from exporter_tools.emulator.vefaas_records import (
    FunctionRecord,
    ReleaseRecord,
    TimerRecord,
    release_view,
    set_timer,
)
from handler.adapters.signing import Credentials

__all__ = ["API_VERSION", "SERVICE", "VefaasEmulator", "VefaasService"]

SERVICE = "vefaas"
API_VERSION = "2024-06-06"
MAX_PAGE_SIZE = 100
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


class VefaasService:
    """The veFaaS actions deploy uses, on an in-memory account (the gateway's ``ApiService``).

    ``roles``: the role TRNs the account has and veFaaS may use; ``None`` accepts any well-formed role.
    ``release_polls``: how many GetReleaseStatus calls report a release ``inprogress`` before it ends.
    ``runtime_answers``: the spelling the answers give a runtime sent as the key (``{"python3.12/v1":
    "vefaas.base.python3.12.v1"}``: the documentation shows both, docs/facts.md §16); unlisted: as sent.
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
        release_polls: int = 1,
        runtime_answers: Mapping[str, str] | None = None,
    ) -> None:
        self.roles = None if roles is None else frozenset(roles)
        self.release_polls = release_polls
        self.runtime_answers = dict(runtime_answers or {})
        self._seed = seed
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """An empty account."""
        with self._lock:
            self._rng = random.Random(self._seed)  # noqa: S311 - ids, not security
            self._functions: dict[str, FunctionRecord] = {}
            self._next_failure: tuple[str, str, str] | None = None
            self._refusals: dict[str, list[ApiAnswer]] = {}
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

    def refuse_next(self, action: str, status: int, code: str, message: str) -> None:
        """Answer the next call of ``action`` with this error (after the gateway's checks), changing nothing."""
        with self._lock:
            self._refusals.setdefault(action, []).append(ApiAnswer.error(status, code, message))

    def function_named(self, name: str) -> dict[str, Any] | None:
        """The function with exactly this name, as GetFunction shows it (with its released revision)."""
        with self._lock:
            for function in self._functions.values():
                if function.name == name:
                    view = function.to_api()
                    view["Revisions"] = [dict(r) for r in function.revisions]
                    view["Code"] = function.code
                    view["Timers"] = [t.to_api(function.id) for t in function.timers.values()]
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
            body = json_body(call)
            with self._lock:
                refusals = self._refusals.get(call.action)
                if refusals:
                    return refusals.pop(0)
                if call.action in WRITES:
                    shown = {k: v for k, v in body.items() if k != "Source"}
                    self.writes.append((call.action, shown))
                handler = getattr(self, f"_{call.action}")
                result: dict[str, Any] = handler(body)
        except Refused as refused:
            return refused.answer
        return ApiAnswer.ok(result, committed=call.action in WRITES)

    def _now(self) -> str:
        return self._clock().astimezone(CHINA_STANDARD_TIME).isoformat(timespec="seconds")

    def _new_id(self, length: int = 8) -> str:
        return "".join(self._rng.choice(_ID_ALPHABET) for _ in range(length))

    def _function(self, body: Mapping[str, Any], key: str = "Id") -> FunctionRecord:
        function_id = body.get(key)
        if not isinstance(function_id, str) or not function_id:
            msg = f"{key} is required"
            raise invalid(msg)
        function = self._functions.get(function_id)
        if function is None:
            raise Refused(404, "ResourceNotFound", f"function {function_id} does not exist")
        return function

    # -- functions --------------------------------------------------------------------------------------

    def _ListFunctions(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802 - the action's name
        page = checked_integer(body, "PageNumber", 1, 1, 1_000_000)
        size = checked_integer(body, "PageSize", 10, 1, MAX_PAGE_SIZE)
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
        return self._function(body).to_api(tags=False)

    def _CreateFunction(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        name = body.get("Name")
        if not isinstance(name, str) or not 4 <= len(name) <= 64:
            msg = "Name must be 4 to 64 characters"
            raise invalid(msg)
        if any(f.name == name for f in self._functions.values()):
            raise Refused(400, "ResourceAlreadyExists", f"the function name {name} already exists")
        runtime = body.get("Runtime")
        if runtime not in RUNTIMES:
            msg = f"Runtime {runtime!r} is not supported"
            raise invalid(msg)
        config = {
            "MemoryMB": 1024,
            "RequestTimeout": 30,
            "Role": "",
            "Description": "",
            "Envs": [],
            "Tags": [],
        }
        config.update(checked_config(body, self.roles))
        code = decode_code(body, required=True)
        now = self._now()
        answered = self.runtime_answers.get(str(runtime), str(runtime))
        function = FunctionRecord(self._new_id(), name, answered, config, code, now, now)
        self._functions[function.id] = function
        return function.to_api()

    def _UpdateFunction(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        function = self._function(body)
        if "Name" in body and body["Name"] != function.name:
            msg = "Name cannot change"
            raise invalid(msg)
        sent = body.get("Runtime")
        if sent is not None and self.runtime_answers.get(str(sent), sent) != function.runtime:
            msg = "Runtime cannot change"
            raise invalid(msg)
        function.config.update(checked_config(body, self.roles))
        if "Source" in body or "SourceType" in body:
            function.code = decode_code(body, required=True)
        function.updated = self._now()
        return function.to_api()

    def _DeleteFunction(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        function = self._function(body)
        del self._functions[function.id]
        return {}

    # -- releases ---------------------------------------------------------------------------------------

    def _Release(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        function = self._function(body, "FunctionId")
        if body.get("RevisionNumber", 0) != 0:
            msg = "RevisionNumber: the emulator publishes the latest code only (0)"
            raise invalid(msg)
        if function.release is not None and function.release.status not in ("done", "failed"):
            raise Refused(400, "ReleaseInProgress", f"a release of function {function.id} is in progress")
        revision = len(function.revisions) + 1
        function.revisions.append(
            {"RevisionNumber": revision, "Description": str(body.get("Description") or ""), **function.config}
        )
        failure = self._next_failure or start_failure(function.code)
        self._next_failure = None
        started = self._clock().astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d %H:%M:%S")
        release = ReleaseRecord(
            revision, self._new_id(20), function.stable_revision, started, ["inprogress"] * self.release_polls
        )
        if failure is None:
            release.statuses.append("done")
        else:
            release.statuses.append("failed")
            release.error_code, release.message, release.logs = failure
        function.release = release
        return release_view(function, release)

    def _GetReleaseStatus(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        function = self._function(body, "FunctionId")
        release = function.release
        if release is None:
            return {"FunctionId": function.id, "Status": "pending", "StableRevisionNumber": -1}
        if release.status == "done":
            function.stable_revision = release.revision
        answer = release_view(function, release)
        release.advance()
        return answer

    # -- timers -----------------------------------------------------------------------------------------

    def _ListTriggers(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        function = self._function(body, "FunctionId")
        items = [
            {
                "Id": t.id,
                "FunctionID": function.id,  # spelt so in ListTriggers (the SDK's ItemForListTriggersOutput)
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

    def _timer(self, function: FunctionRecord, body: Mapping[str, Any]) -> TimerRecord:
        timer = function.timers.get(str(body.get("Id") or ""))
        if timer is None:
            raise Refused(404, "ResourceNotFound", f"timer {body.get('Id')} does not exist")
        return timer

    def _GetTimer(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        function = self._function(body, "FunctionId")
        return self._timer(function, body).to_api(function.id)

    def _CreateTimer(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        function = self._function(body, "FunctionId")
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            msg = "Name is required"
            raise invalid(msg)
        if any(t.name == name for t in function.timers.values()):
            raise Refused(400, "ResourceAlreadyExists", f"the timer name {name} already exists")
        if "Crontab" not in body:
            msg = "Crontab is required"
            raise invalid(msg)
        now = self._now()
        timer = TimerRecord(self._new_id(12), name, "", created=now, updated=now)
        set_timer(timer, body)
        function.timers[timer.id] = timer
        return timer.to_api(function.id)

    def _UpdateTimer(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        function = self._function(body, "FunctionId")
        timer = self._timer(function, body)
        if "Name" in body and body["Name"] != timer.name:
            msg = "Name cannot change"
            raise invalid(msg)
        set_timer(timer, body)
        timer.updated = self._now()
        return timer.to_api(function.id)

    def _DeleteTimer(self, body: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        function = self._function(body, "FunctionId")
        del function.timers[self._timer(function, body).id]
        return {}


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
        port: int | None = 0,
        clock: Callable[[], datetime] | None = None,
        release_polls: int = 1,
        buckets: Iterable[str] = (),
        runtime_answers: Mapping[str, str] | None = None,
    ) -> None:
        """``buckets`` are the account's TOS buckets, each ``read-write`` to the accepted keys
        (``set_bucket_access`` changes that); ``roles``, ``release_polls`` and ``runtime_answers`` are
        ``VefaasService``'s, the other arguments ``OpenApiEmulator``'s."""
        self.vefaas = VefaasService(
            roles=roles, seed=seed, clock=clock, release_polls=release_polls, runtime_answers=runtime_answers
        )
        super().__init__(
            [self.vefaas],
            credentials=credentials or Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY),
            region=region,
            faults=faults,
            seed=seed,
            port=port,
            clock=clock,
        )
        self._buckets: dict[str, BucketAccess] = dict.fromkeys(buckets, "read-write")
        self.tos = TosService(
            store=ObjectStore(),
            bucket_access=self._buckets.get,
            credentials_for=self.accepted_key,
            region=region,
            clock=self.clock,
            seed=seed,
        )
        self.side_service = self.tos

    def set_bucket_access(self, bucket: str, access: BucketAccess) -> None:
        """From now on the accepted keys may do ``access`` in ``bucket`` (``read-write``, ``read-only``: no
        PUT or DELETE, ``none``); a bucket not named before is created."""
        self._buckets[bucket] = access

    def write_actions(self) -> list[str]:
        """The write actions received so far, in order."""
        return [action for action, _ in self.vefaas.writes]
