"""What a restore asks ImportImage and how an import's end is read: pure decisions, no API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from handler.core.restoring import (
    DRILL_KEY,
    RESTORE_KEY,
    RESTORED_FROM_KEY,
    decide_import,
    drill_name,
    import_spec,
    latest_import_tasks,
    object_url,
    pick_drill,
    restore_name,
    restore_tags,
    restore_tracking_of,
)
from handler.core.selection import pick_scan_images
from handler.core.tracking import DEST_KEY, Destination
from handler.errors import ManifestUnusable
from handler.models.manifest import Manifest
from tests.support.builders import NOW, image, task
from tests.support.builders import manifest as built

SOURCE = "image-src0001"
DEST = Destination("b-1", "nightly")


def manifest(**image_fields: Any) -> Manifest:
    objects = image_fields.pop(
        "objects",
        [
            {"key": f"nightly_{SOURCE}_system.qcow2", "disk": "system", "size_bytes": 1},
            {"key": f"nightly_{SOURCE}_data2.qcow2", "disk": "data", "size_bytes": 1},
            {"key": f"nightly_{SOURCE}_data1.qcow2", "disk": "data", "size_bytes": 1},
        ],
    )
    fields = {
        "id": SOURCE,
        "name": "web-20261201",
        "platform": "Ubuntu",
        "platform_version": "22.04",
        "os_type": "Linux",
        "architecture": "amd64",
        "boot_mode": "UEFI",
        "description": "the web tier",
    } | image_fields
    return Manifest.model_validate(
        {
            "schema": "image-exporter/manifest/1",
            "image": fields,
            "export": {"region": "cn-beijing", "bucket": "b-1", "prefix": "nightly"},
            "objects": objects,
            "verification": {"level": "structure", "verified": True, "checked_at": NOW.isoformat()},
        }
    )


def test_the_import_request_carries_the_manifests_files_in_order_and_its_metadata() -> None:
    """ImportImage gets the system file's URL, the data files in the manifest's order, and the metadata the
    qcow2 files do not carry (platform, OS, architecture, boot mode), as the source image had them."""
    tags = restore_tags(SOURCE, DEST)
    spec = import_spec(
        manifest(), name="web-restored", tos_origin="https://tos-cn-beijing.volces.com", tags=tags
    )

    assert spec.url == f"https://b-1.tos-cn-beijing.volces.com/nightly_{SOURCE}_system.qcow2"
    assert spec.data_urls == (
        f"https://b-1.tos-cn-beijing.volces.com/nightly_{SOURCE}_data2.qcow2",
        f"https://b-1.tos-cn-beijing.volces.com/nightly_{SOURCE}_data1.qcow2",
    )
    assert (spec.platform, spec.platform_version, spec.os_type, spec.architecture, spec.boot_mode) == (
        "Ubuntu",
        "22.04",
        "Linux",
        "amd64",
        "UEFI",
    )
    assert (spec.image_name, spec.description) == ("web-restored", "the web tier")
    assert dict(spec.tags) == {
        RESTORED_FROM_KEY: SOURCE,
        RESTORE_KEY: "importing",
        DEST_KEY: "tos://b-1/nightly",
    }
    assert dict(restore_tags(SOURCE, DEST, drill=True))[DRILL_KEY] == SOURCE


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"platform": ""}, "no image.platform, which ImportImage requires"),
        ({"objects": [{"key": "nightly_x_data1.qcow2", "disk": "data"}]}, "lists no system object"),
    ],
    ids=["no-platform", "no-system-object"],
)
def test_a_manifest_that_cannot_make_an_import_says_what_is_missing(
    fields: dict[str, Any], says: str
) -> None:
    with pytest.raises(ManifestUnusable, match=says) as refused:
        import_spec(manifest(**fields), name="n", tos_origin="https://tos-cn-beijing.volces.com", tags=())
    assert f"tos://b-1/nightly_{SOURCE}.manifest.json" in refused.value.message


def test_urls_quote_the_key_and_take_the_host_of_the_configured_endpoint() -> None:
    assert (
        object_url("b-1", "http://127.0.0.1:9000", "a b/c.qcow2")
        == "https://b-1.127.0.0.1:9000/a%20b/c.qcow2"
    )


def test_names_default_to_the_source_name_and_the_day_and_fit_128_characters() -> None:
    day = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)
    assert restore_name("web-20261201", SOURCE, day) == "web-20261201-restored-20261204"
    assert restore_name("", SOURCE, day) == f"{SOURCE}-restored-20261204"
    assert restore_name("web", SOURCE, day, "mine") == "mine"
    long = restore_name("x" * 200, SOURCE, day)
    assert len(long) == 128
    assert long.endswith("-restored-20261204")
    assert drill_name(SOURCE, day) == f"image-exporter-drill-{SOURCE}-20261204"


def restored_image(
    status: str = "available", *, drill: bool = False, hours_ago: float = 1, image_id: str = "image-new0001"
) -> Any:
    return image(
        image_id,
        status=status,
        hours_ago=hours_ago,
        tags=dict(restore_tags(SOURCE, DEST, drill=drill)),
    )


@pytest.mark.parametrize(
    ("status", "task_status", "drill", "hours_ago", "end"),
    [
        ("creating", "Running", False, 1, None),
        ("available", "Succeeded", False, 1, "restored"),
        ("available", None, False, 1, "restored"),
        ("creating", "Failed", False, 1, "failed"),
        ("error", "Running", False, 1, "failed"),
        ("creating", "Running", False, 30, None),
        ("creating", "Running", True, 23, None),
        ("creating", "Running", True, 25, "timed_out"),
        ("available", "Succeeded", True, 25, "restored"),
    ],
    ids=[
        "running",
        "succeeded",
        "task-gone-image-available",
        "task-failed",
        "image-error",
        "a-slow-restore-waits",
        "drill-within-a-day",
        "drill-past-a-day",
        "late-drill-that-made-it",
    ],
)
def test_an_import_ends_when_its_task_and_image_say_so(
    status: str, task_status: str | None, drill: bool, hours_ago: float, end: str | None
) -> None:
    """Restored only when the task Succeeded (or is gone) and the image is available; failed on a Failed
    task or an image in error; a drill's image left importing a day is timed out (a restore on demand waits)."""
    new = restored_image(status, drill=drill, hours_ago=hours_ago)
    found = task(task_status, kind="ImportImage", image_id=new.image_id) if task_status else None
    assert decide_import(new, found, now=NOW, drill=drill) == end


def test_the_restored_images_tags_are_read_back_whatever_their_case() -> None:
    tracking = restore_tracking_of(
        image(
            "image-new0001",
            tags={
                "Image-Exporter:Restored-From": SOURCE,
                RESTORE_KEY: " Importing ",
                DEST_KEY: "tos://b-1/nightly",
            },
        )
    )
    assert (tracking.source, tracking.state, tracking.dest, tracking.drill) == (
        SOURCE,
        "importing",
        DEST,
        False,
    )
    assert restore_tracking_of(image("image-plain")).source is None


def test_only_import_tasks_count_and_the_latest_wins() -> None:
    old = task("Failed", kind="ImportImage", image_id="image-n", hours_ago=3)
    new = task("Running", kind="ImportImage", image_id="image-n", hours_ago=1)
    export = task("Succeeded", kind="ExportImage", image_id="image-n", hours_ago=0.5)
    assert latest_import_tasks([new, old, export]) == {"image-n": new}


def test_a_scan_never_exports_an_image_a_restore_made() -> None:
    """A restored image's data is already in the bucket, and a drill's image is deleted: scans leave both."""
    images = [image("image-plain"), restored_image(), restored_image(drill=True, image_id="image-drill1")]
    picked = pick_scan_images(images, now=NOW, lookback_hours=25, skip_tracked=True)
    assert [i.image_id for i in picked] == ["image-plain"]


def drillable(
    image_id: str, name: str, *, hours_ago: float, checked_hours_ago: tuple[float, ...] = ()
) -> Manifest:
    return built(image_id, name=name, hours_ago=hours_ago, restored_hours_ago=checked_hours_ago)


def by_name(m: Manifest) -> str:
    return m.image.name.rsplit("-", 1)[0]


def test_a_group_is_drilled_at_most_every_n_days_on_its_newest_verified_export() -> None:
    """web was checked 2 days ago (on an older export): not due, though its newest export is unchecked; api
    was never checked: due, on its newest export."""
    exports = [
        drillable("image-web1", "web-1", hours_ago=96, checked_hours_ago=(48,)),
        drillable("image-web2", "web-2", hours_ago=24),
        drillable("image-api1", "api-1", hours_ago=72),
        drillable("image-api2", "api-2", hours_ago=12),
    ]
    chosen = pick_drill(exports, group=by_name, now=NOW, days=7)
    assert chosen is not None
    assert chosen.image.id == "image-api2"


def test_the_group_checked_longest_ago_goes_first_and_none_when_all_are_fresh() -> None:
    exports = [
        drillable("image-web1", "web-1", hours_ago=24, checked_hours_ago=(24 * 9,)),
        drillable("image-api1", "api-1", hours_ago=24, checked_hours_ago=(24 * 20,)),
        drillable("image-db1", "db-1", hours_ago=24, checked_hours_ago=(24,)),
    ]
    chosen = pick_drill(exports, group=by_name, now=NOW, days=7)
    assert chosen is not None
    assert chosen.image.id == "image-api1"
    fresh = [drillable("image-db1", "db-1", hours_ago=24, checked_hours_ago=(24,))]
    assert pick_drill(fresh, group=by_name, now=NOW, days=7) is None


def test_an_unverified_export_is_never_drilled() -> None:
    assert (
        pick_drill([built("image-web1", name="web-1", verified=False)], group=by_name, now=NOW, days=7)
        is None
    )
