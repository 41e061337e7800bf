"""``exporter-tools deploy``: check the template and the zip, print the plan, and ``--apply`` it; with
``--destroy``, the plan (and ``--apply``) of the removal of the function and its timers instead.

Everything that would fail at run time is refused before the first call, and all of it in one run: the
template, every ``${env:…}`` the deployer's environment must fill in (then each value, with the function's
own settings model), the keys and endpoints (``exporter_tools.deploy.connect``); then the zip
(``exporter_tools.deploy.zipcheck``). A ``storage:`` section's rule is read and written on TOS
(``--tos-endpoint``, ``TOS_ENDPOINT``, else the region's public endpoint) with the same keys.

Like a plan-and-apply tool: ``--apply`` asks for ``yes`` on a terminal and, without one, needs
``--auto-approve``; ``--json`` prints the plan for programs; ``--detailed-exitcode`` makes a plan's exit
status say whether it has changes (0 none, 2 some, 1 any error), as Terraform's does. Otherwise the status is
the tools' convention: 0 done, 1 a call or the release failed, 2 a usage or configuration error.

An ``--apply`` that leaves the function deployed (nothing to change included) ends with the doctor's checks
on the settings it deployed (``exporter_tools.deploy.checkup``; ``--no-doctor`` leaves them out): a check that
fails makes the exit status 1, the deployment done and said so.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx

from exporter_tools.deploy import tool_arguments
from exporter_tools.deploy.apply import apply_plan, explain
from exporter_tools.deploy.checks import resolved_warnings
from exporter_tools.deploy.connect import (
    DEFAULT_ENDPOINT,
    Connection,
    connection,
    lifecycle_client,
    mask,
    vefaas_client,
)
from exporter_tools.deploy.desired import Desired, desired_state, resolved_function
from exporter_tools.deploy.destroy import DestroyPlan, apply_destroy, plan_destroy
from exporter_tools.deploy.model import DEFAULT_TEMPLATE, Problem, Template, TemplateError
from exporter_tools.deploy.plan import DeployError, Plan, make_plan
from exporter_tools.deploy.template import load_template
from exporter_tools.deploy.zipcheck import check_zip
from handler.errors import ApiError, ConfigurationError

__all__ = ["build_parser", "main"]


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
    mode.add_argument("--apply", action="store_true", help="make those calls (asks first on a terminal)")
    parser.add_argument(
        "--destroy",
        action="store_true",
        help="plan (with --apply: make) the removal of the function and its timers; the bucket is kept",
    )
    parser.add_argument(
        "--auto-approve", action="store_true", help="with --apply: make the calls without asking"
    )
    parser.add_argument(
        "--no-doctor",
        action="store_true",
        help="with --apply: leave out the doctor's checks of the deployed settings at the end (a destroy runs none)",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON (not with --apply)")
    parser.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="a plan exits 0 when nothing would change, 2 when something would, 1 on any error",
    )
    parser.add_argument("--zip", type=Path, help="deploy this zip instead of building dist/function.zip")
    parser.add_argument(
        "--endpoint", help=f"the OpenAPI gateway (VOLCENGINE_ENDPOINT, default {DEFAULT_ENDPOINT})"
    )
    parser.add_argument(
        "--tos-endpoint",
        help="TOS, for the storage section's lifecycle rule (TOS_ENDPOINT, default https://tos-<region>.volces.com)",
    )
    parser.add_argument("--poll-seconds", type=float, default=2.0, help="between release status checks (2)")
    parser.add_argument(
        "--release-timeout", type=float, default=600.0, help="how long to wait for a release (600)"
    )
    parser.add_argument("--verbose", action="store_true", help="log every API call on stderr")
    return parser


@dataclass(frozen=True, slots=True)
class _Io:
    """Where deploy prints (the plan, the progress, the question) and reads the answer from."""

    out: TextIO
    answers: TextIO
    source: str  # the template's path, which every problem and warning names


def main(
    argv: Sequence[str],
    *,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    """``deploy [--template FILE] [--zip FILE] [--destroy] [--plan | --apply [--auto-approve] [--no-doctor]]
    [--json] [--detailed-exitcode]``: 0 done, 1 a call, the release or (after an apply) a doctor's check
    failed, 2 a usage or configuration error (before any call); with ``--detailed-exitcode``, 0 nothing to
    change, 2 changes pending, 1 any error."""
    words = tool_arguments(argv)
    detailed = "--detailed-exitcode" in words
    parser = build_parser()
    answers = stdin if stdin is not None else sys.stdin
    try:
        args = parser.parse_args(words)
        _check_usage(parser, args, answers)
    except SystemExit as exited:
        if exited.code == 2 and detailed:
            return 1  # every error is 1 under --detailed-exitcode: 2 means changes pending
        raise
    from handler.adapters.log import OFF, configure_logging  # noqa: PLC0415 - the CLI's own setup

    configure_logging("INFO" if args.verbose else OFF)
    io = _Io(out or sys.stdout, answers, str(args.template))
    env = os.environ if environ is None else environ
    status, pending = _destroy(args, env, io) if args.destroy else _deploy(args, env, io)
    if not detailed:
        return status
    return 1 if status else (2 if pending else 0)


def _check_usage(parser: argparse.ArgumentParser, args: argparse.Namespace, answers: TextIO) -> None:
    """The combinations that make no sense, and an ``--apply`` that could ask no one (usage errors)."""
    if args.json and args.apply:
        parser.error("--json prints the plan: run --apply without it")
    if args.detailed_exitcode and args.apply:
        parser.error("--detailed-exitcode is for a plan (whether it has changes): run --apply without it")
    if args.auto_approve and not args.apply:
        parser.error("--auto-approve goes with --apply")
    if args.no_doctor and not args.apply:
        parser.error("--no-doctor goes with --apply: a plan runs no doctor")
    if args.apply and not args.auto_approve and not _is_terminal(answers):
        parser.error(
            "--apply asks for confirmation, and stdin is not a terminal: add --auto-approve to apply without "
            "asking (nothing was done)"
        )


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False


class _Stop(Exception):
    """Deploy stops before any call with this exit status; the reasons are already on stderr."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True, slots=True)
class _Ready:
    """Everything checked before the first call: what to deploy, the code, how to connect, what to warn of."""

    desired: Desired
    code: bytes
    connected: Connection
    warnings: list[Problem]


def _prepare(args: argparse.Namespace, env: Mapping[str, str], io: _Io) -> _Ready:
    """The template, every variable, the keys and endpoints (all problems at once), then the zip; ``_Stop``
    with 2 for a configuration error, 1 for a build that failed."""
    template = _template(args, io)
    problems: list[str] = []
    warnings = template.warnings()
    try:
        envs, _role = resolved_function(template, env)
        warnings += resolved_warnings(envs)
    except TemplateError as exc:
        problems += [f"{io.source}: {problem}" for problem in exc.problems]
    connected, refused = _connection(args, env, template)
    problems += [str(error) for error in refused]
    if problems or connected is None:
        sys.stderr.writelines(f"deploy: {problem}\n" for problem in problems)
        raise _Stop(2)
    _warn(io, warnings)
    try:
        code = _code(args.zip)
        desired = desired_state(template, env, code=code)
    except TemplateError as exc:
        sys.stderr.writelines(f"deploy: {io.source}: {problem}\n" for problem in exc.problems)
        raise _Stop(2) from None
    except ConfigurationError as exc:
        sys.stderr.write(f"deploy: {exc}\n")
        raise _Stop(2) from None
    except DeployError as exc:
        sys.stderr.write(f"deploy: {exc.message}\n")
        raise _Stop(1) from None
    return _Ready(desired, code, connected, warnings)


def _deploy(args: argparse.Namespace, env: Mapping[str, str], io: _Io) -> tuple[int, bool]:
    """The deployment's plan, and ``--apply``: (exit status, whether the plan has changes)."""
    try:
        ready = _prepare(args, env, io)
    except _Stop as stop:
        return stop.status, False
    desired = ready.desired
    mask(ready.connected.credentials, [desired.config.envs[name] for name in desired.hidden])
    # The zip travels inline (several MB as base64): give the upload time.
    with httpx.Client(timeout=httpx.Timeout(120.0, connect=10.0)) as http:
        client = vefaas_client(ready.connected, http, region=desired.region)
        lifecycle = None
        if desired.lifecycle is not None:
            lifecycle = lifecycle_client(ready.connected, http, region=desired.region)
        try:
            plan = make_plan(desired, client, lifecycle)
            if not _approved(plan, args, io, ready.warnings):
                if args.apply and not plan.steps:  # deployed already: the doctor still checks it
                    return _checked(args, env, io, ready), False
                return (1 if args.apply and plan.steps else 0), bool(plan.steps)
            function_id = apply_plan(
                plan,
                client,
                zip_base64=lambda: _base64(ready.code),
                out=io.out,
                poll_seconds=args.poll_seconds,
                release_timeout=args.release_timeout,
                lifecycle=lifecycle,
            )
        except ApiError as exc:
            return _failed(explain(exc, exc.action, desired)), True
        except DeployError as exc:
            return _failed(exc.message), True
    timers = ", ".join(t.name for t in desired.timers) or "no timers"
    io.out.write(f"Deployed {desired.config.name} (id {function_id}) with {timers}.\n")
    return _checked(args, env, io, ready), False


def _checked(args: argparse.Namespace, env: Mapping[str, str], io: _Io, ready: _Ready) -> int:
    """After an apply: 0, or the doctor's verdict on the deployed settings (1 when a check failed)."""
    if args.no_doctor:
        return 0
    from exporter_tools.deploy.checkup import check_deployment  # noqa: PLC0415 - only after an apply

    config = ready.desired.config
    if check_deployment(config.name, config.envs, ready.connected, env, out=io.out):
        return 0
    sys.stderr.write(
        "deploy: the deployment is done, but a doctor's check failed: fix what each ✗ row says, then check "
        "again with exporter-tools doctor, or deploy again if the fix changes template.yaml or a value it reads\n"
    )
    return 1


def _destroy(args: argparse.Namespace, env: Mapping[str, str], io: _Io) -> tuple[int, bool]:
    """The removal's plan, and ``--apply``: no ``${env:…}`` is needed and no zip is built."""
    try:
        template = _template(args, io)
    except _Stop as stop:
        return stop.status, False
    connected, refused = _connection(args, env, template)
    if connected is None:
        sys.stderr.writelines(f"deploy: {error}\n" for error in refused)
        return 2, False
    warnings = [w for w in template.warnings() if w.path == "region"]
    _warn(io, warnings)
    mask(connected.credentials, [])
    with httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0)) as http:
        client = vefaas_client(connected, http, region=template.region)
        try:
            plan = plan_destroy(template.function.name, template.region, client)
            if not _approved(plan, args, io, warnings):
                return (1 if args.apply and plan.steps else 0), bool(plan.steps)
            apply_destroy(plan, client, out=io.out)
        except ApiError as exc:
            return _failed(f"{exc.action} failed: {exc.code}: {exc.message}"), True
        except DeployError as exc:
            return _failed(exc.message), True
    io.out.write(
        f"Destroyed {plan.name}: the function and its timers are deleted; the bucket and the exports are kept.\n"
    )
    return 0, False


def _connection(
    args: argparse.Namespace, env: Mapping[str, str], template: Template
) -> tuple[Connection | None, list[ConfigurationError]]:
    return connection(env, region=template.region, endpoint=args.endpoint, tos_endpoint=args.tos_endpoint)


def _template(args: argparse.Namespace, io: _Io) -> Template:
    try:
        return load_template(args.template)
    except TemplateError as exc:
        sys.stderr.writelines(f"deploy: {io.source}: {problem}\n" for problem in exc.problems)
        raise _Stop(2) from None


def _warn(io: _Io, warnings: Sequence[Problem]) -> None:
    sys.stderr.writelines(f"deploy: {io.source}: warning: {warning}\n" for warning in warnings)


def _failed(message: str) -> int:
    from handler.adapters.log import redactor  # noqa: PLC0415

    sys.stderr.write(f"deploy: {redactor.mask_text(message)}\n")
    return 1


def _approved(
    plan: Plan | DestroyPlan, args: argparse.Namespace, io: _Io, warnings: Sequence[Problem]
) -> bool:
    """Print the plan; True when its writes are to be made now: ``--apply`` with ``--auto-approve``, or the
    answer ``yes`` on the terminal (anything else, or end of input, or Ctrl-C cancels: nothing is written)."""
    if args.json:
        io.out.write(json.dumps(plan.to_json(warnings=[str(w) for w in warnings]), indent=2) + "\n")
        return False
    if not (args.apply and plan.steps):
        io.out.write(plan.render())
        return False
    if args.auto_approve:
        io.out.write(plan.render(mode="apply"))
        return True
    io.out.write(plan.render(mode="confirm"))
    count = len(plan.steps)
    io.out.write(
        f"Make {'this call' if count == 1 else f'these {count} calls'} in {plan.region}? Only 'yes' is accepted: "
    )
    io.out.flush()
    try:
        answer = io.answers.readline()
    except KeyboardInterrupt:
        answer = ""
    if answer.strip() != "yes":
        io.out.write("\n" if not answer.endswith("\n") else "")
        sys.stderr.write("deploy: cancelled: nothing was written\n")
        return False
    io.out.write("applying:\n")
    return True


def _code(zip_path: Path | None) -> bytes:
    """The zip to deploy: the given file, or a fresh reproducible build of dist/function.zip; checked
    (``ConfigurationError`` naming the file) before any call: a zip the runtime could not start is refused."""
    from exporter_tools.deploy import package  # noqa: PLC0415 - pip and zipping only when deploying

    if zip_path is not None:
        try:
            data = zip_path.read_bytes()
        except OSError as exc:
            msg = f"cannot read the zip {zip_path}: {exc.strerror}"
            raise ConfigurationError(msg, source="--zip") from None
        check_zip(data, source=str(zip_path))
        return data
    try:
        built = package.build_package(package.DEFAULT_OUTPUT, cache=package.DEFAULT_CACHE)
    except package.PackageSettingError:
        raise  # a configuration error (SOURCE_DATE_EPOCH): exit 2
    except package.PackageError as exc:
        raise DeployError(exc.message) from None
    sys.stderr.write(built.summary())
    data = built.path.read_bytes()
    check_zip(data, source=str(built.path))
    return data


def _base64(code: bytes) -> str:
    import base64  # noqa: PLC0415

    return base64.b64encode(code).decode("ascii")
