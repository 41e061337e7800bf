"""A throwaway self-signed certificate for 127.0.0.1, and the local emulator served over TLS with it.

Production traffic is HTTPS and building a TLS context is part of every cold start, so the benchmark serves
the emulator over TLS too. Both clients trust the certificate the way users trust a private CA:
``SSL_CERT_FILE`` for ours, ``Configuration.ssl_ca_cert`` for the SDK.
"""

from __future__ import annotations

import datetime as dt
import importlib
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter_tools.emulator.server import OpenApiEmulator

__all__ = ["CertPair", "make_self_signed_cert", "serve_over_tls"]

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class CertPair:
    """PEM files: the certificate (also the CA bundle clients trust) and its private key."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_self_signed_cert(directory: Path, *, days: int = 2) -> CertPair:
    """A P-256 certificate valid for ``127.0.0.1`` and ``localhost`` for ``days``, written to ``directory``.

    Made with the ``cryptography`` package when it is installed, else with ``openssl req``."""
    directory.mkdir(parents=True, exist_ok=True)
    pair = CertPair(directory / "cert.pem", directory / "key.pem")
    try:
        x509: Any = importlib.import_module("cryptography.x509")
    except ImportError:
        x509 = None
    if x509 is not None:
        _with_cryptography(x509, pair, days)
    elif shutil.which("openssl"):
        _with_openssl(pair, days)
    else:
        msg = "a TLS certificate needs either the cryptography package or the openssl command"
        raise RuntimeError(msg)
    pair.key.chmod(0o600)
    return pair


def _with_openssl(pair: CertPair, days: int) -> None:
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(pair.key),
            "-out",
            str(pair.cert),
            "-days",
            str(days),
            "-subj",
            f"/CN={HOST}",
            "-addext",
            f"subjectAltName=IP:{HOST},DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


def _with_cryptography(x509: Any, pair: CertPair, days: int) -> None:
    import ipaddress  # noqa: PLC0415 - only this path needs it

    hashes: Any = importlib.import_module("cryptography.hazmat.primitives.hashes")
    serialization: Any = importlib.import_module("cryptography.hazmat.primitives.serialization")
    ec: Any = importlib.import_module("cryptography.hazmat.primitives.asymmetric.ec")
    oid: Any = importlib.import_module("cryptography.x509.oid")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(oid.NameOID.COMMON_NAME, HOST)])
    now = dt.datetime.now(dt.UTC)
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def serve_over_tls(emulator: OpenApiEmulator, pair: CertPair) -> str:
    """Make a not yet started emulator answer over TLS only; returns its ``https://`` endpoint."""
    return emulator.use_tls(pair.server_context())
