"""``exporter-tools status``: the exports in flight and their recent outcomes, read from the images' tags, then
the exports in TOS, read from their manifests.

The function keeps the state of each export on its image (docs/contract.md, "Following exports to their
end"): ``image-exporter:state`` is ``exporting``, ``exported`` or ``failed`` and ``image-exporter:dest`` is
``tos://<bucket>/<prefix>``. This command reads them back with the function's own signed client: one
DescribeImages tag search (all pages), then DescribeTasks for the images still ``exporting`` (100 a
request), and prints two tables, then the exports in the bucket (``exporter_tools.tos_exports``)::

    Exports in flight (1)
    IMAGE                      TASK                    STATUS   PROCESS  AGE
    image-ybqi99s7yq8rx7mnk44b t-0a1b2c3d4e5f6g7h8i9j  Running      45%  3m10s

    Outcomes (2)
    IMAGE                      STATE     DESTINATION
    image-3f7k2m9q1x8w5v6n4b0c exported  tos://demo-exports/imgexport_image-3f7k2m9q1x8w5v6n4b0c_system.qcow2

Endpoint, region and keys come from the variables the function reads (``VOLCENGINE_ENDPOINT``,
``VOLCENGINE_REGION``, ``VOLCENGINE_ACCESS_KEY``/``VOLCENGINE_SECRET_KEY``/``VOLCENGINE_SESSION_TOKEN``, the
older names, or the role's credential file); ``--endpoint`` and ``--region`` override the first two. The
bucket and prefix are ``EXPORT_TOS_BUCKET`` and ``EXPORT_TOS_PREFIX`` (``--bucket``, ``--prefix``), TOS is
``TOS_ENDPOINT``, the groups ``RETENTION_GROUP_BY``. Exit status: 0; 1 when the tags or the bucket could not
be read (a manifest with a problem is listed, not an error); 2 for a usage or settings error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from exporter_tools.tables import text_table
from exporter_tools.tos_exports import TosExports, read_tos_exports, render_tos_exports
from handler.adapters.clients import Clients, build_clients
from handler.adapters.credentials import resolve_credentials
from handler.adapters.log import OFF, configure_logging
from handler.adapters.openapi import OpenApiClient
from handler.errors import ConfigurationError, ExporterError
from handler.models.settings import Settings

__all__ = ["DEST_KEY", "STATE_KEY", "InFlight", "Outcome", "Status", "main", "read_status", "render"]

STATE_KEY = "image-exporter:state"
DEST_KEY = "image-exporter:dest"
STATES = ("exporting", "exported", "failed")
ECS_VERSION = "2020-04-01"
PAGE = 100
NO_BUCKET = "Exports in TOS: no bucket to read (set EXPORT_TOS_BUCKET, or give --bucket)"


@dataclass(frozen=True, slots=True)
class InFlight:
    """An image tagged ``exporting`` and its latest export task (``task_id`` empty when none is listed)."""

    image_id: str
    destination: str
    task_id: str
    task_status: str
    process: int | None
    age_seconds: float | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """An image tagged ``exported`` or ``failed``, and where its object is (or was meant to be)."""

    image_id: str
    state: str
    destination: str


@dataclass(frozen=True, slots=True)
class Status:
    in_flight: tuple[InFlight, ...]
    outcomes: tuple[Outcome, ...]


def read_status(api: OpenApiClient, *, deadline: float, now: datetime, limit: int | None = None) -> Status:
    """Read the tracking tags and the tasks of the images in flight (newest images first). ``limit`` caps
    the outcomes listed."""
    params = {"TagFilters.1.Key": STATE_KEY} | {
        f"TagFilters.1.Values.{n}": state for n, state in enumerate(STATES, start=1)
    }
    exporting: list[tuple[str, str]] = []
    outcomes: list[Outcome] = []
    for image in _pages(api, "DescribeImages", params, "Images", deadline=deadline):
        image_id = str(image.get("ImageId", ""))
        tags = _tags(image.get("Tags"))
        state, destination = tags.get(STATE_KEY, ""), _object_url(tags.get(DEST_KEY, ""), image_id)
        if state == "exporting":
            exporting.append((image_id, destination))
        elif state in STATES:
            outcomes.append(Outcome(image_id, state, destination))
    latest = _latest_export_tasks(api, [image_id for image_id, _ in exporting], deadline=deadline)
    in_flight = []
    for image_id, destination in exporting:
        task = latest.get(image_id)
        if task is None:
            in_flight.append(InFlight(image_id, destination, "", "(no task listed)", None, None))
            continue
        created = _moment(task.get("CreatedAt"))
        process = task.get("Process")
        in_flight.append(
            InFlight(
                image_id,
                destination,
                str(task.get("Id", "")),
                str(task.get("Status", "")),
                int(process) if isinstance(process, int | float) else None,
                (now - created).total_seconds() if created is not None else None,
            )
        )
    return Status(tuple(in_flight), tuple(outcomes[:limit] if limit is not None else outcomes))


def _latest_export_tasks(
    api: OpenApiClient, image_ids: list[str], *, deadline: float
) -> dict[str, Mapping[str, Any]]:
    """The newest ExportImage task of each image, from DescribeTasks by image (100 images a request)."""
    latest: dict[str, Mapping[str, Any]] = {}
    for start in range(0, len(image_ids), PAGE):
        batch = image_ids[start : start + PAGE]
        params = {f"ResourceIds.{n}": image_id for n, image_id in enumerate(batch, start=1)}
        for task in _pages(api, "DescribeTasks", params, "Tasks", deadline=deadline):
            if task.get("Type") != "ExportImage":
                continue
            image_id = str(task.get("ResourceId", ""))
            seen = latest.get(image_id)
            created = _moment(task.get("CreatedAt"))
            if seen is None or (
                created is not None and created > (_moment(seen.get("CreatedAt")) or created)
            ):
                latest[image_id] = task
    return latest


def _pages(
    api: OpenApiClient, action: str, params: Mapping[str, str], key: str, *, deadline: float
) -> Iterator[Mapping[str, Any]]:
    token = ""
    seen: set[str] = set()
    while True:
        page = {**params, "MaxResults": str(PAGE)} | ({"NextToken": token} if token else {})
        result, _ = api.call(action, page, deadline=deadline, idempotent=True)
        items = result.get(key) or []
        yield from (item for item in items if isinstance(item, Mapping))
        token = str(result.get("NextToken") or "")
        if not token or token in seen:
            return
        seen.add(token)


def _tags(value: Any) -> dict[str, str]:
    if not isinstance(value, list):
        return {}
    return {str(t.get("Key", "")): str(t.get("Value", "")) for t in value if isinstance(t, Mapping)}


def _object_url(dest: str, image_id: str) -> str:
    """``tos://<bucket>/<prefix>`` as the object's URL ``tos://<bucket>/<prefix>_<ImageId>_system.qcow2``."""
    return f"{dest}_{image_id}_system.qcow2" if dest else "(no destination tag)"


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def render(status: Status) -> str:
    """The two tables, as the command prints them."""
    lines = [f"Exports in flight ({len(status.in_flight)})"]
    if status.in_flight:
        rows = [
            (
                f.image_id,
                f.task_id or "-",
                f.task_status,
                "-" if f.process is None else f"{f.process}%",
                _age(f.age_seconds),
            )
            for f in status.in_flight
        ]
        lines += text_table(("IMAGE", "TASK", "STATUS", "PROCESS", "AGE"), rows, right=(3,))
    lines += ["", f"Outcomes ({len(status.outcomes)})"]
    if status.outcomes:
        lines += text_table(
            ("IMAGE", "STATE", "DESTINATION"), [(o.image_id, o.state, o.destination) for o in status.outcomes]
        )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exporter-tools status",
        description=(
            "List the exports in flight (image, task, Process %, age) and the recent outcomes (image, state, "
            "destination) from the images' image-exporter:* tags, then the exports in the bucket (group, source "
            "image, finished, objects, size, verified, last restore) from their manifests. Endpoint, region, "
            "keys, bucket and groups come from the function's variables (VOLCENGINE_ENDPOINT, "
            "VOLCENGINE_REGION, VOLCENGINE_ACCESS_KEY..., EXPORT_TOS_BUCKET, TOS_ENDPOINT, RETENTION_GROUP_BY)."
        ),
    )
    parser.add_argument("--endpoint", help="the OpenAPI endpoint (default: VOLCENGINE_ENDPOINT)")
    parser.add_argument("--region", help="the region (default: VOLCENGINE_REGION, else cn-beijing)")
    parser.add_argument(
        "--limit", type=_positive_int, default=50, help="outcomes to list at most (default 50)"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds for the whole command (default 60)"
    )
    parser.add_argument("--bucket", help="the bucket whose exports to list (default: EXPORT_TOS_BUCKET)")
    parser.add_argument(
        "--prefix", help="their file-name prefix (default: EXPORT_TOS_PREFIX, else imgexport)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--verbose", action="store_true", help="log each API call (JSON lines on stderr)")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = "expected a whole number above 0"
        raise argparse.ArgumentTypeError(msg)
    return value


def _clients(settings: Settings) -> Clients:
    """The function's clients under ``settings``, with the environment's credentials (masked in logs). TOS
    is read whatever ``EXPORT_TRACKING`` says: the manifests already in the bucket are there either way."""
    return build_clients(settings.model_copy(update={"tracking": "tags"}), resolve_credentials(os.environ))


def _tos_exports(clients: Clients, settings: Settings, *, deadline: float) -> TosExports | None:
    """The exports in the configured bucket (None: no bucket is configured)."""
    if settings.tos_bucket is None or clients.store is None:
        return None
    return read_tos_exports(
        clients.store,
        clients.ecs,
        settings.tos_bucket,
        settings.tos_prefix,
        group_by=settings.retention_group_by,
        deadline=deadline,
        workers=settings.concurrency,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.timeout <= 3600:
        parser.error("--timeout must be above 0 and at most 3600 seconds")
    options = (
        ("VOLCENGINE_ENDPOINT", args.endpoint),
        ("VOLCENGINE_REGION", args.region),
        ("EXPORT_TOS_BUCKET", args.bucket),
        ("EXPORT_TOS_PREFIX", args.prefix),
    )
    overrides = {name: value for name, value in options if value}
    try:
        settings = Settings.from_env({**os.environ, **overrides})
    except ConfigurationError as error:
        # The function's own reading: empty variables count as unset, each error names its variable.
        print(f"status: {error}", file=sys.stderr)
        return 2
    configure_logging("INFO" if args.verbose else OFF)
    deadline = time.monotonic() + args.timeout
    try:
        clients = _clients(settings)
        status = read_status(clients.api, deadline=deadline, now=datetime.now(UTC), limit=args.limit)
    except ConfigurationError as error:  # no credentials, or a credential file that is wrong
        print(f"status: {error}", file=sys.stderr)
        return 2
    except ExporterError as error:
        print(f"status: {error}", file=sys.stderr)
        return 1
    tos = _tos_exports(clients, settings, deadline=deadline)
    if args.json:
        document = {
            "in_flight": [asdict(f) for f in status.in_flight],
            "outcomes": [asdict(o) for o in status.outcomes],
            "tos": tos.as_json() if tos is not None else None,
        }
        print(json.dumps(document, indent=2))
    else:
        lines = render_tos_exports(tos) if tos is not None else [NO_BUCKET]
        print(render(status) + "\n" + "\n".join(lines))
    return 1 if tos is not None and tos.error is not None else 0
