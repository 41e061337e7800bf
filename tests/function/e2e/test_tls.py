"""Production traffic is HTTPS: the function against the emulator over TLS, trusting it via SSL_CERT_FILE."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exporter_tools.bench.tls import make_self_signed_cert
from exporter_tools.emulator.ecs import EcsEmulator
from tests.support.emulated import CREDENTIALS, invoke

IMAGE = "image-ybqi99s7yq8rx7mnk44b"


@pytest.fixture
def tls_emulator(tmp_path: Path) -> Any:
    pair = make_self_signed_cert(tmp_path / "tls")
    emulator = EcsEmulator(credentials=CREDENTIALS)
    emulator.use_tls(pair.server_context())
    emulator.start()
    yield emulator, pair
    emulator.close()


def test_exports_over_tls_when_the_ca_is_trusted(
    tls_emulator: Any, point_handler_at: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SSL_CERT_FILE naming the gateway's CA, the export goes through over HTTPS."""
    emulator, pair = tls_emulator
    assert emulator.endpoint.startswith("https://")
    point_handler_at(emulator)
    monkeypatch.setenv("SSL_CERT_FILE", str(pair.cert))
    result, raised = invoke({"ImageId": IMAGE})
    assert not raised
    assert result["results"][0]["status"] == "started"
    assert emulator.export_tasks_by_image() == {IMAGE: 1}


def test_an_untrusted_certificate_says_to_set_ssl_cert_file(
    tls_emulator: Any, point_handler_at: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An untrusted gateway certificate fails for good, with the variable to set, and exports nothing."""
    emulator, _pair = tls_emulator
    point_handler_at(emulator)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    result, raised = invoke({"ImageId": IMAGE})
    error = result["results"][0]["error"]
    assert (error["code"], error["retryable"]) == ("CertificateVerifyFailed", False)
    assert "SSL_CERT_FILE" in error["message"]
    assert not raised
    assert emulator.export_tasks_by_image() == {}
