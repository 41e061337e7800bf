"""Applying a deploy plan: exactly its writes, in order, each failure explained in the deployer's terms.

CreateFunction or UpdateFunction (the zip inline, only when the code changed), Release of revision 0, then
polling GetReleaseStatus until the release it started is ``done`` or ``failed`` (an earlier release's status
is never taken for it), then CreateTimer or UpdateTimer for each timer, then the export bucket's lifecycle
rules (PutBucketLifecycle with the whole merged set, or DeleteBucketLifecycle when none is left), written only
if the bucket's rules are still those the plan read: TOS has no conditional write, so a change made since
is found by reading again just before, and the run stops rather than write over it. A run that stops
anywhere (an error, a lost answer, an interrupted process) leaves an account that the next run's plan
finishes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TextIO

from exporter_tools.deploy.desired import Desired
from exporter_tools.deploy.lifecycle import LifecycleChange
from exporter_tools.deploy.plan import DeployError, Plan, Step
from exporter_tools.deploy.tos_lifecycle import (
    DELETE_LIFECYCLE,
    GET_LIFECYCLE,
    PUT_LIFECYCLE,
    LifecycleClient,
)
from exporter_tools.deploy.vefaas import (
    RELEASE_FAILED,
    ReleaseStarted,
    ReleaseStatus,
    VefaasClient,
    is_name_clash,
    is_role_problem,
)
from handler.errors import (
    AccessDenied,
    ApiError,
    BucketNotFound,
    MalformedResponse,
    TerminalApiError,
    UnknownOutcomeError,
)

__all__ = ["ReleaseFailed", "apply_plan", "explain", "wait_for_release"]


class ReleaseFailed(DeployError):
    """The platform could not start the new revision; ``status`` holds its error code, message and logs."""

    code = "ReleaseFailed"

    def __init__(self, function_name: str, status: ReleaseStatus) -> None:
        logs = status.failed_instance_logs.strip()
        message = (
            f"the release of {function_name} failed: {status.error_code or 'no error code'}: "
            f"{status.status_message or 'no message'}"
            + (f"\ninstance logs:\n{logs}" if logs else "\n(no instance logs)")
        )
        super().__init__(message)
        self.status = status


def wait_for_release(
    client: VefaasClient,
    function_id: str,
    *,
    started: ReleaseStarted | None,
    poll_seconds: float,
    timeout: float,
    out: TextIO,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> ReleaseStatus:
    """Poll GetReleaseStatus until the release ``started`` is ``done`` or ``failed``, printing each new status.

    A status about another release (an earlier one's ``done``) is not this one's: polling goes on. With
    ``started`` None it waits for whatever release runs to end. ``DeployError`` on timeout."""
    give_up = monotonic() + timeout
    last = ""
    while True:
        status = client.release_status(function_id)
        ours = status.is_about(started) if started is not None else not status.in_progress
        shown = status.status if ours else f"{status.status or 'none'} (an earlier release; waiting for ours)"
        if shown != last:
            last = shown
            out.write(f"     release status: {shown}\n")
        if ours and (status.finished or started is None):
            return status
        if monotonic() >= give_up:
            msg = (
                f"the release did not finish within {timeout:g} s (last status: {last or 'none'}); "
                "it may still finish: run deploy again later to see"
            )
            raise DeployError(msg)
        sleep(poll_seconds)


@dataclass(slots=True)
class _Applier:
    """The writes of one plan, one method per action, keeping the function's id once it is known."""

    plan: Plan
    client: VefaasClient
    zip_base64: Callable[[], str]
    out: TextIO
    poll_seconds: float
    release_timeout: float
    sleep: Callable[[float], None]
    monotonic: Callable[[], float]
    function_id: str | None = None
    lifecycle: LifecycleClient | None = None

    def wait(self, started: ReleaseStarted | None) -> ReleaseStatus:
        return wait_for_release(
            self.client,
            _known(self.function_id),
            started=started,
            poll_seconds=self.poll_seconds,
            timeout=self.release_timeout,
            out=self.out,
            sleep=self.sleep,
            monotonic=self.monotonic,
        )

    def step(self, step: Step) -> None:
        client, out = self.client, self.out
        if step.action == "CreateFunction":
            self.function_id = client.create_function(self.plan.desired.config, zip_base64=self.zip_base64())
            out.write(f"     created: id {self.function_id}\n")
        elif step.action == "UpdateFunction":
            changes = dict(step.changes)
            if step.upload:
                changes.update(SourceType="zip", Source=self.zip_base64())
            client.update_function(_known(self.function_id), changes)
            out.write(f"     updated: {', '.join(sorted(step.changes))}\n")
        elif step.action == "Release":
            self.release()
        elif step.action == "CreateTimer" and step.timer is not None:
            timer_id = client.create_timer(_known(self.function_id), step.timer)
            out.write(f"     created: id {timer_id}\n")
        elif step.action == "UpdateTimer" and step.timer_id is not None:
            client.update_timer(_known(self.function_id), step.timer_id, step.changes)
            out.write(f"     updated: {', '.join(sorted(step.changes))}\n")
        elif step.lifecycle is not None:
            self.write_lifecycle(step.lifecycle)

    def write_lifecycle(self, change: LifecycleChange) -> None:
        """The bucket's whole rule set, if it is still the one the plan read."""
        if self.lifecycle is None:
            msg = "the plan changes a bucket's lifecycle, and deploy was given no TOS client to write it with"
            raise DeployError(msg)
        now = self.lifecycle.get(change.bucket)
        if now.rules != change.read:
            msg = (
                f"the lifecycle rules of bucket {change.bucket} changed since the plan read them: nothing was "
                "written over them; run deploy again to plan over the rules as they are now"
            )
            raise DeployError(msg)
        if change.rules:
            self.lifecycle.put(change.bucket, change.rules, allow_overlap=change.allow_overlap)
            self.out.write(
                f"     written: {len(change.rules)} rules, {len(change.kept)} of them kept as they were\n"
            )
        else:
            self.lifecycle.delete(change.bucket)
            self.out.write("     removed: the bucket has no lifecycle rule left\n")

    def release(self) -> None:
        description = f"code sha256 {self.plan.desired.code_sha256[:16]}"
        started = self.client.release(_known(self.function_id), description=description)
        revision = f"revision {started.revision}" if started.revision is not None else "a new revision"
        self.out.write(f"     releasing {revision} (record {started.record_id or 'not given'})\n")
        status = self.wait(started)
        if status.status == RELEASE_FAILED:
            raise ReleaseFailed(self.plan.desired.config.name, status)


def apply_plan(
    plan: Plan,
    client: VefaasClient,
    *,
    zip_base64: Callable[[], str],
    out: TextIO,
    poll_seconds: float = 2.0,
    release_timeout: float = 600.0,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    lifecycle: LifecycleClient | None = None,
) -> str:
    """Make the plan's writes in order (a lifecycle change through ``lifecycle``); returns the function's id.
    Stops at the first failure, with a ``DeployError`` that says what to do (a second run picks up from
    wherever this one stopped)."""
    applier = _Applier(
        plan,
        client,
        zip_base64,
        out,
        poll_seconds,
        release_timeout,
        sleep,
        monotonic,
        plan.function_id,
        lifecycle,
    )
    if plan.release_in_progress:
        out.write("  waiting for the release in progress\n")
        status = applier.wait(None)
        if status.status == RELEASE_FAILED and not any(step.action == "Release" for step in plan.steps):
            raise ReleaseFailed(plan.desired.config.name, status)  # no timer for a function that cannot start
    for number, step in enumerate(plan.steps, start=1):
        out.write(f"  {number}. {step.action} {step.subject}\n")
        with _explained(step, plan):
            applier.step(step)
    return _known(applier.function_id)


def _known(function_id: str | None) -> str:
    """The function's id, which a plan always has by the time a step needs it (found, or just created)."""
    if function_id is None:
        msg = "the plan has no function id for this step: run deploy again"
        raise DeployError(msg)
    return function_id


@contextlib.contextmanager
def _explained(step: Step, plan: Plan) -> Iterator[None]:
    """Turn an API error from one write into a ``DeployError`` that says what to do about it."""
    try:
        yield
    except ApiError as error:
        raise DeployError(explain(error, step.action, plan.desired)) from error


def explain(error: ApiError, action: str, desired: Desired) -> str:
    """A failed call in the deployer's terms: what happened and what to do."""
    request = f" (RequestId {error.request_id})" if error.request_id else ""
    said = f"{error.code}: {error.message}{request}"
    if action in (GET_LIFECYCLE, PUT_LIFECYCLE, DELETE_LIFECYCLE) and desired.lifecycle is not None:
        return _explain_lifecycle(error, action, desired.lifecycle.bucket, said)
    if isinstance(error, UnknownOutcomeError):
        return _lost(action, said)
    return _explain_vefaas(error, action, desired, said)


def _lost(action: str, said: str) -> str:
    return (
        f"{action} was sent but its answer was lost ({said}): it may or may not have happened. "
        "Run deploy again: it looks everything up before writing"
    )


def _explain_vefaas(error: ApiError, action: str, desired: Desired, said: str) -> str:
    config = desired.config
    if action in ("CreateFunction", "UpdateFunction") and config.role and is_role_problem(error):
        role_name = config.role.rpartition("/")[2]
        return (
            f"veFaaS may not use the role {config.role} ({said}). Create the IAM role {role_name} with veFaaS "
            "as its trusted service, attach the policy from the README (ECS ExportImage, "
            "DescribeImages, DescribeTasks, TagResources, UntagResources; reading the bucket's objects), and "
            "allow the deployer to pass it to veFaaS"
        )
    if action == "CreateFunction" and is_name_clash(error):
        return (
            f"a function named {config.name} already exists in {desired.region}, though ListFunctions did not "
            f"list it to these credentials ({said}). Choose another function.name in the template, or deploy "
            "with credentials that can see that function"
        )
    if action == "CreateTimer" and is_name_clash(error):
        return f"a timer with this name already exists on the function ({said}): rename it in the template"
    if isinstance(error, AccessDenied) or error.http_status == 403:
        return f"the deployer's credentials may not call {action} ({said}): grant them veFaaS access"
    return f"{action} failed: {said}"


def _explain_lifecycle(error: ApiError, action: str, bucket: str, said: str) -> str:
    """A failed lifecycle request in the deployer's terms (docs/operations.md, storage classes)."""
    if isinstance(error, MalformedResponse) and action == GET_LIFECYCLE:
        return (
            f"the rules of bucket {bucket} could not be read rule for rule ({said}), so none was written: "
            "check that TOS_ENDPOINT names TOS"
        )
    if isinstance(error, UnknownOutcomeError):
        return _lost(action, said)
    if isinstance(error, AccessDenied) or error.http_status == 403:
        return (
            f"the deployer's credentials may not call {action} on bucket {bucket} ({said}): grant them "
            "tos:GetBucketLifecycle, tos:PutBucketLifecycle and tos:DeleteBucketLifecycle on it, or remove the "
            "template's storage section"
        )
    if isinstance(error, BucketNotFound):
        return (
            f"TOS has no bucket {bucket} ({said}): create it in the template's region, or fix "
            "EXPORT_TOS_BUCKET (and TOS_ENDPOINT, which deploy sends the lifecycle requests to)"
        )
    if action == PUT_LIFECYCLE and isinstance(error, TerminalApiError):
        return (
            f"TOS refused the bucket's lifecycle rules ({said}): check the template's storage section; the "
            "bucket's rules were left as they were"
        )
    return f"{action} on bucket {bucket} failed: {said}"
