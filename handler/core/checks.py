"""What checking a finished export can find (``handler.core.verification`` does the checking): plain records,
light to import, so that the follow-up's decisions (``handler.core.tracking``) and a run that checks nothing
never load the qcow2 parser or the manifest model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from handler.errors import ExporterError
from handler.models.exported import ManifestObject, VerifyLevel
from handler.models.objects import ObjectUnreadable

if TYPE_CHECKING:
    from typing import TypeAlias

__all__ = ["STRUCTURE", "Corrupt", "ExportCheck", "Missing", "Stopped", "Verified", "Verify"]


@dataclass(frozen=True, slots=True)
class Verify:
    """How finished exports are checked (``EXPORT_VERIFY``) and the region their manifests name."""

    level: VerifyLevel = "structure"
    region: str = ""


STRUCTURE = Verify()  # the default: every object's qcow2 structure read


@dataclass(frozen=True, slots=True)
class Verified:
    """The export was checked at ``level`` (``verified``: the checks ran and passed) and its manifest
    written at ``manifest_key``."""

    level: VerifyLevel
    verified: bool
    objects: tuple[ManifestObject, ...]
    notes: tuple[str, ...]
    manifest_key: str

    @property
    def system(self) -> ManifestObject:
        return self.objects[0]


@dataclass(frozen=True, slots=True)
class Missing:
    """No system object under the export's prefix."""

    key: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Corrupt:
    """An object failed a check: ``message`` names the object and the check."""

    key: str
    message: str


@dataclass(frozen=True, slots=True)
class Stopped:
    """A step could not be done: ``step`` says which, on what; ``error`` why (its class, what to fix)."""

    step: str
    error: ExporterError


ExportCheck: TypeAlias = Verified | Missing | Corrupt | ObjectUnreadable | Stopped
