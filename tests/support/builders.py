"""Builders for the API's records as DescribeImages and DescribeTasks answer them, times counted back from one
fixed moment, and for the emulated account's (``tests.support.account``), so a test says only what matters to
it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from exporter_tools.emulator.fleet import FleetImage, FleetTask
from handler.models.api import Image, Task

__all__ = ["NOW", "fleet_image", "fleet_task", "image", "task"]

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def image(image_id: str, *, hours_ago: float = 1, **fields: Any) -> Image:
    """A private available image created ``hours_ago`` before ``NOW``; ``name``, ``status``, ``visibility``
    and ``tags`` override."""
    data: dict[str, Any] = {
        "ImageId": image_id,
        "ImageName": fields.pop("name", f"name-{image_id}"),
        "Status": fields.pop("status", "available"),
        "Visibility": fields.pop("visibility", "private"),
        "CreatedAt": (NOW - timedelta(hours=hours_ago)).isoformat(),
        "Tags": [{"Key": k, "Value": v} for k, v in fields.pop("tags", {}).items()],
    }
    return Image.model_validate(data)


def task(status: str, *, kind: str = "ExportImage", hours_ago: float = 1, image_id: str = "image-a") -> Task:
    """A task of ``image_id`` created, updated and ended ``hours_ago`` before ``NOW``."""
    moment = (NOW - timedelta(hours=hours_ago)).isoformat()
    return Task.model_validate(
        {
            "Id": f"t-{status.lower()}{hours_ago:g}",
            "Type": kind,
            "Status": status,
            "ResourceId": image_id,
            "CreatedAt": moment,
            "UpdatedAt": moment,
            "EndAt": moment,
        }
    )


def fleet_image(image_id: str, *, hours_ago: float = 1, **fields: Any) -> FleetImage:
    """An image of the emulated account: private, available, created ``hours_ago`` before its clock's now;
    ``name``, ``status``, ``visibility``, ``tags``, ``size_gb`` and ``export_outcome`` override."""
    return FleetImage.model_validate({"id": image_id, "created_hours_ago": hours_ago, **fields})


def fleet_task(image_id: str, status: str, *, kind: str = "ExportImage", hours_ago: float = 1) -> FleetTask:
    """A task the emulated account held before the test (its status stays as given), created ``hours_ago``
    before its clock's now."""
    return FleetTask.model_validate(
        {"image_id": image_id, "type": kind, "status": status, "created_hours_ago": hours_ago}
    )
