"""The manifest: the restore kit written beside an export (docs/contract.md, "The export's objects, its
verification and its manifest").

``<prefix>_<ImageId>.manifest.json`` in the export's bucket holds what a restore needs once the source image
is gone (its metadata as DescribeImages gave it at the export), the export's objects and how they were
checked. The manifests in a bucket are the catalogue restore and retention read; one model writes and reads
them, so the two can never disagree. Fields beyond these are allowed and kept when a manifest is read.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from handler.clock import as_utc
from handler.models.api import Image
from handler.models.exported import Disk, ManifestObject, VerifyLevel

__all__ = [
    "MANIFEST_SCHEMA",
    "MANIFEST_SUFFIX",
    "Disk",
    "Manifest",
    "ManifestExport",
    "ManifestImage",
    "ManifestObject",
    "ManifestSnapshot",
    "ManifestVerification",
    "RestoreCheck",
    "VerifyLevel",
    "image_of",
    "manifest_image",
    "manifest_key",
]

MANIFEST_SCHEMA = "image-exporter/manifest/1"
MANIFEST_SUFFIX = ".manifest.json"


def manifest_key(prefix: str, image_id: str) -> str:
    """Where an export's manifest is: ``<prefix>_<ImageId>.manifest.json``, beside its objects."""
    return f"{prefix}_{image_id}{MANIFEST_SUFFIX}"


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True)


class ManifestSnapshot(_Part):
    id: str
    size_gib: int | None = None
    kind: str = ""


class ManifestImage(_Part):
    id: str
    name: str = ""
    description: str = ""
    os_type: str = ""
    os_name: str = ""
    platform: str = ""
    platform_version: str = ""
    architecture: str = ""
    boot_mode: str = ""
    size_gib: int | None = None
    created_at: datetime | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    snapshots: tuple[ManifestSnapshot, ...] = ()


def manifest_image(image: Image) -> ManifestImage:
    """The image's metadata as a manifest holds it, from DescribeImages (times in UTC)."""
    return ManifestImage(
        id=image.image_id,
        name=image.name,
        description=image.description,
        os_type=image.os_type,
        os_name=image.os_name,
        platform=image.platform,
        platform_version=image.platform_version,
        architecture=image.architecture,
        boot_mode=image.boot_mode,
        size_gib=image.size_gib,
        created_at=as_utc(image.created_at) if image.created_at is not None else None,
        tags=dict(image.tags),
        snapshots=tuple(
            ManifestSnapshot(id=s.snapshot_id, size_gib=s.size_gib, kind=s.kind) for s in image.snapshots
        ),
    )


def image_of(held: ManifestImage) -> Image:
    """The image a manifest (or a start record) holds, as DescribeImages gave it then; its status unknown."""
    return Image.from_api(
        {
            "ImageId": held.id,
            "ImageName": held.name,
            "CreatedAt": held.created_at,
            "Tags": [{"Key": k, "Value": v} for k, v in held.tags.items()],
            "Size": held.size_gib,
            "Description": held.description,
            "OsType": held.os_type,
            "OsName": held.os_name,
            "Platform": held.platform,
            "PlatformVersion": held.platform_version,
            "Architecture": held.architecture,
            "BootMode": held.boot_mode,
            "Snapshots": [
                {"SnapshotId": s.id, "Size": s.size_gib, "VolumeKind": s.kind} for s in held.snapshots
            ],
        }
    )


class ManifestExport(_Part):
    task_id: str | None = None
    region: str
    bucket: str
    prefix: str
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ManifestVerification(_Part):
    level: VerifyLevel
    verified: bool
    checked_at: datetime
    notes: tuple[str, ...] = ()


class RestoreCheck(_Part):
    at: datetime
    image_id: str
    task_id: str | None = None
    result: str


class Manifest(_Part):
    """One export's manifest, as written and as read back."""

    schema_: str = Field(default=MANIFEST_SCHEMA, alias="schema")
    image: ManifestImage
    export: ManifestExport
    objects: tuple[ManifestObject, ...]
    verification: ManifestVerification
    restore_checks: tuple[RestoreCheck, ...] = ()

    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True, populate_by_name=True)

    def to_bytes(self) -> bytes:
        """The manifest as written: JSON, UTF-8, the published field names, times in RFC 3339."""
        return self.model_dump_json(by_alias=True, indent=2).encode("utf-8")
