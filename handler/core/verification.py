"""Checking a finished export before it counts as ``exported``, and writing its manifest (docs/contract.md,
"The export's objects, its verification and its manifest").

:func:`check_export` takes one export whose task Succeeded (or is no longer listed) through these steps:

1. **Its objects**: every key under ``<prefix>_<ImageId>_`` ending in ``.qcow2`` (ListObjectsV2, every
   page); ``<prefix>_<ImageId>_system.qcow2`` is the system disk and must be there, any other is a data disk.
   A data disk DescribeImages lists without a file is a note, never a failure (docs/facts.md §16).
2. **The check** ``EXPORT_VERIFY`` asks for: ``structure`` reads each object's qcow2 structure with ranged
   GETs (``handler.core.qcow2``; at most 64 MiB an object), the system object's virtual size against the
   image's ``Size``; ``head`` trusts what the listing shows (the objects exist, the system one is not
   implausibly small); ``off`` trusts the task and reads nothing.
3. **The manifest** (PutObject), only once the check passed: the restore kit, and the record retention and
   restore read.

The answer is one :data:`ExportCheck` record; the follow-up (``handler.core.follow_up_rules.decide_follow_up``) turns
it into an outcome. A step stopped by a failure (TOS down, a refused read or write, the budget) is
:class:`Stopped`: the export itself may well be fine, and it stays in flight.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from handler.core.apis import ObjectStore
from handler.core.checks import STRUCTURE, Corrupt, ExportCheck, Missing, Stopped, Verified, Verify
from handler.core.qcow2 import DEFAULT_MAX_READ_BYTES, check_structure
from handler.errors import ExporterError
from handler.models.api import Image, Task
from handler.models.manifest import (
    Disk,
    Manifest,
    ManifestExport,
    ManifestObject,
    ManifestVerification,
    VerifyLevel,
    manifest_image,
    manifest_key,
)
from handler.models.objects import ListedObject, ObjectListing, ObjectUnreadable

__all__ = [
    "MIN_SYSTEM_OBJECT_BYTES",
    "STRUCTURE",
    "Corrupt",
    "ExportCheck",
    "Missing",
    "ObjectRanges",
    "Stopped",
    "Verified",
    "Verify",
    "check_export",
    "export_prefix",
    "shared_listing",
    "system_key",
]

_log = structlog.get_logger("handler.verification")

# A system disk's qcow2 file is never this small (its header, tables and a bootable file system alone are
# larger): a smaller object is a broken upload, whatever its task said.
MIN_SYSTEM_OBJECT_BYTES = 1024 * 1024
GIB = 1024**3
QCOW2_SUFFIX = ".qcow2"
MANIFEST_TYPE = "application/json"


def export_prefix(prefix: str, image_id: str) -> str:
    """The key prefix every object of an image's export starts with: ``<prefix>_<ImageId>_``."""
    return f"{prefix}_{image_id}_"


def system_key(prefix: str, image_id: str) -> str:
    """The system disk's object: ``<prefix>_<ImageId>_system.qcow2``."""
    return f"{export_prefix(prefix, image_id)}system{QCOW2_SUFFIX}"


def check_export(
    store: ObjectStore,
    image: Image,
    task: Task | None,
    *,
    bucket: str,
    prefix: str,
    region: str,
    level: VerifyLevel,
    deadline: float,
    now: Callable[[], datetime],
    max_read_bytes: int = DEFAULT_MAX_READ_BYTES,
    listed: ObjectListing | None = None,
) -> ExportCheck:
    """The export's objects, checked at ``level``, and its manifest written; see the module's steps.
    ``listed``: a listing of the bucket that may already hold the export's objects (several exports' checks
    share one: ``shared_listing``); where it does not cover them, they are listed here."""
    return _Check(
        store, image, task, bucket, prefix, region, level, deadline, now, max_read_bytes, listed
    ).run()


def shared_listing(
    store: ObjectStore, bucket: str, prefix: str, exports: int, *, deadline: float
) -> ObjectListing | None:
    """One listing of every object under ``<prefix>_`` for ``exports`` checks in the same destination, read
    to at most ``exports`` pages, so that it never costs more requests than listing each export would; the
    checks whose objects lie past where it stopped list their own (``ObjectListing.covers``). None when it
    would not pay (one export) or could not be read (each check then lists, and reports what it finds)."""
    if exports < 2:
        return None
    try:
        listing = store.list_objects(bucket, f"{prefix}_", deadline=deadline, max_pages=exports)
    except ExporterError:
        return None
    return listing if isinstance(listing, ObjectListing) else None


@dataclass(frozen=True, slots=True)
class ObjectRanges:
    """One object in TOS read by ranges through ``store``, every read bounded by ``deadline``: the
    ``RangeReader`` the qcow2 check reads through. A read of no bytes sends nothing; the store's errors
    pass through."""

    store: ObjectStore
    bucket: str
    key: str
    deadline: float

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset``; fewer at the end of the object."""
        if length <= 0:
            return b""
        return self.store.get_range(self.bucket, self.key, offset, length, deadline=self.deadline)


@dataclass(frozen=True, slots=True)
class _Check:
    """One export's check: what it reads, where, at which level, by when."""

    store: ObjectStore
    image: Image
    task: Task | None
    bucket: str
    prefix: str
    region: str
    level: VerifyLevel
    deadline: float
    now: Callable[[], datetime]
    max_read_bytes: int
    listed: ObjectListing | None = None

    def run(self) -> ExportCheck:
        if self.level == "off":
            trusted = ManifestObject(key=system_key(self.prefix, self.image.image_id), disk="system")
            trusting = "EXPORT_VERIFY=off: the task's Succeeded is trusted; the objects were not looked at"
            return self._write(verified=False, objects=(trusted,), notes=(trusting,))
        found = self._objects()
        if not isinstance(found, tuple):
            return found
        system, data = found
        if system.size_bytes < MIN_SYSTEM_OBJECT_BYTES:
            message = (
                f"the object at tos://{self.bucket}/{system.key} is {system.size_bytes} bytes: too small to be "
                f"a system disk's qcow2 file (at least {MIN_SYSTEM_OBJECT_BYTES} bytes), so the upload is broken"
            )
            return Corrupt(system.key, message)
        notes = list(_disk_notes(self.image, data))
        objects: list[ManifestObject] = []
        disks: list[tuple[ListedObject, Disk]] = [(system, "system"), *((d, "data") for d in data)]
        for listed, disk in disks:
            checked = (
                self._structure(listed, disk, notes)
                if self.level == "structure"
                else _as_object(listed, disk, None)
            )
            if not isinstance(checked, ManifestObject):
                return checked
            objects.append(checked)
        return self._write(verified=True, objects=tuple(objects), notes=tuple(notes))

    def _objects(self) -> tuple[ListedObject, list[ListedObject]] | Missing | ObjectUnreadable | Stopped:
        """The system object and the data objects (in key order, ``data2`` before ``data10``)."""
        image_id = self.image.image_id
        where = export_prefix(self.prefix, image_id)
        listing: ObjectListing | ObjectUnreadable
        if self.listed is not None and self.listed.covers(where):
            listing = self.listed
        else:
            try:
                listing = self.store.list_objects(self.bucket, where, deadline=self.deadline)
            except ExporterError as error:
                return Stopped(f"listing tos://{self.bucket}/{where}*", error)
        if isinstance(listing, ObjectUnreadable):
            return listing
        wanted = system_key(self.prefix, image_id)
        qcow2 = [o for o in listing.under(where) if o.key.endswith(QCOW2_SUFFIX)]
        system = next((o for o in qcow2 if o.key == wanted), None)
        if system is None:
            return Missing(wanted, listing.request_id)
        data = sorted((o for o in qcow2 if o.key != wanted), key=lambda o: _natural(o.key))
        return system, data

    def _structure(
        self, listed: ListedObject, disk: Disk, notes: list[str]
    ) -> ManifestObject | Corrupt | Stopped:
        """One object's qcow2 structure, read with ranged GETs; a sampled check is noted."""
        gib = self.image.size_gib
        expected = gib * GIB if disk == "system" and gib else None
        reader = ObjectRanges(self.store, self.bucket, listed.key, self.deadline)
        try:
            report = check_structure(
                reader, listed.size_bytes, expected_virtual_size=expected, max_read_bytes=self.max_read_bytes
            )
        except ExporterError as error:
            return Stopped(f"reading tos://{self.bucket}/{listed.key}", error)
        if not report.ok:
            return Corrupt(listed.key, f"tos://{self.bucket}/{listed.key}: {report.failure}")
        if report.sampled:
            notes.append(
                f"{listed.key}: {report.l2_tables_checked} of {report.l2_tables_total} L2 tables read (an "
                f"even sample: at most {self.max_read_bytes // (1024 * 1024)} MiB is read an object)"
            )
        _log.debug("verification.structure", key=listed.key, bytes_read=report.bytes_read, reads=report.reads)
        return _as_object(listed, disk, report.virtual_size)

    def _write(
        self, *, verified: bool, objects: tuple[ManifestObject, ...], notes: tuple[str, ...]
    ) -> Verified | Stopped:
        """The manifest, written once the check passed: the export is ``exported`` only with it."""
        key = manifest_key(self.prefix, self.image.image_id)
        manifest = build_manifest(
            self.image,
            self.task,
            ManifestExport(
                task_id=self.task.task_id if self.task is not None else None,
                region=self.region,
                bucket=self.bucket,
                prefix=self.prefix,
            ),
            ManifestVerification(level=self.level, verified=verified, checked_at=self.now(), notes=notes),
            objects,
        )
        try:
            self.store.put_object(
                self.bucket, key, manifest.to_bytes(), content_type=MANIFEST_TYPE, deadline=self.deadline
            )
        except ExporterError as error:
            return Stopped(f"writing its manifest tos://{self.bucket}/{key}", error)
        return Verified(self.level, verified, objects, notes, key)


def build_manifest(
    image: Image,
    task: Task | None,
    export: ManifestExport,
    verification: ManifestVerification,
    objects: tuple[ManifestObject, ...],
) -> Manifest:
    """The manifest of a checked export: the image as DescribeImages gave it, the export (its task's times),
    how it was checked and its objects. Times are UTC."""
    checked_at = _utc(verification.checked_at) or verification.checked_at
    ended = task.end_at if task is not None and task.end_at is not None else checked_at
    return Manifest(
        image=manifest_image(image),
        export=export.model_copy(
            update={
                "started_at": _utc(task.created_at) if task is not None else None,
                "finished_at": _utc(ended),
            }
        ),
        objects=objects,
        verification=verification.model_copy(update={"checked_at": checked_at}),
    )


def _disk_notes(image: Image, data: list[ListedObject]) -> tuple[str, ...]:
    """A note when the data files found do not match the data disks DescribeImages lists."""
    expected = image.data_disks
    if len(data) >= expected:
        return ()
    note = (
        f"the image lists {expected} data disk(s) but {len(data)} data file(s) were found under the export's "
        "prefix: a data disk without a file is not part of this export"
    )
    return (note,)


def _as_object(listed: ListedObject, disk: Disk, virtual_size: int | None) -> ManifestObject:
    return ManifestObject(
        key=listed.key,
        disk=disk,
        size_bytes=listed.size_bytes,
        etag=listed.etag,
        crc64=listed.crc64,
        virtual_size_bytes=virtual_size,
    )


def _natural(key: str) -> tuple[object, ...]:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key))


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
