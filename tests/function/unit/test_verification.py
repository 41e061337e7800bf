"""Checking a finished export: its objects listed, each qcow2 structure read by ranges, the manifest written.

Against the emulated account (in process): its exports write real, generated qcow2 files into its TOS, and
the function's own TOS client reads them. Damage is made the way it happens: an object overwritten with
other bytes (a truncated or garbage upload) through the same client.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from handler.core.qcow2 import check_structure
from handler.core.verification import (
    MIN_SYSTEM_OBJECT_BYTES,
    Corrupt,
    Missing,
    ObjectRanges,
    Stopped,
    Verified,
    check_export,
    system_key,
)
from handler.errors import ServerError
from handler.models.api import Image, Task
from handler.models.manifest import Manifest, VerifyLevel
from handler.models.objects import ObjectUnreadable
from tests.support.account import Account
from tests.support.builders import fleet_image
from tests.support.fakes import failing

BUCKET, PREFIX = "b-1", "nightly"
GIB = 1024**3
EXPORT_SECONDS = 18 * 60
CLUSTER = 64 * 1024


def exported(image_id: str = "image-ok", **fields: Any) -> tuple[Account, Image, Task]:
    """An account whose image has one finished export into b-1/nightly; the image and its task as the
    follow-up sees them."""
    ecs = Account([fleet_image(image_id, size_gb=40, **fields)], [], task_seconds=EXPORT_SECONDS)
    ecs.export_now(image_id)
    ecs.clock.advance(EXPORT_SECONDS)
    (image,) = ecs.client.describe_images(deadline=1e12, image_ids=[image_id])
    (task,) = ecs.client.describe_tasks(deadline=1e12, resource_ids=[image_id])
    return ecs, image, task


def check(ecs: Account, image: Image, task: Task | None, level: VerifyLevel = "structure", **kw: Any) -> Any:
    return check_export(
        ecs.api,
        image,
        task,
        bucket=BUCKET,
        prefix=PREFIX,
        region="cn-beijing",
        level=level,
        deadline=1e12,
        now=ecs.clock.now,
        **kw,
    )


def read_all(ecs: Account, key: str, size: int) -> bytes:
    return ObjectRanges(ecs.store_client, BUCKET, key, 1e12).read(0, size)


def overwrite(ecs: Account, key: str, data: bytes) -> None:
    ecs.store_client.put_object(BUCKET, key, data, content_type="application/octet-stream", deadline=1e12)


def manifest_of(ecs: Account, key: str) -> Manifest:
    head = ecs.store_client.head_object(BUCKET, key, deadline=1e12)
    size = getattr(head, "size_bytes", 0)
    return Manifest.model_validate_json(read_all(ecs, key, size))


def test_a_sound_export_is_verified_and_its_manifest_is_the_restore_kit() -> None:
    """Structure check passed: verified, the system object with its virtual size, and a manifest in the
    bucket holding the image's metadata, the export and its objects, readable by the one manifest model."""
    ecs, image, task = exported(
        platform="Ubuntu", os_type="Linux", boot_mode="UEFI", platform_version="22.04"
    )

    found = check(ecs, image, task)

    assert isinstance(found, Verified), found
    assert (found.level, found.verified, found.notes) == ("structure", True, ())
    (system,) = found.objects
    assert (system.key, system.disk, system.virtual_size_bytes) == (
        system_key(PREFIX, "image-ok"),
        "system",
        40 * GIB,
    )
    assert system.size_bytes is not None
    assert system.size_bytes >= MIN_SYSTEM_OBJECT_BYTES
    manifest = manifest_of(ecs, found.manifest_key)
    assert found.manifest_key == "nightly_image-ok.manifest.json"
    assert manifest.schema_ == "image-exporter/manifest/1"
    assert (manifest.image.id, manifest.image.platform, manifest.image.boot_mode) == (
        "image-ok",
        "Ubuntu",
        "UEFI",
    )
    assert (manifest.image.os_type, manifest.image.platform_version, manifest.image.size_gib) == (
        "Linux",
        "22.04",
        40,
    )
    assert (manifest.export.task_id, manifest.export.bucket, manifest.export.region) == (
        task.task_id,
        BUCKET,
        "cn-beijing",
    )
    assert manifest.export.finished_at is not None
    assert manifest.objects == found.objects
    assert manifest.verification.verified is True


def test_the_manifest_is_json_with_the_published_field_names() -> None:
    """The manifest a user (or another tool) reads: ``schema``, RFC 3339 times ending in Z, snake_case keys."""
    ecs, image, task = exported()
    found = check(ecs, image, task)
    assert isinstance(found, Verified)
    head = ecs.store_client.head_object(BUCKET, found.manifest_key, deadline=1e12)
    raw = json.loads(read_all(ecs, found.manifest_key, getattr(head, "size_bytes", 0)))
    assert set(raw) >= {"schema", "image", "export", "objects", "verification", "restore_checks"}
    assert raw["schema"] == "image-exporter/manifest/1"
    assert raw["export"]["finished_at"].endswith("Z")
    assert raw["objects"][0]["disk"] == "system"


def test_data_disks_are_every_file_beside_the_system_one_in_order() -> None:
    """An image with two data disks exports three files: the system one first, then the data ones in order,
    each checked."""
    ecs, image, task = exported(data_disks=[100, 20])

    found = check(ecs, image, task)

    assert isinstance(found, Verified), found
    assert [o.disk for o in found.objects] == ["system", "data", "data"]
    assert [o.virtual_size_bytes for o in found.objects] == [40 * GIB, 100 * GIB, 20 * GIB]
    assert image.data_disks == 2


def test_a_data_disk_without_a_file_is_a_note_never_a_failure() -> None:
    """DescribeImages lists a data disk whose file is not there: verified all the same, with a note."""
    ecs, image, task = exported(data_disks=[100])
    data_key = f"{PREFIX}_image-ok_data1.qcow2"
    ecs.store_client.delete_object(BUCKET, data_key, deadline=1e12)

    found = check(ecs, image, task)

    assert isinstance(found, Verified), found
    assert len(found.objects) == 1
    (note,) = found.notes
    assert note == (
        "the image lists 1 data disk(s) but 0 data file(s) were found under the export's prefix: a data disk "
        "without a file is not part of this export"
    )


def test_no_system_object_is_missing() -> None:
    """With no system file under the prefix the export is missing (the follow-up confirms it later)."""
    ecs, image, task = exported()
    ecs.store_client.delete_object(BUCKET, system_key(PREFIX, "image-ok"), deadline=1e12)

    found = check(ecs, image, task)

    assert isinstance(found, Missing)
    assert found.key == system_key(PREFIX, "image-ok")


def test_a_truncated_upload_is_corrupt_naming_the_object_and_the_check() -> None:
    """The likeliest defect: the file cut short. Its tables or clusters lie past the end: corrupt."""
    ecs, image, task = exported()
    key = system_key(PREFIX, "image-ok")
    whole = read_all(ecs, key, 64 * 1024 * 1024)
    overwrite(ecs, key, whole[: len(whole) * 3 // 4])

    found = check(ecs, image, task)

    assert isinstance(found, Corrupt), found
    assert found.key == key
    assert f"tos://{BUCKET}/{key}: " in found.message
    assert "truncated" in found.message


def test_garbage_of_a_plausible_size_is_not_qcow2() -> None:
    """Bytes that are not a qcow2 file fail on the header, whatever their size."""
    ecs, image, task = exported()
    key = system_key(PREFIX, "image-ok")
    overwrite(ecs, key, b"\x00garbage" * (MIN_SYSTEM_OBJECT_BYTES // 8 + 1))

    found = check(ecs, image, task)

    assert isinstance(found, Corrupt), found
    assert "magic" in found.message


def test_a_virtual_size_other_than_the_image_s_is_corrupt() -> None:
    """A system file whose virtual size is not the image's Size GiB is another disk's file, or a broken one."""
    ecs, image, task = exported()
    wrong = dataclasses.replace(image, size_gib=41)

    found = check(ecs, wrong, task)

    assert isinstance(found, Corrupt), found
    assert "virtual size" in found.message


@pytest.mark.parametrize("size", [0, 1, MIN_SYSTEM_OBJECT_BYTES - 1])
@pytest.mark.parametrize("level", ["structure", "head"])
def test_an_implausibly_small_system_object_is_corrupt_at_every_checking_level(
    size: int, level: VerifyLevel
) -> None:
    """A 0-byte or tiny system object is never verified, also when only its existence is checked."""
    ecs, image, task = exported()
    key = system_key(PREFIX, "image-ok")
    overwrite(ecs, key, b"Q" * size)

    found = check(ecs, image, task, level)

    assert isinstance(found, Corrupt), found
    assert f"tos://{BUCKET}/{key} is {size} bytes" in found.message


def test_head_level_reads_no_object_and_off_level_reads_nothing_but_writes_the_manifest() -> None:
    """``head`` lists the objects and reads none of them; ``off`` trusts the task (not verified), and both
    still write the manifest a restore needs."""
    ecs, image, task = exported()
    head = check(ecs, image, task, "head")
    assert isinstance(head, Verified)
    assert (head.level, head.verified, ecs.count("GetObject")) == ("head", True, 0)
    assert head.objects[0].virtual_size_bytes is None

    off = check(ecs, image, task, "off")
    assert isinstance(off, Verified)
    assert (off.level, off.verified) == ("off", False)
    assert ecs.count("ListObjectsV2") == 1  # only the head-level check listed
    assert ecs.count("PutObject") == 2
    assert manifest_of(ecs, off.manifest_key).verification.level == "off"


def test_a_refused_listing_is_unreadable_and_a_failed_read_or_write_stops_the_check() -> None:
    """A 403 on the listing says the export could not be checked; a read or a manifest write that fails
    stops the check with the step and the error (the follow-up defers the export)."""
    ecs, image, task = exported()
    ecs.ecs.set_bucket_access(BUCKET, "none")
    assert isinstance(check(ecs, image, task), ObjectUnreadable)
    ecs.ecs.set_bucket_access(BUCKET, "read-write")

    ecs.api.on("GetObject", failing(ServerError("down", code="InternalError", action="GetObject")))
    stopped = check(ecs, image, task)
    assert isinstance(stopped, Stopped)
    assert stopped.step == f"reading tos://{BUCKET}/{system_key(PREFIX, 'image-ok')}"

    ecs.api.on("GetObject", lambda call, send: send())
    ecs.ecs.set_bucket_access(BUCKET, "read-only")
    refused = check(ecs, image, task)
    assert isinstance(refused, Stopped)
    assert refused.step == f"writing its manifest tos://{BUCKET}/nightly_image-ok.manifest.json"
    assert refused.error.code == "TosAccessDenied.PutObject"


def test_a_large_object_s_l2_tables_are_sampled_within_the_read_budget_and_noted() -> None:
    """Past the read budget an even sample of L2 tables is read, and the manifest notes it (the emulated
    file has two L2 tables; the budget leaves room for one)."""
    ecs, image, task = exported()
    whole = check(ecs, image, task)
    assert isinstance(whole, Verified)
    assert whole.notes == ()
    system = whole.objects[0]
    reader = ObjectRanges(ecs.store_client, BUCKET, system.key, 1e12)
    full = check_structure(reader, system.size_bytes or 0, expected_virtual_size=None)
    assert (full.l2_tables_total, full.sampled) == (2, False)

    found = check(ecs, image, task, max_read_bytes=full.bytes_read - CLUSTER)

    assert isinstance(found, Verified), found
    assert any("L2 tables read (an even sample" in note for note in found.notes)
