"""Restoring an export: the Restore event imports the newest verified export back into ECS from its manifest,
and later timer runs report the import's end once; against the emulator over real sockets."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage
from handler.core.restoring import RESTORE_KEY, RESTORED_FROM_KEY
from tests.support.events import load_event

Emulated = Callable[..., EcsEmulator]
Run = Callable[..., tuple[dict[str, Any], bool]]

TASK_SECONDS = 1.0
BUCKET, PREFIX = "demo-exports", "imgexport"
WHOLE = "image-wh0lemach1ne"
MANIFEST = f"{PREFIX}_{WHOLE}.manifest.json"


def timer(n: int) -> dict[str, Any]:
    return {**load_event("timer_empty"), "id": f"timer-firing-{n}"}


def restore(image_id: str = WHOLE, **fields: str) -> dict[str, Any]:
    return {"Restore": {"ImageId": image_id, **fields}}


def whole_machine() -> FleetImage:
    return FleetImage(
        id=WHOLE,
        name="web-20261201",
        size_gb=40,
        data_disks=(100, 20),
        platform="Ubuntu",
        platform_version="22.04",
        os_type="Linux",
        architecture="amd64",
        boot_mode="UEFI",
    )


def exported(emulated: Emulated, run_handler: Run, *images: FleetImage, **env: str) -> EcsEmulator:
    """An emulator whose images were exported, followed up and verified (their manifests written)."""
    emulator = emulated(
        Fleet(images=images, buckets=(FleetBucket(name=BUCKET),)), task_seconds=TASK_SECONDS, env=env
    )
    run_handler(timer(1))
    time.sleep(TASK_SECONDS + 0.5)
    second, _ = run_handler(timer(2))
    assert {r["status"] for r in second["results"]} == {"exported"}
    return emulator


def manifest_in(emulator: EcsEmulator, key: str = MANIFEST) -> dict[str, Any]:
    stored = emulator.tos.head(BUCKET, key)
    assert stored is not None
    loaded: dict[str, Any] = json.loads(stored.content.read(0, stored.size_bytes))
    return loaded


def by_status(result: dict[str, Any], status: str) -> list[dict[str, Any]]:
    return [r for r in result["results"] if r["status"] == status]


def test_a_restore_imports_the_export_with_its_manifests_metadata_and_a_later_run_reports_restored_once(
    emulated: Emulated, run_handler: Run
) -> None:
    """The Restore event reads the manifest and calls ImportImage with the system file, the data files in
    order and the source's platform, OS, architecture and boot mode, the new image tagged restored-from;
    the next timer run after the import reports ``restored`` once and records the check in the manifest;
    the one after reports nothing more, and no scan exports the restored image."""
    emulator = exported(emulated, run_handler, whole_machine())

    started, raised = run_handler(restore())

    assert not raised
    assert started["ok"]
    (outcome,) = started["results"]
    assert outcome["status"] == "restore_started"
    new = outcome["restored_image_id"]
    assert outcome["manifest_key"] == MANIFEST
    assert outcome["task_id"] == emulator.imports()[new].task_id
    request = emulator.imports()[new].request
    assert (request.system.bucket, request.system.key) == (BUCKET, f"{PREFIX}_{WHOLE}_system.qcow2")
    assert [f.key for f in request.data_volumes] == [
        f"{PREFIX}_{WHOLE}_data1.qcow2",
        f"{PREFIX}_{WHOLE}_data2.qcow2",
    ]
    assert (request.platform, request.platform_version, request.os_type) == ("Ubuntu", "22.04", "Linux")
    assert (request.architecture, request.boot_mode) == ("amd64", "UEFI")
    assert request.name.startswith("web-20261201-restored-")
    assert dict(request.tags)[RESTORED_FROM_KEY] == WHOLE

    time.sleep(TASK_SECONDS + 0.5)
    third, raised = run_handler(timer(3))

    assert not raised
    (restored,) = by_status(third, "restored")
    assert (restored["image_id"], restored["restored_image_id"]) == (WHOLE, new)
    assert not by_status(third, "started")  # the restored image is not exported by the scan
    checks = manifest_in(emulator)["restore_checks"]
    assert [(c["image_id"], c["result"]) for c in checks] == [(new, "Succeeded")]
    assert emulator.ecs.image_tags(new)[RESTORE_KEY] == "restored"

    fourth, _ = run_handler(timer(4))
    assert not by_status(fourth, "restored")
    assert not by_status(fourth, "started")


def test_a_restore_names_the_new_image_as_asked_and_refuses_a_second_while_one_imports(
    emulated: Emulated, run_handler: Run
) -> None:
    emulator = exported(emulated, run_handler, whole_machine())

    first, _ = run_handler(restore(ImageName="web-rebuilt"))
    second, raised = run_handler(restore())

    new = first["results"][0]["restored_image_id"]
    assert emulator.imports()[new].request.name == "web-rebuilt"
    assert not raised
    (skipped,) = second["results"]
    assert (skipped["status"], skipped["restored_image_id"]) == ("skipped", new)
    assert "already importing" in skipped["reason"]
    assert len(emulator.imports()) == 1


def test_without_a_verified_export_a_restore_fails_naming_where_it_looked(
    emulated: Emulated, run_handler: Run
) -> None:
    """No manifest under the bucket and prefix: failed NoVerifiedExport, naming the manifest's place, and
    nothing imported."""
    emulator = emulated(Fleet(images=(whole_machine(),), buckets=(FleetBucket(name=BUCKET),)))

    result, raised = run_handler(restore())

    assert not raised
    assert not result["ok"]
    (outcome,) = result["results"]
    assert (outcome["status"], outcome["error"]["code"]) == ("failed", "NoVerifiedExport")
    assert f"tos://{BUCKET}/{MANIFEST}" in outcome["error"]["message"]
    assert emulator.imports() == {}


def test_an_unverified_export_is_not_restored(emulated: Emulated, run_handler: Run) -> None:
    """With EXPORT_VERIFY=off the manifest says verified: false, and a restore refuses it."""
    exported(emulated, run_handler, whole_machine(), EXPORT_VERIFY="off")

    result, _ = run_handler(restore())

    (outcome,) = result["results"]
    assert (outcome["status"], outcome["error"]["code"]) == ("failed", "NoVerifiedExport")
    assert "was not verified" in outcome["error"]["message"]


def test_an_import_that_fails_is_reported_restore_failed_once(emulated: Emulated, run_handler: Run) -> None:
    """The import's task Failed: the next timer run reports restore_failed with ImportTaskFailed (ok false),
    tags the image failed and records the failed check; later runs say nothing more of it."""
    emulator = exported(emulated, run_handler, whole_machine())
    emulator.set_import_outcome(f"https://{BUCKET}.tos.example/{PREFIX}_{WHOLE}_system.qcow2", "failed")
    started, _ = run_handler(restore())
    new = started["results"][0]["restored_image_id"]
    time.sleep(TASK_SECONDS + 0.5)

    third, raised = run_handler(timer(3))

    assert not third["ok"]
    assert not raised  # nothing a retry of the timer would change
    (failed,) = by_status(third, "restore_failed")
    assert (failed["restored_image_id"], failed["error"]["code"]) == (new, "ImportTaskFailed")
    assert emulator.ecs.image_tags(new)[RESTORE_KEY] == "failed"
    assert [c["result"] for c in manifest_in(emulator)["restore_checks"]] == ["Failed"]

    fourth, _ = run_handler(timer(4))
    assert not by_status(fourth, "restore_failed")


# --- the restore drill (RESTORE_DRILL_DAYS) --------------------------------------------------------------


def drilled(
    emulated: Emulated, run_handler: Run, *images: FleetImage, **env: str
) -> tuple[EcsEmulator, dict[str, Any]]:
    """Export the images with the drill on: the run that reports them exported also starts the drill."""
    emulator = emulated(
        Fleet(images=images, buckets=(FleetBucket(name=BUCKET),)),
        task_seconds=TASK_SECONDS,
        env={"RESTORE_DRILL_DAYS": "7", **env},
    )
    run_handler(timer(1))
    time.sleep(TASK_SECONDS + 0.5)
    second, _ = run_handler(timer(2))
    return emulator, second


def test_a_drill_imports_an_export_deletes_its_image_records_the_check_and_reports_restore_verified(
    emulated: Emulated, run_handler: Run
) -> None:
    """With RESTORE_DRILL_DAYS the timer imports the newest verified export back as a drill image; once the
    import Succeeded the next run deletes that image, appends the check to the manifest and reports
    restore_verified; the run after starts no other drill (the check is younger than 7 days)."""
    emulator, second = drilled(emulated, run_handler, whole_machine())

    assert len(by_status(second, "exported")) == 1
    (drill,) = by_status(second, "restore_started")
    assert drill["image_id"] == WHOLE
    assert "restore drill" in drill["reason"]
    new = drill["restored_image_id"]
    request = emulator.imports()[new].request
    assert request.name.startswith(f"image-exporter-drill-{WHOLE}-")
    assert dict(request.tags)["image-exporter:drill"] == WHOLE

    time.sleep(TASK_SECONDS + 0.5)
    third, raised = run_handler(timer(3))

    assert not raised
    (verified,) = by_status(third, "restore_verified")
    assert (verified["image_id"], verified["restored_image_id"]) == (WHOLE, new)
    assert f"its image {new} was deleted" in verified["reason"]
    assert [d.image_id for d in emulator.deleted_images] == [new]
    checks = manifest_in(emulator)["restore_checks"]
    assert [(c["image_id"], c["result"]) for c in checks] == [(new, "Succeeded")]
    assert not by_status(third, "restore_started")

    fourth, _ = run_handler(timer(4))
    assert not [r for r in fourth["results"] if r["status"].startswith("restore")]
    assert len(emulator.imports()) == 1


def test_one_drill_at_a_time_the_next_group_after_the_first_ended(
    emulated: Emulated, run_handler: Run
) -> None:
    """Two groups are due: one drill starts; the run that judges it starts the other group's."""
    web = FleetImage(id="image-web00001", name="web-20261201", size_gb=20)
    api = FleetImage(id="image-api00001", name="api-20261201", size_gb=20)
    emulator, second = drilled(emulated, run_handler, web, api)

    assert len(by_status(second, "restore_started")) == 1
    first = by_status(second, "restore_started")[0]["image_id"]
    time.sleep(TASK_SECONDS + 0.5)
    third, _ = run_handler(timer(3))

    assert [r["image_id"] for r in by_status(third, "restore_verified")] == [first]
    (following,) = by_status(third, "restore_started")
    assert following["image_id"] == ({web.id, api.id} - {first}).pop()
    assert len(emulator.imports()) == 2


def test_a_failed_drill_is_reported_its_image_deleted_and_the_group_waits(
    emulated: Emulated, run_handler: Run
) -> None:
    """A drill whose import Failed: restore_failed (ok false), its image deleted, the failed check in the
    manifest; no new drill of that group until the check is 7 days old."""
    web = FleetImage(id="image-web00001", name="web-20261201", size_gb=20)
    emulator = emulated(
        Fleet(images=(web,), buckets=(FleetBucket(name=BUCKET),)),
        task_seconds=TASK_SECONDS,
        env={"RESTORE_DRILL_DAYS": "7"},
    )
    emulator.set_import_outcome(f"https://{BUCKET}.tos.example/{PREFIX}_{web.id}_system.qcow2", "failed")
    run_handler(timer(1))
    time.sleep(TASK_SECONDS + 0.5)
    second, _ = run_handler(timer(2))
    new = by_status(second, "restore_started")[0]["restored_image_id"]
    time.sleep(TASK_SECONDS + 0.5)

    third, _ = run_handler(timer(3))

    assert not third["ok"]
    (failed,) = by_status(third, "restore_failed")
    assert (failed["restored_image_id"], failed["error"]["code"]) == (new, "ImportTaskFailed")
    assert "restore drill failed" in failed["reason"]
    assert [d.image_id for d in emulator.deleted_images] == [new]
    fourth, _ = run_handler(timer(4))
    assert not [r for r in fourth["results"] if r["status"].startswith("restore")]


def test_no_drill_starts_when_the_region_is_near_its_image_quota(
    emulated: Emulated, run_handler: Run
) -> None:
    """48 private images (of the 50 a region holds): the drill leaves the last places to real images."""
    old = tuple(FleetImage(id=f"image-old{n:05d}", name=f"old-{n}", created_hours_ago=500) for n in range(47))
    fresh = FleetImage(id="image-web00001", name="web-20261201", size_gb=20)
    emulator, second = drilled(emulated, run_handler, fresh, *old)

    assert [r["status"] for r in second["results"]] == ["exported"]
    assert emulator.imports() == {}
