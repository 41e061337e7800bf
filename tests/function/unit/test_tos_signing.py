"""The TOS signer reproduces the official tos SDK's signatures byte for byte (tests/vectors/tos_sign.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from handler.adapters.signing import Credentials, SignedRequest, sha256_hex
from handler.adapters.tos_signing import TosSigner, encode_key_path, sign_tos_request

VECTORS = json.loads((Path(__file__).parents[2] / "vectors" / "tos_sign.json").read_text(encoding="utf-8"))
SHARED = VECTORS["credentials"]
# Headers the vectors list that the caller sends, not the signer: the host, the body's type, Expect.
CALLER_HEADERS = {"host", "content-type", "expect"}


@dataclass(frozen=True)
class TosVector:
    """One case of tos_sign.json, with the credentials it was signed with."""

    name: str
    case: dict[str, Any]

    @property
    def credentials(self) -> Credentials:
        token = SHARED["session_token"] if "x-tos-security-token" in self.case["headers"] else None
        return Credentials(SHARED["ak"], SHARED["sk"], token)

    @property
    def caller_headers(self) -> dict[str, str]:
        return {k: v for k, v in self.case["headers"].items() if k.lower() in CALLER_HEADERS - {"host"}}

    @property
    def signer_headers(self) -> dict[str, str]:
        return {k: v for k, v in self.case["headers"].items() if k.lower() not in CALLER_HEADERS}

    def sign(self) -> SignedRequest:
        return sign_tos_request(
            method=self.case["method"],
            host=self.case["headers"]["Host"],
            path=self.case["path"],
            query=self.case["params"],
            headers=self.caller_headers,
            credentials=self.credentials,
            region=SHARED["region"],
            x_date=SHARED["date"],
        )

    def signer(self) -> TosSigner:
        moment = datetime.strptime(SHARED["date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return TosSigner(self.credentials, region=SHARED["region"], clock=lambda: moment)


CASES = [TosVector(name, case) for name, case in VECTORS["cases"].items()]


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def vector(request: pytest.FixtureRequest) -> TosVector:
    """Every case of tos_sign.json, by name."""
    case: TosVector = request.param
    return case


def test_every_vector_has_the_sdks_canonical_request_string_to_sign_and_headers(vector: TosVector) -> None:
    """Each case gives the SDK's canonical request, its string to sign, and exactly the SDK's added headers."""
    signed = vector.sign()
    assert signed.canonical_request == vector.case["canonical_request"]
    scope = f"{SHARED['date'][:8]}/{SHARED['region']}/tos/request"
    expected_sts = "\n".join(
        ["TOS4-HMAC-SHA256", SHARED["date"], scope, sha256_hex(vector.case["canonical_request"].encode())]
    )
    assert signed.string_to_sign == expected_sts
    assert signed.headers == vector.signer_headers
    assert signed.headers["Authorization"].endswith(f"Signature={signed.signature}")


def test_every_vector_through_the_httpx_signer_sends_the_sdks_headers_and_path(vector: TosVector) -> None:
    """A request sent through TosSigner carries the SDK's headers, and its path on the wire is the signed one."""
    seen: list[httpx.Request] = []

    def tos(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(tos), auth=vector.signer()) as client:
        client.request(
            vector.case["method"],
            vector.case["url"],
            headers=vector.caller_headers,
            content=vector.case["body"].encode(),
        )
    (request,) = seen
    for name, value in vector.case["headers"].items():
        assert request.headers[name] == value, name
    assert request.url.raw_path.partition(b"?")[0] == encode_key_path(vector.case["path"]).encode()


def test_the_payload_is_never_hashed() -> None:
    """The body does not enter the signature: the payload line is UNSIGNED-PAYLOAD whatever is sent."""
    put = next(c for c in CASES if c.name == "put_object_json")
    signed = put.sign()
    assert signed.canonical_request.endswith("\nUNSIGNED-PAYLOAD")
    assert sha256_hex(put.case["body"].encode()) not in signed.canonical_request


def test_stale_signer_headers_and_unsigned_headers_stay_out_of_the_signature() -> None:
    """A resent request's old x-tos-date or token is replaced, and headers TOS does not sign are left out."""
    head = CASES[0]
    signed = sign_tos_request(
        method="HEAD",
        host=head.case["headers"]["Host"],
        path=head.case["path"],
        query={},
        headers={
            "x-tos-date": "19990101T000000Z",
            "x-tos-security-token": "old",
            "User-Agent": "x",
            "X-Other": "y",
        },
        credentials=head.credentials,
        region=SHARED["region"],
        x_date=SHARED["date"],
    )
    assert signed.canonical_request == head.case["canonical_request"]


def test_a_token_left_from_sts_credentials_is_dropped_when_the_keys_are_long_term() -> None:
    """The same request object signed first with STS keys, then long-term ones, sends no stale token."""
    sts = Credentials("AKTPtemporary", "temporary-secret", "session-token")
    long_term = Credentials("AKLTlongterm", "long-term-secret")
    rotation = iter([sts, long_term])
    signer = TosSigner(lambda: next(rotation), region="cn-beijing")
    request = httpx.Request("HEAD", "https://b-1.tos-cn-beijing.volces.com/key")
    first = httpx.Headers(next(signer.sync_auth_flow(request)).headers)
    second = next(signer.sync_auth_flow(request)).headers
    assert first["x-tos-security-token"] == "session-token"
    assert "x-tos-security-token" not in second
    assert "Credential=AKLTlongterm/" in second["Authorization"]


@pytest.mark.parametrize(
    "url",
    [
        "https://b-1.tos-cn-beijing.volces.com/a+b",  # '+' must go as %2B
        "https://b-1.tos-cn-beijing.volces.com/a%7Eb",  # '~' must go as is
    ],
)
def test_the_signer_refuses_a_path_encoded_another_way(url: str) -> None:
    """A path whose bytes differ from the signed encoding fails before anything is sent."""
    signer = TosSigner(Credentials("AK", "SK"), region="cn-beijing")
    with pytest.raises(ValueError, match="encode_key_path"):
        next(signer.sync_auth_flow(httpx.Request("HEAD", url)))


@pytest.mark.parametrize("x_date", ["2026-11-27T08:30:00Z", "20261127T083000", ""])
def test_a_malformed_date_is_refused(x_date: str) -> None:
    """sign_tos_request refuses a date not shaped YYYYMMDDTHHMMSSZ."""
    with pytest.raises(ValueError, match="x_date"):
        sign_tos_request(
            method="HEAD",
            host="h",
            path="/k",
            query={},
            headers={},
            credentials=Credentials("AK", "SK"),
            region="cn-beijing",
            x_date=x_date,
        )


@given(st.text(min_size=1, max_size=40))
def test_any_key_round_trips_through_its_encoding(key: str) -> None:
    """Every object key the client sends (no '.' or '..' segment: the client refuses those, as an HTTP
    client would resolve them) encodes to plain ASCII that decodes back to it, '/' kept as the separator."""
    assume(not any(segment in (".", "..") for segment in key.split("/")))
    encoded = encode_key_path(f"/{key}")
    assert encoded.isascii()
    assert httpx.URL(f"https://h{encoded}").path == f"/{key}"
    assert encoded.count("/") == key.count("/") + 1
