"""Volcengine OpenAPI request signing ("HMAC-SHA256", FACTS.md §4), and its check for the local emulator.

``sign_request`` is a pure function of the request exactly as it goes on the wire, so it can be tested
against the official SDKs' vectors byte for byte. ``VolcSigner`` applies it to every request an ``httpx``
client sends; ``verify_signature`` is the server side, recomputing the signature from the request received.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote

import httpx

__all__ = [
    "ALGORITHM",
    "SIGNATURE_VALIDITY",
    "Credentials",
    "SignedRequest",
    "VolcSigner",
    "canonical_query",
    "encode_component",
    "format_x_date",
    "sign_request",
    "verify_signature",
]

ALGORITHM = "HMAC-SHA256"
# How far X-Date may be from the gateway's clock before it answers InvalidTimestamp.
SIGNATURE_VALIDITY = timedelta(minutes=15)

_X_DATE = re.compile(r"^\d{8}T\d{6}Z$")
_X_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
# Headers the signer itself sets: a stale copy on the request (a resend) is replaced, never signed twice.
_SIGNER_HEADERS = frozenset({"x-date", "x-content-sha256", "x-security-token"})
# The gateway cannot accept a signature that leaves any of these out (FACTS.md §4, step 4).
_REQUIRED_SIGNED = frozenset({"host", "x-content-sha256", "x-date"})


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
    return moment.astimezone(UTC).strftime(_X_DATE_FORMAT)


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
    if not _X_DATE.fullmatch(x_date):
        msg = "x_date must look like 20250102T030405Z"
        raise ValueError(msg)
    body_hash = _sha256_hex(body)
    signed = {
        name: value.strip()
        for name, value in ((name.lower(), value) for name, value in headers.items())
        if _is_signed(name) and name not in _SIGNER_HEADERS
    }
    signed["host"] = _canonical_host(host.strip())
    signed["x-date"] = x_date
    signed["x-content-sha256"] = body_hash
    added = {"X-Date": x_date, "X-Content-Sha256": body_hash}
    if credentials.session_token:
        signed["x-security-token"] = credentials.session_token
        added["X-Security-Token"] = credentials.session_token
    names = sorted(signed)
    canonical_request, string_to_sign, signature = _compute(
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


def verify_signature(
    *,
    method: str,
    host: str,
    path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials_for: Callable[[str], Credentials | None],
    region: str,
    service: str,
    now: datetime | None = None,
) -> str | None:
    """Check a received request's signature as the gateway would; ``None`` when valid, else the reason.

    The query is re-canonicalised (any order, ``+`` for space); exactly the headers SignedHeaders lists are
    used; the scope must name ``region`` and ``service``; temporary credentials need their X-Security-Token.
    With ``now``, an X-Date further than 15 minutes from it is refused. A reason starts with the gateway's
    error code (``SignatureDoesNotMatch: …``, ``InvalidAccessKey``, ``InvalidTimestamp``,
    ``InvalidSecretToken``) and never contains a secret.
    """
    try:
        _check_request(
            method=method,
            host=host,
            path=path,
            raw_query=raw_query,
            received={name.lower(): value.strip() for name, value in headers.items()},
            body=body,
            credentials_for=credentials_for,
            region=region,
            service=service,
            now=now,
        )
    except _Rejected as rejected:
        return str(rejected)
    return None


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

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add X-Date, X-Content-Sha256, X-Security-Token (temporary keys only) and Authorization."""
        credentials = self._credentials if isinstance(self._credentials, Credentials) else self._credentials()
        query = request.url.query.decode("ascii")
        try:
            canonical: str | None = canonical_query(_parse_query(query))
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


def _compute(
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
    """Canonical request, string to sign and signature (FACTS.md §4, steps 6 to 9)."""
    canonical_headers = "".join(f"{name}:{value}\n" for name, value in signed_headers)
    names = ";".join(name for name, _ in signed_headers)
    canonical_request = "\n".join([method.upper(), path or "/", query, canonical_headers, names, body_hash])
    scope = _scope(x_date, region, service)
    string_to_sign = "\n".join([ALGORITHM, x_date, scope, _sha256_hex(canonical_request.encode())])
    key = secret_key.encode()
    for part in (x_date[:8], region, service, "request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return canonical_request, string_to_sign, signature


def _scope(x_date: str, region: str, service: str) -> str:
    return f"{x_date[:8]}/{region}/{service}/request"


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_signed(lowered_name: str) -> bool:
    return lowered_name in {"content-type", "content-md5"} or lowered_name.startswith("x-")


def _canonical_host(host: str) -> str:
    """The Host value as signed: a default port (``:80``, ``:443``) is left out, like the official SDKs do."""
    name, colon, port = host.rpartition(":")
    if colon and port in {"80", "443"} and (name.endswith("]") or ":" not in name):
        return name
    return host


def _parse_query(raw_query: str) -> dict[str, str]:
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


class _Rejected(Exception):
    """A request the gateway would refuse; the message is the reason, which never holds a secret."""


@dataclass(frozen=True, slots=True)
class _Authorization:
    access_key: str
    short_date: str
    region: str
    service: str
    signed_names: list[str]
    signature: str


def _check_request(
    *,
    method: str,
    host: str,
    path: str,
    raw_query: str,
    received: dict[str, str],
    body: bytes,
    credentials_for: Callable[[str], Credentials | None],
    region: str,
    service: str,
    now: datetime | None,
) -> None:
    """Raise ``_Rejected`` with the first reason the gateway would refuse the request for."""
    authorization = _parse_authorization(received.get("authorization", ""))
    x_date = received.get("x-date", "")
    _check_scope(authorization, x_date, region=region, service=service, now=now)
    credentials = credentials_for(authorization.access_key)
    if credentials is None:
        raise _Rejected("InvalidAccessKey: the access key is not known")
    _check_token(received.get("x-security-token"), credentials.session_token)
    required = _REQUIRED_SIGNED | ({"x-security-token"} if credentials.session_token else set())
    if missing := sorted(required.difference(authorization.signed_names)):
        raise _Rejected(f"SignatureDoesNotMatch: SignedHeaders leaves out {';'.join(missing)}")
    body_hash = _sha256_hex(body)
    if received.get("x-content-sha256") != body_hash:
        raise _Rejected("SignatureDoesNotMatch: X-Content-Sha256 is not the SHA-256 of the body received")
    values = {**received, "host": _canonical_host(host.strip())}
    if absent := [name for name in authorization.signed_names if name not in values]:
        raise _Rejected(f"SignatureDoesNotMatch: the signed header {absent[0]} was not sent")
    try:
        query = canonical_query(_parse_query(raw_query))
    except ValueError as error:
        raise _Rejected(f"SignatureDoesNotMatch: {error}") from None
    _, _, expected = _compute(
        method=method,
        path=path,
        query=query,
        signed_headers=[(name, values[name]) for name in authorization.signed_names],
        body_hash=body_hash,
        x_date=x_date,
        secret_key=credentials.secret_key,
        region=region,
        service=service,
    )
    if not hmac.compare_digest(authorization.signature.encode(), expected.encode()):
        raise _Rejected("SignatureDoesNotMatch: the signature does not match the request")


def _parse_authorization(value: str) -> _Authorization:
    """Split ``HMAC-SHA256 Credential=AK/scope, SignedHeaders=…, Signature=…`` into its parts."""
    algorithm, _, rest = value.partition(" ")
    if algorithm != ALGORITHM:
        raise _Rejected(f"SignatureDoesNotMatch: no {ALGORITHM} Authorization header")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, equals, field_value = item.strip().partition("=")
        if equals:
            fields[name] = field_value
    credential = fields.get("Credential", "")
    signed_headers = fields.get("SignedHeaders", "")
    signature = fields.get("Signature", "")
    if not (credential and signed_headers and signature):
        raise _Rejected("SignatureDoesNotMatch: Authorization lacks Credential, SignedHeaders or Signature")
    access_key, _, scope = credential.partition("/")
    scope_parts = scope.split("/")
    if not access_key or len(scope_parts) != 4 or scope_parts[3] != "request":
        raise _Rejected("SignatureDoesNotMatch: the credential is not AccessKey/date/region/service/request")
    names = signed_headers.split(";")
    if names != sorted(set(names)) or any(not name or name != name.lower() for name in names):
        raise _Rejected(
            "SignatureDoesNotMatch: SignedHeaders must be lowercase names, sorted, without repeats"
        )
    short_date, scope_region, scope_service, _ = scope_parts
    return _Authorization(access_key, short_date, scope_region, scope_service, names, signature)


def _check_scope(
    authorization: _Authorization, x_date: str, *, region: str, service: str, now: datetime | None
) -> None:
    if authorization.region != region or authorization.service != service:
        raise _Rejected(
            f"SignatureDoesNotMatch: the credential scope is {authorization.region}/{authorization.service}, "
            f"expected {region}/{service}"
        )
    if not _X_DATE.fullmatch(x_date):
        raise _Rejected("InvalidTimestamp: X-Date is missing or not like 20250102T030405Z")
    if authorization.short_date != x_date[:8]:
        raise _Rejected("SignatureDoesNotMatch: the credential scope's date is not X-Date's")
    if now is not None and _too_far(x_date, now):
        raise _Rejected("InvalidTimestamp: X-Date is more than 15 minutes away from the server's clock")


def _check_token(sent: str | None, expected: str | None) -> None:
    if not expected:
        if sent:
            raise _Rejected("InvalidSecretToken: X-Security-Token was sent for long-term keys")
        return
    if sent is None:
        raise _Rejected("InvalidSecretToken: temporary keys need their X-Security-Token")
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        raise _Rejected("InvalidSecretToken: X-Security-Token does not belong to this access key")


def _too_far(x_date: str, now: datetime) -> bool:
    """True when X-Date is not a real moment, or is further from ``now`` (aware) than a signature lasts."""
    try:
        moment = datetime.strptime(x_date, _X_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return True
    return abs(now - moment) > SIGNATURE_VALIDITY
