"""Structured logs: configured once per invocation, one clean context per invocation, secrets masked.

Every line is one JSON object on stderr with an ISO timestamp, the level, the event name and whatever the
invocation bound (``correlation_id``, ``request_id``, ``cold_start``); ``LOG_FORMAT=console`` renders the
same events for a person instead (structlog's dev renderer). The redaction processor runs last before either
renderer, so nothing a caller passes, not even a traceback, can print a credential. ``set_quiet`` drops every
line of the process (``python -m handler invoke --quiet``); the tools log at ``OFF`` unless ``--verbose``.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, TextIO

import structlog

if TYPE_CHECKING:
    from handler.models.settings import LogFormat

__all__ = [
    "MASK",
    "OFF",
    "Redactor",
    "configure_logging",
    "first_invocation",
    "redactor",
    "reset_first_invocation",
    "set_quiet",
]

MASK = "***"
_SECRET_KEY = re.compile(
    r"secret|token|password|passwd|authorization|signature|credential|sign$", re.IGNORECASE
)
_ACCESS_KEY = re.compile(r"access_?key", re.IGNORECASE)
_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
# The tools' own level, never the function's (LOG_LEVEL): nothing is written, whatever its level.
OFF = "OFF"


class Redactor:
    """A structlog processor that masks secrets by key name and by value.

    Values of keys that look secret are masked whole; any string containing a known secret (the secret key,
    the session token, the webhook secret) has it masked; the access key keeps its first 4 characters.
    """

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()
        self._access_key: str | None = None
        self._lock = threading.Lock()

    def set_secrets(self, secrets: Iterable[str | None], *, access_key: str | None = None) -> None:
        """Replace the known secrets (call once per invocation: credentials rotate). Short values are kept
        out: masking every "a" in a log line would hide more than it protects."""
        known = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)
        with self._lock:
            self._secrets = tuple(known)
            self._access_key = access_key if access_key and len(access_key) >= 6 else None

    def mask_text(self, text: str) -> str:
        """``text`` with every known secret masked."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if self._access_key and self._access_key in text:
            text = text.replace(self._access_key, self._access_key[:4] + MASK)
        return text

    def _value(self, key: str, value: Any) -> Any:
        if _ACCESS_KEY.search(key) and isinstance(value, str):
            return value[:4] + MASK
        if _SECRET_KEY.search(key) and value not in (None, ""):
            return MASK
        return self._scrub(value)

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.mask_text(value)
        if isinstance(value, dict):
            return {k: self._value(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub(v) for v in value]
        if isinstance(value, BaseException):
            return self.mask_text(repr(value))
        return value

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            event_dict[key] = self._value(key, event_dict[key])
        return event_dict


redactor = Redactor()

_invoked = threading.Event()  # set by the process's first invocation
_quiet = threading.Event()  # set: every configuration drops every line


def first_invocation() -> bool:
    """True on the process's first call only (its cold start), False on every later one."""
    cold = not _invoked.is_set()
    _invoked.set()
    return cold


def reset_first_invocation() -> None:
    """Make the next call of :func:`first_invocation` count as the cold start again (``reset_process_state``)."""
    _invoked.clear()


def set_quiet(quiet: bool) -> None:
    """From now on every ``configure_logging`` drops every line (``True``), or logs as asked again (``False``;
    ``reset_process_state`` does this too)."""
    if quiet:
        _quiet.set()
    else:
        _quiet.clear()


def configure_logging(level: str = "INFO", *, fmt: LogFormat = "json", stream: TextIO | None = None) -> None:
    """Set structlog up at ``level`` on ``stream`` (stderr): JSON lines, or (``console``) lines for a person,
    coloured when the stream is a terminal; secrets masked in both. Cheap enough to call each invocation."""
    out = stream if stream is not None else sys.stderr
    if level == OFF or _quiet.is_set():
        # Below CRITICAL every call is a no-op; a critical line (the code logs none) is rendered, not written.
        structlog.configure(
            processors=[],
            wrapper_class=structlog.make_filtering_bound_logger(50),
            logger_factory=structlog.ReturnLoggerFactory(),
            cache_logger_on_first_use=False,
        )
        return
    renderer: Any
    if fmt == "console":
        colors = bool(getattr(out, "isatty", lambda: False)())
        renderer = structlog.dev.ConsoleRenderer(
            colors=colors, exception_formatter=structlog.dev.plain_traceback
        )
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, 20)),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
