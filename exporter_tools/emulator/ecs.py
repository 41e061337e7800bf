"""The emulated ECS API: ``ExportImage``, ``DescribeImages``, ``DescribeTasks``, ``TagResources`` and
``UntagResources`` (Version 2020-04-01), with the exported objects served as TOS ``HeadObject`` on the same port.

Every answer comes from state, never from a script: an error of the seed's table (docs/facts.md §1) arises when the
account holds what causes it (no such image or bucket, an image that is not available or not exportable, a
bucket ECS may not write to, an export already pending or running → ``OperationDenied.ResourceLocked``).
Export tasks go ``Pending`` → ``Running`` → ``Succeeded`` over ``task_seconds``, computed from their creation
time whenever they are looked at (no timers); a creating image becomes available the same way. An export
ends as the image's ``export_outcome`` says (fleet file, or ``set_export_outcome``): ``succeeded`` writes the
object ``<prefix>_<ImageId>_system.qcow2`` to the task's bucket when the task Succeeds; ``failed`` makes the
task Fail halfway through (``Process`` stays where it was, ``EndAt`` set); ``no_object`` Succeeds without the
object. Tags live on the images (``exporter_tools.emulator.tags`` checks the requests); a fleet with
``tagging_allowed: false`` (or ``tagging_allowed = False`` on the service) answers 403 ``AccessDenied``.

``EcsEmulator`` is the ECS service behind the local gateway (``exporter_tools.emulator.server``)::

    with EcsEmulator(fleet, credentials=Credentials("AK", "SK"), faults=Faults(error_rate=0.1), seed=1) as emu:
        emu.endpoint                   # "http://127.0.0.1:PORT": VOLCENGINE_ENDPOINT
        emu.export_tasks_by_image()    # {"image-…": 1, …}
        emu.tos.remove_object("demo-exports", "imgexport_image-…_system.qcow2")  # it vanishes
        emu.stats()                    # requests by action and status, throttled, peak_rps, …
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from exporter_tools.emulator.fleet import ExportOutcome, Fleet, FleetImage, demo_fleet
from exporter_tools.emulator.server import (
    CHINA_STANDARD_TIME,
    DEFAULT_ACCESS_KEY,
    DEFAULT_SECRET_KEY,
    ApiAnswer,
    ApiCall,
    Faults,
    OpenApiEmulator,
)
from exporter_tools.emulator.tags import (
    MAX_TAGS_PER_RESOURCE,
    TagRequestError,
    parse_tag_filters,
    parse_tag_resources,
    parse_untag_resources,
    tag_filter_matches,
)
from exporter_tools.emulator.tos import StoredObject, TosService, export_object_key
from handler.adapters.signing import Credentials

__all__ = ["API_VERSION", "EcsEmulator", "EcsService", "Faults", "format_time"]

API_VERSION = "2020-04-01"
MAX_IDS = 100  # ImageIds.N, TaskIds.N, ResourceIds.N
PENDING_SHARE = 0.2  # the first fifth of an export task's time is Pending, the rest Running
_PREFIX = re.compile(r"^[A-Za-z0-9]{1,30}$")
_ACTIVE = frozenset({"Pending", "Running"})
FAILED_AT = 0.5  # a failing export task fails halfway through its time
TAG_SEARCH_LIMIT = 1000  # DescribeImages with TagFilters finds at most this many images (docs/facts.md §3)
GIB = 1 << 30
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_T = TypeVar("_T")


def format_time(moment: datetime) -> str:
    """A time as the API writes it: ISO 8601 to the second, in UTC+8 (``2024-06-01T16:15:42+08:00``)."""
    return moment.astimezone(CHINA_STANDARD_TIME).isoformat(timespec="seconds")


class _Invalid(Exception):
    """A request the API refuses; carries the answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.answer = ApiAnswer.error(status, code, message)


@dataclass(slots=True)
class _Image:
    spec: FleetImage
    created_at: datetime
    ready_at: datetime | None  # when a creating image becomes available; None: never
    tags: dict[str, str] = field(default_factory=dict)
    export_outcome: ExportOutcome = "succeeded"

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
            "Tags": [{"Key": key, "Value": value} for key, value in self.tags.items()],
        }


@dataclass(slots=True)
class _Task:
    task_id: str
    type: str
    resource_id: str
    created_at: datetime
    duration: float  # seconds from Pending to Succeeded
    fixed_status: str | None = None  # a task from the fleet file keeps its status
    bucket: str = ""  # an ExportImage task's destination
    prefix: str = ""
    outcome: ExportOutcome = "succeeded"

    def progress(self, now: datetime) -> tuple[str, int, datetime | None]:
        """Status, percent done and end time (None while it runs), as of ``now``."""
        if self.fixed_status is not None:
            done = self.fixed_status in ("Succeeded", "Failed")
            end = self.created_at + timedelta(seconds=self.duration) if done else None
            return self.fixed_status, 100 if self.fixed_status == "Succeeded" else 0, end
        elapsed = (now - self.created_at).total_seconds()
        if self.outcome == "failed" and elapsed >= FAILED_AT * self.duration:
            process = int(100 * FAILED_AT) if self.duration > 0 else 0
            return "Failed", process, self.created_at + timedelta(seconds=max(FAILED_AT * self.duration, 0))
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
        }
        if end is not None:
            item["EndAt"] = format_time(end)
        return item


class EcsService:
    """The ECS actions over an in-memory account seeded from a ``Fleet``. Thread-safe."""

    service = "ecs"
    version = API_VERSION
    actions = frozenset({"ExportImage", "DescribeImages", "DescribeTasks", "TagResources", "UntagResources"})

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
        self._readable: dict[str, bool] = {}
        self.tagging_allowed = fleet.tagging_allowed
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
                    tags=dict(spec.tags),
                    export_outcome=spec.export_outcome,
                )
                for spec in self.fleet.images
            }
            self._buckets = {bucket.name: bucket.put_allowed for bucket in self.fleet.buckets}
            self._readable = {bucket.name: bucket.read_allowed for bucket in self.fleet.buckets}
            self.tagging_allowed = self.fleet.tagging_allowed
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

    # -- the gateway's interface ------------------------------------------------------------------------

    def handle(self, call: ApiCall) -> ApiAnswer:
        if call.method != "GET":
            return ApiAnswer.error(
                405, "MethodNotAllowed", f"{call.action} is called with GET, not {call.method}"
            )
        try:
            if call.action == "ExportImage":
                return self.export_image(call.query)
            if call.action in ("TagResources", "UntagResources"):
                return self.change_tags(call.action, call.query)
            read = self.describe_images if call.action == "DescribeImages" else self.describe_tasks
            return ApiAnswer.ok(read(call.query))
        except _Invalid as invalid:
            return invalid.answer
        except TagRequestError as refused:
            return ApiAnswer.error(refused.status, refused.code, refused.message)

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
                raise _Invalid(400, f"MissingParameter.{name}", f"the parameter {name} is required")
        image_id, bucket, prefix = query["ImageId"], query["TOSBucket"], query["TOSPrefix"]
        if not _PREFIX.match(prefix):
            raise _Invalid(400, "InvalidTOSPrefix.Malformed", "the TOSPrefix must be 1-30 letters and digits")
        now = self._clock()
        with self._lock:
            image = self._images.get(image_id)
            if image is None:
                raise _Invalid(404, "InvalidImage.NotFound", f"the image {image_id} does not exist")
            if bucket not in self._buckets:
                raise _Invalid(404, "InvalidTOSBucket.NotFound", f"the TOS bucket {bucket} does not exist")
            if image.spec.visibility != "private" or not image.spec.exportable:
                raise _Invalid(
                    400,
                    "InvalidImageForExportImage.UnSupported",
                    f"the image {image_id} cannot be exported: only exportable custom images can",
                )
            status = image.status(now)
            if status != "available":
                raise _Invalid(
                    400,
                    "InvalidImageStatus",
                    f"the image {image_id} is {status}: only an available image can be exported",
                )
            if not self._buckets[bucket]:
                raise _Invalid(
                    400,
                    "InvalidTosPutObject.AccessDenied",
                    f"ECS is not allowed tos:PutObject on the bucket {bucket}",
                )
            if any(t.resource_id == image_id and t.progress(now)[0] in _ACTIVE for t in self._tasks):
                raise _Invalid(
                    412,
                    "OperationDenied.ResourceLocked",
                    f"the image {image_id} is locked by another operation in progress",
                )
            task = _Task(
                self._new_task_id(),
                "ExportImage",
                image_id,
                now,
                self.task_seconds,
                bucket=bucket,
                prefix=prefix,
                outcome=image.export_outcome,
            )
            self._tasks.append(task)
            self._exports[image_id] += 1
        return ApiAnswer.ok({"TaskId": task.task_id}, committed=True)

    def describe_images(self, query: Mapping[str, str]) -> dict[str, Any]:
        """Images matching every filter given, newest first, one page at a time (docs/facts.md §3)."""
        ids = set(_listed(query, "ImageIds"))
        statuses = set(_listed(query, "Status")) | (
            {query["ImageStatus"]} if query.get("ImageStatus") else set()
        )
        visibility = query.get("Visibility") or None
        if visibility not in (None, "public", "private", "shared"):
            raise _Invalid(400, "InvalidParameter", "Visibility must be public, private or shared")
        tag_filters = parse_tag_filters(query)
        size = _page_size(query, default=15)
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
                and tag_filter_matches(image.tags, tag_filters)
            ]
            ordered = sorted(images, key=lambda i: (-i.created_at.timestamp(), i.spec.id))
            if tag_filters:
                ordered = ordered[:TAG_SEARCH_LIMIT]
            page, token = _page(ordered, lambda i: (-i.created_at.timestamp(), i.spec.id), query, size)
            items = [image.to_api(now) for image in page]
        return {"Images": items, "NextToken": token, "TotalCount": len(ordered)}

    def describe_tasks(self, query: Mapping[str, str]) -> dict[str, Any]:
        """Tasks by task id and/or resource (image) id, newest first, one page at a time (docs/facts.md §3)."""
        task_ids = set(_listed(query, "TaskIds"))
        resources = set(_listed(query, "ResourceIds"))
        if query.get("ResourceId"):
            resources.add(query["ResourceId"])
        size = _page_size(query, default=20)
        now = self._clock()
        with self._lock:
            tasks = [
                task
                for task in self._tasks
                if (not task_ids or task.task_id in task_ids)
                and (not resources or task.resource_id in resources)
            ]
            ordered = sorted(tasks, key=lambda t: (-t.created_at.timestamp(), t.task_id))
            page, token = _page(ordered, lambda t: (-t.created_at.timestamp(), t.task_id), query, size)
            items = [task.to_api(now) for task in page]
        return {"Tasks": items, "NextToken": token}

    def change_tags(self, action: str, query: Mapping[str, str]) -> ApiAnswer:
        """TagResources (a key already there gets the new value) or UntagResources (an absent key is no
        error) on images, all or nothing: every image must exist, and no image may end up with more than 50
        tags. A role without the permission gets 403 ``AccessDenied`` before anything else is checked."""
        if not self.tagging_allowed:
            return ApiAnswer.error(
                403,
                "AccessDenied",
                f"the caller's role is not allowed ecs:{action} (emulator: tagging_allowed)",
            )
        update = parse_tag_resources(query) if action == "TagResources" else parse_untag_resources(query)
        if update.resource_type != "image":
            msg = f"the emulator holds images only; ResourceType {update.resource_type} has no resources here"
            raise _Invalid(404, "InvalidResourceId.NotFound", msg)
        with self._lock:
            if missing := [i for i in update.resource_ids if i not in self._images]:
                raise _Invalid(404, "InvalidImage.NotFound", f"the image {missing[0]} does not exist")
            for image_id in update.resource_ids:
                after = {**self._images[image_id].tags, **dict(update.tags)}
                if len(after) > MAX_TAGS_PER_RESOURCE:
                    msg = (
                        f"the image {image_id} would have {len(after)} tags; at most {MAX_TAGS_PER_RESOURCE}"
                    )
                    raise _Invalid(400, "QuotaExceeded.TagsPerResource", msg)
            for image_id in update.resource_ids:
                tags = self._images[image_id].tags
                tags.update(update.tags)
                for key in update.keys:
                    tags.pop(key, None)
        return ApiAnswer.ok({}, committed=True)

    def image_tags(self, image_id: str) -> dict[str, str]:
        """The tags the image carries now (a copy)."""
        with self._lock:
            return dict(self._images[image_id].tags)

    def set_export_outcome(self, image_id: str, outcome: ExportOutcome) -> None:
        """How the image's next exports end: ``succeeded``, ``failed`` or ``no_object`` (tasks already
        created keep theirs)."""
        if outcome not in ("succeeded", "failed", "no_object"):
            msg = f"outcome must be succeeded, failed or no_object, not {outcome!r}"
            raise ValueError(msg)
        with self._lock:
            if image_id not in self._images:
                msg = f"no image {image_id} in the fleet"
                raise KeyError(msg)
            self._images[image_id].export_outcome = outcome

    def exported_objects(self) -> dict[tuple[str, str], StoredObject]:
        """The objects export tasks have written so far, by (bucket, key): a task that Succeeded with the
        outcome ``succeeded`` wrote ``<prefix>_<ImageId>_system.qcow2`` when it ended, of the image's size."""
        now = self._clock()
        objects: dict[tuple[str, str], StoredObject] = {}
        with self._lock:
            for task in self._tasks:
                if not task.bucket or task.outcome != "succeeded":
                    continue
                status, _, end = task.progress(now)
                if status != "Succeeded" or end is None:
                    continue
                key = export_object_key(task.prefix, task.resource_id)
                size = self._images[task.resource_id].spec.size_gb * GIB
                earlier = objects.get((task.bucket, key))
                if earlier is None or earlier.written_at <= end:
                    objects[(task.bucket, key)] = StoredObject(task.bucket, key, size, end)
        return objects

    def object_storage(
        self, credentials: Credentials | Iterable[Credentials], *, region: str, clock: Callable[[], datetime]
    ) -> TosService:
        """The TOS side of this account: HeadObject on the objects its export tasks wrote."""
        return TosService(
            objects=self.exported_objects,
            bucket_access=self.bucket_access,
            credentials=credentials,
            region=region,
            clock=clock,
            seed=self._seed,
        )

    def bucket_access(self, bucket: str) -> bool | None:
        """Whether the caller's role may read the bucket's objects; None when there is no such bucket."""
        with self._lock:
            return self._readable.get(bucket)

    def _new_task_id(self) -> str:
        return "t-" + "".join(self._rng.choice(_ID_ALPHABET) for _ in range(20))


def _listed(query: Mapping[str, str], name: str) -> list[str]:
    """The values of ``Name.1``, ``Name.2``… in order; more than 100 is refused as the API does."""
    pattern = re.compile(rf"^{re.escape(name)}\.(\d+)$")
    numbered = sorted((int(m.group(1)), value) for key, value in query.items() if (m := pattern.match(key)))
    if len(numbered) > MAX_IDS:
        raise _Invalid(400, "InvalidParameter", f"{name}.N takes at most {MAX_IDS} values")
    return [value for _, value in numbered if value]


def _page_size(query: Mapping[str, str], *, default: int) -> int:
    text = query.get("MaxResults")
    if not text:
        return default
    try:
        size = int(text)
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_IDS:
        raise _Invalid(400, "InvalidParameter", f"MaxResults must be an integer from 1 to {MAX_IDS}")
    return size


def _page(
    ordered: list[_T], key: Callable[[_T], tuple[float, str]], query: Mapping[str, str], size: int
) -> tuple[list[_T], str]:
    """One page after the cursor in ``NextToken`` (the sort key of the last item seen), and the next cursor
    ("" on the last page). A cursor, not an offset: a task created between two pages shifts nothing."""
    after = _decode_token(query.get("NextToken") or "")
    rest = [item for item in ordered if after is None or key(item) > after]
    page = rest[:size]
    token = _encode_token(key(page[-1])) if len(rest) > size else ""
    return page, token


def _encode_token(cursor: tuple[float, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(cursor)).encode()).decode().rstrip("=")


def _decode_token(token: str) -> tuple[float, str] | None:
    if not token:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return float(value[0]), str(value[1])
    except (ValueError, TypeError, IndexError, KeyError, binascii.Error):
        raise _Invalid(400, "InvalidParameter", "the NextToken is not one this API returned") from None


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
        ``clock``, ``sleep``, ``monotonic`` and ``verbose`` are ``OpenApiEmulator``'s. ``tos`` is the TOS side on
        the same port (``TOS_ENDPOINT`` = ``endpoint``), accepting the same credentials."""
        credentials = credentials or Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)
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
        self.tos = self.ecs.object_storage(credentials, region=region, clock=clock)
        self.side_service = self.tos

    def export_tasks_by_image(self) -> dict[str, int]:
        """How many export tasks ExportImage created for each image (tasks from the fleet file not counted)."""
        return self.ecs.export_tasks_by_image()
