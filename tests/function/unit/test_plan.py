"""Where exports go: the event's choices over the settings, and the event refused when they cannot agree."""

from __future__ import annotations

import pytest

from handler.core.plan import ExportPlan
from handler.errors import ConfigurationError, InvalidEvent
from handler.models.events import ExportCommand, ScanCommand
from handler.models.settings import Settings


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
