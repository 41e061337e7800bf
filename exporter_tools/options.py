"""Option types the tools share, each refusing a bad value as a usage error (exit 2) that says what it takes."""

from __future__ import annotations

import argparse

__all__ = ["http_status", "port"]


def port(text: str) -> int:
    """A TCP port on 127.0.0.1: 0 (a free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        msg = f"expected a port from 0 (a free one) to 65535, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def http_status(text: str) -> int:
    """An HTTP status a server may answer with: 100 to 599."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 100 <= value <= 599:
        msg = f"expected an HTTP status from 100 to 599, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value
