"""Webhook deliveries over real loopback sockets to the local receiver: signatures verify, failures stay quiet."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote_plus

import httpx
import pytest
from standardwebhooks import Webhook
from structlog.testing import capture_logs

from exporter_tools.receiver import (
    Delivery,
    WebhookReceiver,
    verify_dingtalk,
    verify_feishu,
    verify_standard,
)
from handler.adapters.webhooks import DeliveryReport, notify
from handler.adapters.webhooks._formats import dingtalk_sign, feishu_sign, standard_signature
from handler.errors import ConfigurationError
from handler.models.results import ErrorInfo, ImageOutcome, InvocationResult
from handler.models.settings import Settings, WebhookFormat
from tests.support.fakes import FakeClock

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CHAT_SECRET = "SECdemo-local-secret"

RESULT = InvocationResult.of(
    "event",
    "evt-e2e",
    (
        ImageOutcome(image_id="image-1", status="started", task_id="t-1", tos_bucket="my-exports"),
        ImageOutcome(
            image_id="image-2",
            status="failed",
            tos_bucket="my-exports",
            error=ErrorInfo(code="InvalidTosPutObject.AccessDenied", message="denied"),
        ),
    ),
)


def deliver_to(receiver: WebhookReceiver, *, secret: str | None) -> DeliveryReport | None:
    return deliver_at(receiver.url, receiver.fmt, secret=secret)


def deliver_at(url: str, fmt: WebhookFormat, *, secret: str | None) -> DeliveryReport | None:
    env = {"WEBHOOK_URL": url, "WEBHOOK_FORMAT": fmt}
    if secret:
        env["WEBHOOK_SECRET"] = secret
    return notify(
        RESULT,
        Settings.from_env(env),
        region="cn-beijing",
        deadline=time.monotonic() + 10,
        clock=FakeClock(wall=datetime.now(UTC)),  # retries go at once: the receiver answers instantly
    )


@pytest.fixture(autouse=True)
def _logs_captured() -> Iterator[None]:
    """Log lines go to a capture, whatever logging another test configured (its stream may be closed)."""
    with capture_logs():
        yield


@pytest.fixture
def receiver_factory() -> Iterator[type[WebhookReceiver]]:
    started: list[WebhookReceiver] = []

    class Tracked(WebhookReceiver):
        def start(self) -> WebhookReceiver:
            started.append(self)
            return super().start()

    yield Tracked
    for receiver in started:
        receiver.stop()


def test_standard_delivery_verifies_with_the_receiver_and_standardwebhooks(
    receiver_factory: type[WebhookReceiver],
) -> None:
    """A signed standard delivery verifies at the receiver and with the reference library."""
    receiver = receiver_factory(fmt="standard", secret=WHSEC).start()
    report = deliver_to(receiver, secret=WHSEC)
    assert report is not None
    assert (report.delivered, report.attempts, report.status) == (True, 1, 204)
    (delivery,) = receiver.deliveries
    assert delivery.verified is True
    payload = Webhook(WHSEC).verify(delivery.body, delivery.headers)
    assert payload["type"] == "image_export.result"
    assert payload["data"] == {**RESULT.to_json(), "counts": RESULT.counts}


def test_standard_delivery_with_a_plain_secret_verifies_as_utf8_bytes(
    receiver_factory: type[WebhookReceiver],
) -> None:
    """A secret without the whsec_ prefix signs with its UTF-8 bytes, and receivers using those bytes verify."""
    receiver = receiver_factory(fmt="standard", secret="plain-secret").start()
    deliver_to(receiver, secret="plain-secret")
    (delivery,) = receiver.deliveries
    assert delivery.verified is True
    assert Webhook(b"plain-secret").verify(delivery.body, delivery.headers)


@pytest.mark.parametrize("fmt", ["feishu", "dingtalk"])
def test_signed_chat_delivery_verifies(receiver_factory: type[WebhookReceiver], fmt: WebhookFormat) -> None:
    """A signed Feishu or DingTalk delivery verifies at the receiver, and the message reads at a glance."""
    receiver = receiver_factory(fmt=fmt, secret=CHAT_SECRET).start()
    report = deliver_to(receiver, secret=CHAT_SECRET)
    assert report is not None
    assert report.delivered
    (delivery,) = receiver.deliveries
    assert delivery.verified is True
    assert delivery.text is not None
    assert "Image export: 1 started, 1 failed" in delivery.text
    assert "grant ECS tos:PutObject on the bucket" in delivery.text


@pytest.mark.parametrize("fmt", ["feishu", "dingtalk", "standard"])
def test_wrong_secret_is_refused_as_the_platform_would(
    receiver_factory: type[WebhookReceiver], fmt: WebhookFormat
) -> None:
    """A delivery signed with the wrong secret fails verification and comes back as a failed report."""
    receiver = receiver_factory(fmt=fmt, secret="whsec_AAAAAAAAAAAAAAAAAAAAAAAA").start()
    report = deliver_to(receiver, secret="whsec_BBBBBBBBBBBBBBBBBBBBBBBB")
    assert report is not None
    assert not report.delivered
    assert report.attempts == 1
    assert [d.verified for d in receiver.deliveries] == [False]


@pytest.mark.parametrize("fmt", ["wecom", "slack"])
def test_unsigned_chat_delivery_arrives(receiver_factory: type[WebhookReceiver], fmt: WebhookFormat) -> None:
    """WeCom and Slack deliveries arrive with nothing to verify."""
    receiver = receiver_factory(fmt=fmt).start()
    report = deliver_to(receiver, secret=None)
    assert report is not None
    assert report.delivered
    (delivery,) = receiver.deliveries
    assert delivery.verified is None
    assert delivery.text is not None
    assert "image-1: started, task t-1" in delivery.text


def test_receiver_answering_500_gives_a_failed_report_and_no_exception(
    receiver_factory: type[WebhookReceiver],
) -> None:
    """A receiver that keeps answering 500 gets three attempts; notify reports the failure and raises nothing."""
    receiver = receiver_factory(fmt="feishu", answer=(500, "broken")).start()
    before = RESULT.model_dump()
    with capture_logs() as logs:
        report = deliver_to(receiver, secret=None)
    assert report is not None
    assert (report.delivered, report.attempts, report.status) == (False, 3, 500)
    assert len(receiver.deliveries) == 3
    assert [line["event"] for line in logs if line["event"] == "webhook.failed"] == ["webhook.failed"]
    assert RESULT.model_dump() == before


def test_receiver_answering_500_then_ok_is_delivered_on_attempt_two(
    receiver_factory: type[WebhookReceiver],
) -> None:
    """A receiver that fails once and then accepts gets the delivery on the second attempt."""
    receiver = receiver_factory(fmt="dingtalk", secret=CHAT_SECRET, answers=[(500, "")]).start()
    report = deliver_to(receiver, secret=CHAT_SECRET)
    assert report is not None
    assert (report.delivered, report.attempts) == (True, 2)
    assert [d.verified for d in receiver.deliveries] == [True, True]


def test_receiver_answering_a_platform_error_is_not_retried(receiver_factory: type[WebhookReceiver]) -> None:
    """A receiver told to answer Feishu's sign error gets one attempt, reported with the platform code."""
    receiver = receiver_factory(fmt="feishu", answer=(200, '{"code":19021,"msg":"sign match fail"}')).start()
    report = deliver_to(receiver, secret=None)
    assert report is not None
    assert (report.delivered, report.attempts, report.platform_code) == (False, 1, "19021")


def test_receiver_that_is_down_gives_a_failed_report() -> None:
    """With nothing listening, notify reports a network failure and raises nothing."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    report = deliver_at(f"http://127.0.0.1:{port}/webhooks", "standard", secret=None)
    assert report is not None
    assert (report.delivered, report.attempts, report.reason) == (False, 3, "ConnectError")


def test_receiver_command_line_prints_verified_deliveries() -> None:
    """`exporter-tools receiver` listens on loopback, prints the exact WEBHOOK_* lines to paste (every one the
    function needs, WEBHOOK_NOTIFY=all so that every invocation posts), and prints each delivery with its
    check."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter_tools.receiver",
            "--port",
            "0",
            "--format",
            "feishu",
            "--secret",
            "s3",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("listening on http://127.0.0.1:")
        lines = [process.stdout.readline().strip() for _ in range(5)]
        assert lines[0].startswith("# ")
        env = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in lines[1:])
        assert env == {
            "WEBHOOK_URL": first.split()[2],
            "WEBHOOK_FORMAT": "feishu",
            "WEBHOOK_NOTIFY": "all",
            "WEBHOOK_SECRET": "s3",
        }
        report = notify(RESULT, Settings.from_env(env), region="cn-beijing", deadline=time.monotonic() + 10)
        assert report is not None
        assert report.delivered
        header = process.stdout.readline()
        assert "-> 200 (signature verified)" in header
        assert "/hook/***" in header
        assert "Image export" in process.stdout.readline()
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_receiver_records_requests_posted_by_any_client(receiver_factory: type[WebhookReceiver]) -> None:
    """The receiver answers any HTTP client with the platform's success answer and keeps the body."""
    receiver = receiver_factory(fmt="wecom").start()
    with httpx.Client() as client:
        response = client.post(receiver.url, json={"msgtype": "markdown", "markdown": {"content": "hi"}})
    assert response.json() == {"errcode": 0, "errmsg": "ok"}
    assert json.loads(receiver.deliveries[0].body)["markdown"]["content"] == "hi"
    assert receiver.deliveries[0].text == "hi"


def test_receiver_can_be_told_to_fail_later(receiver_factory: type[WebhookReceiver]) -> None:
    """set_answer switches a running receiver to a failing answer for every later request."""
    receiver = receiver_factory(fmt="slack").start()
    assert deliver_to(receiver, secret=None) is not None
    receiver.set_answer(404, "no_service")
    report = deliver_to(receiver, secret=None)
    assert report is not None
    assert (report.delivered, report.platform_code) == (False, "no_service")
    assert [d.status for d in receiver.deliveries] == [200, 404]


NOW = 1_700_000_000.0


def standard_headers(secret: str, timestamp: float, body: bytes) -> dict[str, str]:
    signature = standard_signature(secret, "msg_1", int(timestamp), body)
    return {"webhook-id": "msg_1", "webhook-timestamp": str(int(timestamp)), "webhook-signature": signature}


@pytest.mark.parametrize(
    ("headers", "verified"),
    [
        (standard_headers(WHSEC, NOW, b"{}"), True),
        (
            {
                **standard_headers(WHSEC, NOW, b"{}"),
                "webhook-signature": "v1,bad v1,x " + standard_signature(WHSEC, "msg_1", int(NOW), b"{}"),
            },
            True,
        ),
        (standard_headers(WHSEC, NOW - 600, b"{}"), False),  # older than five minutes
        (standard_headers(WHSEC, NOW, b"{ }"), False),  # signed another body
        ({"webhook-timestamp": str(int(NOW)), "webhook-signature": "v1,x"}, False),
        ({**standard_headers(WHSEC, NOW, b"{}"), "webhook-timestamp": "soon"}, False),
    ],
)
def test_receiver_checks_standard_signature_and_freshness(headers: dict[str, str], verified: bool) -> None:
    """The receiver accepts any matching v1 signature on a fresh timestamp and nothing else."""
    assert verify_standard(WHSEC, headers, b"{}", NOW) is verified


@pytest.mark.parametrize(
    ("body", "verified"),
    [
        (json.dumps({"timestamp": str(int(NOW)), "sign": feishu_sign("s", int(NOW))}).encode(), True),
        (
            json.dumps(
                {"timestamp": str(int(NOW) - 7200), "sign": feishu_sign("s", int(NOW) - 7200)}
            ).encode(),
            False,
        ),
        (json.dumps({"timestamp": str(int(NOW))}).encode(), False),
        (b"not json", False),
    ],
)
def test_receiver_checks_feishu_sign(body: bytes, verified: bool) -> None:
    """Feishu deliveries verify only with the right sign within the hour."""
    assert verify_feishu("s", body, NOW) is verified


@pytest.mark.parametrize(
    ("query", "verified"),
    [
        (
            f"access_token=x&timestamp={int(NOW * 1000)}&sign={quote_plus(dingtalk_sign('s', int(NOW * 1000)))}",
            True,
        ),
        (f"access_token=x&timestamp={int(NOW * 1000)}&sign=wrong", False),
        (f"timestamp=soon&sign={quote_plus(dingtalk_sign('s', 'soon'))}", False),
        ("access_token=x", False),
    ],
)
def test_receiver_checks_dingtalk_sign(query: str, verified: bool) -> None:
    """DingTalk deliveries verify only with the right sign on a millisecond timestamp within the hour."""
    assert verify_dingtalk("s", query, NOW) is verified


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b'{"content": {"text": "feishu"}}', "feishu"),
        (b'{"markdown": {"text": "dingtalk"}}', "dingtalk"),
        (b'{"text": "slack"}', "slack"),
        (b'{"type": "image_export.result"}', None),
        (b"[1, 2]", None),
        (b"plain", None),
    ],
)
def test_delivery_text_finds_the_chat_message(body: bytes, text: str | None) -> None:
    """A recorded delivery exposes the chat message a person would read, when there is one."""
    assert Delivery("/", {}, body, None, 200).text == text


def test_receiver_refuses_a_broken_whsec_secret_at_once() -> None:
    """A receiver given a whsec_ secret that is not base64 fails at construction, not on every delivery."""
    with pytest.raises(ConfigurationError):
        WebhookReceiver(secret="whsec_%%%")


def test_echoing_receiver_prints_each_delivery(capsys: pytest.CaptureFixture[str]) -> None:
    """With echo on, each delivery is printed: the redacted path, the answer, the check, then the body."""
    with WebhookReceiver(fmt="standard", secret=WHSEC, echo=True) as receiver:
        deliver_to(receiver, secret=WHSEC)
        with httpx.Client() as client:
            client.post(receiver.url + "?token=CANARY", content=b"plain words")
    printed = capsys.readouterr().out
    assert "--- POST /webhooks -> 204 (signature verified)" in printed
    assert '"type": "image_export.result"' in printed
    assert "-> 401 (SIGNATURE INVALID)" in printed
    assert "plain words" in printed
    assert "CANARY" not in printed


@pytest.mark.parametrize("fmt", ["wecom", "slack"])
def test_formats_without_signatures_are_never_checked(fmt: WebhookFormat) -> None:
    """A secret given to a WeCom or Slack receiver checks nothing: those platforms sign nothing."""
    receiver = WebhookReceiver(fmt=fmt, secret="unused")
    try:
        assert receiver.verify("/", {}, b"{}") is None
    finally:
        receiver.stop()


def test_a_large_valid_standard_delivery_is_read_whole_and_verified(
    receiver_factory: type[WebhookReceiver],
) -> None:
    """A 3 MB signed delivery (a notice with thousands of results) is read whole and verifies: the receiver
    answered 401 to such a body when it read only its first MiB."""
    receiver = receiver_factory(fmt="standard", secret=WHSEC).start()
    body = json.dumps({"data": {"results": ["x" * 100] * 30_000}}).encode()
    assert len(body) > 3_000_000
    headers = standard_headers(WHSEC, time.time(), body) | {"content-type": "application/json"}
    with httpx.Client() as client:
        response = client.post(receiver.url, content=body, headers=headers)
    assert response.status_code == 204
    assert (receiver.deliveries[0].verified, len(receiver.deliveries[0].body)) == (True, len(body))


def test_a_delivery_past_the_receivers_limit_is_answered_413_unread(
    receiver_factory: type[WebhookReceiver],
) -> None:
    """A body over 8 MiB gets 413 with a message, and nothing is recorded as delivered."""
    receiver = receiver_factory(fmt="standard", secret=WHSEC).start()
    body = b"{" + b" " * (9 << 20) + b"}"
    with httpx.Client() as client:
        response = client.post(receiver.url, content=body, headers=standard_headers(WHSEC, time.time(), body))
    assert response.status_code == 413
    assert "8 MiB" in response.json()["error"]
    assert receiver.deliveries == []
