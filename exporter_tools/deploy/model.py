"""The model of ``template.yaml``: where to deploy, the function, its timers and the exports' storage classes
(``storage``, its own module). Field names are the YAML keys.

One pydantic model describes the file, and ``template.schema.json`` is generated from it so that editors
validate as one types. Every error names the field's path (``timers[1].crontab``) and what was expected there.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt

from exporter_tools.deploy.crontab import check_crontab
from exporter_tools.deploy.references import REFERENCE_PATTERN, env_references, references_only
from exporter_tools.deploy.storage import COLD_ARCHIVE_REGIONS, RESTORE_BEFORE_READ, StorageSpec
from handler.errors import ConfigurationError

__all__ = [
    "CODE_DIGEST_VARIABLE",
    "DEFAULT_TEMPLATE",
    "KNOWN_REGIONS",
    "RESERVED_VARIABLES",
    "RUNTIME",
    "TIMEOUT_VARIABLE",
    "FunctionSpec",
    "Problem",
    "StorageSpec",
    "Template",
    "TemplateError",
    "TemplateUnreadable",
    "TimerSpec",
]

DEFAULT_TEMPLATE = "template.yaml"
RUNTIME = "python3.12/v1"
# Set by deploy itself, so the template may not: the deployed code's digest (how deploy tells whether the code
# changed), and the function's time budget (the platform's context does not tell the function its timeout).
CODE_DIGEST_VARIABLE = "EXPORTER_CODE_SHA256"
TIMEOUT_VARIABLE = "FUNCTION_TIMEOUT_SECONDS"
RESERVED_VARIABLES = (CODE_DIGEST_VARIABLE, TIMEOUT_VARIABLE)

_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{3,63}$")
_TIMER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# Regions where both ECS and veFaaS are believed to run (the consoles' region lists; not confirmed by
# docs/facts.md): a region outside it is a warning, never a refusal. The signature scope names the region.
_REGION = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)+$")
KNOWN_REGIONS = (
    "cn-beijing",
    "cn-shanghai",
    "cn-guangzhou",
    "cn-hongkong",
    "ap-southeast-1",
    "ap-southeast-3",
)
_ROLE = re.compile(rf"^trn:iam::(\d+|{REFERENCE_PATTERN}):role/[A-Za-z0-9+=,.@_-]{{1,64}}$")
_ACCESS_KEY_VARIABLES = ("VOLCENGINE_ACCESS_KEY", "VOLCENGINE_SECRET_KEY", "VOLC_ACCESSKEY", "VOLC_SECRETKEY")


# ---------------------------------------------------------------------------------------------------------
# Problems: what is wrong with a template, each naming the field's path.


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong (or suspicious) in the template: the field's path and what was expected there."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class TemplateError(ConfigurationError):
    """The template cannot be used; ``problems`` lists every reason, each naming the field's path."""

    def __init__(self, problems: Sequence[Problem], *, source: str = DEFAULT_TEMPLATE) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        count = len(self.problems)
        super().__init__(f"{count} problem{'' if count == 1 else 's'}:\n{lines}", source=source)


class TemplateUnreadable(TemplateError):
    """The file cannot be read at all (missing, a directory, no permission): nothing was checked."""


# ---------------------------------------------------------------------------------------------------------
# The model. Field names are the YAML keys.


def _text(value: object) -> object:
    """YAML scalars that mean a string: numbers become their text; a boolean or null is refused (quote it)."""
    if isinstance(value, bool) or value is None:
        shown = json.dumps(value)
        msg = (
            f"expected a string, got {shown}: quote it (YAML reads unquoted yes/no/true/false/null specially)"
        )
        raise ValueError(msg)
    if isinstance(value, int | float):
        return str(value)
    return value


def _function_name(value: str) -> str:
    if not _FUNCTION_NAME.match(value):
        msg = f"expected 4-64 letters, digits, '-' or '_', starting with a letter or digit, got {value!r}"
        raise ValueError(msg)
    return value


def _timer_name(value: str) -> str:
    if not _TIMER_NAME.match(value):
        msg = f"expected 1-64 letters, digits, '-' or '_', starting with a letter or digit, got {value!r}"
        raise ValueError(msg)
    return value


def _region(value: str) -> str:
    if not _REGION.match(value):
        msg = f"expected a region id (lowercase letters and digits joined by '-'), like cn-beijing, got {value!r}"
        raise ValueError(msg)
    return value


def _unknown_region(region: str) -> list[Problem]:
    """A region outside ``KNOWN_REGIONS`` (a typo, or a region newer than the list), with a near miss."""
    if region in KNOWN_REGIONS:
        return []
    close = difflib.get_close_matches(region, KNOWN_REGIONS, n=1, cutoff=0.85)
    hint = f"did you mean {close[0]}? " if close else ""
    msg = (
        f"{region!r} is not one of the known regions ({', '.join(KNOWN_REGIONS)}): {hint}deploy uses it as "
        "written, so check that ECS and veFaaS run there"
    )
    return [Problem("region", msg)]


def _short_timeout(function: FunctionSpec) -> list[Problem]:
    """A timeout below the smallest workable time budget for the template's own settings (values written in
    the template; a ``${env:…}`` one counts as its default)."""
    from handler.core.budget import smallest_workable_budget  # noqa: PLC0415 - only when validating
    from handler.models.settings import Settings  # noqa: PLC0415

    environment = {
        name: value
        for name, value in function.environment.items()
        if not env_references(value) and name != "SSL_CERT_FILE"  # a path on the function's machine
    }
    try:
        settings = Settings.from_env(environment)
    except ConfigurationError:
        return []  # refused as an error already (checks.cross_checks)
    smallest = smallest_workable_budget(settings)
    if function.timeout_seconds >= smallest:
        return []
    msg = (
        f"{function.timeout_seconds} s is below {smallest:g} s, the smallest time budget that leaves the "
        "look-ups before the first export their time (docs/how-it-works.md, The time budget): an export begins only when "
        "the API answers at once"
    )
    return [Problem("function.timeout_seconds", msg)]


def _memory(value: int) -> int:
    if not (512 <= value <= 4096 and value % 512 == 0):
        msg = f"expected 512 to 4096 in steps of 512 (512, 1024, 1536, ...), got {value}"
        raise ValueError(msg)
    return value


def _timeout(value: int) -> int:
    if not 1 <= value <= 900:
        msg = f"expected 1 to 900 seconds, got {value}"
        raise ValueError(msg)
    return value


def _role(value: str) -> str:
    references_only(value)
    if not _ROLE.match(value):
        msg = (
            "expected trn:iam::<account id>:role/<role name>, like "
            f"trn:iam::2100000000:role/VefaasEcsExportRole (the account id may be ${{env:NAME}}), got {value!r}"
        )
        raise ValueError(msg)
    return value


def _variable_name(value: str) -> str:
    if not _VARIABLE_NAME.match(value):
        msg = f"expected a variable name (letters, digits and '_', not starting with a digit), got {value!r}"
        raise ValueError(msg)
    if value in RESERVED_VARIABLES:
        source = "function.timeout_seconds" if value == TIMEOUT_VARIABLE else "the code's digest"
        msg = f"{value} is set by deploy itself, from {source}: remove it"
        raise ValueError(msg)
    return value


def _tag_key(value: str) -> str:
    if not 1 <= len(value) <= 128:
        msg = f"expected a tag key of 1-128 characters, got {len(value)}"
        raise ValueError(msg)
    return value


def _tag_value(value: str) -> str:
    if len(value) > 256:
        msg = f"expected a tag value of at most 256 characters, got {len(value)}"
        raise ValueError(msg)
    return value


def _retries(value: int) -> int:
    if not 0 <= value <= 10:
        msg = f"expected 0 to 10 retries, got {value}"
        raise ValueError(msg)
    return value


def _short(limit: int) -> AfterValidator:
    def check(value: str) -> str:
        if len(value) > limit:
            msg = f"expected at most {limit} characters, got {len(value)}"
            raise ValueError(msg)
        return value

    return AfterValidator(check)


EnvironmentValue = Annotated[str, BeforeValidator(_text), AfterValidator(references_only)]
VariableName = Annotated[str, AfterValidator(_variable_name)]
TagKey = Annotated[str, BeforeValidator(_text), AfterValidator(_tag_key)]
TagValue = Annotated[str, BeforeValidator(_text), AfterValidator(_tag_value)]


class TimerSpec(BaseModel):
    """A veFaaS timer trigger of the function: when it fires, and the payload it sends."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[
        str,
        AfterValidator(_timer_name),
        Field(
            description="The timer's name, unique within the function (it cannot be renamed: a new name "
            "creates a new timer).",
            json_schema_extra={"pattern": _TIMER_NAME.pattern},
        ),
    ]
    crontab: Annotated[
        str,
        AfterValidator(check_crontab),
        Field(
            description="Five fields: minute hour day-of-month month day-of-week, like '0 3 * * *'. "
            "Quote it: YAML reads a leading '*' as an alias.",
            examples=["0 3 * * *", "*/15 * * * *"],
            json_schema_extra={"pattern": r"^\s*\S+(\s+\S+){4}\s*$"},
        ),
    ]
    payload: Annotated[
        dict[str, Any] | None,
        Field(
            description="What the timer sends, as an object (it is sent as a JSON string): ImageIds, "
            "TOSBucket, TOSPrefix, LookbackHours, ImageNamePrefix, Tags. Empty: scan with the defaults."
        ),
    ] = None
    enabled: Annotated[StrictBool, Field(description="Whether the timer fires.")] = True
    retries: Annotated[
        StrictInt,
        AfterValidator(_retries),
        Field(
            description="How many times the platform retries a failed invocation (0-10).",
            json_schema_extra={"minimum": 0, "maximum": 10},
        ),
    ] = 0
    concurrency: Annotated[
        StrictBool,
        Field(
            description="Whether a firing may start while the previous one still runs (EnableConcurrency)."
        ),
    ] = False
    description: Annotated[str, _short(256), Field(description="Shown in the console.")] = ""

    @property
    def payload_text(self) -> str:
        """The payload as the timer sends it: a JSON string, keys sorted ("" when there is none)."""
        if not self.payload:
            return ""
        return json.dumps(self.payload, sort_keys=True, ensure_ascii=False)


class FunctionSpec(BaseModel):
    """The veFaaS function: its name (unique per account and region), size, identity and environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[
        str,
        AfterValidator(_function_name),
        Field(
            description="The function's name: deploy finds the function by this exact name.",
            json_schema_extra={"pattern": _FUNCTION_NAME.pattern},
        ),
    ]
    runtime: Annotated[
        Literal["python3.12/v1"], Field(description="The veFaaS runtime; the zip is built for it.")
    ] = "python3.12/v1"
    memory_mb: Annotated[
        StrictInt,
        AfterValidator(_memory),
        Field(
            description="Memory per instance: 512 to 4096 MB in steps of 512.",
            json_schema_extra={"minimum": 512, "maximum": 4096, "multipleOf": 512},
        ),
    ] = 512
    timeout_seconds: Annotated[
        StrictInt,
        AfterValidator(_timeout),
        Field(
            description="How long one invocation may run (1-900 s); also the function's own time budget.",
            json_schema_extra={"minimum": 1, "maximum": 900},
        ),
    ] = 900
    role: Annotated[
        str | None,
        AfterValidator(lambda value: None if value is None else _role(value)),
        Field(
            description="The IAM role the function runs as (recommended over access keys): "
            "trn:iam::<account id>:role/<name>; the account id may be ${env:NAME}.",
            examples=["trn:iam::${env:VOLCENGINE_ACCOUNT_ID}:role/VefaasEcsExportRole"],
        ),
    ] = None
    description: Annotated[str, _short(1000), Field(description="Shown in the console.")] = ""
    tags: Annotated[dict[TagKey, TagValue], Field(description="Tags on the function.")] = Field(
        default_factory=dict
    )
    environment: Annotated[
        dict[VariableName, EnvironmentValue],
        Field(
            description="The function's environment (docs/configuration.md). A value may say ${env:NAME} or "
            "${env:NAME:-default} to take it from the deployer's environment; an entry that comes out empty "
            "is left out."
        ),
    ] = Field(default_factory=dict)


def _storage_warnings(template: Template) -> list[Problem]:
    """A class the region may not offer, a class whose objects cannot be read until restored, a section that
    removes the rule, and timers whose exports the rule does not cover (another bucket or prefix in their
    payload than the environment's)."""
    storage = template.storage
    if storage is None:
        return []
    found = [
        Problem(
            f"storage.transitions[{index}].storage_class",
            f"COLD_ARCHIVE is offered in {' and '.join(COLD_ARCHIVE_REGIONS)} only, not {template.region}: "
            "TOS may refuse the rule",
        )
        for index, transition in enumerate(storage.transitions)
        if transition.storage_class == "COLD_ARCHIVE" and template.region not in COLD_ARCHIVE_REGIONS
    ]
    archived = next((t for t in storage.transitions if t.storage_class in RESTORE_BEFORE_READ), None)
    if archived is not None:
        index = storage.transitions.index(archived)
        found.append(
            Problem(
                f"storage.transitions[{index}].storage_class",
                f"an object in {archived.storage_class} must be restored before it can be read: from "
                f"{archived.after_days} days on, the exports' files and manifests cannot be read as they are "
                "(status, restores and the drill read them)",
            )
        )
    if storage.empty:
        found.append(
            Problem(
                "storage",
                "no transitions and no abort_incomplete_upload_days: deploy removes this deployment's "
                "lifecycle rule from the bucket, if it has one",
            )
        )
    from handler.models.settings import Settings  # noqa: PLC0415 - only when validating

    env = template.function.environment
    default_prefix = str(Settings.model_fields["tos_prefix"].default)
    bucket, prefix = env.get("EXPORT_TOS_BUCKET", ""), env.get("EXPORT_TOS_PREFIX", default_prefix)
    for index, timer in enumerate(template.timers):
        payload = timer.payload or {}
        for field, covered in (("TOSBucket", bucket), ("TOSPrefix", prefix)):
            named = payload.get(field)
            if named is not None and not env_references(covered) and str(named) != covered:
                found.append(
                    Problem(
                        f"timers[{index}].payload.{field}",
                        f"{named!r} is not the environment's {covered!r}: the storage rule does not cover "
                        "this timer's exports",
                    )
                )
    return found


class Template(BaseModel):
    """``template.yaml``: where to deploy, the function, its timers, and the exports' storage classes."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="vefaas-image-exporter deployment template",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    region: Annotated[
        str,
        AfterValidator(_region),
        Field(
            description="The region to deploy into (and of the images); one outside "
            f"{', '.join(KNOWN_REGIONS)} is a warning.",
            examples=["cn-beijing"],
            json_schema_extra={"pattern": _REGION.pattern},
        ),
    ]
    function: FunctionSpec
    timers: Annotated[list[TimerSpec], Field(description="The function's timer triggers.")] = Field(
        default_factory=list
    )
    storage: Annotated[
        StorageSpec | None,
        Field(
            description="The exports' storage classes: deploy keeps one lifecycle rule on EXPORT_TOS_BUCKET "
            "for the EXPORT_TOS_PREFIX's files and manifests, and leaves the bucket's other rules as they are. "
            "Absent: deploy does not touch the bucket's lifecycle."
        ),
    ] = None

    def warnings(self) -> list[Problem]:
        """Things that are valid but probably not meant."""
        found = _unknown_region(self.region) + _short_timeout(self.function) + _storage_warnings(self)
        env = self.function.environment
        keys = [name for name in _ACCESS_KEY_VARIABLES if name in env]
        if keys:
            found.extend(
                Problem(
                    f"function.environment.{name}",
                    "access keys in the function's environment: prefer a role (function.role), whose "
                    "credentials rotate and are never written anywhere",
                )
                for name in keys
            )
        elif self.function.role is None:
            found.append(
                Problem(
                    "function.role",
                    "no role and no access keys: the function will have no credentials to call ECS with",
                )
            )
        bucket_everywhere = all(t.payload and "TOSBucket" in t.payload for t in self.timers)
        if "EXPORT_TOS_BUCKET" not in env and not (self.timers and bucket_everywhere):
            found.append(
                Problem(
                    "function.environment",
                    "no EXPORT_TOS_BUCKET: every event will have to name its TOSBucket",
                )
            )
        return found

    def env_variables(self) -> list[tuple[str, bool]]:
        """The deployer's variables the template reads, sorted, each with whether it is required."""
        found: dict[str, bool] = {}
        texts = [*self.function.environment.values(), self.function.role or ""]
        for text in texts:
            for name, default in env_references(text):
                found[name] = found.get(name, False) or default is None
        return sorted(found.items())
