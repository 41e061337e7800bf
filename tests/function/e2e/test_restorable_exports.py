"""Exported means checked: an export's files listed in TOS, each qcow2 structure read by ranged GETs, the
manifest written beside them, against the ECS emulator and its TOS over real sockets."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage
from handler.core.tracking import STATE_KEY
from handler.models.manifest import Manifest
from tests.support.events import load_event

Emulated = Callable[..., EcsEmulator]
Run = Callable[..., tuple[dict[str, Any], bool]]

GIB = 1024**3
TASK_SECONDS = 1.0
BUCKET, PREFIX = "demo-exports", "imgexport"
WHOLE = "image-wh0lemach1ne"


def timer(n: int) -> dict[str, Any]:
    return {**load_event("timer_empty"), "id": f"timer-firing-{n}"}


def fleet(*images: FleetImage) -> Fleet:
    return Fleet(images=images, buckets=(FleetBucket(name=BUCKET),))


def exported_then_followed(emulated: Emulated, run_handler: Run, *images: FleetImage, **env: str) -> Any:
    """Start the images' exports with one timer run, let them end, follow them up with the next: that run's
    results by image, and the emulator."""
    emulator = emulated(fleet(*images), task_seconds=TASK_SECONDS, env=env)
    first, _ = run_handler(timer(1))
    assert {r["status"] for r in first["results"]} == {"started"}
    time.sleep(TASK_SECONDS + 0.5)
    second, raised = run_handler(timer(2))
    return {r["image_id"]: r for r in second["results"]}, raised, emulator


def manifest_in(emulator: EcsEmulator, key: str) -> dict[str, Any]:
    stored = emulator.tos.head(BUCKET, key)
    assert stored is not None, f"no manifest at {key}"
    loaded: dict[str, Any] = json.loads(stored.content.read(0, stored.size_bytes))
    return loaded


def test_an_image_with_two_data_disks_exports_three_verified_files_and_its_manifest(
    emulated: Emulated, run_handler: Run
) -> None:
    """A whole-machine image (a system disk and two data disks) is followed up as three files, each qcow2
    structure checked: exported, verified, the three objects in disk order, and a manifest in the bucket that
    holds the image's metadata (what a restore needs once the image is gone) and the same objects."""
    image = FleetImage(
        id=WHOLE,
        name="web-20261201",
        size_gb=40,
        data_disks=(100, 20),
        platform="Ubuntu",
        platform_version="22.04",
        boot_mode="UEFI",
    )
    results, raised, emulator = exported_then_followed(emulated, run_handler, image)

    assert not raised
    outcome = results[WHOLE]
    assert (outcome["status"], outcome["verified"], outcome["verification"]) == (
        "exported",
        True,
        "structure",
    )
    keys = [o["key"] for o in outcome["objects"]]
    assert keys == [
        f"{PREFIX}_{WHOLE}_system.qcow2",
        f"{PREFIX}_{WHOLE}_data1.qcow2",
        f"{PREFIX}_{WHOLE}_data2.qcow2",
    ]
    assert [o["disk"] for o in outcome["objects"]] == ["system", "data", "data"]
    assert [o["virtual_size_bytes"] for o in outcome["objects"]] == [40 * GIB, 100 * GIB, 20 * GIB]
    assert outcome["object_key"] == keys[0]
    assert outcome["manifest_key"] == f"{PREFIX}_{WHOLE}.manifest.json"
    manifest = manifest_in(emulator, outcome["manifest_key"])
    Manifest.model_validate(manifest)  # the one model that restore and retention read
    assert manifest["schema"] == "image-exporter/manifest/1"
    assert (manifest["image"]["name"], manifest["image"]["platform"]) == ("web-20261201", "Ubuntu")
    assert (manifest["image"]["boot_mode"], manifest["image"]["size_gib"]) == ("UEFI", 40)
    assert [s["kind"] for s in manifest["image"]["snapshots"]] == ["system", "data", "data"]
    assert manifest["export"]["task_id"] == outcome["task_id"]
    assert [o["key"] for o in manifest["objects"]] == keys
    assert manifest["verification"]["verified"] is True
    assert emulator.ecs.image_tags(WHOLE)[STATE_KEY] == "exported"


@pytest.mark.parametrize(
    ("damage", "disk", "says"),
    [
        ("truncated", "system", "truncated"),
        ("garbage", "system", "magic"),
        ("wrong_virtual_size", "system", "virtual size"),
        ("l2_past_end", "system", "L2 table"),
        ("data_past_end", "data1", "data cluster"),
        ("dirty", "system", "dirty"),
        ("encrypted", "data1", "encrypt"),
        ("tiny", "system", "too small"),
    ],
)
def test_each_kind_of_damage_is_export_object_corrupt_naming_the_file_and_the_check(
    emulated: Emulated, run_handler: Run, damage: str, disk: str, says: str
) -> None:
    """A spoilt file of any disk fails the export: export_failed ExportObjectCorrupt, the message naming
    that file and what is wrong with it; the image is tagged failed and no manifest is written."""
    image = FleetImage(id=WHOLE, size_gb=40, data_disks=(100,))
    emulator = emulated(fleet(image), task_seconds=TASK_SECONDS)
    emulator.set_export_damage(WHOLE, damage, disk=disk)  # type: ignore[arg-type]
    run_handler(timer(1))
    time.sleep(TASK_SECONDS + 0.5)

    second, _ = run_handler(timer(2))

    (outcome,) = second["results"]
    assert (outcome["status"], outcome["error"]["code"]) == ("export_failed", "ExportObjectCorrupt")
    assert f"{PREFIX}_{WHOLE}_{disk}.qcow2" in outcome["error"]["message"]
    assert says in outcome["error"]["message"].lower() or says in outcome["error"]["message"]
    assert emulator.ecs.image_tags(WHOLE)[STATE_KEY] == "failed"
    assert emulator.tos.head(BUCKET, f"{PREFIX}_{WHOLE}.manifest.json") is None


def test_a_data_disk_without_a_file_is_exported_with_a_note(emulated: Emulated, run_handler: Run) -> None:
    """ExportImage may not write every data disk's file (not published): the export is still exported and
    verified, with one object, and the result and the manifest say which disk has no file."""
    image = FleetImage(id=WHOLE, size_gb=40, data_disks=(100,))
    emulator = emulated(fleet(image), task_seconds=TASK_SECONDS)
    emulator.set_export_damage(WHOLE, "missing_data_disk", disk="data1")
    run_handler(timer(1))
    time.sleep(TASK_SECONDS + 0.5)

    second, raised = run_handler(timer(2))

    assert not raised
    (outcome,) = second["results"]
    assert (outcome["status"], len(outcome["objects"])) == ("exported", 1)
    assert "1 data disk(s) but 0 data file(s)" in outcome["reason"]
    manifest = manifest_in(emulator, outcome["manifest_key"])
    assert any("0 data file(s)" in note for note in manifest["verification"]["notes"])


def test_a_manifest_that_cannot_be_written_leaves_the_export_deferred_until_it_can(
    emulated: Emulated, run_handler: Run
) -> None:
    """Without tos:PutObject the export is not reported exported: deferred, ok false, the reason naming the
    permission; once the role may write, the next run reports it exported with its manifest."""
    image = FleetImage(id=WHOLE, size_gb=40)
    emulator = emulated(fleet(image), task_seconds=TASK_SECONDS)
    run_handler(timer(1))
    time.sleep(TASK_SECONDS + 0.5)
    emulator.set_bucket_access(BUCKET, "read-only")

    second, raised = run_handler(timer(2))

    assert raised
    assert not second["ok"]
    (outcome,) = second["results"]
    assert (outcome["status"], outcome["error"]["code"]) == ("deferred", "TosAccessDenied.PutObject")
    assert "writing its manifest" in outcome["reason"]
    assert "tos:PutObject" in outcome["reason"]
    assert emulator.ecs.image_tags(WHOLE)[STATE_KEY] == "exporting"

    emulator.set_bucket_access(BUCKET, "read-write")
    third, raised = run_handler(timer(3))

    assert not raised
    (outcome,) = third["results"]
    assert (outcome["status"], outcome["verified"]) == ("exported", True)
