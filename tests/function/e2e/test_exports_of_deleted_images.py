"""An image deleted after its export is still reported, once (issue 20): the start record written as the export
starts, read back by the next timer, against the ECS emulator and its TOS over real sockets."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage
from handler.models.manifest import Manifest
from handler.models.start_record import RecordedExport, StartRecord, records_prefix
from tests.support.events import load_event

Emulated = Callable[..., EcsEmulator]
Run = Callable[..., tuple[dict[str, Any], bool]]

TASK_SECONDS = 1.0
BUCKET, PREFIX = "demo-exports", "imgexport"


def timer(n: int) -> dict[str, Any]:
    return {**load_event("timer_empty"), "id": f"timer-firing-{n}"}


def fleet(*images: FleetImage) -> Fleet:
    return Fleet(images=images, buckets=(FleetBucket(name=BUCKET),))


def records_in(emulator: EcsEmulator) -> list[str]:
    return sorted(o.key for o in emulator.tos.objects() if o.key.startswith(records_prefix(PREFIX)))


def exported_then_removed(emulated: Emulated, run_handler: Run, image: FleetImage) -> EcsEmulator:
    """One timer starts the image's export, the task ends, then the user deletes the image."""
    emulator = emulated(fleet(image), task_seconds=TASK_SECONDS)
    first, _ = run_handler(timer(1))
    assert [r["status"] for r in first["results"]] == ["started"]
    assert len(records_in(emulator)) == 1
    time.sleep(TASK_SECONDS + 0.5)
    emulator.ecs.remove_image(image.id)
    return emulator


def test_an_image_deleted_after_its_export_is_reported_exported_once_with_its_manifest(
    emulated: Emulated, run_handler: Run
) -> None:
    """The export ended, then its image was deleted: the next timer checks the export's objects and reports
    it exported (the export is fine), saying the image was deleted; the manifest holds the image's metadata
    from the start record; the run after reports nothing, and no record is left."""
    image = FleetImage(
        id="image-gone0001",
        name="web-20261201",
        size_gb=40,
        data_disks=(20,),
        platform="Debian",
        platform_version="12",
        boot_mode="UEFI",
    )
    emulator = exported_then_removed(emulated, run_handler, image)

    second, raised = run_handler(timer(2))
    third, _ = run_handler(timer(3))

    assert not raised
    (outcome,) = second["results"]
    assert (outcome["status"], outcome["verified"], outcome["verification"]) == (
        "exported",
        True,
        "structure",
    )
    assert "the source image was deleted after its export" in outcome["reason"]
    assert [o["disk"] for o in outcome["objects"]] == ["system", "data"]
    stored = emulator.tos.head(BUCKET, outcome["manifest_key"])
    assert stored is not None
    manifest = Manifest.model_validate(json.loads(stored.content.read(0, stored.size_bytes)))
    assert (manifest.image.name, manifest.image.platform, manifest.image.platform_version) == (
        "web-20261201",
        "Debian",
        "12",
    )
    assert [s.kind for s in manifest.image.snapshots] == ["system", "data"]
    assert manifest.export.task_id == outcome["task_id"]
    assert third["results"] == []
    assert records_in(emulator) == []


def test_a_failed_export_of_a_deleted_image_is_export_task_failed(
    emulated: Emulated, run_handler: Run
) -> None:
    image = FleetImage(id="image-gone0002", export_outcome="failed")
    emulator = exported_then_removed(emulated, run_handler, image)

    second, _ = run_handler(timer(2))

    (outcome,) = second["results"]
    assert (second["ok"], outcome["status"], outcome["error"]["code"]) == (
        False,
        "export_failed",
        "ExportTaskFailed",
    )
    assert "deleted" in outcome["reason"]
    assert records_in(emulator) == []
    assert run_handler(timer(3))[0]["results"] == []


def test_a_deleted_image_with_no_export_task_listed_is_image_deleted(
    emulated: Emulated, run_handler: Run
) -> None:
    """A start record names an image that is gone and whose export task DescribeTasks no longer lists (tasks
    are not kept for ever): export_failed ImageDeleted, saying its last task status is unknown; reported once."""
    emulator = emulated(fleet(), task_seconds=TASK_SECONDS)
    record = StartRecord(
        bucket=BUCKET,
        prefix=PREFIX,
        written_at=datetime(2026, 11, 1, 3, tzinfo=UTC),
        exports=(
            RecordedExport.model_validate(
                {"image": {"id": "image-long0gone", "name": "old"}, "task_id": "t-1"}
            ),
        ),
    )
    emulator.tos.put_object(
        BUCKET, f"{records_prefix(PREFIX)}20261101T030000Z_0badcafe_1.json", record.to_bytes()
    )

    first, raised = run_handler(timer(1))
    second, _ = run_handler(timer(2))

    assert not raised
    (outcome,) = first["results"]
    assert (outcome["image_id"], outcome["status"], outcome["task_id"]) == (
        "image-long0gone",
        "export_failed",
        "t-1",
    )
    assert outcome["error"]["code"] == "ImageDeleted"
    assert "its last task status is unknown" in outcome["error"]["message"]
    assert second["results"] == []
    assert records_in(emulator) == []
