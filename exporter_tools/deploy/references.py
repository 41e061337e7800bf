"""``${env:NAME}`` references in template values, and which names and values are secret (never printed).

A value in ``function.environment`` (and the account id in ``function.role``) may say ``${env:NAME}``, or
``${env:NAME:-default}``: deploy fills it in from the deployer's environment, so no secret is written in the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["REFERENCE_PATTERN", "env_references", "looks_secret", "references_only", "resolve_text"]

_REFERENCE = re.compile(r"\$\{env:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
REFERENCE_PATTERN = r"\$\{env:[A-Za-z_][A-Za-z0-9_]*\}"
_SECRET_NAME = re.compile(
    r"secret|token|passw|credential|private|signature|sign$|(^|_)key$|access_?key|webhook_url", re.IGNORECASE
)
_SECRET_QUERY = re.compile(r"[?&](access_token|token|key|sign|signature|secret)=", re.IGNORECASE)
_TOKEN_LIKE = re.compile(r"^[A-Za-z0-9+/=_-]{32,}$")


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


def references_only(text: str) -> str:
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
