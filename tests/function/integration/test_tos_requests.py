"""The TOS client's requests beyond HeadObject at their HTTP edge (respx, and a hostile server over a socket):
ListObjectsV2, a ranged GetObject, PutObject, DeleteObject and HeadBucket, each answer and each edge."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from handler.adapters.exchange import bounded_client
from handler.adapters.pacing import RateLimiter
from handler.adapters.retry import RetryPolicy
from handler.adapters.signing import Credentials
from handler.adapters.tos import (
    MAX_LIST_PAGES,
    MAX_LISTING_BYTES,
    MAX_PUT_BYTES,
    BucketInfo,
    ListedObject,
    ObjectListing,
    ObjectUnreadable,
    PutResult,
    TosClient,
    bucket_url,
)
from handler.clock import SYSTEM_CLOCK
from handler.core.qcow2 import check_structure
from handler.core.verification import ObjectRanges
from handler.errors import (
    AuthenticationFailed,
    BucketNotFound,
    BudgetExhausted,
    InvalidParameter,
    MalformedResponse,
    ObjectNotFound,
    RangeNotSatisfiable,
    RetryableApiError,
    TerminalApiError,
    TosAccessDenied,
    fix_for,
)
from tests.support.fakes import FakeClock
from tests.support.hostile import HostileServer, http_head
from tests.support.qcow2_images import MIB, build_qcow2

CREDS = Credentials("AKLTcanarytos00000000", "canary-tos-secret-value", "canary-tos-session-token")
BUCKET = "my-image-exports"
KEY = "imgexport_image-ybqi99s7yq8rx7mnk44b_system.qcow2"
HOST = f"{BUCKET}.tos-cn-beijing.volces.com"
OBJECT_URL = f"https://{HOST}/{KEY}"
BUCKET_URL = re.compile(rf"https://{re.escape(HOST)}/(\?.*)?$")
DATE = "Fri, 27 Nov 2026 08:30:00 GMT"
VECTORS = json.loads((Path(__file__).parents[2] / "vectors" / "tos_sign.json").read_text(encoding="utf-8"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0, wall=datetime(2026, 11, 27, 8, 30, tzinfo=UTC))


def make_client(
    clock: FakeClock,
    *,
    endpoint: str = "https://tos-cn-beijing.volces.com",
    attempts: int = 4,
    base: float = 0.1,
    credentials: Credentials = CREDS,
    http: httpx.Client | None = None,
) -> TosClient:
    return TosClient(
        http=http or httpx.Client(timeout=httpx.Timeout(1.0)),
        endpoint=endpoint,
        region="cn-beijing",
        credentials=credentials,
        policy=RetryPolicy(max_attempts=attempts, base=base, cap=1.0),
        limiter=RateLimiter(1000, clock=clock),
        clock=clock,
    )


def entry(key: str, size: int = 10, **extra: Any) -> dict[str, Any]:
    return {"Key": key, "Size": size, "ETag": '"e-1"', "HashCrc64ecma": "123", **extra}


def page(*entries: dict[str, Any], token: str | None = None, date: str = DATE) -> httpx.Response:
    """A ListObjectsV2 page of ``entries``: truncated, with ``token`` for the next page, when one is given."""
    document: dict[str, Any] = {"Name": BUCKET, "Contents": list(entries), "IsTruncated": token is not None}
    if token is not None:
        document["NextContinuationToken"] = token
    request_id = f"r-{token or 'last'}"
    return httpx.Response(200, json=document, headers={"Date": date, "x-tos-request-id": request_id})


def ranged(data: bytes) -> Callable[[httpx.Request], httpx.Response]:
    """A TOS that answers ranged GETs of ``data`` as TOS does: 206 with Content-Range, 416 past the end."""

    def answer(request: httpx.Request) -> httpx.Response:
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", request.headers["range"])
        assert match is not None
        first, last = int(match[1]), min(int(match[2]), len(data) - 1)
        if first >= len(data):
            return httpx.Response(416, json={"Code": "InvalidRange", "Message": "out of range"})
        headers = {"Content-Range": f"bytes {first}-{last}/{len(data)}"}
        return httpx.Response(206, content=data[first : last + 1], headers=headers)

    return answer


def denied_echoing_secrets(request: httpx.Request) -> httpx.Response:
    """A 403 whose message quotes the request's Authorization, session token and the secret key."""
    quoted = (
        f"denied: {request.headers['authorization']} token {request.headers['x-tos-security-token']} "
        f"key {CREDS.secret_key}"
    )
    return httpx.Response(403, json={"Code": "AccessDenied", "Message": quoted, "RequestId": "r-echo"})


def assert_no_secret(text: str) -> None:
    assert CREDS.secret_key not in text
    assert str(CREDS.session_token) not in text
    assert CREDS.access_key not in text


# --- ListObjectsV2 ------------------------------------------------------------------------------------------


@respx.mock
def test_a_listing_of_one_page_is_a_signed_get_on_the_bucket(clock: FakeClock) -> None:
    """One page gives every object under the prefix with its size, ETag, CRC-64 and time, and the Date."""
    route = respx.get(BUCKET_URL).mock(
        return_value=page(
            entry("imgexport_a.qcow2", 42, LastModified="2026-11-27T08:00:00.000Z"),
            entry("imgexport_b.qcow2", 7, ETag=None, HashCrc64ecma=None),
        )
    )
    listing = make_client(clock).list_objects(BUCKET, "imgexport_", deadline=2000)
    assert listing == ObjectListing(
        bucket=BUCKET,
        prefix="imgexport_",
        objects=(
            ListedObject("imgexport_a.qcow2", 42, "e-1", "123", datetime(2026, 11, 27, 8, tzinfo=UTC)),
            ListedObject("imgexport_b.qcow2", 7, None, None, None),
        ),
        server_time=datetime(2026, 11, 27, 8, 30, tzinfo=UTC),
        request_id="r-last",
    )
    sent = route.calls.last.request
    assert sent.url.raw_path == b"/?list-type=2&max-keys=1000&prefix=imgexport_"
    assert sent.headers["Authorization"].startswith("TOS4-HMAC-SHA256 Credential=AKLTcanarytos00000000/")


@respx.mock
def test_every_page_is_read_with_the_token_of_the_one_before(clock: FakeClock) -> None:
    """Pages are followed by their continuation token (encoded as signed); the listing is every page's
    objects in order, its time and request id the last page's."""
    route = respx.get(BUCKET_URL).mock(
        side_effect=[
            page(entry("p/1"), token="tok+1/=="),
            page(entry("p/2"), entry("p/3"), token="tok-2"),
            page(entry("p/4"), date="Fri, 27 Nov 2026 08:31:00 GMT"),
        ]
    )
    listing = make_client(clock).list_objects(BUCKET, "p/", deadline=2000, max_keys=2)
    assert isinstance(listing, ObjectListing)
    assert [o.key for o in listing.objects] == ["p/1", "p/2", "p/3", "p/4"]
    assert listing.server_time == datetime(2026, 11, 27, 8, 31, tzinfo=UTC)
    queries = [call.request.url.params for call in route.calls]
    assert [q.get("continuation-token") for q in queries] == [None, "tok+1/==", "tok-2"]
    assert b"continuation-token=tok%2B1%2F%3D%3D" in route.calls[1].request.url.raw_path
    assert {q["max-keys"] for q in queries} == {"2"}


@respx.mock
def test_a_continuation_token_answered_twice_is_a_malformed_listing(clock: FakeClock) -> None:
    """A server that hands back a token already followed would loop: MalformedResponse, no more pages."""
    route = respx.get(BUCKET_URL).mock(
        side_effect=[page(entry("p/1"), token="a"), page(entry("p/2"), token="b"), page(token="a")]
    )
    with pytest.raises(MalformedResponse, match="continuation token"):
        make_client(clock, attempts=1).list_objects(BUCKET, "p/", deadline=2000)
    assert route.call_count == 3


@respx.mock
def test_paging_that_does_not_end_stops_at_the_page_cap(clock: FakeClock) -> None:
    """A listing still truncated after MAX_LIST_PAGES pages is a MalformedResponse saying the paging did
    not end; no page past the cap is asked for."""
    count = iter(range(10_000))
    route = respx.get(BUCKET_URL).mock(
        side_effect=lambda _request: page(entry("p/x"), token=str(next(count)))
    )
    with pytest.raises(MalformedResponse, match="did not end"):
        make_client(clock).list_objects(BUCKET, "p/", deadline=2000)
    assert route.call_count == MAX_LIST_PAGES


@respx.mock
def test_a_listing_refused_with_403_is_unreadable_not_an_error(clock: FakeClock) -> None:
    """A 403 AccessDenied (the role may not list) is ObjectUnreadable for the prefix, sent once."""
    route = respx.get(BUCKET_URL).mock(
        return_value=httpx.Response(403, json={"Code": "AccessDenied"}, headers={"x-tos-request-id": "r-403"})
    )
    result = make_client(clock).list_objects(BUCKET, "imgexport_", deadline=2000)
    assert isinstance(result, ObjectUnreadable)
    assert (result.bucket, result.key, result.request_id) == (BUCKET, "imgexport_", "r-403")
    assert "tos:ListBucket" in result.reason
    assert route.call_count == 1


@respx.mock
def test_a_403_for_a_bad_signature_is_an_authentication_error_not_unreadable(clock: FakeClock) -> None:
    """A 403 whose code says the signature or the clock is wrong is typed as that, not as a denial."""
    respx.get(BUCKET_URL).mock(return_value=httpx.Response(403, json={"Code": "RequestTimeTooSkewed"}))
    with pytest.raises(AuthenticationFailed) as caught:
        make_client(clock).list_objects(BUCKET, "p/", deadline=2000)
    assert caught.value.code == "RequestTimeTooSkewed"


@pytest.mark.parametrize("body", [{"Code": "NoSuchBucket", "Message": "no bucket"}, None])
@respx.mock
def test_a_404_listing_is_no_such_bucket(clock: FakeClock, body: dict[str, str] | None) -> None:
    """A 404, with TOS's NoSuchBucket body or none, is BucketNotFound coded NoSuchBucket, sent once."""
    route = respx.get(BUCKET_URL).mock(return_value=httpx.Response(404, json=body))
    with pytest.raises(BucketNotFound) as caught:
        make_client(clock).list_objects(BUCKET, "p/", deadline=2000)
    assert (caught.value.code, caught.value.http_status) == ("NoSuchBucket", 404)
    assert route.call_count == 1


@respx.mock
def test_a_key_outside_the_prefix_is_a_malformed_listing(clock: FakeClock) -> None:
    """A server that lists keys not under the prefix asked is not answering the question: malformed."""
    respx.get(BUCKET_URL).mock(return_value=page(entry("imgexport_a"), entry("other/b")))
    with pytest.raises(MalformedResponse, match="outside the prefix"):
        make_client(clock, attempts=1).list_objects(BUCKET, "imgexport_", deadline=2000)


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ("not json", "not a JSON object"),
        ({"Contents": {"Key": "p/1"}}, "not a list"),
        ({"Contents": [entry("p/1", -1)]}, "Size"),
        ({"Contents": [entry("p/1", True)]}, "Size"),
        ({"Contents": [{"Size": 1}]}, "without a Key"),
        ({"Contents": ["p/1"]}, "not an object"),
        ({"Contents": [], "IsTruncated": True}, "NextContinuationToken"),
        ({"Contents": [], "IsTruncated": "yes"}, "IsTruncated"),
    ],
)
@respx.mock
def test_a_page_that_is_not_tos_s_shape_is_malformed(clock: FakeClock, document: object, named: str) -> None:
    """A page TOS would not write fails as a MalformedResponse naming what is wrong."""
    content = document.encode() if isinstance(document, str) else json.dumps(document).encode()
    respx.get(BUCKET_URL).mock(return_value=httpx.Response(200, content=content))
    with pytest.raises(MalformedResponse, match=named):
        make_client(clock, attempts=1).list_objects(BUCKET, "p/", deadline=2000)


@respx.mock
def test_a_page_past_its_byte_limit_is_not_read(clock: FakeClock) -> None:
    """A page larger than MAX_LISTING_BYTES is cut there and refused as malformed."""
    flood = json.dumps({"Contents": [], "Name": "x" * MAX_LISTING_BYTES}).encode()
    respx.get(BUCKET_URL).mock(return_value=httpx.Response(200, content=flood))
    with pytest.raises(MalformedResponse, match="larger than"):
        make_client(clock, attempts=1).list_objects(BUCKET, "p/", deadline=2000)


@respx.mock
def test_a_throttled_page_waits_retry_after_then_the_listing_goes_on(clock: FakeClock) -> None:
    """A 429 with Retry-After on the second page waits at least that long and asks for the same page."""
    route = respx.get(BUCKET_URL).mock(
        side_effect=[
            page(entry("p/1"), token="t"),
            httpx.Response(429, headers={"Retry-After": "3"}),
            page(entry("p/2")),
        ]
    )
    listing = make_client(clock).list_objects(BUCKET, "p/", deadline=2000)
    assert isinstance(listing, ObjectListing)
    assert len(listing.objects) == 2
    assert clock.slept == [pytest.approx(3.0)]
    assert route.calls[2].request.url.params["continuation-token"] == "t"


@respx.mock
def test_a_path_style_listing_goes_to_the_bucket_path_with_its_query(clock: FakeClock) -> None:
    """Against a local endpoint the listing is GET /<bucket>/?<query> on that host, signed for it."""
    route = respx.get(url__regex=r"http://127\.0\.0\.1:9000/my-image-exports/\?.*").mock(
        return_value=page(entry("e_1"))
    )
    listing = make_client(clock, endpoint="http://127.0.0.1:9000").list_objects(BUCKET, "e_", deadline=2000)
    assert isinstance(listing, ObjectListing)
    assert route.calls.last.request.url.raw_path == b"/my-image-exports/?list-type=2&max-keys=1000&prefix=e_"
    assert bucket_url("http://localhost:9000", BUCKET) == "http://localhost:9000/my-image-exports/"


@pytest.mark.parametrize("max_keys", [0, 1001])
def test_a_page_size_tos_does_not_take_is_refused(clock: FakeClock, max_keys: int) -> None:
    """max_keys is 1-1000, as ListObjectsV2 takes it."""
    with pytest.raises(ValueError, match="max_keys"):
        make_client(clock).list_objects(BUCKET, "p/", deadline=2000, max_keys=max_keys)


# --- GetObject with a Range ---------------------------------------------------------------------------------


@respx.mock
def test_a_range_is_read_as_asked(clock: FakeClock) -> None:
    """A ranged GET sends Range: bytes=start-end and gives the 206's bytes."""
    route = respx.get(OBJECT_URL).mock(side_effect=ranged(bytes(range(256)) * 4))
    data = make_client(clock).get_range(BUCKET, KEY, 10, 6, deadline=2000)
    assert data == bytes(range(10, 16))
    assert route.calls.last.request.headers["Range"] == "bytes=10-15"


@respx.mock
def test_a_short_range_at_the_end_of_the_object_is_allowed(clock: FakeClock) -> None:
    """Asking past the end gives the bytes to the end when Content-Range says the object ends there."""
    respx.get(OBJECT_URL).mock(side_effect=ranged(b"0123456789"))
    assert make_client(clock).get_range(BUCKET, KEY, 6, 100, deadline=2000) == b"6789"


@pytest.mark.parametrize(
    ("content_range", "body"),
    [
        ("bytes 0-3/100", b"0123"),  # short, yet the object goes on
        ("bytes 0-3/*", b"0123"),  # short, and the end is not known
        ("bytes 1-8/100", b"12345678"),  # another start
        ("bytes 0-9/100", b"0123456789"),  # more than asked
        ("bytes 0-7/4", b"01234567"),  # past its own total
        ("items 0-7/100", b"01234567"),
        (None, b"01234567"),
        ("bytes 0-7/100", b"0123"),  # a body shorter than its Content-Range
    ],
)
@respx.mock
def test_a_206_that_is_not_the_range_asked_is_malformed(
    clock: FakeClock, content_range: str | None, body: bytes
) -> None:
    """A Content-Range that does not match bytes=0-7 (or a body of another length) is a MalformedResponse."""
    headers = {"Content-Range": content_range} if content_range else {}
    respx.get(OBJECT_URL).mock(return_value=httpx.Response(206, content=body, headers=headers))
    with pytest.raises(MalformedResponse):
        make_client(clock, attempts=1).get_range(BUCKET, KEY, 0, 8, deadline=2000)


@respx.mock
def test_a_whole_object_answered_to_a_ranged_read_is_refused(clock: FakeClock) -> None:
    """A 200 (the server ignored the Range) is refused as malformed, its body left unread."""
    respx.get(OBJECT_URL).mock(return_value=httpx.Response(200, content=b"x" * 100_000))
    with pytest.raises(MalformedResponse, match="whole object"):
        make_client(clock, attempts=1).get_range(BUCKET, KEY, 0, 8, deadline=2000)


@respx.mock
def test_a_206_body_past_the_range_is_never_taken(clock: FakeClock) -> None:
    """A server that sends more than the range (its Content-Range right) is cut at the length: malformed."""
    headers = {"Content-Range": "bytes 0-7/100"}
    respx.get(OBJECT_URL).mock(return_value=httpx.Response(206, content=b"y" * 100, headers=headers))
    with pytest.raises(MalformedResponse, match="more bytes"):
        make_client(clock, attempts=1).get_range(BUCKET, KEY, 0, 8, deadline=2000)


@pytest.mark.parametrize("body", [{"Code": "InvalidRange", "Message": "bad range"}, None])
@respx.mock
def test_a_range_past_the_end_is_a_typed_416(clock: FakeClock, body: dict[str, str] | None) -> None:
    """A 416, with TOS's body or none, is RangeNotSatisfiable coded InvalidRange, sent once."""
    route = respx.get(OBJECT_URL).mock(return_value=httpx.Response(416, json=body))
    with pytest.raises(RangeNotSatisfiable) as caught:
        make_client(clock).get_range(BUCKET, KEY, 1000, 8, deadline=2000)
    assert caught.value.code == "InvalidRange"
    assert route.call_count == 1


@respx.mock
def test_a_ranged_read_refused_with_403_is_a_tos_access_denied(clock: FakeClock) -> None:
    """A 403 is TosAccessDenied coded TosAccessDenied.GetObject (its fix names tos:GetObject), no retry."""
    route = respx.get(OBJECT_URL).mock(return_value=httpx.Response(403, json={"Code": "AccessDenied"}))
    with pytest.raises(TosAccessDenied) as caught:
        make_client(clock).get_range(BUCKET, KEY, 0, 8, deadline=2000)
    assert caught.value.code == "TosAccessDenied.GetObject"
    assert "tos:GetObject" in (fix_for(caught.value.code) or "")
    assert route.call_count == 1


@respx.mock
def test_a_ranged_read_of_a_missing_key_is_object_not_found(clock: FakeClock) -> None:
    """A 404 without a code on a read is ObjectNotFound coded NoSuchKey."""
    respx.get(OBJECT_URL).mock(return_value=httpx.Response(404))
    with pytest.raises(ObjectNotFound) as caught:
        make_client(clock).get_range(BUCKET, KEY, 0, 8, deadline=2000)
    assert caught.value.code == "NoSuchKey"


@respx.mock
def test_a_ranged_read_that_echoes_secrets_never_shows_them(clock: FakeClock) -> None:
    """A 403 whose message quotes the Authorization, token and secret key has them masked in the error."""
    respx.get(OBJECT_URL).mock(side_effect=denied_echoing_secrets)
    with pytest.raises(TosAccessDenied) as caught:
        make_client(clock).get_range(BUCKET, KEY, 0, 8, deadline=2000)
    assert_no_secret(caught.value.message)
    assert_no_secret(str(caught.value))
    assert caught.value.request_id == "r-echo"


@pytest.mark.parametrize(("start", "length"), [(-1, 8), (0, 0)])
def test_a_range_that_holds_no_byte_is_refused(clock: FakeClock, start: int, length: int) -> None:
    """A range starts at 0 or later and holds a byte at least."""
    with pytest.raises(ValueError, match="range"):
        make_client(clock).get_range(BUCKET, KEY, start, length, deadline=2000)


@respx.mock
def test_the_qcow2_check_reads_an_object_through_ranged_gets(clock: FakeClock) -> None:
    """ObjectRanges binds the client, the object and the deadline into the qcow2 check's RangeReader:
    a valid image in TOS passes, read by one ranged GET for each table."""
    image = bytes(build_qcow2(virtual_size=16 * MIB, cluster_bits=12).data)
    route = respx.get(OBJECT_URL).mock(side_effect=ranged(image))
    reader = ObjectRanges(make_client(clock), BUCKET, KEY, deadline=2000)
    report = check_structure(reader, len(image), expected_virtual_size=16 * MIB)
    assert report.ok, report.failure
    assert route.call_count == report.reads
    assert reader.read(0, 0) == b""
    assert route.call_count == report.reads


# --- PutObject ----------------------------------------------------------------------------------------------


@respx.mock
def test_a_put_sends_the_body_with_its_content_type_signed(clock: FakeClock) -> None:
    """PutObject sends the body as it is, Content-Type signed, and gives the ETag and CRC-64 TOS answered."""
    route = respx.put(OBJECT_URL).mock(
        return_value=httpx.Response(
            200, headers={"ETag": '"e-put"', "x-tos-hash-crc64ecma": "99", "x-tos-request-id": "r-put"}
        )
    )
    result = make_client(clock).put_object(
        BUCKET, KEY, b'{"a":1}', content_type="application/json", deadline=2000
    )
    assert result == PutResult(etag="e-put", crc64="99", request_id="r-put")
    sent = route.calls.last.request
    assert sent.content == b'{"a":1}'
    assert sent.headers["Content-Type"] == "application/json"
    assert "SignedHeaders=content-type;host;x-tos-content-sha256;x-tos-date;" in sent.headers["Authorization"]


@respx.mock
def test_a_put_whose_answer_was_lost_is_sent_again(clock: FakeClock) -> None:
    """The same body to the same key is the same object: a read timeout is resent, the second answer used."""
    route = respx.put(OBJECT_URL).mock(side_effect=[httpx.ReadTimeout("lost"), httpx.Response(200)])
    result = make_client(clock).put_object(BUCKET, KEY, b"{}", content_type="application/json", deadline=2000)
    assert result == PutResult(None, None, None)
    assert [call.request.content for call in route.calls] == [b"{}", b"{}"]


def test_a_body_over_the_cap_is_refused_before_sending(clock: FakeClock) -> None:
    """A body over MAX_PUT_BYTES is an InvalidParameter coded ObjectTooLarge, with nothing sent."""
    with respx.mock(assert_all_called=False) as mock:
        route = mock.put(url__regex=r".*").mock(return_value=httpx.Response(200))
        with pytest.raises(InvalidParameter) as caught:
            make_client(clock).put_object(
                BUCKET,
                KEY,
                b"x" * (MAX_PUT_BYTES + 1),
                content_type="application/octet-stream",
                deadline=2000,
            )
    assert caught.value.code == "ObjectTooLarge"
    assert route.call_count == 0


@respx.mock
def test_a_put_refused_with_403_names_tos_put_object(clock: FakeClock) -> None:
    """A 403 (here echoing secrets) is TosAccessDenied.PutObject, its fix naming tos:PutObject, masked."""
    respx.put(OBJECT_URL).mock(side_effect=denied_echoing_secrets)
    with pytest.raises(TosAccessDenied) as caught:
        make_client(clock).put_object(BUCKET, KEY, b"{}", content_type="application/json", deadline=2000)
    assert caught.value.code == "TosAccessDenied.PutObject"
    assert "tos:PutObject" in (fix_for(caught.value.code) or "")
    assert_no_secret(caught.value.message)


@respx.mock
def test_a_put_to_a_missing_bucket_is_bucket_not_found(clock: FakeClock) -> None:
    """A 404 on PutObject (no body) is NoSuchBucket: a PUT creates its key, so it is the bucket missing."""
    respx.put(OBJECT_URL).mock(return_value=httpx.Response(404))
    with pytest.raises(BucketNotFound) as caught:
        make_client(clock).put_object(BUCKET, KEY, b"{}", content_type="application/json", deadline=2000)
    assert caught.value.code == "NoSuchBucket"


@respx.mock
def test_a_put_is_not_sent_past_its_deadline(clock: FakeClock) -> None:
    """A PutObject whose deadline has passed raises BudgetExhausted and sends nothing."""
    route = respx.put(OBJECT_URL).mock(return_value=httpx.Response(200))
    with pytest.raises(BudgetExhausted):
        make_client(clock).put_object(BUCKET, KEY, b"{}", content_type="application/json", deadline=999)
    assert route.call_count == 0


@pytest.mark.parametrize(
    "name", ["head_object", "head_object+token", "head_object_odd_key", "put_object_json"]
)
@respx.mock
def test_the_client_sends_the_official_sdks_signature(name: str) -> None:
    """The client's HeadObject and PutObject carry exactly the official tos SDK's headers and signature
    for the same request (tests/vectors/tos_sign.json), the PutObject's Content-Type signed."""
    shared, case = VECTORS["credentials"], VECTORS["cases"][name]
    token = shared["session_token"] if "x-tos-security-token" in case["headers"] else None
    moment = datetime.strptime(shared["date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    client = make_client(
        FakeClock(1000.0, wall=moment),
        endpoint=f"https://{shared['endpoint']}",
        credentials=Credentials(shared["ak"], shared["sk"], token),
    )
    route = respx.route(method=case["method"], url=case["url"]).mock(
        return_value=httpx.Response(200, headers={"Content-Length": "0"})
    )
    bucket = case["headers"]["Host"].split(".")[0]
    key = case["path"].removeprefix("/")
    if case["method"] == "PUT":
        body = case["body"].encode()
        client.put_object(bucket, key, body, content_type=case["headers"]["content-type"], deadline=2000)
        assert route.calls.last.request.content == body
    else:
        client.head_object(bucket, key, deadline=2000)
    sent = route.calls.last.request
    for header, value in case["headers"].items():
        if header.lower() != "expect":  # the SDK's 100-continue; the body is small and sent at once
            assert sent.headers[header] == value, header


# --- DeleteObject -------------------------------------------------------------------------------------------


@respx.mock
def test_a_delete_is_done_on_204_also_for_a_key_that_was_not_there(clock: FakeClock) -> None:
    """DeleteObject answers 204 whether the key existed or not: done, nothing returned."""
    route = respx.delete(OBJECT_URL).mock(return_value=httpx.Response(204))
    assert make_client(clock).delete_object(BUCKET, KEY, deadline=2000) is None
    assert route.calls.last.request.method == "DELETE"


@respx.mock
def test_a_delete_is_resent_after_a_server_error(clock: FakeClock) -> None:
    """Deleting twice is deleting once: a 500 is retried after a backoff."""
    route = respx.delete(OBJECT_URL).mock(side_effect=[httpx.Response(500), httpx.Response(204)])
    make_client(clock).delete_object(BUCKET, KEY, deadline=2000)
    assert route.call_count == 2


@respx.mock
def test_a_delete_refused_with_403_is_a_tos_access_denied(clock: FakeClock) -> None:
    """A 403 is TosAccessDenied.DeleteObject."""
    respx.delete(OBJECT_URL).mock(return_value=httpx.Response(403))
    with pytest.raises(TosAccessDenied) as caught:
        make_client(clock).delete_object(BUCKET, KEY, deadline=2000)
    assert caught.value.code == "TosAccessDenied.DeleteObject"


# --- HeadBucket ---------------------------------------------------------------------------------------------


@respx.mock
def test_head_bucket_gives_the_region_storage_class_and_server_time(clock: FakeClock) -> None:
    """HeadBucket is a signed HEAD on the bucket: its region, default storage class and Date."""
    headers = {
        "x-tos-bucket-region": "cn-beijing",
        "x-tos-storage-class": "STANDARD",
        "Date": DATE,
        "x-tos-request-id": "r-hb",
    }
    route = respx.head(f"https://{HOST}/").mock(return_value=httpx.Response(200, headers=headers))
    info = make_client(clock).head_bucket(BUCKET, deadline=2000)
    assert info == BucketInfo("cn-beijing", "STANDARD", datetime(2026, 11, 27, 8, 30, tzinfo=UTC), "r-hb")
    assert route.calls.last.request.method == "HEAD"


@respx.mock
def test_head_bucket_path_style_goes_to_the_bucket_path(clock: FakeClock) -> None:
    """Against a local endpoint HeadBucket goes to /<bucket>/ on that host."""
    route = respx.head(f"http://127.0.0.1:9000/{BUCKET}/").mock(
        return_value=httpx.Response(200, headers={"x-tos-bucket-region": "cn-beijing"})
    )
    info = make_client(clock, endpoint="http://127.0.0.1:9000").head_bucket(BUCKET, deadline=2000)
    assert (info.region, info.storage_class, info.server_time) == ("cn-beijing", None, None)
    assert route.calls.last.request.headers["Host"] == "127.0.0.1:9000"


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [(404, BucketNotFound, "NoSuchBucket"), (403, TosAccessDenied, "TosAccessDenied.HeadBucket")],
)
@respx.mock
def test_head_bucket_errors_are_typed(
    clock: FakeClock, status: int, kind: type[TerminalApiError], code: str
) -> None:
    """A 404 (no body, as for any HEAD) is NoSuchBucket, a 403 TosAccessDenied.HeadBucket; neither retried."""
    route = respx.head(f"https://{HOST}/").mock(return_value=httpx.Response(status))
    with pytest.raises(kind) as caught:
        make_client(clock).head_bucket(BUCKET, deadline=2000)
    assert caught.value.code == code
    assert route.call_count == 1


@respx.mock
def test_head_bucket_without_a_region_is_malformed(clock: FakeClock) -> None:
    """A 200 that does not say the bucket's region is not HeadBucket's answer."""
    respx.head(f"https://{HOST}/").mock(return_value=httpx.Response(200))
    with pytest.raises(MalformedResponse, match="x-tos-bucket-region"):
        make_client(clock, attempts=1).head_bucket(BUCKET, deadline=2000)


@respx.mock
def test_no_retry_when_the_backoff_would_pass_the_deadline(clock: FakeClock) -> None:
    """A retryable error close to the deadline is raised at once instead of sleeping past it."""
    route = respx.head(f"https://{HOST}/").mock(return_value=httpx.Response(503))
    with pytest.raises(RetryableApiError):
        make_client(clock, base=1.0).head_bucket(BUCKET, deadline=1000.6)
    assert route.call_count == 1
    assert clock.slept == []


# --- what is refused before sending -------------------------------------------------------------------------


CALLS: dict[str, Callable[[TosClient, str, str], object]] = {
    "list_objects": lambda c, b, k: c.list_objects(b, k, deadline=2000),
    "get_range": lambda c, b, k: c.get_range(b, k, 0, 8, deadline=2000),
    "put_object": lambda c, b, k: c.put_object(b, k, b"{}", content_type="application/json", deadline=2000),
    "delete_object": lambda c, b, k: c.delete_object(b, k, deadline=2000),
    "head_bucket": lambda c, b, _k: c.head_bucket(b, deadline=2000),
}
REFUSED = [
    (name, bucket, key)
    for name in CALLS
    for bucket, key in [("Bad_Bucket", KEY), (BUCKET, ""), (BUCKET, "a/../b"), (BUCKET, ".")]
    if bucket != BUCKET or name not in ("list_objects", "head_bucket")
]


@pytest.mark.parametrize(("name", "bucket", "key"), REFUSED)
def test_a_bad_bucket_or_key_is_refused_before_sending(
    clock: FakeClock, name: str, bucket: str, key: str
) -> None:
    """Every request refuses a bucket TOS cannot have, and an object request an empty key or one with a
    '.' or '..' segment, as HeadObject does: a terminal error, nothing sent."""
    with respx.mock(assert_all_called=False) as mock:
        route = mock.route(url__regex=r".*").mock(return_value=httpx.Response(200))
        with pytest.raises(TerminalApiError) as caught:
            CALLS[name](make_client(clock), bucket, key)
    assert caught.value.code in {"InvalidBucketName", "InvalidObjectName"}
    assert route.call_count == 0


# --- a hostile TOS over a real socket ----------------------------------------------------------------------


def socket_client(url: str, http: httpx.Client) -> TosClient:
    return TosClient(
        http=http,
        endpoint=url,
        region="cn-beijing",
        credentials=CREDS,
        policy=RetryPolicy(max_attempts=1, base=0.1, cap=1.0),
        limiter=RateLimiter(1000),
        clock=SYSTEM_CLOCK,
    )


@pytest.mark.parametrize(
    ("head", "named"),
    [
        (http_head(length=200 * MIB, content_type="application/octet-stream"), "whole object"),
        (
            http_head(
                "206 Partial Content", length=200 * MIB, content_type="application/octet-stream"
            ).replace(b"\r\n\r\n", b"\r\nContent-Range: bytes 0-4095/209715200\r\n\r\n"),
            "more bytes",
        ),
    ],
)
def test_a_flooding_server_never_gets_more_than_the_range_read(head: bytes, named: str) -> None:
    """A 200 MB answer to a 4 KiB ranged read (the whole object, or a 206 that goes on) is refused having
    read no more than the range: most of the flood is never even received."""
    with (
        bounded_client(connect_timeout=3.0, read_timeout=10.0) as http,
        HostileServer("flood", at_once=head) as server,
    ):
        with pytest.raises(MalformedResponse, match=named):
            socket_client(server.url, http).get_range(BUCKET, KEY, 0, 4096, deadline=time.monotonic() + 10)
        sent = server.sent
    assert sent < 50 * MIB
