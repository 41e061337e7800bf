"""What the template wants: the function and timers it describes, with every ``${env:…}`` filled in from the
deployer's environment and checked as the function will read it, and the storage section's lifecycle rule.

Pure: no call is made. ``resolved_function`` runs before the zip is built, so that every missing variable is
named in one run; ``desired_state`` adds the code's digest (``exporter_tools.deploy.plan`` compares the result
with the account). Values that look secret are never shown: ``Desired.shown`` says "(hidden)" instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from exporter_tools.deploy.checks import resolved_problems
from exporter_tools.deploy.lifecycle import LifecycleWanted, wanted_rule
from exporter_tools.deploy.model import (
    CODE_DIGEST_VARIABLE,
    TIMEOUT_VARIABLE,
    Problem,
    Template,
    TemplateError,
)
from exporter_tools.deploy.references import looks_secret
from exporter_tools.deploy.template import resolved_environment, resolved_role
from exporter_tools.deploy.vefaas import FunctionConfig, TimerConfig

__all__ = ["HIDDEN", "Desired", "desired_state", "resolved_function"]

HIDDEN = "(hidden)"


@dataclass(frozen=True, slots=True)
class Desired:
    """The function and timers the template describes, with every ``${env:…}`` filled in."""

    region: str
    config: FunctionConfig
    code_sha256: str
    code_size: int
    timers: tuple[TimerConfig, ...]
    hidden: frozenset[str]  # environment names whose values are never printed
    lifecycle: LifecycleWanted | None = None  # None: no storage section, the bucket is left alone

    def shown(self, name: str, value: str | None) -> str:
        """A value for the plan: quoted, or "(hidden)" when the variable or the value looks secret."""
        if value is None:
            return "(none)"
        if name in self.hidden or looks_secret(name, value):
            return HIDDEN
        return json.dumps(value, ensure_ascii=False)


def resolved_function(template: Template, environ: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
    """The function's environment and role with every ``${env:…}`` filled in, before anything is built or
    called. ``TemplateError`` names every missing variable at once (the environment's and the role's), else
    each value the function would refuse once filled in (checked with the function's own settings model).

    The environment also gets ``VOLCENGINE_REGION`` (the template's region, unless set) and
    ``FUNCTION_TIMEOUT_SECONDS`` (the platform does not tell the function its timeout)."""
    problems: list[Problem] = []
    envs: dict[str, str] = {}
    role: str | None = None
    try:
        envs = resolved_environment(template, environ)
    except TemplateError as exc:
        problems.extend(exc.problems)
    try:
        role = resolved_role(template, environ)
    except TemplateError as exc:
        problems.extend(exc.problems)
    if problems:
        raise TemplateError(problems)
    envs.setdefault("VOLCENGINE_REGION", template.region)
    envs[TIMEOUT_VARIABLE] = str(template.function.timeout_seconds)
    problems = resolved_problems(envs, [timer.payload for timer in template.timers])
    if problems:
        raise TemplateError(problems)
    return envs, role


def desired_state(template: Template, environ: Mapping[str, str], *, code: bytes) -> Desired:
    """The template resolved against the deployer's environment (``resolved_function``, whose
    ``TemplateError`` it raises), with the code's digest in the environment. A ``storage:`` section becomes the
    lifecycle rule for the environment's bucket and prefix.
    """
    envs, role = resolved_function(template, environ)
    digest = hashlib.sha256(code).hexdigest()
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
    lifecycle = _lifecycle_wanted(template, envs)
    return Desired(template.region, config, digest, len(code), timers, hidden, lifecycle)


def _lifecycle_wanted(template: Template, envs: Mapping[str, str]) -> LifecycleWanted | None:
    """The storage section's rule on the bucket and prefix the function exports to (its settings decide)."""
    if template.storage is None:
        return None
    from handler.models.settings import Settings  # noqa: PLC0415 - the function's own reading of them

    settings = Settings.from_env({name: value for name, value in envs.items() if name != "SSL_CERT_FILE"})
    if settings.tos_bucket is None:
        msg = "needs EXPORT_TOS_BUCKET, which came out empty: the lifecycle rule goes on that bucket"
        raise TemplateError([Problem("storage", msg)])
    return wanted_rule(template.storage, bucket=settings.tos_bucket, prefix=settings.tos_prefix)
