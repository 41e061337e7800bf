"""The emulated ECS account's records: its images and tasks, whose states follow from the moment they are
looked at (no timers), and the objects the export tasks wrote. ``ecs`` holds them under its lock.

A task (export or import) goes ``Pending`` (the first fifth of its time) → ``Running`` → ``Succeeded``; with
the outcome ``failed`` it Fails halfway through (``Process`` stays where it was, ``EndAt`` set), with
``stuck`` it stays ``Running`` at halfway for ever. An export task that Succeeds with the outcome
``succeeded`` writes ``<prefix>_<ImageId>_system.qcow2`` to its bucket as it ends, and
``<prefix>_<ImageId>_data<N>.qcow2`` for each data disk (N from 1, in snapshot order). An imported image is
``creating`` while its import task runs, then ``available`` (Succeeded) or ``error`` (Failed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from exporter_tools.emulator.api import CHINA_STANDARD_TIME
from exporter_tools.emulator.fleet import ExportDamage, ExportOutcome, FleetImage, TaskOutcome
from exporter_tools.emulator.object_store import StoredObject
from exporter_tools.emulator.qcow2_image import qcow2_layout
from exporter_tools.emulator.tos import data_disk_object_key, export_object_key

__all__ = [
    "FAILED_AT",
    "GIB",
    "PENDING_SHARE",
    "DeletedImage",
    "ErrorDetail",
    "ImageRecord",
    "TaskRecord",
    "disk_labels",
    "disks_of",
    "export_writes",
    "format_time",
    "snapshot_id",
]

PENDING_SHARE = 0.2  # the first fifth of an export task's time is Pending, the rest Running
FAILED_AT = 0.5  # a failing task fails halfway through its time (a stuck one stops there)
GIB = 1 << 30


def disks_of(spec: FleetImage) -> list[tuple[str, int]]:
    """The image's disks in snapshot order, as (VolumeKind, size in GiB): the system disk, then each data disk."""
    return [("system", spec.size_gb), *(("data", size) for size in spec.data_disks)]


def disk_labels(spec: FleetImage) -> list[tuple[str, int]]:
    """The image's disks in snapshot order, as (label, size in GiB): ``system``, then ``data1``, ``data2``…"""
    return [("system", spec.size_gb), *((f"data{n}", size) for n, size in enumerate(spec.data_disks, 1))]


def snapshot_id(image_id: str, number: int) -> str:
    """A stable id for the image's snapshot ``number`` (0 is the system disk's), shaped as ECS writes one."""
    digest = hashlib.sha256(f"{image_id}/{number}".encode()).hexdigest()
    return "snap-" + digest[:20]


def format_time(moment: datetime) -> str:
    """A time as the API writes it: ISO 8601 to the second, in UTC+8 (``2024-06-01T16:15:42+08:00``)."""
    return moment.astimezone(CHINA_STANDARD_TIME).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class DeletedImage:
    """An image DeleteImages deleted: which, when, and whether its snapshots were to go with it."""

    image_id: str
    deleted_at: datetime
    delete_binded_snapshots: bool


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """An error code and message: why a task Failed, or why DeleteImages left one image. A task's is the
    emulator's own record: DescribeTasks' task carries no error (docs/facts.md §3; the SDK's
    ``TaskForDescribeTasksOutput`` has no such field), so tests read it from the emulator."""

    code: str
    message: str


@dataclass(slots=True)
class ImageRecord:
    """An image of the account, with its tags now and how its next exports end. An imported image follows its
    import task, and reports the disks the import read (``disks_read``, when the spec's would not say it)."""

    spec: FleetImage
    created_at: datetime
    ready_at: datetime | None  # when a creating image becomes available; None: never
    tags: dict[str, str] = field(default_factory=dict)
    export_outcome: ExportOutcome = "succeeded"
    export_damage: dict[str, ExportDamage] = field(default_factory=dict)  # by disk: "system", "data1"…
    import_task: TaskRecord | None = None  # the ImportImage task that makes this image
    disks_read: tuple[tuple[str, int], ...] | None = None  # (VolumeKind, GiB; 0: unread); None: the spec's

    @classmethod
    def from_spec(cls, spec: FleetImage, now: datetime) -> ImageRecord:
        """The image as the fleet describes it, created ``created_hours_ago`` before ``now``."""
        ready = spec.ready_after_seconds
        return cls(
            spec,
            created_at=now - timedelta(hours=spec.created_hours_ago),
            ready_at=now + timedelta(seconds=ready)
            if spec.status == "creating" and ready is not None
            else None,
            tags=dict(spec.tags),
            export_outcome=spec.export_outcome,
        )

    def status(self, now: datetime) -> str:
        if self.import_task is not None:
            state = self.import_task.progress(now)[0]
            return {"Succeeded": "available", "Failed": "error"}.get(state, "creating")
        if self.spec.status == "creating" and self.ready_at is not None and now >= self.ready_at:
            return "available"
        return self.spec.status

    def updated_at(self, now: datetime) -> datetime:
        """When the image last changed: when it became available (or its import ended), else its creation."""
        if self.import_task is not None:
            end = self.import_task.progress(now)[2]
            return end if end is not None else self.created_at
        return self.ready_at if self.ready_at is not None and now >= self.ready_at else self.created_at

    def to_api(self, now: datetime) -> dict[str, Any]:
        spec = self.spec
        disks = self.disks_read if self.disks_read is not None else tuple(disks_of(spec))
        return {
            "ImageId": spec.id,
            "ImageName": spec.name or spec.id,
            "Description": spec.description,
            "Status": self.status(now),
            "Visibility": spec.visibility,
            "CreatedAt": format_time(self.created_at),
            "UpdatedAt": format_time(self.updated_at(now)),
            "Size": disks[0][1],
            "OsType": spec.os_type,
            "OsName": spec.os_name or f"{spec.platform} {spec.platform_version} 64 bit",
            "Platform": spec.platform,
            "PlatformVersion": spec.platform_version,
            "Architecture": spec.architecture,
            "BootMode": spec.boot_mode,
            "Snapshots": [
                {"SnapshotId": snapshot_id(spec.id, number), "Size": size, "VolumeKind": kind}
                for number, (kind, size) in enumerate(disks)
            ],
            "ProjectName": spec.project_name,
            "Tags": [{"Key": key, "Value": value} for key, value in self.tags.items()],
        }


@dataclass(slots=True)
class TaskRecord:
    """A task of the account; an ExportImage task knows its destination and how it ends, a failing task why
    (``error``)."""

    task_id: str
    type: str
    resource_id: str
    created_at: datetime
    duration: float  # seconds from Pending to Succeeded
    fixed_status: str | None = None  # a task from the fleet file keeps its status
    bucket: str = ""  # an ExportImage task's destination
    prefix: str = ""
    outcome: TaskOutcome = "succeeded"
    damage: Mapping[str, ExportDamage] = field(default_factory=dict)  # how its files are spoilt, by disk
    error: ErrorDetail | None = None  # why it Fails (outcome ``failed``), when the emulator knows

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
        if self.outcome == "stuck" and elapsed >= FAILED_AT * self.duration:
            return "Running", int(100 * FAILED_AT), None
        if self.duration <= 0 or elapsed >= self.duration:
            return "Succeeded", 100, self.created_at + timedelta(seconds=max(self.duration, 0))
        if elapsed < PENDING_SHARE * self.duration:
            return "Pending", 0, None
        return "Running", min(99, int(100 * elapsed / self.duration)), None

    def to_api(self, now: datetime) -> dict[str, Any]:
        status, process, end = self.progress(now)
        moving = self.duration * (FAILED_AT if self.outcome == "stuck" else 1.0)  # how long it changes
        return {
            "Id": self.task_id,
            "Type": self.type,
            "Status": status,
            "Process": process,
            "ResourceId": self.resource_id,
            "CreatedAt": format_time(self.created_at),
            "UpdatedAt": format_time(end or min(now, self.created_at + timedelta(seconds=moving))),
            "EndAt": format_time(end) if end is not None else "",  # "" while the task runs, as the API says
        }


def export_writes(task: TaskRecord, image: ImageRecord) -> list[StoredObject]:
    """The objects an export task writes, stamped with the moment it ends (known when it is created): none
    unless it has a destination and Succeeds with the outcome ``succeeded``; each a qcow2 file of its image's
    virtual size (``exporter_tools.emulator.qcow2_image``)."""
    if not task.bucket or task.outcome != "succeeded":
        return []
    status, _, end = task.progress(task.created_at + timedelta(seconds=max(task.duration, 0)))
    if status != "Succeeded" or end is None:
        return []
    image_id = task.resource_id
    written: list[StoredObject] = []
    for number, (label, size) in enumerate(disk_labels(image.spec)):
        damage = task.damage.get(label)
        if damage == "missing_data_disk":
            continue
        key = (
            data_disk_object_key(task.prefix, image_id, number)
            if number
            else export_object_key(task.prefix, image_id)
        )
        written.append(StoredObject(task.bucket, key, qcow2_layout(size * GIB, damage), end))
    return written
