"""The restore flow on the emulated account (in process, on the test's clock): the rails a drill and a restore
hold when time passes, the API refuses, or the manifest cannot say enough."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handler.core.restore import append_check, follow_restores, read_manifest, start_drill, start_restore
from handler.core.tracking import Destination
from handler.errors import ManifestUnusable, NoVerifiedExport, ServerError
from handler.models.manifest import Manifest, RestoreCheck, manifest_key
from tests.support.account import Account
from tests.support.builders import NOW, fleet_image, manifest
from tests.support.fakes import failing

SOURCE = "image-src00001"
DEST = Destination("b-1", "nightly")
EXPORT_SECONDS = 600.0
ORIGIN = "https://tos-cn-beijing.volces.com"
DAY = 24 * 3600.0


def far() -> float:
    return 1e12


def account_with_export(**image: Any) -> tuple[Account, Manifest]:
    """An account whose image SOURCE was exported to b-1/nightly, with the export's manifest written."""
    ecs = Account([fleet_image(SOURCE, size_gb=40)], [], task_seconds=EXPORT_SECONDS)
    ecs.export_now(SOURCE)
    ecs.clock.advance(EXPORT_SECONDS)
    written = manifest(SOURCE, name="web-20261201")
    written = written.model_copy(
        update={"image": written.image.model_copy(update={"platform": "Ubuntu", **image})}
    )
    put(ecs, written)
    return ecs, written


def put(ecs: Account, written: Manifest) -> None:
    key = manifest_key(DEST.prefix, written.image.id)
    ecs.store_client.put_object(
        DEST.bucket, key, written.to_bytes(), content_type="application/json", deadline=far()
    )


def stored(ecs: Account) -> Manifest:
    return read_manifest(ecs.store_client, DEST, SOURCE, deadline=far(), verified=False)


def drill(ecs: Account, written: Manifest) -> Any:
    return start_drill(
        ecs.api,
        ecs.store_client,
        [written],
        group=lambda m: m.image.name,
        days=7,
        tos_origin=ORIGIN,
        deadline=far(),
        clock=ecs.clock,
    )


def test_a_drill_still_importing_a_day_later_is_reported_once_and_its_image_removal_retried() -> None:
    """A drill image stuck importing past 24 hours: restore_failed DrillTimedOut, the failed check recorded;
    ECS refuses to delete an image still being created, so the result says so, and later runs try the delete
    again without reporting the drill twice."""
    ecs, written = account_with_export()
    ecs.ecs.set_import_outcome(f"https://b-1.x/nightly_{SOURCE}_system.qcow2", "stuck")
    started = drill(ecs, written)
    assert started.status == "restore_started"
    new = started.restored_image_id

    ecs.clock.advance(23 * 3600)
    running = follow_restores(ecs.api, ecs.store_client, deadline=far(), clock=ecs.clock)
    assert (running.outcomes, running.drills_in_flight) == ((), 1)

    ecs.clock.advance(2 * 3600)
    late = follow_restores(ecs.api, ecs.store_client, deadline=far(), clock=ecs.clock)

    (failed,) = late.outcomes
    assert (failed.status, failed.error.code if failed.error else None) == ("restore_failed", "DrillTimedOut")
    assert f"its image {new} could not be deleted yet" in (failed.reason or "")
    assert late.drills_in_flight == 0
    assert [c.result for c in stored(ecs).restore_checks] == ["Failed"]

    again = follow_restores(ecs.api, ecs.store_client, deadline=far(), clock=ecs.clock)
    assert again.outcomes == ()
    assert ecs.count("DeleteImages") == 2


def test_a_drill_whose_check_cannot_be_written_keeps_its_image_until_it_can() -> None:
    """The manifest's check is the drill's proof: a PutObject that fails leaves the drill deferred and its
    image in place; the next run records it, deletes the image and reports restore_verified once."""
    ecs, written = account_with_export()
    new = drill(ecs, written).restored_image_id
    ecs.clock.advance(EXPORT_SECONDS)
    ecs.api.on("PutObject", failing(ServerError("busy", code="InternalError", http_status=500)))

    first = follow_restores(ecs.api, ecs.api, deadline=far(), clock=ecs.clock)

    (deferred,) = first.outcomes
    assert (deferred.status, deferred.restored_image_id) == ("deferred", new)
    assert ecs.count("DeleteImages") == 0

    second = follow_restores(ecs.api, ecs.api, deadline=far(), clock=ecs.clock)

    (verified,) = second.outcomes
    assert verified.status == "restore_verified"
    assert [(c.image_id, c.result) for c in stored(ecs).restore_checks] == [(new, "Succeeded")]
    assert ecs.count("DeleteImages") == 1


def test_a_restore_refuses_a_manifest_without_the_platform_import_needs() -> None:
    ecs, _ = account_with_export(platform="")

    outcome = start_restore(
        ecs.api, ecs.store_client, source_id=SOURCE, dest=DEST, tos_origin=ORIGIN, name=None, deadline=far()
    )

    assert (outcome.status, outcome.error.code if outcome.error else None) == ("failed", "ManifestUnusable")
    assert ecs.count("ImportImage") == 0


def test_a_restore_out_of_time_is_deferred_and_imports_nothing() -> None:
    ecs, _ = account_with_export()

    outcome = start_restore(
        ecs.api, ecs.store_client, source_id=SOURCE, dest=DEST, tos_origin=ORIGIN, name=None, deadline=0.0
    )

    assert (outcome.status, outcome.error.code if outcome.error else None) == (
        "deferred",
        "TimeBudgetExhausted",
    )
    assert ecs.count("ImportImage") == 0


def test_restores_in_flight_that_cannot_be_listed_are_one_deferred_result_and_block_drills() -> None:
    ecs, _ = account_with_export()
    ecs.api.on("DescribeImages", failing(ServerError("down", code="InternalError", http_status=500)))

    run = follow_restores(ecs.api, ecs.store_client, deadline=far(), clock=ecs.clock)

    (deferred,) = run.outcomes
    assert (deferred.image_id, deferred.status) == (None, "deferred")
    assert "may well be fine" in (deferred.reason or "")
    assert not run.checked


@pytest.mark.parametrize(
    ("body", "error", "says"),
    [
        (b"", ManifestUnusable, "is empty"),
        (b"{not json", ManifestUnusable, "is not a manifest"),
        (json.dumps({"schema": "other/1"}).encode(), ManifestUnusable, "is not a manifest"),
    ],
    ids=["empty", "not-json", "not-a-manifest"],
)
def test_a_manifest_that_cannot_be_read_says_why(body: bytes, error: type[Exception], says: str) -> None:
    ecs = Account([], [])
    ecs.store_client.put_object(
        "b-1", manifest_key("nightly", SOURCE), body, content_type="application/json", deadline=far()
    )
    with pytest.raises(error, match=says):
        read_manifest(ecs.store_client, DEST, SOURCE, deadline=far())


def test_no_manifest_and_an_unverified_one_are_no_verified_export() -> None:
    ecs = Account([], [])
    with pytest.raises(NoVerifiedExport, match="no manifest at tos://b-1/nightly_"):
        read_manifest(ecs.store_client, DEST, SOURCE, deadline=far())
    put(ecs, manifest(SOURCE, verified=False))
    with pytest.raises(NoVerifiedExport, match="was not verified"):
        read_manifest(ecs.store_client, DEST, SOURCE, deadline=far())


def test_a_check_is_appended_once_per_restored_image() -> None:
    ecs, _ = account_with_export()
    check = RestoreCheck(at=NOW, image_id="image-new", task_id="t-1", result="Succeeded")

    assert append_check(ecs.store_client, DEST, SOURCE, check, deadline=far())
    assert not append_check(ecs.store_client, DEST, SOURCE, check, deadline=far())
    assert [c.image_id for c in stored(ecs).restore_checks] == ["image-new"]


def test_a_drill_that_can_never_start_is_recorded_so_the_group_waits_its_days() -> None:
    """A manifest ImportImage cannot use: restore_failed once, a failed check in the manifest, and no drill
    of that export again until the check is RESTORE_DRILL_DAYS old."""
    ecs, written = account_with_export(platform="")

    first = drill(ecs, written)

    assert (first.status, first.error.code if first.error else None) == ("restore_failed", "ManifestUnusable")
    recorded = stored(ecs)
    assert [c.result for c in recorded.restore_checks] == ["Failed: ManifestUnusable"]
    assert drill(ecs, recorded) is None
    ecs.clock.advance(8 * DAY)
    assert drill(ecs, recorded) is not None
