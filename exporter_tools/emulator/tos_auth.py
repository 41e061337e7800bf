"""The emulated TOS's signature check: a request signed ``TOS4-HMAC-SHA256`` as TOS checks it.

The key chain of the OpenAPI signature with service ``tos``, the canonical path percent-encoded except ``/``
and ``~`` (the path as received, so ``/<bucket>/<key>`` for a path-style request), the canonical query as the
OpenAPI one (a bare flag is ``flag=``), exactly the headers ``SignedHeaders`` lists (``host``, ``x-tos-date``
and ``x-tos-content-sha256`` at least, and ``x-tos-security-token`` for temporary keys), the payload line
``x-tos-content-sha256``, and an ``x-tos-date`` within 15 minutes of the emulator's clock (docs/facts.md §11).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, unquote

from handler.adapters.signing import X_DATE_FORMAT, X_DATE_PATTERN, Credentials, canonical_query

__all__ = ["TOS_ALGORITHM", "tos_canonical_request", "tos_signature", "verify_tos_signature"]

TOS_ALGORITHM = "TOS4-HMAC-SHA256"
TOS_SERVICE = "tos"
SIGNATURE_VALIDITY = timedelta(minutes=15)
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_REQUIRED_SIGNED = frozenset({"host", "x-tos-date", "x-tos-content-sha256"})


def tos_canonical_request(
    *, method: str, path: str, raw_query: str, signed_headers: list[tuple[str, str]], payload: str
) -> str:
    """The canonical request of docs/facts.md §11 (``path`` as on the wire; it is decoded, then encoded
    except ``/`` and ``~``)."""
    canonical_path = quote(unquote(path or "/"), safe="/~")
    query = canonical_query(dict(parse_qsl(raw_query, keep_blank_values=True)))
    headers = "".join(f"{name}:{value}\n" for name, value in signed_headers)
    names = ";".join(name for name, _ in signed_headers)
    return "\n".join([method.upper(), canonical_path, query, headers, names, payload])


def tos_signature(canonical_request: str, *, x_tos_date: str, secret_key: str, region: str) -> str:
    """The hex signature of a canonical request (key chain: date, region, ``tos``, ``request``)."""
    scope = f"{x_tos_date[:8]}/{region}/{TOS_SERVICE}/request"
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    string_to_sign = "\n".join([TOS_ALGORITHM, x_tos_date, scope, digest])
    key = secret_key.encode("utf-8")
    for part in (x_tos_date[:8], region, TOS_SERVICE, "request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def verify_tos_signature(
    *,
    method: str,
    path: str,
    raw_query: str,
    headers: Mapping[str, str],
    credentials_for: Callable[[str], Credentials | None],
    region: str,
    now: datetime | None,
) -> tuple[int, str, str] | None:
    """None when the request is signed as TOS wants; else (HTTP status, error code, reason). ``headers``
    are the received ones (any case). The reason never holds a secret."""
    received = {name.lower(): value.strip() for name, value in headers.items()}
    try:
        access_key, scope, names, signature = _parse_authorization(received.get("authorization", ""))
        x_tos_date = received.get("x-tos-date", "")
        _check_scope(scope, x_tos_date, region=region, now=now)
        credentials = credentials_for(access_key)
        if credentials is None:
            raise _Refused(403, "InvalidAccessKeyId", "the access key is not known")
        _check_token(received.get("x-tos-security-token"), credentials.session_token)
        required = _REQUIRED_SIGNED | ({"x-tos-security-token"} if credentials.session_token else set())
        if missing := sorted(required.difference(names)):
            raise _Refused(403, "SignatureDoesNotMatch", f"SignedHeaders leaves out {';'.join(missing)}")
        if absent := [name for name in names if name not in received]:
            raise _Refused(403, "SignatureDoesNotMatch", f"the signed header {absent[0]} was not sent")
        canonical = tos_canonical_request(
            method=method,
            path=path,
            raw_query=raw_query,
            signed_headers=[(name, received[name]) for name in names],
            payload=received.get("x-tos-content-sha256") or UNSIGNED_PAYLOAD,
        )
        expected = tos_signature(
            canonical, x_tos_date=x_tos_date, secret_key=credentials.secret_key, region=region
        )
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise _Refused(403, "SignatureDoesNotMatch", "the signature does not match the request")
    except _Refused as refused:
        return refused.status, refused.code, refused.message
    return None


def _parse_authorization(value: str) -> tuple[str, list[str], list[str], str]:
    algorithm, _, rest = value.partition(" ")
    if algorithm != TOS_ALGORITHM:
        raise _Refused(403, "AccessDenied", f"no {TOS_ALGORITHM} Authorization header (anonymous access)")
    fields = {
        name.strip(): v for name, eq, v in (item.strip().partition("=") for item in rest.split(",")) if eq
    }
    credential, signed, signature = (fields.get(n, "") for n in ("Credential", "SignedHeaders", "Signature"))
    if not (credential and signed and signature):
        raise _Refused(
            403, "SignatureDoesNotMatch", "Authorization lacks Credential, SignedHeaders or Signature"
        )
    access_key, _, scope = credential.partition("/")
    parts = scope.split("/")
    if not access_key or len(parts) != 4 or parts[2] != TOS_SERVICE or parts[3] != "request":
        raise _Refused(
            403, "SignatureDoesNotMatch", "the credential is not AccessKey/date/region/tos/request"
        )
    names = signed.split(";")
    if names != sorted(set(names)) or any(not name or name != name.lower() for name in names):
        raise _Refused(
            403, "SignatureDoesNotMatch", "SignedHeaders must be lowercase names, sorted, once each"
        )
    return access_key, parts, names, signature


def _check_scope(scope: list[str], x_tos_date: str, *, region: str, now: datetime | None) -> None:
    if scope[1] != region:
        raise _Refused(
            403, "SignatureDoesNotMatch", f"the credential scope's region is {scope[1]}, not {region}"
        )
    if not X_DATE_PATTERN.fullmatch(x_tos_date):
        raise _Refused(403, "AccessDenied", "x-tos-date is missing or not like 20250102T030405Z")
    if scope[0] != x_tos_date[:8]:
        raise _Refused(403, "SignatureDoesNotMatch", "the credential scope's date is not x-tos-date's")
    if now is not None:
        moment = datetime.strptime(x_tos_date, X_DATE_FORMAT).replace(tzinfo=UTC)
        if abs(now - moment) > SIGNATURE_VALIDITY:
            raise _Refused(
                403, "RequestTimeTooSkewed", "x-tos-date is more than 15 minutes from the server's clock"
            )


def _check_token(sent: str | None, expected: str | None) -> None:
    if not expected:
        if sent:
            raise _Refused(403, "InvalidSecurityToken", "x-tos-security-token was sent for long-term keys")
        return
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise _Refused(403, "InvalidSecurityToken", "temporary keys need their own x-tos-security-token")
