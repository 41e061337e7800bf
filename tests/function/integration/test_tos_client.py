"""The TOS client at its HTTP edge (respx): signed HeadObject, the three answers, typed errors, retries, URLs."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest
import respx
import structlog

from handler.adapters.exchange import bounded_client
from handler.adapters.pacing import RateLimiter
from handler.adapters.retry import RetryPolicy
from handler.adapters.signing import Credentials
from handler.adapters.tos import (
    ObjectFound,
    ObjectMissing,
    ObjectUnreadable,
    TosClient,
    default_tos_endpoint,
    object_url,
    reset_tos_rate_limiter,
    shared_tos_rate_limiter,
    uses_path_style,
)
from handler.clock import SYSTEM_CLOCK
from handler.errors import (
    BudgetExhausted,
    MalformedResponse,
    RetryableApiError,
    TerminalApiError,
    UnknownOutcomeError,
)
from tests.support.fakes import FakeClock, untrusted_tls_client
from tests.support.hostile import HostileServer, http_head

CREDS = Credentials("AKLTcanarytos00000000", "canary-tos-secret-value", "canary-tos-session-token")
BUCKET = "my-image-exports"
KEY = "imgexport_image-ybqi99s7yq8rx7mnk44b_system.qcow2"
VIRTUAL_URL = f"https://{BUCKET}.tos-cn-beijing.volces.com/{KEY}"
FOUND_HEADERS = {
    "Content-Length": "42949672960",
    "ETag": '"5d41402abc4b2a76b9719d911017c592"',
    "Last-Modified": "Fri, 27 Nov 2026 08:30:00 GMT",
    "x-tos-hash-crc64ecma": "12345678901234567890",
    "x-tos-request-id": "tos-req-1",
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0, wall=datetime(2026, 11, 27, 8, 30, tzinfo=UTC))


def make_client(
    clock: FakeClock,
    *,
    endpoint: str = "https://tos-cn-beijing.volces.com",
    attempts: int = 4,
    base: float = 0.1,
    limiter: RateLimiter | None = None,
    http: httpx.Client | None = None,
) -> TosClient:
    return TosClient(
        http=http or httpx.Client(timeout=httpx.Timeout(1.0)),
        endpoint=endpoint,
        region="cn-beijing",
        credentials=CREDS,
        policy=RetryPolicy(max_attempts=attempts, base=base, cap=1.0),
        limiter=limiter or RateLimiter(1000, clock=clock),
        clock=clock,
    )


@respx.mock
def test_a_found_object_reports_size_crc_etag_and_time_from_a_signed_head(clock: FakeClock) -> None:
    """A 200 answers the object's size, CRC-64, ETag and Last-Modified; the request is a TOS4-signed HEAD."""
    route = respx.head(VIRTUAL_URL).mock(return_value=httpx.Response(200, headers=FOUND_HEADERS))
    result = make_client(clock).head_object(BUCKET, KEY, deadline=2000)
    assert result == ObjectFound(
        bucket=BUCKET,
        key=KEY,
        size_bytes=42_949_672_960,
        crc64="12345678901234567890",
        etag="5d41402abc4b2a76b9719d911017c592",
        last_modified=datetime(2026, 11, 27, 8, 30, tzinfo=UTC),
        request_id="tos-req-1",
    )
    sent = route.calls.last.request
    assert sent.method == "HEAD"
    assert sent.headers["x-tos-date"] == "20261127T083000Z"
    assert sent.headers["x-tos-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert sent.headers["x-tos-security-token"] == CREDS.session_token
    assert sent.headers["Authorization"].startswith(
        "TOS4-HMAC-SHA256 Credential=AKLTcanarytos00000000/20261127/cn-beijing/tos/request, "
        "SignedHeaders=host;x-tos-content-sha256;x-tos-date;x-tos-security-token, Signature="
    )


@respx.mock
def test_a_404_is_a_missing_object_not_an_error(clock: FakeClock) -> None:
    """TOS's 404 (no body, as for every HEAD) means the key does not exist: ObjectMissing, sent once."""
    route = respx.head(VIRTUAL_URL).mock(
        return_value=httpx.Response(404, headers={"x-tos-request-id": "r-404"})
    )
    assert make_client(clock).head_object(BUCKET, KEY, deadline=2000) == ObjectMissing(BUCKET, KEY, "r-404")
    assert route.call_count == 1


@respx.mock
def test_a_403_means_could_not_verify_never_a_failure(clock: FakeClock) -> None:
    """A 403 is ObjectUnreadable with a reason that says the export could not be verified; no retry."""
    route = respx.head(VIRTUAL_URL).mock(
        return_value=httpx.Response(403, headers={"x-tos-request-id": "r-403"})
    )
    result = make_client(clock).head_object(BUCKET, KEY, deadline=2000)
    assert isinstance(result, ObjectUnreadable)
    assert "could not be verified" in result.reason
    assert result.request_id == "r-403"
    assert route.call_count == 1


@respx.mock
def test_a_500_is_retried_after_a_backoff_then_the_object_is_found(clock: FakeClock) -> None:
    """A 500 started nothing: the HEAD is sent again after a full-jitter backoff and its answer is used."""
    route = respx.head(VIRTUAL_URL).mock(
        side_effect=[httpx.Response(500), httpx.Response(200, headers=FOUND_HEADERS)]
    )
    result = make_client(clock).head_object(BUCKET, KEY, deadline=2000)
    assert isinstance(result, ObjectFound)
    assert route.call_count == 2
    assert clock.slept == [pytest.approx(0.1)]


@respx.mock
def test_a_500_that_never_ends_is_a_retryable_error_after_the_attempt_budget(clock: FakeClock) -> None:
    """After the last attempt a 503 raises RetryableApiError with TOS's request id and error code header."""
    answer = httpx.Response(503, headers={"x-tos-request-id": "r-503", "x-tos-ec": "0005-00000001"})
    route = respx.head(VIRTUAL_URL).mock(return_value=answer)
    with pytest.raises(RetryableApiError) as caught:
        make_client(clock, attempts=3).head_object(BUCKET, KEY, deadline=2000)
    assert (caught.value.code, caught.value.http_status, caught.value.request_id) == ("HTTP503", 503, "r-503")
    assert "0005-00000001" in caught.value.message
    assert route.call_count == 3


@respx.mock
def test_a_timeout_is_retried_and_then_reported_as_an_unknown_outcome(clock: FakeClock) -> None:
    """A read timeout on a HEAD is safe to resend; when every attempt times out the error says so by type."""
    route = respx.head(VIRTUAL_URL).mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(UnknownOutcomeError) as caught:
        make_client(clock, attempts=2).head_object(BUCKET, KEY, deadline=2000)
    assert caught.value.code == "ReadTimeout"
    assert route.call_count == 2


@respx.mock
def test_a_connect_error_names_tos_endpoint(clock: FakeClock) -> None:
    """A TOS host that cannot be reached says which variable to check, without quoting the request."""
    respx.head(VIRTUAL_URL).mock(side_effect=httpx.ConnectError("boom secret-ish detail"))
    with pytest.raises(RetryableApiError) as caught:
        make_client(clock, attempts=1).head_object(BUCKET, KEY, deadline=2000)
    assert "TOS_ENDPOINT" in caught.value.message
    assert "secret-ish" not in caught.value.message


@respx.mock
def test_throttling_waits_retry_after_and_slows_the_tos_limiter(clock: FakeClock) -> None:
    """A 429 waits at least Retry-After and halves the TOS limiter's rate before the HEAD goes through."""
    limiter = RateLimiter(1000, clock=clock)
    client = make_client(clock, limiter=limiter)
    route = respx.head(VIRTUAL_URL).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(404)]
    )
    assert isinstance(client.head_object(BUCKET, KEY, deadline=2000), ObjectMissing)
    assert route.call_count == 2
    assert sum(clock.slept) >= 2.0
    assert limiter.rate < 1000


@respx.mock
def test_a_signature_error_is_terminal_with_the_body_code(clock: FakeClock) -> None:
    """An error answer with TOS's JSON body becomes a typed error carrying its Code and RequestId."""
    body = {"Code": "SignatureDoesNotMatch", "Message": "bad", "RequestId": "r-body", "EC": "0002-00000001"}
    respx.head(VIRTUAL_URL).mock(return_value=httpx.Response(400, json=body))
    with pytest.raises(TerminalApiError) as caught:
        make_client(clock).head_object(BUCKET, KEY, deadline=2000)
    assert (caught.value.code, caught.value.request_id) == ("SignatureDoesNotMatch", "r-body")


@respx.mock
def test_nothing_is_sent_past_the_deadline(clock: FakeClock) -> None:
    """A call whose deadline has passed raises BudgetExhausted and sends nothing."""
    route = respx.head(VIRTUAL_URL).mock(return_value=httpx.Response(404))
    with pytest.raises(BudgetExhausted):
        make_client(clock).head_object(BUCKET, KEY, deadline=999)
    assert route.call_count == 0


@respx.mock
def test_no_retry_when_the_backoff_would_pass_the_deadline(clock: FakeClock) -> None:
    """A retryable error close to the deadline is raised at once instead of sleeping past it."""
    route = respx.head(VIRTUAL_URL).mock(return_value=httpx.Response(500))
    with pytest.raises(RetryableApiError):
        make_client(clock, base=1.0).head_object(BUCKET, KEY, deadline=1000.6)
    assert route.call_count == 1
    assert clock.slept == []


@respx.mock
def test_a_200_without_a_size_is_a_malformed_answer(clock: FakeClock) -> None:
    """A found object must say its size; an answer without Content-Length is a retryable MalformedResponse."""
    respx.head(VIRTUAL_URL).mock(return_value=httpx.Response(200, headers={"Content-Length": "x"}))
    with pytest.raises(MalformedResponse) as caught:
        make_client(clock, attempts=1).head_object(BUCKET, KEY, deadline=2000)
    assert caught.value.code == "MalformedResponse"
    assert caught.value.retryable


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("https://tos-cn-beijing.volces.com", VIRTUAL_URL),
        ("http://127.0.0.1:9000", f"http://127.0.0.1:9000/{BUCKET}/{KEY}"),
        ("http://localhost:9000", f"http://localhost:9000/{BUCKET}/{KEY}"),
        ("http://[::1]:9000", f"http://[::1]:9000/{BUCKET}/{KEY}"),
        ("https://tos.internal.example:8443", f"https://{BUCKET}.tos.internal.example:8443/{KEY}"),
    ],
)
def test_ip_and_localhost_endpoints_are_path_style_others_virtual_hosted(endpoint: str, url: str) -> None:
    """An IP or localhost endpoint puts the bucket in the path; a host name puts it in the host."""
    assert object_url(endpoint, BUCKET, KEY) == url


@respx.mock
def test_a_path_style_request_is_signed_for_the_host_and_path_it_is_sent_to(clock: FakeClock) -> None:
    """Against a local endpoint the HEAD goes to /<bucket>/<key> on that host:port, signed with both."""
    route = respx.head(f"http://127.0.0.1:9000/{BUCKET}/exports/a%20b.qcow2").mock(
        return_value=httpx.Response(200, headers={"Content-Length": "3"})
    )
    result = make_client(clock, endpoint="http://127.0.0.1:9000/").head_object(
        BUCKET, "exports/a b.qcow2", deadline=2000
    )
    assert isinstance(result, ObjectFound)
    assert result.size_bytes == 3
    assert (result.crc64, result.etag, result.last_modified) == (None, None, None)
    assert route.calls.last.request.headers["Host"] == "127.0.0.1:9000"


@pytest.mark.parametrize(
    ("bucket", "key", "named"),
    [("Bad_Bucket", KEY, "bucket"), (BUCKET, "", "key"), (BUCKET, "a/../b", "key"), (BUCKET, ".", "key")],
)
def test_a_bad_bucket_or_key_is_refused_before_sending(
    clock: FakeClock, bucket: str, key: str, named: str
) -> None:
    """A bucket name TOS cannot have, an empty key, or a key with a '.' or '..' segment (an HTTP client
    would send another path) is a terminal error naming it, with nothing sent."""
    with respx.mock(assert_all_called=False) as mock:
        route = mock.head(url__regex=r".*").mock(return_value=httpx.Response(404))
        with pytest.raises(TerminalApiError, match=named):
            make_client(clock).head_object(bucket, key, deadline=2000)
    assert route.call_count == 0


def test_the_default_endpoint_is_derived_from_the_region() -> None:
    """Without TOS_ENDPOINT the region's public endpoint is used, virtual-hosted."""
    assert default_tos_endpoint("cn-shanghai") == "https://tos-cn-shanghai.volces.com"
    assert not uses_path_style("tos-cn-shanghai.volces.com")
    assert uses_path_style("10.0.0.5")


def test_the_tos_limiter_is_shared_per_process_but_never_the_ecs_one() -> None:
    """The same TOS limiter serves every call at one rate, and it is not OpenAPI's limiter for that rate."""
    from handler.adapters.openapi import shared_rate_limiter

    reset_tos_rate_limiter()
    assert shared_tos_rate_limiter(10) is shared_tos_rate_limiter(10)
    assert shared_tos_rate_limiter(10) is not shared_rate_limiter(10)
    reset_tos_rate_limiter()


@respx.mock
def test_secrets_never_reach_the_log_lines(clock: FakeClock) -> None:
    """The call's log lines carry the status, attempt and request id, never the secret key or the token."""
    respx.head(VIRTUAL_URL).mock(
        side_effect=[httpx.Response(500), httpx.Response(200, headers=FOUND_HEADERS)]
    )
    with structlog.testing.capture_logs() as logs:
        make_client(clock).head_object(BUCKET, KEY, deadline=2000)
    assert [entry["event"] for entry in logs] == ["tos.call", "tos.retry", "tos.call"]
    assert logs[-1]["tos_request_id"] == "tos-req-1"
    text = repr(logs)
    assert CREDS.secret_key not in text
    assert str(CREDS.session_token) not in text


@respx.mock
def test_an_odd_last_modified_is_left_out_not_fatal(clock: FakeClock) -> None:
    """A Last-Modified that is not an HTTP date leaves last_modified unset; the object is still found."""
    headers = FOUND_HEADERS | {"Last-Modified": "yesterday-ish"}
    respx.head(VIRTUAL_URL).mock(return_value=httpx.Response(200, headers=headers))
    result = make_client(clock).head_object(BUCKET, KEY, deadline=2000)
    assert isinstance(result, ObjectFound)
    assert (result.last_modified, result.size_bytes) == (None, 42_949_672_960)


@respx.mock
def test_an_error_without_a_json_body_is_typed_by_its_status(clock: FakeClock) -> None:
    """A 400 whose body is not TOS's JSON becomes a terminal error coded HTTP400, sent once."""
    route = respx.head(VIRTUAL_URL).mock(return_value=httpx.Response(400, text="<html>proxy</html>"))
    with pytest.raises(TerminalApiError) as caught:
        make_client(clock).head_object(BUCKET, KEY, deadline=2000)
    assert caught.value.code == "HTTP400"
    assert route.call_count == 1


def test_an_untrusted_certificate_says_to_set_ssl_cert_file(clock: FakeClock) -> None:
    """A TLS verification failure is terminal and names SSL_CERT_FILE, without retrying."""
    http, requests = untrusted_tls_client()
    with pytest.raises(TerminalApiError) as caught:
        make_client(clock, http=http).head_object(BUCKET, KEY, deadline=2000)
    assert caught.value.code == "CertificateVerifyFailed"
    assert "SSL_CERT_FILE" in caught.value.message
    assert len(requests) == 1


# --- a hostile TOS over a real socket ----------------------------------------------------------------------


def test_a_tos_answer_dripped_from_its_status_line_is_abandoned_at_the_deadline() -> None:
    """A TOS endpoint that sends its status line one byte at a time holds a HeadObject no longer than the
    call's deadline (and about a second): the outcome is unknown, and it comes on time."""
    dripped = http_head(length=0) * 20
    with (
        bounded_client(connect_timeout=3.0, read_timeout=10.0) as http,
        HostileServer("drip", answer=dripped) as server,
    ):
        client = TosClient(
            http=http,
            endpoint=server.url,
            region="cn-beijing",
            credentials=CREDS,
            policy=RetryPolicy(max_attempts=1, base=0.1, cap=1.0),
            limiter=RateLimiter(1000),
            clock=SYSTEM_CLOCK,
        )
        started = time.monotonic()
        with pytest.raises(UnknownOutcomeError) as caught:
            client.head_object(BUCKET, KEY, deadline=time.monotonic() + 1.0)
        elapsed = time.monotonic() - started
    assert caught.value.code == "ReadTimeout"
    assert elapsed < 2.5  # the 1 s deadline and about a second; the drip alone would take far longer


@respx.mock
def test_a_tos_error_that_quotes_the_request_never_shows_its_secrets(clock: FakeClock) -> None:
    """An error answer echoing the request's Authorization, session token and secret key has them masked
    in the error's message before it can reach a result, a log or a webhook."""
    echo: dict[str, str] = {}

    def answer(request: httpx.Request) -> httpx.Response:
        echo.update(request.headers)
        quoted = (
            f"denied: {request.headers['authorization']} token {request.headers['x-tos-security-token']} "
            f"key {CREDS.secret_key}"
        )
        return httpx.Response(400, json={"Code": "InvalidArgument", "Message": quoted})

    respx.head(VIRTUAL_URL).mock(side_effect=answer)
    with pytest.raises(TerminalApiError) as caught:
        make_client(clock, attempts=1).head_object(BUCKET, KEY, deadline=2000)

    message = caught.value.message
    assert CREDS.secret_key not in message
    assert str(CREDS.session_token) not in message
    assert echo["authorization"].rsplit("Signature=", 1)[1] not in message
    assert CREDS.access_key not in message
