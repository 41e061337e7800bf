"""The catalogue of exports in a bucket: the manifests the follow-up wrote, read back (docs/contract.md, "The
export's objects, its verification and its manifest"). Retention, the restore drill and ``exporter-tools
status`` read exports through it; the tags stay the in-flight state.

:func:`read_catalogue` lists the keys ``<prefix>_*.manifest.json`` (ListObjectsV2, every page; any other key
is skipped) and reads each manifest with one ranged GET, several at a time. A manifest is small: one larger
than ``MAX_MANIFEST_BYTES`` is never read, and, like one that cannot be read or is not a manifest of this
bucket's export, it is an entry with a ``problem``, never an exception that loses the others. The deadline
stops the reading: the manifests not read by then are counted as ``unread``.

:func:`group_of` says which group an export belongs to (``RETENTION_GROUP_BY``; :func:`group_for` the same
for an image as DescribeImages lists it), :func:`newest_verified` and :func:`last_verified_restores` what each
group has. A :class:`ManifestCache` carries the manifests one invocation read to its next read of the
catalogue (the restore drill's, then retention's): only manifests written since are read again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from handler.clock import SYSTEM_CLOCK, Clock, as_utc
from handler.core.apis import ObjectStore
from handler.core.fan_out import fan_out
from handler.errors import BudgetExhausted, ExporterError
from handler.models.api import SUCCEEDED
from handler.models.manifest import MANIFEST_SCHEMA, MANIFEST_SUFFIX, Manifest, RestoreCheck
from handler.models.objects import ListedObject, ObjectUnreadable
from handler.models.settings import GROUP_BY_NAME, GROUP_BY_TAG

__all__ = [
    "MAX_MANIFEST_BYTES",
    "Catalogue",
    "CatalogueEntry",
    "ManifestCache",
    "by_group",
    "group_for",
    "group_of",
    "last_verified_restores",
    "newest_verified",
    "read_catalogue",
]

# A manifest is a few KiB (one entry per disk, a few notes, one per restore check): a larger object under a
# manifest's key is something else, and is never read whole.
MAX_MANIFEST_BYTES = 1024 * 1024
_PROBLEM_CHARS = 300
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One manifest in the bucket: its key, Last-Modified and size from the listing, and the manifest read
    (None, with ``problem`` saying why, when it could not be read or is not a manifest to trust)."""

    key: str
    last_modified: datetime | None
    size: int
    manifest: Manifest | None
    problem: str | None = None

    @property
    def image_id(self) -> str:
        """The source image: the manifest's, else the key's ``<prefix>_<ImageId>.manifest.json``."""
        if self.manifest is not None:
            return self.manifest.image.id
        return self.key.removesuffix(MANIFEST_SUFFIX).partition("_")[2]

    @property
    def verified(self) -> bool:
        """The export's checks ran and passed (``EXPORT_VERIFY`` ``structure`` or ``head``)."""
        return self.manifest is not None and self.manifest.verification.verified

    @property
    def finished_at(self) -> datetime | None:
        """When the export ended (its task's end, else when it was checked), in UTC."""
        if self.manifest is None:
            return None
        return as_utc(self.manifest.export.finished_at or self.manifest.verification.checked_at)

    @property
    def last_restore(self) -> RestoreCheck | None:
        """The newest restore check of this export that Succeeded: an import of it that worked."""
        if self.manifest is None:
            return None
        return _newest_restore(self.manifest.restore_checks)


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The manifests under ``prefix`` in ``bucket``, in key order: those read (``entries``, some with a
    problem) and the keys the deadline left unread. ``server_time``: TOS's ``Date`` on the listing's last
    page (ages are the server's, not the local clock's), and ``local_time`` the local clock's reading when
    that page had come (how far the two differ is the clock's skew). ``objects``: every object the listing
    found under ``<prefix>_``, the exports' disks with the manifests (whether an export's files are still
    there)."""

    bucket: str
    prefix: str
    entries: tuple[CatalogueEntry, ...]
    unread_keys: tuple[str, ...] = ()
    server_time: datetime | None = None
    local_time: datetime | None = None
    objects: tuple[ListedObject, ...] = ()

    @property
    def unread(self) -> int:
        """How many manifests were listed but not read: the deadline came first."""
        return len(self.unread_keys)

    @property
    def exports(self) -> tuple[CatalogueEntry, ...]:
        """The entries whose manifest was read and is sound."""
        return tuple(e for e in self.entries if e.manifest is not None)

    @property
    def problems(self) -> tuple[CatalogueEntry, ...]:
        """The entries whose manifest could not be read or trusted."""
        return tuple(e for e in self.entries if e.manifest is None)


class ManifestCache:
    """The manifests read in one invocation, by bucket and key, each with the listing's Last-Modified and size
    it was read at: a later read of the same catalogue takes a manifest from here while the listing still
    says the same of it, and reads it again once it was rewritten. Only sound manifests are held (one that
    could not be read is tried again). One invocation's, never kept longer (a manifest rewritten with the
    same size within the same second would be missed)."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], tuple[datetime | None, int, CatalogueEntry]] = {}

    def get(self, bucket: str, listed: ListedObject) -> CatalogueEntry | None:
        held = self._held.get((bucket, listed.key))
        if held is None or (held[0], held[1]) != (listed.last_modified, listed.size_bytes):
            return None
        return held[2]

    def put(self, bucket: str, entries: Iterable[CatalogueEntry]) -> None:
        for entry in entries:
            self._held[bucket, entry.key] = (entry.last_modified, entry.size, entry)

    def __len__(self) -> int:
        return len(self._held)


def read_catalogue(
    store: ObjectStore,
    bucket: str,
    prefix: str,
    *,
    deadline: float,
    workers: int,
    clock: Clock = SYSTEM_CLOCK,
    max_bytes: int = MAX_MANIFEST_BYTES,
    modified_since: timedelta | None = None,
    cache: ManifestCache | None = None,
) -> Catalogue | ObjectUnreadable:
    """Every manifest ``<prefix>_*.manifest.json`` in ``bucket``, each read with one ranged GET of at most
    ``max_bytes``, ``workers`` at a time, none started at or past ``deadline`` (a ``Clock.monotonic()``
    reading). A listing TOS refuses (403) is the ``ObjectUnreadable`` it answered; one that fails otherwise
    raises the store's error. A manifest that cannot be read is an entry with a ``problem``.
    ``modified_since``: only the manifests TOS says were written within that long before the listing's own
    ``Date`` (server time; one with no Last-Modified is read), the others left out unread. ``cache``: the
    manifests this invocation already read, not read again while the listing says they are unchanged; the
    ones read now are added to it."""
    listing = store.list_objects(bucket, f"{prefix}_", deadline=deadline)
    if isinstance(listing, ObjectUnreadable):
        return listing
    local_time = clock.now()
    listed = [o for o in listing.objects if _is_manifest_key(o.key, prefix)]
    if modified_since is not None:
        now = as_utc(listing.server_time) if listing.server_time is not None else local_time
        since = now - modified_since
        listed = [o for o in listed if o.last_modified is None or as_utc(o.last_modified) >= since]
    known: Mapping[str, CatalogueEntry] = {}
    if cache is not None:
        known = {o.key: entry for o in listed if (entry := cache.get(bucket, o)) is not None}

    def read(one: ListedObject) -> CatalogueEntry | None:
        if one.key in known:
            return known[one.key]
        if clock.monotonic() >= deadline:
            return None
        return _read_entry(store, bucket, prefix, one, deadline=deadline, max_bytes=max_bytes)

    read_or_not = fan_out(read, listed, workers=workers, name="catalogue")
    entries = tuple(entry for entry in read_or_not if entry is not None)
    unread = tuple(one.key for one, entry in zip(listed, read_or_not, strict=True) if entry is None)
    if cache is not None:
        cache.put(bucket, (e for e in entries if e.key not in known and e.manifest is not None))
    return Catalogue(bucket, prefix, entries, unread, listing.server_time, local_time, tuple(listing.objects))


def _is_manifest_key(key: str, prefix: str) -> bool:
    """``<prefix>_<ImageId>.manifest.json``, the image id not empty and no folder in between."""
    if not (key.startswith(f"{prefix}_") and key.endswith(MANIFEST_SUFFIX)):
        return False
    image_id = key[len(prefix) + 1 : -len(MANIFEST_SUFFIX)]
    return bool(image_id) and "/" not in image_id


def _read_entry(
    store: ObjectStore, bucket: str, prefix: str, listed: ListedObject, *, deadline: float, max_bytes: int
) -> CatalogueEntry | None:
    """One manifest read and checked; None when the deadline stopped the read."""
    data = _manifest_bytes(store, bucket, listed, deadline=deadline, max_bytes=max_bytes)
    if data is None:
        return None
    found = _parse(data, bucket, prefix, listed.key) if isinstance(data, bytes) else data
    if isinstance(found, str):
        return CatalogueEntry(
            listed.key, listed.last_modified, listed.size_bytes, None, found[:_PROBLEM_CHARS]
        )
    return CatalogueEntry(listed.key, listed.last_modified, listed.size_bytes, found)


def _manifest_bytes(
    store: ObjectStore, bucket: str, listed: ListedObject, *, deadline: float, max_bytes: int
) -> bytes | str | None:
    """The manifest's bytes (one ranged GET of the size listed); why not (a problem); None: the deadline."""
    size = listed.size_bytes
    if size <= 0:
        return "the object is empty: no manifest"
    if size > max_bytes:
        return f"{size:,} bytes, more than the {max_bytes:,} a manifest can be: not read"
    try:
        return store.get_range(bucket, listed.key, 0, size, deadline=deadline)
    except BudgetExhausted:
        return None
    except ExporterError as error:
        return f"could not be read ({error.code}: {error.message})"


def _parse(data: bytes, bucket: str, prefix: str, key: str) -> Manifest | str:
    """The manifest, or why it is not one this key's export can be read from."""
    try:
        manifest = Manifest.model_validate_json(data)
    except ValidationError as invalid:
        return f"not a valid manifest: {_first_error(invalid)}"
    return _mismatch(manifest, bucket, prefix, key) or manifest


def _mismatch(manifest: Manifest, bucket: str, prefix: str, key: str) -> str | None:
    """Why a well-formed manifest is still not this key's export (another schema, image, bucket or prefix:
    copied or written by hand), or None. Retention deletes what a manifest lists, so it must be this one's."""
    if manifest.schema_ != MANIFEST_SCHEMA:
        return (
            f"schema {manifest.schema_[:60]!r}, not {MANIFEST_SCHEMA}: written by another version, left alone"
        )
    expected = key.removesuffix(MANIFEST_SUFFIX).partition("_")[2]
    if manifest.image.id != expected:
        return f"names the image {manifest.image.id[:60]!r}, but its key is {expected!r}'s"
    export = manifest.export
    if (export.bucket, export.prefix) != (bucket, prefix):
        return (
            f"written for tos://{export.bucket[:63]}/{export.prefix[:30]}, not tos://{bucket}/{prefix}: "
            "copied from another destination"
        )
    return None


def _first_error(invalid: ValidationError) -> str:
    """The first thing wrong with a manifest, as ``field.path: what`` (and how many more)."""
    errors = invalid.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])
    text = f"{where}: {first['msg']}" if where else str(first["msg"])
    return text + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


# -- groups -------------------------------------------------------------------------------------------------

# A trailing date, time or counter after a '-' or '_': 20261201, 17, 0300, 01T0300, 20261201T030000Z. Stripped
# again and again (web-2026-12-01T0300: 01T0300, 12, 2026), never down to a base without a letter. A '.' is
# not a separator: ubuntu-22.04 stays itself rather than join ubuntu-24.04 in one group.
_STAMPED = re.compile(r"\A(?P<base>.*[^-_])[-_]+[0-9]+(?:[Tt:][0-9]+)*[Zz]?\Z", re.ASCII | re.DOTALL)
_NOT_A_STAMP = re.compile(r"[^0-9_\-:]")
# A date after a dot is a stamp only when it is date-shaped (``nightly.2026.12.01``, ``db.20261201``, with an
# optional time): ``ubuntu-22.04`` and ``python.3.12`` are versions, and stay.
_DOTTED_DATE = re.compile(
    r"\A(?P<base>.*[^.])\.(?:(?:19|20)[0-9]{2}\.[01][0-9]\.[0-3][0-9]|(?:19|20)[0-9]{6})"
    r"(?:[Tt.:][0-9]{2,6})*[Zz]?\Z",
    re.ASCII | re.DOTALL,
)


def group_of(manifest: Manifest, group_by: str) -> str:
    """The export's group under ``RETENTION_GROUP_BY``: ``name``, the image name without a trailing date,
    time or counter (``web-20261201``, ``web-2026-12-01T0300``, ``web-17``, ``web_20261201`` are all ``web``,
    ``nightly.2026.12.01`` is ``nightly``: after a dot only a date-shaped stamp, so ``ubuntu-22.04`` stays;
    a name that is only a date or digits stays itself; an image without a name is a group of its own);
    ``tag:KEY``, that tag's value on the source image at the export (``(no tag KEY)`` without it). The group
    of a group's name is itself. ``group_by`` is a value the settings accepted; anything else is a
    ValueError."""
    image = manifest.image
    return group_for(image.id, image.name, image.tags, group_by)


def group_for(image_id: str, name: str, tags: Mapping[str, str], group_by: str) -> str:
    """The group of an image with this id, name and tags (:func:`group_of`'s rule): the group its export
    will be in, for an image DescribeImages lists now."""
    if group_by == GROUP_BY_NAME:
        return _name_group(name) if name else f"(unnamed {image_id})"
    if group_by.startswith(GROUP_BY_TAG) and len(group_by) > len(GROUP_BY_TAG):
        key = group_by.removeprefix(GROUP_BY_TAG)
        value = tags.get(key)
        if value is None:
            return f"(no tag {key})"
        return value or f"(empty tag {key})"
    msg = f"group_by: expected name or tag:KEY, got {group_by[:40]!r}"
    raise ValueError(msg)


def _name_group(name: str) -> str:
    group = name
    while True:
        stamped = _STAMPED.match(group) or _DOTTED_DATE.match(group)
        if not (stamped and _NOT_A_STAMP.search(stamped["base"])):
            return group
        group = stamped["base"]


def by_group(entries: Iterable[CatalogueEntry], group_by: str) -> dict[str, list[CatalogueEntry]]:
    """The exports (entries with a manifest) of each group, newest first (by ``finished_at``, then key)."""
    groups: dict[str, list[CatalogueEntry]] = {}
    for entry in entries:
        if entry.manifest is not None:
            groups.setdefault(group_of(entry.manifest, group_by), []).append(entry)
    for members in groups.values():
        members.sort(key=lambda e: (e.finished_at or _EPOCH, e.key), reverse=True)
    return groups


def newest_verified(entries: Iterable[CatalogueEntry], group_by: str) -> dict[str, CatalogueEntry]:
    """The newest verified export of each group (a group without one is left out)."""
    newest: dict[str, CatalogueEntry] = {}
    for group, members in by_group(entries, group_by).items():
        verified = next((e for e in members if e.verified), None)
        if verified is not None:
            newest[group] = verified
    return newest


def last_verified_restores(entries: Iterable[CatalogueEntry], group_by: str) -> dict[str, RestoreCheck]:
    """The newest restore check that Succeeded of each group, over all its exports (a group never restored
    is left out)."""
    restores: dict[str, RestoreCheck] = {}
    for group, members in by_group(entries, group_by).items():
        checks = [check for e in members if e.manifest is not None for check in e.manifest.restore_checks]
        newest = _newest_restore(checks)
        if newest is not None:
            restores[group] = newest
    return restores


def _newest_restore(checks: Iterable[RestoreCheck]) -> RestoreCheck | None:
    succeeded = [c for c in checks if c.result == SUCCEEDED]
    return max(succeeded, key=lambda c: as_utc(c.at), default=None)
