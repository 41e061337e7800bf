"""The exports in TOS, as ``exporter-tools status`` shows them: the bucket's catalogue of manifests
(``handler.core.catalogue``), each export's group (``RETENTION_GROUP_BY``), and whether its source image still
exists (DescribeImages by id, 100 a request: an export outlives its image, and restores from its manifest).

A manifest that cannot be read is listed as a problem and sources that cannot be looked up are a note under
the table, never an error; a bucket that cannot be listed is said in the table's place (the command then
exits 1)::

    Exports in TOS (2): tos://demo-exports/imgexport_*.manifest.json, grouped by name
    GROUP  SOURCE                      EXPORTED           OBJECTS     SIZE  VERIFIED   RESTORED
    db     image-db20261201 (deleted)  2026-12-01T03:18Z        1  3.1 GiB  structure  -
    web    image-web20261201           2026-12-01T03:20Z        2  9.4 GiB  structure  2026-12-02T04:00Z

    Manifests with problems (1)
    KEY                                   PROBLEM
    imgexport_image-broken.manifest.json  not a valid manifest: Invalid JSON: key must be a string at line 1 …
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from exporter_tools.tables import moment_text, size_text, text_table
from handler.clock import as_utc
from handler.core.apis import EcsApi, ObjectStore
from handler.core.catalogue import Catalogue, CatalogueEntry, group_of, read_catalogue
from handler.errors import ExporterError
from handler.models.manifest import Manifest
from handler.models.objects import ObjectUnreadable

__all__ = ["ManifestProblem", "StoredExport", "TosExports", "read_tos_exports", "render_tos_exports"]


@dataclass(frozen=True, slots=True)
class StoredExport:
    """One export with a sound manifest: its group, source image (``source_deleted`` None: not known), when
    it finished, its objects and their bytes, how it was checked, and its last restore that Succeeded."""

    group: str
    image_id: str
    source_deleted: bool | None
    exported_at: datetime | None
    objects: int
    size_bytes: int
    verification: str
    verified: bool
    last_restore_at: datetime | None
    manifest_key: str

    def as_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "image_id": self.image_id,
            "source_deleted": self.source_deleted,
            "exported_at": _iso(self.exported_at),
            "objects": self.objects,
            "size_bytes": self.size_bytes,
            "verification": self.verification,
            "verified": self.verified,
            "last_restore_at": _iso(self.last_restore_at),
            "manifest_key": self.manifest_key,
        }


@dataclass(frozen=True, slots=True)
class ManifestProblem:
    """A manifest that could not be read or trusted, and why."""

    key: str
    problem: str


@dataclass(frozen=True, slots=True)
class TosExports:
    """The exports in ``bucket`` under ``prefix``, by group then newest first; the manifests with problems;
    how many the time left unread; why the catalogue could not be listed (``error``) or the sources looked
    up (``sources_error``)."""

    bucket: str
    prefix: str
    group_by: str
    exports: tuple[StoredExport, ...] = ()
    problems: tuple[ManifestProblem, ...] = ()
    unread: int = 0
    error: str | None = None
    sources_error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "group_by": self.group_by,
            "exports": [e.as_json() for e in self.exports],
            "problems": [{"key": p.key, "problem": p.problem} for p in self.problems],
            "unread": self.unread,
            "error": self.error,
            "sources_error": self.sources_error,
        }


def read_tos_exports(
    store: ObjectStore,
    ecs: EcsApi,
    bucket: str,
    prefix: str,
    *,
    group_by: str,
    deadline: float,
    workers: int,
) -> TosExports:
    """The catalogue of ``bucket``/``prefix`` read (``workers`` manifests at a time) and each export's source
    image looked up, all by ``deadline``."""
    empty = TosExports(bucket, prefix, group_by)
    try:
        catalogue = read_catalogue(store, bucket, prefix, deadline=deadline, workers=workers)
    except ExporterError as error:
        return _with(empty, error=f"{error.code}: {error.message}")
    if isinstance(catalogue, ObjectUnreadable):
        return _with(empty, error=catalogue.reason)
    existing, sources_error = _existing_sources(ecs, catalogue, deadline=deadline)
    exports = sorted(
        (_stored(e, e.manifest, group_by, existing) for e in catalogue.entries if e.manifest is not None),
        key=lambda e: (e.group, -(e.exported_at.timestamp() if e.exported_at else 0.0), e.image_id),
    )
    problems = tuple(ManifestProblem(e.key, e.problem or "") for e in catalogue.problems)
    return TosExports(
        bucket, prefix, group_by, tuple(exports), problems, catalogue.unread, sources_error=sources_error
    )


def _with(exports: TosExports, *, error: str) -> TosExports:
    return TosExports(exports.bucket, exports.prefix, exports.group_by, error=error)


def _existing_sources(
    ecs: EcsApi, catalogue: Catalogue, *, deadline: float
) -> tuple[frozenset[str] | None, str | None]:
    """The exports' source images DescribeImages still lists (None, with why, when it could not be asked)."""
    ids = sorted({entry.image_id for entry in catalogue.exports})
    if not ids:
        return frozenset(), None
    try:
        return frozenset(
            image.image_id for image in ecs.describe_images(deadline=deadline, image_ids=ids)
        ), None
    except ExporterError as error:
        return None, f"{error.code}: {error.message}"


def _stored(
    entry: CatalogueEntry, manifest: Manifest, group_by: str, existing: frozenset[str] | None
) -> StoredExport:
    restore = entry.last_restore
    return StoredExport(
        group=group_of(manifest, group_by),
        image_id=entry.image_id,
        source_deleted=None if existing is None else entry.image_id not in existing,
        exported_at=entry.finished_at,
        objects=len(manifest.objects),
        size_bytes=sum(o.size_bytes or 0 for o in manifest.objects),
        verification=manifest.verification.level,
        verified=manifest.verification.verified,
        last_restore_at=as_utc(restore.at) if restore is not None else None,
        manifest_key=entry.key,
    )


def render_tos_exports(exports: TosExports) -> list[str]:
    """The exports table, then its notes (unread manifests, sources not looked up, a listing that failed)
    and the manifests with problems, as lines."""
    where = f"tos://{exports.bucket}/{exports.prefix}_*.manifest.json"
    if exports.error is not None:
        return [f"Exports in TOS: {where} could not be listed: {exports.error}"]
    lines = [f"Exports in TOS ({len(exports.exports)}): {where}, grouped by {exports.group_by}"]
    if exports.exports:
        rows = [
            (
                e.group,
                e.image_id + (" (deleted)" if e.source_deleted else ""),
                moment_text(e.exported_at),
                str(e.objects),
                size_text(e.size_bytes),
                e.verification if e.verified else f"no ({e.verification})",
                moment_text(e.last_restore_at),
            )
            for e in exports.exports
        ]
        header = ("GROUP", "SOURCE", "EXPORTED", "OBJECTS", "SIZE", "VERIFIED", "RESTORED")
        lines += text_table(header, rows, right=(3, 4))
    if exports.unread:
        lines.append(f"{exports.unread} manifest(s) not read: the --timeout ran out first")
    if exports.sources_error is not None:
        lines.append(
            f"source images not looked up ({exports.sources_error}): whether they still exist is unknown"
        )
    if exports.problems:
        lines += ["", f"Manifests with problems ({len(exports.problems)})"]
        lines += text_table(("KEY", "PROBLEM"), [(p.key, p.problem) for p in exports.problems])
    return lines


def _iso(moment: datetime | None) -> str | None:
    return as_utc(moment).isoformat().replace("+00:00", "Z") if moment is not None else None
