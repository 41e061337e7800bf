"""The deploy plan: compare what the template wants (``exporter_tools.deploy.desired``) with what the account
holds, and list each write and why; for people (``render``) or programs (``to_json``, ``deploy --json``).

Pure: the plan is built from reads only, through ``AccountReader`` (ListFunctions, GetFunction,
GetReleaseStatus, ListTriggers, GetTimer) and, when the template has a ``storage:`` section, ``LifecycleReader``
(GetBucketLifecycle on the export bucket), and changes nothing. Applying it is ``exporter_tools.deploy.apply``.
The lifecycle rule is merged into the bucket's other rules by ``exporter_tools.deploy.lifecycle``; without a
``storage:`` section the bucket's lifecycle is never read or written.

Whether the code changed is read from the function's own environment: deploy stores the zip's SHA-256 in
``EXPORTER_CODE_SHA256`` (GetFunction does not report a digest of the code), in the same UpdateFunction that
uploads it. Tags are compared from the ListFunctions item (GetFunction does not report them). Values that
look secret are never printed: the plan says "(hidden)" instead.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from exporter_tools.deploy.desired import HIDDEN, Desired
from exporter_tools.deploy.lifecycle import LifecycleChange, merge_rule
from exporter_tools.deploy.model import CODE_DIGEST_VARIABLE
from exporter_tools.deploy.tos_lifecycle import BucketLifecycle
from exporter_tools.deploy.vefaas import (
    RELEASE_FAILED,
    DeployedFunction,
    DeployedTimer,
    ReleaseStatus,
    TimerConfig,
    pairs,
    same_runtime,
)
from handler.errors import ExporterError

__all__ = [
    "JSON_FORMAT_VERSION",
    "AccountReader",
    "DeployError",
    "LifecycleReader",
    "Plan",
    "RenderMode",
    "Step",
    "calls_line",
    "make_plan",
]

# The version of ``deploy --json``'s document: raised when a field changes meaning or goes away.
JSON_FORMAT_VERSION = 1
# How a plan's last line reads: a plan to read ("Run with --apply"), one being applied, one awaiting "yes".
RenderMode = Literal["plan", "apply", "confirm"]


class AccountReader(Protocol):
    """The reads a plan needs (``VefaasClient`` is one)."""

    def functions_named(self, name: str) -> list[DeployedFunction]: ...

    def get_function(self, function_id: str) -> DeployedFunction: ...

    def release_status(self, function_id: str) -> ReleaseStatus: ...

    def timers(self, function_id: str) -> list[DeployedTimer]: ...


class LifecycleReader(Protocol):
    """The read a lifecycle change needs (``LifecycleClient`` is one)."""

    def get(self, bucket: str) -> BucketLifecycle: ...


class DeployError(ExporterError):
    """The deployment cannot go on; the message says what happened and what to do."""

    code = "DeployFailed"


# ---------------------------------------------------------------------------------------------------------
# The plan.


@dataclass(frozen=True, slots=True)
class Step:
    """One write the plan makes: the action, what it acts on, and why."""

    action: str
    subject: str
    reasons: tuple[str, ...]
    changes: Mapping[str, Any] = field(default_factory=dict)  # UpdateFunction/UpdateTimer: fields to send
    upload: bool = False  # CreateFunction/UpdateFunction: the zip goes with it
    timer: TimerConfig | None = None
    timer_id: str | None = None
    lifecycle: LifecycleChange | None = None  # PutBucketLifecycle / DeleteBucketLifecycle

    def to_json(self, number: int) -> dict[str, Any]:
        """The step for programs: the fields it sends by name only (their values may be secret)."""
        return {
            "number": number,
            "action": self.action,
            "subject": self.subject,
            "reasons": list(self.reasons),
            "fields": sorted(self.changes),
            "uploads_code": self.upload,
        }


def calls_line(count: int, mode: RenderMode, *, apply_with: str = "--apply") -> str:
    """A plan's last line: how many write calls, and how to make them, that they are being made, or (before
    the question) just how many."""
    calls = f"{count} write call{'' if count == 1 else 's'}"
    if mode == "apply":
        return f"{calls}, applying:"
    if mode == "confirm":
        return f"{calls}."
    return f"{calls}. Run with {apply_with} to make them."


@dataclass(frozen=True, slots=True)
class Plan:
    """Every write needed to make the account match the template, with what stays as it is."""

    desired: Desired
    function_id: str | None
    steps: tuple[Step, ...]
    unchanged: tuple[str, ...] = ()
    left_alone: tuple[str, ...] = ()
    release_in_progress: bool = False

    @property
    def region(self) -> str:
        return self.desired.region

    def render(self, *, mode: RenderMode = "plan") -> str:
        """The plan for people: numbered calls, each with its reasons; the last line says how to make them,
        that they are being made, or how many are about to be asked for (``calls_line``)."""
        config = self.desired.config
        where = f" (id {self.function_id})" if self.function_id else ""
        lines = [
            (
                f"Deploy plan for function {config.name}{where} in {self.desired.region} "
                f"(code {self.desired.code_size / (1 << 20):.1f} MiB, sha256 {self.desired.code_sha256[:16]}…):"
            )
        ]
        if self.release_in_progress:
            lines.append("  a release is in progress: apply waits for it to finish first")
        for number, step in enumerate(self.steps, start=1):
            lines.append(f"  {number}. {step.action} {step.subject}")
            lines.extend(f"       {reason}" for reason in step.reasons)
        if self.unchanged:
            lines.append(f"  unchanged: {', '.join(self.unchanged)}")
        if self.left_alone:
            lines.append(f"  not in the template, left as they are: {', '.join(self.left_alone)}")
        if self.steps:
            lines.append(calls_line(len(self.steps), mode))
        else:
            lines.append("Nothing to change: the account matches the template.")
        return "\n".join(lines) + "\n"

    def to_json(self, *, warnings: Sequence[str] = ()) -> dict[str, Any]:
        """The plan for programs (``deploy --json``): the same calls, reasons and hidden values as ``render``,
        and whether anything would change."""
        return {
            "format_version": JSON_FORMAT_VERSION,
            "operation": "deploy",
            "function": {
                "name": self.desired.config.name,
                "id": self.function_id,
                "region": self.desired.region,
            },
            "code": {"sha256": self.desired.code_sha256, "size_bytes": self.desired.code_size},
            "changes_pending": bool(self.steps),
            "release_in_progress": self.release_in_progress,
            "steps": [step.to_json(number) for number, step in enumerate(self.steps, start=1)],
            "unchanged": list(self.unchanged),
            "left_alone": list(self.left_alone),
            "warnings": list(warnings),
        }


def make_plan(desired: Desired, client: AccountReader, lifecycle: LifecycleReader | None = None) -> Plan:
    """Read the account (and, for a storage section, the export bucket's lifecycle rules through
    ``lifecycle``) and list the writes that would make it match ``desired`` (reads only)."""
    plan = _function_plan(desired, client)
    if desired.lifecycle is None:
        return plan
    if lifecycle is None:
        msg = "the template has a storage section, and deploy was given no TOS client to read the bucket with"
        raise DeployError(msg)
    return _with_lifecycle(plan, merge_rule(lifecycle.get(desired.lifecycle.bucket), desired.lifecycle))


def _with_lifecycle(plan: Plan, change: LifecycleChange) -> Plan:
    """``plan`` with the lifecycle change last (after the function, which does not depend on it)."""
    where = f"on bucket {change.bucket}"
    left_alone = [
        *plan.left_alone,
        *(f"lifecycle rule {rule_id} {where}" for rule_id in change.other_prefixes),
    ]
    if change.kind == "none":
        shown = (
            f"lifecycle rule {change.rule_id} {where}"
            if change.after
            else f"no lifecycle rule {change.rule_id} {where}"
        )
        return dataclasses.replace(plan, unchanged=(*plan.unchanged, shown), left_alone=tuple(left_alone))
    step = Step(change.action, f"bucket {change.bucket}", change.reasons(), lifecycle=change)
    return dataclasses.replace(plan, steps=(*plan.steps, step), left_alone=tuple(left_alone))


def _function_plan(desired: Desired, client: AccountReader) -> Plan:
    """The function's and timers' writes."""
    config = desired.config
    found = client.functions_named(config.name)
    if len(found) > 1:
        ids = ", ".join(item.id for item in found)
        msg = f"{len(found)} functions are named {config.name} ({ids}): expected one; rename or delete the others"
        raise DeployError(msg)
    if not found:
        return _plan_from_nothing(desired)
    listed = found[0]
    current = client.get_function(listed.id)
    if current.tags is None:  # GetFunction has no Tags: the ListFunctions item's are the function's
        current = current.model_copy(update={"tags": listed.tags or {}})
    if current.runtime and not same_runtime(current.runtime, config.runtime):
        msg = (
            f"a function named {config.name} already exists (id {current.id}) with runtime {current.runtime}, "
            f"not {config.runtime}: it is not this project's function, and a runtime cannot change. "
            "Choose another function.name in the template"
        )
        raise DeployError(msg)
    steps: list[Step] = []
    changes, reasons, upload = _function_changes(current, desired)
    if changes:
        steps.append(Step("UpdateFunction", f"{config.name} (id {current.id})", reasons, changes, upload))
    status = client.release_status(current.id)
    in_progress = status.in_progress
    release_why = _release_reason(bool(changes), status)
    if release_why:
        steps.append(
            Step("Release", f"{config.name} (revision 0: the latest code and configuration)", (release_why,))
        )
    unchanged = [] if changes else [f"function {config.name}"]
    timer_steps, timers_unchanged, left_alone = _timer_steps(desired.timers, client.timers(current.id))
    steps.extend(timer_steps)
    unchanged.extend(timers_unchanged)
    return Plan(
        desired,
        current.id,
        tuple(steps),
        tuple(unchanged),
        tuple(left_alone),
        release_in_progress=in_progress and bool(steps),
    )


def _plan_from_nothing(desired: Desired) -> Plan:
    config = desired.config
    envs = {k: v for k, v in config.envs.items() if k != CODE_DIGEST_VARIABLE}
    create_reasons = [
        (
            f"no function named {config.name} in {desired.region}: create it with the code "
            f"({config.runtime}, {config.memory_mb} MB, {config.request_timeout} s)"
        ),
        f"Role: {_plain(config.role)}",
        "Envs: " + _dict_diff({}, envs, desired.shown),
    ]
    steps = [
        Step("CreateFunction", config.name, tuple(create_reasons), upload=True),
        Step(
            "Release",
            f"{config.name} (revision 0: the latest code and configuration)",
            ("publish the new function",),
        ),
    ]
    steps.extend(
        Step(
            "CreateTimer",
            timer.name,
            (_create_timer_reason(timer),),
            timer=timer,
        )
        for timer in desired.timers
    )
    return Plan(desired, None, tuple(steps))


def _create_timer_reason(timer: TimerConfig) -> str:
    payload = f", payload {timer.payload}" if timer.payload else ", no payload"
    return f"no timer named {timer.name}: create it ({timer.crontab}{payload})"


def _release_reason(changed: bool, status: ReleaseStatus) -> str | None:
    if changed:
        return "publish the update"
    if status.never_released:
        return "the function has never been released: release it"
    if status.status == RELEASE_FAILED:
        return f"the last release failed ({status.error_code or 'no error code'}): release again"
    return None


def _function_changes(
    current: DeployedFunction, desired: Desired
) -> tuple[dict[str, Any], tuple[str, ...], bool]:
    """UpdateFunction's fields (only those that differ), the reasons, and whether the code is uploaded."""
    want = desired.config
    changes: dict[str, Any] = {}
    reasons: list[str] = []
    scalars: tuple[tuple[str, object, object], ...] = (
        ("MemoryMB", current.memory_mb, want.memory_mb),
        ("RequestTimeout", current.request_timeout, want.request_timeout),
        ("Role", current.role or None, want.role),
        ("Description", current.description, want.description),
    )
    for name, old, new in scalars:
        if old != new:
            changes[name] = "" if new is None else new
            reasons.append(f"{name}: {_plain(old)} → {_plain(new)}")
    deployed_tags = current.tags or {}
    if deployed_tags != want.tags:
        changes["Tags"] = pairs(want.tags)
        reasons.append("Tags: " + _dict_diff(deployed_tags, want.tags, lambda _name, value: _plain(value)))
    old_envs = {k: v for k, v in current.envs.items() if k != CODE_DIGEST_VARIABLE}
    new_envs = {k: v for k, v in want.envs.items() if k != CODE_DIGEST_VARIABLE}
    if old_envs != new_envs:
        reasons.append("Envs: " + _dict_diff(old_envs, new_envs, desired.shown))
    deployed_digest = current.envs.get(CODE_DIGEST_VARIABLE)
    upload = deployed_digest != desired.code_sha256
    if upload:
        size = f"{desired.code_size / (1 << 20):.1f} MiB"
        if deployed_digest:
            reasons.append(
                f"code: sha256 {deployed_digest[:16]}… deployed, {desired.code_sha256[:16]}… built: upload {size}"
            )
        else:
            reasons.append(f"code: the deployed code's digest is not recorded: upload {size}")
    if old_envs != new_envs or upload:
        changes["Envs"] = pairs(want.envs)
    return changes, tuple(reasons), upload


def _plain(value: object) -> str:
    if value is None or value == "":
        return "(none)"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)


def _dict_diff(old: Mapping[str, str], new: Mapping[str, str], shown: Callable[[str, str], str]) -> str:
    """``+ NAME=value`` added, ``~ NAME: a → b`` changed, ``- NAME`` removed (values through ``shown``)."""
    parts: list[str] = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            parts.append(f"+ {name}={shown(name, new[name])}")
        elif name not in new:
            parts.append(f"- {name}")
        elif old[name] != new[name]:
            before, after = shown(name, old[name]), shown(name, new[name])
            parts.append(
                f"~ {name}: {before} → {after}" if HIDDEN not in (before, after) else f"~ {name} {HIDDEN}"
            )
    return ", ".join(parts)


def _timer_steps(
    wanted: Sequence[TimerConfig], deployed: Sequence[DeployedTimer]
) -> tuple[list[Step], list[str], list[str]]:
    by_name = {timer.name: timer for timer in deployed}
    steps: list[Step] = []
    unchanged: list[str] = []
    for timer in wanted:
        current = by_name.get(timer.name)
        if current is None:
            why = _create_timer_reason(timer)
            steps.append(Step("CreateTimer", timer.name, (why,), timer=timer))
            continue
        changes, reasons = _timer_changes(current, timer)
        if changes:
            steps.append(
                Step(
                    "UpdateTimer",
                    f"{timer.name} (id {current.id})",
                    reasons,
                    changes,
                    timer=timer,
                    timer_id=current.id,
                )
            )
        else:
            unchanged.append(f"timer {timer.name}")
    names = {timer.name for timer in wanted}
    left_alone = [f"timer {t.name} (id {t.id})" for t in deployed if t.name not in names]
    return steps, unchanged, left_alone


def _timer_changes(current: DeployedTimer, want: TimerConfig) -> tuple[dict[str, Any], tuple[str, ...]]:
    changes: dict[str, Any] = {}
    reasons: list[str] = []
    compared: tuple[tuple[str, object, object, bool], ...] = (
        ("Crontab", current.crontab, want.crontab, " ".join(current.crontab.split()) == want.crontab),
        ("Payload", current.payload, want.payload, _same_payload(current.payload, want.payload)),
        ("Enabled", current.enabled, want.enabled, current.enabled == want.enabled),
        ("Retries", current.retries, want.retries, current.retries == want.retries),
        (
            "EnableConcurrency",
            current.enable_concurrency,
            want.enable_concurrency,
            current.enable_concurrency == want.enable_concurrency,
        ),
        ("Description", current.description, want.description, current.description == want.description),
    )
    for name, old, new, same in compared:
        if not same:
            changes[name] = new
            reasons.append(f"{name}: {_plain(old)} → {_plain(new)}")
    return changes, tuple(reasons)


def _same_payload(deployed: str, wanted: str) -> bool:
    """Payloads are equal when they are the same JSON value (key order and spacing do not count)."""
    if deployed.strip() == wanted.strip():
        return True
    try:
        return bool(json.loads(deployed or "null") == json.loads(wanted or "null"))
    except ValueError:
        return False
