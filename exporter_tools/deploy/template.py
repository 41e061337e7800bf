"""The deployment descriptor ``template.yaml``: its model, its checks, and ``exporter-tools validate-template``.

One pydantic model describes the file, and ``template.schema.json`` is generated from it so that editors
validate as one types. Every error names the field's path (``timers[1].crontab``) and what was expected there.
A value in ``function.environment`` (and the account id in ``function.role``) may say ``${env:NAME}``, or
``${env:NAME:-default}``: deploy fills it in from the deployer's environment, so no secret is written in the file.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
)

from exporter_tools.deploy import tool_arguments
from handler.errors import ConfigurationError

__all__ = [
    "CODE_DIGEST_VARIABLE",
    "DEFAULT_TEMPLATE",
    "RESERVED_VARIABLES",
    "RUNTIME",
    "TIMEOUT_VARIABLE",
    "FunctionSpec",
    "Problem",
    "Template",
    "TemplateError",
    "TimerSpec",
    "check_crontab",
    "env_references",
    "load_template",
    "looks_secret",
    "main",
    "parse_template",
    "resolve_text",
    "schema_text",
]

DEFAULT_TEMPLATE = "template.yaml"
RUNTIME = "python3.12/v1"
# Set by deploy itself, so the template may not: the deployed code's digest (how deploy tells whether the code
# changed), and the function's time budget (the platform's context does not tell the function its timeout).
CODE_DIGEST_VARIABLE = "EXPORTER_CODE_SHA256"
TIMEOUT_VARIABLE = "FUNCTION_TIMEOUT_SECONDS"
RESERVED_VARIABLES = (CODE_DIGEST_VARIABLE, TIMEOUT_VARIABLE)

_REFERENCE = re.compile(r"\$\{env:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_REFERENCE_PATTERN = r"\$\{env:[A-Za-z_][A-Za-z0-9_]*\}"
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{3,63}$")
_TIMER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_REGION = re.compile(r"^[a-z]{2}-[a-z0-9-]+$")
_ROLE = re.compile(rf"^trn:iam::(\d+|{_REFERENCE_PATTERN}):role/[A-Za-z0-9+=,.@_-]{{1,64}}$")
_RESOLVED_ROLE = re.compile(r"^trn:iam::\d+:role/[A-Za-z0-9+=,.@_-]{1,64}$")
_SECRET_NAME = re.compile(
    r"secret|token|passw|credential|private|signature|sign$|(^|_)key$|access_?key|webhook_url", re.IGNORECASE
)
_SECRET_QUERY = re.compile(r"[?&](access_token|token|key|sign|signature|secret)=", re.IGNORECASE)
_TOKEN_LIKE = re.compile(r"^[A-Za-z0-9+/=_-]{32,}$")
_ACCESS_KEY_VARIABLES = ("VOLCENGINE_ACCESS_KEY", "VOLCENGINE_SECRET_KEY", "VOLC_ACCESSKEY", "VOLC_SECRETKEY")


# ---------------------------------------------------------------------------------------------------------
# Crontab: five fields, each a list of *, values, ranges and steps (names for months and days of the week).

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True, slots=True)
class _CronField:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    question_mark: bool = False  # "?" (no specific value) is accepted in the two day fields

    def value(self, text: str) -> int | None:
        upper = text.upper()
        if upper in self.names:
            return self.names.index(upper) + self.low
        return int(text) if text.isdigit() else None

    @property
    def expected(self) -> str:
        names = f" or {self.names[0]}-{self.names[-1]}" if self.names else ""
        return f"{self.low}-{self.high}{names}"


_CRON_FIELDS = (
    _CronField("minute", 0, 59),
    _CronField("hour", 0, 23),
    _CronField("day of month", 1, 31, question_mark=True),
    _CronField("month", 1, 12, _MONTHS),
    _CronField("day of week", 0, 6, _DAYS, question_mark=True),
)


def check_crontab(text: str) -> str:
    """The crontab with its fields single-spaced; ``ValueError`` saying which field is wrong and why."""
    fields = text.split()
    if len(fields) != len(_CRON_FIELDS):
        msg = (
            "expected five fields (minute hour day-of-month month day-of-week) like '0 3 * * *', "
            f"got {len(fields)} in {text!r}"
        )
        raise ValueError(msg)
    for position, (field, spec) in enumerate(zip(fields, _CRON_FIELDS, strict=True), start=1):
        for item in field.split(","):
            problem = _cron_item_problem(item, spec)
            if problem:
                msg = f"field {position} ({spec.name}) {item!r}: {problem}"
                raise ValueError(msg)
    return " ".join(fields)


def _cron_item_problem(item: str, spec: _CronField) -> str | None:
    """Why one list item of a crontab field is wrong, or ``None``."""
    if not item:
        return "expected a value between the commas"
    if item == "?":
        return None if spec.question_mark else "'?' is only allowed in the day fields: expected *"
    base, slash, step = item.partition("/")
    if slash and not (step.isdigit() and 1 <= int(step) <= spec.high):
        return f"expected a step from 1 to {spec.high} after '/'"
    if base == "*":
        return None
    return _cron_range_problem(base, spec, stepped=bool(slash))


def _cron_range_problem(base: str, spec: _CronField, *, stepped: bool) -> str | None:
    """Why a value or range ``a-b`` of a crontab field is wrong, or ``None``."""
    first, dash, last = base.partition("-")
    if stepped and not dash:
        return f"a step needs * or a range before it, like */15 or {spec.low}-{spec.high}/2"
    start = spec.value(first)
    end = spec.value(last) if dash else start
    if start is None or end is None or not (spec.low <= start <= spec.high and spec.low <= end <= spec.high):
        return f"expected *, a value {spec.expected}, a range a-b or a step */n"
    return "expected a range that goes up (a-b with a <= b)" if start > end else None


# ---------------------------------------------------------------------------------------------------------
# ${env:NAME} references.


def env_references(text: str) -> list[tuple[str, str | None]]:
    """Every ``${env:NAME}`` in ``text``, as ``(NAME, default)`` (``None`` when it has no default)."""
    return [(m["name"], m["default"]) for m in _REFERENCE.finditer(text)]


def resolve_text(text: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """``text`` with each reference replaced by the variable's value (or its default), and the names of the
    variables that are unset and have no default (an empty variable counts as unset)."""
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        value = environ.get(match["name"], "")
        if value:
            return value
        if match["default"] is not None:
            return str(match["default"])
        missing.append(match["name"])
        return ""

    return _REFERENCE.sub(replace, text), missing


def _references_only(text: str) -> str:
    if "${" in _REFERENCE.sub("", text):
        msg = "expected ${env:NAME} or ${env:NAME:-default} after '$'; write the value itself otherwise"
        raise ValueError(msg)
    return text


def looks_secret(name: str, value: str = "") -> bool:
    """True when a variable's name or value looks like a credential, so that it is never printed."""
    if _SECRET_NAME.search(name):
        return True
    return (
        value.startswith("whsec_")
        or bool(_SECRET_QUERY.search(value))
        or bool(_TOKEN_LIKE.match(value) and re.search(r"\d", value) and re.search(r"[A-Za-z]", value))
    )


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
        msg = f"expected a region id like cn-beijing, cn-shanghai or ap-southeast-1, got {value!r}"
        raise ValueError(msg)
    return value


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
    _references_only(value)
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


EnvironmentValue = Annotated[str, BeforeValidator(_text), AfterValidator(_references_only)]
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
            description="The function's environment (README, Configuration). A value may say ${env:NAME} or "
            "${env:NAME:-default} to take it from the deployer's environment; an entry that comes out empty "
            "is left out."
        ),
    ] = Field(default_factory=dict)


class Template(BaseModel):
    """``template.yaml``: where to deploy, the function, and its timers."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="vefaas-image-exporter deployment template",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    region: Annotated[
        str,
        AfterValidator(_region),
        Field(description="The region to deploy into (and of the images).", examples=["cn-beijing"]),
    ]
    function: FunctionSpec
    timers: Annotated[list[TimerSpec], Field(description="The function's timer triggers.")] = Field(
        default_factory=list
    )

    def warnings(self) -> list[Problem]:
        """Things that are valid but probably not meant."""
        found: list[Problem] = []
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


# ---------------------------------------------------------------------------------------------------------
# Loading and errors.


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


def parse_template(document: object, *, source: str = DEFAULT_TEMPLATE) -> Template:
    """Validate a loaded document as a template; ``TemplateError`` lists every problem with its path."""
    problems: list[Problem] = []
    template: Template | None = None
    try:
        template = Template.model_validate(document)
    except ValidationError as exc:
        problems.extend(_problem(error) for error in exc.errors(include_url=False))
    problems.extend(_cross_checks(document))
    if problems or template is None:
        raise TemplateError(problems, source=source)
    return template


def load_template(path: str | Path) -> Template:
    """Read and validate a template file (YAML); ``TemplateError`` for anything wrong with it."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError([Problem("", f"cannot read the file: {exc.strerror}")], source=source) from None
    except UnicodeDecodeError:
        raise TemplateError([Problem("", "expected UTF-8 text")], source=source) from None
    return parse_template(_load_yaml(text, source), source=source)


def _load_yaml(text: str, source: str) -> object:
    try:
        import yaml  # noqa: PLC0415 - a deploy-time dependency (the "deploy" extra), never in the function
    except ImportError:  # pragma: no cover - the dev and deploy extras install it
        msg = "reading template.yaml needs PyYAML: pip install 'vefaas-image-exporter[deploy]'"
        raise TemplateError([Problem("", msg)], source=source) from None

    class _UniqueKeyLoader(yaml.SafeLoader):
        """A SafeLoader that refuses a key written twice in one mapping (YAML itself keeps the last)."""

    def construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in seen:
                mark = key_node.start_mark
                msg = f"line {mark.line + 1}, column {mark.column + 1}: the key {key!r} appears twice"
                raise TemplateError([Problem("", msg)], source=source)
            seen.add(key)
        return dict(loader.construct_pairs(node, deep=True))

    _UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        hint = " (quote values that start with '*', like '*/15 * * * *')" if "alias" in str(exc) else ""
        msg = f"{where}not valid YAML: {exc.problem}{hint}"
        raise TemplateError([Problem("", msg)], source=source) from None
    except yaml.YAMLError as exc:
        raise TemplateError([Problem("", f"not valid YAML: {exc}")], source=source) from None
    return document


def _path(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part == "[key]":
            text += " (the key)"
        else:
            text += f".{part}" if text else str(part)
    return text


def _fields_at(loc: Sequence[int | str]) -> list[str]:
    """The field names allowed where an unknown key was found (``loc`` is the unknown key's location)."""
    parent = tuple(loc[:-1])
    model: type[BaseModel] | None = None
    if not parent:
        model = Template
    elif parent == ("function",):
        model = FunctionSpec
    elif len(parent) == 2 and parent[0] == "timers":
        model = TimerSpec
    return list(model.model_fields) if model else []


_TYPE_MESSAGES = {
    "missing": "required: this field is missing",
    "string_type": "expected a string",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "dict_type": "expected a mapping (key: value lines)",
    "model_type": "expected a mapping (key: value lines)",
    "model_attributes_type": "expected a mapping (key: value lines)",
    "list_type": "expected a list (lines starting with '- ')",
}


def _problem(error: Mapping[str, Any]) -> Problem:
    """One pydantic error as a path and a plain 'expected …' message."""
    loc = tuple(error["loc"])
    path = _path(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _fields_at(loc)
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return Problem(path, f"unknown field{hint}: expected one of {', '.join(allowed)}")
    if kind == "value_error":
        return Problem(path, str(error["msg"]).removeprefix("Value error, "))
    message = _TYPE_MESSAGES.get(kind) or str(error["msg"]).replace("Input should be", "expected")
    given = error.get("input")
    secret_place = len(loc) >= 2 and loc[:2] == ("function", "environment")
    if kind != "missing" and not secret_place and isinstance(given, str | int | float | bool):
        message += f", got {json.dumps(given, ensure_ascii=False)}"
    return Problem(path, message)


def _cross_checks(document: object) -> list[Problem]:
    """What one field cannot check alone: unique timer names, timer payloads, literal settings.

    Runs on the raw document, so these problems are reported together with the model's own."""
    problems: list[Problem] = []
    raw = document if isinstance(document, Mapping) else {}
    timers = raw.get("timers")
    first_index: dict[str, int] = {}
    for index, timer in enumerate(timers if isinstance(timers, list) else []):
        if not isinstance(timer, Mapping):
            continue
        name = timer.get("name")
        if isinstance(name, str):
            if name in first_index:
                problems.append(
                    Problem(
                        f"timers[{index}].name",
                        f"expected a unique name: {name!r} is already timers[{first_index[name]}].name",
                    )
                )
            first_index.setdefault(name, index)
        payload = timer.get("payload")
        if isinstance(payload, Mapping) and payload:
            problems.extend(_payload_problems(payload, index))
    function = raw.get("function")
    environment = function.get("environment") if isinstance(function, Mapping) else None
    if isinstance(environment, Mapping):
        problems.extend(_settings_problems(environment))
    return problems


def _payload_problems(payload: Mapping[str, Any], index: int) -> list[Problem]:
    """Check a timer's payload with the function's own event parser, so the two can never disagree."""
    from handler.errors import InvalidEvent  # noqa: PLC0415
    from handler.models.events import parse_event  # noqa: PLC0415 - the runtime's parser, only when needed

    event = {
        "specversion": "1.0",
        "id": "template-check",
        "source": "/faas/event/timer/template-check",
        "type": "faas.timer.event",
        "data": json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str),
    }
    try:
        parse_event(event)
    except InvalidEvent as exc:
        where = exc.field.removeprefix("data").lstrip(".")
        path = f"timers[{index}].payload" + (f".{where}" if where and not where.startswith("[") else where)
        message = exc.message.removeprefix(f"{exc.field}: ") if exc.field else exc.message
        return [Problem(path, message)]
    return []


def _settings_problems(environment: Mapping[Any, Any]) -> list[Problem]:
    """Check the literal values (those without ``${env:…}``) as the function will read them."""
    from handler.models.settings import Settings  # noqa: PLC0415

    literal = {
        str(name): str(value)
        for name, value in environment.items()
        if isinstance(value, str | int | float) and not isinstance(value, bool)
        if not env_references(str(value))
    }
    try:
        Settings.from_env(literal)
    except ConfigurationError as exc:
        return [Problem(f"function.environment.{exc.source}", exc.message.removeprefix(f"{exc.source}: "))]
    return []


def resolved_role(template: Template, environ: Mapping[str, str]) -> str | None:
    """The role with its ``${env:…}`` filled in; ``TemplateError`` when a variable is missing or wrong."""
    role = template.function.role
    if role is None:
        return None
    text, missing = resolve_text(role, environ)
    if missing:
        raise TemplateError([_missing_problem("function.role", name) for name in missing])
    if not _RESOLVED_ROLE.match(text):
        variables = ", ".join(name for name, _ in env_references(role))
        msg = f"expected trn:iam::<account id>:role/<name> once {variables} is filled in: the account id must be digits"
        raise TemplateError([Problem("function.role", msg)])
    return text


def resolved_environment(template: Template, environ: Mapping[str, str]) -> dict[str, str]:
    """The function's environment with every ``${env:…}`` filled in and empty entries left out.

    Raises ``TemplateError`` naming each missing variable (and the entry that needs it), never a value.
    """
    values: dict[str, str] = {}
    problems: list[Problem] = []
    for name, raw in template.function.environment.items():
        text, missing = resolve_text(raw, environ)
        problems.extend(_missing_problem(f"function.environment.{name}", variable) for variable in missing)
        if text:
            values[name] = text
    if problems:
        raise TemplateError(problems)
    return values


def _missing_problem(path: str, variable: str) -> Problem:
    return Problem(
        path,
        f"${{env:{variable}}} needs {variable} in the deployer's environment, and it is not set "
        f"(write ${{env:{variable}:-}} to make it optional)",
    )


def schema_text() -> str:
    """``template.schema.json`` as generated from the model (the committed file must equal this)."""
    return json.dumps(Template.model_json_schema(), indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------------------
# exporter-tools validate-template


def main(argv: Sequence[str]) -> int:
    """``validate-template [FILE] [--schema]``: 0 when valid, 1 when not (every problem on stderr), 2 usage."""
    parser = argparse.ArgumentParser(
        prog="exporter-tools validate-template",
        description="Check a deployment template; every error names the field's path and what was expected.",
    )
    parser.add_argument("file", nargs="?", default=DEFAULT_TEMPLATE, help="the template (template.yaml)")
    parser.add_argument(
        "--schema",
        action="store_true",
        help="print the JSON Schema generated from the model (template.schema.json) and exit",
    )
    args = parser.parse_args(tool_arguments(argv))
    if args.schema:
        sys.stdout.write(schema_text())
        return 0
    try:
        template = load_template(args.file)
    except TemplateError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"{args.file}: {problem}\n")
        return 1
    function = template.function
    timers = ", ".join(timer.name for timer in template.timers) or "none"
    sys.stdout.write(
        f"{args.file} is valid: function {function.name} ({function.runtime}, {function.memory_mb} MB, "
        f"{function.timeout_seconds} s) in {template.region}; timers: {timers}\n"
    )
    variables = template.env_variables()
    if variables:
        listed = ", ".join(name + ("" if required else " (optional)") for name, required in variables)
        sys.stdout.write(f"deploy reads from its environment: {listed}\n")
    for warning in template.warnings():
        sys.stderr.write(f"{args.file}: warning: {warning}\n")
    return 0
