"""Volcengine OpenAPI request signing ("HMAC-SHA256", docs/facts.md §4).

``sign_request`` is a pure function of the request exactly as it goes on the wire, so it can be tested
against the official SDKs' vectors byte for byte. ``VolcSigner`` applies it to every request an ``httpx``
client sends. The server side (the emulator's check) is ``exporter_tools.emulator.signature``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote

import httpx

__all__ = [
    "ALGORITHM",
    "X_DATE_FORMAT",
    "X_DATE_PATTERN",
    "Credentials",
    "SignedRequest",
    "VolcSigner",
    "canonical_host",
    "canonical_query",
    "compute_signature",
    "encode_component",
    "fixed_secrets",
    "format_x_date",
    "parse_query",
    "sha256_hex",
    "sign_request",
]

ALGORITHM = "HMAC-SHA256"

X_DATE_PATTERN = re.compile(r"^\d{8}T\d{6}Z$")
X_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
# Headers the signer itself sets: a stale copy on the request (a resend) is replaced, never signed twice.
_SIGNER_HEADERS = frozenset({"x-date", "x-content-sha256", "x-security-token"})


@dataclass(frozen=True, slots=True)
class Credentials:
    """An access key pair, with the STS session token when the keys are temporary. Only the key id prints."""

    access_key: str
    secret_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """Everything the signature depends on, and the headers to add to the request so that it carries it."""

    canonical_request: str
    string_to_sign: str
    signature: str
    headers: dict[str, str]


def fixed_secrets(credentials: Credentials | Callable[[], Credentials]) -> tuple[str, ...]:
    """The secret key and session token of fixed credentials, for masking text that may quote them; nothing
    for rotating credentials, which are not read again just for this."""
    if not isinstance(credentials, Credentials):
        return ()
    return tuple(value for value in (credentials.secret_key, credentials.session_token) if value)


def encode_component(value: str) -> str:
    """Percent-encode as UTF-8, leaving only RFC 3986's unreserved ``A-Z a-z 0-9 - _ . ~`` as they are."""
    # quote() always keeps exactly the unreserved set; safe="" makes it escape "/" too.
    return quote(value, safe="")


def canonical_query(params: Mapping[str, str]) -> str:
    """The query to sign and to send: encoded ``key=value`` pairs sorted by encoded key, joined by ``&``."""
    pairs = sorted((encode_component(key), encode_component(value)) for key, value in params.items())
    return "&".join(f"{key}={value}" for key, value in pairs)


def format_x_date(moment: datetime) -> str:
    """``X-Date`` for a moment: ``YYYYMMDDTHHMMSSZ`` in UTC. A naive datetime is refused, not guessed."""
    if moment.utcoffset() is None:
        msg = "X-Date needs a timezone-aware datetime"
        raise ValueError(msg)
    return moment.astimezone(UTC).strftime(X_DATE_FORMAT)


def sign_request(
    *,
    method: str,
    host: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Credentials,
    region: str,
    service: str,
    x_date: str,
) -> SignedRequest:
    """Sign one request as it will be sent.

    ``host`` is the Host header's value (``:80``/``:443`` are dropped for the signature only); ``query`` is
    the canonical query string exactly as on the wire; ``headers`` are the other headers that will be sent,
    of which Content-Type, Content-Md5 and every ``X-…`` are signed (X-Date, X-Content-Sha256 and
    X-Security-Token among them are replaced by the signer's own). Add all of the result's ``headers``.
    """
    if not X_DATE_PATTERN.fullmatch(x_date):
        msg = "x_date must look like 20250102T030405Z"
        raise ValueError(msg)
    body_hash = sha256_hex(body)
    signed = {
        name: value.strip()
        for name, value in ((name.lower(), value) for name, value in headers.items())
        if _is_signed(name) and name not in _SIGNER_HEADERS
    }
    signed["host"] = canonical_host(host.strip())
    signed["x-date"] = x_date
    signed["x-content-sha256"] = body_hash
    added = {"X-Date": x_date, "X-Content-Sha256": body_hash}
    if credentials.session_token:
        signed["x-security-token"] = credentials.session_token
        added["X-Security-Token"] = credentials.session_token
    names = sorted(signed)
    canonical_request, string_to_sign, signature = compute_signature(
        method=method,
        path=path,
        query=query,
        signed_headers=[(name, signed[name]) for name in names],
        body_hash=body_hash,
        x_date=x_date,
        secret_key=credentials.secret_key,
        region=region,
        service=service,
    )
    added["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{_scope(x_date, region, service)}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return SignedRequest(canonical_request, string_to_sign, signature, added)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class VolcSigner(httpx.Auth):
    """Signs every request an httpx client sends, at send time, with the credentials current then.

    ``credentials`` may be a callable, called once per request, so rotating STS credentials are picked up.
    The request's URL must carry its query already canonical (build it with ``canonical_query``): the signer
    signs the query bytes that go on the wire and refuses a query in any other form rather than send a
    request the gateway would reject.
    """

    requires_request_body = True

    def __init__(
        self,
        credentials: Credentials | Callable[[], Credentials],
        *,
        region: str,
        service: str,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._credentials = credentials
        self._region = region
        self._service = service
        self._clock = clock

    def known_secrets(self) -> tuple[str, ...]:
        """The secrets of this signer's credentials, for masking text that may quote them (``fixed_secrets``)."""
        return fixed_secrets(self._credentials)

    def now(self) -> datetime:
        """The time this signer signs with now (what the gateway holds a request's ``X-Date`` to)."""
        return self._clock()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add X-Date, X-Content-Sha256, X-Security-Token (temporary keys only) and Authorization."""
        credentials = self._credentials if isinstance(self._credentials, Credentials) else self._credentials()
        query = request.url.query.decode("ascii")
        try:
            canonical: str | None = canonical_query(parse_query(query))
        except ValueError:
            canonical = None
        if canonical != query:
            msg = "the request's query is not canonical: build the URL's query with canonical_query()"
            raise ValueError(msg)
        raw_path = request.url.raw_path.partition(b"?")[0].decode("ascii")
        signed = sign_request(
            method=request.method,
            host=request.headers.get("Host") or request.url.netloc.decode("ascii"),
            path=raw_path or "/",
            query=query,
            headers=request.headers,
            body=request.content,
            credentials=credentials,
            region=self._region,
            service=self._service,
            x_date=format_x_date(self._clock()),
        )
        if "X-Security-Token" not in signed.headers:
            request.headers.pop("X-Security-Token", None)
        request.headers.update(signed.headers)
        yield request


def compute_signature(
    *,
    method: str,
    path: str,
    query: str,
    signed_headers: list[tuple[str, str]],
    body_hash: str,
    x_date: str,
    secret_key: str,
    region: str,
    service: str,
) -> tuple[str, str, str]:
    """Canonical request, string to sign and signature (docs/facts.md §4, steps 6 to 9)."""
    canonical_headers = "".join(f"{name}:{value}\n" for name, value in signed_headers)
    names = ";".join(name for name, _ in signed_headers)
    canonical_request = "\n".join([method.upper(), path or "/", query, canonical_headers, names, body_hash])
    scope = _scope(x_date, region, service)
    string_to_sign = "\n".join([ALGORITHM, x_date, scope, sha256_hex(canonical_request.encode())])
    key = secret_key.encode()
    for part in (x_date[:8], region, service, "request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return canonical_request, string_to_sign, signature


def _scope(x_date: str, region: str, service: str) -> str:
    return f"{x_date[:8]}/{region}/{service}/request"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_signed(lowered_name: str) -> bool:
    return lowered_name in {"content-type", "content-md5"} or lowered_name.startswith("x-")


def canonical_host(host: str) -> str:
    """The Host value as signed: a default port (``:80``, ``:443``) is left out, like the official SDKs do."""
    name, colon, port = host.rpartition(":")
    if colon and port in {"80", "443"} and (name.endswith("]") or ":" not in name):
        return name
    return host


def parse_query(raw_query: str) -> dict[str, str]:
    """Decode a query as a gateway does (``+`` is a space); a repeated key or non-UTF-8 text is refused."""
    try:
        pairs = parse_qsl(raw_query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        msg = "the query is not valid UTF-8"
        raise ValueError(msg) from None
    params = dict(pairs)
    if len(params) != len(pairs):
        msg = "a query parameter is repeated"
        raise ValueError(msg)
    return params
