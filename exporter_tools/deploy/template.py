"""Loading ``template.yaml``, filling in its ``${env:…}`` references, and ``exporter-tools validate-template``.

The model is ``exporter_tools.deploy.model``; crontabs, references and the checks across fields have their own
modules. Every error names the field's path (``timers[1].crontab``) and what was expected there.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from exporter_tools.deploy import tool_arguments
from exporter_tools.deploy.checks import cross_checks
from exporter_tools.deploy.model import (
    DEFAULT_TEMPLATE,
    FunctionSpec,
    Problem,
    Template,
    TemplateError,
    TemplateUnreadable,
    TimerSpec,
)
from exporter_tools.deploy.references import env_references, resolve_text
from exporter_tools.deploy.storage import StorageSpec, TransitionSpec, refused_field

__all__ = [
    "MAX_YAML_DEPTH",
    "MAX_YAML_INT_DIGITS",
    "load_template",
    "main",
    "parse_template",
    "resolved_environment",
    "resolved_role",
    "schema_text",
]

# Bounds on what the YAML may hold, so that no file can crash the loader: a template nests four levels, and
# its largest integer (memory_mb, a timeout, a number of days) has four or five digits.
MAX_YAML_DEPTH = 64
MAX_YAML_INT_DIGITS = 20

_RESOLVED_ROLE = re.compile(r"^trn:iam::\d+:role/[A-Za-z0-9+=,.@_-]{1,64}$")


def parse_template(document: object, *, source: str = DEFAULT_TEMPLATE) -> Template:
    """Validate a loaded document as a template; ``TemplateError`` lists every problem with its path."""
    problems: list[Problem] = []
    template: Template | None = None
    try:
        template = Template.model_validate(document)
    except ValidationError as exc:
        problems.extend(_problem(error) for error in exc.errors(include_url=False))
    problems.extend(cross_checks(document))
    if problems or template is None:
        raise TemplateError(problems, source=source)
    return template


def load_template(path: str | Path) -> Template:
    """Read and validate a template file (YAML); ``TemplateError`` for anything wrong with it."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateUnreadable(
            [Problem("", f"cannot read the file: {exc.strerror}")], source=source
        ) from None
    except UnicodeDecodeError:
        raise TemplateError([Problem("", "expected UTF-8 text")], source=source) from None
    return parse_template(_load_yaml(text, source), source=source)


def _load_yaml(text: str, source: str) -> object:
    try:
        import yaml  # noqa: PLC0415 - a deploy-time dependency (the "deploy" extra), never in the function
    except ImportError:
        msg = (
            "reading template.yaml needs PyYAML (the PyPI package pyyaml): "
            "pip install -e '.[deploy]' in the repository, or pip install pyyaml"
        )
        raise TemplateError([Problem("", msg)], source=source) from None

    def refuse(mark: Any, message: str) -> TemplateError:
        return TemplateError(
            [Problem("", f"line {mark.line + 1}, column {mark.column + 1}: {message}")], source=source
        )

    class _UniqueKeyLoader(yaml.SafeLoader):
        """A SafeLoader that refuses a key written twice in one mapping (YAML itself keeps the last), a key
        that is a list or a mapping, nesting deeper than ``MAX_YAML_DEPTH`` (counted as the document is
        composed, so a deep one stops there, before any recursion limit) and an integer longer than
        ``MAX_YAML_INT_DIGITS`` digits."""

        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self.depth += 1
            try:
                if self.depth > MAX_YAML_DEPTH:
                    mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                    raise refuse(mark, f"nested more than {MAX_YAML_DEPTH} levels deep")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    def construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "a list" if isinstance(key_node, yaml.SequenceNode) else "a mapping"
                raise refuse(key_node.start_mark, f"a key must be plain text or a number, not {kind}")
            key = loader.construct_object(key_node, deep=True)
            if key in seen:
                mark = key_node.start_mark
                msg = f"line {mark.line + 1}, column {mark.column + 1}: the key {key!r} appears twice"
                raise TemplateError([Problem("", msg)], source=source)
            seen.add(key)
        return dict(loader.construct_pairs(node, deep=True))

    def construct_int(loader: _UniqueKeyLoader, node: yaml.ScalarNode) -> int:
        digits = str(node.value).lstrip("+-").replace("_", "")
        if len(digits) > MAX_YAML_INT_DIGITS:
            raise refuse(node.start_mark, f"an integer of more than {MAX_YAML_INT_DIGITS} digits")
        return int(yaml.SafeLoader.construct_yaml_int(loader, node))

    _UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    _UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", construct_int)
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        hint = " (quote values that start with '*', like '*/15 * * * *')" if _at_star(text, exc) else ""
        msg = f"{where}not valid YAML: {exc.problem}{hint}"
        raise TemplateError([Problem("", msg)], source=source) from None
    except yaml.YAMLError as exc:
        raise TemplateError([Problem("", f"not valid YAML: {exc}")], source=source) from None
    except RecursionError:
        # Aliases can nest what the depth count above saw once: the recursion limit is the last guard.
        msg = f"nested too deep to be read (at most {MAX_YAML_DEPTH} levels)"
        raise TemplateError([Problem("", msg)], source=source) from None
    return document


def _at_star(text: str, exc: Any) -> bool:
    """Whether the YAML error is at (or inside) a plain value starting with ``*``, which YAML reads as an alias."""
    marks = (exc.context_mark, exc.problem_mark)
    return any(mark is not None and text[mark.index : mark.index + 1] == "*" for mark in marks)


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
    elif parent == ("storage",):
        model = StorageSpec
    elif len(parent) == 3 and parent[:2] == ("storage", "transitions"):
        model = TransitionSpec
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
        refused = refused_field(loc)
        if refused:
            return Problem(path, refused)
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


def resolved_role(template: Template, environ: Mapping[str, str]) -> str | None:
    """The role with its ``${env:…}`` filled in; ``TemplateError`` when a variable is missing or wrong."""
    role = template.function.role
    if role is None:
        return None
    text, missing = resolve_text(role, environ)
    if missing:
        raise TemplateError([_missing_account_problem(name) for name in missing])
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
    """A missing variable of the environment: set it, or make it optional (an entry that comes out empty is
    left out, and the template still validates)."""
    return Problem(
        path,
        f"${{env:{variable}}} needs {variable} in the deployer's environment, and it is not set "
        f"(write ${{env:{variable}:-}} to make it optional)",
    )


def _missing_account_problem(variable: str) -> Problem:
    """A missing variable of the role: the account id cannot be optional (a role without one is refused)."""
    return Problem(
        "function.role",
        f"${{env:{variable}}} needs {variable} in the deployer's environment, and it is not set: "
        f"export {variable}=<your account id, digits only>, or write the account id itself in function.role",
    )


def schema_text() -> str:
    """``template.schema.json`` as generated from the model (the committed file must equal this)."""
    return json.dumps(Template.model_json_schema(), indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------------------
# exporter-tools validate-template


def main(argv: Sequence[str]) -> int:
    """``validate-template [FILE] [--schema]``: 0 when valid; 1 when not, its check failed (every problem on
    stderr); 2 a usage error, a file that cannot be read included."""
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
        return 2 if isinstance(exc, TemplateUnreadable) else 1
    function = template.function
    timers = ", ".join(timer.name for timer in template.timers) or "none"
    sys.stdout.write(
        f"{args.file} is valid: function {function.name} ({function.runtime}, {function.memory_mb} MB, "
        f"{function.timeout_seconds} s) in {template.region}; timers: {timers}\n"
    )
    if template.storage is not None:
        from exporter_tools.deploy.lifecycle import describe_storage  # noqa: PLC0415 - only with a storage section

        sys.stdout.write(f"storage: {describe_storage(template.storage)}\n")
    variables = template.env_variables()
    if variables:
        listed = ", ".join(name + ("" if required else " (optional)") for name, required in variables)
        sys.stdout.write(f"deploy reads from its environment: {listed}\n")
    for warning in template.warnings():
        sys.stderr.write(f"{args.file}: warning: {warning}\n")
    return 0
