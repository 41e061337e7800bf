"""The OpenAPI signer reproduces the official SDKs' signatures, and the emulator's check accepts only those."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter_tools.emulator.signature import verify_signature
from handler.adapters.signing import (
    Credentials,
    SignedRequest,
    VolcSigner,
    canonical_query,
    encode_component,
    format_x_date,
    sign_request,
)


@dataclass(frozen=True)
class Vector:
    """One published signing case, in the shape the signer takes."""

    method: str
    host: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    credentials: Credentials
    region: str
    service: str
    x_date: str
    expected_headers: dict[str, str]
    canonical_request: str
    string_to_sign: str

    @property
    def url(self) -> str:
        return f"https://{self.host}{self.path}?{self.query}"

    def sign(self) -> SignedRequest:
        return sign_request(
            method=self.method,
            host=self.host,
            path=self.path,
            query=self.query,
            headers=self.headers,
            body=self.body,
            credentials=self.credentials,
            region=self.region,
            service=self.service,
            x_date=self.x_date,
        )

    def signer(self) -> VolcSigner:
        moment = datetime.strptime(self.x_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return VolcSigner(self.credentials, region=self.region, service=self.service, clock=lambda: moment)

    def request(self) -> httpx.Request:
        return httpx.Request(
            self.method, self.url, headers={**self.headers, "Host": self.host}, content=self.body
        )


@pytest.fixture
def volc_vector(volc_sign_case: dict[str, Any]) -> Vector:
    """A case of volc_sign.json (ECS; cases 3 and 4 take their X-Date from the expected headers)."""
    given_, expected = volc_sign_case["input"], volc_sign_case["expected"]
    return Vector(
        method=given_["method"],
        host=given_["host"],
        path=given_["path"],
        query=canonical_query(given_["query"]),
        headers=given_.get("headers", {}),
        body=given_["body"].encode(),
        credentials=Credentials(given_["ak"], given_["sk"], given_.get("session_token")),
        region=given_["region"],
        service=given_["service"],
        x_date=given_.get("x_date") or expected["headers"]["X-Date"],
        expected_headers=expected["headers"],
        canonical_request=expected["canonical_request"],
        string_to_sign=expected["string_to_sign"],
    )


@pytest.fixture
def vefaas_vector(vefaas_sign_case: dict[str, Any], load_vector: Callable[[str], Any]) -> Vector:
    """A case of vefaas_sign.json (veFaaS POST with a JSON body; ``+token`` cases carry an STS token)."""
    shared = load_vector("vefaas_sign.json")["credentials"]
    url = urlsplit(vefaas_sign_case["url"])
    token = shared["session_token_for_+token_cases"] if vefaas_sign_case["name"].endswith("+token") else None
    return Vector(
        method="POST",
        host=url.netloc,
        path=url.path,
        query=url.query,
        headers={"Content-Type": "application/json"},
        body=vefaas_sign_case["body"].encode(),
        credentials=Credentials(shared["ak"], shared["sk"], token),
        region=shared["region"],
        service=shared["service"],
        x_date=shared["x_date"],
        expected_headers=vefaas_sign_case["headers"],
        canonical_request=vefaas_sign_case["canonical_request"],
        string_to_sign=vefaas_sign_case["string_to_sign"],
    )


# --- the published vectors --------------------------------------------------------------------------------


def _added_headers(vector: Vector) -> dict[str, str]:
    """The expected headers the signer itself adds (the vectors also list Host and Content-Type)."""
    return {k: v for k, v in vector.expected_headers.items() if k not in {"Host", "Content-Type"}}


def _check_sign_request(vector: Vector) -> None:
    signed = vector.sign()
    assert signed.canonical_request == vector.canonical_request
    assert signed.string_to_sign == vector.string_to_sign
    assert signed.headers == _added_headers(vector)
    assert signed.headers["Authorization"].endswith(f"Signature={signed.signature}")


def test_volc_vectors_sign_byte_for_byte(volc_vector: Vector) -> None:
    """Every ECS case of the official SDKs gives the same canonical request, string to sign and headers."""
    _check_sign_request(volc_vector)


def test_vefaas_vectors_sign_byte_for_byte(vefaas_vector: Vector) -> None:
    """Every veFaaS case gives the same canonical request, string to sign and Authorization header."""
    _check_sign_request(vefaas_vector)


def _check_signer(vector: Vector) -> None:
    request = vector.request()
    sent = next(vector.signer().sync_auth_flow(request))
    for name, value in vector.expected_headers.items():
        assert sent.headers[name] == value, name


def test_volc_vectors_through_the_httpx_signer(volc_vector: Vector) -> None:
    """An httpx request signed by VolcSigner carries exactly the official SDKs' headers."""
    _check_signer(volc_vector)


def test_vefaas_vectors_through_the_httpx_signer(vefaas_vector: Vector) -> None:
    """A veFaaS POST signed by VolcSigner carries exactly the official SDK's headers."""
    _check_signer(vefaas_vector)


def _check_on_the_wire(vector: Vector) -> None:
    seen: list[httpx.Request] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"Result": {}})

    with httpx.Client(transport=httpx.MockTransport(gateway), auth=vector.signer()) as client:
        client.request(vector.method, vector.url, headers=vector.headers, content=vector.body)
    (request,) = seen
    assert request.url.raw_path == f"{vector.path}?{vector.query}".encode()
    assert request.content == vector.body
    assert request.headers["Authorization"] == vector.expected_headers["Authorization"]


def test_volc_vectors_go_on_the_wire_as_signed(volc_vector: Vector) -> None:
    """The query and body a client sends are the canonical ones the signature covers."""
    _check_on_the_wire(volc_vector)


def test_vefaas_vectors_go_on_the_wire_as_signed(vefaas_vector: Vector) -> None:
    """A veFaaS POST goes out with the query and JSON body its signature covers."""
    _check_on_the_wire(vefaas_vector)


# --- signing rules ----------------------------------------------------------------------------------------

CREDENTIALS = Credentials("AKLTcanaryAccessKey", "canary-secret-Zq9/+=", None)
STS_CREDENTIALS = Credentials("AKTPcanaryTemporary", "canary-sts-secret-Wx7", "canary-session-token-Pp3")
X_DATE = "20250102T030405Z"


def _sign(
    *,
    host: str = "open.volcengineapi.com",
    headers: Mapping[str, str] | None = None,
    credentials: Credentials = CREDENTIALS,
) -> SignedRequest:
    return sign_request(
        method="get",
        host=host,
        path="/",
        query="Action=DescribeImages&Version=2020-04-01",
        headers=headers or {},
        body=b"",
        credentials=credentials,
        region="cn-beijing",
        service="ecs",
        x_date=X_DATE,
    )


@pytest.mark.parametrize(
    ("host", "signed_host"),
    [
        ("open.volcengineapi.com", "open.volcengineapi.com"),
        ("open.volcengineapi.com:443", "open.volcengineapi.com"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("127.0.0.1:8443", "127.0.0.1:8443"),
        ("[::1]:443", "[::1]"),
        ("[::1]:9000", "[::1]:9000"),
    ],
)
def test_default_ports_are_left_out_of_the_signed_host(host: str, signed_host: str) -> None:
    """A Host with :80 or :443 is signed without it, like the SDKs; any other port is signed as sent."""
    assert f"\nhost:{signed_host}\n" in _sign(host=host).canonical_request


@pytest.mark.parametrize(
    ("headers", "signed_headers"),
    [
        ({"User-Agent": "x", "Accept": "*/*", "Content-Length": "0"}, "host;x-content-sha256;x-date"),
        ({"content-type": "application/json"}, "content-type;host;x-content-sha256;x-date"),
        ({"Content-MD5": "abc", "X-Custom": " v "}, "content-md5;host;x-content-sha256;x-custom;x-date"),
        ({"X-Date": "19990101T000000Z", "X-Content-Sha256": "stale"}, "host;x-content-sha256;x-date"),
    ],
)
def test_signed_headers_are_content_type_md5_host_and_x_headers(
    headers: dict[str, str], signed_headers: str
) -> None:
    """Only Content-Type, Content-Md5, Host and X-* are signed; stale signer headers are replaced."""
    signed = _sign(headers=headers)
    assert f"SignedHeaders={signed_headers}," in signed.headers["Authorization"]
    assert f"\nx-date:{X_DATE}\n" in signed.canonical_request
    assert "stale" not in signed.canonical_request


def test_a_custom_header_is_signed_trimmed_and_lowercased() -> None:
    """A signed header's name is lowercased and its value trimmed, as a server receives it."""
    assert "\nx-custom:v\n" in _sign(headers={"X-Custom": " v "}).canonical_request


@pytest.mark.parametrize(("credentials", "has_token"), [(CREDENTIALS, False), (STS_CREDENTIALS, True)])
def test_the_security_token_is_added_only_for_temporary_keys(
    credentials: Credentials, has_token: bool
) -> None:
    """Temporary keys add and sign X-Security-Token; long-term keys send none."""
    signed = _sign(credentials=credentials)
    assert ("X-Security-Token" in signed.headers) is has_token
    assert ("x-security-token" in signed.canonical_request) is has_token


@pytest.mark.parametrize("x_date", ["2025-01-02T03:04:05Z", "20250102T030405", ""])
def test_a_malformed_x_date_is_refused(x_date: str) -> None:
    """sign_request refuses an X-Date not shaped YYYYMMDDTHHMMSSZ instead of signing garbage."""
    with pytest.raises(ValueError, match="x_date"):
        sign_request(
            method="GET",
            host="h",
            path="/",
            query="",
            headers={},
            body=b"",
            credentials=CREDENTIALS,
            region="cn-beijing",
            service="ecs",
            x_date=x_date,
        )


@pytest.mark.parametrize(
    ("moment", "x_date"),
    [
        (datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), "20250102T030405Z"),
        (datetime(2025, 1, 2, 11, 4, 5, 999999, tzinfo=timezone(timedelta(hours=8))), "20250102T030405Z"),
        (datetime(2024, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-2))), "20250101T010000Z"),
    ],
)
def test_x_date_is_utc(moment: datetime, x_date: str) -> None:
    """X-Date is the moment in UTC, whatever the clock's time zone."""
    assert format_x_date(moment) == x_date


def test_x_date_refuses_a_naive_datetime() -> None:
    """A clock without a time zone is refused rather than taken for UTC."""
    with pytest.raises(ValueError, match="timezone"):
        format_x_date(datetime(2025, 1, 2))  # noqa: DTZ001 - the naive datetime is the point


def test_credentials_never_print_their_secrets() -> None:
    """repr() of credentials shows the access key id only."""
    text = repr(STS_CREDENTIALS)
    assert STS_CREDENTIALS.access_key in text
    assert STS_CREDENTIALS.secret_key not in text
    assert str(STS_CREDENTIALS.session_token) not in text


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("AZaz09-_.~", "AZaz09-_.~"),
        ("a b", "a%20b"),
        ("/", "%2F"),
        ("*", "%2A"),
        ("+", "%2B"),
        ("é", "%C3%A9"),
        ("测", "%E6%B5%8B"),
        ("%20", "%2520"),
        ("😀", "%F0%9F%98%80"),
    ],
)
def test_components_are_percent_encoded_as_utf8(value: str, encoded: str) -> None:
    """Only unreserved characters stay as they are; everything else is %XX of its UTF-8 bytes."""
    assert encode_component(value) == encoded


# --- the httpx signer ------------------------------------------------------------------------------------


def _fixed_clock() -> datetime:
    return datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_the_signer_asks_for_credentials_on_every_request() -> None:
    """Rotating credentials are picked up: each request is signed with the ones current when it is sent."""
    rotation = iter([STS_CREDENTIALS, CREDENTIALS])
    signer = VolcSigner(lambda: next(rotation), region="cn-beijing", service="ecs", clock=_fixed_clock)
    seen: list[httpx.Headers] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        seen.append(httpx.Headers(request.headers))  # a copy: the same request object is sent twice
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(gateway), auth=signer) as client:
        request = client.build_request("GET", "https://open.volcengineapi.com/?Action=A&Version=1")
        client.send(request)
        client.send(request)  # the same request object, sent again: nothing stale may remain
    first, second = seen
    assert f"Credential={STS_CREDENTIALS.access_key}/" in first["Authorization"]
    assert first["X-Security-Token"] == STS_CREDENTIALS.session_token
    assert f"Credential={CREDENTIALS.access_key}/" in second["Authorization"]
    assert "X-Security-Token" not in second
    assert "x-security-token" not in second["Authorization"]


@pytest.mark.parametrize(
    "url",
    [
        "https://open.volcengineapi.com/?Version=1&Action=A",  # not sorted
        "https://open.volcengineapi.com/?Action=A&Name=a+b",  # '+' for a space, as params= would send
        "https://open.volcengineapi.com/?Action=A&Action=B",  # a repeated key
        "https://open.volcengineapi.com/?Action=A&Flag",  # a key without '='
    ],
)
def test_the_signer_refuses_a_query_that_is_not_canonical(url: str) -> None:
    """A query the gateway would canonicalise differently fails loudly before anything is sent."""
    signer = VolcSigner(CREDENTIALS, region="cn-beijing", service="ecs", clock=_fixed_clock)
    with pytest.raises(ValueError, match="canonical_query"):
        next(signer.sync_auth_flow(httpx.Request("GET", url)))


def test_the_signer_uses_the_current_time_by_default() -> None:
    """Without a clock of its own the signer dates requests now, so the gateway's 15-minute check passes."""
    signer = VolcSigner(CREDENTIALS, region="cn-beijing", service="ecs")
    sent = next(signer.sync_auth_flow(httpx.Request("GET", "https://open.volcengineapi.com/?Action=A")))
    reason = verify_signature(
        method="GET",
        host="open.volcengineapi.com",
        path="/",
        raw_query="Action=A",
        headers=sent.headers,
        body=b"",
        credentials_for={CREDENTIALS.access_key: CREDENTIALS}.get,
        region="cn-beijing",
        service="ecs",
        now=datetime.now(UTC),
    )
    assert reason is None


def test_the_signer_signs_the_port_and_path_as_sent() -> None:
    """A request to a local emulator on another port and path verifies with the host and path it carries."""
    signer = VolcSigner(STS_CREDENTIALS, region="cn-beijing", service="ecs", clock=_fixed_clock)
    request = httpx.Request("POST", "http://127.0.0.1:8080/api/?Action=A", content=b'{"a": 1}')
    sent = next(signer.sync_auth_flow(request))
    reason = verify_signature(
        method="POST",
        host="127.0.0.1:8080",
        path="/api/",
        raw_query="Action=A",
        headers=sent.headers,
        body=b'{"a": 1}',
        credentials_for={STS_CREDENTIALS.access_key: STS_CREDENTIALS}.get,
        region="cn-beijing",
        service="ecs",
    )
    assert reason is None


# --- verification (the local emulator's side) ------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """A request as a server receives it, signed with STS credentials, ready to be tampered with."""

    method: str = "POST"
    host: str = "open.volcengineapi.com"
    path: str = "/"
    raw_query: str = ""
    headers: Mapping[str, str] | None = None
    body: bytes = b'{"ImageId": "image-1"}'
    region: str = "cn-beijing"
    service: str = "ecs"
    keys: Mapping[str, Credentials] | None = None
    now: datetime | None = None

    def verify(self) -> str | None:
        keys = self.keys if self.keys is not None else {STS_CREDENTIALS.access_key: STS_CREDENTIALS}
        return verify_signature(
            method=self.method,
            host=self.host,
            path=self.path,
            raw_query=self.raw_query,
            headers=self.headers or {},
            body=self.body,
            credentials_for=keys.get,
            region=self.region,
            service=self.service,
            now=self.now,
        )


QUERY = {"Action": "DescribeImages", "Version": "2020-04-01", "ImageName": "测试 a+b/c", "MaxResults": "20"}


def _received(credentials: Credentials = STS_CREDENTIALS) -> Received:
    query = canonical_query(QUERY)
    headers = {"Content-Type": "application/json", "X-Custom": "kept", "User-Agent": "test"}
    signed = sign_request(
        method="POST",
        host="open.volcengineapi.com",
        path="/",
        query=query,
        headers=headers,
        body=Received.body,
        credentials=credentials,
        region="cn-beijing",
        service="ecs",
        x_date=X_DATE,
    )
    return Received(raw_query=query, headers={**headers, **signed.headers})


def _shuffled(query: str) -> str:
    """The same pairs in another order: odd positions first, backwards."""
    parts = query.split("&")
    return "&".join(reversed(parts[1::2] + parts[::2]))


def _with_header(received: Received, name: str, value: str | None) -> Received:
    """The request with one header set to another value, or removed (``None``)."""
    headers = {k: v for k, v in (received.headers or {}).items() if k != name}
    if value is not None:
        headers[name] = value
    return replace(received, headers=headers)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda r: r, id="as signed"),
        pytest.param(lambda r: replace(r, raw_query=_shuffled(r.raw_query)), id="query in another order"),
        pytest.param(lambda r: replace(r, raw_query=r.raw_query.replace("%20", "+")), id="plus for space"),
        pytest.param(lambda r: replace(r, host=f"{r.host}:443"), id="host with :443"),
        pytest.param(lambda r: _with_header(r, "User-Agent", "other"), id="unsigned header changed"),
        pytest.param(
            lambda r: replace(r, now=datetime(2025, 1, 2, 3, 14, tzinfo=UTC)), id="clock 10 minutes ahead"
        ),
    ],
)
def test_verification_accepts_what_the_signer_produced(change: Callable[[Received], Received]) -> None:
    """A correctly signed request verifies, whatever order or space encoding its query arrives in."""
    assert change(_received()).verify() is None


def test_verification_accepts_long_term_keys() -> None:
    """A request signed with long-term keys (no token) verifies."""
    received = replace(_received(CREDENTIALS), keys={CREDENTIALS.access_key: CREDENTIALS})
    assert received.verify() is None


OTHER_SECRET = Credentials(STS_CREDENTIALS.access_key, "another-canary-secret", STS_CREDENTIALS.session_token)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        pytest.param(
            lambda r: replace(r, keys={OTHER_SECRET.access_key: OTHER_SECRET}),
            "SignatureDoesNotMatch",
            id="another secret",
        ),
        pytest.param(lambda r: replace(r, keys={}), "InvalidAccessKey", id="unknown access key"),
        pytest.param(lambda r: replace(r, body=r.body + b" "), "SignatureDoesNotMatch", id="body changed"),
        pytest.param(
            lambda r: _with_header(
                replace(r, body=b"{}"), "X-Content-Sha256", hashlib.sha256(b"{}").hexdigest()
            ),
            "SignatureDoesNotMatch",
            id="body and its hash header changed",
        ),
        pytest.param(
            lambda r: _with_header(r, "Content-Type", "text/plain"),
            "SignatureDoesNotMatch",
            id="signed Content-Type changed",
        ),
        pytest.param(
            lambda r: _with_header(r, "X-Custom", "changed"),
            "SignatureDoesNotMatch",
            id="signed X-header changed",
        ),
        pytest.param(
            lambda r: _with_header(r, "X-Custom", None), "SignatureDoesNotMatch", id="signed header not sent"
        ),
        pytest.param(
            lambda r: _with_header(r, "X-Date", "20250102T030406Z"),
            "SignatureDoesNotMatch",
            id="X-Date changed",
        ),
        pytest.param(lambda r: _with_header(r, "X-Date", None), "InvalidTimestamp", id="X-Date missing"),
        pytest.param(
            lambda r: _with_header(r, "X-Date", "20250103T030405Z"),
            "SignatureDoesNotMatch",
            id="X-Date on another day than the scope",
        ),
        pytest.param(
            lambda r: replace(r, now=datetime(2025, 1, 2, 3, 20, tzinfo=UTC)),
            "InvalidTimestamp",
            id="clock 16 minutes ahead",
        ),
        pytest.param(
            lambda r: replace(
                _with_header(
                    _with_header(r, "X-Date", "20250230T030405Z"),
                    "Authorization",
                    _authorization(r).replace("/20250102/", "/20250230/"),
                ),
                now=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
            ),
            "InvalidTimestamp",
            id="X-Date not a real day",
        ),
        pytest.param(lambda r: replace(r, region="cn-shanghai"), "SignatureDoesNotMatch", id="other region"),
        pytest.param(lambda r: replace(r, service="vefaas"), "SignatureDoesNotMatch", id="other service"),
        pytest.param(lambda r: replace(r, method="GET"), "SignatureDoesNotMatch", id="method changed"),
        pytest.param(lambda r: replace(r, path="/other"), "SignatureDoesNotMatch", id="path changed"),
        pytest.param(lambda r: replace(r, host="evil.example"), "SignatureDoesNotMatch", id="host changed"),
        pytest.param(
            lambda r: replace(r, raw_query=r.raw_query.replace("MaxResults=20", "MaxResults=21")),
            "SignatureDoesNotMatch",
            id="query value changed",
        ),
        pytest.param(
            lambda r: replace(r, raw_query=f"{r.raw_query}&Extra=1"),
            "SignatureDoesNotMatch",
            id="query parameter added",
        ),
        pytest.param(
            lambda r: replace(r, raw_query=f"{r.raw_query}&MaxResults=20"),
            "SignatureDoesNotMatch",
            id="query key repeated",
        ),
        pytest.param(
            lambda r: replace(r, raw_query=f"{r.raw_query}&Bad=%FF"),
            "SignatureDoesNotMatch",
            id="query not UTF-8",
        ),
        pytest.param(
            lambda r: _with_header(r, "X-Security-Token", None),
            "InvalidSecretToken",
            id="security token missing",
        ),
        pytest.param(
            lambda r: _with_header(r, "X-Security-Token", "canary-other-token"),
            "InvalidSecretToken",
            id="security token mismatched",
        ),
        pytest.param(
            lambda r: replace(
                r,
                keys={
                    STS_CREDENTIALS.access_key: replace(STS_CREDENTIALS, session_token=None),
                },
            ),
            "InvalidSecretToken",
            id="token sent for long-term keys",
        ),
        pytest.param(
            lambda r: _with_header(r, "Authorization", None), "SignatureDoesNotMatch", id="no Authorization"
        ),
        pytest.param(
            lambda r: _with_header(r, "Authorization", "Bearer abc"),
            "SignatureDoesNotMatch",
            id="another auth scheme",
        ),
        pytest.param(
            lambda r: _with_header(r, "Authorization", _authorization(r).replace("/request,", "/aws4,")),
            "SignatureDoesNotMatch",
            id="scope not ending in request",
        ),
        pytest.param(
            lambda r: _with_header(r, "Authorization", _authorization(r).replace(", Signature=", ", Sig=")),
            "SignatureDoesNotMatch",
            id="no Signature field",
        ),
        pytest.param(
            lambda r: _with_header(
                r, "Authorization", _authorization(r).replace("content-type;host;", "host;content-type;")
            ),
            "SignatureDoesNotMatch",
            id="SignedHeaders not sorted",
        ),
        pytest.param(
            lambda r: _with_header(
                r, "Authorization", _authorization(r).replace("content-type;host;x-content-sha256;", "host;")
            ),
            "SignatureDoesNotMatch",
            id="body hash not signed",
        ),
        pytest.param(
            lambda r: _with_header(
                r, "Authorization", _authorization(r).replace("Signature=", "Signature=é")
            ),
            "SignatureDoesNotMatch",
            id="signature not hex",
        ),
    ],
)
def test_verification_rejects_a_tampered_request(change: Callable[[Received], Received], code: str) -> None:
    """Any change to what was signed, or the wrong keys, scope or token, is refused with the gateway's code."""
    reason = change(_received()).verify()
    assert reason is not None
    assert reason.startswith(f"{code}: ")
    for secret in (
        "canary-sts-secret-Wx7",
        "another-canary-secret",
        "canary-session-token-Pp3",
        "canary-other",
    ):
        assert secret not in reason


def _authorization(received: Received) -> str:
    return (received.headers or {})["Authorization"]


# --- properties of the canonical query -------------------------------------------------------------------

_PARAMS = st.dictionaries(st.text(), st.text(), max_size=8)
_CANONICAL_CHARACTERS = re.compile(r"(?:[A-Za-z0-9\-_.~=&]|%[0-9A-F]{2})*")


@given(_PARAMS)
def test_canonical_query_decodes_back_to_the_parameters(params: dict[str, str]) -> None:
    """Percent-decoding the canonical query gives back exactly the parameters, sorted by encoded key."""
    query = canonical_query(params)
    pairs = [part.split("=", 1) for part in query.split("&")] if query else []
    assert {unquote(key): unquote(value) for key, value in pairs} == params
    assert len(pairs) == len(params)
    assert [key for key, _ in pairs] == sorted(key for key, _ in pairs)
    assert "+" not in query
    assert " " not in query
    assert _CANONICAL_CHARACTERS.fullmatch(query)


@given(_PARAMS)
def test_httpx_sends_the_canonical_query_unchanged(params: dict[str, str]) -> None:
    """The query httpx puts on the wire is byte for byte the one that was signed."""
    query = canonical_query(params)
    assert httpx.Request("GET", f"https://host/?{query}").url.query.decode("ascii") == query


@given(_PARAMS, st.booleans())
def test_any_signed_query_verifies_in_any_order(params: dict[str, str], reverse: bool) -> None:
    """Whatever the parameters, what the signer sends verifies on the server, in any order."""
    query = canonical_query(params)
    signed = sign_request(
        method="GET",
        host="h",
        path="/",
        query=query,
        headers={},
        body=b"",
        credentials=CREDENTIALS,
        region="cn-beijing",
        service="ecs",
        x_date=X_DATE,
    )
    sent = "&".join(reversed(query.split("&"))) if reverse else query
    reason = verify_signature(
        method="GET",
        host="h",
        path="/",
        raw_query=sent,
        headers=signed.headers,
        body=b"",
        credentials_for={CREDENTIALS.access_key: CREDENTIALS}.get,
        region="cn-beijing",
        service="ecs",
    )
    assert reason is None


def test_the_signer_names_its_fixed_secrets_for_masking_and_never_reads_rotating_ones() -> None:
    """Fixed credentials give their secret key and token to mask; rotating ones are not read just for that."""
    calls: list[int] = []

    def rotating() -> Credentials:
        calls.append(1)
        return STS_CREDENTIALS

    assert VolcSigner(STS_CREDENTIALS, region="cn-beijing", service="ecs").known_secrets() == (
        STS_CREDENTIALS.secret_key,
        STS_CREDENTIALS.session_token,
    )
    assert VolcSigner(CREDENTIALS, region="cn-beijing", service="ecs").known_secrets() == (
        CREDENTIALS.secret_key,
    )
    assert VolcSigner(rotating, region="cn-beijing", service="ecs").known_secrets() == ()
    assert calls == []
