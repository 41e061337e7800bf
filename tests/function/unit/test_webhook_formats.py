"""Webhook message bodies, signatures, escaping, size limits and redaction: pure functions, no network."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from handler.adapters.webhooks import (
    build_request,
    fix_for,
    infer_format,
    redact_url,
    should_notify,
)
from handler.adapters.webhooks._formats import (
    MAX_IMAGE_LINES,
    compose_text,
    dingtalk_sign,
    feishu_sign,
    message_id,
    secret_parts,
    signing_key,
    standard_signature,
)
from handler.errors import ERROR_CODES, ConfigurationError
from handler.models.results import ErrorInfo, ImageOutcome, InvocationResult
from handler.models.settings import NotifyWhen, WebhookFormat
from tests.support.builders import examples, outcome, result_of

CHAT_FORMATS: tuple[WebhookFormat, ...] = ("feishu", "dingtalk", "wecom", "slack")
NOW = 1_700_000_000.25

# Published check values (tests/vectors/webhooks.json): Standard Webhooks 1.0's own vector, and the Feishu
# and DingTalk signing rules as documented.
_VECTORS = json.loads((Path(__file__).resolve().parents[2] / "vectors" / "webhooks.json").read_text())
STANDARD_VECTOR: dict[str, str] = _VECTORS["standard_webhooks"]
FEISHU_VECTOR: dict[str, str] = _VECTORS["feishu"]
DINGTALK_VECTOR: dict[str, str] = _VECTORS["dingtalk"]


def body_of(fmt: WebhookFormat, result: InvocationResult, secret: str | None = None) -> dict[str, Any]:
    request = build_request(
        fmt, result, url="https://example.com/hook", secret=secret, region="cn-beijing", bucket=None, now=NOW
    )
    data: dict[str, Any] = json.loads(request.content)
    return data


def chat_text(fmt: WebhookFormat, result: InvocationResult, bucket: str | None = None) -> str:
    return compose_text(fmt, result, region="cn-beijing", bucket=bucket)


# --- signatures against the published vectors --------------------------------------------------------------


def test_standard_signature_matches_the_specification_vector() -> None:
    """A Standard Webhooks signature equals the specification's published vector."""
    v = STANDARD_VECTOR
    assert (
        standard_signature(v["secret"], v["msg_id"], v["timestamp"], v["payload"].encode()) == v["signature"]
    )


def test_feishu_sign_matches_the_vector() -> None:
    """Feishu's sign equals the documented rule's check value."""
    assert feishu_sign(FEISHU_VECTOR["secret"], FEISHU_VECTOR["timestamp"]) == FEISHU_VECTOR["sign"]


def test_dingtalk_sign_matches_the_vector_once_url_encoded() -> None:
    """DingTalk's sign, URL-encoded as it is sent, equals the documented rule's check value."""
    request = build_request(
        "dingtalk",
        result_of(outcome()),
        url="https://oapi.dingtalk.com/robot/send?access_token=abc",
        secret=DINGTALK_VECTOR["secret"],
        region="cn-beijing",
        bucket=None,
        now=int(DINGTALK_VECTOR["timestamp_ms"]) / 1000,
    )
    query = urlsplit(request.url).query
    assert f"timestamp={DINGTALK_VECTOR['timestamp_ms']}" in query
    assert f"sign={DINGTALK_VECTOR['sign_urlencoded']}" in query
    assert query.startswith("access_token=abc&")
    assert dingtalk_sign(DINGTALK_VECTOR["secret"], DINGTALK_VECTOR["timestamp_ms"]) == unquote(
        DINGTALK_VECTOR["sign_urlencoded"]
    )


@pytest.mark.parametrize(
    ("secret", "key"),
    [
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")),
        ("whsec_AAEC", b"\x00\x01\x02"),
        ("whsec_AAECAw", b"\x00\x01\x02\x03"),  # unpadded base64, as the reference library accepts
        ("plain secret", b"plain secret"),  # no prefix: the secret's UTF-8 bytes
        ("密钥", "密钥".encode()),
    ],
)
def test_signing_key_decodes_whsec_and_takes_other_secrets_as_utf8(secret: str, key: bytes) -> None:
    """A whsec_ secret is base64 after the prefix; any other secret is used as its UTF-8 bytes."""
    assert signing_key(secret) == key


@pytest.mark.parametrize("secret", ["whsec_not*base64!CANARY", "whsec_"])
def test_broken_whsec_secret_is_a_configuration_error_that_hides_the_value(secret: str) -> None:
    """A whsec_ secret that is not base64 names WEBHOOK_SECRET and never echoes the value."""
    with pytest.raises(ConfigurationError) as caught:
        signing_key(secret)
    assert caught.value.source == "WEBHOOK_SECRET"
    assert "CANARY" not in str(caught.value)


# --- standard ----------------------------------------------------------------------------------------------


def test_standard_body_carries_the_result_under_data() -> None:
    """The standard body is {type, timestamp, data} with the published result as data."""
    result = result_of(outcome(task_id="t-1"), outcome("image-2", "failed", code="InvalidImage.NotFound"))
    body = body_of("standard", result)
    assert body["type"] == "image_export.result"
    assert body["data"] == {**result.to_json(), "counts": result.counts}
    assert datetime.fromisoformat(body["timestamp"]).timestamp() == NOW


def test_a_standard_body_is_bounded_and_keeps_what_went_wrong() -> None:
    """20,000 results with long reasons: the body carries at most 500 (every failure first), the counts of
    all, and how many were left out, and stays under 1 MiB, below a receiver's usual body limit."""
    many = [outcome(f"image-{n:05d}", "started", task_id=f"t-{n}", reason="x" * 200) for n in range(19_990)]
    bad = [outcome(f"image-bad{n}", "failed", code="InvalidImage.NotFound") for n in range(10)]
    result = result_of(*many[:5000], *bad, *many[5000:])
    request = build_request(
        "standard", result, url="https://example.com/in", secret=None, region="r", bucket=None, now=NOW
    )

    data = json.loads(request.content)["data"]
    assert len(request.content) < 1024 * 1024
    assert len(data["results"]) == 500
    assert data["omitted"] == 19_500
    assert data["counts"]["started"] == 19_990
    assert data["counts"]["failed"] == 10
    assert sum(r["status"] == "failed" for r in data["results"]) == 10
    assert data["ok"] is False


def test_standard_delivery_verifies_with_the_standardwebhooks_package() -> None:
    """A signed standard request passes the reference library's verification."""
    secret = STANDARD_VECTOR["secret"]
    result = result_of(outcome(task_id="t-1"))
    now = datetime.now().timestamp()  # noqa: DTZ005 - a unix timestamp has no zone
    request = build_request(
        "standard", result, url="https://example.com/in", secret=secret, region="r", bucket=None, now=now
    )
    assert Webhook(secret).verify(request.content, request.headers)["data"] == {
        **result.to_json(),
        "counts": result.counts,
    }


def test_standard_headers_without_a_secret_have_no_signature() -> None:
    """Without WEBHOOK_SECRET a standard delivery carries id and timestamp but no signature."""
    request = build_request(
        "standard", result_of(outcome()), url="https://e.com", secret=None, region="r", bucket=None, now=NOW
    )
    assert request.headers["webhook-timestamp"] == str(int(NOW))
    assert request.headers["webhook-id"].startswith("msg_")
    assert "webhook-signature" not in request.headers


def test_webhook_id_is_stable_for_the_same_event_and_outcomes() -> None:
    """Retried deliveries of the same outcomes share one webhook-id, whatever the order or the time."""
    first = result_of(outcome("image-1", task_id="t-1"), outcome("image-2", "failed", code="InternalError"))
    again = result_of(outcome("image-2", "failed", code="InternalError"), outcome("image-1", task_id="t-1"))
    ids = {
        build_request(
            "standard", r, url="https://e.com", secret=None, region="r", bucket=None, now=t
        ).headers["webhook-id"]
        for r, t in ((first, NOW), (again, NOW + 30))
    }
    assert len(ids) == 1


@pytest.mark.parametrize(
    "changed",
    [
        result_of(outcome("image-1", task_id="t-1"), event_id="evt-2"),
        result_of(outcome("image-1", task_id="t-2")),
        result_of(outcome("image-1", "skipped", task_id="t-1")),
        result_of(outcome("image-9", task_id="t-1")),
    ],
)
def test_webhook_id_changes_when_event_or_outcome_changes(changed: InvocationResult) -> None:
    """A different event, task, status or image gets a different webhook-id."""
    assert message_id(changed) != message_id(result_of(outcome("image-1", task_id="t-1")))


# --- chat formats ------------------------------------------------------------------------------------------


def test_feishu_body_is_signed_text_when_a_secret_is_set() -> None:
    """Feishu gets a text message with timestamp (seconds) and sign beside it."""
    body = body_of("feishu", result_of(outcome(task_id="t-1")), secret=FEISHU_VECTOR["secret"])
    assert body["msg_type"] == "text"
    assert body["timestamp"] == str(int(NOW))
    assert body["sign"] == feishu_sign(FEISHU_VECTOR["secret"], body["timestamp"])
    assert "image-1: started, task t-1" in body["content"]["text"]


def test_feishu_body_without_a_secret_is_unsigned() -> None:
    """Without WEBHOOK_SECRET, Feishu gets the text message alone."""
    body = body_of("feishu", result_of(outcome()))
    assert set(body) == {"msg_type", "content"}


def test_dingtalk_body_is_markdown_with_a_plain_title() -> None:
    """DingTalk gets a markdown message whose title is the headline."""
    body = body_of("dingtalk", result_of(outcome()))
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "✅ Image export: 1 started"
    assert body["markdown"]["text"].startswith("**✅ Image export: 1 started**")


def test_dingtalk_url_is_unsigned_without_a_secret() -> None:
    """Without WEBHOOK_SECRET the DingTalk URL is sent exactly as configured."""
    url = "https://oapi.dingtalk.com/robot/send?access_token=abc"
    request = build_request(
        "dingtalk", result_of(outcome()), url=url, secret=None, region="r", bucket=None, now=NOW
    )
    assert request.url == url


def test_wecom_body_is_markdown_content() -> None:
    """WeCom gets {"msgtype": "markdown", "markdown": {"content": ...}}."""
    body = body_of("wecom", result_of(outcome()))
    assert body["msgtype"] == "markdown"
    assert "image-1: started" in body["markdown"]["content"]


def test_slack_body_is_text() -> None:
    """Slack gets {"text": ...} with a bold headline."""
    body = body_of("slack", result_of(outcome()))
    assert set(body) == {"text"}
    assert body["text"].startswith("*✅ Image export: 1 started*")


@pytest.mark.parametrize(
    ("outcomes", "headline"),
    [
        ((outcome(),), "✅ Image export: 1 started"),
        ((outcome(), outcome("image-2", "skipped")), "✅ Image export: 1 started, 1 skipped"),
        (
            (outcome(), outcome("image-2", "deferred", reason="creating")),
            "⏳ Image export: 1 started, 1 deferred",
        ),
        (
            (outcome("image-2", "failed", code="InternalError"), outcome("image-3", "deferred")),
            "❌ Image export: 1 failed, 1 deferred",
        ),
    ],
)
@pytest.mark.parametrize("fmt", CHAT_FORMATS)
def test_headline_counts_results_by_status(
    fmt: WebhookFormat, outcomes: tuple[ImageOutcome, ...], headline: str
) -> None:
    """The first line counts the results by status and marks at a glance whether to act."""
    assert headline in chat_text(fmt, result_of(*outcomes)).split("\n")[0]


@pytest.mark.parametrize(
    ("item", "line"),
    [
        (outcome(task_id="t-1"), "image-1: started, task t-1"),
        (
            outcome(status="skipped", task_id="t-1", reason="already running"),
            "image-1: skipped, task t-1 (already running)",
        ),
        (outcome(status="deferred", reason="image is creating"), "image-1: deferred (image is creating)"),
        (
            outcome(status="failed", code="InvalidTosPutObject.AccessDenied"),
            "image-1: failed InvalidTosPutObject.AccessDenied → grant ECS tos:PutObject on the bucket (IAM policy)",
        ),
        (
            outcome(status="failed", code="Odd.Code", message="odd thing"),
            "image-1: failed Odd.Code: odd thing",
        ),
        (outcome(None, status="failed", code="InvalidEvent"), "(event): failed InvalidEvent → fix the event"),
    ],
)
@pytest.mark.parametrize("fmt", ["feishu", "slack"])
def test_one_line_per_image_with_task_or_code_and_fix(
    fmt: WebhookFormat, item: ImageOutcome, line: str
) -> None:
    """Each image gets one line: its status, then the TaskId or the error code with the one-line fix."""
    assert line in chat_text(fmt, result_of(item))


@pytest.mark.parametrize("fmt", CHAT_FORMATS)
def test_more_than_twenty_images_end_with_and_n_more(fmt: WebhookFormat) -> None:
    """Past 20 image lines the message says how many more there are instead."""
    text = chat_text(fmt, result_of(*(outcome(f"image-{n}", task_id=f"t-{n}") for n in range(25))))
    assert "image-19:" in text
    assert "image-20:" not in text
    assert "and 5 more" in text
    assert sum("image-" in line for line in text.split("\n")) == MAX_IMAGE_LINES


@pytest.mark.parametrize("fmt", CHAT_FORMATS)
def test_footer_names_region_buckets_and_event(fmt: WebhookFormat) -> None:
    """The last line names the region, the bucket(s) and the event id."""
    result = result_of(outcome(bucket="bucket-a"), outcome("image-2", bucket="bucket-b"), event_id="evt-9")
    last = chat_text(fmt, result).split("\n")[-1]
    assert "region cn-beijing" in last
    assert "bucket-a" in last
    assert "bucket-b" in last
    assert "evt" in last


def test_footer_names_at_most_three_buckets() -> None:
    """Many buckets are summarised after the first three."""
    result = result_of(*(outcome(f"image-{n}", bucket=f"bucket-{n}") for n in range(5)))
    assert "bucket bucket-0, bucket-1, bucket-2 and 2 more" in chat_text("slack", result)


def test_footer_falls_back_on_the_configured_bucket() -> None:
    """With no bucket on any result, the footer names the configured one."""
    text = chat_text("feishu", result_of(outcome(bucket=None)), bucket="configured")
    assert "bucket configured" in text


@pytest.mark.parametrize(
    ("fmt", "hostile", "must_not_contain", "shown_as"),
    [
        ("slack", "<!channel> & <@U123>", ["<!channel>", "<@U123>"], "&lt;!channel&gt; &amp; &lt;@U123&gt;"),
        ("feishu", '<at user_id="all">all</at>', ["<at"], '\uff1cat user_id="all"\uff1eall\uff1c/at\uff1e'),
        (
            "wecom",
            "<@zhangsan> **bold** [x](http://e)",
            ["<@", "**bold**", "[x]"],
            r"\*\*bold\*\* \[x\](http://e)",
        ),
        ("dingtalk", "# big `code` _it_", ["`code`", "_it_"], r"\# big \`code\` \_it\_"),
    ],
)
def test_chat_text_escapes_what_the_platform_would_interpret(
    fmt: WebhookFormat, hostile: str, must_not_contain: list[str], shown_as: str
) -> None:
    """Mentions, tags and markdown in image names and error messages arrive as plain text."""
    text = chat_text(fmt, result_of(outcome(hostile, "failed", code="Odd.Code", message=hostile)))
    assert all(bad not in text for bad in must_not_contain)
    assert shown_as in text


@pytest.mark.parametrize("fmt", CHAT_FORMATS)
def test_newlines_in_names_and_messages_cannot_forge_lines(fmt: WebhookFormat) -> None:
    """A line break inside an error message stays on the image's own line."""
    text = chat_text(
        fmt, result_of(outcome(status="failed", code="Odd", message="one\ntwo\r\nthree\u2028four"))
    )
    assert len(text.split("\n")) == len(chat_text(fmt, result_of(outcome())).split("\n"))


LIMITS: dict[WebhookFormat, tuple[str, int]] = {
    "wecom": ("bytes", 4096),
    "dingtalk": ("bytes", 20_000),
    "feishu": ("body", 20_000),
    "slack": ("chars", 40_000),
}


def _size(fmt: WebhookFormat, result: InvocationResult) -> int:
    request = build_request(
        fmt, result, url="https://e.com/hook", secret="s3cret", region="r", bucket=None, now=NOW
    )
    body = json.loads(request.content)
    unit, _ = LIMITS[fmt]
    if unit == "body":
        return len(request.content)
    text = {"wecom": lambda: body["markdown"]["content"], "dingtalk": lambda: body["markdown"]["text"]}.get(
        fmt, lambda: body["text"]
    )()
    return len(text.encode()) if unit == "bytes" else len(text)


@pytest.mark.parametrize("fmt", CHAT_FORMATS)
@pytest.mark.parametrize("filler", ["x", "é", "图", "🙂", '"\\'])
def test_large_messages_fit_the_platform_limit(fmt: WebhookFormat, filler: str) -> None:
    """Long names and messages of any script are cut to fit each platform's size limit."""
    result = result_of(
        *(outcome(filler * 300 + str(n), "failed", code="C" * 200, message=filler * 5000) for n in range(40)),
        event_id=filler * 500,
    )
    assert _size(fmt, result) <= LIMITS[fmt][1]
    assert "more" in chat_text(fmt, result)


@settings(max_examples=examples(40), deadline=None)
@given(
    fmt=st.sampled_from(CHAT_FORMATS),
    names=st.lists(st.text(min_size=0, max_size=400), min_size=1, max_size=30),
    message=st.text(max_size=3000),
)
def test_any_text_fits_and_stays_valid_utf8(fmt: WebhookFormat, names: list[str], message: str) -> None:
    """Whatever the text, the message fits the limit and is valid UTF-8 (no character is split)."""
    result = result_of(*(outcome(name or None, "failed", code="Odd", message=message) for name in names))
    assert _size(fmt, result) <= LIMITS[fmt][1]
    build_request(
        fmt, result, url="https://e.com", secret=None, region="r", bucket=None, now=NOW
    ).content.decode()


# --- choosing the format and whether to send ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fmt"),
    [
        ("https://open.feishu.cn/open-apis/bot/v2/hook/abc", "feishu"),
        ("https://open.larksuite.com/open-apis/bot/v2/hook/abc", "feishu"),
        ("https://OAPI.DingTalk.com/robot/send?access_token=abc", "dingtalk"),
        ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc", "wecom"),
        ("https://hooks.slack.com/services/T0/B0/abc", "slack"),
        ("https://example.com/hooks.slack.com", "standard"),
        ("https://hooks.slack.com.evil.example/services/x", "standard"),
        ("http://127.0.0.1:8765/webhooks", "standard"),
    ],
)
def test_format_is_inferred_from_the_host(url: str, fmt: WebhookFormat) -> None:
    """The URL's host alone picks the format; anything unknown is standard."""
    assert infer_format(url) == fmt


STARTED = outcome(status="started")
SKIPPED = outcome(status="skipped")
FAILED = outcome(status="failed", code="InternalError")
DEFERRED = outcome(status="deferred")
EXPIRED = ImageOutcome(image_id="image-old", status="expired", size_bytes=3 * 2**30, reason="group web: 4th")
WOULD_EXPIRE = ImageOutcome(image_id="image-older", status="would_expire", size_bytes=2**30, reason="waits")


@pytest.mark.parametrize(
    ("outcomes", "when", "expected"),
    [
        ((), "all", False),
        ((SKIPPED,), "all", True),
        ((SKIPPED,), "changes", False),
        ((STARTED,), "changes", True),
        ((SKIPPED, FAILED), "changes", True),
        ((DEFERRED,), "changes", True),
        ((STARTED,), "failures", False),
        ((SKIPPED, DEFERRED), "failures", True),
        ((FAILED,), "failures", True),
        ((EXPIRED,), "changes", True),
        ((WOULD_EXPIRE,), "changes", False),
        ((WOULD_EXPIRE,), "all", True),
        ((EXPIRED,), "failures", False),
    ],
)
def test_should_notify_follows_webhook_notify(
    outcomes: tuple[ImageOutcome, ...], when: NotifyWhen, expected: bool
) -> None:
    """all: any result; changes: started, failed, deferred, or an export deleted by retention (a plan's
    would_expire alone changes nothing); failures: failed or deferred."""
    assert should_notify(result_of(*outcomes), when) is expected


# --- advice ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_every_error_code_the_exporter_knows_has_a_fix(code: str) -> None:
    """Each code the error tree knows comes with one line of advice."""
    fix = fix_for(code)
    assert fix
    assert "\n" not in fix


def test_unknown_codes_have_no_fix() -> None:
    """An unknown or missing code has no advice rather than a wrong one."""
    assert fix_for("Never.Heard.Of") is None
    assert fix_for(None) is None
    assert (fix_for("InvalidTosPutObject.AccessDenied") or "").startswith("grant ECS tos:PutObject")


# --- redaction ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        (
            "https://oapi.dingtalk.com/robot/send?access_token=CANARY1&timestamp=1&sign=CANARY2",
            "https://oapi.dingtalk.com/robot/send?access_token=***&timestamp=***&sign=***",
        ),
        (
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=CANARY1",
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***",
        ),
        (
            "https://open.feishu.cn/open-apis/bot/v2/hook/CANARY1",
            "https://open.feishu.cn/open-apis/bot/v2/hook/***",
        ),
        ("https://hooks.slack.com/services/T0/B0/CANARY1", "https://hooks.slack.com/services/***"),
        ("https://user:CANARY1@example.com:8443/in#CANARY2", "https://***@example.com:8443/in"),
        ("http://127.0.0.1:8765/webhooks", "http://127.0.0.1:8765/webhooks"),
        ("http://[::1]:8765/x?token=CANARY1", "http://[::1]:8765/x?token=***"),
        ("http://[not-an-address/CANARY1", "***"),
        (
            "https://example.com/in?CANARY1-0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a",
            "https://example.com/in?***=***",
        ),
    ],
)
def test_redact_url_masks_every_credential_part(url: str, redacted: str) -> None:
    """Tokens in the query, the path after /hook/ or /services/, and user info never survive redaction."""
    assert redact_url(url) == redacted
    assert "CANARY" not in redact_url(url)


def test_secret_parts_lists_the_secret_and_the_url_credentials() -> None:
    """Every part that must be scrubbed from platform answers is known, longest first."""
    parts = secret_parts("https://oapi.dingtalk.com/robot/send?access_token=TOKEN123", "SECRET99")
    assert {"TOKEN123", "SECRET99"} <= set(parts)
    assert list(parts) == sorted(parts, key=len, reverse=True)
    assert parse_qs(urlsplit(parts[0]).query)  # the whole URL comes first


def test_secret_parts_of_an_unreadable_url_still_include_the_secret() -> None:
    """A URL that cannot be parsed still leaves the secret known for scrubbing."""
    assert "SECRET99" in secret_parts("http://[broken/TOKEN", "SECRET99")


@pytest.mark.parametrize("fmt", ["standard", "feishu", "dingtalk", "wecom", "slack"])
def test_every_body_passes_the_result_text_through_the_mask(fmt: WebhookFormat) -> None:
    """A secret quoted in an error message (a gateway echoing a token) leaves in no format's body: the mask
    build_request is given is applied to everything the result contributes."""
    canary = "CANARY-token-0a1b2c"
    leaky = result_of(
        ImageOutcome(
            image_id="image-1",
            status="failed",
            error=ErrorInfo(code="GatewayEcho", message=f"denied for token {canary}"),
        )
    )
    request = build_request(
        fmt,
        leaky,
        url="https://example.com/hook",
        secret=None,
        region="cn-beijing",
        bucket=None,
        now=NOW,
        mask=lambda text: text.replace(canary, "***"),
    )
    body = request.content.decode()
    assert canary not in body
    assert "denied for token ***" in body


@pytest.mark.parametrize("fmt", CHAT_FORMATS)
def test_a_notice_says_what_retention_deleted_and_what_waits(fmt: WebhookFormat) -> None:
    """Under the headline: how many exports retention deleted and the bytes freed, and how many wait for a
    later run (past RETENTION_MAX_DELETES, or the budget); then each export's line with its reason."""
    second = ImageOutcome(image_id="image-old2", status="expired", size_bytes=2**30, reason="group web: 5th")
    lines = chat_text(fmt, result_of(EXPIRED, second, WOULD_EXPIRE)).split("\n")
    assert "🗑 Retention: 2 exports deleted (4.0 GiB freed); 1 wait for a later run" in lines
    assert any("image-old: expired (group web: 4th)" in line for line in lines)


def test_a_plans_notice_says_what_would_be_deleted() -> None:
    text = chat_text("slack", result_of(WOULD_EXPIRE))
    assert "🗑 Retention: 1 export would be deleted (1.0 GiB)" in text
