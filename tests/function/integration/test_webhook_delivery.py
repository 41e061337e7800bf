"""Webhook delivery at its HTTP edge (respx): platform answers, retries, the deadline, and no leaked secret."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx
from structlog.testing import capture_logs

from handler.adapters.retry import parse_retry_after
from handler.adapters.webhooks import DeliveryReport, notify, send_test
from handler.models.results import ErrorInfo, ImageOutcome, InvocationResult
from handler.models.settings import Settings, WebhookFormat
from tests.support.fakes import FakeClock

EPOCH = 1_700_000_000.0
SECRET_CANARY = "CANARY-SECRET-5f1e"
TOKEN_CANARY = "CANARYTOKEN9d2c"

URLS: dict[WebhookFormat, str] = {
    "standard": f"https://receiver.example.com/in?token={TOKEN_CANARY}",
    "feishu": f"https://open.feishu.cn/open-apis/bot/v2/hook/{TOKEN_CANARY}",
    "dingtalk": f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN_CANARY}",
    "wecom": f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={TOKEN_CANARY}",
    "slack": f"https://hooks.slack.com/services/T000/B000/{TOKEN_CANARY}",
}
SUCCESS: dict[WebhookFormat, httpx.Response] = {
    "standard": httpx.Response(204),
    "feishu": httpx.Response(200, json={"code": 0, "msg": "success", "data": {}}),
    "dingtalk": httpx.Response(200, json={"errcode": 0, "errmsg": "ok"}),
    "wecom": httpx.Response(200, json={"errcode": 0, "errmsg": "ok"}),
    "slack": httpx.Response(200, text="ok"),
}
FORMATS = tuple(URLS)


@pytest.fixture(autouse=True)
def _logs_captured() -> Iterator[None]:
    """Log lines go to a capture, whatever logging another test configured (its stream may be closed)."""
    with capture_logs():
        yield


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(jitter=0.5, wall=datetime.fromtimestamp(EPOCH + 100.0, UTC))


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


RESULT = InvocationResult.of(
    "timer",
    "evt-1",
    (
        ImageOutcome(image_id="image-1", status="started", task_id="t-1", tos_bucket="my-exports"),
        ImageOutcome(
            image_id="image-2",
            status="failed",
            error=ErrorInfo(code="InvalidTosPutObject.AccessDenied", message="denied"),
        ),
    ),
)


def settings_for(fmt: WebhookFormat, *, secret: str | None = SECRET_CANARY, **env: str) -> Settings:
    values = {"WEBHOOK_URL": URLS[fmt], "WEBHOOK_FORMAT": fmt, "EXPORT_TOS_BUCKET": "my-exports", **env}
    if secret:
        values["WEBHOOK_SECRET"] = secret
    return Settings.from_env(values)


def send(
    clock: FakeClock,
    fmt: WebhookFormat = "feishu",
    *,
    budget: float = 30.0,
    result: InvocationResult = RESULT,
    settings: Settings | None = None,
    client: httpx.Client | None = None,
) -> DeliveryReport | None:
    return notify(
        result,
        settings or settings_for(fmt),
        region="cn-beijing",
        deadline=clock.monotonic() + budget,
        client=client,
        clock=clock,
    )


def route(mock: respx.MockRouter, fmt: WebhookFormat) -> respx.Route:
    return mock.post(host=httpx.URL(URLS[fmt]).host)


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [line for line in logs if line["event"] == name]


# --- success ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_platform_success_answer_is_delivered_at_once(
    mock: respx.MockRouter, clock: FakeClock, fmt: WebhookFormat
) -> None:
    """Each platform's own success answer counts as delivered, on the first attempt, and is logged."""
    calls = route(mock, fmt).mock(return_value=SUCCESS[fmt])
    with capture_logs() as logs:
        report = send(clock, fmt)
    assert report is not None
    assert (report.delivered, report.attempts, report.format) == (True, 1, fmt)
    assert calls.call_count == 1
    assert calls.calls.last.request.headers["content-type"].startswith("application/json")
    assert events(logs, "webhook.delivered")[0]["attempts"] == 1
    assert not events(logs, "webhook.failed")


def test_feishu_legacy_status_code_zero_is_success(mock: respx.MockRouter, clock: FakeClock) -> None:
    """The older Feishu answer {"StatusCode": 0} counts as delivered too."""
    route(mock, "feishu").mock(
        return_value=httpx.Response(200, json={"StatusCode": 0, "StatusMessage": "success"})
    )
    report = send(clock, "feishu")
    assert report is not None
    assert report.delivered


def test_standard_delivery_is_signed_with_stable_id(mock: respx.MockRouter, clock: FakeClock) -> None:
    """A standard delivery carries webhook-id, webhook-timestamp and a v1 signature."""
    calls = route(mock, "standard").mock(return_value=httpx.Response(200))
    send(
        clock, "standard", settings=settings_for("standard", secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    )
    headers = calls.calls.last.request.headers
    assert headers["webhook-id"].startswith("msg_")
    assert headers["webhook-timestamp"] == str(int(clock.now().timestamp()))
    assert headers["webhook-signature"].startswith("v1,")
    assert json.loads(calls.calls.last.request.content)["data"] == {
        **RESULT.to_json(),
        "counts": RESULT.counts,
    }


def test_format_setting_overrides_the_host(mock: respx.MockRouter, clock: FakeClock) -> None:
    """WEBHOOK_FORMAT wins over what the URL's host suggests."""
    calls = route(mock, "feishu").mock(return_value=httpx.Response(200, text="ok"))
    settings = Settings.from_env({"WEBHOOK_URL": URLS["feishu"], "WEBHOOK_FORMAT": "slack"})
    report = send(clock, settings=settings)
    assert report is not None
    assert report.format == "slack"
    assert set(json.loads(calls.calls.last.request.content)) == {"text"}


# --- retries ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_http_500_then_success_is_delivered_on_attempt_two(
    mock: respx.MockRouter, clock: FakeClock, fmt: WebhookFormat
) -> None:
    """A 5xx answer is retried after a jittered backoff, and the second attempt delivers."""
    calls = route(mock, fmt).mock(side_effect=[httpx.Response(500), SUCCESS[fmt]])
    with capture_logs() as logs:
        report = send(clock, fmt)
    assert report is not None
    assert (report.delivered, report.attempts, report.status) == (True, 2, SUCCESS[fmt].status_code)
    assert calls.call_count == 2
    assert len(clock.slept) == 1
    assert events(logs, "webhook.retry")[0]["status"] == 500


@pytest.mark.parametrize(
    ("fmt", "answer", "code"),
    [
        ("feishu", {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"}, "19021"),
        ("feishu", {"code": 19024, "msg": "Key Words Not Found"}, "19024"),
        ("feishu", {"StatusCode": 19021, "StatusMessage": "sign match fail"}, "19021"),
        ("dingtalk", {"errcode": 310000, "errmsg": "sign not match"}, "310000"),
        ("dingtalk", {"errcode": 300001, "errmsg": "token is not exist"}, "300001"),
        ("wecom", {"errcode": 93000, "errmsg": "invalid webhook url"}, "93000"),
    ],
)
def test_platform_error_code_in_http_200_fails_without_retry(
    mock: respx.MockRouter, clock: FakeClock, fmt: WebhookFormat, answer: dict[str, Any], code: str
) -> None:
    """A platform error code inside an HTTP 200 is a failure, logged with status and code, and not retried."""
    calls = route(mock, fmt).mock(return_value=httpx.Response(200, json=answer))
    with capture_logs() as logs:
        report = send(clock, fmt)
    assert report is not None
    assert (report.delivered, report.attempts, report.status, report.platform_code) == (False, 1, 200, code)
    assert calls.call_count == 1
    assert clock.slept == []
    failed = events(logs, "webhook.failed")[0]
    assert (failed["status"], failed["platform_code"], failed["log_level"]) == (200, code, "warning")


@pytest.mark.parametrize(
    ("fmt", "answer"),
    [("feishu", {}), ("dingtalk", {"ok": True}), ("wecom", "<html>portal</html>")],
)
def test_http_200_without_a_success_code_is_not_delivered(
    mock: respx.MockRouter, clock: FakeClock, fmt: WebhookFormat, answer: Any
) -> None:
    """An answer that lacks the platform's success code is not taken for a delivery."""
    response = (
        httpx.Response(200, text=answer) if isinstance(answer, str) else httpx.Response(200, json=answer)
    )
    route(mock, fmt).mock(return_value=response)
    report = send(clock, fmt)
    assert report is not None
    assert not report.delivered
    assert report.reason == "no success code in the answer"


@pytest.mark.parametrize(
    ("fmt", "code"),
    [("feishu", {"code": 9499}), ("dingtalk", {"errcode": 130101}), ("wecom", {"errcode": 45009})],
)
def test_platform_rate_limit_code_is_retried(
    mock: respx.MockRouter, clock: FakeClock, fmt: WebhookFormat, code: dict[str, int]
) -> None:
    """A platform's documented rate-limit code is retried like HTTP 429."""
    calls = route(mock, fmt).mock(side_effect=[httpx.Response(200, json=code), SUCCESS[fmt]])
    report = send(clock, fmt)
    assert report is not None
    assert (report.delivered, report.attempts, calls.call_count) == (True, 2, 2)


@pytest.mark.parametrize(
    ("fmt", "response", "code"),
    [
        ("slack", httpx.Response(404, text="no_service"), "no_service"),
        ("slack", httpx.Response(400, text="invalid_payload"), "invalid_payload"),
        ("standard", httpx.Response(401, json={"error": "bad signature"}), None),
        ("standard", httpx.Response(302, headers={"location": "https://elsewhere.example/"}), None),
    ],
)
def test_client_errors_and_redirects_fail_without_retry(
    mock: respx.MockRouter, clock: FakeClock, fmt: WebhookFormat, response: httpx.Response, code: str | None
) -> None:
    """A 3xx or 4xx answer is final: not retried, redirects not followed, Slack's error token reported."""
    calls = route(mock, fmt).mock(return_value=response)
    report = send(clock, fmt)
    assert report is not None
    assert (report.delivered, report.attempts, report.status) == (False, 1, response.status_code)
    assert report.platform_code == code
    assert calls.call_count == 1


@pytest.mark.parametrize("retry_after", ["2", "2.0"])
def test_429_waits_for_retry_after(mock: respx.MockRouter, clock: FakeClock, retry_after: str) -> None:
    """HTTP 429 is retried after the receiver's Retry-After, not sooner."""
    limited = httpx.Response(429, headers={"retry-after": retry_after})
    route(mock, "wecom").mock(side_effect=[limited, SUCCESS["wecom"]])
    report = send(clock, "wecom")
    assert report is not None
    assert (report.delivered, report.attempts) == (True, 2)
    assert clock.slept == [2.0]


def test_429_with_retry_after_past_the_deadline_stops(mock: respx.MockRouter, clock: FakeClock) -> None:
    """A Retry-After longer than the time left ends the delivery at once instead of sleeping."""
    calls = route(mock, "slack").mock(return_value=httpx.Response(429, headers={"retry-after": "60"}))
    report = send(clock, "slack", budget=10)
    assert report is not None
    assert (report.delivered, report.attempts, report.status) == (False, 1, 429)
    assert report.reason == "HTTP 429; deadline reached"
    assert calls.call_count == 1
    assert clock.slept == []


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 1.5 ", 1.5),
        ("-4", 0.0),
        (format_datetime(datetime.fromtimestamp(EPOCH + 7, UTC), usegmt=True), 7.0),
        ("nan", None),
        ("soon", None),
        ("301", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value: str | None, seconds: float | None) -> None:
    """Retry-After is read as seconds or as an HTTP date; anything else is ignored."""
    assert parse_retry_after(value, now=EPOCH) == seconds


@pytest.mark.parametrize(
    "error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("reset")]
)
def test_network_error_then_success_is_delivered(
    mock: respx.MockRouter, clock: FakeClock, error: httpx.TransportError
) -> None:
    """A network error is retried."""
    route(mock, "dingtalk").mock(side_effect=[error, SUCCESS["dingtalk"]])
    report = send(clock, "dingtalk")
    assert report is not None
    assert (report.delivered, report.attempts) == (True, 2)


def test_network_errors_spend_three_attempts_then_fail(mock: respx.MockRouter, clock: FakeClock) -> None:
    """Three network errors in a row end in a failed report naming the error type, with two waits between."""
    calls = route(mock, "feishu").mock(side_effect=httpx.ConnectError("refused"))
    with capture_logs() as logs:
        report = send(clock, "feishu")
    assert report is not None
    assert (report.delivered, report.attempts, report.status, report.reason) == (
        False,
        3,
        None,
        "ConnectError",
    )
    assert calls.call_count == 3
    assert len(clock.slept) == 2
    assert events(logs, "webhook.failed")[0]["reason"] == "ConnectError"


def test_deadline_stops_retries(mock: respx.MockRouter, clock: FakeClock) -> None:
    """When the next backoff would pass the deadline, delivery stops there."""
    calls = route(mock, "wecom").mock(return_value=httpx.Response(503))
    report = send(clock, "wecom", budget=0.6)  # first wait 0.25 s fits; the second (0.5 s) would not
    assert report is not None
    assert (report.delivered, report.attempts) == (False, 2)
    assert report.reason == "HTTP 503; deadline reached"
    assert calls.call_count == 2
    assert clock.t < 100.6


def test_deadline_already_passed_sends_nothing(mock: respx.MockRouter, clock: FakeClock) -> None:
    """With no time left, nothing is sent and the report says why."""
    calls = route(mock, "wecom").mock(return_value=SUCCESS["wecom"])
    with capture_logs() as logs:
        report = send(clock, "wecom", budget=0)
    assert report is not None
    assert (report.delivered, report.attempts, report.reason) == (False, 0, "deadline reached")
    assert calls.call_count == 0
    assert events(logs, "webhook.failed")


def test_each_attempt_timeout_is_short_and_within_the_deadline(
    mock: respx.MockRouter, clock: FakeClock
) -> None:
    """An attempt never waits longer than 5 s, nor longer than the time left."""
    calls = route(mock, "slack").mock(return_value=SUCCESS["slack"])
    send(clock, "slack", budget=60)
    send(clock, "slack", budget=1.5)
    long, short = (call.request.extensions["timeout"] for call in calls.calls)
    assert long == {"connect": 3.0, "read": 5.0, "write": 5.0, "pool": 3.0}
    assert short == {"connect": 1.5, "read": 1.5, "write": 1.5, "pool": 1.5}


# --- when nothing is sent -----------------------------------------------------------------------------------


def test_no_url_sends_nothing(clock: FakeClock) -> None:
    """Without WEBHOOK_URL there is no delivery and no report."""
    assert send(clock, settings=Settings.from_env({})) is None


def test_nothing_worth_saying_sends_nothing(mock: respx.MockRouter, clock: FakeClock) -> None:
    """Under the default WEBHOOK_NOTIFY=changes, an invocation that only skipped sends nothing."""
    calls = route(mock, "feishu").mock(return_value=SUCCESS["feishu"])
    skipped = InvocationResult.of("timer", "e", (ImageOutcome(image_id="image-1", status="skipped"),))
    assert send(clock, "feishu", result=skipped) is None
    assert (
        send(clock, "feishu", result=skipped, settings=settings_for("feishu", WEBHOOK_NOTIFY="all"))
        is not None
    )
    assert calls.call_count == 1


@pytest.mark.parametrize(
    ("when", "status", "reason"),
    [
        (
            "changes",
            "skipped",
            "WEBHOOK_NOTIFY=changes and nothing was started, failed, deferred, exported, restored or deleted",
        ),
        (
            "failures",
            "started",
            "WEBHOOK_NOTIFY=failures and nothing failed, was deferred, export_failed or restore_failed",
        ),
    ],
)
def test_a_notification_not_sent_says_why_in_one_line(
    mock: respx.MockRouter, clock: FakeClock, when: str, status: str, reason: str
) -> None:
    """When WEBHOOK_NOTIFY leaves nothing to report, one webhook.skipped line gives the reason (the URL
    redacted), and nothing is posted."""
    calls = route(mock, "feishu").mock(return_value=SUCCESS["feishu"])
    quiet = InvocationResult.of("timer", "e", (ImageOutcome(image_id="image-1", status=status),))  # type: ignore[arg-type]
    with capture_logs() as logs:
        assert (
            send(clock, "feishu", result=quiet, settings=settings_for("feishu", WEBHOOK_NOTIFY=when)) is None
        )
    (line,) = events(logs, "webhook.skipped")
    assert line["reason"] == reason
    assert TOKEN_CANARY not in json.dumps(logs)
    assert calls.call_count == 0


# --- never raises, never leaks ------------------------------------------------------------------------------


class ExplodingClient(httpx.Client):
    def send(self, *_: Any, **__: Any) -> httpx.Response:  # type: ignore[override]
        msg = f"unexpected failure mentioning {URLS['dingtalk']} and {SECRET_CANARY}"
        raise RuntimeError(msg)


def test_unexpected_client_failure_never_raises(clock: FakeClock) -> None:
    """Whatever the HTTP client raises, notify returns a failed report and logs webhook.failed."""
    with ExplodingClient() as client, capture_logs() as logs:
        report = send(clock, "dingtalk", client=client)
    assert report is not None
    assert (report.delivered, report.attempts, report.reason) == (False, 1, "RuntimeError")
    assert events(logs, "webhook.failed")[0]["reason"] == "RuntimeError"


def test_any_failure_inside_notify_is_caught_and_logged(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """Even an unexpected error inside notify itself ends in a failed report and a webhook.failed line."""

    def broken(*_: Any, **__: Any) -> DeliveryReport:
        msg = f"boom {SECRET_CANARY}"
        raise RuntimeError(msg)

    monkeypatch.setattr("handler.adapters.webhooks.deliver", broken)
    with capture_logs() as logs:
        report = send(clock, "feishu")
    assert report is not None
    assert (report.delivered, report.attempts, report.reason) == (False, 0, "RuntimeError")
    assert SECRET_CANARY not in repr(logs)
    assert events(logs, "webhook.failed")


def test_broken_standard_secret_fails_the_delivery_not_the_invocation(
    mock: respx.MockRouter, clock: FakeClock
) -> None:
    """A whsec_ secret that is not base64 (settings refuse it; this guards settings built another way) fails the
    delivery with a reason naming the variable, sending nothing."""
    calls = route(mock, "standard").mock(return_value=SUCCESS["standard"])
    broken = settings_for("standard", secret=None).model_copy(update={"webhook_secret": "whsec_!!CANARY!!"})
    report = send(clock, "standard", settings=broken)
    assert report is not None
    assert (report.delivered, report.attempts) == (False, 0)
    assert report.reason is not None
    assert report.reason.startswith("WEBHOOK_SECRET:")
    assert "CANARY" not in report.reason
    assert calls.call_count == 0


def test_a_client_passed_in_is_left_open(mock: respx.MockRouter, clock: FakeClock) -> None:
    """notify uses the caller's client and does not close it."""
    route(mock, "slack").mock(return_value=SUCCESS["slack"])
    with httpx.Client() as client:
        send(clock, "slack", client=client)
        assert not client.is_closed


ECHOING_ANSWERS: list[httpx.Response | Exception] = [
    httpx.Response(500, json={"code": 1, "msg": f"bad {SECRET_CANARY} for {TOKEN_CANARY}"}),
    httpx.ConnectError(f"cannot reach {URLS['dingtalk']}"),
    httpx.Response(
        400, json={"code": 19021, "errcode": 1, "msg": f"token {TOKEN_CANARY}", "errmsg": TOKEN_CANARY}
    ),
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_secrets_never_reach_logs_or_reports(
    mock: respx.MockRouter, clock: FakeClock, fmt: WebhookFormat
) -> None:
    """The secret and the URL's credential parts appear in no log line and no report, even when echoed back."""
    route(mock, fmt).mock(side_effect=ECHOING_ANSWERS)
    with capture_logs() as logs:
        report = send(clock, fmt)
    assert report is not None
    assert not report.delivered
    assert report.target.endswith("***")
    assert report.platform_message is None or "***" in report.platform_message
    for text in (repr(logs), repr(report)):
        assert SECRET_CANARY not in text
        assert TOKEN_CANARY not in text
    assert events(logs, "webhook.failed")[0]["url"] == report.target


# --- the doctor's test message ------------------------------------------------------------------------------


def send_test_message(clock: FakeClock, settings: Settings, *, budget: float = 30.0) -> DeliveryReport | None:
    return send_test(settings, deadline=clock.monotonic() + budget, clock=clock)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_test_message_is_delivered_in_each_format_whatever_webhook_notify_says(
    mock: respx.MockRouter, clock: FakeClock, fmt: WebhookFormat
) -> None:
    """The doctor's test message goes out in the platform's own shape, says it is a test from the doctor, and
    is sent even when ``WEBHOOK_NOTIFY=failures`` would skip every notice without a failure."""
    calls = route(mock, fmt).mock(return_value=SUCCESS[fmt])
    report = send_test_message(clock, settings_for(fmt, WEBHOOK_NOTIFY="failures"))
    assert report is not None
    assert (report.delivered, report.format) == (True, fmt)
    body = calls.calls.last.request.content.decode()
    assert "test message from the doctor" in body
    assert "nothing was exported" in body


def test_the_standard_test_message_is_signed_and_typed_as_a_test(
    mock: respx.MockRouter, clock: FakeClock
) -> None:
    """A standard test message is a Standard Webhooks delivery of type ``image_export.test``, signed as a
    notice is, its data naming the region and bucket; each test a message of its own (a new webhook-id)."""
    calls = route(mock, "standard").mock(return_value=httpx.Response(204))
    settings = settings_for("standard", secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    send_test_message(clock, settings)
    clock.advance(1.0)
    send_test_message(clock, settings)
    first, second = (call.request for call in calls.calls)
    sent = json.loads(first.content)
    assert sent["type"] == "image_export.test"
    assert (sent["data"]["region"], sent["data"]["bucket"]) == (settings.region, "my-exports")
    assert first.headers["webhook-signature"].startswith("v1,")
    assert first.headers["webhook-id"] != second.headers["webhook-id"]


def test_a_refused_test_message_reports_the_platforms_code(mock: respx.MockRouter, clock: FakeClock) -> None:
    """A chat platform's refusal inside an HTTP 200 (a bad signature) is a failed delivery with its code, as
    for a notice; the secret and the URL's token reach neither the report nor the log."""
    route(mock, "feishu").mock(
        return_value=httpx.Response(200, json={"code": 19021, "msg": "sign match fail"})
    )
    with capture_logs() as logs:
        report = send_test_message(clock, settings_for("feishu"))
    assert report is not None
    assert (report.delivered, report.status, report.platform_code) == (False, 200, "19021")
    for text in (repr(logs), repr(report)):
        assert SECRET_CANARY not in text
        assert TOKEN_CANARY not in text


def test_no_url_sends_no_test_message(clock: FakeClock) -> None:
    assert send_test_message(clock, Settings.from_env({})) is None
