"""An export of an image with data disks writes one qcow2 file per disk, beside the system one:
``<prefix>_<ImageId>_system.qcow2`` and ``<prefix>_<ImageId>_data<N>.qcow2`` (N from 1, in snapshot order)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from exporter_tools.emulator.api import ApiCall
from exporter_tools.emulator.ecs import EcsService
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage
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
