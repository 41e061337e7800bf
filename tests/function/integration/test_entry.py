"""The function entry end to end at the HTTP edge (respx): every trigger, every status, raising, redaction."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from handler import handler
from handler.adapters.signing import Credentials
from handler.core.budget import smallest_workable_budget
from handler.entry import _report, http_response
from handler.errors import InvocationIncomplete
from handler.models.results import InvocationResult
from handler.models.settings import Settings
from tests.support.builders import EXPORT_FAILED, EXPORTED, GIB, QUEUED
from tests.support.events import load_event
from tests.support.gateway import ENDPOINT, Gateway
from tests.support.refused_settings import CREDENTIAL_ROWS, SECRET_CANARY, SETTINGS_ROWS, Refused, params

ACCESS_KEY = "AKLTcanaryAccessKey0001"
SECRET = "canary-SECRET-do-not-log-7d1e"
TOKEN = "canary-TOKEN-do-not-log-93b2"
CREDS = Credentials(ACCESS_KEY, SECRET, TOKEN)
SAMPLE_IDS = ("image-ybqi99s7yq8rx7mnk44b", "image-3f7k2m9q1x8w5v6n4b0c", "image-p8d2r5t7y1u3i9o0a6sl")


class Context:
    request_id = "req-local-1"

    def __init__(self, seconds: float = 300) -> None:
        self.seconds = seconds

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds * 1000)


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VOLC_ACCESSKEY", "VOLC_SECRETKEY", "WEBHOOK_URL", "EXPORT_DEDUPE_HOURS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VOLCENGINE_ACCESS_KEY", ACCESS_KEY)
    monkeypatch.setenv("VOLCENGINE_SECRET_KEY", SECRET)
    monkeypatch.setenv("VOLCENGINE_SESSION_TOKEN", TOKEN)
    monkeypatch.setenv("VOLCENGINE_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("VOLCENGINE_CREDENTIAL_FILE", "")
    monkeypatch.setenv("EXPORT_TOS_BUCKET", "demo-exports")
    monkeypatch.setenv("VOLCENGINE_BACKOFF_BASE", "0.01")
    monkeypatch.setenv("VOLCENGINE_BACKOFF_CAP", "0.02")
    monkeypatch.setenv("VOLCENGINE_MAX_RPS", "1000")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")


def _empty_bucket(request: httpx.Request) -> httpx.Response:
    """The export bucket's TOS, empty: what a timer's follow-up lists (the start records), an export's start
    record written and removed."""
    headers = {"x-tos-request-id": "tos-req", "Date": "Thu, 26 Nov 2026 12:00:00 GMT"}
    if request.method == "GET":
        prefix = request.url.params.get("prefix", "")
        listing = {
            "Name": "demo-exports",
            "Prefix": prefix,
            "KeyCount": 0,
            "MaxKeys": 1000,
            "IsTruncated": False,
        }
        return httpx.Response(200, json=listing, headers=headers)
    if request.method == "PUT":
        return httpx.Response(200, headers={**headers, "ETag": '"e"', "x-tos-hash-crc64ecma": "1"})
    return httpx.Response(204, headers=headers)


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    gw = Gateway(CREDS)
    for image_id in SAMPLE_IDS:
        gw.add_image(image_id, name=f"web-{image_id[-4:]}", tags={"env": "prod", "team": "platform"})
    gw.add_image("image-m1n2b3v4c5x6z7l8k9jh")
    gw.add_image("image-k4j6h8g2f0d1s3a5q7wz", hours_ago=100)
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="ecs.test.volcengineapi.com").mock(side_effect=gw)
        mock.route(host="demo-exports.tos-cn-beijing.volces.com").mock(side_effect=_empty_bucket)
        mock.route(host="127.0.0.1").pass_through()  # local webhook receivers are real servers
        yield gw
    gw.close()


def invoke(event: Any, seconds: float = 300) -> dict[str, Any]:
    try:
        return handler(event, Context(seconds))
    except InvocationIncomplete as incomplete:
        return {"raised": str(incomplete), **incomplete.result}


def log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    captured = capsys.readouterr()
    assert captured.out == ""  # logs go to stderr only
    return [json.loads(line) for line in captured.err.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("name", "trigger", "started"),
    [
        ("timer_scan", "timer", 3),
        ("timer_empty", "timer", 4),
        ("timer_image_ids", "timer", 2),
        ("image_created", "event", 1),
        ("eventbridge", "event", 1),
        ("direct_single", "direct", 1),
        ("direct_batch", "direct", 3),
    ],
)
def test_each_sample_event_exports_its_images(
    gateway: Gateway, name: str, trigger: str, started: int
) -> None:
    """Every sample trigger starts the exports it names (or scans for), with TaskIds, and returns ok."""
    result = invoke(load_event(name))
    assert result["ok"] is True
    assert result["trigger"] == trigger
    assert [r["status"] for r in result["results"]] == ["started"] * started
    assert all(r["task_id"].startswith("t-") for r in result["results"])
    assert all(r["object_key"].endswith(f"_{r['image_id']}_system.qcow2") for r in result["results"])


def test_timer_scan_filters_by_payload(gateway: Gateway) -> None:
    """The scan payload's prefix, lookback and tags pick the images; the others are left alone."""
    result = invoke(load_event("timer_scan"))
    assert {r["image_id"] for r in result["results"]} == set(SAMPLE_IDS)
    assert {r["object_key"].split("_")[0] for r in result["results"]} == {"nightly"}
    assert gateway.exports("image-m1n2b3v4c5x6z7l8k9jh") == 0


def test_http_event_answers_with_status_and_json_body(gateway: Gateway) -> None:
    """An HTTP trigger gets statusCode, headers and the result as its JSON body; it never raises."""
    response = handler(load_event("http_direct"), Context())
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert (body["ok"], body["trigger"]) == (True, "http")


def _http(payload: Any) -> dict[str, Any]:
    body = base64.b64encode(json.dumps(payload).encode()).decode()
    return {"httpMethod": "POST", "path": "/", "headers": {}, "body": body, "isBase64Encoded": True}


def test_http_status_tells_the_caller_what_to_do(gateway: Gateway) -> None:
    """400 for a bad event, 503 with Retry-After when deferred, 502 when the API refused for good."""
    assert handler(_http({"ImageId": "nope"}), Context())["statusCode"] == 400
    gateway.add_image("image-creating00000000001", status="creating")
    deferred = handler(_http({"ImageId": "image-creating00000000001"}), Context())
    assert (deferred["statusCode"], deferred["headers"]["Retry-After"]) == (503, "60")
    gone = handler(_http({"ImageId": "image-unknown0000000000001"}), Context())
    assert gone["statusCode"] == 502
    assert json.loads(gone["body"])["results"][0]["error"]["code"] == "InvalidImage.NotFound"


def test_http_status_follows_the_type_of_error_that_stopped_the_invocation(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan the settings refuse (lookback past the dedupe window) is a 400; a missing bucket is a 500."""
    monkeypatch.setenv("EXPORT_DEDUPE_HOURS", "48")
    scan = {"type": "faas.timer.event", "specversion": "1.0", "id": "t-1", "data": '{"LookbackHours": 100}'}
    assert handler(_http(scan), Context())["statusCode"] == 400
    monkeypatch.delenv("EXPORT_TOS_BUCKET")
    assert handler(_http({"ImageId": SAMPLE_IDS[0]}), Context())["statusCode"] == 500
    assert gateway.exports(SAMPLE_IDS[0]) == 0


def test_the_same_event_twice_exports_once(gateway: Gateway) -> None:
    """A redelivered event skips the image with the first export's TaskId."""
    first = invoke(load_event("image_created"))
    second = invoke(load_event("image_created"))
    assert second["results"][0]["status"] == "skipped"
    assert second["results"][0]["task_id"] == first["results"][0]["task_id"]
    assert gateway.exports(SAMPLE_IDS[0]) == 1


def test_deferred_image_raises_with_the_result(gateway: Gateway) -> None:
    """An image still creating is deferred, and the entry raises so the platform retries the event."""
    gateway.add_image("image-creating00000000002", status="creating")
    with pytest.raises(InvocationIncomplete) as raised:
        handler({"ImageId": "image-creating00000000002"}, Context())
    assert raised.value.deferred == 1
    assert "1 image(s) deferred" in str(raised.value)
    assert raised.value.result["results"][0]["status"] == "deferred"
    assert raised.value.result["ok"] is False


def test_partial_failure_in_a_batch(gateway: Gateway) -> None:
    """One image's terminal failure does not stop the others, and does not raise (retrying cannot help)."""
    gateway.emulator.fail_next("ExportImage", 400, "InvalidTosPutObject.AccessDenied", "injected")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EXPORT_CONCURRENCY", "1")
        result = handler(load_event("direct_batch"), Context())
    statuses = [r["status"] for r in result["results"]]
    assert statuses == ["failed", "started", "started"]
    error = result["results"][0]["error"]
    assert error.pop("request_id").isdigit()
    assert error == {"code": "InvalidTosPutObject.AccessDenied", "message": "injected", "retryable": False}


def test_exhausted_retries_fail_retryably_and_raise(gateway: Gateway) -> None:
    """Repeated 500s use up the retry budget: failed with retryable true, and the entry raises."""
    gateway.emulator.fail_next("ExportImage", 500, "InternalError", times=4)
    result = invoke({"ImageId": SAMPLE_IDS[0]})
    assert "raised" in result
    assert result["results"][0]["status"] == "failed"
    assert result["results"][0]["error"]["retryable"] is True
    assert gateway.exports(SAMPLE_IDS[0]) == 0


def test_throttling_is_retried_and_the_export_succeeds(gateway: Gateway) -> None:
    """A 429 is waited out and the export still starts, exactly once."""
    gateway.emulator.fail_next("ExportImage", 429, "FlowLimitExceeded")
    result = invoke({"ImageId": SAMPLE_IDS[0]})
    assert result["results"][0]["status"] == "started"
    assert gateway.exports(SAMPLE_IDS[0]) == 1


def test_a_tiny_time_budget_defers_instead_of_cutting_requests(gateway: Gateway) -> None:
    """With too little time left, images are deferred before any export is sent, and the reason says the
    time budget stopped them."""
    result = invoke({"ImageIds": list(SAMPLE_IDS)}, seconds=1)
    assert "raised" in result
    assert {r["status"] for r in result["results"]} == {"deferred"}
    assert all("time budget" in r["reason"] for r in result["results"])
    assert gateway.exports(SAMPLE_IDS[0]) == 0


@pytest.mark.parametrize("seconds", [20, smallest_workable_budget(Settings())])
def test_a_short_budget_exports_against_a_prompt_api(gateway: Gateway, seconds: float) -> None:
    """A 20 s budget (and the smallest workable one) with the default 3 s + 10 s timeouts exports every
    image when the API answers promptly."""
    result = invoke({"ImageIds": list(SAMPLE_IDS)}, seconds=seconds)
    assert "raised" not in result
    assert {r["status"] for r in result["results"]} == {"started"}
    assert all(gateway.exports(i) == 1 for i in SAMPLE_IDS)


def test_missing_bucket_is_a_configuration_error(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a bucket anywhere the result names EXPORT_TOS_BUCKET and nothing is called."""
    monkeypatch.delenv("EXPORT_TOS_BUCKET")
    result = invoke({"ImageId": SAMPLE_IDS[0]})
    assert result["results"][0]["error"]["code"] == "ConfigurationError"
    assert "EXPORT_TOS_BUCKET" in result["results"][0]["error"]["message"]
    assert gateway.requests == []


def test_bad_setting_is_reported_not_raised(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad environment value becomes a failed result naming the variable, with no API call."""
    monkeypatch.setenv("EXPORT_TOS_PREFIX", "not valid!")
    result = invoke({"ImageId": SAMPLE_IDS[0]})
    assert result["results"][0]["error"]["message"].startswith("EXPORT_TOS_PREFIX: ")
    assert gateway.requests == []


@pytest.mark.parametrize("row", params(SETTINGS_ROWS + CREDENTIAL_ROWS))
def test_a_refused_input_is_a_result_naming_the_variable_never_a_traceback(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], row: Refused
) -> None:
    """Each refused setting or credential (tests.support.refused_settings) ends the invocation with one failed
    ConfigurationError result that names the variable: no API call, no traceback, no secret in the log."""
    monkeypatch.setenv(row.variable, row.value)
    result = invoke({"ImageId": SAMPLE_IDS[0]})
    (outcome,) = result["results"]
    assert (outcome["status"], outcome["error"]["code"]) == ("failed", "ConfigurationError")
    assert outcome["error"]["message"].startswith(f"{row.variable}: ")
    assert row.says in outcome["error"]["message"]
    assert gateway.requests == []
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert '"exception"' not in err
    assert SECRET_CANARY not in err + json.dumps(result)


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_credential_file_that_is_not_a_regular_file_is_a_result_at_once(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str
) -> None:
    """VOLCENGINE_CREDENTIAL_FILE naming a FIFO (which would block) or a directory: a ConfigurationError
    result naming the file, at once."""
    path = tmp_path / "credential"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    for name in ("VOLCENGINE_ACCESS_KEY", "VOLCENGINE_SECRET_KEY", "VOLCENGINE_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("VOLCENGINE_CREDENTIAL_FILE", str(path))
    started = time.monotonic()
    result = invoke({"ImageId": SAMPLE_IDS[0]})
    assert time.monotonic() - started < 5
    (outcome,) = result["results"]
    assert outcome["error"]["code"] == "ConfigurationError"
    assert outcome["error"]["message"].startswith(f"{path}: the credential file is not a regular file")
    assert gateway.requests == []


def test_an_unknown_region_is_used_with_a_warning(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A region id outside KNOWN_REGIONS is no ConfigurationError: the invocation goes on, and the log says
    once that the region is not a known one (settings.unknown_region), naming it."""
    monkeypatch.setenv("VOLCENGINE_REGION", "eu-west-1")
    result = invoke({"ImageId": SAMPLE_IDS[0]})
    assert all(r.get("error", {}).get("code") != "ConfigurationError" for r in result["results"])
    warnings = [line for line in log_lines(capsys) if line["event"] == "settings.unknown_region"]
    assert [(w["level"], w["region"]) for w in warnings] == [("warning", "eu-west-1")]
    assert "cn-beijing" in warnings[0]["known"]


def test_a_known_region_gives_no_warning(gateway: Gateway, capsys: pytest.CaptureFixture[str]) -> None:
    """The default region is known: no settings.unknown_region line."""
    invoke({"ImageId": SAMPLE_IDS[0]})
    assert all(line["event"] != "settings.unknown_region" for line in log_lines(capsys))


def test_invalid_event_costs_no_api_call(gateway: Gateway) -> None:
    """A bad event is an InvalidEvent result naming the field, never an exception or an API call."""
    result = invoke(load_event("invalid"))
    assert result["ok"] is False
    assert result["results"][0]["error"]["code"] == "InvalidEvent"
    assert result["results"][0]["error"]["message"].startswith("ImageId: ")
    assert gateway.requests == []


def test_logs_are_json_with_correlation_and_one_line_per_image(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every log line is JSON with the event id as correlation id; each image gets one outcome line."""
    invoke(load_event("direct_batch"))
    lines = log_lines(capsys)
    assert all(
        {"timestamp", "level", "event", "correlation_id", "request_id", "cold_start"} <= set(line)
        for line in lines
    )
    outcomes = [line for line in lines if line["event"] == "image.outcome"]
    assert sorted(line["image_id"] for line in outcomes) == sorted(SAMPLE_IDS)
    assert all(line["status"] == "started" and line["task_id"] for line in outcomes)
    calls = [line for line in lines if line["event"] == "api.call"]
    # DescribeImages: the images' metadata for their start record (an event has no listing of its own).
    assert {c["action"] for c in calls} == {"DescribeImages", "DescribeTasks", "ExportImage", "TagResources"}
    assert all("api_request_id" in c and "duration_ms" in c and c["attempt"] == 1 for c in calls)
    timer = load_event("timer_empty")
    invoke(timer)
    assert {line["correlation_id"] for line in log_lines(capsys)} == {timer["id"]}


@pytest.mark.parametrize(
    "scenario",
    ["success", "signature", "server_error", "lost_answer"],
)
def test_secrets_never_reach_logs_results_or_errors(
    gateway: Gateway, capsys: pytest.CaptureFixture[str], scenario: str
) -> None:
    """At DEBUG, over success and failure paths, no secret key or token appears, and the access key is cut."""
    import httpx

    if scenario == "signature":
        gateway.credentials = Credentials(ACCESS_KEY, "another-secret-entirely", TOKEN)
    elif scenario == "server_error":
        gateway.emulator.fail_next("ExportImage", 500, "InternalError", times=4)
    elif scenario == "lost_answer":
        gateway.emulator.drop_next("ExportImage")
        gateway.lost_answer = httpx.ReadTimeout(f"timed out, key {SECRET} token {TOKEN}")
    result = invoke({"ImageId": SAMPLE_IDS[0]})
    text = capsys.readouterr().err + json.dumps(result)
    assert SECRET not in text
    assert TOKEN not in text
    assert ACCESS_KEY not in text
    if scenario == "signature":
        assert result["results"][0]["error"]["code"] == "SignatureDoesNotMatch"
        assert gateway.requests == [("DescribeTasks", 401)]  # refused once, never retried


def test_cold_start_is_true_only_once(gateway: Gateway, capsys: pytest.CaptureFixture[str]) -> None:
    """The first invocation in a process is marked cold; the next is warm (each test starts as a new process:
    the autouse reset_process_state makes it cold again)."""
    invoke({"ImageId": SAMPLE_IDS[0]})
    invoke({"ImageId": SAMPLE_IDS[1]})
    lines = [line for line in log_lines(capsys) if line["event"] == "invocation.result"]
    assert [line["cold_start"] for line in lines] == [True, False]


@pytest.mark.parametrize("answer", [200, 500])
def test_webhook_gets_the_result_and_its_failure_changes_nothing(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], answer: int
) -> None:
    """A real local receiver gets one signed delivery after the outcomes are logged; a failing one changes
    neither the result nor the raise semantics, and its secret never reaches the log."""
    from exporter_tools.receiver import WebhookReceiver

    secret = "whsec_" + base64.b64encode(b"canary-webhook-key-0123456789").decode()
    receiver = WebhookReceiver(fmt="standard", secret=secret, answer=(answer, "{}"))
    receiver.start()
    try:
        monkeypatch.setenv("WEBHOOK_URL", receiver.url)
        monkeypatch.setenv("WEBHOOK_SECRET", secret)
        result = handler({"ImageId": SAMPLE_IDS[0]}, Context())
    finally:
        receiver.stop()
    assert result["results"][0]["status"] == "started"
    assert len(receiver.deliveries) >= 1
    delivery = receiver.deliveries[0]
    assert delivery.verified
    data = json.loads(delivery.body)["data"]
    assert data.pop("counts")["started"] == 1
    assert data == result
    lines = log_lines(capsys)
    events = [line["event"] for line in lines]
    assert events.index("image.outcome") < events.index(
        "webhook.delivered" if answer == 200 else "webhook.failed"
    )
    assert "canary-webhook-key" not in json.dumps(lines)
    assert secret not in json.dumps(lines)


def test_scan_lookback_longer_than_the_dedupe_window_is_refused(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timer asking to look back further than the dedupe window could export twice: refused, no API call."""
    monkeypatch.setenv("EXPORT_DEDUPE_HOURS", "48")
    event = {**load_event("timer_empty"), "data": '{"LookbackHours": 72}'}
    result = invoke(event)
    error = result["results"][0]["error"]
    assert error["code"] == "InvalidEvent"
    assert error["message"].startswith("data.LookbackHours: ")
    assert "EXPORT_DEDUPE_HOURS" in error["message"]
    assert gateway.requests == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "ImageId": st.sampled_from([*SAMPLE_IDS, "image-unknown0000000000009", "bad"]) | st.text(max_size=8),
        "ImageIds": st.lists(st.sampled_from(SAMPLE_IDS), max_size=3) | json_values,
        "type": st.sampled_from(["faas.timer.event", "x.y"]),
        "specversion": st.just("1.0"),
        "id": st.text(max_size=10) | st.integers(),
        "data": st.sampled_from(["", "{}", '{"ImageIds": []}', "{bad"]) | json_values,
        "httpMethod": st.just("POST"),
        "body": st.text(max_size=30),
        "TOSBucket": st.sampled_from(["demo-exports", "Bad_Bucket"]),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=json_values | event_like)
def test_any_json_yields_a_result_never_a_crash(
    gateway: Gateway, capsys: pytest.CaptureFixture[str], event: Any
) -> None:
    """Whatever JSON arrives, the entry returns a result (or raises only to ask for a retry), and the log
    never carries a traceback."""
    try:
        out = handler(event, Context())
    except InvocationIncomplete as incomplete:
        out = incomplete.result
    body = json.loads(out["body"]) if "statusCode" in out else out
    assert set(body) >= {"ok", "trigger", "event_id", "results"}
    for outcome in body["results"]:
        assert outcome["status"] in ("started", "skipped", "failed", "deferred")
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert '"exception"' not in err


def test_a_defect_is_logged_then_raised(
    gateway: Gateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception is logged once with its traceback, secrets masked, then raised for the platform;
    an HTTP caller gets a 503 instead."""
    import handler.core.export_flow as run_module

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(f"bug while holding {SECRET}")

    monkeypatch.setattr(run_module, "run_command", broken)
    with pytest.raises(RuntimeError):
        handler({"ImageId": SAMPLE_IDS[0]}, Context())
    lines = log_lines(capsys)
    crashed = [line for line in lines if line["event"] == "invocation.crashed"]
    assert len(crashed) == 1
    assert "RuntimeError" in crashed[0]["exception"]
    assert SECRET not in json.dumps(lines)
    response = handler(_http({"ImageId": SAMPLE_IDS[0]}), Context())
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["results"][0]["error"]["retryable"] is True


# -- how the entry answers for follow-up outcomes: HTTP status, retrying, and the log level ----------------


def test_an_export_that_ended_badly_is_a_502_that_is_not_retried() -> None:
    """An export_failed result makes ok false and the HTTP status 502 without Retry-After: re-running the
    request cannot change how an earlier export ended, and the invocation does not raise."""
    result = InvocationResult.of("http", "evt-1", (EXPORTED, EXPORT_FAILED))

    response = http_response(result)

    assert response["statusCode"] == 502
    assert "Retry-After" not in response["headers"]
    assert json.loads(response["body"])["ok"] is False
    assert not result.should_raise


def test_exported_and_queued_results_are_ok() -> None:
    """exported and queued leave ok true: a 200, nothing to retry."""
    result = InvocationResult.of("http", "evt-1", (EXPORTED, QUEUED))

    assert http_response(result)["statusCode"] == 200


def test_export_failed_is_logged_as_an_error_with_its_code() -> None:
    """The log line of an export_failed outcome is at error level and carries its code; exported is info
    with its size."""
    with capture_logs() as logs:
        _report(InvocationResult.of("timer", "evt-1", (EXPORTED, EXPORT_FAILED)))

    lines = {line["image_id"]: line for line in logs if line["event"] == "image.outcome"}
    assert lines["image-bad"]["log_level"] == "error"
    assert lines["image-bad"]["error"]["code"] == "ExportTaskFailed"
    assert lines["image-ok"]["log_level"] == "info"
    assert lines["image-ok"]["size_bytes"] == 40 * GIB
