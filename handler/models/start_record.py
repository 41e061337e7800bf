"""The start record: what the follow-up needs to report an export whose source image was deleted.

Once an image is deleted, DescribeImages no longer lists it nor its tags, so the tracking state on the image
is gone with it. When the tracker tags a batch of started exports, it also writes one small JSON object
where they export to, ``<prefix>_inflight_<UTC yyyymmddThhmmssZ>_<holder hash>_<n>.json`` (image ids start
with ``image-``, so the key never collides with an export's ``<prefix>_<ImageId>_…``), listing each export's
image (its metadata as DescribeImages gave it: a manifest's ``image``) and task. The follow-up reads the
records back, reports the exports whose image is gone, and deletes each record once nothing in it is left
to report (docs/how-it-works.md, "Images deleted after their export").

Beside a record, ``<record key without .json>.claim`` holds the report claim (the claim tag's value,
``handler.core.claims``) of the invocation reporting the record's deleted images, so that two copies following
up at once report each deleted image once. The claim is an object of its own: a claim written late never
brings back a record another copy has already settled and deleted.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from handler.clock import as_utc
from handler.models.manifest import ManifestImage

__all__ = [
    "CLAIM_SUFFIX",
    "MAX_RECORD_BYTES",
    "RECORD_MARK",
    "RECORD_SCHEMA",
    "RECORD_SUFFIX",
    "RecordedExport",
    "StartRecord",
    "claim_key",
    "record_key",
    "records_prefix",
]

RECORD_SCHEMA = "image-exporter/start-record/1"
# What sets a record's key apart under the export prefix: ``<prefix>_inflight_`` (a prefix is letters and
# digits only, so no other prefix's keys start so, and no export's: its image id starts with ``image-``).
RECORD_MARK = "inflight"
RECORD_SUFFIX = ".json"
CLAIM_SUFFIX = ".claim"
# A record is a few KiB an image (its name, description, tags and disks): one batch of 50 takes well under
# this. A record is never written larger (a batch is split), and a larger object is never read.
MAX_RECORD_BYTES = 256 * 1024
_HOLDER_HASH_CHARS = 8


def records_prefix(prefix: str) -> str:
    """The key prefix every start record under ``prefix`` starts with: ``<prefix>_inflight_``."""
    return f"{prefix}_{RECORD_MARK}_"


def record_key(prefix: str, *, written_at: datetime, holder: str, number: int) -> str:
    """The key of the ``number``-th record an invocation (``holder``) writes: its time first, so that a
    listing (by key) is oldest first; the holder's hash and the number keep two records apart."""
    moment = as_utc(written_at).strftime("%Y%m%dT%H%M%SZ")
    short = hashlib.sha256(holder.encode("utf-8", "replace")).hexdigest()[:_HOLDER_HASH_CHARS]
    return f"{records_prefix(prefix)}{moment}_{short}_{number}{RECORD_SUFFIX}"


def claim_key(record: str) -> str:
    """The key of the claim on the record at ``record``: its key with ``.claim`` for ``.json``."""
    return f"{record.removesuffix(RECORD_SUFFIX)}{CLAIM_SUFFIX}"


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True, populate_by_name=True)


class RecordedExport(_Part):
    """One export started: its image as DescribeImages gave it (``id`` alone when it could not be read) and
    its ExportImage task."""

    image: ManifestImage
    task_id: str | None = None


class StartRecord(_Part):
    """One record, as written and as read back. ``bucket`` and ``prefix`` say where it was written (a record
    copied elsewhere by hand is not trusted)."""

    schema_: str = Field(default=RECORD_SCHEMA, alias="schema")
    bucket: str
    prefix: str
    written_at: datetime
    exports: tuple[RecordedExport, ...]

    def to_bytes(self) -> bytes:
        """The record as written: compact JSON, UTF-8, the published field names, times in RFC 3339."""
        return self.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8")
