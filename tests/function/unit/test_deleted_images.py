"""Exports whose source image was deleted before a follow-up saw their end, on the emulated account: the start
record written as they start, and the follow-up that reports each once from it (issue 20)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from structlog.testing import capture_logs

from handler.core.budget import Budget
from handler.core.claims import Claim
from handler.core.follow_up import TrackedRun, run_tracked
from handler.core.plan import ExportPlan
from handler.core.start_records import StartRecorder, read_records
from handler.core.tracker import TAG_BATCH, Tracker
from handler.core.tracking import STATE_KEY, Destination
from handler.errors import ServerError, TerminalApiError, Throttled
from handler.models.events import Command, ExportCommand, ScanCommand
from handler.models.manifest import Manifest, manifest_key
from handler.models.results import ImageOutcome
from handler.models.start_record import (
    MAX_RECORD_BYTES,
    RecordedExport,
    StartRecord,
    claim_key,
    record_key,
    records_prefix,
)
from tests.support.account import Account
from tests.support.builders import fleet_image, fleet_task
from tests.support.fakes import Call, failing

PLAN = ExportPlan(
    bucket="b-1", prefix="nightly", region="cn-beijing", concurrency=1, dedupe_hours=None, lookback_hours=25
)
WIDE = Budget(send_by=1e12, start_by=1e12, seconds=900, report_by=1e12)
DEST = Destination("b-1", "nightly")
SCAN = ScanCommand(trigger="timer")
EXPORT_SECONDS = 18 * 60
FOREVER = 100


def account(*images: str, **fields: Any) -> Account:
    """Untagged ``images`` (``fields`` for each), listed in that order; exports take ``EXPORT_SECONDS``."""
    fleet = [fleet_image(i, hours_ago=1 + n / 60, **fields) for n, i in enumerate(images)]
    return Account(fleet, task_seconds=EXPORT_SECONDS)


def run(ecs: Account, command: Command = SCAN, holder: str = "run-1", *, settle: bool = True) -> TrackedRun:
    """One invocation through the recorded API, settled (retags, records) as the entry does after reporting."""
    tracked = run_tracked(
        command, api=ecs.api, store=ecs.api, plan=PLAN, budget=WIDE, cap=None, holder=holder, clock=ecs.clock
    )
    if settle:
        tracked.settle(deadline=1e12)
    return tracked


def exported_then_deleted(*images: str, deleted: Iterable[str] | None = None, **fields: Any) -> Account:
    """The images exported by a scan, their exports ended, then ``deleted`` (default all) removed."""
    ecs = account(*images, **fields)
    assert {o.status for o in run(ecs).outcomes} == {"started"}
    ecs.clock.advance(EXPORT_SECONDS + 60)
    for image_id in images if deleted is None else deleted:
        ecs.ecs.remove_image(image_id)
    ecs.api.calls.clear()
    return ecs


def stored_records(ecs: Account) -> dict[str, dict[str, Any]]:
    """The start records in the bucket, by key, as JSON."""
    listing = ecs.store_client.list_objects("b-1", records_prefix("nightly"), deadline=1e12)
    found: dict[str, dict[str, Any]] = {}
    for listed in getattr(listing, "objects", ()):
        if not listed.key.endswith(".json"):
            continue
        body = ecs.store_client.get_range("b-1", listed.key, 0, listed.size_bytes, deadline=1e12)
        found[listed.key] = json.loads(body)
    return found


def recorded_ids(ecs: Account) -> list[str]:
    return sorted(e["image"]["id"] for r in stored_records(ecs).values() for e in r["exports"])


def by_image(outcomes: Iterable[ImageOutcome]) -> dict[str | None, ImageOutcome]:
    return {o.image_id: o for o in outcomes}


def put_record(ecs: Account, key: str, body: bytes) -> None:
    ecs.store_client.put_object("b-1", key, body, content_type="application/json", deadline=1e12)


def recorder_tracker(ecs: Account, holder: str = "run-0") -> Tracker:
    """A tracker that writes start records, as a run's does (not recorded: another invocation)."""
    records = StartRecorder(ecs.client, ecs.store_client, DEST, holder=holder, clock=ecs.clock, deadline=1e12)
    return Tracker(
        ecs.client,
        DEST,
        holder=holder,
        clock=ecs.clock,
        settle=2.0,
        ends_at=ecs.clock.monotonic() + 900,
        deadline=1e12,
        records=records,
    )


# -- the start record ----------------------------------------------------------------------------------------


def test_a_scan_writes_one_start_record_of_its_exports_with_their_metadata_and_tasks() -> None:
    """Two exports tagged in one batch: one PutObject after the TagResources, at
    ``<prefix>_inflight_<time>_<holder hash>_1.json``, holding each image as the scan's DescribeImages gave it
    and its task; no DescribeImages of its own."""
    ecs = account("image-a", "image-b", platform="Debian", platform_version="12", boot_mode="UEFI")

    outcome = run(ecs)

    tasks = {o.image_id: o.task_id for o in outcome.outcomes}
    actions = [c[0] for c in ecs.calls]
    assert actions.count("PutObject") == 1
    assert actions.index("PutObject") > actions.index("TagResources")
    assert actions.count("DescribeImages") == 1  # the scan's own listing
    ((key, record),) = stored_records(ecs).items()
    assert key == record_key("nightly", written_at=ecs.clock.now(), holder="run-1", number=1)
    assert re.fullmatch(r"nightly_inflight_20261126T120000Z_[0-9a-f]{8}_1\.json", key)
    StartRecord.model_validate(record)
    assert (record["schema"], record["bucket"], record["prefix"]) == (
        "image-exporter/start-record/1",
        "b-1",
        "nightly",
    )
    exports = {e["image"]["id"]: e for e in record["exports"]}
    assert {i: e["task_id"] for i, e in exports.items()} == tasks
    image = exports["image-a"]["image"]
    assert (image["platform"], image["platform_version"], image["boot_mode"], image["size_gib"]) == (
        "Debian",
        "12",
        "UEFI",
        40,
    )
    assert [s["kind"] for s in image["snapshots"]] == ["system"]


def test_an_event_reads_its_images_metadata_once_for_the_record() -> None:
    """An event has no DescribeImages record of its image: one DescribeImages by id after the tag, then the
    record (two requests more than before: the price of a restorable manifest once the image is gone)."""
    ecs = account("image-new", name="web-1")

    run(ecs, ExportCommand(trigger="event", image_ids=("image-new",)))

    assert [c[0] for c in ecs.calls] == [
        "DescribeTasks",
        "ExportImage",
        "TagResources",
        "DescribeImages",
        "PutObject",
    ]
    ((record,),) = [r["exports"] for r in stored_records(ecs).values()]
    assert (record["image"]["id"], record["image"]["name"]) == ("image-new", "web-1")


def test_an_event_whose_image_cannot_be_read_records_its_id_and_task_alone() -> None:
    """The metadata look-up fails (logged): the record still names the export, so a deletion is still
    reported; only the manifest's metadata would be missing."""
    ecs = account("image-new")
    ecs.api.on("DescribeImages", failing(Throttled("slow down", code="FlowLimitExceeded")))

    with capture_logs() as logs:
        (started,) = run(ecs, ExportCommand(trigger="event", image_ids=("image-new",))).outcomes

    ((export,),) = [r["exports"] for r in stored_records(ecs).values()]
    assert export == {"image": {"id": "image-new", **_EMPTY_IMAGE}, "task_id": started.task_id}
    assert any(line["event"] == "tracking.start_record_without_metadata" for line in logs)


_EMPTY_IMAGE = {
    "name": "",
    "description": "",
    "os_type": "",
    "os_name": "",
    "platform": "",
    "platform_version": "",
    "architecture": "",
    "boot_mode": "",
    "tags": {},
    "snapshots": [],
}


def test_a_record_that_cannot_be_written_is_logged_and_no_later_batch_tries_again() -> None:
    """TOS refuses the first record: the exports still start and are tagged, the run's results do not change,
    and the next batch is not recorded (no second attempt to wait on): both are logged."""
    ids = [f"image-{n:03d}" for n in range(TAG_BATCH + 3)]
    ecs = account(*ids)
    ecs.api.on("PutObject", failing(*[ServerError("down", code="InternalError")] * FOREVER))

    with capture_logs() as logs:
        outcome = run(ecs)

    assert {o.status for o in outcome.outcomes} == {"started"}
    assert all(o.reason is None for o in outcome.outcomes)
    assert ecs.count("TagResources") == 2
    assert ecs.count("PutObject") == 1
    events = [line["event"] for line in logs]
    assert events.count("tracking.start_record_failed") == 1
    assert events.count("tracking.start_record_skipped") == 1
    assert {ecs.tags_of(i)[STATE_KEY] for i in ids} == {"exporting"}


def test_a_batch_too_large_for_one_record_is_split() -> None:
    """Images with many long tags: the batch's record is split until each part is under the cap."""
    tags = {f"team-{n:02d}": "x" * 250 for n in range(45)}
    ids = [f"image-{n:02d}" for n in range(40)]
    ecs = account(*ids, tags=tags)

    run(ecs)

    written = stored_records(ecs)
    assert len(written) > 1
    assert recorded_ids(ecs) == ids
    assert all(len(json.dumps(r)) <= MAX_RECORD_BYTES for r in written.values())


# -- reporting a deleted image's export ----------------------------------------------------------------------


def test_an_export_whose_image_was_deleted_after_it_ended_is_exported_once_with_its_manifest() -> None:
    """The usual case: the export ended, then the image was deleted to free the quota. The next timer checks
    its objects as usual and reports it exported (a truthful result: the export is fine), saying the image was
    deleted; the manifest holds the image's metadata from the record; the record is deleted once the outcome
    is reported, and the run after reports nothing."""
    ecs = exported_then_deleted(
        "image-gone", name="web-20261201", platform="Rocky Linux", platform_version="9", boot_mode="UEFI"
    )

    second = run(ecs, holder="run-2")

    (outcome,) = second.outcomes
    assert (outcome.status, outcome.verified, outcome.verification) == ("exported", True, "structure")
    assert "the source image was deleted after its export" in str(outcome.reason)
    assert outcome.manifest_key == manifest_key("nightly", "image-gone")
    body = ecs.store_client.get_range("b-1", outcome.manifest_key, 0, 1 << 20, deadline=1e12)
    manifest = Manifest.model_validate_json(body)
    assert (manifest.image.name, manifest.image.platform, manifest.image.platform_version) == (
        "web-20261201",
        "Rocky Linux",
        "9",
    )
    assert (manifest.image.boot_mode, manifest.image.size_gib) == ("UEFI", 40)
    assert manifest.export.task_id == outcome.task_id
    assert stored_records(ecs) == {}
    assert run(ecs, holder="run-3").outcomes == ()


def test_a_failed_export_of_a_deleted_image_is_export_task_failed() -> None:
    ecs = exported_then_deleted("image-bad", export_outcome="failed")

    (outcome,) = run(ecs, holder="run-2").outcomes

    assert outcome.status == "export_failed"
    assert outcome.error is not None
    assert outcome.error.code == "ExportTaskFailed"
    assert "deleted after its export started" in str(outcome.reason)
    assert stored_records(ecs) == {}


def test_a_deleted_image_whose_objects_are_missing_is_export_object_missing_once_the_task_ended_long_ago() -> (
    None
):
    """No tag can hold a first sighting of a deleted image's missing object: the task's end stands in for it.
    Ended under EXPORT_MISSING_CONFIRM_SECONDS ago: deferred; later: export_failed ExportObjectMissing."""
    ecs = account("image-empty", export_outcome="no_object")
    run(ecs)
    ecs.clock.advance(EXPORT_SECONDS + 10)
    ecs.ecs.remove_image("image-empty")

    (early,) = run(ecs, holder="run-2").outcomes
    ecs.clock.advance(600)
    (late,) = run(ecs, holder="run-3").outcomes

    assert early.status == "deferred"
    assert late.status == "export_failed"
    assert late.error is not None
    assert late.error.code == "ExportObjectMissing"
    assert stored_records(ecs) == {}


def test_a_deleted_image_with_no_export_task_listed_is_image_deleted() -> None:
    """DescribeTasks no longer lists any export task of the deleted image: how it ended cannot be known:
    export_failed ImageDeleted, the message saying so and naming the task recorded when it started."""
    ecs = account("image-old")
    tracker = recorder_tracker(ecs)
    tracker.started("image-old", task_id="t-recorded")
    tracker.flush()
    ecs.ecs.remove_image("image-old")

    (outcome,) = run(ecs, holder="run-2").outcomes

    assert (outcome.status, outcome.task_id) == ("export_failed", "t-recorded")
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.retryable) == ("ImageDeleted", False)
    assert "its last task status is unknown" in outcome.error.message
    assert "t-recorded" in outcome.error.message
    assert stored_records(ecs) == {}


def test_a_deleted_image_whose_task_is_still_listed_running_is_image_deleted_with_that_status() -> None:
    ecs = Account([fleet_image("image-run")], [fleet_task("image-run", "Running")])
    (task,) = ecs.client.describe_tasks(deadline=1e12, resource_ids=["image-run"])
    tracker = recorder_tracker(ecs)
    tracker.started("image-run", task_id=task.task_id)
    tracker.flush()
    ecs.ecs.remove_image("image-run")

    (outcome,) = run(ecs, holder="run-2").outcomes

    assert outcome.error is not None
    assert outcome.error.code == "ImageDeleted"
    assert f"its last task status was Running (task {task.task_id}" in outcome.error.message


def test_an_export_reported_by_its_tags_then_deleted_is_never_reported_again() -> None:
    """One record holds two exports: image-a's ends and is reported by its tags, and leaves the record
    (image-b's export still runs, so the record stays); the user deletes image-a right after the notice: no
    second report, from the record or otherwise."""
    ecs = Account(
        [fleet_image("image-a", hours_ago=1), fleet_image("image-b", hours_ago=1.1)],
        [fleet_task("image-b", "Running")],  # found exporting untracked: adopted into the same batch
        task_seconds=EXPORT_SECONDS,
    )
    first = run(ecs)
    assert {o.image_id: o.status for o in first.outcomes} == {"image-a": "started", "image-b": "skipped"}
    assert recorded_ids(ecs) == ["image-a", "image-b"]
    ecs.clock.advance(EXPORT_SECONDS + 60)

    second = run(ecs, holder="run-2")
    assert by_image(second.outcomes)["image-a"].status == "exported"
    assert recorded_ids(ecs) == ["image-b"]
    ecs.ecs.remove_image("image-a")

    assert run(ecs, holder="run-3").outcomes == ()


def test_a_record_is_kept_while_its_images_export_and_settled_when_they_are_done() -> None:
    """Images still exporting cost nothing but the record's listing and one GET: no DescribeImages by ids;
    once the tags have reported them, the record goes."""
    ecs = account("image-a")
    run(ecs)
    ecs.clock.advance(60)
    ecs.api.calls.clear()

    assert run(ecs, holder="run-2").outcomes == ()
    assert [c for c in ecs.calls if c[0] == "DescribeImages" and c[1].get("image_ids")] == []
    assert recorded_ids(ecs) == ["image-a"]

    ecs.clock.advance(EXPORT_SECONDS)
    (reported,) = run(ecs, holder="run-3").outcomes
    assert reported.status == "exported"
    assert stored_records(ecs) == {}


def test_an_image_found_in_another_state_leaves_its_record() -> None:
    """A recorded image whose tags no longer say exporting (another run reported it, and its record could not
    be settled then) is done: it leaves the record, the image is not reported again."""
    ecs = account("image-a")
    run(ecs)
    ecs.client.tag_images(["image-a"], {STATE_KEY: "exported"}, deadline=1e12)
    ecs.clock.advance(60)

    assert run(ecs, holder="run-2").outcomes == ()
    assert stored_records(ecs) == {}


# -- failures, bounds, and two copies at once ----------------------------------------------------------------


def test_a_task_look_up_that_fails_defers_the_deleted_image_and_a_later_run_reports_it() -> None:
    ecs = exported_then_deleted("image-gone")
    ecs.api.on("DescribeTasks", failing(Throttled("slow down", code="FlowLimitExceeded")))

    (deferred,) = run(ecs, holder="run-2").outcomes

    assert deferred.status == "deferred"
    assert deferred.task_id is not None
    assert "looking up the export task of its deleted image" in str(deferred.reason)
    assert len(stored_records(ecs)) == 1
    (later,) = run(ecs, holder="run-3").outcomes
    assert later.status == "exported"


def test_a_record_that_cannot_be_parsed_is_logged_and_left_in_place() -> None:
    key = f"{records_prefix('nightly')}20261126T110000Z_deadbeef_1.json"
    put_record(ecs := account(), key, b"{not json")
    other = StartRecord(bucket="b-2", prefix="nightly", written_at=ecs.clock.now(), exports=())
    copied = f"{records_prefix('nightly')}20261126T110000Z_deadbeef_2.json"
    put_record(ecs, copied, other.to_bytes())

    with capture_logs() as logs:
        outcome = run(ecs)

    assert outcome.outcomes == ()
    unusable = [line for line in logs if line["event"] == "deleted_images.record_unusable"]
    assert sorted(line["key"] for line in unusable) == [key, copied]
    assert "not where it lies" in next(line["why"] for line in unusable if line["key"] == copied)
    assert ecs.count("DeleteObject") == 0
    assert sorted(stored_records_raw(ecs)) == [key, copied]


def stored_records_raw(ecs: Account) -> list[str]:
    listing = ecs.store_client.list_objects("b-1", records_prefix("nightly"), deadline=1e12)
    return [o.key for o in getattr(listing, "objects", ())]


def test_at_most_the_limit_of_records_is_read_the_newest() -> None:
    """Past the limit the newest records are read: exports started recently are the ones a deleted image
    belongs to, and records that could not be deleted (no tos:DeleteObject) never crowd them out."""
    ecs = account()
    for n in range(5):
        record = StartRecord(
            bucket="b-1",
            prefix="nightly",
            written_at=ecs.clock.now(),
            exports=(RecordedExport.model_validate({"image": {"id": f"image-{n}"}}),),
        )
        put_record(ecs, f"{records_prefix('nightly')}2026112{n}T000000Z_aaaaaaaa_1.json", record.to_bytes())

    read = read_records(ecs.api, DEST, deadline=1e12, workers=2, limit=3)

    assert [r.record.exports[0].image.id for r in read.read] == ["image-2", "image-3", "image-4"]
    assert ecs.count("GetObject") == 3


def test_no_time_left_in_the_follow_ups_share_reads_no_record() -> None:
    ecs = exported_then_deleted("image-gone")
    now = ecs.clock.monotonic()
    budget = Budget(send_by=now + 30, start_by=now + 27, seconds=30, report_by=now + 31)

    def slow(call: Call, send: Callable[[], Any]) -> Any:
        ecs.clock.advance(20)  # the tag search takes the follow-up's whole share
        return send()

    ecs.api.on("DescribeImages", slow)
    outcome = run_tracked(
        SCAN, api=ecs.api, store=ecs.api, plan=PLAN, budget=budget, cap=None, holder="run-2", clock=ecs.clock
    )

    assert [o.image_id for o in outcome.outcomes if o.status != "deferred"] == []
    assert ("ListObjectsV2", records_prefix("nightly")) not in ecs.calls


def test_a_record_whose_settle_fails_reports_the_image_again_counting_the_reports() -> None:
    """The record cannot be deleted after the report (no tos:DeleteObject, say): a run once this one's claim ran
    out (its budget, here a day, and a margin) reports the image again and says so, as after a retag that
    keeps failing."""
    ecs = exported_then_deleted("image-gone")
    refused = TerminalApiError("denied", code="TosAccessDenied.DeleteObject")
    ecs.api.on("DeleteObject", failing(*[refused] * FOREVER))

    with capture_logs() as logs:
        (first,) = run(ecs, holder="run-2").outcomes
    ecs.clock.advance(2 * 86400)
    (second,) = run(ecs, holder="run-3").outcomes

    assert first.status == second.status == "exported"
    assert any(line["event"] == "deleted_images.settle_failed" for line in logs)
    assert "reported again (2 of 3): an earlier run could not change its start record" in str(second.reason)


def test_a_deleted_image_another_copy_is_reporting_is_left_to_it() -> None:
    ecs = exported_then_deleted("image-gone")
    (key,) = stored_records(ecs)
    theirs = Claim.new("report", "run-b", now=ecs.clock.now(), lasts=900, reports=1)
    put_record(ecs, claim_key(key), theirs.value.encode())

    outcome = run(ecs, holder="run-a")

    assert outcome.outcomes == ()
    assert stored_records_raw(ecs) == [claim_key(key), key]


def _copy_b_inside_first(ecs: Account, action: str, *, before_send: bool) -> list[TrackedRun]:
    """Copy B (``run-b``, through the unrecorded clients) runs its whole timer inside copy A's first
    ``action`` call (before or after it is sent), and settles: what B reported, once it ran."""
    runs: list[TrackedRun] = []
    calls: list[Call] = []

    def hook(call: Call, send: Callable[[], Any]) -> Any:
        calls.append(call)
        if len(calls) != 1:
            return send()
        answer = None if before_send else send()
        copy_b = run_tracked(
            SCAN,
            api=ecs.client,
            store=ecs.store_client,
            plan=PLAN,
            budget=WIDE,
            cap=None,
            holder="run-b",
            clock=ecs.clock,
        )
        copy_b.settle(deadline=1e12)
        runs.append(copy_b)
        return send() if before_send else answer

    ecs.api.on(action, hook)
    return runs


@pytest.mark.parametrize("before_send", [True, False])
def test_two_copies_following_up_at_once_report_a_deleted_image_once(before_send: bool) -> None:
    """Copy B runs its whole follow-up while copy A claims the record (before or after A's claim is written):
    between them the deleted image is reported once (A defers it when its claim cannot be trusted), and no
    later run reports it again: a claim written late never brings the settled record back, and the claim left
    over goes with the next run."""
    ecs = exported_then_deleted("image-gone")
    copy_b = _copy_b_inside_first(ecs, "PutObject", before_send=before_send)

    copy_a = run(ecs, holder="run-a")

    (copy_b_run,) = copy_b
    reported = [o for r in (copy_b_run, copy_a) for o in r.outcomes if o.status == "exported"]
    assert len(reported) == 1
    assert (
        by_image(copy_b_run.outcomes if before_send else copy_a.outcomes)["image-gone"].status == "exported"
    )
    if before_send:  # A's claim went out after B had reported: too late to be trusted, and deferred
        (late,) = copy_a.outcomes
        assert (late.status, late.error.code if late.error else None) == ("deferred", "ClaimTooSlow")
    else:  # B found A's fresh claim and left the image to it
        assert copy_b_run.outcomes == ()
    ecs.clock.advance(2 * 86400)
    assert run(ecs, holder="run-c").outcomes == ()
    assert stored_records_raw(ecs) == []
