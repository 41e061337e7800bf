"""The emulator's signature check (``exporter_tools.emulator.signature``) accepts exactly what the function's
signer produces, and refuses any change to it with the gateway's own error code."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter_tools.emulator.signature import verify_signature
from handler.adapters.signing import Credentials, VolcSigner, canonical_query, sign_request

CREDENTIALS = Credentials("AKLTcanaryAccessKey", "canary-secret-Zq9/+=", None)
STS_CREDENTIALS = Credentials("AKTPcanaryTemporary", "canary-sts-secret-Wx7", "canary-session-token-Pp3")
X_DATE = "20250102T030405Z"
_PARAMS = st.dictionaries(st.text(), st.text(), max_size=8)


def _fixed_clock() -> datetime:
    return datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


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
