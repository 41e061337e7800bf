"""What an export consists of, as its result and its manifest say: one object per disk (``ManifestObject``),
and how they were checked (``VerifyLevel``). Apart from the TOS answers (``handler.models.objects``) so that a
result, which carries these, imports nothing of TOS.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict
from pydantic.dataclasses import dataclass as pydantic_dataclass

__all__ = ["Disk", "ManifestObject", "VerifyLevel"]

# How an export's objects are checked (EXPORT_VERIFY), and which disk an object holds.
VerifyLevel = Literal["structure", "head", "off"]
Disk = Literal["system", "data"]


@pydantic_dataclass(frozen=True, slots=True, config=ConfigDict(extra="ignore", defer_build=True))
class ManifestObject:
    """One object of an export, in its manifest and in its ``exported`` result (a slotted record: a result
    holds one per disk of every export it reports)."""

    key: str
    disk: Disk
    size_bytes: int | None = None
    etag: str | None = None
    crc64: str | None = None
    virtual_size_bytes: int | None = None
