"""The emulated ECS API: ``ExportImage``, ``DescribeImages`` and ``DescribeTasks`` (Version 2020-04-01).

Every answer comes from state, never from a script: an error of the ExportImage API's error table
(docs/facts.md §1) arises when the account holds what causes it (no such image or bucket, an image that is
not available or not exportable, a bucket ECS may not write to, an export already pending or running →
``OperationDenied.ResourceLocked``).
Export tasks go ``Pending`` → ``Running`` → ``Succeeded`` over ``task_seconds``, computed from their creation
time whenever they are looked at (no timers); a creating image becomes available the same way.

``EcsEmulator`` is the ECS service behind the local gateway (``exporter_tools.emulator.server``)::

    with EcsEmulator(fleet, credentials=Credentials("AK", "SK"), faults=Faults(error_rate=0.1), seed=1) as emu:
        emu.endpoint                   # "http://127.0.0.1:PORT": VOLCENGINE_ENDPOINT
        emu.export_tasks_by_image()    # {"image-…": 1, …}
        emu.stats()                    # requests by action and status, throttled, peak_rps, …
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from exporter_tools.emulator.api import CHINA_STANDARD_TIME, ApiAnswer, ApiCall, Faults
from exporter_tools.emulator.fleet import Fleet, FleetImage, demo_fleet
from exporter_tools.emulator.query import (
    InvalidRequest,
    listed,
    page,
    page_size,
    tag_filters,
    tag_matches,
)
from exporter_tools.emulator.server import OpenApiEmulator
from handler.adapters.signing import Credentials

__all__ = ["API_VERSION", "EcsEmulator", "EcsService", "Faults", "format_time"]

API_VERSION = "2020-04-01"
PENDING_SHARE = 0.2  # the first fifth of an export task's time is Pending, the rest Running
_PREFIX = re.compile(r"^[A-Za-z0-9]{1,30}$")
_ACTIVE = frozenset({"Pending", "Running"})
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def format_time(moment: datetime) -> str:
    """A time as the API writes it: ISO 8601 to the second, in UTC+8 (``2024-06-01T16:15:42+08:00``)."""
    return moment.astimezone(CHINA_STANDARD_TIME).isoformat(timespec="seconds")


@dataclass(slots=True)
class _Image:
    spec: FleetImage
    created_at: datetime
    ready_at: datetime | None  # when a creating image becomes available; None: never

    def status(self, now: datetime) -> str:
        if self.spec.status == "creating" and self.ready_at is not None and now >= self.ready_at:
            return "available"
        return self.spec.status

    def to_api(self, now: datetime) -> dict[str, Any]:
        spec = self.spec
        updated = self.ready_at if self.ready_at is not None and now >= self.ready_at else self.created_at
        return {
            "ImageId": spec.id,
            "ImageName": spec.name or spec.id,
            "Description": "",
            "Status": self.status(now),
            "Visibility": spec.visibility,
            "CreatedAt": format_time(self.created_at),
            "UpdatedAt": format_time(updated),
            "Size": spec.size_gb,
            "OsType": spec.os_type,
            "OsName": spec.platform,
            "Platform": spec.platform,
            "Architecture": "amd64",
            "ProjectName": "default",
            "Tags": [{"Key": key, "Value": value} for key, value in spec.tags.items()],
        }


@dataclass(slots=True)
class _Task:
    task_id: str
    type: str
    resource_id: str
    created_at: datetime
    duration: float  # seconds from Pending to Succeeded
    fixed_status: str | None = None  # a task from the fleet file keeps its status

    def progress(self, now: datetime) -> tuple[str, int, datetime | None]:
        """Status, percent done and end time (None while it runs), as of ``now``."""
        if self.fixed_status is not None:
            done = self.fixed_status in ("Succeeded", "Failed")
            end = self.created_at + timedelta(seconds=self.duration) if done else None
            return self.fixed_status, 100 if self.fixed_status == "Succeeded" else 0, end
        elapsed = (now - self.created_at).total_seconds()
        if self.duration <= 0 or elapsed >= self.duration:
            return "Succeeded", 100, self.created_at + timedelta(seconds=max(self.duration, 0))
        if elapsed < PENDING_SHARE * self.duration:
            return "Pending", 0, None
        return "Running", min(99, int(100 * elapsed / self.duration)), None

    def to_api(self, now: datetime) -> dict[str, Any]:
        status, process, end = self.progress(now)
        item: dict[str, Any] = {
            "Id": self.task_id,
            "Type": self.type,
            "Status": status,
            "Process": process,
            "ResourceId": self.resource_id,
            "CreatedAt": format_time(self.created_at),
            "UpdatedAt": format_time(end or min(now, self.created_at + timedelta(seconds=self.duration))),
            "EndAt": format_time(end) if end is not None else "",  # "" while the task runs, as the API says
        }
        return item


class EcsService:
    """The three ECS actions over an in-memory account seeded from a ``Fleet``. Thread-safe."""

    service = "ecs"
    version = API_VERSION
    actions = frozenset({"ExportImage", "DescribeImages", "DescribeTasks"})

    def __init__(
        self,
        fleet: Fleet,
        *,
        task_seconds: float = 30.0,
        seed: int | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.fleet = fleet
        self.task_seconds = task_seconds
        self._seed = seed
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._images: dict[str, _Image] = {}
        self._buckets: dict[str, bool] = {}
        self._tasks: list[_Task] = []
        self._exports: Counter[str] = Counter()
        self._rng = random.Random(seed)  # noqa: S311 - ids, not secrets
        self.reset()

    def reset(self) -> None:
        """Back to the fleet as loaded, with times counted from now; created tasks are forgotten."""
        now = self._clock()
        with self._lock:
            self._rng = random.Random(self._seed)  # noqa: S311 - ids, not secrets
            self._images = {
                spec.id: _Image(
                    spec,
                    created_at=now - timedelta(hours=spec.created_hours_ago),
                    ready_at=(
                        now + timedelta(seconds=spec.ready_after_seconds)
                        if spec.status == "creating" and spec.ready_after_seconds is not None
                        else None
                    ),
                )
                for spec in self.fleet.images
            }
            self._buckets = {bucket.name: bucket.put_allowed for bucket in self.fleet.buckets}
            self._tasks = [
                _Task(
                    task_id=self._new_task_id(),
                    type=task.type,
                    resource_id=task.image_id,
                    created_at=now - timedelta(hours=task.created_hours_ago),
                    duration=self.task_seconds,
                    fixed_status=task.status,
                )
                for task in self.fleet.tasks
            ]
            self._exports = Counter()

    def add_image(self, spec: FleetImage) -> None:
        """Put one more image in the account (or replace the one with its id), created ``created_hours_ago``
        before now; ``reset`` forgets it."""
        now = self._clock()
        ready = spec.ready_after_seconds
        with self._lock:
            self._images[spec.id] = _Image(
                spec,
                created_at=now - timedelta(hours=spec.created_hours_ago),
                ready_at=now + timedelta(seconds=ready)
                if spec.status == "creating" and ready is not None
                else None,
            )

    # -- the gateway's interface ------------------------------------------------------------------------

    def handle(self, call: ApiCall) -> ApiAnswer:
        if call.method != "GET":
            return ApiAnswer.error(
                405, "MethodNotAllowed", f"{call.action} is called with GET, not {call.method}"
            )
        try:
            if call.action == "ExportImage":
                return self.export_image(call.query)
            if call.action == "DescribeImages":
                return ApiAnswer.ok(self.describe_images(call.query))
            return ApiAnswer.ok(self.describe_tasks(call.query))
        except InvalidRequest as invalid:
            return invalid.answer

    def stats(self) -> dict[str, Any]:
        """How many images and tasks the account holds, and the export tasks created per image."""
        with self._lock:
            return {
                "images": len(self._images),
                "tasks": len(self._tasks),
                "export_tasks_by_image": dict(sorted(self._exports.items())),
            }

    def export_tasks_by_image(self) -> dict[str, int]:
        """How many export tasks ExportImage created for each image since the start (or the last reset)."""
        with self._lock:
            return dict(sorted(self._exports.items()))

    # -- the actions ------------------------------------------------------------------------------------

    def export_image(self, query: Mapping[str, str]) -> ApiAnswer:
        """Create an export task, or refuse with the code the state calls for (docs/facts.md §1)."""
        for name in ("ImageId", "TOSBucket", "TOSPrefix"):
            if not query.get(name):
                raise InvalidRequest(400, f"MissingParameter.{name}", f"the parameter {name} is required")
        image_id, bucket, prefix = query["ImageId"], query["TOSBucket"], query["TOSPrefix"]
        if not _PREFIX.match(prefix):
            raise InvalidRequest(
                400, "InvalidTOSPrefix.Malformed", "the TOSPrefix must be 1-30 letters and digits"
            )
        now = self._clock()
        with self._lock:
            image = self._images.get(image_id)
            if image is None:
                raise InvalidRequest(404, "InvalidImage.NotFound", f"the image {image_id} does not exist")
            if bucket not in self._buckets:
                raise InvalidRequest(
                    404, "InvalidTOSBucket.NotFound", f"the TOS bucket {bucket} does not exist"
                )
            if image.spec.visibility != "private" or not image.spec.exportable:
                raise InvalidRequest(
                    400,
                    "InvalidImageForExportImage.UnSupported",
                    f"the image {image_id} cannot be exported: only exportable custom images can",
                )
            status = image.status(now)
            if status != "available":
                raise InvalidRequest(
                    400,
                    "InvalidImageStatus",
                    f"the image {image_id} is {status}: only an available image can be exported",
                )
            if not self._buckets[bucket]:
                raise InvalidRequest(
                    400,
                    "InvalidTosPutObject.AccessDenied",
                    f"ECS is not allowed tos:PutObject on the bucket {bucket}",
                )
            if any(t.resource_id == image_id and t.progress(now)[0] in _ACTIVE for t in self._tasks):
                raise InvalidRequest(
                    412,
                    "OperationDenied.ResourceLocked",
                    f"the image {image_id} is locked by another operation in progress",
                )
            task = _Task(self._new_task_id(), "ExportImage", image_id, now, self.task_seconds)
            self._tasks.append(task)
            self._exports[image_id] += 1
        return ApiAnswer.ok({"TaskId": task.task_id}, committed=True)

    def describe_images(self, query: Mapping[str, str]) -> dict[str, Any]:
        """Images matching every filter given, newest first, one page at a time (docs/facts.md §3)."""
        ids = set(listed(query, "ImageIds"))
        statuses = set(listed(query, "Status")) | (
            {query["ImageStatus"]} if query.get("ImageStatus") else set()
        )
        visibility = query.get("Visibility") or None
        if visibility not in (None, "public", "private", "shared"):
            raise InvalidRequest(400, "InvalidParameter", "Visibility must be public, private or shared")
        wanted_tags = tag_filters(query)
        size = page_size(query, default=15)
        now = self._clock()
        with self._lock:
            images = [
                image
                for image in self._images.values()
                if (not ids or image.spec.id in ids)
                and (not statuses or image.status(now) in statuses)
                and (visibility is None or image.spec.visibility == visibility)
                and (not query.get("ImageName") or (image.spec.name or image.spec.id) == query["ImageName"])
                and (not query.get("OsType") or image.spec.os_type == query["OsType"])
                and (not query.get("Platform") or image.spec.platform == query["Platform"])
                and all(tag_matches(image.spec.tags, key, values) for key, values in wanted_tags)
            ]
            ordered = sorted(images, key=lambda i: (-i.created_at.timestamp(), i.spec.id))
            shown, token = page(ordered, lambda i: (-i.created_at.timestamp(), i.spec.id), query, size)
            items = [image.to_api(now) for image in shown]
        return {"Images": items, "NextToken": token, "TotalCount": len(ordered)}

    def describe_tasks(self, query: Mapping[str, str]) -> dict[str, Any]:
        """Tasks by task id and/or resource (image) id, newest first, one page at a time (docs/facts.md §3)."""
        task_ids = set(listed(query, "TaskIds"))
        resources = set(listed(query, "ResourceIds"))
        if query.get("ResourceId"):
            resources.add(query["ResourceId"])
        size = page_size(query, default=20)
        now = self._clock()
        with self._lock:
            tasks = [
                task
                for task in self._tasks
                if (not task_ids or task.task_id in task_ids)
                and (not resources or task.resource_id in resources)
            ]
            ordered = sorted(tasks, key=lambda t: (-t.created_at.timestamp(), t.task_id))
            shown, token = page(ordered, lambda t: (-t.created_at.timestamp(), t.task_id), query, size)
            items = [task.to_api(now) for task in shown]
        return {"Tasks": items, "NextToken": token}

    def _new_task_id(self) -> str:
        return "t-" + "".join(self._rng.choice(_ID_ALPHABET) for _ in range(20))


class EcsEmulator(OpenApiEmulator):
    """The ECS service behind a local gateway on 127.0.0.1: the in-process emulator for tests and demos."""

    def __init__(
        self,
        fleet: Fleet | None = None,
        *,
        credentials: Credentials | Iterable[Credentials] | None = None,
        region: str = "cn-beijing",
        faults: Faults | None = None,
        seed: int | None = None,
        task_seconds: float = 30.0,
        port: int = 0,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        verbose: bool = False,
    ) -> None:
        """``fleet`` defaults to the demo fleet and ``credentials`` to the emulator's fake key pair
        (``AKLTemulator`` / ``emulator-secret-key``). ``seed`` makes the faults and the task ids reproducible.
        ``clock``, ``sleep``, ``monotonic`` and ``verbose`` are ``OpenApiEmulator``'s."""
        clock = clock or (lambda: datetime.now(UTC))
        self.ecs = EcsService(fleet or demo_fleet(), task_seconds=task_seconds, seed=seed, clock=clock)
        super().__init__(
            [self.ecs],
            credentials=credentials,
            region=region,
            faults=faults,
            seed=seed,
            port=port,
            clock=clock,
            sleep=sleep,
            monotonic=monotonic,
            verbose=verbose,
        )

    def export_tasks_by_image(self) -> dict[str, int]:
        """How many export tasks ExportImage created for each image (tasks from the fleet file not counted)."""
        return self.ecs.export_tasks_by_image()
