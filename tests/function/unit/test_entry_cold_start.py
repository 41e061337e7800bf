"""The cold start's log line: the version and the zip's digest, once per process."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handler.adapters.clients import reset_process_state
from handler.entry import handle
from handler.version import __version__, build_info

# Refused before any client is built: no credentials, no network.
REFUSED = {"unknown": "shape"}


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]


def _cold_start_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [line for line in _lines(capsys) if line["event"] == "cold_start"]


def test_the_first_invocation_logs_the_version_and_digest_once(capsys: pytest.CaptureFixture[str]) -> None:
    """Two invocations in one process: one ``cold_start`` line, on the first, with build_info()'s fields."""
    handle(REFUSED)
    handle(REFUSED)

    lines = _cold_start_lines(capsys)
    assert len(lines) == 1
    assert lines[0]["version"] == __version__
    assert lines[0]["source_sha256"] == build_info()["source_sha256"]
    assert lines[0]["cold_start"] is True
    assert lines[0]["level"] == "info"


def test_reset_process_state_makes_the_next_invocation_cold_again(capsys: pytest.CaptureFixture[str]) -> None:
    """After reset_process_state (what each test starts with) the next invocation logs the line again."""
    handle(REFUSED)
    reset_process_state()
    handle(REFUSED)

    assert len(_cold_start_lines(capsys)) == 2
