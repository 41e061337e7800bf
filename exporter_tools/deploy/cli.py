"""``exporter-tools deploy``: check the template and the zip, print the plan, and ``--apply`` it.

Everything that would fail at run time is refused before the first call: the template, the deployer's
environment (every ``${env:…}`` filled in, then checked with the function's own settings model), the
credentials and the zip (``exporter_tools.deploy.zipcheck``). A ``storage:`` section's rule is read and
written on TOS (``--tos-endpoint``, ``TOS_ENDPOINT``, else the region's public endpoint) with the same keys.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

import httpx

from exporter_tools.deploy import tool_arguments
from exporter_tools.deploy.apply import apply_plan, explain
from exporter_tools.deploy.model import DEFAULT_TEMPLATE, TemplateError
from exporter_tools.deploy.plan import DeployError, Desired, desired_state, make_plan
from exporter_tools.deploy.template import load_template
from exporter_tools.deploy.tos_lifecycle import LifecycleClient
from exporter_tools.deploy.vefaas import VefaasClient
from exporter_tools.deploy.zipcheck import check_zip
from handler.adapters.signing import Credentials
from handler.errors import ApiError, ConfigurationError, NoCredentials

__all__ = ["DEFAULT_ENDPOINT", "build_parser", "main"]

DEFAULT_ENDPOINT = "https://open.volcengineapi.com"


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


def main(argv: Sequence[str], *, environ: Mapping[str, str] | None = None, out: TextIO | None = None) -> int:
    """``deploy [--template FILE] [--zip FILE] [--plan | --apply]``: 0 done, 1 a call or the release failed,
    2 the template, the deployer's environment, the credentials or the zip are wrong (before any call)."""
    args = build_parser().parse_args(tool_arguments(argv))
    env = os.environ if environ is None else environ
    stdout = out or sys.stdout
    from handler.adapters.log import OFF, configure_logging, redactor  # noqa: PLC0415 - the CLI's own setup

    configure_logging("INFO" if args.verbose else OFF)
    try:
        template = load_template(args.template)
        sys.stderr.writelines(f"deploy: {args.template}: warning: {w}\n" for w in template.warnings())
        code = _code(args.zip)
        desired = desired_state(template, env, code=code)
        credentials = _credentials(desired, env)
        gateway = _endpoint(env, args.endpoint)
        tos_endpoint = _tos_endpoint(env, args.tos_endpoint, desired.region)
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
        lifecycle = None
        if desired.lifecycle is not None:
            lifecycle = _lifecycle_client(desired, credentials, tos_endpoint, http, max_rps=max_rps)
        try:
            plan = make_plan(desired, client, lifecycle)
            stdout.write(plan.render(applying=args.apply))
            if args.apply and plan.steps:
                function_id = apply_plan(
                    plan,
                    client,
                    zip_base64=lambda: _base64(code),
                    out=stdout,
                    poll_seconds=args.poll_seconds,
                    release_timeout=args.release_timeout,
                    lifecycle=lifecycle,
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


def _tos_endpoint(environ: Mapping[str, str], given: str | None, region: str) -> str:
    """Where the lifecycle requests go: ``--tos-endpoint``, ``TOS_ENDPOINT``, else the region's public one."""
    from handler.adapters.tos import default_tos_endpoint  # noqa: PLC0415

    endpoint = (given or environ.get("TOS_ENDPOINT") or default_tos_endpoint(region)).rstrip("/")
    if not endpoint.startswith(("https://", "http://")):
        msg = "expected scheme and host, like https://tos-cn-beijing.volces.com"
        raise ConfigurationError(msg, source="TOS_ENDPOINT")
    return endpoint


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
    from handler.adapters.clients import openapi_client  # noqa: PLC0415
    from handler.adapters.pacing import RateLimiter  # noqa: PLC0415
    from handler.adapters.retry import RetryPolicy  # noqa: PLC0415

    api = openapi_client(
        credentials,
        service=SERVICE,
        version=API_VERSION,
        endpoint=gateway,
        region=desired.region,
        # veFaaS's control plane is slower to recover than ECS's: longer waits, the same four attempts.
        policy=RetryPolicy(max_attempts=4, base=0.5, cap=8.0),
        limiter=RateLimiter(max_rps),
        http=http,
    )
    return VefaasClient(api, deadline=time.monotonic() + 1800.0)


def _lifecycle_client(
    desired: Desired, credentials: Credentials, endpoint: str, http: httpx.Client, *, max_rps: float
) -> LifecycleClient:
    """The bucket's lifecycle over TOS: the function's TOS sender (signer, retries, masking), deploy's keys."""
    from handler.adapters.pacing import RateLimiter  # noqa: PLC0415
    from handler.adapters.retry import RetryPolicy  # noqa: PLC0415
    from handler.adapters.tos import tos_sender  # noqa: PLC0415

    sender = tos_sender(
        http=http,
        region=desired.region,
        credentials=credentials,
        policy=RetryPolicy(max_attempts=4, base=0.5, cap=8.0),
        limiter=RateLimiter(max_rps),
    )
    return LifecycleClient(sender, endpoint, deadline=time.monotonic() + 1800.0)
