"""What the signed HTTP clients (the OpenAPI client and TOS) read from a failed exchange, in one place: the
typed error for a transport failure, a ``Retry-After`` worth honouring, and a mask for text that may quote
the request (a gateway or TOS echoing its headers in an error message)."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx

from handler.adapters.exchange import certificate_rejected
from handler.adapters.log import MASK, redactor
from handler.errors import ApiError, RetryableApiError, TerminalApiError, UnknownOutcomeError

__all__ = ["request_masker", "retry_after", "transport_error"]

# The longest wait a Retry-After is honoured for; a longer one is ignored (the backoff applies instead).
MAX_RETRY_AFTER_SECONDS = 300
# Shorter values are not masked in text: they would mask ordinary words.
_MIN_MASKED = 6
_SIGNATURE = re.compile(r"Signature=([0-9A-Za-z+/=]+)")
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)")


def retry_after(headers: httpx.Headers) -> float | None:
    """``Retry-After`` in seconds when it is a number from 0 to 300; else ``None``."""
    try:
        seconds = float(headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if 0 <= seconds <= MAX_RETRY_AFTER_SECONDS else None


def transport_error(exc: httpx.TransportError, *, action: str, host: str, variable: str) -> ApiError:
    """Sort a transport failure by whether the request can have reached the server; ``variable`` names the
    setting to check when it could not. The exception's own text is left out: it may quote the request."""
    name = type(exc).__name__
    if certificate_rejected(exc):
        msg = f"{host} presented a TLS certificate this function does not trust: set SSL_CERT_FILE to its CA bundle"
        return TerminalApiError(msg, code="CertificateVerifyFailed", action=action)
    if isinstance(
        exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout | httpx.UnsupportedProtocol
    ):
        msg = f"could not reach {host} ({name}): check {variable} and the function's network access"
        return RetryableApiError(msg, code=name, action=action)
    msg = f"the request reached {host} but no answer came back ({name}); whether it took effect is unknown"
    return UnknownOutcomeError(msg, code=name, action=action)


def request_masker(
    sent: httpx.Headers, known: tuple[str, ...], *, session_header: str
) -> Callable[[str], str]:
    """A mask for text that may quote the request sent: its Authorization and session-token headers, the
    signature, the ``known`` secrets and every secret the log redactor knows; an access key keeps its first
    four characters."""
    authorization = sent.get("authorization") or ""
    values = {authorization, sent.get(session_header) or "", *known}
    values.update(_SIGNATURE.findall(authorization))
    secrets = sorted((v for v in values if len(v) >= _MIN_MASKED), key=len, reverse=True)
    access_keys = [k for k in _CREDENTIAL.findall(authorization) if len(k) >= _MIN_MASKED]

    def mask(text: str) -> str:
        for value in secrets:
            text = text.replace(value, MASK)
        for key in access_keys:
            text = text.replace(key, key[:4] + MASK)
        return redactor.mask_text(text)

    return mask
