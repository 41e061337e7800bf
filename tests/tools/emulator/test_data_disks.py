"""An export of an image with data disks writes one qcow2 file per disk, beside the system one:
``<prefix>_<ImageId>_system.qcow2`` and ``<prefix>_<ImageId>_data<N>.qcow2`` (N from 1, in snapshot order)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from exporter_tools.emulator.api import ApiCall
from exporter_tools.emulator.ecs import EcsService
from exporter_tools.emulator.fleet import (
    Fleet,
    FleetBucket,
    FleetImage,
    finished_exports_fleet,
    new_images_fleet,
)
from exporter_tools.emulator.tos import data_disk_object_key, export_object_key
from handler.core.qcow2 import check_structure
from tests.support.fakes import FakeClock

START = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
GIB = 1 << 30


def test_each_data_disk_gets_its_own_file_of_its_own_size() -> None:
    """Three disks, three sound qcow2 files of their disks' virtual sizes, written when the task ends."""
    clock = FakeClock(wall=START)
    image = FleetImage(id="image-wh01e", size_gb=40, data_disks=(100, 20))
    ecs = EcsService(
        Fleet(images=(image,), buckets=(FleetBucket(name="bucket-1"),)), task_seconds=10, clock=clock
    )
    query = {"ImageId": image.id, "TOSBucket": "bucket-1", "TOSPrefix": "p1"}
    assert ecs.handle(ApiCall("GET", "ExportImage", "2020-04-01", query)).status == 200
    assert ecs.exported_objects() == {}
    clock.set_now(START + timedelta(seconds=10))
    objects = ecs.exported_objects()
    expected = {
        export_object_key("p1", image.id): 40,
        data_disk_object_key("p1", image.id, 1): 100,
        data_disk_object_key("p1", image.id, 2): 20,
    }
    assert {key for _, key in objects} == set(expected)
    assert data_disk_object_key("p1", image.id, 1) == "p1_image-wh01e_data1.qcow2"
    for (_, key), found in objects.items():
        report = check_structure(found.content, found.size_bytes, expected_virtual_size=expected[key] * GIB)
        assert report.ok, (key, report.failure)


def test_a_fleet_of_finished_exports_holds_their_files_and_tracking_tags() -> None:
    """``finished_exports_fleet``: every image is tagged exporting to the destination, its Succeeded export
    task's files are there (a data disk's too, every fifth image), and ``new_images_fleet`` gives the same
    images their data disks."""
    fleet = finished_exports_fleet(6, bucket="bucket-1", prefix="p1", data_disk_every=5)
    ecs = EcsService(fleet, clock=FakeClock(wall=START))
    keys = {key for _, key in ecs.exported_objects()}
    ids = [image.id for image in fleet.images]
    with_disk = [ids[0], ids[5]]
    assert keys == {export_object_key("p1", i) for i in ids} | {
        data_disk_object_key("p1", i, 1) for i in with_disk
    }
    for image in fleet.images:
        assert image.size_gb == 40
        assert ecs.image_tags(image.id) == {
            "image-exporter:state": "exporting",
            "image-exporter:dest": "tos://bucket-1/p1",
        }
    assert [bool(i.data_disks) for i in new_images_fleet(6, data_disk_every=5).images] == [
        True, False, False, False, False, True,
    ]  # fmt: skip
