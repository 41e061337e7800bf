"""What the tools that work on one destination (``restore``, ``retention``) set up the same way: the
function's settings, the destination (``--bucket`` / ``--prefix`` over the settings'), logging, and the
clients with TOS. Each failure is a usage or configuration error: printed as one line, exit status 2."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from handler.adapters.clients import Clients, LazyTosClient, build_clients
from handler.adapters.credentials import resolve_credentials
from handler.adapters.log import OFF, configure_logging
from handler.core.tracking import Destination
from handler.errors import ConfigurationError, ExporterError
from handler.models.settings import Settings

__all__ = ["BucketSession", "open_bucket"]


@dataclass(frozen=True, slots=True)
class BucketSession:
    """One tool run's settings, destination and clients (``store``: their TOS client)."""

    settings: Settings
    dest: Destination
    clients: Clients
    store: LazyTosClient


def open_bucket(
    command: str,
    args: argparse.Namespace,
    *,
    overrides: Mapping[str, str] | None = None,
    tracking: bool = False,
) -> BucketSession | int:
    """The session for ``args`` (``bucket``, ``prefix``, ``verbose``), the settings read from the environment
    with ``overrides``; ``tracking``: the clients are built as with ``EXPORT_TRACKING=tags`` whatever the
    settings say. An exit status (2) when it cannot be set up, its reason printed as ``COMMAND: …``."""
    try:
        settings = Settings.from_env({**os.environ, **(overrides or {})})
    except ConfigurationError as error:
        return _refused(command, str(error))
    bucket = args.bucket or settings.tos_bucket
    if not bucket:
        return _refused(command, "no bucket: set EXPORT_TOS_BUCKET or give --bucket")
    configure_logging("INFO" if args.verbose else OFF)
    built = settings.model_copy(update={"tracking": "tags"}) if tracking else settings
    try:
        clients = build_clients(built, resolve_credentials(os.environ), with_store=True)
    except ExporterError as error:
        return _refused(command, str(error))
    if clients.store is None:  # pragma: no cover - built with_store
        return _refused(command, "the TOS client could not be built")
    dest = Destination(bucket, args.prefix or settings.tos_prefix)
    return BucketSession(settings=settings, dest=dest, clients=clients, store=clients.store)


def _refused(command: str, reason: str) -> int:
    print(f"{command}: {reason}", file=sys.stderr)
    return 2
