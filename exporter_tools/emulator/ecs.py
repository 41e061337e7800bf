"""The emulated ECS API: ``ExportImage``, ``DescribeImages``, ``DescribeTasks``, ``TagResources``,
``UntagResources``, ``ImportImage`` and ``DeleteImages`` (Version 2020-04-01), with a small TOS object store
(the exported files) on the same port.

Every answer comes from state, never from a script: an error of the ExportImage API's error table
(docs/facts.md §1) arises when the account holds what causes it (no such image or bucket, an image that is
not available or not exportable, a bucket ECS may not write to, an export already pending or running →
``OperationDenied.ResourceLocked``).
Export tasks go ``Pending`` → ``Running`` → ``Succeeded`` over ``task_seconds``, computed from their creation
time whenever they are looked at (no timers; ``exporter_tools.emulator.records``); a creating image becomes
available the same way. An export
ends as the image's ``export_outcome`` says (fleet file, or ``set_export_outcome``): ``succeeded`` writes the
object ``<prefix>_<ImageId>_system.qcow2`` to the task's bucket when the task Succeeds, and for an image
with data disks ``<prefix>_<ImageId>_data<N>.qcow2`` beside it for each (N from 1, in the order of the
image's ``Snapshots``; the real naming is not published, docs/facts.md §16), each a qcow2 file of its disk's
virtual size (``exporter_tools.emulator.qcow2_image``); ``failed`` makes the
task Fail halfway through (``Process`` stays where it was, ``EndAt`` set); ``no_object`` Succeeds without the
object. Tags live on the images (``exporter_tools.emulator.tags`` checks the requests); a fleet with
``tagging_allowed: false`` (or ``tagging_allowed = False`` on the service) answers 403 ``AccessDenied``, and
``refuse_tag`` makes one image refuse one tag value (a retag that keeps failing); ``remove_image`` takes an
image out of the account as a deletion would (its tasks and objects stay).

ImportImage (``exporter_tools.emulator.image_import``) makes a private image, ``creating`` while its
``ImportImage`` task runs over ``task_seconds`` like an export's, then ``available`` (Succeeded) or ``error``
(Failed: a file missing, unreadable or not qcow2, or as ``set_import_outcome`` says; ``imports()`` holds why);
it is refused 400 ``QuotaExceeded.Image`` once the region holds ``custom_image_quota`` private images.
DeleteImages deletes each image it can and answers an ``OperationDetails`` entry per id, with an ``Error`` for
one it cannot (``InvalidImage.NotFound``, ``OperationDenied.ImageIsExporting``, ``InvalidImageStatus``: the
documented per-image codes); ``deleted_images`` records the deletions.

Knobs for the files and the buckets (on ``EcsService``, and ``EcsEmulator`` passes them on):
``set_export_damage(image, damage, disk="system")`` spoils one disk's file (``system``, ``data1``…) of the
image's next exports until set to None, one kind per check the function makes
(``exporter_tools.emulator.qcow2_image``): ``truncated`` (the file ends before its last clusters),
``garbage`` (bad magic), ``wrong_virtual_size``, ``l2_past_end``, ``data_past_end``, ``dirty`` (v3 dirty bit),
``encrypted``, ``tiny`` (a sound file under 1 MiB: the system-object size rule), or ``missing_data_disk`` (that
data disk's file is not written). ``set_bucket_access(bucket, access)``: ``read-write``, ``read-only``
(PutObject and DeleteObject answer 403 ``AccessDenied``) or ``none`` (every TOS request does).
``set_tos_clock_offset(seconds)``: TOS's clock (its ``Date``, its objects' times, its signature check) runs
that far from the emulator's.

``EcsEmulator`` is the ECS service behind the local gateway (``exporter_tools.emulator.server``)::

    with EcsEmulator(fleet, credentials=Credentials("AK", "SK"), faults=Faults(error_rate=0.1), seed=1) as emu:
        emu.endpoint                   # "http://127.0.0.1:PORT": VOLCENGINE_ENDPOINT
        emu.export_tasks_by_image()    # {"image-…": 1, …}
        emu.tos.remove_object("demo-exports", "imgexport_image-…_system.qcow2")  # it vanishes
        emu.set_export_damage("image-…", "truncated")  # its next export's system file is cut short
        emu.set_bucket_access("demo-exports", "read-only")  # PutObject answers 403
        emu.set_tos_clock_offset(-3600)  # TOS's Date runs an hour behind
        emu.tos.set_lifecycle("demo-exports", [{"ID": "logs", …}])  # rules someone else put
        emu.set_import_outcome("https://demo-exports.tos-cn-beijing.volces.com/k.qcow2", "stuck")  # never ends
        emu.imports()                  # {"image-…": ImportRecord(…, status="Failed", error=ErrorDetail(…))}
        emu.deleted_images             # (DeletedImage("image-…", deleted_at, True), …)
        emu.stats()                    # requests by action and status, throttled, peak_rps, …
"""

from __future__ import annotations

import functools
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from exporter_tools.emulator.api import ApiAnswer, ApiCall, Faults
from exporter_tools.emulator.fleet import (
    EXPORT_DAMAGES,
    BucketAccess,
    ExportDamage,
    ExportOutcome,
    Fleet,
    FleetImage,
    ImportOutcome,
    demo_fleet,
)
from exporter_tools.emulator.image_deletion import deletion_refusal, operation_detail, parse_delete_images
from exporter_tools.emulator.image_import import (
    QUOTA_CODE,
    ImportRecord,
    ImportRequest,
    ImportRules,
    NewImport,
    import_records,
    parse_import_image,
    read_files,
    start_import,
)
from exporter_tools.emulator.object_store import ObjectStore, StoredObject
from exporter_tools.emulator.query import InvalidRequest, listed, page, page_size, tag_filters, tag_matches
from exporter_tools.emulator.records import (
    DeletedImage,
    ImageRecord,
    TaskRecord,
    disk_labels,
    export_writes,
    format_time,
)
from exporter_tools.emulator.server import OpenApiEmulator
from exporter_tools.emulator.tags import (
    TAG_POLICY_CODE,
    TagRefusal,
    apply_tag_update,
    parse_tag_resources,
    parse_untag_resources,
)
from exporter_tools.emulator.tos import BUCKET_ACCESS, TosService
from handler.adapters.signing import Credentials

__all__ = ["API_VERSION", "EcsEmulator", "EcsService", "Faults", "format_time"]

API_VERSION = "2020-04-01"
_PREFIX = re.compile(r"^[A-Za-z0-9]{1,30}$")
_ACTIVE = frozenset({"Pending", "Running"})
TAG_SEARCH_LIMIT = 1000  # DescribeImages with TagFilters finds at most this many images (docs/facts.md §3)
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


class EcsService:
    """The ECS actions over an in-memory account seeded from a ``Fleet``. Thread-safe."""

    service = "ecs"
    version = API_VERSION
    actions = frozenset(
        {
            "ExportImage",
            "DescribeImages",
            "DescribeTasks",
            "TagResources",
            "UntagResources",
            "ImportImage",
            "DeleteImages",
        }
    )

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
        self._images: dict[str, ImageRecord] = {}
        self._buckets: dict[str, bool] = {}
        self._access: dict[str, BucketAccess] = {}
        self._regions: dict[str, str] = {}  # a bucket's region, when it is not the emulator's
        self.tagging_allowed = fleet.tagging_allowed
        self._tasks: list[TaskRecord] = []
        self._tasks_of: dict[str, list[TaskRecord]] = {}  # by resource (image) id, for the lock check
        self._exports: Counter[str] = Counter()
        self._tag_refusals: list[TagRefusal] = []
        self.custom_image_quota = fleet.custom_image_quota
        self._imports: list[tuple[ImportRequest, TaskRecord]] = []
        self._import_rules = ImportRules()
        self._deleted: list[DeletedImage] = []
        self._rng = random.Random(seed)  # noqa: S311 - ids, not secrets
        self.objects = ObjectStore()  # the TOS buckets' objects, written as export tasks are created
        self.reset()

    def reset(self) -> None:
        """Back to the fleet as loaded, with times counted from now; created tasks are forgotten."""
        now = self._clock()
        with self._lock:
            self._rng = random.Random(self._seed)  # noqa: S311 - ids, not secrets
            self._images = {spec.id: ImageRecord.from_spec(spec, now) for spec in self.fleet.images}
            self._buckets = {bucket.name: bucket.put_allowed for bucket in self.fleet.buckets}
            self._access = {bucket.name: bucket.access for bucket in self.fleet.buckets}
            self._regions = {bucket.name: bucket.region for bucket in self.fleet.buckets if bucket.region}
            self.tagging_allowed = self.fleet.tagging_allowed
            self._tasks = [
                TaskRecord(
                    task_id=self._new_task_id(),
                    type=task.type,
                    resource_id=task.image_id,
                    created_at=now - timedelta(hours=task.created_hours_ago),
                    duration=self.task_seconds,
                    fixed_status=task.status,
                    bucket=task.bucket,
                    prefix=task.prefix,
                )
                for task in self.fleet.tasks
            ]
            self._tasks_of = {}
            self.objects.clear()
            for task in self._tasks:
                self._record(task)
            self._exports = Counter()
            self._tag_refusals = []
            self.custom_image_quota = self.fleet.custom_image_quota
            self._imports = []
            self._import_rules.clear()
            self._deleted = []

    def add_image(self, spec: FleetImage) -> None:
        """Put one more image in the account (or replace the one with its id), created ``created_hours_ago``
        before now; ``reset`` forgets it."""
        now = self._clock()
        with self._lock:
            self._images[spec.id] = ImageRecord.from_spec(spec, now)

    def remove_image(self, image_id: str) -> None:
        """Take the image out of the account, as if it had been deleted (tests: an export that outlived its
        source): DescribeImages no longer lists it, its tasks and exported objects stay; ``reset`` brings it
        back."""
        with self._lock:
            if self._images.pop(image_id, None) is None:
                msg = f"no image {image_id} in the fleet"
                raise KeyError(msg)

    # -- the gateway's interface ------------------------------------------------------------------------

    def handle(self, call: ApiCall) -> ApiAnswer:
        if call.method != "GET":
            return ApiAnswer.error(
                405, "MethodNotAllowed", f"{call.action} is called with GET, not {call.method}"
            )
        writes: dict[str, Callable[[Mapping[str, str]], ApiAnswer]] = {
            "ExportImage": self.export_image,
            "ImportImage": self.import_image,
            "DeleteImages": self.delete_images,
            "TagResources": functools.partial(self.change_tags, "TagResources"),
            "UntagResources": functools.partial(self.change_tags, "UntagResources"),
        }
        try:
            write = writes.get(call.action)
            if write is not None:
                return write(call.query)
            read = self.describe_images if call.action == "DescribeImages" else self.describe_tasks
            return ApiAnswer.ok(read(call.query))
        except InvalidRequest as invalid:
            return invalid.answer

    def stats(self) -> dict[str, Any]:
        """How many images and tasks the account holds, the export tasks created per image, and how many
        imports were started and images deleted."""
        with self._lock:
            return {
                "images": len(self._images),
                "tasks": len(self._tasks),
                "export_tasks_by_image": dict(sorted(self._exports.items())),
                "import_tasks": len(self._imports),
                "deleted_images": len(self._deleted),
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
            self._check_exportable(image_id, bucket, now)
            image = self._images[image_id]
            task = TaskRecord(
                self._new_task_id(),
                "ExportImage",
                image_id,
                now,
                self.task_seconds,
                bucket=bucket,
                prefix=prefix,
                outcome=image.export_outcome,
                damage=dict(image.export_damage),
            )
            self._tasks.append(task)
            self._record(task)
            self._exports[image_id] += 1
        return ApiAnswer.ok({"TaskId": task.task_id}, committed=True)

    def _check_exportable(self, image_id: str, bucket: str, now: datetime) -> None:
        """Raise the refusal the account's state calls for when ``image_id`` cannot be exported to ``bucket``
        now (docs/facts.md §1): the lock is held."""
        image = self._images.get(image_id)
        if image is None:
            raise InvalidRequest(404, "InvalidImage.NotFound", f"the image {image_id} does not exist")
        if bucket not in self._buckets:
            raise InvalidRequest(404, "InvalidTOSBucket.NotFound", f"the TOS bucket {bucket} does not exist")
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
        if any(t.progress(now)[0] in _ACTIVE for t in self._tasks_of.get(image_id, ())):
            raise InvalidRequest(
                412,
                "OperationDenied.ResourceLocked",
                f"the image {image_id} is locked by another operation in progress",
            )

    def import_image(self, query: Mapping[str, str]) -> ApiAnswer:
        """Make a private image and its ImportImage task, reading the files now (``image_import``), or refuse
        a bad request or one past the quota."""
        request = parse_import_image(query)
        now = self._clock()
        disks, failure = read_files(
            request,
            object_at=lambda bucket, key: self.objects.get(bucket, key, now),
            access_of=self.bucket_mode,
        )
        with self._lock:
            held = sum(image.spec.visibility == "private" for image in self._images.values())
            if held >= self.custom_image_quota:
                msg = (
                    f"the region already holds {held} custom images, its quota is {self.custom_image_quota} "
                    "(emulator: custom_image_quota)"
                )
                raise InvalidRequest(400, QUOTA_CODE, msg)
            outcome = self._import_rules.take(request.system) if failure is None else "failed"
            new = NewImport(self._new_image_id(), self._new_task_id(), now, self.task_seconds)
            image, task = start_import(request, disks, failure, outcome, new)
            self._images[new.image_id] = image
            self._tasks.append(task)
            self._record(task)
            self._imports.append((request, task))
        return ApiAnswer.ok({"ImageId": new.image_id}, committed=True)

    def delete_images(self, query: Mapping[str, str]) -> ApiAnswer:
        """Delete each image of ``ImageIds.N`` that can be, and answer one ``OperationDetails`` entry per id
        (``image_deletion``); ``deleted_images`` records each deletion."""
        ids, snapshots = parse_delete_images(query)
        now = self._clock()
        details: list[dict[str, object]] = []
        with self._lock:
            for image_id in ids:
                tasks = self._tasks_of.get(image_id, ())
                refusal = deletion_refusal(image_id, self._images.get(image_id), tasks, now)
                if refusal is None:
                    del self._images[image_id]
                    self._deleted.append(DeletedImage(image_id, now, snapshots))
                details.append(operation_detail(image_id, refusal))
        deleted = any("Error" not in detail for detail in details)
        return ApiAnswer.ok({"OperationDetails": details}, committed=deleted)

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
                and tag_matches(image.tags, wanted_tags)
            ]
            ordered = sorted(images, key=lambda i: (-i.created_at.timestamp(), i.spec.id))
            if wanted_tags:
                ordered = ordered[:TAG_SEARCH_LIMIT]
            shown, token = page(ordered, lambda i: (-i.created_at.timestamp(), i.spec.id), query, size)
            items = [image.to_api(now) for image in shown]
        return {"Images": items, "NextToken": token, "TotalCount": len(ordered)}

    def describe_tasks(self, query: Mapping[str, str]) -> dict[str, Any]:
        """Tasks by task id and/or resource (image) id, newest first, one page at a time (docs/facts.md §3).
        There is no filter on the task's Type: the SDK's ``DescribeTasksRequest`` has none."""
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

    def change_tags(self, action: str, query: Mapping[str, str]) -> ApiAnswer:
        """TagResources (a key already there gets the new value) or UntagResources (an absent key is no
        error) on images, all or nothing: every image must exist, no image may end up with more than 50
        tags, and no ``refuse_tag`` rule may refuse it. A role without the permission gets 403
        ``AccessDenied`` before anything else is checked."""
        if not self.tagging_allowed:
            return ApiAnswer.error(
                403,
                "AccessDenied",
                f"the caller's role is not allowed ecs:{action} (emulator: tagging_allowed)",
            )
        update = parse_tag_resources(query) if action == "TagResources" else parse_untag_resources(query)
        if update.resource_type != "image":
            msg = f"the emulator holds images only; ResourceType {update.resource_type} has no resources here"
            raise InvalidRequest(404, "InvalidResourceId.NotFound", msg)
        with self._lock:
            tags_of = {image_id: image.tags for image_id, image in self._images.items()}
            apply_tag_update(update, tags_of, self._tag_refusals)
        return ApiAnswer.ok({}, committed=True)

    def refuse_tag(
        self, image_id: str, key: str, value: str, *, status: int = 400, code: str = TAG_POLICY_CODE
    ) -> None:
        """From now on, refuse (whole, with ``status`` and ``code``) every TagResources that sets ``key`` to
        ``value`` on ``image_id``, as a tag policy would; any other tag still lands. ``reset`` forgets it."""
        refusal = TagRefusal(image_id, key, value, status=status, code=code)
        with self._lock:
            self._tag_refusals.append(refusal)

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

    def set_export_damage(self, image_id: str, damage: ExportDamage | None, *, disk: str = "system") -> None:
        """How the file of ``disk`` (``system``, or ``data1``, ``data2``… in snapshot order) of the image's next
        exports is spoilt, until set again (None: sound); tasks already created keep theirs. Each kind trips one
        check the function makes (``exporter_tools.emulator.qcow2_image``): ``truncated``, ``garbage``,
        ``wrong_virtual_size``, ``l2_past_end``, ``data_past_end``, ``dirty``, ``encrypted``, ``tiny`` (under
        1 MiB), or ``missing_data_disk`` (a data disk's file is not written)."""
        if damage is not None and damage not in EXPORT_DAMAGES:
            msg = f"damage must be one of {', '.join(EXPORT_DAMAGES)} or None, not {damage!r}"
            raise ValueError(msg)
        with self._lock:
            if image_id not in self._images:
                msg = f"no image {image_id} in the fleet"
                raise KeyError(msg)
            image = self._images[image_id]
            labels = [label for label, _ in disk_labels(image.spec)]
            if disk not in labels:
                msg = f"the image {image_id} has the disks {', '.join(labels)}, not {disk!r}"
                raise ValueError(msg)
            if damage == "missing_data_disk" and disk == "system":
                msg = "missing_data_disk spoils a data disk: name one (disk='data1')"
                raise ValueError(msg)
            if damage is None:
                image.export_damage.pop(disk, None)
            else:
                image.export_damage[disk] = damage

    def set_import_outcome(self, url: str, outcome: ImportOutcome, *, times: int | None = None) -> None:
        """How the next ``times`` imports (None: every one, from now on) whose system file is ``url`` end when
        their files are sound: ``failed`` (the task Fails halfway with ``InternalError``), ``stuck`` (it stays
        Running for ever) or ``succeeded`` (with no ``times``: forget the rule). Any host names the same file:
        the bucket and the key count. ``reset`` forgets the rules."""
        with self._lock:
            self._import_rules.set(url, outcome, times)

    def imports(self) -> dict[str, ImportRecord]:
        """Every ImportImage taken since the start (or the last reset), by new image id in the order they came:
        the request, the task's status and ``Process`` now, and why it Failed once it has (the API's task
        carries no error, so this is where a test reads it)."""
        now = self._clock()
        with self._lock:
            return import_records(self._imports, now)

    @property
    def deleted_images(self) -> tuple[DeletedImage, ...]:
        """Every image DeleteImages deleted since the start (or the last reset), in order."""
        with self._lock:
            return tuple(self._deleted)

    def exported_objects(self) -> dict[tuple[str, str], StoredObject]:
        """The objects export tasks have written so far, by (bucket, key): a task that Succeeded with the
        outcome ``succeeded`` wrote ``<prefix>_<ImageId>_system.qcow2`` when it ended, of the image's size."""
        return self.objects.exported(self._clock())

    def object_storage(
        self,
        credentials_for: Callable[[str], Credentials | None],
        *,
        region: str,
        clock: Callable[[], datetime],
    ) -> TosService:
        """The TOS side of this account: the objects its export tasks wrote and those put through it, signed
        with the key pairs ``credentials_for`` accepts (the gateway's ``accepted_key``)."""
        return TosService(
            store=self.objects,
            bucket_access=self.bucket_mode,
            bucket_region=self.bucket_region,
            credentials_for=credentials_for,
            region=region,
            clock=clock,
            seed=self._seed,
        )

    def bucket_access(self, bucket: str) -> bool | None:
        """Whether the caller's role may read the bucket's objects; None when there is no such bucket."""
        mode = self.bucket_mode(bucket)
        return None if mode is None else mode != "none"

    def bucket_mode(self, bucket: str) -> BucketAccess | None:
        """What the caller's role may do in the bucket (``read-write``, ``read-only``, ``none``); None when
        there is no such bucket."""
        with self._lock:
            return self._access.get(bucket)

    def bucket_region(self, bucket: str) -> str | None:
        """The bucket's region when the fleet puts it apart from the emulator's (None: the emulator's)."""
        with self._lock:
            return self._regions.get(bucket)

    def set_bucket_access(self, bucket: str, access: BucketAccess) -> None:
        """From now on the caller's role may do ``access`` in the bucket: ``read-write``, ``read-only``
        (PutObject and DeleteObject answer 403 ``AccessDenied``) or ``none`` (every TOS request does). ECS's
        own right to export there (``put_allowed``) is apart. ``reset`` forgets it."""
        if access not in BUCKET_ACCESS:
            msg = f"access must be one of {', '.join(BUCKET_ACCESS)}, not {access!r}"
            raise ValueError(msg)
        with self._lock:
            if bucket not in self._access:
                msg = f"no bucket {bucket} in the fleet"
                raise KeyError(msg)
            self._access[bucket] = access

    def _record(self, task: TaskRecord) -> None:
        """Index ``task`` by its image and put the objects it writes in the store, due when it ends: the lock
        is held."""
        self._tasks_of.setdefault(task.resource_id, []).append(task)
        image = self._images.get(task.resource_id)
        if image is not None:
            for found in export_writes(task, image):
                self.objects.write(found, exported=True)

    def _new_task_id(self) -> str:
        return "t-" + "".join(self._rng.choice(_ID_ALPHABET) for _ in range(20))

    def _new_image_id(self) -> str:
        """A fresh ``image-`` and 20 lowercase letters or digits, as ECS writes one: the lock is held."""
        while True:
            image_id = "image-" + "".join(self._rng.choice(_ID_ALPHABET) for _ in range(20))
            if image_id not in self._images:
                return image_id


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
        port: int | None = 0,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        verbose: bool = False,
    ) -> None:
        """``fleet`` defaults to the demo fleet and ``credentials`` to the emulator's fake key pair
        (``AKLTemulator`` / ``emulator-secret-key``). ``seed`` makes the faults and the task ids reproducible.
        ``clock``, ``sleep``, ``monotonic`` and ``verbose`` are ``OpenApiEmulator``'s. ``tos`` is the TOS side on
        the same port (``TOS_ENDPOINT`` = ``endpoint``), accepting the key pairs the gateway accepts."""
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
        self.tos = self.ecs.object_storage(self.accepted_key, region=region, clock=clock)
        self.side_service = self.tos

    def export_tasks_by_image(self) -> dict[str, int]:
        """How many export tasks ExportImage created for each image (tasks from the fleet file not counted)."""
        return self.ecs.export_tasks_by_image()

    def set_export_outcome(self, image_id: str, outcome: ExportOutcome) -> None:
        """``EcsService.set_export_outcome``: how the image's next exports end."""
        self.ecs.set_export_outcome(image_id, outcome)

    def set_export_damage(self, image_id: str, damage: ExportDamage | None, *, disk: str = "system") -> None:
        """``EcsService.set_export_damage``: how a disk's file of the image's next exports is spoilt."""
        self.ecs.set_export_damage(image_id, damage, disk=disk)

    def set_bucket_access(self, bucket: str, access: BucketAccess) -> None:
        """``EcsService.set_bucket_access``: ``read-write``, ``read-only`` or ``none`` for the caller's role."""
        self.ecs.set_bucket_access(bucket, access)

    def set_import_outcome(self, url: str, outcome: ImportOutcome, *, times: int | None = None) -> None:
        """``EcsService.set_import_outcome``: how the next imports of the system file ``url`` end."""
        self.ecs.set_import_outcome(url, outcome, times=times)

    def imports(self) -> dict[str, ImportRecord]:
        """``EcsService.imports``: every ImportImage taken, by new image id, with its status and error now."""
        return self.ecs.imports()

    @property
    def deleted_images(self) -> tuple[DeletedImage, ...]:
        """``EcsService.deleted_images``: every image DeleteImages deleted, in order."""
        return self.ecs.deleted_images

    def set_tos_clock_offset(self, seconds: float) -> None:
        """From now on TOS's clock runs ``seconds`` ahead of the emulator's (negative: behind): its ``Date``,
        its objects' times and the time its signature check holds requests to (``TosService.clock_offset``)."""
        self.tos.clock_offset = seconds
