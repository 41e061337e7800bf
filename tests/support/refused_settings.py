"""The environment values the function refuses (issue 20, item 5), one row each: the variable, the value, and
words the ConfigurationError must carry. The settings' unit tests and the entry's tests (in process and
through ``python -m handler invoke``) read the same rows, so each row is checked at both levels."""

from __future__ import annotations

from typing import NamedTuple

import pytest

__all__ = ["CREDENTIAL_ROWS", "SECRET_CANARY", "SETTINGS_ROWS", "Refused", "params"]

# Part of every secret value below: it must never appear in an error, a result or a log line.
SECRET_CANARY = "canary-refused-secret-4Fq"


class Refused(NamedTuple):
    """A value refused with a ConfigurationError whose ``source`` is ``variable`` and which says ``says``."""

    variable: str
    value: str
    says: str
    id: str


_HOURS = "expected a number above 0, at most 8760"
_RPS = "expected a number at least 0.1, at most 1000"

SETTINGS_ROWS: tuple[Refused, ...] = (
    # Hours: finite, above 0, at most a year (8760).
    *(
        Refused(variable, value, f"{_HOURS}, got '{value}'", f"{variable}={value}")
        for variable in ("EXPORT_LOOKBACK_HOURS", "EXPORT_DEDUPE_HOURS")
        for value in ("inf", "-inf", "nan", "1e308", "8761", "0")
    ),
    # Every other number is finite too: inf and nan are out of every range.
    *(
        Refused(variable, value, "expected a number ", f"{variable}={value}")
        for variable in (
            "FUNCTION_TIMEOUT_SECONDS",
            "VOLCENGINE_CONNECT_TIMEOUT",
            "VOLCENGINE_READ_TIMEOUT",
            "VOLCENGINE_BACKOFF_BASE",
            "VOLCENGINE_BACKOFF_CAP",
            "EXPORT_CLAIM_SETTLE_SECONDS",
        )
        for value in ("inf", "nan")
    ),
    *(
        Refused(variable, value, "expected a whole number ", f"{variable}={value[:6]}")
        for variable in ("EXPORT_CONCURRENCY", "VOLCENGINE_MAX_ATTEMPTS", "WEBHOOK_MAX_RESULTS")
        for value in ("1e308", "inf", "9" * 5000)
    ),
    # The request rate: 0.1 to 1000 a second.
    *(
        Refused("VOLCENGINE_MAX_RPS", value, f"{_RPS}, got '{value}'", f"VOLCENGINE_MAX_RPS={value}")
        for value in ("0.05", "0", "1001", "inf", "nan", "1e308")
    ),
    # Ports 1-65535, and a URL that cannot be parsed.
    *(
        Refused(variable, f"{origin}:{port}", "port", f"{variable} port {port}")
        for variable, origin in (
            ("VOLCENGINE_ENDPOINT", "https://open.volcengineapi.com"),
            ("TOS_ENDPOINT", "https://tos-cn-beijing.volces.com"),
        )
        for port in (0, 99999)
    ),
    Refused("WEBHOOK_URL", "https://hooks.example.com:0/in", "port is from 1 to 65535", "WEBHOOK_URL port 0"),
    Refused(
        "WEBHOOK_URL",
        "https://hooks.example.com:99999/in",
        "port is from 1 to 65535",
        "WEBHOOK_URL port 99999",
    ),
    Refused("WEBHOOK_URL", "https://[::1", "expected an https URL", "WEBHOOK_URL unparseable"),
    Refused(
        "VOLCENGINE_ENDPOINT", "https://[::1", "expected scheme and host", "VOLCENGINE_ENDPOINT unparseable"
    ),
    Refused("TOS_ENDPOINT", "https://[::1", "expected scheme and host", "TOS_ENDPOINT unparseable"),
    # The region: a region id (it is part of the TOS host and the signature scope).
    *(
        Refused("VOLCENGINE_REGION", value, "expected a region id", f"VOLCENGINE_REGION={value!r}")
        for value in (
            "x.attacker.example/",
            "cn-beijing.attacker.example",
            "cn-beijing\nx",
            "cn-beijing\u00e9",
            "CN-BEIJING",
            "cn_beijing",
            "beijing",
            "cn-1",
        )
    ),
    # The webhook secret: printable ASCII, and a whsec_ secret needs a key after the prefix.
    Refused(
        "WEBHOOK_SECRET", "whsec_", "expected a non-empty key after whsec_", "WEBHOOK_SECRET whsec_ alone"
    ),
    Refused("WEBHOOK_SECRET", "whsec_====", "whsec_", "WEBHOOK_SECRET whsec_ padding only"),
    Refused(
        "WEBHOOK_SECRET", f"{SECRET_CANARY}\nX-Injected: 1", "printable ASCII", "WEBHOOK_SECRET line break"
    ),
    Refused("WEBHOOK_SECRET", f"{SECRET_CANARY}\u00e9", "printable ASCII", "WEBHOOK_SECRET non-ASCII"),
)

# Credentials from the environment that cannot go into a header (a line break inside, a control character,
# a character outside ASCII); each row is set beside a valid pair's other half.
CREDENTIAL_ROWS: tuple[Refused, ...] = (
    Refused(
        "VOLCENGINE_ACCESS_KEY", "AKLT\nX-Injected: 1", "a line break", "VOLCENGINE_ACCESS_KEY line break"
    ),
    Refused(
        "VOLCENGINE_SECRET_KEY",
        f"{SECRET_CANARY}\r\nX: 1",
        "a line break",
        "VOLCENGINE_SECRET_KEY line break",
    ),
    Refused(
        "VOLCENGINE_SECRET_KEY",
        f"{SECRET_CANARY}\u00e9",
        "a non-ASCII character",
        "VOLCENGINE_SECRET_KEY non-ASCII",
    ),
    Refused(
        "VOLCENGINE_SESSION_TOKEN",
        f"{SECRET_CANARY}\x1b[2J",
        "a control character",
        "VOLCENGINE_SESSION_TOKEN ESC",
    ),
)


def params(rows: tuple[Refused, ...]) -> list[object]:
    """The rows as pytest parameters, each with its id."""
    return [pytest.param(row, id=row.id) for row in rows]
