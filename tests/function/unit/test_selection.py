"""Which images a scan picks and whether a named image can be exported now."""

from __future__ import annotations

import pytest

from handler.core.selection import availability, pick_exporting, pick_scan_images
from handler.models.api import Image
from tests.support.builders import NOW, image


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
    naive = Image.from_api({"ImageId": "image-n", "Status": "available", "CreatedAt": "2026-11-26T11:00:00"})
    assert pick_scan_images([naive], now=NOW, lookback_hours=2)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [("available", "ready"), ("creating", "wait"), ("error", "never"), ("deprecated", "wait")],
)
def test_named_images_are_judged_by_status(status: str, verdict: str) -> None:
    """Only available images are exported; creating ones and statuses not known wait; broken ones are
    refused with the reason."""
    result = availability(image("image-x", status=status), "image-x", "cn-beijing")
    assert result.verdict == verdict
    if status not in ("available", "creating"):
        assert status in result.reason


def test_a_missing_image_says_which_region_was_searched() -> None:
    """An unknown id points the user at the id and the region."""
    result = availability(None, "image-x", "cn-shanghai")
    assert result.verdict == "never"
    assert "image-x" in result.reason
    assert "cn-shanghai" in result.reason


def test_with_tracking_a_scan_leaves_out_every_image_with_a_state_tag() -> None:
    """Exporting, exported or failed: a scan starts none of them again; nor one whose state tag holds a value
    that is none of ours (edited by hand: never exported blindly)."""
    images = [
        image("image-a"),
        image("image-b", tags={"image-exporter:state": "exporting"}),
        image("image-c", tags={"image-exporter:state": "exported"}),
        image("image-d", tags={"image-exporter:state": "failed"}),
        image("image-e", tags={"image-exporter:state": "done"}),
    ]
    picked = pick_scan_images(images, now=NOW, lookback_hours=24, skip_tracked=True)
    assert [i.image_id for i in picked] == ["image-a"]
    assert len(pick_scan_images(images, now=NOW, lookback_hours=24)) == 5


def test_a_follow_up_looks_at_exporting_images_and_names_those_without_a_destination() -> None:
    """Only ``exporting`` images are followed up; one whose destination tag is unreadable is set apart."""
    images = [
        image(
            "image-a", tags={"image-exporter:state": "exporting", "image-exporter:dest": "tos://bkt-1/exp"}
        ),
        image("image-b", tags={"image-exporter:state": "exporting", "image-exporter:dest": "s3://x/y"}),
        image("image-c", tags={"image-exporter:state": "exported", "image-exporter:dest": "tos://bkt-1/exp"}),
        image("image-d"),
    ]
    exporting, no_destination = pick_exporting(images)
    assert [(i.image_id, d.tag_value) for i, d in exporting] == [("image-a", "tos://bkt-1/exp")]
    assert no_destination == ["image-b"]
