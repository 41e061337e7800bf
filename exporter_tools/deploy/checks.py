"""What one field of ``template.yaml`` cannot check alone: unique timer names, timer payloads (with the function's
own event parser) and literal settings (with the function's own settings model).

They run on the raw document, so these problems are reported together with the model's own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from exporter_tools.deploy.model import Problem
from exporter_tools.deploy.references import env_references
from handler.errors import ConfigurationError

__all__ = ["cross_checks"]


def cross_checks(document: object) -> list[Problem]:
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
