"""Which images a run considers: the images a scan picks, the images a follow-up looks at, and whether a
named image can be exported now. Pure: the flows list the images and ask here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from handler.core.tracking import DRILL_KEY, RESTORED_FROM_KEY, Destination, tracking_of
from handler.models.api import Image

__all__ = ["Availability", "Verdict", "availability", "pick_exporting", "pick_scan_images"]

# Image statuses that end for good; any status not listed here and not "available" may still change.
_NEVER_EXPORTABLE = frozenset({"error"})
_STILL_BECOMING = frozenset({"creating", "pending", "copying", "importing", ""})
_MADE_BY_RESTORE = frozenset({RESTORED_FROM_KEY, DRILL_KEY})


def pick_scan_images(
    images: Iterable[Image],
    *,
    now: datetime,
    lookback_hours: float,
    name_prefix: str | None = None,
    tags: Mapping[str, str] | None = None,
    skip_tracked: bool = False,
) -> list[Image]:
    """The images a timer scan exports: private, available, created within the lookback, matching the name
    prefix and every tag, each once. Images without a creation time are kept (better exported than lost).
    ``skip_tracked`` (``EXPORT_TRACKING=tags``): an image whose tags say exporting, exported or failed is
    left out, whatever its tasks say. An image a restore made (tagged ``image-exporter:restored-from``, a
    drill's included) is never scanned: its export is already in the bucket; an event naming it exports it."""
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
        if skip_tracked and tracking_of(image).blocks_scan:
            continue
        if any(key in _MADE_BY_RESTORE for key, _ in image.tags):
            continue
        picked.setdefault(image.image_id, image)
    return list(picked.values())


def pick_exporting(images: Iterable[Image]) -> tuple[list[tuple[Image, Destination]], list[str]]:
    """The images a follow-up looks at: those tagged ``exporting``, each with the destination its tag names;
    and, apart, the ids of those tagged ``exporting`` whose destination tag is missing or unreadable."""
    exporting: list[tuple[Image, Destination]] = []
    no_destination: list[str] = []
    for image in images:
        tracking = tracking_of(image)
        if tracking.state != "exporting":
            continue
        if tracking.dest is None:
            no_destination.append(image.image_id)
            continue
        exporting.append((image, tracking.dest))
    return exporting, no_destination


Verdict = Literal["ready", "wait", "never"]


@dataclass(frozen=True, slots=True)
class Availability:
    """Whether a named image can be exported now: ``ready``, ``wait`` (may still change) or ``never``."""

    verdict: Verdict
    reason: str = ""


def availability(image: Image | None, image_id: str, region: str) -> Availability:
    """Judge a named image from DescribeImages: only an ``available`` image is exported. A status this
    function does not know waits (a later run asks again) rather than failing for good."""
    if image is None:
        return Availability(
            "never", f"no image {image_id} in region {region}: check the id and VOLCENGINE_REGION"
        )
    if image.status == "available":
        return Availability("ready")
    if image.status in _STILL_BECOMING:
        return Availability(
            "wait", f"the image is still {image.status or 'not ready'}; a later run exports it"
        )
    if image.status in _NEVER_EXPORTABLE:
        return Availability(
            "never", f"the image's status is {image.status}: only available images can be exported"
        )
    return Availability(
        "wait",
        f"the image's status is {image.status[:40]!r}, which this function does not know; "
        "a later run tries again",
    )


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
