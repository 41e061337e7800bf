"""ImportImage as the emulated ECS takes it (docs/facts.md §14): the request checked, the files its URLs name
read from the emulator's TOS, and how the import ends.

``Url`` (the system disk's file) and each ``ImportDataVolumes.N.DataVolumeUrl`` (a data disk's, in N order)
are ``https://<bucket>.<TOS host>/<key>``: any host; the bucket is the host's first label and the key the
path, URL-decoded. The emulator reads the files when ImportImage is called (the real service reads them
afterwards): a file that is not there yet, such as that of an export still running, is a file missing.

A file that cannot be read makes the import Fail, halfway through its time as a failing export does, with a
``ErrorDetail`` on the task's record. DescribeTasks reports no error (docs/facts.md §3: the SDK's task model
has no such field), so tests read it from the emulator (``EcsService.imports``). The codes are the
emulator's choice, in the style of ExportImage's documented ones (docs/facts.md §1); the real ones are not
published:

- ``InvalidTOSBucket.NotFound``: there is no such bucket;
- ``InvalidTosGetObject.AccessDenied``: ECS may not read the bucket (its access is ``none``), as
  ``InvalidTosPutObject.AccessDenied`` says of an export;
- ``InvalidImageFile.NotFound``: there is no object under the key;
- ``InvalidImageFile.Malformed``: the object is not a qcow2 file the structure check accepts
  (``handler.core.qcow2.check_structure``, the function's own), or it states a virtual size of 0.

An import whose files are sound ends as ``ImportRules`` say (``EcsService.set_import_outcome``): it
Succeeds, Fails with ``InternalError`` (``failed``), or stays Running for ever (``stuck``). Each disk's size
is its file's virtual size in GiB, rounded up. A region holds at most ``CUSTOM_IMAGE_QUOTA`` custom images
(docs/facts.md §14; ``Fleet.custom_image_quota``): ImportImage beyond it is refused with ``QUOTA_CODE``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeVar
from urllib.parse import unquote, urlsplit

from exporter_tools.emulator.fleet import BucketAccess, FleetImage, ImportOutcome
from exporter_tools.emulator.object_store import StoredObject
from exporter_tools.emulator.query import InvalidRequest, flag
from exporter_tools.emulator.records import GIB, ErrorDetail, ImageRecord, TaskRecord
from exporter_tools.emulator.tags import MAX_TAGS_PER_RESOURCE, parse_tags
from handler.core.qcow2 import check_structure

__all__ = [
    "CUSTOM_IMAGE_QUOTA",
    "IMPORT_OUTCOMES",
    "QUOTA_CODE",
    "ImportRecord",
    "ImportRequest",
    "ImportRules",
    "NewImport",
    "TosFile",
    "import_records",
    "imported_spec",
    "injected_failure",
    "parse_import_image",
    "read_files",
    "start_import",
    "tos_file",
]

CUSTOM_IMAGE_QUOTA = 50  # custom images a region may hold (BytePlus ImportImage / CreateImage pages)
# The real code for "too many custom images" is not published: this one is the emulator's choice, in the style
# of the API's QuotaExceeded.* codes.
QUOTA_CODE = "QuotaExceeded.Image"
IMPORT_OUTCOMES: tuple[ImportOutcome, ...] = ("succeeded", "failed", "stuck")

OsType = Literal["Linux", "Windows"]
Architecture = Literal["amd64", "arm64"]
BootMode = Literal["BIOS", "UEFI"]
_OS_TYPES: dict[str, OsType] = {"Linux": "Linux", "Windows": "Windows"}
_ARCHITECTURES: dict[str, Architecture] = {"amd64": "amd64", "arm64": "arm64"}
_BOOT_MODES: dict[str, BootMode] = {"BIOS": "BIOS", "UEFI": "UEFI"}
_DATA_VOLUME_URL = re.compile(r"ImportDataVolumes\.(\d+)\.DataVolumeUrl")
_Value = TypeVar("_Value", bound=str)


@dataclass(frozen=True, slots=True)
class TosFile:
    """A file an import URL names: the URL as given, and the bucket and key it names."""

    url: str
    bucket: str
    key: str


def tos_file(url: str, parameter: str) -> TosFile:
    """The bucket and key of ``https://<bucket>.<any host>/<key>``; 400 ``InvalidUrl.Malformed`` naming
    ``parameter`` otherwise (the code is the emulator's guess, shaped as ``InvalidTOSPrefix.Malformed``)."""
    parts = urlsplit(url)
    bucket, dot, _ = (parts.hostname or "").partition(".")
    key = unquote(parts.path.removeprefix("/"))
    if parts.scheme != "https" or not (bucket and dot and key):
        msg = f"{parameter} must be https://<bucket>.<TOS host>/<key>, not {url!r}"
        raise InvalidRequest(400, "InvalidUrl.Malformed", msg)
    return TosFile(url, bucket, key)


@dataclass(frozen=True, slots=True)
class ImportRequest:
    """One checked ImportImage request. ``license_type`` and ``need_detection`` are read and kept, and change
    nothing in the emulator."""

    name: str
    system: TosFile
    data_volumes: tuple[TosFile, ...]
    platform: str
    platform_version: str
    os_type: OsType
    architecture: Architecture
    boot_mode: BootMode
    description: str
    project_name: str
    license_type: str
    need_detection: bool
    tags: tuple[tuple[str, str], ...]

    @property
    def files(self) -> tuple[TosFile, ...]:
        """The system disk's file, then each data disk's."""
        return (self.system, *self.data_volumes)


def parse_import_image(query: Mapping[str, str]) -> ImportRequest:
    """The request, checked: ``ImageName``, ``Url`` and ``Platform`` are required (400
    ``MissingParameter.<Name>``, as ExportImage's documented codes); ``OsType`` (default: ``Windows`` for a
    Windows platform, else ``Linux``, as the API derives it), ``Architecture`` (default ``amd64``) and
    ``BootMode`` (default ``BIOS``; both defaults are the emulator's) take the documented values only."""
    for name in ("ImageName", "Url", "Platform"):
        if not query.get(name):
            raise InvalidRequest(400, f"MissingParameter.{name}", f"the parameter {name} is required")
    platform = query["Platform"]
    derived = "Windows" if platform.lower().startswith("windows") else "Linux"
    numbered = sorted(
        (int(m.group(1)), value) for key, value in query.items() if (m := _DATA_VOLUME_URL.fullmatch(key))
    )
    volumes: list[TosFile] = []
    for n, url in numbered:
        parameter = f"ImportDataVolumes.{n}.DataVolumeUrl"
        if not url:
            raise InvalidRequest(400, "MissingParameter.DataVolumeUrl", f"{parameter} is empty")
        volumes.append(tos_file(url, parameter))
    return ImportRequest(
        name=query["ImageName"],
        system=tos_file(query["Url"], "Url"),
        data_volumes=tuple(volumes),
        platform=platform,
        platform_version=query.get("PlatformVersion", ""),
        os_type=_choice(query, "OsType", _OS_TYPES, derived),
        architecture=_choice(query, "Architecture", _ARCHITECTURES, "amd64"),
        boot_mode=_choice(query, "BootMode", _BOOT_MODES, "BIOS"),
        description=query.get("Description", ""),
        project_name=query.get("ProjectName") or "default",
        license_type=query.get("LicenseType", ""),
        need_detection=flag(query, "NeedDetection", default=False),
        tags=parse_tags(query, at_most=MAX_TAGS_PER_RESOURCE),
    )


def _choice(query: Mapping[str, str], name: str, allowed: Mapping[str, _Value], default: str) -> _Value:
    value = query.get(name) or default
    chosen = allowed.get(value)
    if chosen is None:
        msg = f"{name} must be one of {', '.join(allowed)}, not {value!r}"
        raise InvalidRequest(400, f"InvalidParameter.{name}", msg)
    return chosen


def read_files(
    request: ImportRequest,
    *,
    object_at: Callable[[str, str], StoredObject | None],
    access_of: Callable[[str], BucketAccess | None],
) -> tuple[tuple[tuple[str, int], ...], ErrorDetail | None]:
    """The disks the request's files hold, as (VolumeKind, GiB; 0 for a file that cannot be read), and why the
    import fails (the first file that cannot be read), if it does. ``object_at(bucket, key)`` is the object
    there now; ``access_of(bucket)`` the bucket's access (None: no such bucket)."""
    disks: list[tuple[str, int]] = []
    failure: ErrorDetail | None = None
    for number, file in enumerate(request.files):
        what = f"data disk {number}'s file" if number else "the system disk's file"
        size, error = _read(file, what, object_at, access_of)
        disks.append(("data" if number else "system", size))
        failure = failure or error
    return tuple(disks), failure


def _read(
    file: TosFile,
    what: str,
    object_at: Callable[[str, str], StoredObject | None],
    access_of: Callable[[str], BucketAccess | None],
) -> tuple[int, ErrorDetail | None]:
    """The file's virtual size in GiB (rounded up), or 0 and why it cannot be read."""
    access = access_of(file.bucket)
    if access is None:
        return 0, ErrorDetail("InvalidTOSBucket.NotFound", f"{what} {file.url}: no TOS bucket {file.bucket}")
    if access == "none":
        msg = f"{what} {file.url}: ECS is not allowed tos:GetObject on the bucket {file.bucket}"
        return 0, ErrorDetail("InvalidTosGetObject.AccessDenied", msg)
    found = object_at(file.bucket, file.key)
    if found is None:
        msg = f"{what} {file.url}: no object {file.key} in the bucket {file.bucket}"
        return 0, ErrorDetail("InvalidImageFile.NotFound", msg)
    report = check_structure(found.content, found.size_bytes, expected_virtual_size=None)
    if not report.ok or not report.virtual_size:
        why = report.failure or "it states a virtual size of 0 bytes"
        msg = f"{what} {file.url} is not a usable qcow2 file: {why}"
        return 0, ErrorDetail("InvalidImageFile.Malformed", msg)
    return -(-report.virtual_size // GIB), None


@dataclass(frozen=True, slots=True)
class NewImport:
    """What one ImportImage makes: the image's id and its task's, when, and for how long the task runs."""

    image_id: str
    task_id: str
    now: datetime
    task_seconds: float


def start_import(
    request: ImportRequest,
    disks: tuple[tuple[str, int], ...],
    failure: ErrorDetail | None,
    outcome: ImportOutcome,
    new: NewImport,
) -> tuple[ImageRecord, TaskRecord]:
    """The new image and its ImportImage task: the task Fails with ``failure`` when a file could not be read
    (then the image reports the disks as read, 0 GiB for those unread), else ends with ``outcome``."""
    if failure is None and outcome == "failed":
        failure = injected_failure(request.system)
    task = TaskRecord(
        new.task_id,
        "ImportImage",
        new.image_id,
        new.now,
        new.task_seconds,
        outcome="failed" if failure is not None else outcome,
        error=failure,
    )
    image = ImageRecord(
        imported_spec(request, new.image_id, disks),
        created_at=new.now,
        ready_at=None,
        tags=dict(request.tags),
        import_task=task,
        disks_read=disks if failure is not None else None,
    )
    return image, task


def imported_spec(request: ImportRequest, image_id: str, disks: tuple[tuple[str, int], ...]) -> FleetImage:
    """The new image as the fleet would describe it: private, creating, of the disks read (a disk that could
    not be read counts 1 GiB here; ``ImageRecord.disks_read`` reports 0)."""
    return FleetImage(
        id=image_id,
        name=request.name,
        status="creating",
        created_hours_ago=0,
        tags=dict(request.tags),
        os_type=request.os_type,
        platform=request.platform,
        platform_version=request.platform_version,
        os_name=" ".join(part for part in (request.platform, request.platform_version, "64 bit") if part),
        size_gb=max(1, disks[0][1]),
        data_disks=tuple(max(1, size) for _, size in disks[1:]),
        architecture=request.architecture,
        boot_mode=request.boot_mode,
        description=request.description,
        project_name=request.project_name,
    )


@dataclass(slots=True)
class _Rule:
    outcome: ImportOutcome
    remaining: int | None  # imports it still decides; None: every one


class ImportRules:
    """How imports of a system file (by bucket and key) end when their files are sound, as
    ``set_import_outcome`` set: the next ``times`` imports, or every one. Not locked: the service's lock is
    held around every call."""

    def __init__(self) -> None:
        self._rules: dict[tuple[str, str], _Rule] = {}

    def set(self, url: str, outcome: ImportOutcome, times: int | None) -> None:
        """From now on, the next ``times`` imports of the system file ``url`` (None: every one) end with
        ``outcome``; ``succeeded`` with no ``times`` forgets the rule. ``ValueError`` for a bad argument."""
        if outcome not in IMPORT_OUTCOMES:
            msg = f"outcome must be one of {', '.join(IMPORT_OUTCOMES)}, not {outcome!r}"
            raise ValueError(msg)
        if times is not None and times < 1:
            msg = f"times must be at least 1 (or None: every import), not {times}"
            raise ValueError(msg)
        try:
            file = tos_file(url, "url")
        except InvalidRequest as invalid:
            raise ValueError(str(invalid)) from None
        if outcome == "succeeded" and times is None:
            self._rules.pop((file.bucket, file.key), None)
        else:
            self._rules[(file.bucket, file.key)] = _Rule(outcome, times)

    def take(self, file: TosFile) -> ImportOutcome:
        """How this import of ``file`` ends; counts it against its rule."""
        rule = self._rules.get((file.bucket, file.key))
        if rule is None:
            return "succeeded"
        if rule.remaining is not None:
            rule.remaining -= 1
            if rule.remaining <= 0:
                del self._rules[(file.bucket, file.key)]
        return rule.outcome

    def clear(self) -> None:
        self._rules.clear()


def injected_failure(file: TosFile) -> ErrorDetail:
    """The error of an import that fails because ``set_import_outcome`` said so."""
    return ErrorDetail("InternalError", f"the import of {file.url} failed (emulator: set_import_outcome)")


@dataclass(frozen=True, slots=True)
class ImportRecord:
    """One ImportImage the emulator took, as of when it is looked at (``EcsService.imports``): the request,
    its image and task, the task's status and ``Process``, and why it Failed (None unless it has)."""

    image_id: str
    task_id: str
    request: ImportRequest
    status: str
    process: int
    error: ErrorDetail | None


def import_records(
    imports: Iterable[tuple[ImportRequest, TaskRecord]], now: datetime
) -> dict[str, ImportRecord]:
    """Each import as of ``now``, by new image id, in the order given; its error once it has Failed."""
    out: dict[str, ImportRecord] = {}
    for request, task in imports:
        status, process, _ = task.progress(now)
        error = task.error if status == "Failed" else None
        out[task.resource_id] = ImportRecord(task.resource_id, task.task_id, request, status, process, error)
    return out
