"""The README's receiver walkthrough through the real function: the function invoked against the emulator,
its webhook pointed at the local receiver with exactly the lines the receiver prints."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.receiver import WebhookReceiver
from handler.models.settings import WebhookFormat
from tests.support.emulated import invoke

IMAGE = "image-ybqi99s7yq8rx7mnk44b"
SECRET = "SECwalkthrough-secret-0001"


@pytest.fixture
def receivers() -> Iterator[Callable[[WebhookFormat], WebhookReceiver]]:
    started: list[WebhookReceiver] = []

    def start(fmt: WebhookFormat) -> WebhookReceiver:
        receiver = WebhookReceiver(fmt=fmt, secret=SECRET, echo=True).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


def _paste(lines: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """What a shell does with the printed lines: ``export NAME=value`` sets, ``unset NAME`` removes."""
    for line in lines:
        words = shlex.split(line)
        if words[0] == "export":
            name, value = words[1].split("=", 1)
            monkeypatch.setenv(name, value)
        elif words[0] == "unset":
            monkeypatch.delenv(words[1], raising=False)


def _webhook_events(err: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [line for line in lines if str(line.get("event", "")).startswith("webhook.")]


@dataclass(frozen=True)
class Case:
    fmt: WebhookFormat
    change: Mapping[str, str | None]  # after pasting: set a variable to another value, or unset it (None)
    outcome: str  # what the function logs
    printed: str  # what the receiver prints about the delivery


WRONG_SECRET = {"WEBHOOK_SECRET": "SECnot-the-receivers"}
CASES = [
    *(
        Case(fmt, {}, "webhook.delivered", "(signature verified)")
        for fmt in ("feishu", "dingtalk", "standard")
    ),
    *(
        Case(fmt, WRONG_SECRET, "webhook.failed", "SIGNATURE INVALID")
        for fmt in ("feishu", "dingtalk", "standard")
    ),
    # A loopback URL says nothing about the platform: without WEBHOOK_FORMAT the function sends standard.
    Case("feishu", {"WEBHOOK_FORMAT": None}, "webhook.failed", "WRONG FORMAT"),
    Case("dingtalk", {"WEBHOOK_FORMAT": None}, "webhook.failed", "WRONG FORMAT"),
    Case("standard", {"WEBHOOK_FORMAT": "feishu"}, "webhook.failed", "WRONG FORMAT"),
]


@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"{c.fmt}-{c.outcome}-{c.printed.split()[0].strip('(')}"
)
def test_the_receiver_lines_make_deliveries_that_succeed_only_when_they_should(
    emulated: Callable[..., EcsEmulator],
    receivers: Callable[[WebhookFormat], WebhookReceiver],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: Case,
) -> None:
    """Pasting the receiver's lines gives a verified delivery the function logs as delivered; a wrong secret
    or the wrong WEBHOOK_FORMAT is refused as the platform would, and the function logs webhook.failed,
    never a false success."""
    emulated()
    receiver = receivers(case.fmt)
    _paste(receiver.export_lines(), monkeypatch)
    for name, value in case.change.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    capsys.readouterr()

    result, _raised = invoke({"ImageId": IMAGE})

    captured = capsys.readouterr()
    assert [r["status"] for r in result["results"]] == ["started"]
    assert [line["event"] for line in _webhook_events(captured.err)] == [case.outcome]
    assert len(receiver.deliveries) == 1
    assert case.printed in captured.out
