"""A local webhook receiver: a real HTTP server on 127.0.0.1 that records, checks and prints each delivery.

It answers like the platform it stands in for (``{"code": 0}`` for Feishu, ``{"errcode": 0}`` for DingTalk and
WeCom, ``ok`` for Slack, 204 for Standard Webhooks) and verifies the signature where the format has one: a
wrong signature gets the platform's own refusal (Feishu ``{"code": 19021}`` and DingTalk
``{"errcode": 310000}`` in an HTTP 200, Standard Webhooks a 401), which the function reports as
``webhook.failed``. A delivery in another format than the receiver's gets a 400 naming ``WEBHOOK_FORMAT``. It can be told to answer with a given status and body
instead, to show what a failing receiver does to a delivery (nothing to the exports).

In tests::

    with WebhookReceiver(secret="whsec_...", fmt="standard") as receiver:
        ...  # post to receiver.url
        assert receiver.deliveries[0].verified

From a shell::

    exporter-tools receiver --port 8765 --secret whsec_... --format standard [--status 500]

It prints ``listening on URL (format F)``, then the ``export`` lines that point the function at it
(``WEBHOOK_URL``, ``WEBHOOK_FORMAT``: a loopback URL says nothing about the platform, ``WEBHOOK_NOTIFY=all``
and ``WEBHOOK_SECRET``). A delivery in another format than the receiver's is flagged in what it prints.
"""

from __future__ import annotations

import argparse
import hmac
import json
import shlex
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, get_args
from urllib.parse import parse_qs, urlsplit

from exporter_tools.options import http_status, port
from handler.adapters.webhooks._formats import (
    dingtalk_sign,
    feishu_sign,
    redact_url,
    signing_key,
    standard_signature,
)
from handler.models.settings import WebhookFormat, standard_webhook_key

__all__ = ["Delivery", "WebhookReceiver", "delivery_format", "main"]

# Standard Webhooks receivers refuse timestamps further than this from their clock; the chat platforms allow
# an hour.
STANDARD_TOLERANCE = 5 * 60
CHAT_TOLERANCE = 60 * 60
# The largest delivery read whole and verified (a signature covers the whole body, so a cut body can never
# verify); a larger one is answered 413 unread. The function's own notices stay under 1 MiB.
MAX_BODY = 8 << 20
_MAX_DRAINED = 64 << 20

_ACCEPTED: dict[WebhookFormat, tuple[int, bytes]] = {
    "standard": (204, b""),
    "feishu": (200, b'{"code":0,"msg":"success","data":{}}'),
    "dingtalk": (200, b'{"errcode":0,"errmsg":"ok"}'),
    "wecom": (200, b'{"errcode":0,"errmsg":"ok"}'),
    "slack": (200, b"ok"),
}
_BAD_SIGNATURE: dict[WebhookFormat, tuple[int, bytes]] = {
    "standard": (401, b'{"error":"signature does not match"}'),
    "feishu": (200, b'{"code":19021,"msg":"sign match fail or timestamp is not within one hour"}'),
    "dingtalk": (200, b'{"errcode":310000,"errmsg":"sign not match"}'),
}


@dataclass(frozen=True, slots=True)
class Delivery:
    """One request the receiver got. ``verified`` is None when the format or the receiver has no secret."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool | None
    status: int

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    @property
    def text(self) -> str | None:
        """The chat message a person would read, when the format has one."""
        try:
            data = self.json()
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        for path in (("content", "text"), ("markdown", "text"), ("markdown", "content"), ("text",)):
            value: Any = data
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, str):
                return value
        return None


def _fresh(timestamp: str, now: float, tolerance: float) -> bool:
    try:
        return abs(now - float(timestamp)) <= tolerance
    except ValueError:
        return False


def verify_standard(secret: str, headers: dict[str, str], body: bytes, now: float) -> bool:
    """Check ``webhook-signature`` (any of its space-separated ``v1,`` values) and the timestamp's freshness."""
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    if not msg_id or not _fresh(timestamp, now, STANDARD_TOLERANCE):
        return False
    expected = standard_signature(secret, msg_id, timestamp, body)
    offered = headers.get("webhook-signature", "").split()
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)


def verify_feishu(secret: str, body: bytes, now: float) -> bool:
    """Check the ``timestamp`` and ``sign`` fields of a Feishu/Lark custom bot message."""
    try:
        data = json.loads(body)
        timestamp, sign = str(data["timestamp"]), str(data["sign"])
    except (ValueError, KeyError, TypeError):
        return False
    return _fresh(timestamp, now, CHAT_TOLERANCE) and hmac.compare_digest(
        sign, feishu_sign(secret, timestamp)
    )


def verify_dingtalk(secret: str, query: str, now: float) -> bool:
    """Check the ``timestamp`` (milliseconds) and ``sign`` query parameters of a DingTalk robot message."""
    params = parse_qs(query)
    timestamp = (params.get("timestamp") or [""])[0]
    sign = (params.get("sign") or [""])[0]
    if not timestamp.isdigit() or not _fresh(str(int(timestamp) / 1000), now, CHAT_TOLERANCE):
        return False
    return hmac.compare_digest(sign, dingtalk_sign(secret, timestamp))


def delivery_format(path: str, headers: dict[str, str], body: bytes) -> WebhookFormat | None:
    """The format a delivery was sent in, read from its shape; None when it is not recognisable."""
    if "webhook-id" in headers:
        return "standard"
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    keys = set(data) if isinstance(data, dict) else set()
    if "msg_type" in keys:
        return "feishu"
    if "msgtype" in keys:
        return "wecom" if "/webhook/send" in path else "dingtalk"
    return "slack" if "text" in keys else None


class WebhookReceiver:
    """A webhook receiver on 127.0.0.1 (``port=0`` picks a free port); ``deliveries`` holds what arrived."""

    def __init__(
        self,
        *,
        fmt: WebhookFormat = "standard",
        secret: str | None = None,
        port: int = 0,
        answers: Sequence[tuple[int, bytes | str]] = (),
        answer: tuple[int, bytes | str] | None = None,
        echo: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``answers`` are given to the first requests in turn, then ``answer`` (default: the platform's
        own answer) to every later one. ``echo`` prints each delivery to stdout."""
        if secret is not None:
            # a broken whsec_ secret is refused when the receiver is built, not at the first delivery
            signing_key(secret)
        self.fmt: WebhookFormat = fmt
        self.secret = secret
        self.deliveries: list[Delivery] = []
        self._answers = [(status, _as_bytes(body)) for status, body in answers]
        self._answer = (answer[0], _as_bytes(answer[1])) if answer else None
        self._echo = echo
        self._clock = clock
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port the receiver listens on."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Where to post: a path that looks like the platform's, credentials included as fakes."""
        base = f"http://127.0.0.1:{self.port}"
        return (
            base
            + {
                "standard": "/webhooks",
                "feishu": "/open-apis/bot/v2/hook/local-token",
                "dingtalk": "/robot/send?access_token=local-token",
                "wecom": "/cgi-bin/webhook/send?key=local-key",
                "slack": "/services/T000/B000/local-token",
            }[self.fmt]
        )

    def start(self) -> WebhookReceiver:
        """Serve in a background thread; returns self."""
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def serve(self) -> None:
        """Serve in the calling thread until interrupted (Ctrl-C), then release the port."""
        try:
            self._server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def export_lines(self) -> list[str]:
        """Shell lines that point the function at this receiver: URL, format (never inferred from a loopback
        host), secret, and a notice on every invocation (with the default ``changes`` a run that only skips
        posts nothing, which looks like a broken receiver), values quoted."""
        lines = [
            f"export WEBHOOK_URL={shlex.quote(self.url)}",
            f"export WEBHOOK_FORMAT={self.fmt}",
            "export WEBHOOK_NOTIFY=all",
        ]
        if self.secret is not None:
            lines.append(f"export WEBHOOK_SECRET={shlex.quote(self.secret)}")
        else:
            lines.append("unset WEBHOOK_SECRET")
        return lines

    def set_answer(self, status: int, body: bytes | str = b"") -> None:
        """Answer every later request with ``status`` and ``body`` (to simulate a failing receiver)."""
        with self._lock:
            self._answer = (status, _as_bytes(body))

    def verify(self, path: str, headers: dict[str, str], body: bytes) -> bool | None:
        """Whether a request's signature holds; None when there is nothing to check."""
        if self.secret is None:
            return None
        now = self._clock()
        if self.fmt == "standard":
            return verify_standard(self.secret, headers, body, now)
        if self.fmt == "feishu":
            return verify_feishu(self.secret, body, now)
        if self.fmt == "dingtalk":
            return verify_dingtalk(self.secret, urlsplit(path).query, now)
        return None

    def receive(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """Record one request and choose the answer."""
        verified = self.verify(path, headers, body)
        with self._lock:
            if self._answers:
                status, answer = self._answers.pop(0)
            elif self._answer is not None:
                status, answer = self._answer
            elif (sent := delivery_format(path, headers, body)) is not None and sent != self.fmt:
                status, answer = _wrong_format(sent, self.fmt)
            elif verified is False:
                status, answer = _BAD_SIGNATURE[self.fmt]
            else:
                status, answer = _ACCEPTED[self.fmt]
            delivery = Delivery(path, headers, body, verified, status)
            self.deliveries.append(delivery)
        if self._echo:
            print(_describe(delivery, self.fmt), flush=True)
        return status, answer


def _wrong_format(sent: WebhookFormat, fmt: WebhookFormat) -> tuple[int, bytes]:
    """A 400 that names the fix: no platform answers a delivery in another format with a success, and a
    2xx here would be a false success for a function that sent ``standard`` (any 2xx is delivered)."""
    message = f"this receiver speaks {fmt}, the delivery is {sent}: set WEBHOOK_FORMAT={fmt}"
    return 400, json.dumps({"error": message}).encode()


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def _describe(delivery: Delivery, fmt: WebhookFormat) -> str:
    check = {True: "signature verified", False: "SIGNATURE INVALID", None: "unsigned"}[delivery.verified]
    path = redact_url("http://receiver" + delivery.path).removeprefix("http://receiver")
    lines = [f"--- POST {path} -> {delivery.status} ({check})"]
    sent = delivery_format(delivery.path, delivery.headers, delivery.body)
    if sent is not None and sent != fmt:
        lines.append(
            f"WRONG FORMAT: this delivery is {sent}, the receiver expects {fmt}: set WEBHOOK_FORMAT={fmt}"
        )
    text = delivery.text
    if text is not None:
        lines.append(text)
    else:
        try:
            lines.append(json.dumps(delivery.json(), indent=2, ensure_ascii=False))
        except ValueError:
            lines.append(delivery.body.decode("utf-8", "replace"))
    return "\n".join(lines)


def _handler_for(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            try:
                length = int(self.headers.get("content-length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                self._drain(length)
                self._answer(413, b'{"error":"the body is larger than the receiver reads (8 MiB)"}')
                return
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, answer = receiver.receive(self.path, headers, body)
            self._answer(status, answer)

        def _drain(self, length: int) -> None:
            """Read a refused body away in small pieces (kept nowhere), so that the sender sees the answer
            rather than a reset; past 64 MiB, or without a length, the connection is closed instead."""
            if not 0 <= length <= _MAX_DRAINED:
                self.close_connection = True
                return
            while length > 0:
                piece = self.rfile.read(min(length, 1 << 16))
                if not piece:
                    break
                length -= len(piece)

        def _answer(self, status: int, answer: bytes) -> None:
            self.send_response(status)
            kind = "application/json" if answer.startswith(b"{") else "text/plain"
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            if answer:
                self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: deliveries are reported by ``echo``, not by the server's access log."""

    return _Handler


def _secret(text: str) -> str:
    """``--secret``: a ``whsec_`` one must hold base64 (the function refuses it otherwise); never echoed."""
    try:
        standard_webhook_key(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run a receiver until interrupted, printing each delivery: 0 when stopped, 1 when it cannot listen, 2 a
    usage error (a port out of range, a ``whsec_`` secret that is not base64, an HTTP status out of range)."""
    parser = argparse.ArgumentParser(prog="exporter-tools receiver", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=port, default=8765, help="port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument(
        "--secret", type=_secret, default=None, help="WEBHOOK_SECRET to verify signatures with"
    )
    parser.add_argument("--format", dest="fmt", default="standard", choices=get_args(WebhookFormat))
    parser.add_argument(
        "--status", type=http_status, default=None, help="answer every request with this status (100-599)"
    )
    parser.add_argument("--body", default="", help="the body to answer with when --status is given")
    args = parser.parse_args(argv)
    answer = (args.status, args.body) if args.status is not None else None
    try:
        receiver = WebhookReceiver(fmt=args.fmt, secret=args.secret, port=args.port, answer=answer, echo=True)
    except OSError as exc:
        print(f"receiver: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"listening on {receiver.url} (format {args.fmt})", flush=True)
    print("# point the function at it (paste into the shell that runs `python -m handler invoke`):")
    print("\n".join(receiver.export_lines()), flush=True)
    receiver.serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
