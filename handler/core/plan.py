"""Pure decisions: which images a scan picks, and whether an image needs exporting now. No I/O here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from handler.models.api import Image, Task

__all__ = ["ACTIVE", "Availability", "Dedupe", "availability", "dedupe", "pick_scan_images"]

EXPORT_TASK = "ExportImage"
ACTIVE = frozenset({"Pending", "Running"})


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def pick_scan_images(
    images: Iterable[Image],
    *,
    now: datetime,
    lookback_hours: float,
    name_prefix: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> list[Image]:
    """The images a timer scan exports: private, available, created within the lookback, matching the name
    prefix and every tag. Images without a creation time are kept (better exported than lost)."""
    since = now - timedelta(hours=lookback_hours)
    wanted = dict(tags or {})
    picked: dict[str, Image] = {}
    for image in images:
        created = _aware(image.created_at)
        if image.visibility and image.visibility != "private":
            continue
        if image.status != "available" or (created is not None and created < since):
            continue
        if name_prefix and not image.name.startswith(name_prefix):
            continue
        if any(dict(image.tags).get(k) != v for k, v in wanted.items()):
            continue
        picked.setdefault(image.image_id, image)
    return list(picked.values())


@dataclass(frozen=True, slots=True)
class Availability:
    """Whether a named image can be exported now: ``ready``, ``wait`` (still creating) or ``never``."""

    verdict: str
    reason: str = ""


def availability(image: Image | None, image_id: str, region: str) -> Availability:
    """Judge a named image from DescribeImages: only an ``available`` image is exported."""
    if image is None:
        return Availability(
            "never", f"no image {image_id} in region {region}: check the id and VOLCENGINE_REGION"
        )
    if image.status == "available":
        return Availability("ready")
    if image.status in ("creating", "pending", "copying", "importing", ""):
        return Availability(
            "wait", f"the image is still {image.status or 'not ready'}; a later run exports it"
        )
    return Availability(
        "never", f"the image's status is {image.status}: only available images can be exported"
    )


@dataclass(frozen=True, slots=True)
class Dedupe:
    """An existing export task that makes a new one unnecessary (``task`` is None when an export is due)."""

    task: Task | None
    reason: str = ""


def dedupe(tasks: Iterable[Task], *, now: datetime, window_hours: float | None) -> Dedupe:
    """Skip the image when one of its ExportImage tasks is pending or running, or succeeded within the window
    (``None``: ever). A failed task never counts."""
    since = None if window_hours is None else now - timedelta(hours=window_hours)
    succeeded: Task | None = None
    for task in tasks:
        if task.type != EXPORT_TASK:
            continue
        if task.status in ACTIVE:
            return Dedupe(task, f"an export is already {task.status.lower()}")
        if task.status == "Succeeded":
            finished = _aware(task.end_at or task.updated_at or task.created_at)
            if since is None or finished is None or finished >= since:
                newer = succeeded is None or _later(task, succeeded)
                succeeded = task if newer else succeeded
    if succeeded is not None:
        when = "" if window_hours is None else f" within the last {window_hours:g} h"
        return Dedupe(succeeded, f"already exported{when}")
    return Dedupe(None)


def _later(a: Task, b: Task) -> bool:
    epoch = datetime.min.replace(tzinfo=UTC)
    return (_aware(a.end_at or a.created_at) or epoch) > (_aware(b.end_at or b.created_at) or epoch)
