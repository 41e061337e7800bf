"""``exporter-tools deploy``: compare template.yaml with the account, print the plan, and apply it.

The plan is built from reads only (ListFunctions, GetFunction, GetReleaseStatus, ListTriggers, GetTimer) and
lists each write it would make and why. Applying makes exactly those writes, in order: CreateFunction or
UpdateFunction (the zip inline, only when the code changed), Release of revision 0, polling GetReleaseStatus
until ``done`` or ``failed``, then CreateTimer or UpdateTimer for each timer. With nothing changed there is
nothing to write, so a second apply makes no write call.

Whether the code changed is read from the function's own environment: deploy stores the zip's SHA-256 in
``EXPORTER_CODE_SHA256`` (GetFunction does not report a digest of the code), in the same UpdateFunction that
uploads it. Values that look secret are never printed: the plan says "(hidden)" instead.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from exporter_tools.deploy import tool_arguments
from exporter_tools.deploy.template import (
    CODE_DIGEST_VARIABLE,
    DEFAULT_TEMPLATE,
    TIMEOUT_VARIABLE,
    Template,
    TemplateError,
    load_template,
    looks_secret,
    resolved_environment,
    resolved_role,
)
from exporter_tools.deploy.vefaas import (
    RELEASE_FAILED,
    DeployedFunction,
    DeployedTimer,
    FunctionConfig,
    ReleaseStatus,
    TimerConfig,
    VefaasClient,
    is_name_clash,
    is_role_problem,
    pairs,
)
from handler.adapters.signing import Credentials
from handler.errors import ApiError, ConfigurationError, ExporterError, NoCredentials, UnknownOutcomeError

__all__ = [
    "DeployError",
    "Desired",
    "Plan",
    "ReleaseFailed",
    "Step",
    "apply_plan",
    "desired_state",
    "main",
    "make_plan",
    "wait_for_release",
]

DEFAULT_ENDPOINT = "https://open.volcengineapi.com"
HIDDEN = "(hidden)"
_WRITES = ("CreateFunction", "UpdateFunction", "Release", "CreateTimer", "UpdateTimer")


class DeployError(ExporterError):
    """The deployment cannot go on; the message says what happened and what to do."""

    code = "DeployFailed"


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


# ---------------------------------------------------------------------------------------------------------
# What the template wants.


@dataclass(frozen=True, slots=True)
class Desired:
    """The function and timers the template describes, with every ``${env:…}`` filled in."""

    region: str
    config: FunctionConfig
    code_sha256: str
    code_size: int
    timers: tuple[TimerConfig, ...]
    hidden: frozenset[str]  # environment names whose values are never printed

    def shown(self, name: str, value: str | None) -> str:
        """A value for the plan: quoted, or "(hidden)" when the variable or the value looks secret."""
        if value is None:
            return "(none)"
        if name in self.hidden or looks_secret(name, value):
            return HIDDEN
        return json.dumps(value, ensure_ascii=False)


def desired_state(template: Template, environ: Mapping[str, str], *, code: bytes) -> Desired:
    """The template resolved against the deployer's environment; ``TemplateError`` names what is missing.

    The function's environment also gets ``VOLCENGINE_REGION`` (the template's region, unless set),
    ``FUNCTION_TIMEOUT_SECONDS`` (the platform does not tell the function its timeout) and the code's digest.
    """
    envs = resolved_environment(template, environ)
    role = resolved_role(template, environ)
    digest = hashlib.sha256(code).hexdigest()
    envs.setdefault("VOLCENGINE_REGION", template.region)
    envs[TIMEOUT_VARIABLE] = str(template.function.timeout_seconds)
    envs[CODE_DIGEST_VARIABLE] = digest
    hidden = frozenset(name for name, value in envs.items() if looks_secret(name, value)) - {
        CODE_DIGEST_VARIABLE
    }
    function = template.function
    config = FunctionConfig(
        name=function.name,
        runtime=function.runtime,
        memory_mb=function.memory_mb,
        request_timeout=function.timeout_seconds,
        role=role,
        description=function.description,
        envs=envs,
        tags=dict(function.tags),
    )
    timers = tuple(
        TimerConfig(
            name=timer.name,
            crontab=timer.crontab,
            payload=timer.payload_text,
            enabled=timer.enabled,
            retries=timer.retries,
            enable_concurrency=timer.concurrency,
            description=timer.description,
        )
        for timer in template.timers
    )
    return Desired(template.region, config, digest, len(code), timers, hidden)


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


@dataclass(frozen=True, slots=True)
class Plan:
    """Every write needed to make the account match the template, with what stays as it is."""

    desired: Desired
    function_id: str | None
    steps: tuple[Step, ...]
    unchanged: tuple[str, ...] = ()
    left_alone: tuple[str, ...] = ()
    release_in_progress: bool = False

    def render(self) -> str:
        """The plan for people: numbered calls, each with its reasons."""
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
            count = len(self.steps)
            lines.append(f"{count} write call{'' if count == 1 else 's'}. Run with --apply to make them.")
        else:
            lines.append("Nothing to change: the account matches the template.")
        return "\n".join(lines) + "\n"


def make_plan(desired: Desired, client: VefaasClient) -> Plan:
    """Read the account and list the writes that would make it match ``desired`` (reads only)."""
    config = desired.config
    found = client.functions_named(config.name)
    if len(found) > 1:
        ids = ", ".join(item.id for item in found)
        msg = f"{len(found)} functions are named {config.name} ({ids}): expected one; rename or delete the others"
        raise DeployError(msg)
    if not found:
        return _plan_from_nothing(desired)
    current = client.get_function(found[0].id)
    if current.runtime and current.runtime != config.runtime:
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
    in_progress = status is not None and not status.finished
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
        release_in_progress=in_progress and bool(release_why),
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


def _release_reason(changed: bool, status: ReleaseStatus | None) -> str | None:
    if changed:
        return "publish the update"
    if status is None:
        return "the function has never been released"
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
    if current.tags != want.tags:
        changes["Tags"] = pairs(want.tags)
        reasons.append("Tags: " + _dict_diff(current.tags, want.tags, lambda _name, value: _plain(value)))
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


# ---------------------------------------------------------------------------------------------------------
# Applying it.


def wait_for_release(
    client: VefaasClient,
    function_id: str,
    *,
    poll_seconds: float,
    timeout: float,
    out: TextIO,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> ReleaseStatus:
    """Poll GetReleaseStatus until ``done`` or ``failed``, printing each new status; ``DeployError`` on timeout."""
    give_up = monotonic() + timeout
    last = ""
    while True:
        status = client.release_status(function_id)
        if status is not None and status.status != last:
            last = status.status
            out.write(f"     release status: {last}\n")
        if status is not None and status.finished:
            return status
        if monotonic() >= give_up:
            msg = (
                f"the release did not finish within {timeout:g} s (last status: {last or 'none'}); "
                "it may still finish: run deploy again later to see"
            )
            raise DeployError(msg)
        sleep(poll_seconds)


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
) -> str:
    """Make the plan's writes in order; returns the function's id. Stops at the first failure, with a
    ``DeployError`` that says what to do (a second run picks up from wherever this one stopped)."""
    config = plan.desired.config
    function_id = plan.function_id

    def wait() -> ReleaseStatus:
        return wait_for_release(
            client,
            _known(function_id),
            poll_seconds=poll_seconds,
            timeout=release_timeout,
            out=out,
            sleep=sleep,
            monotonic=monotonic,
        )

    if plan.release_in_progress:
        out.write("  waiting for the release in progress\n")
        wait()
    for number, step in enumerate(plan.steps, start=1):
        out.write(f"  {number}. {step.action} {step.subject}\n")
        with _explained(step, plan):
            if step.action == "CreateFunction":
                function_id = client.create_function(config, zip_base64=zip_base64())
                out.write(f"     created: id {function_id}\n")
            elif step.action == "UpdateFunction":
                changes = dict(step.changes)
                if step.upload:
                    changes.update(SourceType="zip", Source=zip_base64())
                client.update_function(_known(function_id), changes)
                out.write(f"     updated: {', '.join(sorted(step.changes))}\n")
            elif step.action == "Release":
                client.release(
                    _known(function_id), description=f"code sha256 {plan.desired.code_sha256[:16]}"
                )
                status = wait()
                if status.status == RELEASE_FAILED:
                    raise ReleaseFailed(config.name, status)
            elif step.action == "CreateTimer" and step.timer is not None:
                timer_id = client.create_timer(_known(function_id), step.timer)
                out.write(f"     created: id {timer_id}\n")
            elif step.action == "UpdateTimer" and step.timer_id is not None:
                client.update_timer(_known(function_id), step.timer_id, step.changes)
                out.write(f"     updated: {', '.join(sorted(step.changes))}\n")
    return _known(function_id)


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
    config = desired.config
    request = f" (RequestId {error.request_id})" if error.request_id else ""
    said = f"{error.code}: {error.message}{request}"
    if isinstance(error, UnknownOutcomeError):
        return (
            f"{action} was sent but its answer was lost ({said}): it may or may not have happened. "
            "Run deploy again: it looks everything up before writing"
        )
    if action in ("CreateFunction", "UpdateFunction") and config.role and is_role_problem(error):
        role_name = config.role.rpartition("/")[2]
        return (
            f"veFaaS may not use the role {config.role} ({said}). Create the IAM role {role_name} with veFaaS "
            'as its trusted service, attach the policy from README "Deployment" (ECS ExportImage, '
            "DescribeImages, DescribeTasks), and allow the deployer to pass it to veFaaS"
        )
    if action == "CreateFunction" and is_name_clash(error):
        return (
            f"a function named {config.name} already exists in {desired.region}, though ListFunctions did not "
            f"list it to these credentials ({said}). Choose another function.name in the template, or deploy "
            "with credentials that can see that function"
        )
    if action == "CreateTimer" and is_name_clash(error):
        return f"a timer with this name already exists on the function ({said}): rename it in the template"
    if error.code == "AccessDenied" or error.http_status == 403:
        return f"the deployer's credentials may not call {action} ({said}): grant them veFaaS access"
    return f"{action} failed: {said}"


# ---------------------------------------------------------------------------------------------------------
# exporter-tools deploy


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exporter-tools deploy",
        description="Deploy template.yaml to veFaaS: print the plan (default), or apply it.",
    )
    parser.add_argument("--template", default=DEFAULT_TEMPLATE, help="the template (template.yaml)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--plan", action="store_true", help="print the calls deploy would make, and why (default)"
    )
    mode.add_argument("--apply", action="store_true", help="make those calls")
    parser.add_argument("--zip", type=Path, help="deploy this zip instead of building dist/function.zip")
    parser.add_argument(
        "--endpoint", help=f"the OpenAPI gateway (VOLCENGINE_ENDPOINT, default {DEFAULT_ENDPOINT})"
    )
    parser.add_argument("--poll-seconds", type=float, default=2.0, help="between release status checks (2)")
    parser.add_argument(
        "--release-timeout", type=float, default=600.0, help="how long to wait for a release (600)"
    )
    parser.add_argument("--verbose", action="store_true", help="log every API call on stderr")
    return parser


def main(argv: Sequence[str], *, environ: Mapping[str, str] | None = None, out: TextIO | None = None) -> int:
    """``deploy [--template FILE] [--plan | --apply]``: 0 done, 1 a call or the release failed, 2 the
    template, the deployer's environment or the credentials are wrong."""
    args = build_parser().parse_args(tool_arguments(argv))
    env = os.environ if environ is None else environ
    stdout = out or sys.stdout
    from handler.adapters.log import configure_logging, redactor  # noqa: PLC0415 - the CLI's own setup

    configure_logging("INFO" if args.verbose else "WARNING")
    try:
        template = load_template(args.template)
        code = _code(args.zip)
        desired = desired_state(template, env, code=code)
        credentials = _credentials(desired, env)
        gateway = _endpoint(env, args.endpoint)
        max_rps = _max_rps(env)
    except TemplateError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"deploy: {exc.source}: {problem}\n")
        return 2
    except ConfigurationError as exc:
        sys.stderr.write(f"deploy: {exc}\n")
        return 2
    except DeployError as exc:
        sys.stderr.write(f"deploy: {exc.message}\n")
        return 1
    # The zip travels inline (several MB as base64): give the upload time.
    with httpx.Client(timeout=httpx.Timeout(120.0, connect=10.0)) as http:
        client = _client(desired, credentials, gateway, http, max_rps=max_rps)
        try:
            plan = make_plan(desired, client)
            stdout.write(plan.render())
            if args.apply and plan.steps:
                stdout.write("Applying:\n")
                function_id = apply_plan(
                    plan,
                    client,
                    zip_base64=lambda: _base64(code),
                    out=stdout,
                    poll_seconds=args.poll_seconds,
                    release_timeout=args.release_timeout,
                )
                timers = ", ".join(t.name for t in desired.timers) or "no timers"
                stdout.write(f"Deployed {desired.config.name} (id {function_id}) with {timers}.\n")
        except ApiError as exc:
            sys.stderr.write(f"deploy: {redactor.mask_text(explain(exc, exc.action, desired))}\n")
            return 1
        except DeployError as exc:
            sys.stderr.write(f"deploy: {redactor.mask_text(exc.message)}\n")
            return 1
    return 0


def _code(zip_path: Path | None) -> bytes:
    """The zip to deploy: the given file, or a fresh reproducible build of dist/function.zip."""
    from exporter_tools.deploy import package  # noqa: PLC0415 - pip and zipping only when deploying

    if zip_path is not None:
        try:
            return zip_path.read_bytes()
        except OSError as exc:
            msg = f"cannot read the zip {zip_path}: {exc.strerror}"
            raise DeployError(msg) from None
    try:
        built = package.build_package(package.DEFAULT_OUTPUT, cache=package.DEFAULT_CACHE)
    except package.PackageError as exc:
        raise DeployError(exc.message) from None
    sys.stderr.write(built.summary())
    return built.path.read_bytes()


def _base64(code: bytes) -> str:
    import base64  # noqa: PLC0415

    return base64.b64encode(code).decode("ascii")


def _credentials(desired: Desired, environ: Mapping[str, str]) -> Credentials:
    """The deployer's credentials (never the function's); ``ConfigurationError`` when there are none.

    From here on, log lines and error messages mask them, and every secret-looking environment value."""
    from handler.adapters.credentials import resolve_credentials  # noqa: PLC0415
    from handler.adapters.log import redactor  # noqa: PLC0415

    try:
        credentials = resolve_credentials(environ)
    except NoCredentials:
        msg = (
            "no credentials to deploy with: set VOLCENGINE_ACCESS_KEY and VOLCENGINE_SECRET_KEY (and "
            "VOLCENGINE_SESSION_TOKEN for temporary keys) to keys allowed to manage veFaaS functions"
        )
        raise ConfigurationError(msg) from None
    hidden_values = [desired.config.envs[name] for name in desired.hidden]
    redactor.set_secrets(
        [credentials.secret_key, credentials.session_token, *hidden_values], access_key=credentials.access_key
    )
    return credentials


def _endpoint(environ: Mapping[str, str], given: str | None) -> str:
    gateway = (given or environ.get("VOLCENGINE_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    if not gateway.startswith(("https://", "http://")):
        msg = f"expected scheme and host, like {DEFAULT_ENDPOINT}"
        raise ConfigurationError(msg, source="VOLCENGINE_ENDPOINT")
    return gateway


def _max_rps(environ: Mapping[str, str]) -> float:
    """The request rate deploy keeps to: ``VOLCENGINE_MAX_RPS``, as for the function (default 10)."""
    text = environ.get("VOLCENGINE_MAX_RPS", "").strip() or "10"
    try:
        rate = float(text)
    except ValueError:
        rate = 0.0
    if not 0 < rate <= 1000:
        msg = "expected a number of requests per second above 0 and at most 1000"
        raise ConfigurationError(msg, source="VOLCENGINE_MAX_RPS")
    return rate


def _client(
    desired: Desired, credentials: Credentials, gateway: str, http: httpx.Client, *, max_rps: float
) -> VefaasClient:
    """A signed veFaaS client: the same signer and retry policy as the function's ECS client."""
    from exporter_tools.deploy.vefaas import API_VERSION, SERVICE  # noqa: PLC0415
    from handler.adapters.openapi import OpenApiClient  # noqa: PLC0415
    from handler.adapters.pacing import RateLimiter, RetryPolicy  # noqa: PLC0415

    api = OpenApiClient(
        http=http,
        endpoint=gateway,
        region=desired.region,
        service=SERVICE,
        version=API_VERSION,
        credentials=credentials,
        policy=RetryPolicy(max_attempts=4, base=0.5, cap=8.0),
        limiter=RateLimiter(max_rps),
    )
    return VefaasClient(api, deadline=time.monotonic() + 1800.0)
