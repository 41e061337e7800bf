"""The ECS client at its HTTP edge (respx): signed requests, typed results, typed errors, retries, paging."""

from __future__ import annotations

import functools
import json
from urllib.parse import parse_qsl

import httpx
import pytest
import respx

from handler.adapters.ecs import MAX_SCAN_PAGES
from handler.adapters.pacing import RateLimiter
from handler.adapters.signing import Credentials
from handler.errors import (
    BudgetExhausted,
    ClearanceExpired,
    ListingTruncated,
    MalformedResponse,
    RetryableApiError,
    TerminalApiError,
    Throttled,
    UnknownOutcomeError,
)
from tests.support.builders import api_error, api_ok, ecs_client
from tests.support.fakes import EXPORT_IMAGE_ERRORS, FakeClock, untrusted_tls_client

ENDPOINT = "https://open.volcengineapi.com"
CREDS = Credentials("AKLTcanaryaccess0000", "canary-secret-key-value", "canary-session-token")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0)


# The ECS client these tests drive, at ENDPOINT with CREDS.
make_client = functools.partial(ecs_client, credentials=CREDS)


def query_of(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.url.query.decode(), keep_blank_values=True))


GATEWAY_ERRORS = [
    (401, "SignatureDoesNotMatch", TerminalApiError),
    (403, "AccessDenied", TerminalApiError),
]


@respx.mock
def test_export_sends_a_signed_get_and_returns_the_task(clock: FakeClock) -> None:
    """ExportImage goes out as a signed GET with the documented parameters and yields the TaskId."""
    route = respx.get(ENDPOINT).mock(return_value=api_ok({"TaskId": "t-123"}, "req-42"))
    started = make_client(clock).export_image("image-abc", "my-bucket", "daily", deadline=2000)
    assert (started.task_id, started.request_id) == ("t-123", "req-42")
    sent = route.calls.last.request
    assert query_of(sent) == {
        "Action": "ExportImage",
        "Version": "2020-04-01",
        "ImageId": "image-abc",
        "TOSBucket": "my-bucket",
        "TOSPrefix": "daily",
    }
    auth = sent.headers["Authorization"]
    assert auth.startswith("HMAC-SHA256 Credential=AKLTcanaryaccess0000/")
    assert "/cn-beijing/ecs/request, SignedHeaders=host;x-content-sha256;x-date;x-security-token" in auth
    assert sent.headers["X-Security-Token"] == "canary-session-token"


@pytest.mark.parametrize(
    ("status", "code", "kind"), [e for e in EXPORT_IMAGE_ERRORS if e[1] != "InternalError"] + GATEWAY_ERRORS
)
@respx.mock
def test_every_export_image_error_becomes_its_typed_error_without_retry(
    clock: FakeClock, status: int, code: str, kind: type[Exception]
) -> None:
    """Each documented error answer raises its typed error, with request id, and ExportImage is not resent."""
    route = respx.get(ENDPOINT).mock(return_value=api_error(status, code, "The specified thing is wrong."))
    with pytest.raises(kind) as caught:
        make_client(clock).export_image("image-abc", "b-1", "p", deadline=2000)
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert caught.value.request_id == f"req-{code}"  # type: ignore[attr-defined]
    assert caught.value.http_status == status  # type: ignore[attr-defined]
    assert route.call_count == 1


@respx.mock
def test_internal_error_is_retried_then_succeeds(clock: FakeClock) -> None:
    """A 500 InternalError started nothing, so ExportImage is sent again after a backoff."""
    route = respx.get(ENDPOINT).mock(side_effect=[api_error(500, "InternalError"), api_ok({"TaskId": "t-9"})])
    assert make_client(clock).export_image("image-abc", "b-1", "p", deadline=2000).task_id == "t-9"
    assert route.call_count == 2
    assert clock.slept == [pytest.approx(0.1)]


@respx.mock
def test_throttling_honours_retry_after_and_slows_the_limiter(clock: FakeClock) -> None:
    """A 429 waits at least Retry-After, halves the shared rate, then the call goes through."""
    limiter = RateLimiter(10, clock=clock)
    client = make_client(clock, limiter=limiter)
    route = respx.get(ENDPOINT).mock(
        side_effect=[api_error(429, "FlowLimitExceeded", **{"Retry-After": "2"}), api_ok({"TaskId": "t-1"})]
    )
    assert client.export_image("image-abc", "b-1", "p", deadline=2000).task_id == "t-1"
    assert route.call_count == 2
    assert sum(clock.slept) >= 2.0
    assert limiter.rate == pytest.approx(5.5)  # halved to 5, then one success adds 0.5


@respx.mock
def test_a_retry_after_past_the_clearance_is_not_waited_for_nor_sent(clock: FakeClock) -> None:
    """Under a clearance ending in 10 s, a 429 asking for 15 s ends the call at once with ClearanceExpired:
    no second ExportImage, no 15 s wait, the throttling kept as its cause and the limiter still told."""
    limiter = RateLimiter(10, clock=clock)
    route = respx.get(ENDPOINT).mock(
        side_effect=[api_error(429, "FlowLimitExceeded", **{"Retry-After": "15"}), api_ok({"TaskId": "t-1"})]
    )
    with pytest.raises(ClearanceExpired) as caught:
        make_client(clock, limiter=limiter).export_image(
            "image-abc", "b-1", "p", deadline=2000, cleared_until=clock.t + 10
        )
    assert route.call_count == 1
    assert clock.slept == []
    assert isinstance(caught.value.cause, Throttled)
    assert caught.value.late_by == pytest.approx(5.0)
    assert caught.value.message == (
        "ExportImage was not sent again after FlowLimitExceeded: waiting 15.0 s (Retry-After) would send it "
        "5.0 s after its clearance ran out (the look-up that cleared it is older than the clearance window "
        "by then): look again first"
    )
    assert limiter.rate == 5  # halved by the 429, as without a clearance


@respx.mock
def test_a_retry_after_within_the_clearance_is_waited_for_and_resent(clock: FakeClock) -> None:
    """A 429 asking for 3 s under a clearance ending in 10 s is waited for and sent again, as ever."""
    route = respx.get(ENDPOINT).mock(
        side_effect=[api_error(429, "FlowLimitExceeded", **{"Retry-After": "3"}), api_ok({"TaskId": "t-1"})]
    )
    started = make_client(clock).export_image(
        "image-abc", "b-1", "p", deadline=2000, cleared_until=clock.t + 10
    )
    assert started.task_id == "t-1"
    assert route.call_count == 2
    assert clock.slept == [pytest.approx(3.0)]


def test_no_export_is_sent_once_its_clearance_has_run_out(clock: FakeClock) -> None:
    """A first attempt whose turn at the rate limiter comes after the clearance (throttling paused it) is
    not sent: ClearanceExpired, nothing waited for. Reads are never bound by an export's clearance."""
    limiter = RateLimiter(10, clock=clock)
    limiter.on_throttled(30.0)
    with respx.mock(assert_all_called=False) as mock:
        route = mock.get(ENDPOINT).mock(return_value=api_ok({"TaskId": "t-1", "Tasks": []}))
        client = make_client(clock, limiter=limiter)
        with pytest.raises(ClearanceExpired, match=r"^ExportImage was not sent: the request rate limit"):
            client.export_image("image-abc", "b-1", "p", deadline=2000, cleared_until=clock.t + 10)
        assert route.call_count == 0
        assert list(client.describe_tasks(deadline=2000, resource_ids=["image-abc"])) == []
        assert route.call_count == 1
    assert clock.slept == [pytest.approx(30.0)]


@respx.mock
def test_retries_stop_at_the_attempt_budget(clock: FakeClock) -> None:
    """After the configured attempts the last error is raised, still typed as retryable."""
    route = respx.get(ENDPOINT).mock(return_value=api_error(503, "ServiceUnavailable"))
    with pytest.raises(RetryableApiError):
        make_client(clock, attempts=3).export_image("image-abc", "b-1", "p", deadline=2000)
    assert route.call_count == 3


@respx.mock
def test_retries_stop_before_the_deadline(clock: FakeClock) -> None:
    """A backoff that would end past the deadline is not waited for: the error is raised at once."""
    route = respx.get(ENDPOINT).mock(
        return_value=api_error(429, "FlowLimitExceeded", **{"Retry-After": "30"})
    )
    with pytest.raises(Throttled):
        make_client(clock).export_image("image-abc", "b-1", "p", deadline=clock.t + 10)
    assert route.call_count == 1


def test_no_request_once_the_deadline_has_passed(clock: FakeClock) -> None:
    """Past the deadline nothing is sent: the call reports the budget, not a network error."""
    with respx.mock(assert_all_called=False) as mock:
        route = mock.get(ENDPOINT).mock(return_value=api_ok({"TaskId": "t-1"}))
        with pytest.raises(BudgetExhausted):
            make_client(clock).export_image("image-abc", "b-1", "p", deadline=clock.t - 1)
        assert route.call_count == 0


@respx.mock
def test_each_request_timeout_is_clipped_to_the_time_left(clock: FakeClock) -> None:
    """A request never waits longer than its deadline leaves, however long the client's own timeouts are;
    with less than half a second left it is not sent at all."""
    route = respx.get(ENDPOINT).mock(return_value=api_ok({"TaskId": "t-1"}))
    client = make_client(clock)
    client.export_image("image-abc", "b-1", "p", deadline=clock.t + 60)
    client.export_image("image-abc", "b-1", "p", deadline=clock.t + 2)
    roomy, short = (call.request.extensions["timeout"] for call in route.calls)
    assert roomy == {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
    assert short == {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0}
    with pytest.raises(BudgetExhausted):
        client.export_image("image-abc", "b-1", "p", deadline=clock.t + 0.4)
    assert route.call_count == 2


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ReadTimeout("read timed out"), UnknownOutcomeError),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), UnknownOutcomeError),
        (httpx.ReadError("connection reset"), UnknownOutcomeError),
        (httpx.ConnectError("refused"), RetryableApiError),
        (httpx.ConnectTimeout("slow"), RetryableApiError),
    ],
)
@respx.mock
def test_lost_answers_are_unknown_outcomes_for_export(
    clock: FakeClock, exc: Exception, kind: type[Exception]
) -> None:
    """A request sent without an answer is never blindly resent for ExportImage; one never sent is."""
    route = respx.get(ENDPOINT).mock(side_effect=[exc, api_ok({"TaskId": "t-2"})])
    client = make_client(clock)
    if kind is UnknownOutcomeError:
        with pytest.raises(UnknownOutcomeError):
            client.export_image("image-abc", "b-1", "p", deadline=2000)
        assert route.call_count == 1
    else:
        assert client.export_image("image-abc", "b-1", "p", deadline=2000).task_id == "t-2"
        assert route.call_count == 2


def test_an_untrusted_certificate_fails_for_good_naming_ssl_cert_file(clock: FakeClock) -> None:
    """A gateway certificate that fails verification is terminal, says to set SSL_CERT_FILE, and is not resent."""
    http, requests = untrusted_tls_client()
    with pytest.raises(TerminalApiError) as caught:
        list(make_client(clock, http=http).describe_tasks(deadline=2000, resource_ids=["image-a"]))
    assert caught.value.code == "CertificateVerifyFailed"
    assert "SSL_CERT_FILE" in caught.value.message
    assert len(requests) == 1


@respx.mock
def test_a_refused_connection_quoting_a_certificate_error_is_retried(clock: FakeClock) -> None:
    """A connect failure is sorted by its cause, not its wording: a proxy's text about certificates is retried."""
    quoted = httpx.ConnectError("proxy says: CERTIFICATE_VERIFY_FAILED upstream")
    route = respx.get(ENDPOINT).mock(side_effect=[quoted, api_ok({"Tasks": [], "NextToken": ""})])
    assert list(make_client(clock).describe_tasks(deadline=2000, resource_ids=["image-a"])) == []
    assert route.call_count == 2


@respx.mock
def test_describe_calls_retry_unknown_outcomes(clock: FakeClock) -> None:
    """Read-only calls are safe to resend after a lost answer."""
    respx.get(ENDPOINT).mock(side_effect=[httpx.ReadTimeout("slow"), api_ok({"Tasks": [], "NextToken": ""})])
    assert list(make_client(clock).describe_tasks(deadline=2000, resource_ids=["image-a"])) == []


@respx.mock
def test_error_inside_a_200_is_an_error(clock: FakeClock) -> None:
    """An Error object in an HTTP 200 answer is treated as the error it names."""
    respx.get(ENDPOINT).mock(return_value=api_error(200, "InvalidImage.NotFound"))
    with pytest.raises(TerminalApiError) as caught:
        make_client(clock).export_image("image-abc", "b-1", "p", deadline=2000)
    assert caught.value.code == "InvalidImage.NotFound"


@pytest.mark.parametrize(
    "response",
    [httpx.Response(200, text="<html>gateway</html>"), httpx.Response(200, json={"Result": {}})],
)
@respx.mock
def test_a_success_without_task_id_is_an_unknown_outcome(clock: FakeClock, response: httpx.Response) -> None:
    """An answer that does not say which task started leaves the outcome unknown, to be looked up."""
    respx.get(ENDPOINT).mock(return_value=response)
    with pytest.raises(UnknownOutcomeError):
        make_client(clock).export_image("image-abc", "b-1", "p", deadline=2000)


@respx.mock
def test_an_error_message_is_masked_and_cut_short(clock: FakeClock) -> None:
    """An API error message quoting the request's secrets has them masked, and a huge one is cut to 500
    characters: the message goes into the result, the webhook and exception texts."""
    message = f"bad request signed with {CREDS.secret_key} token {CREDS.session_token} " + "x" * 5000
    respx.get(ENDPOINT).mock(return_value=api_error(400, "InvalidParameter", message))
    with pytest.raises(TerminalApiError) as caught:
        make_client(clock).export_image("image-abc", "b-1", "p", deadline=2000)
    text = str(caught.value)
    assert CREDS.secret_key not in text
    assert str(CREDS.session_token) not in text
    assert caught.value.message.startswith("bad request signed with *** token ***")
    assert len(caught.value.message) == 500


@respx.mock
def test_a_5xx_without_json_is_retryable_with_its_status(clock: FakeClock) -> None:
    """A proxy's HTML error page still yields a typed error named after its status."""
    respx.get(ENDPOINT).mock(return_value=httpx.Response(502, text="bad gateway"))
    with pytest.raises(RetryableApiError) as caught:
        make_client(clock, attempts=1).export_image("image-abc", "b-1", "p", deadline=2000)
    assert (caught.value.code, caught.value.http_status) == ("HTTP502", 502)


@respx.mock
def test_describe_images_follows_next_token_over_all_pages(clock: FakeClock) -> None:
    """Every page is read until NextToken is empty, with the filters on each page."""
    pages = [
        api_ok({"Images": [{"ImageId": "image-1", "Status": "available"}], "NextToken": "tok-2"}),
        api_ok(
            {
                "Images": [
                    {"ImageId": "image-2", "Status": "available", "Tags": [{"Key": "env", "Value": "prod"}]}
                ],
                "NextToken": "",
            }
        ),
    ]
    route = respx.get(ENDPOINT).mock(side_effect=pages)
    images = list(
        make_client(clock).describe_images(
            deadline=2000, visibility="private", status="available", tag_filters={"env": "prod"}
        )
    )
    assert [i.image_id for i in images] == ["image-1", "image-2"]
    assert images[1].tags == (("env", "prod"),)
    first, second = (query_of(c.request) for c in route.calls)
    assert first["Visibility"] == "private"
    assert first["Status.1"] == "available"
    assert (first["TagFilters.1.Key"], first["TagFilters.1.Values.1"]) == ("env", "prod")
    assert first["MaxResults"] == "100"
    assert "NextToken" not in first
    assert second["NextToken"] == "tok-2"


@respx.mock
def test_describe_tasks_batches_ids_by_one_hundred(clock: FakeClock) -> None:
    """250 images are looked up in three requests, never one request per image."""
    route = respx.get(ENDPOINT).mock(return_value=api_ok({"Tasks": [], "NextToken": ""}))
    ids = [f"image-{n:03d}" for n in range(250)] + ["image-000"]
    assert list(make_client(clock).describe_tasks(deadline=2000, resource_ids=ids)) == []
    sizes = [sum(1 for k in query_of(c.request) if k.startswith("ResourceIds.")) for c in route.calls]
    assert sizes == [100, 100, 50]


@respx.mock
def test_describe_tasks_parses_tasks(clock: FakeClock) -> None:
    """Tasks come back typed: id, type, status, image and times."""
    task = {
        "Id": "t-1",
        "Type": "ExportImage",
        "Status": "Running",
        "ResourceId": "image-a",
        "Process": 40,
        "CreatedAt": "2026-11-26T10:00:00+08:00",
        "UpdatedAt": "2026-11-26T10:01:00+08:00",
        "EndAt": "",
    }
    respx.get(ENDPOINT).mock(return_value=api_ok({"Tasks": [task], "NextToken": ""}))
    (parsed,) = make_client(clock).describe_tasks(deadline=2000, task_ids=["t-1"])
    assert (parsed.task_id, parsed.type, parsed.status, parsed.resource_id) == (
        "t-1",
        "ExportImage",
        "Running",
        "image-a",
    )
    assert parsed.created_at is not None
    assert parsed.end_at is None


@respx.mock
def test_a_repeated_next_token_stops_paging(clock: FakeClock) -> None:
    """A gateway that hands back the same token twice cannot make us page forever."""
    route = respx.get(ENDPOINT).mock(return_value=api_ok({"Images": [], "NextToken": "same"}))
    assert list(make_client(clock).describe_images(deadline=2000)) == []
    assert route.call_count == 2


def new_token_every_page(request: httpx.Request) -> httpx.Response:
    """A gateway whose NextToken changes on every page (and whose pages are never empty of tokens)."""
    page = int(query_of(request).get("NextToken", "t0")[1:])
    return api_ok({"Tasks": [], "Images": [], "NextToken": f"t{page + 1}"})


@respx.mock
def test_paging_by_ids_ends_after_the_pages_the_ids_can_need(clock: FakeClock) -> None:
    """A NextToken that changes on every page makes one image's task listing stop at two pages with a
    MalformedResponse, instead of paging for as long as the gateway likes."""
    route = respx.get(ENDPOINT).mock(side_effect=new_token_every_page)
    with pytest.raises(MalformedResponse) as caught:
        list(make_client(clock).describe_tasks(deadline=2000, resource_ids=["image-a"]))
    assert "paging did not end" in caught.value.message
    assert route.call_count == 2
    with pytest.raises(MalformedResponse):
        list(make_client(clock).describe_images(deadline=2000, image_ids=["image-a", "image-b"]))
    assert route.call_count == 4


@respx.mock
def test_a_scan_ends_at_its_documented_page_cap(clock: FakeClock) -> None:
    """A scan without ids pages at most MAX_SCAN_PAGES times: the pages read are yielded, then the listing
    ends with ListingTruncated (not retryable: reading again reads the same pages), naming how to narrow it."""
    route = respx.get(ENDPOINT).mock(side_effect=new_token_every_page)
    listing = make_client(clock).describe_images(deadline=1e9, visibility="private")
    read = []
    with pytest.raises(ListingTruncated, match="narrow it with ImageNamePrefix or Tags") as cut:
        read.extend(listing)
    assert not cut.value.retryable
    assert route.call_count == MAX_SCAN_PAGES
    assert read == []  # this gateway's pages hold no image


@respx.mock
def test_a_malformed_item_is_a_retryable_error(clock: FakeClock) -> None:
    """An item missing its id is reported, not silently dropped."""
    respx.get(ENDPOINT).mock(return_value=api_ok({"Images": [{"ImageName": "x"}], "NextToken": ""}))
    with pytest.raises(MalformedResponse) as raised:
        list(make_client(clock, attempts=1).describe_images(deadline=2000))
    assert raised.value.retryable


@respx.mock
def test_post_body_is_signed_as_sent(clock: FakeClock) -> None:
    """A JSON call goes as a POST whose body hash and content type are part of the signature."""
    route = respx.post(ENDPOINT).mock(return_value=api_ok({"Id": "f-1"}))
    api = make_client(clock)._api
    result, _ = api.call(
        "CreateFunction", body={"Name": "fn", "MemoryMB": 512}, deadline=2000, idempotent=False
    )
    assert result == {"Id": "f-1"}
    sent = route.calls.last.request
    assert query_of(sent) == {"Action": "CreateFunction", "Version": "2020-04-01"}
    assert json.loads(sent.content) == {"MemoryMB": 512, "Name": "fn"}
    assert "content-type;host;x-content-sha256;x-date;x-security-token" in sent.headers["Authorization"]


# -- the doctor's probe ------------------------------------------------------------------------------------

DATE = "Thu, 26 Nov 2026 12:00:05 GMT"


@respx.mock
def test_a_probe_asks_for_one_private_image_and_keeps_the_answers_date(clock: FakeClock) -> None:
    """The probe is one signed DescribeImages of a single private image; it keeps the answer's Date and
    request id beside the time it was signed with."""
    answer = api_ok({"Images": []}, "req-probe")
    answer.headers["Date"] = DATE
    route = respx.get(ENDPOINT).mock(return_value=answer)
    probe = make_client(clock).probe(deadline=2000)
    assert query_of(route.calls.last.request) == {
        "Action": "DescribeImages",
        "Version": "2020-04-01",
        "Visibility": "private",
        "MaxResults": "1",
    }
    assert probe.error is None
    assert probe.request_id == "req-probe"
    assert probe.server_time is not None
    assert probe.server_time.isoformat() == "2026-11-26T12:00:05+00:00"
    assert probe.local_time.tzinfo is not None


@respx.mock
def test_a_refused_probe_carries_its_error_and_still_its_date(clock: FakeClock) -> None:
    """A final refusal (a bad signature) is returned in the probe, not raised, with the answer's Date: a
    refused request still tells the server's time. Nothing is retried."""
    answer = api_error(401, "SignatureDoesNotMatch", Date=DATE)
    route = respx.get(ENDPOINT).mock(return_value=answer)
    probe = make_client(clock).probe(deadline=2000)
    assert isinstance(probe.error, TerminalApiError)
    assert probe.error.code == "SignatureDoesNotMatch"
    assert probe.request_id == "req-SignatureDoesNotMatch"
    assert probe.server_time is not None
    assert route.call_count == 1


@respx.mock
def test_a_probe_retries_what_is_retryable_and_raises_past_the_retries(clock: FakeClock) -> None:
    """A 5xx is retried as any read is; past the attempts it is raised, as ``call`` raises it."""
    respx.get(ENDPOINT).mock(return_value=api_error(500, "InternalError"))
    with pytest.raises(RetryableApiError):
        make_client(clock).probe(deadline=2000)
