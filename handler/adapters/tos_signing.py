"""TOS request signing ("TOS4-HMAC-SHA256", docs/facts.md §11).

The key chain is the OpenAPI one (§4) with service ``tos``; what differs is the header names (``x-tos-…``),
the payload line (always ``UNSIGNED-PAYLOAD``, the official SDK never hashes a body), which headers are
signed (Host, Content-Type and every ``x-tos-…``) and the object path, percent-encoded except ``/`` and
``~``. ``sign_tos_request`` is a pure function of the request, tested against the official SDK's vectors
(``tests/vectors/tos_sign.json``) byte for byte; ``TosSigner`` applies it to every request an ``httpx``
client sends.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Generator, Mapping
from datetime import UTC, datetime
from urllib.parse import quote, unquote

import httpx

from handler.adapters.signing import (
    X_DATE_PATTERN,
    Credentials,
    SignedRequest,
    canonical_host,
    canonical_query,
    format_x_date,
    parse_query,
    sha256_hex,
)

__all__ = [
    "TOS_ALGORITHM",
    "TOS_SERVICE",
    "UNSIGNED_PAYLOAD",
    "TosSigner",
    "encode_key_path",
    "sign_tos_request",
]

TOS_ALGORITHM = "TOS4-HMAC-SHA256"
TOS_SERVICE = "tos"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
# Headers the signer sets itself: a stale copy on the request (a resend) is replaced, never signed twice.
_SIGNER_HEADERS = frozenset(
    {"x-tos-date", "x-tos-content-sha256", "x-tos-security-token", "date", "authorization"}
)


def encode_key_path(path: str) -> str:
    """A decoded object path as it is signed and sent: UTF-8 percent-encoded, ``/`` and ``~`` left as is."""
    return quote(path, safe="/~")


def _is_signed(lowered_name: str) -> bool:
    return lowered_name in {"host", "content-type"} or lowered_name.startswith("x-tos-")


def sign_tos_request(
    *,
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    credentials: Credentials,
    region: str,
    x_date: str,
) -> SignedRequest:
    """Sign one TOS request.

    ``path`` is the decoded path (``/<key>`` virtual-hosted, ``/<bucket>/<key>`` path-style); ``query`` the
    decoded parameters (a bare flag such as ``tagging`` is ``{"tagging": ""}``); ``headers`` the other headers
    that will be sent, of which Content-Type and every ``x-tos-…`` are signed. The result's ``headers``
    (``x-tos-content-sha256``, ``x-tos-date``, ``Date``, ``x-tos-security-token`` with STS keys, and
    ``Authorization``) must all be added to the request.
    """
    if not X_DATE_PATTERN.fullmatch(x_date):
        msg = "x_date must look like 20250102T030405Z"
        raise ValueError(msg)
    signed = {
        name: value.strip()
        for name, value in ((name.lower(), value) for name, value in headers.items())
        if _is_signed(name) and name not in _SIGNER_HEADERS
    }
    signed["host"] = canonical_host(host.strip())
    signed["x-tos-content-sha256"] = UNSIGNED_PAYLOAD
    signed["x-tos-date"] = x_date
    added = {"x-tos-content-sha256": UNSIGNED_PAYLOAD}
    if credentials.session_token:
        signed["x-tos-security-token"] = credentials.session_token
        added["x-tos-security-token"] = credentials.session_token
    added |= {"Date": x_date, "x-tos-date": x_date}
    names = sorted(signed)
    canonical_request = "\n".join(
        [
            method.upper(),
            encode_key_path(path or "/"),
            canonical_query(query),
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            UNSIGNED_PAYLOAD,
        ]
    )
    scope = f"{x_date[:8]}/{region}/{TOS_SERVICE}/request"
    string_to_sign = "\n".join([TOS_ALGORITHM, x_date, scope, sha256_hex(canonical_request.encode())])
    key = credentials.secret_key.encode()
    for part in (x_date[:8], region, TOS_SERVICE, "request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    added["Authorization"] = (
        f"{TOS_ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return SignedRequest(canonical_request, string_to_sign, signature, added)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TosSigner(httpx.Auth):
    """Signs every request an httpx client sends to TOS, at send time, with the credentials current then.

    ``credentials`` may be a callable, called once per request (rotating STS credentials). The URL's path
    must be encoded as :func:`encode_key_path` encodes it, so that the bytes sent are the bytes signed; a
    path in any other form is refused rather than sent with a signature the server would reject.
    """

    def __init__(
        self,
        credentials: Credentials | Callable[[], Credentials],
        *,
        region: str,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._credentials = credentials
        self._region = region
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add x-tos-content-sha256, x-tos-date, Date, x-tos-security-token (STS keys only), Authorization."""
        credentials = self._credentials if isinstance(self._credentials, Credentials) else self._credentials()
        raw_path = request.url.raw_path.partition(b"?")[0].decode("ascii") or "/"
        path = unquote(raw_path, errors="strict")
        if encode_key_path(path) != raw_path:
            msg = "the request's path is not encoded as TOS signs it: build it with encode_key_path()"
            raise ValueError(msg)
        signed = sign_tos_request(
            method=request.method,
            host=request.headers.get("Host") or request.url.netloc.decode("ascii"),
            path=path,
            query=parse_query(request.url.query.decode("ascii")),
            headers=request.headers,
            credentials=credentials,
            region=self._region,
            x_date=format_x_date(self._clock()),
        )
        if "x-tos-security-token" not in signed.headers:
            request.headers.pop("x-tos-security-token", None)
        request.headers.update(signed.headers)
        yield request
