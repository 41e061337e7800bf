"""The start records (``handler.models.start_record``): written as exports start, read back by the follow-up.

:class:`StartRecorder` writes one record per batch of exports the tracker tags ``exporting`` (one PutObject
per 50 exports, where they export to), with each image's metadata: the export flow's DescribeImages record
when it has one (a scan), else one DescribeImages by ids for the batch (an event). A record is a nicety,
never a condition of the export: a write that fails is logged and the invocation writes no more records
(a silent TOS costs it one bounded attempt, not one per batch); its exports are then only unreported if
their image is deleted before a follow-up sees it.

:func:`read_records` lists the records under a destination (one ListObjectsV2 page per 1,000) and reads the
newest ``limit`` of them, one GET each, several at a time. A record larger than ``MAX_RECORD_BYTES``, one
that cannot be parsed, or one that names another bucket or prefix than where it lies (copied by hand) is
logged and left in place, never deleted blindly. :func:`read_claim` and :func:`write_claim` read and write the
claim object beside a record (``handler.models.start_record``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from pydantic import ValidationError

from handler.clock import Clock
from handler.core.apis import EcsApi, ObjectStore
from handler.core.claims import Claim
from handler.core.fan_out import fan_out
from handler.core.tracking import Destination
from handler.errors import ExporterError, ObjectNotFound
from handler.models.api import Image
from handler.models.manifest import ManifestImage, manifest_image
from handler.models.objects import ObjectUnreadable
from handler.models.start_record import (
    CLAIM_SUFFIX,
    MAX_RECORD_BYTES,
    RECORD_SCHEMA,
    RECORD_SUFFIX,
    RecordedExport,
    StartRecord,
    claim_key,
    record_key,
    records_prefix,
)

__all__ = [
    "MAX_RECORDS",
    "RECORD_SECONDS",
    "RECORD_TYPE",
    "ReadRecord",
    "Records",
    "StartRecorder",
    "fetch_record",
    "read_claim",
    "read_records",
    "write_claim",
]

_log = structlog.get_logger("handler.tracking")

# The most one record may take to write (its images' look-up included): an export never waits longer on it.
RECORD_SECONDS = 5.0
# The most records one follow-up reads (the newest): a record holds up to 50 exports.
MAX_RECORDS = 100
RECORD_TYPE = "application/json"
CLAIM_TYPE = "text/plain"
_MAX_CLAIM_BYTES = 1024  # a claim is one line of about 60 characters


class StartRecorder:
    """The start records of one invocation (``holder``), written at ``dest``: :meth:`note` each export as it
    starts, :meth:`write` the batch once it is tagged. Thread-safe: the export workers share it."""

    def __init__(
        self,
        api: EcsApi,
        store: ObjectStore,
        dest: Destination,
        *,
        holder: str,
        clock: Clock,
        deadline: float,
    ) -> None:
        self.api = api
        self.store = store
        self.dest = dest
        self.holder = holder
        self.clock = clock
        self.deadline = deadline
        self._lock = threading.Lock()
        self._noted: dict[str, tuple[str | None, Image | None]] = {}
        self._written = 0
        self._broken: ExporterError | None = None

    def note(self, image_id: str, task_id: str | None, image: Image | None) -> None:
        """An export of the image started (its task; the image as the flow's DescribeImages gave it, if any)."""
        with self._lock:
            held_task, held_image = self._noted.get(image_id, (None, None))
            self._noted[image_id] = (task_id or held_task, image or held_image)

    def write(self, image_ids: Sequence[str]) -> None:
        """Record the exports of these images, just tagged ``exporting``. Never raises: a failure is logged,
        and no later batch of this invocation is recorded."""
        with self._lock:
            noted = [(i, *self._noted.pop(i, (None, None))) for i in dict.fromkeys(image_ids)]
            broken = self._broken
        if not noted:
            return
        if broken is not None:
            _log.info("tracking.start_record_skipped", image_ids=[i for i, _, _ in noted], error=broken.code)
            return
        deadline = min(self.deadline, self.clock.monotonic() + RECORD_SECONDS)
        found = self._look_up([i for i, _, image in noted if image is None], deadline=deadline)
        exports = tuple(
            RecordedExport(image=_recorded(image_id, image or found.get(image_id)), task_id=task_id)
            for image_id, task_id, image in noted
        )
        record = StartRecord(
            bucket=self.dest.bucket, prefix=self.dest.prefix, written_at=self.clock.now(), exports=exports
        )
        for part in _parts(record):
            if not self._put(part, deadline=deadline):
                return

    def _look_up(self, image_ids: list[str], *, deadline: float) -> dict[str, Image]:
        """The images the flow has no DescribeImages record of (named by an event): their metadata, or none
        (logged) when it cannot be read; the record then holds their ids and tasks alone."""
        if not image_ids:
            return {}
        try:
            return {i.image_id: i for i in self.api.describe_images(deadline=deadline, image_ids=image_ids)}
        except ExporterError as error:
            _log.warning("tracking.start_record_without_metadata", image_ids=image_ids, error=error.code)
            return {}

    def _put(self, record: StartRecord, *, deadline: float) -> bool:
        body = record.to_bytes()
        ids = [e.image.id for e in record.exports]
        if len(body) > MAX_RECORD_BYTES:
            _log.warning("tracking.start_record_too_large", image_ids=ids, size=len(body))
            return True
        with self._lock:
            self._written += 1
            number = self._written
        key = record_key(self.dest.prefix, written_at=record.written_at, holder=self.holder, number=number)
        try:
            self.store.put_object(self.dest.bucket, key, body, content_type=RECORD_TYPE, deadline=deadline)
        except ExporterError as error:
            with self._lock:
                self._broken = error
            _log.warning(
                "tracking.start_record_failed",
                image_ids=ids,
                key=key,
                error=error.code,
                message=error.message,
            )
            return False
        _log.info("tracking.start_recorded", key=key, exports=len(ids))
        return True


def _recorded(image_id: str, image: Image | None) -> ManifestImage:
    return manifest_image(image) if image is not None else ManifestImage(id=image_id)


def _parts(record: StartRecord) -> list[StartRecord]:
    """The record, split in halves until each part fits ``MAX_RECORD_BYTES`` (a batch of images with many
    long tags); a single export too large to fit stays one part (logged, not written)."""
    if len(record.exports) <= 1 or len(record.to_bytes()) <= MAX_RECORD_BYTES:
        return [record]
    half = len(record.exports) // 2
    first = record.model_copy(update={"exports": record.exports[:half]})
    second = record.model_copy(update={"exports": record.exports[half:]})
    return _parts(first) + _parts(second)


# -- reading them back ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadRecord:
    """One record read back: its key and what it holds."""

    key: str
    record: StartRecord


@dataclass(frozen=True, slots=True)
class Records:
    """The records read (in key order: oldest first), the claim objects listed beside them, and those claims whose
    record is gone (left by a holder that ended before removing them, or written after the record went)."""

    read: tuple[ReadRecord, ...] = ()
    claims: frozenset[str] = frozenset()
    orphans: tuple[str, ...] = ()


def read_records(
    store: ObjectStore, dest: Destination, *, deadline: float, workers: int, limit: int = MAX_RECORDS
) -> Records:
    """The records under ``dest``, in key order (oldest first), the newest ``limit`` of them; those that cannot
    be used are logged and left out (and left in place). A listing that fails is logged: no record is read
    this time."""
    where = records_prefix(dest.prefix)
    try:
        listing = store.list_objects(dest.bucket, where, deadline=deadline)
    except ExporterError as error:
        _log.warning("deleted_images.listing_failed", error=error.code, message=error.message)
        return Records()
    if isinstance(listing, ObjectUnreadable):
        _log.warning("deleted_images.listing_failed", error="AccessDenied", message=listing.reason)
        return Records()
    keys = {o.key for o in listing.objects}
    claims = frozenset(k for k in keys if k.endswith(CLAIM_SUFFIX))
    orphans = tuple(sorted(k for k in claims if k.removesuffix(CLAIM_SUFFIX) + RECORD_SUFFIX not in keys))
    wanted = []
    for listed in listing.objects:
        if listed.key in claims:
            continue
        if not listed.key.endswith(RECORD_SUFFIX) or not 0 < listed.size_bytes <= MAX_RECORD_BYTES:
            _log.warning("deleted_images.record_unusable", key=listed.key, why=f"{listed.size_bytes} bytes")
            continue
        wanted.append(listed.key)
    if len(wanted) > limit:
        # The newest: records left over (ones that cannot be deleted) never crowd out the recent exports.
        _log.info("deleted_images.records_left", read=limit, left=len(wanted) - limit)
        wanted = wanted[-limit:]

    def read(key: str) -> ReadRecord | None:
        try:
            record = fetch_record(store, dest, key, deadline=deadline)
        except ExporterError as error:
            _log.warning("deleted_images.record_unread", key=key, error=error.code)
            return None
        return ReadRecord(key, record) if record is not None else None

    answers = fan_out(read, wanted, workers=workers, name="record")
    return Records(tuple(a for a in answers if a is not None), claims, orphans)


def fetch_record(store: ObjectStore, dest: Destination, key: str, *, deadline: float) -> StartRecord | None:
    """The record at ``key`` (one ranged GET of at most ``MAX_RECORD_BYTES``), or None when it is not one to
    trust (logged). The store's errors pass through (``ObjectNotFound``: it is gone)."""
    body = store.get_range(dest.bucket, key, 0, MAX_RECORD_BYTES + 1, deadline=deadline)
    why = None
    record = None
    if len(body) > MAX_RECORD_BYTES:
        why = f"larger than {MAX_RECORD_BYTES} bytes"
    else:
        try:
            record = StartRecord.model_validate_json(body)
        except ValidationError as error:
            why = f"not a start record: {error.errors()[0]['msg'][:200]}"
    if record is not None and record.schema_ != RECORD_SCHEMA:
        why = f"schema {record.schema_[:60]!r}"
    elif record is not None and (record.bucket, record.prefix) != (dest.bucket, dest.prefix):
        why = f"it names tos://{record.bucket[:63]}/{record.prefix[:30]}, not where it lies"
    if why is not None:
        _log.warning("deleted_images.record_unusable", key=key, why=why)
        return None
    return record


def read_claim(store: ObjectStore, dest: Destination, key: str, *, deadline: float) -> Claim | None:
    """The claim on the record at ``key``; None when there is none (or it is not a claim this function
    writes). The store's errors but ``ObjectNotFound`` pass through."""
    try:
        body = store.get_range(dest.bucket, claim_key(key), 0, _MAX_CLAIM_BYTES, deadline=deadline)
    except ObjectNotFound:
        return None
    return Claim.parse(body.decode("utf-8", "replace").strip())


def write_claim(store: ObjectStore, dest: Destination, key: str, claim: Claim, *, deadline: float) -> None:
    """Write ``claim`` on the record at ``key`` (the store's errors pass through)."""
    body = claim.value.encode("utf-8")
    store.put_object(dest.bucket, claim_key(key), body, content_type=CLAIM_TYPE, deadline=deadline)
