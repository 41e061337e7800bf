"""The ECS emulator's state over time, with a fake clock: task progress, images becoming ready, locks, paging."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exporter_tools.emulator.api import ApiAnswer, ApiCall
from exporter_tools.emulator.ecs import EcsService, format_time
from exporter_tools.emulator.fleet import (
    DEMO_FLEET_PATH,
    Fleet,
    FleetBucket,
    FleetImage,
    FleetTask,
    demo_fleet,
    load_fleet,
    new_images_fleet,
)
from handler.models.events import ExportCommand, parse_event
from tests.support.events import EVENT_NAMES, load_event
from tests.support.fakes import FakeClock

START = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
IMAGE = "image-a1"


def service(fleet: Fleet | None = None, *, task_seconds: float = 100.0) -> tuple[EcsService, FakeClock]:
    clock = FakeClock(wall=START)
    fleet = fleet or Fleet(images=(FleetImage(id=IMAGE),), buckets=(FleetBucket(name="bucket-1"),))
    return EcsService(fleet, task_seconds=task_seconds, seed=1, clock=clock), clock


def call(ecs: EcsService, action: str, **query: str) -> ApiAnswer:
    return ecs.handle(ApiCall("GET", action, "2020-04-01", query))


def export(ecs: EcsService, image_id: str = IMAGE) -> ApiAnswer:
    return call(ecs, "ExportImage", ImageId=image_id, TOSBucket="bucket-1", TOSPrefix="p1")


def tasks(ecs: EcsService, **query: str) -> list[dict[str, Any]]:
    result = call(ecs, "DescribeTasks", **query).result
    assert result is not None
    found: list[dict[str, Any]] = result["Tasks"]
    return found


@pytest.mark.parametrize(
    ("elapsed", "status", "process", "ended"),
    [
        (0, "Pending", 0, False),
        (19, "Pending", 0, False),
        (20, "Running", 20, False),
        (75, "Running", 75, False),
        (100, "Succeeded", 100, True),
        (5000, "Succeeded", 100, True),
    ],
)
def test_an_export_task_goes_pending_running_succeeded(
    elapsed: float, status: str, process: int, ended: bool
) -> None:
    """A 100-second export is Pending for its first fifth, Running with its percentage, then Succeeded; its
    EndAt is "" until it ends, as the API answers."""
    ecs, clock = service()
    export(ecs)
    clock.advance(elapsed)

    (task,) = tasks(ecs)

    assert (task["Status"], task["Process"]) == (status, process)
    assert task["EndAt"] == (format_time(START + timedelta(seconds=100)) if ended else "")


def test_the_lock_lasts_as_long_as_the_export() -> None:
    """A second export is refused with ResourceLocked while the first runs, and accepted once it succeeded."""
    ecs, clock = service()
    export(ecs)

    clock.advance(99)
    during = export(ecs)
    clock.advance(1)
    after = export(ecs)

    assert (during.status, during.code) == (412, "OperationDenied.ResourceLocked")
    assert after.status == 200
    assert ecs.export_tasks_by_image() == {IMAGE: 2}


@pytest.mark.parametrize(
    ("task", "status"),
    [
        pytest.param(FleetTask(image_id=IMAGE, type="CopyImage", status="Running"), 412, id="copy-running"),
        pytest.param(FleetTask(image_id=IMAGE, status="Pending"), 412, id="export-pending"),
        pytest.param(FleetTask(image_id=IMAGE, status="Succeeded"), 200, id="export-done"),
        pytest.param(FleetTask(image_id=IMAGE, status="Failed"), 200, id="export-failed"),
    ],
)
def test_tasks_from_the_fleet_lock_while_active(task: FleetTask, status: int) -> None:
    """A task of any type that the fleet file says is pending or running locks its image."""
    fleet = Fleet(images=(FleetImage(id=IMAGE),), buckets=(FleetBucket(name="bucket-1"),), tasks=(task,))
    ecs, clock = service(fleet)
    clock.advance(10_000)  # fleet tasks keep their status however long it runs

    assert export(ecs).status == status


def test_fleet_tasks_are_reported_but_not_counted_as_exports() -> None:
    """DescribeTasks lists a fleet file's earlier export; export_tasks_by_image counts only new ones."""
    earlier = FleetTask(image_id=IMAGE, status="Succeeded", created_hours_ago=30)
    fleet = Fleet(images=(FleetImage(id=IMAGE),), tasks=(earlier,))
    ecs, _ = service(fleet)

    (task,) = tasks(ecs, ResourceId=IMAGE)

    assert (task["Type"], task["Status"]) == ("ExportImage", "Succeeded")
    assert task["CreatedAt"] == format_time(START - timedelta(hours=30))
    assert ecs.export_tasks_by_image() == {}


@pytest.mark.parametrize(
    ("ready_after", "elapsed", "status"),
    [(30, 29, "creating"), (30, 30, "available"), (None, 10**6, "creating")],
)
def test_a_creating_image_becomes_available_when_the_fleet_says(
    ready_after: float | None, elapsed: float, status: str
) -> None:
    """An image created with ready_after_seconds turns available then; without it, it stays creating."""
    image = FleetImage(id=IMAGE, status="creating", ready_after_seconds=ready_after)
    ecs, clock = service(Fleet(images=(image,), buckets=(FleetBucket(name="bucket-1"),)))
    clock.advance(elapsed)

    result = call(ecs, "DescribeImages", **{"ImageIds.1": IMAGE}).result
    exported = export(ecs)

    assert result is not None
    assert result["Images"][0]["Status"] == status
    assert (exported.status == 200) is (status == "available")


def test_paging_is_stable_when_a_task_is_created_between_pages() -> None:
    """NextToken is a cursor: a new task between two pages neither hides nor repeats another task."""
    ecs, clock = service(new_images_fleet(6, bucket="bucket-1"))
    for n in range(5):
        export(ecs, f"image-new{n:04d}")
        clock.advance(1)

    first = call(ecs, "DescribeTasks", MaxResults="2").result
    assert first is not None
    export(ecs, "image-new0005")
    rest = tasks(ecs, MaxResults="100", NextToken=first["NextToken"])

    ids = [t["ResourceId"] for t in first["Tasks"] + rest]
    assert ids == [f"image-new{n:04d}" for n in (4, 3, 2, 1, 0)]


def test_reset_returns_to_the_fleet_as_loaded() -> None:
    """reset() forgets created tasks and starts the image clocks again."""
    ecs, _ = service()
    export(ecs)

    ecs.reset()

    assert tasks(ecs) == []
    assert ecs.stats() == {
        "images": 1,
        "tasks": 0,
        "export_tasks_by_image": {},
        "import_tasks": 0,
        "deleted_images": 0,
    }


def test_a_removed_image_is_gone_and_its_tasks_stay() -> None:
    """remove_image takes the image out as a deletion would: DescribeImages no longer lists it, its export
    task is still listed, an export of it is InvalidImage.NotFound; removing it twice is a KeyError; reset
    brings it back."""
    ecs, _ = service()
    export(ecs)

    ecs.remove_image(IMAGE)

    listed = call(ecs, "DescribeImages", **{"ImageIds.1": IMAGE}).result
    assert listed is not None
    assert listed["Images"] == []
    assert [t["ResourceId"] for t in tasks(ecs)] == [IMAGE]
    assert export(ecs).code == "InvalidImage.NotFound"
    with pytest.raises(KeyError, match=IMAGE):
        ecs.remove_image(IMAGE)
    ecs.reset()
    assert ecs.stats()["images"] == 1


def test_only_get_is_served() -> None:
    """ECS actions are GET requests; another method is refused."""
    ecs, _ = service()

    answer = ecs.handle(ApiCall("POST", "DescribeImages", "2020-04-01", {}))

    assert answer.status == 405


def test_task_ids_look_like_the_apis() -> None:
    """Task ids are ``t-`` and 20 lowercase letters or digits, the same for the same seed."""
    first, _ = service()
    second, _ = service()

    ids = [export(ecs).result for ecs in (first, second)]

    assert ids[0] == ids[1]
    assert ids[0] is not None
    assert re.fullmatch(r"t-[a-z0-9]{20}", ids[0]["TaskId"])


# -- the fleet file -------------------------------------------------------------------------------------------


def _event_image_ids() -> dict[str, tuple[str, ...]]:
    """The images each sample event names, as the function reads them (the invalid sample aside)."""
    named: dict[str, tuple[str, ...]] = {}
    for name in EVENT_NAMES:
        if name == "invalid":
            continue
        command = parse_event(load_event(name))
        named[name] = command.image_ids if isinstance(command, ExportCommand) else ()
    return named


@pytest.mark.parametrize(("event", "image_ids"), sorted(_event_image_ids().items()))
def test_the_demo_fleet_holds_every_image_the_sample_events_name(
    event: str, image_ids: tuple[str, ...]
) -> None:
    """Each image a sample event names exists in the demo fleet as a private, available, exportable image."""
    fleet = {image.id: image for image in demo_fleet().images}

    for image_id in image_ids:
        image = fleet[image_id]
        assert (image.status, image.visibility, image.exportable) == ("available", "private", True)


def test_the_demo_fleet_has_the_cases_the_demo_shows() -> None:
    """The demo fleet has an old image, a creating one, public and shared ones, and both kinds of bucket."""
    fleet = demo_fleet()

    assert any(i.created_hours_ago > 48 and i.status == "available" for i in fleet.images)
    assert any(i.status == "creating" and i.ready_after_seconds is None for i in fleet.images)
    assert {i.visibility for i in fleet.images} == {"private", "public", "shared"}
    assert any(not i.exportable for i in fleet.images)
    assert {(b.name, b.put_allowed) for b in fleet.buckets} == {
        ("demo-exports", True),
        ("locked-bucket", False),
    }
    assert DEMO_FLEET_PATH.name == "demo_fleet.json"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("{not json", "not JSON", id="json"),
        pytest.param('{"images": [{"id": "img-1"}]}', "images.0.id", id="bad-id"),
        pytest.param('{"images": [], "extra": 1}', "extra", id="unknown-key"),
        pytest.param(
            '{"buckets": [{"name": "bkt1", "put_allowed": "maybe"}]}', "buckets.0.put_allowed", id="bad-flag"
        ),
    ],
)
def test_a_broken_fleet_file_names_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    """load_fleet raises a ValueError that names the file and the field."""
    path = tmp_path / "fleet.json"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        load_fleet(path)

    assert str(path) in str(raised.value)
