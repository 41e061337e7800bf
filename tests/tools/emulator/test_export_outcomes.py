"""How emulated export tasks end over their configured time: succeeded, failed or without an object, with
``Process`` and ``EndAt`` as DescribeTasks reports them, from the Python API and from the command line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from exporter_tools.emulator.api import ApiCall
from exporter_tools.emulator.ecs import EcsService, format_time
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage, FleetTask, follow_up_fleet
from exporter_tools.emulator.object_store import StoredObject
from exporter_tools.emulator.qcow2_image import qcow2_layout
from exporter_tools.emulator.tos import export_object_key
from handler.adapters.signing import Credentials
from tests.support.emulated import signed_get
from tests.support.fakes import FakeClock
from tests.tools.emulator.tos_requests import signed_tos_request

START = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def account(task_seconds: float = 100.0) -> tuple[EcsService, FakeClock]:
    images = (
        FleetImage(id="image-ok", size_gb=40),
        FleetImage(id="image-bad", export_outcome="failed"),
        FleetImage(id="image-gone", export_outcome="no_object"),
    )
    clock = FakeClock(wall=START)
    fleet = Fleet(images=images, buckets=(FleetBucket(name="bucket-1"),))
    return EcsService(fleet, task_seconds=task_seconds, seed=1, clock=clock), clock


def virtual_size(found: StoredObject) -> int:
    """The virtual size the object's qcow2 header states."""
    return int.from_bytes(found.content.read(24, 8))


def export(ecs: EcsService, image_id: str) -> None:
    query = {"ImageId": image_id, "TOSBucket": "bucket-1", "TOSPrefix": "p1"}
    assert ecs.handle(ApiCall("GET", "ExportImage", "2020-04-01", query)).status == 200


def task_of(ecs: EcsService, image_id: str) -> dict[str, Any]:
    result = ecs.handle(ApiCall("GET", "DescribeTasks", "2020-04-01", {"ResourceId": image_id})).result
    assert result is not None
    return dict(result["Tasks"][0])


@pytest.mark.parametrize(
    ("seconds", "status", "process"),
    [(10, "Pending", 0), (30, "Running", 30), (49, "Running", 49), (50, "Failed", 50), (500, "Failed", 50)],
)
def test_a_failing_export_fails_halfway(seconds: float, status: str, process: int) -> None:
    """An image whose exports fail runs like any other, then Fails halfway with its Process and EndAt."""
    ecs, clock = account()
    export(ecs, "image-bad")
    clock.set_now(START + timedelta(seconds=seconds))
    task = task_of(ecs, "image-bad")
    assert (task["Status"], task["Process"]) == (status, process)
    if status == "Failed":
        assert task["EndAt"] == format_time(START + timedelta(seconds=50))
    else:
        assert task["EndAt"] == ""


def test_objects_exist_only_for_exports_that_succeeded_with_one() -> None:
    """Only a Succeeded task of outcome ``succeeded`` writes its object, when the task ends, of the image's size."""
    ecs, clock = account()
    for image in ("image-ok", "image-bad", "image-gone"):
        export(ecs, image)
    clock.set_now(START + timedelta(seconds=99))
    assert ecs.exported_objects() == {}
    clock.set_now(START + timedelta(seconds=100))
    objects = ecs.exported_objects()
    key = export_object_key("p1", "image-ok")
    assert list(objects) == [("bucket-1", key)]
    assert virtual_size(objects[("bucket-1", key)]) == 40 * 2**30
    assert objects[("bucket-1", key)].written_at == START + timedelta(seconds=100)
    assert task_of(ecs, "image-gone")["Status"] == "Succeeded"


def test_the_outcome_can_be_changed_for_the_next_export() -> None:
    """set_export_outcome changes how the image's next export ends; the task already made keeps its own."""
    ecs, clock = account()
    export(ecs, "image-ok")
    ecs.set_export_outcome("image-ok", "failed")
    clock.set_now(START + timedelta(seconds=100))
    assert task_of(ecs, "image-ok")["Status"] == "Succeeded"
    export(ecs, "image-ok")
    clock.set_now(START + timedelta(seconds=160))
    assert task_of(ecs, "image-ok")["Status"] == "Failed"
    with pytest.raises(ValueError, match="succeeded, failed or no_object"):
        ecs.set_export_outcome("image-ok", "lost")  # type: ignore[arg-type]


def test_an_export_that_ended_before_the_start_is_in_the_fleet_with_its_object() -> None:
    """A fleet ExportImage task with a destination is an export that already ended: Succeeded, it wrote its
    object (of the image's size, when the task ended); Failed, or without a destination, it wrote none."""
    images = (FleetImage(id="image-done", size_gb=20), FleetImage(id="image-bad"), FleetImage(id="image-old"))
    tasks = (
        FleetTask(image_id="image-done", bucket="bucket-1", prefix="p1", created_hours_ago=2),
        FleetTask(image_id="image-bad", status="Failed", bucket="bucket-1", prefix="p1"),
        FleetTask(image_id="image-old"),
    )
    clock = FakeClock(wall=START)
    fleet = Fleet(images=images, buckets=(FleetBucket(name="bucket-1"),), tasks=tasks)
    ecs = EcsService(fleet, task_seconds=100, seed=1, clock=clock)

    objects = ecs.exported_objects()

    key = export_object_key("p1", "image-done")
    assert list(objects) == [("bucket-1", key)]
    assert virtual_size(objects[("bucket-1", key)]) == 20 * 2**30
    assert objects[("bucket-1", key)].written_at == START - timedelta(hours=2) + timedelta(seconds=100)
    assert task_of(ecs, "image-done")["Status"] == "Succeeded"
    assert task_of(ecs, "image-bad")["Status"] == "Failed"
    assert ecs.export_tasks_by_image() == {}  # the fleet's tasks are not exports made here


@pytest.mark.parametrize(
    "task",
    [
        pytest.param({"image_id": "image-a1", "bucket": "bucket-1"}, id="no-prefix"),
        pytest.param({"image_id": "image-a1", "prefix": "p1"}, id="no-bucket"),
        pytest.param({"image_id": "image-a1", "bucket": "bucket-1", "prefix": "p-1"}, id="bad-prefix"),
        pytest.param(
            {"image_id": "image-a1", "type": "CopyImage", "bucket": "bucket-1", "prefix": "p1"},
            id="not-export",
        ),
    ],
)
def test_a_fleet_task_destination_needs_an_export_a_bucket_and_a_prefix(task: dict[str, str]) -> None:
    """Only an ExportImage task names a destination, and then both its bucket and a valid prefix."""
    with pytest.raises(ValidationError):
        FleetTask.model_validate(task)


def test_the_command_line_task_seconds_and_fleet_outcomes_reach_the_api(tmp_path: Path) -> None:
    """``exporter-tools emulator --task-seconds 0`` ends tasks at once (Succeeded or Failed, Process, EndAt), and
    serves the succeeded export's object to a signed TOS HEAD on the same port."""
    fleet = {
        "images": [{"id": "image-ok", "size_gb": 3}, {"id": "image-bad", "export_outcome": "failed"}],
        "buckets": [{"name": "bucket-1"}],
    }
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(fleet), encoding="utf-8")
    keys = Credentials("AKLTcli", "cli-secret")
    command = [sys.executable, "-m", "exporter_tools.emulator", "--port", "0", "--fleet", str(path)]
    command += ["--access-key", keys.access_key, "--secret-key", keys.secret_key, "--task-seconds", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        endpoint = process.stdout.readline().strip().removeprefix("emulator listening on ")
        target: Any = SimpleNamespace(
            endpoint=endpoint, region="cn-beijing", port=int(endpoint.rsplit(":", 1)[1])
        )
        for image in ("image-ok", "image-bad"):
            params = {"ImageId": image, "TOSBucket": "bucket-1", "TOSPrefix": "p1"}
            assert signed_get(target, "ExportImage", params, credentials=keys).status_code == 200
        answer = signed_get(
            target,
            "DescribeTasks",
            {"ResourceIds.1": "image-ok", "ResourceIds.2": "image-bad"},
            credentials=keys,
        )
        tasks = {t["ResourceId"]: t for t in answer.json()["Result"]["Tasks"]}
        assert (tasks["image-ok"]["Status"], tasks["image-ok"]["Process"]) == ("Succeeded", 100)
        assert tasks["image-bad"]["Status"] == "Failed"
        assert all(t["EndAt"] for t in tasks.values())
        found = signed_tos_request(target, "bucket-1", export_object_key("p1", "image-ok"), credentials=keys)
        assert found.status_code == 200
        assert int(found.headers["content-length"]) == qcow2_layout(3 * 2**30).length
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    assert process.returncode == 0


def test_the_follow_up_fleet_ends_its_four_exports_four_ways() -> None:
    """follow_up_fleet: two exports leave objects of 40 and 20 GiB, one task Fails, one Succeeds with no object."""
    clock = FakeClock(wall=START)
    ecs = EcsService(follow_up_fleet(), task_seconds=10.0, seed=1, clock=clock)
    ids = [image.id for image in follow_up_fleet().images]
    for image_id in ids:
        query = {"ImageId": image_id, "TOSBucket": "demo-exports", "TOSPrefix": "imgexport"}
        assert ecs.handle(ApiCall("GET", "ExportImage", "2020-04-01", query)).status == 200
    clock.set_now(START + timedelta(seconds=10))
    statuses = [task_of(ecs, image_id)["Status"] for image_id in ids]
    assert statuses == ["Succeeded", "Succeeded", "Failed", "Succeeded"]
    sizes = {key: virtual_size(found) // 2**30 for (_, key), found in ecs.exported_objects().items()}
    assert sizes == {export_object_key("imgexport", ids[0]): 40, export_object_key("imgexport", ids[1]): 20}
