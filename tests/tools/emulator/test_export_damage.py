"""``set_export_damage``: each kind spoils one disk's file of an image's next exports so that one check the
function makes fails (``handler.core.qcow2.check_structure``, or the size rule for a system object), and
``missing_data_disk`` leaves a data disk's file unwritten."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from exporter_tools.emulator.api import ApiCall
from exporter_tools.emulator.ecs import EcsService
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage
from exporter_tools.emulator.object_store import StoredObject
from exporter_tools.emulator.tos import data_disk_object_key, export_object_key
from handler.core.qcow2 import check_structure
from handler.core.verification import MIN_SYSTEM_OBJECT_BYTES
from tests.support.fakes import FakeClock

START = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
GIB = 1 << 30
IMAGE = FleetImage(id="image-dam4ged", size_gb=40, data_disks=(100,))


def exported_after(ecs: EcsService, clock: FakeClock) -> dict[str, StoredObject]:
    query = {"ImageId": IMAGE.id, "TOSBucket": "bucket-1", "TOSPrefix": "p1"}
    assert ecs.handle(ApiCall("GET", "ExportImage", "2020-04-01", query)).status == 200
    clock.advance(11)
    return {key: found for (_, key), found in ecs.exported_objects().items()}


def account() -> tuple[EcsService, FakeClock]:
    clock = FakeClock(wall=START, still=True)
    fleet = Fleet(images=(IMAGE,), buckets=(FleetBucket(name="bucket-1"),))
    return EcsService(fleet, task_seconds=10, clock=clock), clock


def check(found: StoredObject, size_gb: int) -> str | None:
    report = check_structure(found.content, found.size_bytes, expected_virtual_size=size_gb * GIB)
    return report.failure


@pytest.mark.parametrize(
    ("damage", "failure"),
    [
        ("truncated", "past the end of the object"),
        ("garbage", "not a qcow2 file"),
        ("wrong_virtual_size", "virtual size: the header says"),
        ("l2_past_end", "L2 table"),
        ("data_past_end", "data cluster"),
        ("dirty", "marked dirty"),
        ("encrypted", "encrypted"),
    ],
)
@pytest.mark.parametrize("disk", ["system", "data1"])
def test_each_damage_fails_the_structure_check_as_intended(damage: str, failure: str, disk: str) -> None:
    """The damaged disk's file fails the check with the message of that check; the other disk's passes."""
    ecs, clock = account()
    ecs.set_export_damage(IMAGE.id, damage, disk=disk)  # type: ignore[arg-type]
    objects = exported_after(ecs, clock)
    system = objects[export_object_key("p1", IMAGE.id)]
    data = objects[data_disk_object_key("p1", IMAGE.id, 1)]
    spoilt, sound = (system, data) if disk == "system" else (data, system)
    spoilt_size, sound_size = (40, 100) if disk == "system" else (100, 40)
    message = check(spoilt, spoilt_size)
    assert message is not None
    assert failure in message
    assert check(sound, sound_size) is None
    if damage == "truncated":
        assert "truncated" in message
        assert spoilt.size_bytes < sound.size_bytes
    if damage == "l2_past_end":
        assert "lies past the end" in message


def test_a_tiny_system_file_is_sound_but_under_the_size_rule() -> None:
    """``tiny``: the file is valid qcow2 but under 1 MiB, which the function refuses for a system disk."""
    ecs, clock = account()
    ecs.set_export_damage(IMAGE.id, "tiny")
    system = exported_after(ecs, clock)[export_object_key("p1", IMAGE.id)]
    assert check(system, 40) is None
    assert system.size_bytes < MIN_SYSTEM_OBJECT_BYTES


def test_a_missing_data_disk_writes_only_the_others_and_damage_lasts_until_cleared() -> None:
    """``missing_data_disk`` leaves data1 unwritten; tasks created before a change keep theirs; None clears."""
    ecs, clock = account()
    ecs.set_export_damage(IMAGE.id, "missing_data_disk", disk="data1")
    assert set(exported_after(ecs, clock)) == {export_object_key("p1", IMAGE.id)}
    ecs.set_export_damage(IMAGE.id, None, disk="data1")
    assert len(exported_after(ecs, clock)) == 2


def test_a_damage_the_image_cannot_have_is_refused() -> None:
    """An unknown kind, a disk the image lacks, missing_data_disk on the system disk, an unknown image."""
    ecs, _ = account()
    with pytest.raises(ValueError, match="damage must be"):
        ecs.set_export_damage(IMAGE.id, "melted")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not 'data2'"):
        ecs.set_export_damage(IMAGE.id, "dirty", disk="data2")
    with pytest.raises(ValueError, match="spoils a data disk"):
        ecs.set_export_damage(IMAGE.id, "missing_data_disk")
    with pytest.raises(KeyError):
        ecs.set_export_damage("image-nope", "dirty")
