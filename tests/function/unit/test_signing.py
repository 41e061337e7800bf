"""The OpenAPI signer reproduces the official SDKs' signatures (the emulator's check of them is tested in
tests/tools/emulator/test_signature.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

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
