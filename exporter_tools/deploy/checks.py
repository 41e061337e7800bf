"""What one field of ``template.yaml`` cannot check alone: unique timer names, timer payloads (with the function's
own event parser), settings (with the function's own settings model), variable names the function does not
read, timers that look back further than the dedupe window, and the storage section's transitions (in order,
each colder, each class kept its minimum time) and the bucket it needs.

``cross_checks`` runs on the raw document, so these problems are reported together with the model's own;
``resolved_problems`` checks the environment again once deploy has filled in every ``${env:…}``.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from exporter_tools.deploy.model import Problem
from exporter_tools.deploy.references import env_references
from exporter_tools.deploy.storage import transition_problems
from handler.errors import ConfigurationError

__all__ = ["cross_checks", "known_variables", "lookback_problems", "resolved_problems", "resolved_warnings"]

_FUNCTION_PREFIXES = ("EXPORT_", "VOLCENGINE_", "WEBHOOK_")
_CREDENTIAL_VARIABLES = ("VOLCENGINE_ACCESS_KEY", "VOLCENGINE_SECRET_KEY", "VOLCENGINE_SESSION_TOKEN")


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
        literal = _literal(environment)
        problems.extend(_unknown_names(environment))
        problems.extend(_settings_problems(literal))
        problems.extend(lookback_problems(_payloads(timers), literal))
    problems.extend(_storage_problems(raw.get("storage"), environment))
    return problems


def _storage_problems(storage: object, environment: object) -> list[Problem]:
    """The storage section's transitions in order, and the bucket its rule goes on."""
    if not isinstance(storage, Mapping):
        return []
    transitions = storage.get("transitions")
    problems = [
        Problem(f"storage.{path}", message)
        for path, message in transition_problems(transitions if isinstance(transitions, list) else [])
    ]
    if not (isinstance(environment, Mapping) and environment.get("EXPORT_TOS_BUCKET")):
        problems.append(
            Problem(
                "storage",
                "needs function.environment.EXPORT_TOS_BUCKET: the lifecycle rule goes on that bucket "
                "(for EXPORT_TOS_PREFIX's files and manifests)",
            )
        )
    return problems


def resolved_problems(
    environment: Mapping[str, str], payloads: Sequence[Mapping[str, Any] | None]
) -> list[Problem]:
    """The function's environment as deploy sends it (every ``${env:…}`` filled in), checked as the function
    will read it: what would be a ``ConfigurationError`` on every invocation is refused before deploying."""
    problems = [
        Problem(p.path, f"{p.message} (the value deploy would send, once ${{env:…}} is filled in)")
        for p in _settings_problems(environment)
    ]
    return problems + lookback_problems(payloads, environment)


def resolved_warnings(environment: Mapping[str, str]) -> list[Problem]:
    """Values the function accepts that a deployed function can hardly mean: a ``WEBHOOK_URL`` on a loopback
    host or over plain http (the function allows both for a local receiver), most likely left in the
    deployer's shell by the receiver's ``export`` lines. Never shows the URL, which may hold a credential."""
    from urllib.parse import urlsplit  # noqa: PLC0415

    from handler.models.settings import is_loopback_host  # noqa: PLC0415

    url = environment.get("WEBHOOK_URL")
    if not url:
        return []
    parts = urlsplit(url)
    host = parts.hostname or ""
    if is_loopback_host(host):
        where = f"a loopback host ({host}): the deployed function would post to itself"
    elif parts.scheme == "http":
        where = "plain http: the notices and their signatures would travel unencrypted"
    else:
        return []
    msg = (
        f"WEBHOOK_URL points at {where}. Left in your shell by the local receiver's lines? Unset WEBHOOK_URL, "
        "WEBHOOK_FORMAT and WEBHOOK_SECRET, or set your platform's https URL"
    )
    return [Problem("function.environment.WEBHOOK_URL", msg)]


def known_variables() -> frozenset[str]:
    """Every variable the function reads: its settings and its credentials."""
    from handler.adapters.credentials import CREDENTIAL_FILE_VARIABLE  # noqa: PLC0415
    from handler.models.settings import Settings  # noqa: PLC0415

    aliases = {field.alias for field in Settings.model_fields.values() if field.alias}
    return frozenset({*aliases, CREDENTIAL_FILE_VARIABLE, *_CREDENTIAL_VARIABLES})


def _unknown_names(environment: Mapping[Any, Any]) -> list[Problem]:
    """An ``EXPORT_*``, ``VOLCENGINE_*`` or ``WEBHOOK_*`` name the function does not read (a typo that would
    silently leave the setting at its default), with the closest known name."""
    known = sorted(known_variables())
    problems: list[Problem] = []
    for name in map(str, environment):
        if name.startswith(_FUNCTION_PREFIXES) and name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f": did you mean {close[0]}?" if close else " (docs/configuration.md lists them)"
            problems.append(
                Problem(f"function.environment.{name}", f"the function reads no such variable{hint}")
            )
    return problems


def lookback_problems(
    payloads: Sequence[Mapping[str, Any] | None], environment: Mapping[str, str]
) -> list[Problem]:
    """A timer that looks back further than ``EXPORT_DEDUPE_HOURS``: the function refuses every such event
    (an image could be exported twice)."""
    dedupe = _hours(environment.get("EXPORT_DEDUPE_HOURS"))
    if dedupe is None:
        return []
    problems: list[Problem] = []
    for index, payload in enumerate(payloads):
        lookback = _hours((payload or {}).get("LookbackHours"))
        if lookback is not None and lookback > dedupe:
            problems.append(
                Problem(
                    f"timers[{index}].payload.LookbackHours",
                    f"{lookback:g} h is longer than the dedupe window (EXPORT_DEDUPE_HOURS={dedupe:g}): the "
                    "function refuses the event, as an image could be exported twice; look back less, or "
                    "raise EXPORT_DEDUPE_HOURS",
                )
            )
    return problems


def _hours(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(str(value))
    except ValueError:
        return None


def _payloads(timers: object) -> list[Mapping[str, Any] | None]:
    items = timers if isinstance(timers, list) else []
    return [
        item.get("payload")
        if isinstance(item, Mapping) and isinstance(item.get("payload"), Mapping)
        else None
        for item in items
    ]


def _literal(environment: Mapping[Any, Any]) -> dict[str, str]:
    """The values written in the template itself (those without ``${env:…}``), as text."""
    return {
        str(name): str(value)
        for name, value in environment.items()
        if isinstance(value, str | int | float) and not isinstance(value, bool)
        if not env_references(str(value))
    }


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


def _settings_problems(environment: Mapping[str, str]) -> list[Problem]:
    """Check the values as the function will read them (with its own settings model)."""
    from handler.models.settings import Settings  # noqa: PLC0415

    # SSL_CERT_FILE names a file on the function's machine (shipped in the zip, say): it is not opened here.
    on_the_function = {name: value for name, value in environment.items() if name != "SSL_CERT_FILE"}
    try:
        Settings.from_env(on_the_function)
    except ConfigurationError as exc:
        return [Problem(f"function.environment.{exc.source}", exc.message.removeprefix(f"{exc.source}: "))]
    return []
