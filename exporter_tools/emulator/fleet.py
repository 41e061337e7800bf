"""What the ECS emulator starts with: images, TOS buckets and earlier tasks, read from a JSON fleet file.

Times are relative (``created_hours_ago``) so that a fleet file stays meaningful whenever it is loaded: a
scan's lookback window sees the same images today as on the day the file was written. A fleet file::

    {
      "images": [
        {"id": "image-ybqi99s7yq8rx7mnk44b", "name": "web-20240601", "created_hours_ago": 2,
         "tags": {"env": "prod"}},
        {"id": "image-cr8t1ng5w7e9r1t3y5u7", "status": "creating", "ready_after_seconds": 30},
        {"id": "image-pub1ic0ubuntu2204x64", "visibility": "public"},
        {"id": "image-n0exp0rt0licensed01", "exportable": false},
        {"id": "image-fa11s0000000000001", "export_outcome": "failed"}
      ],
      "buckets": [{"name": "demo-exports"}, {"name": "locked-bucket", "put_allowed": false},
                  {"name": "private-bucket", "read_allowed": false},
                  {"name": "far-bucket", "region": "cn-shanghai"}],
      "tasks": [{"image_id": "image-ybqi99s7yq8rx7mnk44b", "status": "Succeeded", "created_hours_ago": 30},
                {"image_id": "image-ybqi99s7yq8rx7mnk44b", "status": "Succeeded", "bucket": "demo-exports",
                 "prefix": "imgexport"}],
      "tagging_allowed": true
    }

An image may have data disks (``"data_disks": [100, 200]``, sizes in GiB, in snapshot order), and say its
``architecture`` (amd64, arm64), ``boot_mode`` (BIOS, UEFI), ``platform_version``, ``os_name`` and
``description``; DescribeImages reports the disks as ``Snapshots`` (docs/facts.md §16).
``export_outcome`` says how an export of the image ends: ``succeeded`` (the task Succeeds and the object
appears in TOS), ``failed`` (the task Fails) or ``no_object`` (the task Succeeds, no object appears).
A task with a ``bucket`` (and ``prefix``) is an earlier export to that destination: one that Succeeded wrote
its object ``<prefix>_<ImageId>_system.qcow2`` there, so the fleet can hold exports that already ended, ready
to be followed up. ``tagging_allowed: false`` is a role without ``ecs:TagResources`` / ``ecs:UntagResources`` (403).
``custom_image_quota`` (default 50, docs/facts.md §14) is how many private images the region may hold:
ImportImage is refused once it holds that many (the images of the fleet itself may number more).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from exporter_tools.emulator.qcow2_image import DAMAGES, Damage

__all__ = [
    "DEMO_FLEET_PATH",
    "Fleet",
    "FleetBucket",
    "FleetImage",
    "FleetTask",
    "ImportOutcome",
    "TaskOutcome",
    "demo_fleet",
    "finished_exports_fleet",
    "follow_up_fleet",
    "load_fleet",
    "new_images_fleet",
]

DEMO_FLEET_PATH = Path(__file__).resolve().parent / "demo_fleet.json"

ImageStatus = Literal["available", "creating", "error"]
Visibility = Literal["private", "public", "shared"]
TaskType = Literal["ExportImage", "CopyImage", "ImportImage", "CreateImage", "PreheatImage"]
TaskStatus = Literal["Pending", "Running", "Succeeded", "Failed"]
ExportOutcome = Literal["succeeded", "failed", "no_object"]
# How an import ends when its files are sound (exporter_tools.emulator.image_import): ``stuck`` never ends.
ImportOutcome = Literal["succeeded", "failed", "stuck"]
TaskOutcome = ExportOutcome | Literal["stuck"]  # what a task record follows (records.TaskRecord.progress)
# How an export's file of one disk is spoilt (exporter_tools.emulator.qcow2_image), or left unwritten.
ExportDamage = Damage | Literal["missing_data_disk"]
EXPORT_DAMAGES: tuple[str, ...] = (*DAMAGES, "missing_data_disk")
BucketAccess = Literal["read-write", "read-only", "none"]  # what the caller's role may do in a bucket


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FleetImage(_Strict):
    """One custom (or public, or shared) image. ``exportable: false`` makes ExportImage refuse it."""

    id: Annotated[str, Field(pattern=r"^image-[a-z0-9]{1,64}$")]
    name: str = ""
    status: ImageStatus = "available"
    visibility: Visibility = "private"
    created_hours_ago: Annotated[float, Field(ge=0)] = 1.0
    tags: dict[str, str] = Field(default_factory=dict)
    exportable: bool = True
    # A creating image becomes available this many seconds after the emulator starts; None: never.
    ready_after_seconds: Annotated[float | None, Field(ge=0)] = None
    os_type: Literal["Linux", "Windows"] = "Linux"
    platform: str = "Ubuntu"
    size_gb: Annotated[int, Field(ge=1)] = 40
    # The data disks of a whole-machine image, sizes in GiB, in snapshot order: an export writes a file for each.
    data_disks: tuple[Annotated[int, Field(ge=1)], ...] = ()
    architecture: Literal["amd64", "arm64"] = "amd64"
    boot_mode: Literal["BIOS", "UEFI"] = "BIOS"
    platform_version: str = "22.04"
    os_name: str = ""  # "" → "<platform> <platform_version> 64 bit"
    description: str = ""
    project_name: str = "default"
    export_outcome: ExportOutcome = "succeeded"


class FleetBucket(_Strict):
    """A TOS bucket; ``put_allowed: false`` is a bucket ECS may not write to (no tos:PutObject);
    ``read_allowed: false`` one whose objects the caller's role may not read (every TOS request answers 403);
    ``write_allowed: false`` one where the caller's role may read but not write (PutObject and DeleteObject
    answer 403). ``region``: where the bucket is, as HeadBucket answers it (None: the emulator's region)."""

    name: Annotated[str, Field(min_length=3, max_length=63)]
    region: Annotated[str | None, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-?\d*$")] = None
    put_allowed: bool = True
    read_allowed: bool = True
    write_allowed: bool = True

    @property
    def access(self) -> BucketAccess:
        """What the caller's role may do in the bucket."""
        if not self.read_allowed:
            return "none"
        return "read-write" if self.write_allowed else "read-only"


class FleetTask(_Strict):
    """A task that existed before the emulator started; its status stays as given. An ExportImage task may
    name its destination (``bucket`` and ``prefix``): if it Succeeded, its object is in that bucket."""

    image_id: str
    type: TaskType = "ExportImage"
    status: TaskStatus = "Succeeded"
    created_hours_ago: Annotated[float, Field(ge=0)] = 1.0
    bucket: str = ""
    prefix: Annotated[str, Field(pattern=r"^([A-Za-z0-9]{1,30})?$")] = ""

    @model_validator(mode="after")
    def _destination_of_an_export(self) -> FleetTask:
        if (self.bucket or self.prefix) and (self.type != "ExportImage" or not (self.bucket and self.prefix)):
            msg = "only an ExportImage task has a destination, and it needs both bucket and prefix"
            raise ValueError(msg)
        return self


class Fleet(_Strict):
    """Everything the emulated account holds when the emulator starts."""

    images: tuple[FleetImage, ...] = ()
    buckets: tuple[FleetBucket, ...] = ()
    tasks: tuple[FleetTask, ...] = ()
    tagging_allowed: bool = True  # the caller's role has ecs:TagResources and ecs:UntagResources
    # How many custom (private) images the region may hold before ImportImage is refused (docs/facts.md §14).
    custom_image_quota: Annotated[int, Field(ge=0)] = 50


def load_fleet(path: str | Path) -> Fleet:
    """Read and validate a fleet file; a ``ValueError`` names the file and the first field that is wrong."""
    source = Path(path)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
        return Fleet.model_validate(data)
    except OSError as exc:
        msg = f"{source}: cannot read the fleet file: {exc.strerror}"
        raise ValueError(msg) from None
    except json.JSONDecodeError as exc:
        msg = f"{source}: not JSON: {exc.msg} (line {exc.lineno})"
        raise ValueError(msg) from None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        msg = f"{source}: {where}: {first['msg']}"
        raise ValueError(msg) from None


def demo_fleet() -> Fleet:
    """The fleet ``make demo`` and the end-to-end tests use (``demo_fleet.json`` beside this module)."""
    return load_fleet(DEMO_FLEET_PATH)


def new_images_fleet(
    count: int,
    *,
    hours_ago: float = 1.0,
    bucket: str = "demo-exports",
    size_gb: int = 40,
    data_disk_every: int = 0,
) -> Fleet:
    """``count`` new private available images (``image-new0000…``) of ``size_gb`` and one writable bucket;
    with ``data_disk_every`` N, every N-th image (the first included) has one data disk of the same size."""
    images = tuple(
        FleetImage(
            id=f"image-new{n:04d}",
            name=f"build-{n:04d}",
            created_hours_ago=hours_ago,
            size_gb=size_gb,
            data_disks=(size_gb,) if data_disk_every and n % data_disk_every == 0 else (),
        )
        for n in range(count)
    )
    return Fleet(images=images, buckets=(FleetBucket(name=bucket),))


def finished_exports_fleet(
    count: int,
    *,
    bucket: str = "demo-exports",
    prefix: str = "imgexport",
    size_gb: int = 40,
    data_disk_every: int = 0,
) -> Fleet:
    """``count`` images (``image-fin00000…``, as ``new_images_fleet`` makes them) whose exports to
    ``tos://bucket/prefix`` started an hour ago and Succeeded, their files written, each image still tagged
    ``exporting`` as the function tags it: a fleet ready for one large follow-up, without starting each
    export first."""
    dest = {"image-exporter:state": "exporting", "image-exporter:dest": f"tos://{bucket}/{prefix}"}
    images = tuple(
        image.model_copy(update={"id": f"image-fin{n:05d}", "tags": dest, "created_hours_ago": 2.0})
        for n, image in enumerate(
            new_images_fleet(count, size_gb=size_gb, data_disk_every=data_disk_every).images
        )
    )
    tasks = tuple(
        FleetTask(image_id=image.id, status="Succeeded", created_hours_ago=1.0, bucket=bucket, prefix=prefix)
        for image in images
    )
    return Fleet(images=images, buckets=(FleetBucket(name=bucket),), tasks=tasks)


def follow_up_fleet(*, hours_ago: float = 1.0, bucket: str = "demo-exports") -> Fleet:
    """Four new images whose exports end each way the follow-up tells apart: two succeed (40 and 20 GiB
    objects), one fails, one succeeds without an object; and one writable bucket."""
    outcomes: tuple[tuple[str, int, ExportOutcome], ...] = (
        ("image-fo110w0ok40", 40, "succeeded"),
        ("image-fo110w0ok20", 20, "succeeded"),
        ("image-fo110w0fai1", 40, "failed"),
        ("image-fo110w0n0obj", 30, "no_object"),
    )
    images = tuple(
        FleetImage(
            id=image_id,
            name=image_id.removeprefix("image-"),
            created_hours_ago=hours_ago,
            size_gb=size,
            export_outcome=outcome,
        )
        for image_id, size, outcome in outcomes
    )
    return Fleet(images=images, buckets=(FleetBucket(name=bucket),))
