"""``deploy --destroy``: the removal of the template's function and its triggers, planned from reads and
applied in order; never the bucket, its objects or its lifecycle rules.

The plan finds the function by its exact name (ListFunctions), lists its triggers (ListTriggers) and plans a
DeleteTimer for each timer, then DeleteFunction. A trigger of another type (an HTTP or event trigger added in
the console: deploy creates none) has no delete action here, so the plan stops and names it, rather than
delete the function from under it. The exports, their manifests and the bucket's lifecycle rules stay as
they are (the exports are the backups); the README's "Uninstall" says what else to remove. Like a deploy, a
destroy stopped anywhere is finished by the next one: it reads the account again, and a timer or function
already gone when its delete is sent counts as deleted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from exporter_tools.deploy.plan import JSON_FORMAT_VERSION, DeployError, RenderMode, Step, calls_line
from exporter_tools.deploy.vefaas import DeployedFunction, TriggerRef
from handler.errors import AccessDenied, ApiError, UnknownOutcomeError

__all__ = ["DestroyPlan", "TriggerReader", "TriggerRemover", "apply_destroy", "plan_destroy"]

DELETE_TIMER = "DeleteTimer"
DELETE_FUNCTION = "DeleteFunction"
_KEPT = "the export bucket, its exports and manifests, and its lifecycle rules: a destroy never touches TOS"


class TriggerReader(Protocol):
    """The reads a destroy plan needs (``VefaasClient`` is one)."""

    def functions_named(self, name: str) -> list[DeployedFunction]: ...

    def triggers(self, function_id: str) -> list[TriggerRef]: ...


class TriggerRemover(Protocol):
    """The writes a destroy makes (``VefaasClient`` is one)."""

    def delete_timer(self, function_id: str, timer_id: str) -> None: ...

    def delete_function(self, function_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class DestroyPlan:
    """The deletes that remove the function and its timers, and what stays."""

    name: str
    region: str
    function_id: str | None
    steps: tuple[Step, ...]
    kept: tuple[str, ...] = (_KEPT,)

    def render(self, *, mode: RenderMode = "plan") -> str:
        """The plan for people, as a deploy plan reads: numbered deletes, each with its reason."""
        where = f" (id {self.function_id})" if self.function_id else ""
        lines = [f"Destroy plan for function {self.name}{where} in {self.region}:"]
        for number, step in enumerate(self.steps, start=1):
            lines.append(f"  {number}. {step.action} {step.subject}")
            lines.extend(f"       {reason}" for reason in step.reasons)
        lines.append(f"  kept: {', '.join(self.kept)}")
        if self.steps:
            lines.append(calls_line(len(self.steps), mode, apply_with="--destroy --apply"))
        else:
            lines.append(f"Nothing to destroy: no function named {self.name} in {self.region}.")
        return "\n".join(lines) + "\n"

    def to_json(self, *, warnings: Sequence[str] = ()) -> dict[str, Any]:
        """The plan for programs (``deploy --destroy --json``), in the shape of a deploy plan's."""
        return {
            "format_version": JSON_FORMAT_VERSION,
            "operation": "destroy",
            "function": {"name": self.name, "id": self.function_id, "region": self.region},
            "changes_pending": bool(self.steps),
            "steps": [step.to_json(number) for number, step in enumerate(self.steps, start=1)],
            "kept": list(self.kept),
            "warnings": list(warnings),
        }


def plan_destroy(name: str, region: str, client: TriggerReader) -> DestroyPlan:
    """Read the account and list the deletes that remove the function ``name`` and its timers (reads only).

    ``DeployError`` when two functions have the name, or a trigger is of a type deploy cannot delete."""
    found = client.functions_named(name)
    if len(found) > 1:
        ids = ", ".join(item.id for item in found)
        msg = (
            f"{len(found)} functions are named {name} ({ids}): expected one; delete the others in the console"
        )
        raise DeployError(msg)
    if not found:
        return DestroyPlan(name, region, None, ())
    function = found[0]
    triggers = client.triggers(function.id)
    others = [trigger for trigger in triggers if not trigger.is_timer]
    if others:
        listed = ", ".join(f"{t.name or t.id} (id {t.id}, type {t.type or 'unknown'})" for t in others)
        msg = (
            f"the function {name} has triggers deploy does not create and cannot delete: {listed}. Delete them "
            "in the veFaaS console, then run deploy --destroy again; nothing was deleted"
        )
        raise DeployError(msg)
    steps = [
        Step(DELETE_TIMER, f"{t.name or t.id} (id {t.id})", ("a timer of the function",), timer_id=t.id)
        for t in triggers
    ]
    why = "the function: its code, configuration and revisions"
    steps.append(Step(DELETE_FUNCTION, f"{name} (id {function.id})", (why,)))
    return DestroyPlan(name, region, function.id, tuple(steps))


def apply_destroy(plan: DestroyPlan, client: TriggerRemover, *, out: TextIO) -> None:
    """Make the plan's deletes in order; stops at the first failure with a ``DeployError`` that says what to
    do. A timer or function already gone (HTTP 404) counts as deleted."""
    if plan.function_id is None:
        return
    for number, step in enumerate(plan.steps, start=1):
        out.write(f"  {number}. {step.action} {step.subject}\n")
        with _explained(step.action):
            gone = _delete(client, plan.function_id, step)
        out.write("     already gone\n" if gone else "     deleted\n")


def _delete(client: TriggerRemover, function_id: str, step: Step) -> bool:
    """Send one delete; True when what it names was already gone."""
    try:
        if step.action == DELETE_FUNCTION:
            client.delete_function(function_id)
        elif step.action == DELETE_TIMER and step.timer_id is not None:
            client.delete_timer(function_id, step.timer_id)
    except ApiError as error:
        if error.http_status == 404:
            return True
        raise
    return False


@contextlib.contextmanager
def _explained(action: str) -> Iterator[None]:
    """An API error from one delete as a ``DeployError`` in the deployer's terms."""
    try:
        yield
    except ApiError as error:
        request = f" (RequestId {error.request_id})" if error.request_id else ""
        said = f"{error.code}: {error.message}{request}"
        if isinstance(error, UnknownOutcomeError):
            msg = (
                f"{action} was sent but its answer was lost ({said}): it may or may not have happened. Run "
                "deploy --destroy again: it looks everything up before deleting"
            )
        elif isinstance(error, AccessDenied) or error.http_status == 403:
            msg = f"the deployer's credentials may not call {action} ({said}): grant them veFaaS access"
        else:
            msg = f"{action} failed: {said}"
        raise DeployError(msg) from error
