"""What the ECS API reports, typed: images, tasks, a started export, a probe's answer. Unknown fields are
ignored."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, TypeAdapter
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic_core import TzInfo

from handler.errors import ApiError

__all__ = [
    "ACTIVE_STATUSES",
    "EXPORT_TASK_TYPE",
    "FAILED",
    "FINISHED_STATUSES",
    "IMPORT_TASK_TYPE",
    "PENDING",
    "RUNNING",
    "SUCCEEDED",
    "ExportStarted",
    "Image",
    "ImportSpec",
    "ImportStarted",
    "Probe",
    "Snapshot",
    "Task",
]

# The task type of an export, and the task statuses the exporter reads (docs/facts.md §3). Only Succeeded and
# Failed end a task: any other status (UnknownStatus, one added later) may still be running.
EXPORT_TASK_TYPE = "ExportImage"
IMPORT_TASK_TYPE = "ImportImage"
PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"
ACTIVE_STATUSES = frozenset({PENDING, RUNNING})
FINISHED_STATUSES = frozenset({SUCCEEDED, FAILED})


def _blank_is_none(value: Any) -> Any:
    """The API writes an unset time as ``""``."""
    return None if value == "" else value


# One zone object a UTC offset for the times read: pydantic gives each time it parses a fixed-offset zone of
# its own, and a follow-up holds four times an image (its own, its task's three) for tens of thousands.
_ZONES: dict[timedelta | None, TzInfo] = {}


def _shared_zone(value: datetime | None) -> datetime | None:
    """The same time, its parsed fixed-offset zone the first one read with that offset (any other zone as is)."""
    if value is None or type(value.tzinfo) is not TzInfo:
        return value
    zone = _ZONES.setdefault(value.utcoffset(), value.tzinfo)
    return value if zone is value.tzinfo else value.replace(tzinfo=zone)


def _tag_pairs(value: Any) -> Any:
    """``[{"Key": k, "Value": v}, ...]`` as ``((k, v), ...)``; anything else is left for validation. Keys and
    values are interned: the tracking tags' values (``exporting``, the destination, a batch's claim) are the
    same on thousands of images."""
    if isinstance(value, list):
        return tuple(
            (sys.intern(str(t.get("Key", ""))), sys.intern(str(t.get("Value", ""))))
            for t in value
            if isinstance(t, dict)
        )
    return () if value is None else value


def _interned(value: Any) -> str:
    """A short value many images share (a platform, an architecture): one copy in memory, not one each. A
    value the API leaves out or writes as null is ``""``: a detail never makes an image unreadable."""
    return sys.intern(value) if isinstance(value, str) else ""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _count(value: Any) -> int | None:
    """A size in GiB; None when absent or not a whole number."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _listed(value: Any) -> Any:
    return tuple(v for v in value if isinstance(v, dict)) if isinstance(value, list) else ()


Moment = Annotated[datetime | None, BeforeValidator(_blank_is_none), AfterValidator(_shared_zone)]
Shared = Annotated[str, BeforeValidator(_interned)]
Text = Annotated[str, BeforeValidator(_text)]
Gib = Annotated[int | None, BeforeValidator(_count)]


# The API's records are slotted dataclasses, validated as pydantic models are: a follow-up holds tens of
# thousands of images and tasks at once, and a model instance costs about three times as much memory.
_RECORD = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(record: type[Any]) -> TypeAdapter[Any]:
    """The validator of a record type, built on first use (not at import: a cold start pays for what it uses)."""
    adapter = _ADAPTERS.get(record)
    if adapter is None:
        adapter = _ADAPTERS[record] = TypeAdapter(record)
    return adapter


class _FromApi:
    __slots__ = ()

    @classmethod
    def from_api(cls, item: Any) -> Self:
        """The record an API answer's item describes; ``pydantic.ValidationError`` when it is not one."""
        record: Self = _adapter(cls).validate_python(item)
        return record


@pydantic_dataclass(frozen=True, slots=True, config=_RECORD)
class Snapshot(_FromApi):
    """One disk of an image, as DescribeImages lists it in ``Snapshots`` (docs/facts.md §16)."""

    snapshot_id: Text = Field(default="", alias="SnapshotId")
    size_gib: Gib = Field(default=None, alias="Size")
    kind: Shared = Field(default="", alias="VolumeKind")  # "system" or "data"


@pydantic_dataclass(frozen=True, slots=True, config=_RECORD)
class Image(_FromApi):
    """One image as DescribeImages reports it (the fields the exporter reads)."""

    image_id: str = Field(alias="ImageId", min_length=1)
    name: str = Field(default="", alias="ImageName")
    status: Shared = Field(default="", alias="Status")
    visibility: Shared = Field(default="", alias="Visibility")
    created_at: Moment = Field(default=None, alias="CreatedAt")
    tags: Annotated[tuple[tuple[str, str], ...], BeforeValidator(_tag_pairs)] = Field(
        default=(), alias="Tags"
    )
    # What a restore needs once the image is gone (the manifest's ``image``; docs/contract.md).
    size_gib: Gib = Field(default=None, alias="Size")
    description: Text = Field(default="", alias="Description")
    os_type: Shared = Field(default="", alias="OsType")
    os_name: Shared = Field(default="", alias="OsName")
    platform: Shared = Field(default="", alias="Platform")
    platform_version: Shared = Field(default="", alias="PlatformVersion")
    architecture: Shared = Field(default="", alias="Architecture")
    boot_mode: Shared = Field(default="", alias="BootMode")
    snapshots: Annotated[tuple[Snapshot, ...], BeforeValidator(_listed)] = Field(
        default=(), alias="Snapshots"
    )

    @property
    def data_disks(self) -> int:
        """How many data disks DescribeImages lists for the image."""
        return sum(1 for snapshot in self.snapshots if snapshot.kind.lower() == "data")


@pydantic_dataclass(frozen=True, slots=True, config=_RECORD)
class Task(_FromApi):
    """One task as DescribeTasks reports it."""

    task_id: str = Field(alias="Id", min_length=1)
    type: Shared = Field(default="", alias="Type")
    status: Shared = Field(default="", alias="Status")
    resource_id: str = Field(default="", alias="ResourceId")
    created_at: Moment = Field(default=None, alias="CreatedAt")
    updated_at: Moment = Field(default=None, alias="UpdatedAt")
    end_at: Moment = Field(default=None, alias="EndAt")
    progress: Gib = Field(default=None, alias="Process")  # percent complete, when the API says


@dataclass(frozen=True, slots=True)
class ExportStarted:
    """ExportImage accepted the request."""

    task_id: str
    request_id: str | None


@dataclass(frozen=True, slots=True)
class ImportSpec:
    """What ImportImage is asked (docs/facts.md §14): the new image's name, the system disk file's URL, the data
    disk files' URLs in order, the metadata the file does not carry, and the new image's tags."""

    image_name: str
    url: str
    platform: str
    data_urls: tuple[str, ...] = ()
    platform_version: str = ""
    os_type: str = ""
    architecture: str = ""
    boot_mode: str = ""
    description: str = ""
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ImportStarted:
    """ImportImage accepted the request: the new image's id (``creating`` until the import ends)."""

    image_id: str
    request_id: str | None


@dataclass(frozen=True, slots=True)
class Probe:
    """What one signed probe request got (the doctor's): the server's ``Date`` and the local time its answer
    came (None when it carried none), its request id, and the API's final refusal (None: it answered), the
    answer's ``Date`` kept either way: a refused signature still tells the server's time."""

    server_time: datetime | None
    local_time: datetime
    request_id: str | None
    error: ApiError | None = None
