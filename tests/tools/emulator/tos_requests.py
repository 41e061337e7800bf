"""A TOS request signed as the official TOS SDK signs it (docs/facts.md §11), path-style, for the tests that
talk to the emulator's TOS side over a socket."""

from __future__ import annotations

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
    key: str,
    *,
    credentials: Credentials = CREDENTIALS,
    method: str = "HEAD",
    moment: datetime | None = None,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """``method /<bucket>/<key>`` to ``emulator.endpoint`` (``port`` and ``region`` read too), signed at
    ``moment`` (default now), through ``client`` when given."""
    path = "/" + bucket + "/" + quote(key, safe="/~")
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
        raw_query="",
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
    if client is not None:
        return client.request(method, f"{emulator.endpoint}{path}", headers=headers)
    with httpx.Client(timeout=5) as own:
        return own.request(method, f"{emulator.endpoint}{path}", headers=headers)
