"""The log: JSON lines with the invocation's context, and a redaction processor no secret gets past."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import structlog

from handler.adapters.log import MASK, OFF, Redactor, configure_logging, redactor, set_quiet

SECRET = "canary-secret-0f9e8d7c"
TOKEN = "canary-token-1a2b3c4d5e"
ACCESS_KEY = "AKLTcanary00000000"


@pytest.fixture
def masking() -> Redactor:
    r = Redactor()
    r.set_secrets([SECRET, TOKEN, None, ""], access_key=ACCESS_KEY)
    return r


@pytest.mark.parametrize(
    "key",
    [
        "secret_key",
        "SecretKey",
        "session_token",
        "Authorization",
        "password",
        "webhook_signature",
        "credential",
        "sign",
    ],
)
def test_values_of_secret_looking_keys_are_masked(masking: Redactor, key: str) -> None:
    """Whatever a secret-looking key holds is masked whole, even a value the redactor does not know."""
    assert masking(None, "info", {key: "anything at all"}) == {key: MASK}


def test_known_secrets_are_masked_inside_any_text(masking: Redactor) -> None:
    """A known secret or token inside a message, a nested dict or a list is masked where it stands."""
    event = {
        "event": f"failed with {SECRET} in the text",
        "error": {"message": f"token {TOKEN} rejected", "code": "X"},
        "items": [f"a{SECRET}b", 3],
    }
    out = masking(None, "info", event)
    text = json.dumps(out)
    assert SECRET not in text
    assert TOKEN not in text
    assert out["error"]["code"] == "X"
    assert out["items"][1] == 3


def test_access_key_keeps_only_its_first_four_characters(masking: Redactor) -> None:
    """The access key is recognisable in logs by its first 4 characters, never shown whole."""
    out = masking(None, "info", {"access_key": ACCESS_KEY, "event": f"signed as {ACCESS_KEY}"})
    assert out["access_key"] == "AKLT" + MASK
    assert out["event"] == "signed as AKLT" + MASK


def test_exceptions_are_masked(masking: Redactor) -> None:
    """An exception object passed as a value is rendered with its secrets masked."""
    out = masking(None, "error", {"exc": RuntimeError(f"bad {SECRET}")})
    assert SECRET not in out["exc"]


def test_short_values_are_not_treated_as_secrets() -> None:
    """A one-letter 'secret' would mask every such letter: values under 6 characters are not matched in text."""
    r = Redactor()
    r.set_secrets(["a"], access_key="AK")
    assert r(None, "info", {"event": "a cat"}) == {"event": "a cat"}


def test_configured_logger_writes_json_with_context_and_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through structlog as configured: one JSON object per line, with bound context, ISO time, masked secrets."""
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    redactor.set_secrets([SECRET])
    try:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(correlation_id="evt-1", request_id="req-1")
        log = structlog.get_logger("test")
        log.debug("hidden at info")
        log.info("api.call", detail=f"x {SECRET} y", authorization="HMAC-SHA256 Credential=...")
        try:
            raise ValueError(SECRET)
        except ValueError:
            log.exception("boom")
    finally:
        redactor.set_secrets([])
        structlog.contextvars.clear_contextvars()
    lines: list[dict[str, Any]] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["api.call", "boom"]
    first = lines[0]
    assert (first["correlation_id"], first["request_id"], first["level"]) == ("evt-1", "req-1", "info")
    assert first["timestamp"].endswith("Z")
    assert first["authorization"] == MASK
    assert SECRET not in stream.getvalue()
    assert "ValueError" in lines[1]["exception"]


def _logged_with_secrets(stream: io.StringIO, **options: Any) -> str:
    """Log a line with a secret in its text, a secret-looking key and a traceback holding the secret."""
    configure_logging("INFO", stream=stream, **options)
    redactor.set_secrets([SECRET])
    log = structlog.get_logger("test")
    log.info("api.call", detail=f"x {SECRET} y", authorization="HMAC-SHA256 Credential=...")
    try:
        raise ValueError(SECRET)
    except ValueError:
        log.exception("boom")
    return stream.getvalue()


def test_the_console_format_is_for_people_and_masks_as_json_does() -> None:
    """LOG_FORMAT=console: one aligned line per event (no JSON, no colour codes off a terminal), with the
    event, the level and the fields; every secret masked, in the fields and in the traceback alike."""
    text = _logged_with_secrets(io.StringIO(), fmt="console")
    lines = text.splitlines()
    assert "api.call" in lines[0]
    assert "info" in lines[0]
    assert f"authorization={MASK}" in lines[0]
    assert not lines[0].lstrip().startswith("{")
    assert "\x1b[" not in text
    assert "ValueError" in text
    assert SECRET not in text


@pytest.mark.parametrize("how", ["level OFF", "set_quiet"])
def test_off_and_quiet_write_nothing_at_any_level(how: str) -> None:
    """The tools' OFF level, and set_quiet (invoke --quiet, which holds through every later configuration
    at any LOG_LEVEL), write no line at all, not even an error with its traceback."""
    stream = io.StringIO()
    if how == "set_quiet":
        set_quiet(True)
        configure_logging("DEBUG", stream=stream)
    else:
        configure_logging(OFF, stream=stream)
    log = structlog.get_logger("test")
    log.error("image.outcome", status="failed")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("invocation.crashed")
    assert stream.getvalue() == ""
