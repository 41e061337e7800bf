"""The pure decisions: which images a scan picks, which are ready, and which are already exported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handler.core.plan import availability, dedupe, pick_scan_images
from handler.models.api import Image, Task

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def image(image_id: str, *, hours_ago: float = 1, **fields: Any) -> Image:
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


def test_scan_keeps_private_available_recent_images() -> None:
    """A scan exports private, available images created within the lookback; others are left alone."""
    images = [
        image("image-new", hours_ago=2),
        image("image-old", hours_ago=30),
        image("image-public", visibility="public"),
        image("image-creating", status="creating"),
        image("image-new", hours_ago=2),
    ]
    picked = pick_scan_images(images, now=NOW, lookback_hours=25)
    assert [i.image_id for i in picked] == ["image-new"]


def test_scan_filters_by_name_prefix_and_every_tag() -> None:
    """Name prefix and tags narrow the scan; every tag must match its value."""
    images = [
        image("image-1", name="prod-web", tags={"env": "prod", "team": "web"}),
        image("image-2", name="prod-db", tags={"env": "prod"}),
        image("image-3", name="dev-web", tags={"env": "prod", "team": "web"}),
        image("image-4", name="prod-web2", tags={"env": "dev", "team": "web"}),
    ]
    picked = pick_scan_images(
        images, now=NOW, lookback_hours=25, name_prefix="prod", tags={"env": "prod", "team": "web"}
    )
    assert [i.image_id for i in picked] == ["image-1"]


def test_naive_creation_times_are_read_as_utc() -> None:
    """A timestamp without an offset is taken as UTC rather than crashing the comparison."""
    naive = Image.model_validate(
        {"ImageId": "image-n", "Status": "available", "CreatedAt": "2026-11-26T11:00:00"}
    )
    assert pick_scan_images([naive], now=NOW, lookback_hours=2)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [("available", "ready"), ("creating", "wait"), ("error", "never"), ("deprecated", "never")],
)
def test_named_images_are_judged_by_status(status: str, verdict: str) -> None:
    """Only available images are exported; creating ones wait; broken ones are refused with the reason."""
    result = availability(image("image-x", status=status), "image-x", "cn-beijing")
    assert result.verdict == verdict


def test_a_missing_image_says_which_region_was_searched() -> None:
    """An unknown id points the user at the id and the region."""
    result = availability(None, "image-x", "cn-shanghai")
    assert result.verdict == "never"
    assert "image-x" in result.reason
    assert "cn-shanghai" in result.reason


@pytest.mark.parametrize(
    ("tasks", "window", "skipped_by"),
    [
        ([], None, None),
        ([task("Pending")], None, "t-pending1"),
        ([task("Running")], 1.0, "t-running1"),
        ([task("Failed")], None, None),
        ([task("Succeeded", hours_ago=5000)], None, "t-succeeded5000"),
        ([task("Succeeded", hours_ago=50)], 48.0, None),
        ([task("Succeeded", hours_ago=20)], 48.0, "t-succeeded20"),
        ([task("Succeeded", kind="CreateImage")], None, None),
        (
            [task("Failed"), task("Succeeded", hours_ago=3), task("Succeeded", hours_ago=2)],
            None,
            "t-succeeded2",
        ),
    ],
)
def test_dedupe_skips_active_and_succeeded_exports(
    tasks: list[Task], window: float | None, skipped_by: str | None
) -> None:
    """Pending, running, or succeeded-within-window exports make a new export unnecessary; failures don't."""
    found = dedupe(tasks, now=NOW, window_hours=window)
    assert (found.task.task_id if found.task else None) == skipped_by
    if skipped_by:
        assert found.reason
