"""What a webhook delivery says, for each platform: message bodies, signatures and redaction. Pure: no I/O.

``build_request`` turns one invocation's result into the exact request to send at a given time (the time is
an argument because every signature covers it, and each retry signs afresh). The chat formats (Feishu/Lark,
DingTalk, WeCom, Slack) write a message a person reads at a glance and fit it into the platform's size limit;
``standard`` sends the result itself as a Standard Webhooks 1.0 delivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlsplit, urlunsplit

from handler.adapters.webhooks._lines import FOLLOW_UP, follow_up_line, retention_line
from handler.adapters.webhooks._lines import one_line as _one_line
from handler.errors import ConfigurationError, fix_for
from handler.models.results import NEEDS_ATTENTION, NOT_OK, ImageOutcome, InvocationResult
from handler.models.settings import WebhookFormat, standard_webhook_key

__all__ = [
    "EVENT_TYPE",
    "MAX_IMAGE_LINES",
    "TEST_EVENT_TYPE",
    "TEST_HEADLINE",
    "WebhookRequest",
    "build_request",
    "build_test_request",
    "compose_text",
    "dingtalk_sign",
    "feishu_sign",
    "fix_for",
    "headline",
    "infer_format",
    "message_id",
    "redact_url",
    "scrub",
    "secret_parts",
    "signing_key",
    "standard_signature",
]

EVENT_TYPE = "image_export.result"
# The doctor's test message: its Standard Webhooks type, and how its text begins on a chat platform.
TEST_EVENT_TYPE = "image_export.test"
TEST_HEADLINE = "🩺 Image export: a test message from the doctor"
MAX_IMAGE_LINES = 20
REDACTED = "***"

# --- which format, and whether to send ---------------------------------------------------------------------

_HOST_FORMATS: dict[str, WebhookFormat] = {
    "open.feishu.cn": "feishu",
    "open.larksuite.com": "feishu",
    "oapi.dingtalk.com": "dingtalk",
    "qyapi.weixin.qq.com": "wecom",
    "hooks.slack.com": "slack",
}


def infer_format(url: str) -> WebhookFormat:
    """The format a URL's host speaks (Feishu/Lark, DingTalk, WeCom, Slack), else ``standard``."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    return _HOST_FORMATS.get(host, "standard")


# --- secrets in URLs ---------------------------------------------------------------------------------------

# Path segments after which everything is a credential: Feishu/Lark `/hook/<token>`, Slack `/services/...`.
_SECRET_PATH_MARKERS = frozenset({"hook", "hooks", "services"})
# A query key is shown when it reads like a parameter name; anything else might be a bare token.
_PLAIN_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,39}$")


def _split_secret_path(path: str) -> tuple[str, str]:
    """``(public part, secret tail)`` of a URL path."""
    segments = path.split("/")
    for index, segment in enumerate(segments):
        if segment.lower() in _SECRET_PATH_MARKERS and index + 1 < len(segments):
            return "/".join(segments[: index + 1]), "/".join(segments[index + 1 :])
    return path, ""


def redact_url(url: str) -> str:
    """``url`` safe to log: query values, user info and the secret part of the path are masked.

    DingTalk's ``access_token`` and WeCom's ``key`` are query values; Feishu's token follows ``/hook/``;
    Slack's path after ``/services/`` is the credential itself. The fragment is dropped.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return REDACTED
    netloc = (f"{REDACTED}@" if "@" in parts.netloc else "") + (f"[{host}]" if ":" in host else host)
    if port is not None:
        netloc += f":{port}"
    public, secret_tail = _split_secret_path(parts.path)
    path = f"{public}/{REDACTED}" if secret_tail else public
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = "&".join(f"{key if _PLAIN_KEY.match(key) else REDACTED}={REDACTED}" for key, _ in pairs)
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def secret_parts(url: str | None, secret: str | None) -> tuple[str, ...]:
    """Every secret a delivery involves (the secret, the URL's credential parts), longest first.

    Used to scrub anything a platform echoes back before it reaches a log line or a report.
    """
    found: set[str] = {secret} if secret else set()
    if url:
        try:
            parts = urlsplit(url)
        except ValueError:
            parts = None
        if parts is not None:
            found.update(value for _, value in parse_qsl(parts.query, keep_blank_values=True))
            found.update(filter(None, (parts.username, parts.password)))
            _, tail = _split_secret_path(parts.path)
            found.update(segment for segment in tail.split("/") if segment)
            found.add(url)
    return tuple(sorted((s for s in found if len(s) >= 4), key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` masked."""
    for value in secrets:
        text = text.replace(value, REDACTED)
    return text


# --- signatures --------------------------------------------------------------------------------------------


def signing_key(secret: str) -> bytes:
    """The Standard Webhooks key (``handler.models.settings.standard_webhook_key``, the one rule for it).

    Raises ConfigurationError naming ``WEBHOOK_SECRET`` (never its value) when the base64 is broken or the
    key empty; the settings refuse such a secret first, so this is for secrets passed in directly.
    """
    try:
        return standard_webhook_key(secret)
    except ValueError as error:
        raise ConfigurationError(str(error), source="WEBHOOK_SECRET") from None


def standard_signature(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """``webhook-signature``: ``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}`` (docs/facts.md §7)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def feishu_sign(secret: str, timestamp: int | str) -> str:
    """Feishu/Lark custom bot ``sign``: base64 HMAC-SHA256 keyed by ``{timestamp}\\n{secret}`` of nothing."""
    digest = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def dingtalk_sign(secret: str, timestamp_ms: int | str) -> str:
    """DingTalk robot ``sign`` (before URL encoding): base64 HMAC-SHA256 of ``{ms}\\n{secret}``."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def message_id(result: InvocationResult) -> str:
    """``webhook-id``: the same notice always gets the same id, so receivers dedupe.

    A notice that carries follow-up outcomes (``exported`` / ``export_failed``) gets an id from those alone
    (image, task, status): when a later run reports the same finished exports again (after a crash, or when
    their tags could not be changed), the receiver sees the same id, whatever else that run did. Any other
    notice gets an id from its event and all its outcomes. The last notice of an end that could not be
    retagged (its reason begins "needs attention") is a new notice, with an id of its own."""
    follow_ups = [r for r in result.results if r.status in FOLLOW_UP]
    counted = follow_ups or result.results
    outcomes = sorted((r.image_id or "", _kind(r), r.task_id or "") for r in counted)
    event = "" if follow_ups else result.event_id
    material = json.dumps([event, outcomes], separators=(",", ":"), ensure_ascii=False)
    return "msg_" + hashlib.sha256(material.encode()).hexdigest()[:32]


def _kind(outcome: ImageOutcome) -> str:
    """The outcome's status, or ``<status>/attention`` for the last notice of an end not retagged."""
    attention = (outcome.reason or "").startswith(NEEDS_ATTENTION)
    return f"{outcome.status}/attention" if attention else outcome.status


# --- the chat message --------------------------------------------------------------------------------------

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]~#|])")
_FULL_WIDTH_ANGLES = str.maketrans({"<": "\uff1c", ">": "\uff1e"})


def _escape_slack(text: str) -> str:
    # Slack's own rule: these three are the only control characters; mentions like <!channel> need them.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_feishu(text: str) -> str:
    # Feishu text reads <at user_id="…"> and a few style tags; full-width brackets read the same to a person.
    return text.translate(_FULL_WIDTH_ANGLES)


def _escape_markdown(text: str) -> str:
    # Backslash escapes for emphasis, code, links and tables; angle brackets (WeCom <@user> mentions, HTML)
    # become full-width look-alikes, which no parser reads as markup.
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text).translate(_FULL_WIDTH_ANGLES)


def _bytes_within(limit: int) -> Callable[[str], bool]:
    return lambda text: len(text.encode()) <= limit


def _json_bytes_within(limit: int) -> Callable[[str], bool]:
    # The whole request body counts; 256 bytes leave room for the envelope, timestamp and sign.
    return lambda text: len(json.dumps(text, ensure_ascii=False).encode()) + 256 <= limit


def _chars_within(limit: int) -> Callable[[str], bool]:
    return lambda text: len(text) <= limit


@dataclass(frozen=True, slots=True)
class _ChatStyle:
    """How one chat platform renders the message."""

    escape: Callable[[str], str]
    bold: Callable[[str], str]
    bullet: str
    gap: str  # between the headline, the image lines and the footer (markdown needs a blank line)
    fits: Callable[[str], bool]


_MARKDOWN_BOLD: Callable[[str], str] = "**{}**".format
_STYLES: dict[WebhookFormat, _ChatStyle] = {
    "feishu": _ChatStyle(_escape_feishu, str, "• ", "\n", _json_bytes_within(20_000)),
    "dingtalk": _ChatStyle(_escape_markdown, _MARKDOWN_BOLD, "- ", "\n\n", _bytes_within(20_000)),
    "wecom": _ChatStyle(_escape_markdown, _MARKDOWN_BOLD, "- ", "\n\n", _bytes_within(4096)),
    "slack": _ChatStyle(_escape_slack, "*{}*".format, "• ", "\n", _chars_within(40_000)),
}


def headline(result: InvocationResult) -> str:
    """``Image export: 2 started, 1 failed``, with a mark that says at once whether to act."""
    counts = result.counts
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "no images"
    bad = counts["failed"] or counts["export_failed"] or counts["restore_failed"]
    mark = "❌" if bad else "⏳" if counts["deferred"] else "✅"
    return f"{mark} Image export: {summary}"


def _image_line(outcome: ImageOutcome, escape: Callable[[str], str]) -> str:
    """``image-1: failed InvalidImage.NotFound → check the image id…``: status, code, task, then the advice."""
    if outcome.status in FOLLOW_UP:
        return follow_up_line(outcome, escape)
    line = (
        escape(_one_line(outcome.image_id, 80)) if outcome.image_id else "(event)"
    ) + f": {outcome.status}"
    if outcome.error is not None:
        line += " " + escape(_one_line(outcome.error.code, 80))
    if outcome.task_id:
        line += ", task " + escape(_one_line(outcome.task_id, 64))
    if outcome.error is not None:
        fix = fix_for(outcome.error.code)
        line += f" → {escape(fix)}" if fix else ": " + escape(_one_line(outcome.error.message, 200))
    elif outcome.reason:
        line += f" ({escape(_one_line(outcome.reason, 160))})"
    return line


def _footer(result: InvocationResult, region: str, bucket: str | None, escape: Callable[[str], str]) -> str:
    buckets = sorted({r.tos_bucket for r in result.results if r.tos_bucket}) or ([bucket] if bucket else [])
    parts = [f"region {escape(_one_line(region, 40))}"]
    if buckets:
        more = f" and {len(buckets) - 3} more" if len(buckets) > 3 else ""
        parts.append("bucket " + ", ".join(escape(_one_line(b, 63)) for b in buckets[:3]) + more)
    parts.append(f"event {escape(_one_line(result.event_id, 100))}")
    return " · ".join(parts)


def compose_text(fmt: WebhookFormat, result: InvocationResult, *, region: str, bucket: str | None) -> str:
    """The chat message: a headline, retention's summary (what it deleted and what waits), up to 20 image lines
    then "and N more", the region and bucket.

    Image lines are dropped (and counted in "and N more") until the text fits the platform's limit. Every
    field is cut to a bounded number of characters (never inside one), so the headline and footer alone stay
    far below the smallest limit (WeCom's 4096 bytes) and dropping lines always ends in a message that fits.
    """
    style = _STYLES[fmt]
    title = style.bold(headline(result))
    summary = retention_line(result.results) or ""
    lines = [style.bullet + _image_line(r, style.escape) for r in result.results]
    footer = _footer(result, region, bucket, style.escape)
    shown = min(len(lines), MAX_IMAGE_LINES)
    while True:
        hidden = len(lines) - shown
        sections = [title, summary, "\n".join(lines[:shown]), f"and {hidden} more" if hidden else "", footer]
        text = style.gap.join(section for section in sections if section)
        if style.fits(text) or shown == 0:
            return text
        shown -= 1


# --- the request -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One POST, ready to send: the URL (with any signature), headers and the exact body bytes."""

    url: str
    headers: dict[str, str]
    content: bytes


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


_JSON_HEADERS = {"content-type": "application/json; charset=utf-8"}


def _masked(value: Any, mask: Callable[[str], str]) -> Any:
    """``value`` (a JSON document) with ``mask`` applied to every string in it."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {key: _masked(item, mask) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item, mask) for item in value]
    return value


def bounded(result: InvocationResult, max_results: int) -> dict[str, Any]:
    """The notice's ``data``: the result, its ``counts`` by status, and at most ``max_results`` results (those
    that are not ok first, then the others, each group in order); ``omitted`` says how many were left out
    (every one is in the log)."""
    data = result.to_json()
    data["counts"] = result.counts
    if len(result.results) > max_results:
        ranked = sorted(range(len(result.results)), key=lambda n: (result.results[n].status not in NOT_OK, n))
        kept = sorted(ranked[:max_results])
        data["results"] = [data["results"][n] for n in kept]
        data["omitted"] = len(result.results) - max_results
    return data


def _standard(
    result: InvocationResult,
    url: str,
    secret: str | None,
    now: float,
    *,
    mask: Callable[[str], str],
    max_results: int,
) -> WebhookRequest:
    data = _masked(bounded(result, max_results), mask)
    return _standard_delivery(EVENT_TYPE, data, message_id(result), url=url, secret=secret, now=now)


def _standard_delivery(
    kind: str, data: Any, msg_id: str, *, url: str, secret: str | None, now: float
) -> WebhookRequest:
    """A Standard Webhooks delivery of ``kind`` carrying ``data``, signed when ``secret`` is set."""
    seconds = int(now)
    stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body = _json({"type": kind, "timestamp": stamp, "data": data})
    headers = {**_JSON_HEADERS, "webhook-id": msg_id, "webhook-timestamp": str(seconds)}
    if secret:
        headers["webhook-signature"] = standard_signature(secret, msg_id, seconds, body)
    return WebhookRequest(url, headers, body)


def _with_query(url: str, extra: str) -> str:
    parts = urlsplit(url)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def build_request(
    fmt: WebhookFormat,
    result: InvocationResult,
    *,
    url: str,
    secret: str | None,
    region: str,
    bucket: str | None,
    now: float,
    mask: Callable[[str], str] = str,
    max_results: int = 500,
) -> WebhookRequest:
    """The request that delivers ``result`` in ``fmt`` at unix time ``now`` (signed when ``secret`` is set).

    ``mask`` is applied to every text the result contributes (the caller's secrets never leave in a body);
    a ``standard`` body carries at most ``max_results`` results (``bounded``)."""
    if fmt == "standard":
        return _standard(result, url, secret, now, mask=mask, max_results=max_results)
    text = mask(compose_text(fmt, result, region=region, bucket=bucket))
    return _chat_request(fmt, text, headline(result), url=url, secret=secret, now=now)


def build_test_request(
    fmt: WebhookFormat, *, url: str, secret: str | None, region: str, bucket: str | None, now: float
) -> WebhookRequest:
    """The doctor's test message in ``fmt`` at unix time ``now``, signed as a notice is: a Standard Webhooks
    delivery of type ``TEST_EVENT_TYPE``, or a chat message that says it is a test and changes nothing."""
    where = f"region {_one_line(region, 40)}" + (f", bucket {_one_line(bucket, 63)}" if bucket else "")
    text = f"{TEST_HEADLINE} ({where}): notices reach this address; nothing was exported"
    if fmt != "standard":
        return _chat_request(fmt, _STYLES[fmt].escape(text), TEST_HEADLINE, url=url, secret=secret, now=now)
    data = {"message": text, "region": region, "bucket": bucket}
    msg_id = "msg_" + hashlib.sha256(f"doctor:{now!r}".encode()).hexdigest()[:32]  # each test a new message
    return _standard_delivery(TEST_EVENT_TYPE, data, msg_id, url=url, secret=secret, now=now)


def _chat_request(
    fmt: WebhookFormat, text: str, title: str, *, url: str, secret: str | None, now: float
) -> WebhookRequest:
    """The chat platform's request carrying ``text`` (``title``: DingTalk's), signed when ``secret`` is set."""
    if fmt == "feishu":
        payload: dict[str, Any] = {"msg_type": "text", "content": {"text": text}}
        if secret:
            seconds = str(int(now))
            payload = {"timestamp": seconds, "sign": feishu_sign(secret, seconds), **payload}
        return WebhookRequest(url, dict(_JSON_HEADERS), _json(payload))
    if fmt == "dingtalk":
        if secret:
            millis = str(int(now * 1000))
            url = _with_query(url, f"timestamp={millis}&sign={quote_plus(dingtalk_sign(secret, millis))}")
        payload = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
        return WebhookRequest(url, dict(_JSON_HEADERS), _json(payload))
    if fmt == "wecom":
        payload = {"msgtype": "markdown", "markdown": {"content": text}}
        return WebhookRequest(url, dict(_JSON_HEADERS), _json(payload))
    return WebhookRequest(url, dict(_JSON_HEADERS), _json({"text": text}))
