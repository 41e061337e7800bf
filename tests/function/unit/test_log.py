"""The log: JSON lines with the invocation's context, and a redaction processor no secret gets past."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import structlog

from handler.adapters.log import MASK, Redactor, configure_logging, redactor

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
