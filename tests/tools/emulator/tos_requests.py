"""A TOS request signed as the official TOS SDK signs it (docs/facts.md §11), path-style, for the tests that
talk to the emulator's TOS side over a socket."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from exporter_tools.emulator.tos_auth import tos_canonical_request, tos_signature
from handler.adapters.signing import Credentials, format_x_date
from tests.support.emulated import CREDENTIALS


def signed_tos_request(
    emulator: Any,
    bucket: str,
    key: str | None,
    *,
    credentials: Credentials = CREDENTIALS,
    method: str = "HEAD",
    moment: datetime | None = None,
    client: httpx.Client | None = None,
    query: str = "",
    body: bytes = b"",
    unsigned: Mapping[str, str] | None = None,
) -> httpx.Response:
    """``method /<bucket>/<key>?<query>`` (``/<bucket>`` when ``key`` is None) to ``emulator.endpoint``
    (``port`` and ``region`` read too), signed at ``moment`` (default now), with ``body`` and the
    ``unsigned`` headers (``Range``…), through ``client`` when given. ``query`` goes as given (canonical)."""
    path = "/" + bucket + ("" if key is None else "/" + quote(key, safe="/~"))
    x_date = format_x_date(moment or datetime.now(UTC))
    headers = {
        "host": f"127.0.0.1:{emulator.port}",
        "x-tos-content-sha256": "UNSIGNED-PAYLOAD",
        "x-tos-date": x_date,
    }
    if credentials.session_token:
        headers["x-tos-security-token"] = credentials.session_token
    names = sorted(headers)
    canonical = tos_canonical_request(
        method=method,
        path=path,
        raw_query=query,
        signed_headers=[(n, headers[n]) for n in names],
        payload="UNSIGNED-PAYLOAD",
    )
    signature = tos_signature(
        canonical, x_tos_date=x_date, secret_key=credentials.secret_key, region=emulator.region
    )
    headers["Authorization"] = (
        f"TOS4-HMAC-SHA256 Credential={credentials.access_key}/{x_date[:8]}/{emulator.region}/tos/request, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    headers["Date"] = x_date
    headers.update(unsigned or {})
    url = f"{emulator.endpoint}{path}" + (f"?{query}" if query else "")
    if client is not None:
        return client.request(method, url, headers=headers, content=body)
    with httpx.Client(timeout=5) as own:
        return own.request(method, url, headers=headers, content=body)
