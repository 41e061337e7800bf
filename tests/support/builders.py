"""Builders for the API's records as DescribeImages and DescribeTasks answer them, times counted back from one
fixed moment, so a test says only what matters to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from handler.models.api import Image, Task

__all__ = ["NOW", "image", "task"]

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
