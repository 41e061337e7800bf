"""Follow-up decisions: tracking tags and their transitions, the latest export task, outcomes from (task,
the export's check)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handler.core.follow_up_rules import decide_follow_up, duration_s, needs_object
from handler.core.tracker import group_by_tags
from handler.core.tracking import (
    DEST_KEY,
    MISSING_CONFIRM_SECONDS,
    STATE_KEY,
    TRANSITIONS,
    UNSEEN_KEY,
    Destination,
    latest_export_tasks,
    next_state,
    sighting_of,
    state_tags,
    tracking_of,
)
from handler.core.verification import Corrupt, ExportCheck, Missing, Stopped, Verified
from handler.errors import BudgetExhausted
from handler.models.api import Image, Task
from handler.models.manifest import ManifestObject
from handler.models.objects import UNREADABLE_REASON, ObjectUnreadable

IMAGE = "image-ybqi99s7yq8rx7mnk44b"
DEST = Destination("my-image-exports", "imgexport")
KEY = f"imgexport_{IMAGE}_system.qcow2"
SYSTEM = ManifestObject(
    key=KEY,
    disk="system",
    size_bytes=3_276_800,
    etag="etag",
    crc64="12345678901234567890",
    virtual_size_bytes=42_949_672_960,
)
DATA = ManifestObject(key=f"imgexport_{IMAGE}_data1.qcow2", disk="data", size_bytes=2_000_000)
MANIFEST_KEY = f"imgexport_{IMAGE}.manifest.json"
FOUND = Verified("structure", True, (SYSTEM, DATA), (), MANIFEST_KEY)
MISSING = Missing(KEY, "r-2")
CORRUPT = Corrupt(KEY, f"tos://{DEST.bucket}/{KEY}: L2 table at 0x90000 lies past the end of the object")
UNREADABLE = ObjectUnreadable(DEST.bucket, KEY, UNREADABLE_REASON, "r-3")
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def confirmed() -> dict[str, Any]:
    """A run long enough after the first sighting of a missing object to call it final."""
    return {"now": NOW, "sighted": ms(NOW - timedelta(seconds=MISSING_CONFIRM_SECONDS))}


def task(status: str, **fields: Any) -> Task:
    raw = {
        "Id": "t-1",
        "Type": "ExportImage",
        "Status": status,
        "ResourceId": IMAGE,
        "CreatedAt": "2026-11-27T08:00:00Z",
        "EndAt": "2026-11-27T08:18:00Z" if status in ("Succeeded", "Failed") else "",
    }
    return Task.from_api(raw | fields)


def image(tags: dict[str, str]) -> Image:
    return Image.from_api({"ImageId": IMAGE, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]})


# --- tags ------------------------------------------------------------------------------------------------


def test_exporting_tags_carry_the_state_and_the_destination() -> None:
    """Right after ExportImage the image gets state=exporting and dest=tos://<bucket>/<prefix>."""
    assert state_tags("exporting", DEST) == {
        "image-exporter:state": "exporting",
        "image-exporter:dest": "tos://my-image-exports/imgexport",
    }
    assert state_tags("exported") == {"image-exporter:state": "exported"}


@pytest.mark.parametrize("state", ["exporting", "exported", "failed"])
def test_an_images_tags_read_back_as_its_tracking_state(state: str) -> None:
    """The tags written are read back: state and destination, and a scan must not start the image."""
    tracking = tracking_of(image({STATE_KEY: state, DEST_KEY: DEST.tag_value, "team": "x"}))
    assert (tracking.state, tracking.dest, tracking.blocks_scan) == (state, DEST, True)


@pytest.mark.parametrize(
    "value",
    [
        "my-image-exports/imgexport",
        "tos://my-image-exports",
        "tos://Bad_Bucket/p",
        "tos://bucket-1/has space",
        "tos://b-1/",
    ],
)
def test_an_odd_destination_tag_is_ignored(value: str) -> None:
    """A destination that is not tos://<valid bucket>/<valid prefix> reads as no destination."""
    assert tracking_of(image({STATE_KEY: "exporting", DEST_KEY: value})).dest is None


@given(
    st.from_regex(r"\A[a-z0-9][a-z0-9-]{1,61}[a-z0-9]\Z"),
    st.from_regex(r"\A[A-Za-z0-9]{1,30}\Z"),
)
def test_every_destination_round_trips_through_its_tag(bucket: str, prefix: str) -> None:
    """Any valid bucket and prefix written as a dest tag reads back as the same destination."""
    assert Destination.parse(Destination(bucket, prefix).tag_value) == Destination(bucket, prefix)


def test_images_tagged_alike_share_one_destination_and_one_copy_of_each_tag() -> None:
    """Two images listed with the same tracking tags hold one destination record and one string per tag
    value: a follow-up holds tens of thousands of them."""
    listed = [
        Image.from_api(
            {
                "ImageId": f"image-{n}",
                "Tags": [
                    {"Key": STATE_KEY, "Value": "export" + "ing"},
                    {"Key": DEST_KEY, "Value": DEST.tag_value},
                ],
            }
        )
        for n in range(2)
    ]
    first, second = (dict(i.tags) for i in listed)
    assert all(first[key] is second[key] for key in (STATE_KEY, DEST_KEY))
    assert tracking_of(listed[0]).dest is tracking_of(listed[1]).dest == DEST


def test_times_read_in_one_offset_share_one_zone_and_keep_their_values() -> None:
    """Times read with the same UTC offset hold one zone object between them (a follow-up holds four an
    image); each time is still the one the API wrote."""
    answer = {
        "CreatedAt": "2026-11-27T08:30:00+08:00",
        "UpdatedAt": "2026-11-27T09:30:00+08:00",
        "EndAt": "2026-11-27T01:30:00Z",
    }
    first, second = (Task.from_api({"Id": f"t-{n}", **answer}) for n in range(2))
    times = [(task.created_at, task.updated_at, task.end_at) for task in (first, second)]
    (created, updated, ended), (created_too, _, ended_too) = (
        tuple(getattr(moment, "tzinfo", None) for moment in each) for each in times
    )
    assert created is updated is created_too is not None
    assert ended is ended_too is not created
    read = tuple(datetime.fromisoformat(value) for value in answer.values())
    assert times == [read, read]


def test_images_with_the_same_tags_share_a_group_in_first_seen_order() -> None:
    """Images getting identical tags (in any order) share a request; a repeated image is tagged once."""
    other = Destination("other-bucket", "p")
    groups = group_by_tags(
        [
            ("image-a", state_tags("exporting", DEST)),
            ("image-b", state_tags("exporting", other)),
            ("image-c", {DEST_KEY: DEST.tag_value, STATE_KEY: "exporting"}),
            ("image-a", state_tags("exporting", other)),
        ]
    )
    assert groups == [
        (state_tags("exporting", DEST), ("image-a", "image-c")),
        (state_tags("exporting", other), ("image-b",)),
    ]


# --- tasks -----------------------------------------------------------------------------------------------


def test_the_latest_export_task_of_the_image_is_chosen() -> None:
    """Among each image's tasks, the newest ExportImage one wins; other types are ignored."""
    tasks = [
        task("Failed", Id="t-old", CreatedAt="2026-11-20T08:00:00Z"),
        task("Running", Id="t-new", CreatedAt="2026-11-27T09:00:00Z"),
        task("Succeeded", Id="t-copy", Type="CopyImage", CreatedAt="2026-11-28T00:00:00Z"),
        task("Succeeded", Id="t-elsewhere", ResourceId="image-other", CreatedAt="2026-11-28T00:00:00Z"),
        task("Succeeded", Id="t-mid", CreatedAt="2026-11-25T08:00:00Z"),
    ]
    chosen = latest_export_tasks(tasks).get(IMAGE)
    assert chosen is not None
    assert chosen.task_id == "t-new"
    assert latest_export_tasks(tasks).get("image-none") is None
    assert latest_export_tasks(tasks)["image-other"].task_id == "t-elsewhere"  # every image in one pass


def test_a_task_without_a_creation_time_loses_to_a_dated_one() -> None:
    """A task with no CreatedAt ranks oldest; between equals the one listed last wins."""
    undated = task("Running", Id="t-undated", CreatedAt="")
    dated = task("Failed", Id="t-dated")
    assert latest_export_tasks([dated, undated])[IMAGE] == dated
    twin = task("Running", Id="t-twin")
    assert latest_export_tasks([dated, twin])[IMAGE] == twin


def test_duration_runs_from_created_to_end() -> None:
    """An ended task's duration is EndAt minus CreatedAt; a running one (EndAt "") has none."""
    assert duration_s(task("Succeeded")) == 1080.0
    assert duration_s(task("Running")) is None
    assert duration_s(task("Succeeded", EndAt="2026-11-27T07:00:00Z")) is None


# --- outcomes --------------------------------------------------------------------------------------------


def test_succeeded_and_verified_is_exported_with_its_objects_and_manifest() -> None:
    """A Succeeded task whose objects passed their check is reported exported with the system object's size
    and CRC-64, every object, the verification and the manifest's key, and retagged exported."""
    follow = decide_follow_up(IMAGE, DEST, task("Succeeded"), FOUND)
    assert follow.next_state == "exported"
    assert follow.outcome is not None
    assert follow.outcome.to_json() == {
        "image_id": IMAGE,
        "status": "exported",
        "task_id": "t-1",
        "tos_bucket": DEST.bucket,
        "object_key": KEY,
        "size_bytes": 3_276_800,
        "crc64": "12345678901234567890",
        "duration_s": 1080.0,
        "verified": True,
        "verification": "structure",
        "objects": [
            {k: v for k, v in asdict(SYSTEM).items() if v is not None},
            {k: v for k, v in asdict(DATA).items() if v is not None},
        ],
        "manifest_key": MANIFEST_KEY,
    }


def test_a_check_s_notes_are_the_exported_result_s_reason() -> None:
    """What the check noted (a data disk without a file, sampled L2 tables) is said in the result."""
    noted = Verified(
        "structure", True, (SYSTEM,), ("the image lists 1 data disk(s) but 0 data file(s)",), "m"
    )
    follow = decide_follow_up(IMAGE, DEST, task("Succeeded"), noted)
    assert follow.outcome is not None
    assert follow.outcome.reason == "the image lists 1 data disk(s) but 0 data file(s)"


def test_an_object_that_fails_its_check_is_corrupt_naming_the_object_and_the_check() -> None:
    """A truncated or garbage object is export_failed ExportObjectCorrupt, the message naming the object and
    the check, retagged failed."""
    follow = decide_follow_up(IMAGE, DEST, task("Succeeded"), CORRUPT)
    assert follow.outcome is not None
    assert (follow.outcome.status, follow.next_state) == ("export_failed", "failed")
    assert follow.outcome.error is not None
    assert follow.outcome.error.code == "ExportObjectCorrupt"
    assert "t-1 Succeeded but tos://" in follow.outcome.error.message
    assert "L2 table at 0x90000" in follow.outcome.error.message


def test_a_first_404_is_deferred_and_recorded_never_final() -> None:
    """One 404 for a Succeeded task's object is no verdict: deferred with the task and ExportObjectMissing,
    the tags kept, and the sighting recorded for a later run."""
    follow = decide_follow_up(IMAGE, DEST, task("Succeeded"), MISSING, now=NOW)
    assert (follow.next_state, follow.sighted) == (None, True)
    assert follow.outcome is not None
    assert (follow.outcome.status, follow.outcome.task_id) == ("deferred", "t-1")
    assert follow.outcome.error is not None
    assert follow.outcome.error.code == "ExportObjectMissing"
    assert f"{MISSING_CONFIRM_SECONDS} s from now" in (follow.outcome.reason or "")


def test_a_404_again_within_the_confirm_time_stays_deferred() -> None:
    """A second 404 sooner than MISSING_CONFIRM_SECONDS after the first is still deferred (not recorded
    again: the first sighting's time counts)."""
    sighted = ms(NOW - timedelta(seconds=MISSING_CONFIRM_SECONDS - 60))
    follow = decide_follow_up(IMAGE, DEST, task("Succeeded"), MISSING, now=NOW, sighted=sighted)
    assert follow.outcome is not None
    assert (follow.outcome.status, follow.next_state, follow.sighted) == ("deferred", None, False)
    assert "60 s from now" in (follow.outcome.reason or "")


def test_succeeded_without_the_object_is_export_object_missing() -> None:
    """A Succeeded task with no object at the key, confirmed a few minutes after the first sighting, is
    export_failed ExportObjectMissing, retagged failed."""
    follow = decide_follow_up(IMAGE, DEST, task("Succeeded"), MISSING, **confirmed())
    assert follow.next_state == "failed"
    assert follow.outcome is not None
    assert follow.outcome.status == "export_failed"
    assert follow.outcome.error is not None
    assert follow.outcome.error.code == "ExportObjectMissing"
    assert f"tos://{DEST.bucket}/{KEY}" in follow.outcome.error.message


def test_succeeded_but_unreadable_is_deferred_never_exported_unchecked_nor_failed() -> None:
    """TOS's 403 (a missing permission, a bad signature) checks nothing: deferred with the reason and the
    permission to grant, the tags kept; never ``exported`` unverified, never a failure."""
    follow = decide_follow_up(IMAGE, DEST, task("Succeeded"), UNREADABLE, **confirmed())
    assert follow.outcome is not None
    assert (follow.outcome.status, follow.next_state, follow.sighted) == ("deferred", None, False)
    assert follow.outcome.error is not None
    assert (follow.outcome.error.code, follow.outcome.task_id) == ("AccessDenied", "t-1")
    assert UNREADABLE_REASON in (follow.outcome.reason or "")
    assert "tos:GetObject" in (follow.outcome.reason or "")


def test_a_sighting_counts_only_for_the_export_after_it() -> None:
    """The unseen tag is read as the first sighting only when it is younger than the task: an earlier
    export's sighting, or a value edited by hand, counts for nothing."""
    created = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    after, before = ms(created + timedelta(minutes=20)), ms(created - timedelta(minutes=1))
    assert sighting_of(image({UNSEEN_KEY: str(after)}), task("Succeeded")) == after
    assert sighting_of(image({UNSEEN_KEY: str(before)}), task("Succeeded")) is None
    assert sighting_of(image({UNSEEN_KEY: str(before)}), None) == before
    for odd in ("soon", "", "-5", "0"):
        assert sighting_of(image({UNSEEN_KEY: odd}), task("Succeeded")) is None
    assert sighting_of(image({}), task("Succeeded")) is None


def test_a_failed_task_is_export_task_failed_with_its_times() -> None:
    """A Failed task is export_failed ExportTaskFailed; the message gives its creation and end times."""
    follow = decide_follow_up(IMAGE, DEST, task("Failed"), None)
    assert follow.next_state == "failed"
    assert follow.outcome is not None
    assert follow.outcome.error is not None
    assert follow.outcome.error.code == "ExportTaskFailed"
    assert "t-1" in follow.outcome.error.message
    assert "2026-11-27T08:00:00Z" in follow.outcome.error.message
    assert "2026-11-27T08:18:00Z" in follow.outcome.error.message
    assert follow.outcome.duration_s == 1080.0


@pytest.mark.parametrize("status", ["Pending", "Running", "UnknownStatus", "SomethingNew", ""])
def test_an_unfinished_task_is_in_flight_and_needs_no_head(status: str) -> None:
    """Pending, Running or any unknown status reports nothing, leaves the tags, and asks TOS nothing."""
    running = task(status)
    assert not needs_object(running)
    follow = decide_follow_up(IMAGE, DEST, running, None)
    assert (follow.outcome, follow.next_state) == (None, None)


@pytest.mark.parametrize(
    ("head", "status", "verified", "code"),
    [
        (FOUND, "exported", True, None),
        (MISSING, "export_failed", None, "ExportObjectMissing"),
        (UNREADABLE, "deferred", None, "AccessDenied"),
    ],
)
def test_without_a_task_the_object_alone_decides(
    head: ExportCheck, status: str, verified: bool | None, code: str | None
) -> None:
    """When DescribeTasks no longer lists the task, the object decides: found, missing (once confirmed) or
    unchecked."""
    assert needs_object(None)
    follow = decide_follow_up(IMAGE, DEST, None, head, **confirmed())
    assert follow.outcome is not None
    assert (follow.outcome.status, follow.outcome.verified, follow.outcome.task_id) == (
        status,
        verified,
        None,
    )
    assert (follow.outcome.error.code if follow.outcome.error else None) == code


@pytest.mark.parametrize("check", [None, Stopped("listing", BudgetExhausted("out of time"))])
def test_a_missing_check_where_one_is_needed_is_a_programming_error(check: ExportCheck | None) -> None:
    """Deciding a Succeeded task without its check (or with one a failure stopped, which the flow defers)
    raises instead of guessing."""
    with pytest.raises(ValueError, match="check"):
        decide_follow_up(IMAGE, DEST, task("Succeeded"), check)


@given(
    st.sampled_from(["Pending", "Running", "Succeeded", "Failed", "UnknownStatus", None]),
    st.sampled_from([FOUND, MISSING, UNREADABLE, CORRUPT]),
)
def test_a_403_never_fails_an_export_and_only_ended_tasks_report(
    status: str | None, head: ExportCheck
) -> None:
    """Whatever the task and object: in flight iff the task is unfinished; export_failed only for a Failed
    task, a missing or a corrupt object; an unreadable object never makes a failure."""
    the_task = task(status) if status is not None else None
    follow = decide_follow_up(IMAGE, DEST, the_task, head, **confirmed())
    unfinished = status not in ("Succeeded", "Failed", None)
    assert (follow.outcome is None) is unfinished
    failed = follow.outcome is not None and follow.outcome.status == "export_failed"
    ended_badly = isinstance(head, Missing | Corrupt)
    assert failed is (status == "Failed" or (not unfinished and ended_badly))
    if isinstance(head, ObjectUnreadable) and status != "Failed":
        assert not failed
    assert (follow.next_state == "failed") is failed


def test_times_without_a_zone_are_taken_as_utc() -> None:
    """A task time the API writes without a zone counts as UTC, so durations do not shift by hours."""
    naive = task("Succeeded", CreatedAt="2026-11-27T08:00:00", EndAt="2026-11-27T08:00:30Z")
    assert duration_s(naive) == 30.0
    assert naive.created_at == datetime(2026, 11, 27, 8, 0)  # noqa: DTZ001 - the naive time is the point


# --- the transition table -------------------------------------------------------------------------------


def test_every_start_tags_the_image_exporting_whatever_it_said() -> None:
    """An export that starts is tracked from then on: untracked, exported or failed images alike."""
    for state in (None, "exporting", "exported", "failed"):
        assert next_state(state, "started") == "exporting"


def test_only_an_export_in_flight_ends_and_only_as_the_table_says() -> None:
    """Ends are read for ``exporting`` images only: a finished image never moves on a follow-up's finding."""
    assert next_state("exporting", "task_failed") == "failed"
    assert next_state("exporting", "object_missing") == "failed"
    assert next_state("exporting", "object_found") == "exported"
    assert next_state("exporting", "object_corrupt") == "failed"
    assert next_state("exporting", "object_unreadable") is None  # a 403 checks nothing: still in flight
    for state in ("exported", "failed", None):
        for event in ("task_failed", "object_missing", "object_found", "object_corrupt", "object_unreadable"):
            assert next_state(state, event) is None  # type: ignore[arg-type]
    assert set(TRANSITIONS.values()) == {"exporting", "exported", "failed"}


@pytest.mark.parametrize(
    ("status", "head", "event"),
    [
        ("Failed", None, "task_failed"),
        ("Succeeded", "missing", "object_missing"),
        ("Succeeded", "found", "object_found"),
        ("Succeeded", "small", "object_corrupt"),
    ],
)
def test_a_follow_up_decision_sets_the_state_the_table_gives(
    status: str, head: str | None, event: str
) -> None:
    """``decide_follow_up`` takes its next tag from the table, for each way an export ends."""
    dest = Destination("bucket-a", "exp")
    answer = {None: None, "missing": MISSING, "found": FOUND, "small": CORRUPT}[head]
    decided = decide_follow_up("img-1", dest, task(status), answer, **confirmed())
    assert decided.next_state == TRANSITIONS["exporting", event]  # type: ignore[index]


@pytest.mark.parametrize(
    ("tags", "state", "odd"),
    [
        ({STATE_KEY: "EXPORTED"}, "exported", None),
        ({STATE_KEY: " exported "}, "exported", None),
        ({"Image-Exporter:State": "failed"}, "failed", None),
        ({STATE_KEY: "exporting", "IMAGE-EXPORTER:STATE": "failed"}, "exporting", None),  # ours wins
        ({STATE_KEY: "done"}, None, "done"),
        ({}, None, None),
    ],
)
def test_hand_edited_state_tags_follow_one_rule(
    tags: dict[str, str], state: str | None, odd: str | None
) -> None:
    """Case and surrounding spaces are folded, in keys and values; any other value is odd: it blocks a
    scan (never exported blindly) and is not taken for a state."""
    image = Image.from_api({"ImageId": "image-a", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]})
    tracking = tracking_of(image)
    assert (tracking.state, tracking.odd) == (state, odd)
    assert tracking.blocks_scan == bool(tags)
