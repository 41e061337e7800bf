"""Hostile servers on a real loopback socket: answers dripped a byte at a time, answers of 200 MB, and a
gateway that echoes the request's credentials. The invocation keeps its budget, its memory and its secrets."""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

from handler.adapters import openapi
from handler.adapters.openapi import OpenApiClient
from handler.adapters.pacing import RateLimiter
from handler.adapters.retry import RetryPolicy
from handler.adapters.signing import Credentials
from handler.adapters.webhooks import _delivery, notify
from handler.errors import MalformedResponse, UnknownOutcomeError
from handler.models.results import ImageOutcome, InvocationResult
from handler.models.settings import Settings
from tests.support.emulated import invoke
from tests.support.events import load_event
from tests.support.fakes import FakeClock
from tests.support.hostile import HostileServer, http_head

CREDS = Credentials("AKLTcanaryaccess0000", "CANARY-secret-key-3f9a", "CANARY-session-token-77c1")
BODY = json.dumps({"ResponseMetadata": {"RequestId": "r-1"}, "Result": {"Tasks": []}}).encode()
# About 15 s of dripping at 0.05 s a byte: far longer than any budget below.
DRIPPED = http_head(length=len(BODY) + 200) + BODY + b" " * 200
RESULT = InvocationResult.of("direct", "evt-1", (ImageOutcome(image_id="image-1", status="started"),))
MIB = 1024 * 1024


def api_client(endpoint: str, http: httpx.Client) -> OpenApiClient:
    return OpenApiClient(
        http=http,
        endpoint=endpoint,
        region="cn-beijing",
        service="ecs",
        version="2020-04-01",
        credentials=CREDS,
        policy=RetryPolicy(max_attempts=1),
        limiter=RateLimiter(1000.0),
    )


def timed(action: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    try:
        outcome: Any = action()
    except Exception as error:  # the tests look at which error, and when
        outcome = error
    return outcome, time.monotonic() - started


def peak_during(action: Callable[[], Any]) -> tuple[Any, int]:
    """What ``action`` returned or raised, and the most memory allocated above the start while it ran."""
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        outcome, _ = timed(action)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return outcome, peak - base


# --- the API -----------------------------------------------------------------------------------------------


def test_an_api_answer_dripped_from_its_status_line_is_abandoned_at_the_deadline() -> None:
    """A gateway that sends even its status line one byte at a time (never tripping the 10 s read timeout)
    holds a call no longer than the call's deadline: the outcome is unknown, and it comes on time."""
    http = openapi.shared_http_client(connect_timeout=3.0, read_timeout=10.0)
    with HostileServer("drip", answer=DRIPPED) as server:
        api = api_client(server.url, http)
        outcome, elapsed = timed(
            lambda: api.call("DescribeTasks", deadline=time.monotonic() + 1.0, idempotent=True)
        )
    assert isinstance(outcome, UnknownOutcomeError)
    assert outcome.code == "ReadTimeout"
    assert elapsed < 2.5  # the 1 s deadline and about a second (the drip alone would take 15 s)


def test_an_api_body_dripped_through_any_client_is_abandoned_at_the_deadline() -> None:
    """Headers at once, then the body a byte at a time, through a plain httpx client: still on time."""
    with (
        httpx.Client(timeout=10.0) as http,
        HostileServer("drip", at_once=DRIPPED[:60], answer=DRIPPED[60:]) as server,
    ):
        api = api_client(server.url, http)
        outcome, elapsed = timed(
            lambda: api.call("DescribeTasks", deadline=time.monotonic() + 1.0, idempotent=True)
        )
    assert isinstance(outcome, UnknownOutcomeError)
    assert elapsed < 2.5


def test_a_200_mb_api_answer_is_cut_at_8_mib_and_memory_stays_flat() -> None:
    """An answer of 200 MB is read up to 8 MiB, then refused as a MalformedResponse; the process never
    holds more than a few times the cap, and the rest is never even received."""
    http = openapi.shared_http_client(connect_timeout=3.0, read_timeout=10.0)
    with HostileServer("flood", at_once=http_head(length=200 * MIB)) as server:
        api = api_client(server.url, http)
        outcome, peak = peak_during(
            lambda: api.call("DescribeImages", deadline=time.monotonic() + 20, idempotent=True)
        )
        sent = server.sent
    assert isinstance(outcome, MalformedResponse)
    assert "larger than 8 MiB" in outcome.message
    assert peak < 24 * MIB
    assert sent < 100 * MIB


def test_a_compressed_api_answer_is_refused_unread() -> None:
    """Requests ask for identity encoding; an answer compressed anyway is a MalformedResponse without being
    decompressed (a small compressed answer could expand to gigabytes)."""
    head = http_head(length=64).replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n")
    http = openapi.shared_http_client(connect_timeout=3.0, read_timeout=10.0)
    with HostileServer("flood", at_once=head, flood_bytes=64) as server:
        api = api_client(server.url, http)
        with pytest.raises(MalformedResponse) as caught:
            api.call("DescribeTasks", deadline=time.monotonic() + 10, idempotent=True)
    assert "Content-Encoding 'gzip' although identity was asked" in caught.value.message


@pytest.mark.parametrize("action", ["DescribeTasks", "ExportImage"])
@respx.mock
def test_deeply_nested_api_json_is_a_malformed_response(action: str) -> None:
    """An answer nested a million levels deep is a typed MalformedResponse (for ExportImage: an unknown
    outcome, looked up before any resend), never a RecursionError."""
    respx.get(url__startswith="https://gw.example.com").mock(
        return_value=httpx.Response(200, content=b'{"Result":' + b"[" * 1_000_000)
    )
    with httpx.Client() as http:
        api = api_client("https://gw.example.com", http)
        with pytest.raises(MalformedResponse) as caught:
            api.call(action, deadline=time.monotonic() + 10, idempotent=action != "ExportImage")
    assert isinstance(caught.value, UnknownOutcomeError)
    assert "too deep" in caught.value.message


# --- the webhook -------------------------------------------------------------------------------------------


def webhook_settings(url: str) -> Settings:
    return Settings.from_env(
        {"WEBHOOK_URL": url + "/hook", "WEBHOOK_FORMAT": "feishu", "WEBHOOK_NOTIFY": "all"}
    )


def test_a_dripping_webhook_receiver_holds_nothing_past_the_deadline() -> None:
    """A receiver that drips its 200 holds the notification no longer than the deadline it was given."""
    with HostileServer("drip", answer=DRIPPED) as server:
        settings = webhook_settings(server.url)
        report, elapsed = timed(
            lambda: notify(RESULT, settings, region="cn-beijing", deadline=time.monotonic() + 1.0)
        )
    assert report is not None
    assert not report.delivered
    assert elapsed < 2.5


def test_each_webhook_attempt_ends_within_its_own_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """With plenty of budget left, each attempt still ends at the webhook's own per-attempt limit (5 s,
    shortened here), and the three attempts together take about three of those limits."""
    monkeypatch.setattr(_delivery, "ATTEMPT_TIMEOUT", 0.4)
    clock = FakeClock()
    with HostileServer("drip", answer=DRIPPED) as server:
        settings = webhook_settings(server.url)
        report, elapsed = timed(
            lambda: notify(RESULT, settings, region="cn-beijing", deadline=clock.t + 60, clock=clock)
        )
    assert report is not None
    assert (report.delivered, report.attempts, report.reason) == (False, 3, "ReadTimeout")
    assert elapsed < 3.5


def test_a_200_mb_webhook_answer_is_read_to_64_kib_only() -> None:
    """A receiver answering 200 MB costs the process well under a megabyte: only the 64 KiB that are
    parsed are read."""
    with HostileServer("flood", at_once=http_head(length=200 * MIB)) as server:
        settings = webhook_settings(server.url)
        report, peak = peak_during(
            lambda: notify(RESULT, settings, region="cn-beijing", deadline=time.monotonic() + 20)
        )
        sent = server.sent
    assert report is not None
    assert (report.delivered, report.reason) == (False, "no success code in the answer")
    assert peak < 2 * MIB
    assert sent < 100 * MIB


# --- the whole invocation ----------------------------------------------------------------------------------

_OWN_PREFIXES = ("VOLCENGINE_", "VOLC_", "EXPORT_", "WEBHOOK_", "FUNCTION_", "LOG_LEVEL")


@pytest.fixture
def set_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Replace the function's own environment variables with the given ones."""
    for name in list(os.environ):
        if name.startswith(_OWN_PREFIXES):
            monkeypatch.delenv(name)

    def set_all(**env: str) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    return set_all


def test_an_invocation_against_a_dripping_gateway_returns_within_its_budget(
    set_env: Callable[..., None],
) -> None:
    """With a 4 s budget and a gateway that drips every answer, the invocation returns (deferring the
    image) within its budget plus about a second."""
    with HostileServer("drip", answer=DRIPPED) as server:
        set_env(
            VOLCENGINE_ENDPOINT=server.url,
            VOLCENGINE_ACCESS_KEY=CREDS.access_key,
            VOLCENGINE_SECRET_KEY=CREDS.secret_key,
            VOLCENGINE_CONNECT_TIMEOUT="0.3",
            VOLCENGINE_READ_TIMEOUT="0.7",
            EXPORT_TOS_BUCKET="demo-exports",
        )
        (result, _raised), elapsed = timed(lambda: invoke(load_event("direct_single"), timeout=4.0))
    assert elapsed < 5.5
    assert result["results"][0]["status"] in ("deferred", "failed")


def test_credentials_echoed_by_the_gateway_never_leave_the_process(
    set_env: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    """A gateway whose error quotes the Authorization header, the session token and the secret key: none
    of them reaches the result, the webhook body or the logs."""
    set_env(
        VOLCENGINE_ENDPOINT="https://gw.example.com",
        VOLCENGINE_ACCESS_KEY=CREDS.access_key,
        VOLCENGINE_SECRET_KEY=CREDS.secret_key,
        VOLCENGINE_SESSION_TOKEN=CREDS.session_token or "",
        EXPORT_TOS_BUCKET="demo-exports",
        WEBHOOK_URL="https://hooks.example.com/in",
        WEBHOOK_FORMAT="standard",
        WEBHOOK_NOTIFY="all",
    )
    signatures: list[str] = []

    def echo(request: httpx.Request) -> httpx.Response:
        authorization = request.headers["Authorization"]
        signatures.append(authorization.rpartition("Signature=")[2])
        message = (
            f"denied: Authorization: {authorization}; X-Security-Token: {request.headers['X-Security-Token']}; "
            f"expected secret {CREDS.secret_key}"
        )
        error = {"Code": "AccessDenied", "Message": message}
        return httpx.Response(403, json={"ResponseMetadata": {"RequestId": "r-9", "Error": error}})

    with respx.mock(assert_all_called=False) as mock:
        mock.get(url__startswith="https://gw.example.com").mock(side_effect=echo)
        hook = mock.post("https://hooks.example.com/in").mock(return_value=httpx.Response(204))
        result, _raised = invoke(load_event("direct_single"), timeout=30.0)
        webhook_body = hook.calls.last.request.content.decode()
    logs = capsys.readouterr()
    assert result["results"][0]["error"]["code"] == "AccessDenied"
    assert "denied: Authorization" in webhook_body
    leaked = [CREDS.secret_key, CREDS.session_token, CREDS.access_key, *signatures]
    for text in (json.dumps(result), webhook_body, logs.out, logs.err):
        assert [secret for secret in leaked if secret and secret in text] == []
