"""The gateway's side of request signing: recompute a received request's signature and say why it is refused.

Used by the local emulator (and the tests' signed fakes); the function itself only signs
(``handler.adapters.signing``), so this never ships in its zip.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from handler.adapters.signing import (
    ALGORITHM,
    X_DATE_FORMAT,
    X_DATE_PATTERN,
    Credentials,
    canonical_host,
    canonical_query,
    compute_signature,
    parse_query,
    sha256_hex,
)

__all__ = ["SIGNATURE_VALIDITY", "verify_signature"]

# How far X-Date may be from the gateway's clock before it answers InvalidTimestamp.
SIGNATURE_VALIDITY = timedelta(minutes=15)
# The gateway cannot accept a signature that leaves any of these out (docs/facts.md §4, step 4).
_REQUIRED_SIGNED = frozenset({"host", "x-content-sha256", "x-date"})


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
    except _Refused as rejected:
        return str(rejected)
    return None


class _Refused(Exception):
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
    """Raise ``_Refused`` with the first reason the gateway would refuse the request for."""
    authorization = _parse_authorization(received.get("authorization", ""))
    x_date = received.get("x-date", "")
    _check_scope(authorization, x_date, region=region, service=service, now=now)
    credentials = credentials_for(authorization.access_key)
    if credentials is None:
        raise _Refused("InvalidAccessKey: the access key is not known")
    _check_token(received.get("x-security-token"), credentials.session_token)
    required = _REQUIRED_SIGNED | ({"x-security-token"} if credentials.session_token else set())
    if missing := sorted(required.difference(authorization.signed_names)):
        raise _Refused(f"SignatureDoesNotMatch: SignedHeaders leaves out {';'.join(missing)}")
    body_hash = sha256_hex(body)
    if received.get("x-content-sha256") != body_hash:
        raise _Refused("SignatureDoesNotMatch: X-Content-Sha256 is not the SHA-256 of the body received")
    values = {**received, "host": canonical_host(host.strip())}
    if absent := [name for name in authorization.signed_names if name not in values]:
        raise _Refused(f"SignatureDoesNotMatch: the signed header {absent[0]} was not sent")
    try:
        query = canonical_query(parse_query(raw_query))
    except ValueError as error:
        raise _Refused(f"SignatureDoesNotMatch: {error}") from None
    _, _, expected = compute_signature(
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
        raise _Refused("SignatureDoesNotMatch: the signature does not match the request")


def _parse_authorization(value: str) -> _Authorization:
    """Split ``HMAC-SHA256 Credential=AK/scope, SignedHeaders=…, Signature=…`` into its parts."""
    algorithm, _, rest = value.partition(" ")
    if algorithm != ALGORITHM:
        raise _Refused(f"SignatureDoesNotMatch: no {ALGORITHM} Authorization header")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, equals, field_value = item.strip().partition("=")
        if equals:
            fields[name] = field_value
    credential = fields.get("Credential", "")
    signed_headers = fields.get("SignedHeaders", "")
    signature = fields.get("Signature", "")
    if not (credential and signed_headers and signature):
        raise _Refused("SignatureDoesNotMatch: Authorization lacks Credential, SignedHeaders or Signature")
    access_key, _, scope = credential.partition("/")
    scope_parts = scope.split("/")
    if not access_key or len(scope_parts) != 4 or scope_parts[3] != "request":
        raise _Refused("SignatureDoesNotMatch: the credential is not AccessKey/date/region/service/request")
    names = signed_headers.split(";")
    if names != sorted(set(names)) or any(not name or name != name.lower() for name in names):
        raise _Refused(
            "SignatureDoesNotMatch: SignedHeaders must be lowercase names, sorted, without repeats"
        )
    short_date, scope_region, scope_service, _ = scope_parts
    return _Authorization(access_key, short_date, scope_region, scope_service, names, signature)


def _check_scope(
    authorization: _Authorization, x_date: str, *, region: str, service: str, now: datetime | None
) -> None:
    if authorization.region != region or authorization.service != service:
        raise _Refused(
            f"SignatureDoesNotMatch: the credential scope is {authorization.region}/{authorization.service}, "
            f"expected {region}/{service}"
        )
    if not X_DATE_PATTERN.fullmatch(x_date):
        raise _Refused("InvalidTimestamp: X-Date is missing or not like 20250102T030405Z")
    if authorization.short_date != x_date[:8]:
        raise _Refused("SignatureDoesNotMatch: the credential scope's date is not X-Date's")
    if now is not None and _too_far(x_date, now):
        raise _Refused("InvalidTimestamp: X-Date is more than 15 minutes away from the server's clock")


def _check_token(sent: str | None, expected: str | None) -> None:
    if not expected:
        if sent:
            raise _Refused("InvalidSecretToken: X-Security-Token was sent for long-term keys")
        return
    if sent is None:
        raise _Refused("InvalidSecretToken: temporary keys need their X-Security-Token")
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        raise _Refused("InvalidSecretToken: X-Security-Token does not belong to this access key")


def _too_far(x_date: str, now: datetime) -> bool:
    """True when X-Date is not a real moment, or is further from ``now`` (aware) than a signature lasts."""
    try:
        moment = datetime.strptime(x_date, X_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return True
    return abs(now - moment) > SIGNATURE_VALIDITY
