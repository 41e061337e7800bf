"""The pure decisions: which images a scan picks, which are ready, and which are already exported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handler.core.plan import ExportPlan, availability, dedupe, pick_scan_images
from handler.errors import ConfigurationError, InvalidEvent
from handler.models.api import Image, Task
from handler.models.events import ExportCommand, ScanCommand
from handler.models.settings import Settings

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


@pytest.mark.parametrize(
    ("tasks", "window", "skipped_by"),
    [
        ([], None, None),
        ([task("Pending")], None, "t-pending1"),
        ([task("Running")], 1.0, "t-running1"),
        ([task("Failed")], None, None),
        ([task("UnknownStatus")], 1.0, "t-unknownstatus1"),
        ([task("Failed"), task("Paused", hours_ago=9000)], 1.0, "t-paused9000"),
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


def test_a_task_status_not_known_counts_as_maybe_running_and_says_so() -> None:
    """An export task in a status the function does not know (UnknownStatus) may be running: no second
    export, and the reason names the status."""
    found = dedupe([task("UnknownStatus")], now=NOW, window_hours=None)
    assert found.task is not None
    assert "UnknownStatus" in found.reason


def settings(**env: str) -> Settings:
    return Settings.model_validate({"EXPORT_TOS_BUCKET": "env-bucket", **env})


def test_the_event_wins_over_the_settings_for_bucket_prefix_and_lookback() -> None:
    """The event's TOSBucket, TOSPrefix and LookbackHours override the environment's; the rest comes from it."""
    command = ScanCommand(trigger="timer", tos_bucket="evt-bucket", tos_prefix="evt", lookback_hours=48)
    plan = ExportPlan.of(command, settings(EXPORT_CONCURRENCY="2", VOLCENGINE_REGION="cn-shanghai"))
    assert (plan.bucket, plan.prefix, plan.lookback_hours) == ("evt-bucket", "evt", 48)
    assert (plan.concurrency, plan.region) == (2, "cn-shanghai")
    assert ExportPlan.of(command, settings(VOLCENGINE_MAX_RPS="4")).max_rps == 4
    fallback = ExportPlan.of(ExportCommand(trigger="direct", image_ids=("image-a",)), settings())
    assert (fallback.bucket, fallback.prefix, fallback.lookback_hours) == ("env-bucket", "imgexport", 25)


def test_a_lookback_past_the_dedupe_window_is_an_invalid_event() -> None:
    """A scan looking back further than EXPORT_DEDUPE_HOURS could export an image twice: refused by field."""
    command = ScanCommand(trigger="timer", lookback_hours=100)
    with pytest.raises(InvalidEvent) as refused:
        ExportPlan.of(command, settings(EXPORT_DEDUPE_HOURS="48"))
    assert refused.value.field == "data.LookbackHours"


def test_no_bucket_anywhere_names_the_variable() -> None:
    """Without a bucket in the event or the environment, the error names EXPORT_TOS_BUCKET."""
    command = ExportCommand(trigger="direct", image_ids=("image-a",))
    with pytest.raises(ConfigurationError) as refused:
        ExportPlan.of(command, Settings())
    assert refused.value.source == "EXPORT_TOS_BUCKET"
