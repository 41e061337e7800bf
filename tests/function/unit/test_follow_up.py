"""The tracking flow against the emulated ECS account and its TOS, through the function's own clients: the
follow-up, the tags on started exports, the scan that respects them, the in-flight cap, and the retag after the
outcomes are reported."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from structlog.testing import capture_logs

from exporter_tools.emulator.qcow2_image import qcow2_layout
from handler.adapters import ecs as ecs_adapter
from handler.core.budget import Budget
from handler.core.claims import CLAIM_KEY, NO_CLAIM, Claim
from handler.core.follow_up import FollowUpReport, follow_up, run_tracked
from handler.core.plan import ExportPlan
from handler.core.tracker import Retag, Tracker
from handler.core.tracking import DEST_KEY, STATE_KEY, Destination
from handler.errors import RetryableApiError, ServerError, TerminalApiError, Throttled, UnknownOutcomeError
from handler.models.api import Image
from handler.models.events import Command, ExportCommand, ScanCommand
from handler.models.results import ImageOutcome
from tests.support.account import Account
from tests.support.builders import fleet_image, fleet_task
from tests.support.fakes import Call, failing

PLAN = ExportPlan(
    bucket="b-1", prefix="nightly", region="cn-beijing", concurrency=1, dedupe_hours=None, lookback_hours=25
)
WIDE = Budget(send_by=1e12, start_by=1e12, seconds=900, report_by=1e12)
DEST = "tos://b-1/nightly"
SCAN = ScanCommand(trigger="timer")
GIB = 1024**3
EXPORT_SECONDS = 18 * 60  # how long the account's exports take
FOREVER = 100  # an emulator fault armed for this many calls: every call of the test


def account(
    *images: str,
    tracked: dict[str, str] | None = None,
    ended: dict[str, str] | None = None,
    dest: str = DEST,
    **image_fields: Any,
) -> Account:
    """An account holding untagged ``images`` and the images of ``tracked`` tagged with their state and
    ``dest`` (``image_fields`` for every image), listed in that order; exports take ``EXPORT_SECONDS``. Each image of ``ended`` has
    an export that ended so: Succeeded with its object written (made through the API, then the clock moved
    on by the export's length), Failed, or still Running."""
    tags = {i: {} for i in images} | {
        i: {STATE_KEY: state, DEST_KEY: dest} for i, state in (tracked or {}).items()
    }
    # DescribeImages lists the newest first: each image a minute older than the one before, listed in order
    fleet = [
        fleet_image(i, tags=t, hours_ago=1 + n / 60, **image_fields) for n, (i, t) in enumerate(tags.items())
    ]
    tasks = [fleet_task(i, status) for i, status in (ended or {}).items() if status != "Succeeded"]
    ecs = Account(fleet, tasks, task_seconds=EXPORT_SECONDS)
    succeeded = [i for i, status in (ended or {}).items() if status == "Succeeded"]
    for image_id in succeeded:
        ecs.export_now(image_id)
    if succeeded:
        ecs.clock.advance(EXPORT_SECONDS)
    return ecs


def key(image_id: str) -> str:
    return f"nightly_{image_id}_system.qcow2"


EXPORTING = {STATE_KEY: "exporting", DEST_KEY: DEST, CLAIM_KEY: NO_CLAIM}


def run(ecs: Account, command: Command = SCAN, cap: int | None = None, holder: str = "run-1") -> Any:
    return run_tracked(
        command,
        api=ecs.api,
        store=ecs.api,
        plan=PLAN,
        budget=WIDE,
        cap=cap,
        holder=holder,
        clock=ecs.clock,
    )


def tracker(ecs: Account, holder: str = "run-1", api: Any = None) -> Tracker:
    """The tracking writes of one invocation named ``holder``, on the account's clock, through ``api``
    (default the recorded ``ecs.api``; ``ecs.client`` for another copy, not recorded)."""
    return Tracker(
        api or ecs.api,
        Destination("b-1", "nightly"),
        holder=holder,
        clock=ecs.clock,
        settle=2.0,
        ends_at=ecs.clock.monotonic() + 900,
        deadline=1e12,
    )


def next_states(report: FollowUpReport) -> list[tuple[str, str]]:
    return [(r.image_id, r.state) for r in report.retags]


def _fail_tag_searches(ecs: Account, status: int, code: str) -> None:
    """Every DescribeImages with tag filters is answered ``status`` ``code``; the others as ever."""

    def hook(call: Call, send: Callable[[], Any]) -> Any:
        if call.asked:
            ecs.emulator.fail_next("DescribeImages", status, code, "refused")
        return send()

    ecs.api.on("DescribeImages", hook)


def statuses(outcomes: Iterable[ImageOutcome]) -> dict[str | None, str]:
    return {o.image_id: o.status for o in outcomes}


def test_the_follow_up_reports_each_finished_export_and_counts_the_rest_in_flight() -> None:
    """Succeeded with its objects → exported (verified, its objects, its manifest, size, duration); Failed →
    export_failed; Running → nothing, counted in flight; each finished one gets its next state, to be set
    after it is reported."""
    finished = {"image-ok": "Succeeded", "image-bad": "Failed", "image-busy": "Running"}
    ecs = account(tracked=dict.fromkeys(finished, "exporting"), ended=finished, size_gb=40)

    report = follow_up(ecs.api, ecs.api, tracker(ecs), deadline=1e12)

    exported, failed = report.outcomes
    assert (exported.image_id, exported.status, exported.verified) == ("image-ok", "exported", True)
    assert exported.objects is not None
    (system,) = exported.objects
    assert (system.key, system.disk, system.virtual_size_bytes) == (key("image-ok"), "system", 40 * GIB)
    assert exported.size_bytes == system.size_bytes == qcow2_layout(40 * GIB).length  # the file, not the disk
    assert exported.manifest_key == "nightly_image-ok.manifest.json"
    assert exported.duration_s == 18 * 60
    assert (failed.image_id, failed.status) == ("image-bad", "export_failed")
    assert failed.error is not None
    assert failed.error.code == "ExportTaskFailed"
    assert next_states(report) == [("image-ok", "exported"), ("image-bad", "failed")]
    assert report.in_flight == 1
    assert ecs.count("ListObjectsV2") == 1  # only the Succeeded task's objects are looked at
    assert ("ListObjectsV2", "nightly_image-ok_") in ecs.calls
    assert ecs.count("PutObject") == 1


def test_tos_not_answering_defers_the_export_with_its_task_and_error_and_never_calls_it_missing() -> None:
    """A listing of the export's objects that fails after retries leaves the export unchecked: deferred, with its task, the error
    and a reason that says the export may well be fine and what to check; it is counted in flight, never
    reported missing on a guess, and its tags stay for the next run."""
    ecs = account(tracked={"image-ok": "exporting"}, ended={"image-ok": "Succeeded"})
    (task,) = ecs.client.describe_tasks(deadline=1e12, resource_ids=["image-ok"])
    ecs.api.on("ListObjectsV2", failing(ServerError("down", code="InternalError", action="ListObjectsV2")))

    with capture_logs() as logs:
        report = follow_up(ecs.api, ecs.api, tracker(ecs), deadline=1e12)

    (unchecked,) = report.outcomes
    assert (unchecked.status, unchecked.task_id) == ("deferred", task.task_id)
    assert unchecked.error is not None
    assert unchecked.error.code == "InternalError"
    assert "the export itself may well be fine" in str(unchecked.reason)
    assert "listing tos://b-1/nightly_image-ok_*" in str(unchecked.reason)
    assert (report.in_flight, report.retags) == (1, ())
    assert ecs.tags_of("image-ok")[STATE_KEY] == "exporting"
    assert any(line["event"] == "follow_up.check_failed" for line in logs)


def test_tos_unreachable_says_to_check_the_endpoint_and_then_the_export_is_reported() -> None:
    """TOS cannot be reached (a wrong TOS_ENDPOINT, a network policy): the reason says what to check, the
    run is not ok; once TOS answers, the next run reports the export exported."""
    ecs = account(tracked={"image-ok": "exporting"}, ended={"image-ok": "Succeeded"})
    unreachable = RetryableApiError("no route", code="ConnectError", action="ListObjectsV2")
    ecs.api.on("ListObjectsV2", failing(unreachable))

    first = run(ecs)

    (unchecked,) = first.outcomes
    assert unchecked.status == "deferred"
    assert "check TOS_ENDPOINT" in str(unchecked.reason)
    assert "grant" not in str(unchecked.reason)
    assert statuses(run(ecs, holder="run-2").outcomes) == {"image-ok": "exported"}


def test_a_failed_task_look_up_defers_every_export_in_flight() -> None:
    """DescribeTasks failing leaves every export in flight unchecked: each is deferred with the error."""
    ecs = account(tracked=dict.fromkeys(("image-a", "image-b"), "exporting"), ended={"image-a": "Running"})
    ecs.api.on(
        "DescribeTasks", failing(Throttled("slow down", code="FlowLimitExceeded", action="DescribeTasks"))
    )

    report = follow_up(ecs.api, ecs.api, tracker(ecs), deadline=1e12)

    assert statuses(report.outcomes) == {"image-a": "deferred", "image-b": "deferred"}
    assert all("nothing to fix if it passes" in str(o.reason) for o in report.outcomes)
    assert report.in_flight is None


def test_exports_in_flight_that_cannot_be_counted_hold_every_new_export_under_a_cap() -> None:
    """When the images in flight cannot be listed, the follow-up says so in a deferred result of its own
    (no image: every export in flight is unchecked) and, under a cap, nothing is exported blind: a timer's
    named image is deferred with the reason."""
    ecs = account("image-new")
    _fail_tag_searches(ecs, 429, "FlowLimitExceeded")

    with capture_logs() as logs:
        outcome = run(ecs, ExportCommand(trigger="timer", image_ids=("image-new",)), cap=5)

    unchecked, held = outcome.outcomes
    assert (unchecked.image_id, unchecked.status) == (None, "deferred")
    assert "the exports in flight could not be checked" in str(unchecked.reason)
    assert held.status == "deferred"
    assert "could not be counted" in str(held.reason)
    assert ecs.count("ExportImage") == 0
    assert any(line["event"] == "follow_up.failed" for line in logs)


def test_a_scan_never_starts_an_image_that_carries_a_state_tag() -> None:
    """Images tagged exporting, exported (whatever DescribeTasks says) or failed are left out of a scan:
    no export, no result; an untagged image is exported and tagged."""
    states = ("exporting", "exported", "failed")
    ecs = account(
        "image-new",
        tracked={f"image-{state}": state for state in states},
        ended={"image-exporting": "Running"},
    )

    outcome = run(ecs)

    assert statuses(outcome.outcomes) == {"image-new": "started"}
    assert ecs.tags_of("image-new") == EXPORTING
    assert [c for c in ecs.calls if c[0] == "ExportImage"] == [("ExportImage", "image-new")]


def test_a_named_image_tagged_failed_is_exported_again() -> None:
    """An event naming an image whose last export failed exports it again (the tag does not block it)."""
    ecs = account(tracked={"image-retry": "failed"}, ended={"image-retry": "Failed"})

    outcome = run(ecs, ExportCommand(trigger="event", image_ids=("image-retry",)))

    assert statuses(outcome.outcomes) == {"image-retry": "started"}
    assert ecs.tags_of("image-retry")[STATE_KEY] == "exporting"


def test_the_scan_and_the_follow_up_share_one_listing() -> None:
    """A timer scan lists the images once: the follow-up finds the exports in flight in the scan's own
    listing, so tracking adds no DescribeImages request."""
    ecs = account("image-new", tracked={"image-busy": "exporting"}, ended={"image-busy": "Running"})

    run(ecs)

    assert ecs.count("DescribeImages") == 1
    assert ecs.emulator.stats()["requests"]["DescribeImages"] == {"200": 1}


def test_an_export_is_followed_up_whatever_status_its_image_shows_meanwhile() -> None:
    """The shared listing asks for every private image, not only available ones: an image whose status
    changes while it is exported (unconfirmed for the real API) is still followed up, and never exported
    again by the scan."""
    ecs = account(tracked={"image-ok": "exporting"}, ended={"image-ok": "Succeeded"})

    def shown_exporting(_call: Call, send: Callable[[], Any]) -> list[Image]:
        # a status the emulated account cannot hold: DescribeImages says it
        return [dataclasses.replace(i, status="exporting") for i in send()]

    ecs.api.on("DescribeImages", shown_exporting)

    tracked = run(ecs)

    assert statuses(tracked.outcomes) == {"image-ok": "exported"}
    assert ecs.count("ExportImage") == 0
    assert ecs.count("DescribeImages") == 3  # the one listing, and the claim's two reads by id


def test_under_a_cap_the_exports_in_flight_are_counted_by_a_tag_search() -> None:
    """With a cap, a scan counts the exports in flight with a tag search of their own (whatever status their
    images have while they are exported), then lists the images to scan."""
    ecs = account(tracked={"image-busy": "exporting"}, ended={"image-busy": "Running"})

    run(ecs, cap=3)

    assert [c[1] for c in ecs.calls if c[0] == "DescribeImages"] == [{STATE_KEY: "exporting"}, {}]


def test_a_scan_over_the_cap_queues_the_rest_counting_exports_still_in_flight() -> None:
    """With a cap of 3 and one export still running, a scan of 4 new images starts 2 and queues 2; queued
    is not an error."""
    ecs = account(
        *(f"image-new{n}" for n in range(4)),
        tracked={"image-busy": "exporting"},
        ended={"image-busy": "Running"},
    )

    outcome = run(ecs, cap=3)

    assert [o.status for o in outcome.outcomes] == ["started", "started", "queued", "queued"]
    assert all("EXPORT_MAX_IN_FLIGHT=3" in (o.reason or "") for o in outcome.outcomes[2:])


def test_an_event_under_a_cap_counts_the_exports_in_flight_by_their_tag() -> None:
    """An event does not follow up; with a cap it counts the images tagged exporting (one tag search) and
    defers the images over the cap."""
    ecs = account("image-a", "image-b", tracked={"image-busy": "exporting"})

    outcome = run(ecs, ExportCommand(trigger="event", image_ids=("image-a", "image-b")), cap=2)

    assert statuses(outcome.outcomes) == {"image-a": "started", "image-b": "deferred"}
    assert ("DescribeImages", {STATE_KEY: "exporting"}) in ecs.calls


def test_started_exports_are_tagged_together_with_their_destination_and_no_claim() -> None:
    """Every started export gets the same three tags in one tagging call (the client sends 50 images a
    request) once the batch is flushed; an image not started is not tagged."""
    ecs = account("image-a", "image-b", "image-d")
    writes = tracker(ecs)

    writes.started("image-a")
    writes.started("image-d")
    assert ecs.count("TagResources") == 0  # a batch waits for more, a couple of seconds at most
    writes.flush()

    assert ecs.calls == [("TagResources", (("image-a", "image-d"), EXPORTING))]
    assert ecs.emulator.stats()["requests"]["TagResources"] == {"200": 1}
    assert ecs.tags_of("image-d") == EXPORTING
    assert ecs.tags_of("image-b") == {}
    assert writes.untracked == {}


def test_a_batch_is_tagged_once_its_oldest_export_has_waited_two_seconds() -> None:
    """Exports are tagged as they go: a slow run tags each batch within seconds of its first export, so a
    crash leaves few exports untagged (and a later scan adopts those)."""
    ecs = account("image-a", "image-b", "image-c")
    writes = tracker(ecs)

    writes.started("image-a")
    ecs.clock.advance(2.5)
    writes.started("image-b")
    writes.started("image-c")

    assert [c[1][0] for c in ecs.calls] == [("image-a", "image-b")]


def test_an_export_that_could_not_be_tagged_still_counts_as_started_and_says_so() -> None:
    """Tagging refused: the result stays started, its reason says it is not tracked and which permission
    to grant, and a log line names the images."""
    ecs = account("image-a")
    ecs.ecs.tagging_allowed = False  # the role may not call ecs:TagResources: 403 AccessDenied

    with capture_logs() as logs:
        (tagged,) = run(ecs).outcomes

    assert tagged.status == "started"
    assert "not tracked" in str(tagged.reason)
    assert "AccessDenied" in str(tagged.reason)
    assert "grant ecs:TagResources" in str(tagged.reason)
    assert [line["image_ids"] for line in logs if line["event"] == "tracking.untracked"] == [["image-a"]]


def test_a_throttled_tagging_says_a_later_scan_tracks_it_and_never_advises_a_grant() -> None:
    """Tagging that fails on throttling past the retries is transient: the reason says a later scan finds
    the export and tracks it, and names no permission."""
    ecs = account("image-a")
    ecs.emulator.fail_next("TagResources", 429, "FlowLimitExceeded", "slow down", times=FOREVER)

    (tagged,) = run(ecs).outcomes

    assert tagged.status == "started"
    assert "a later scan finds the export and tracks it" in str(tagged.reason)
    assert "grant" not in str(tagged.reason)


def test_one_image_at_the_tag_limit_leaves_only_itself_untracked() -> None:
    """The API refuses a whole TagResources request when one image would pass 50 tags: the batch is split
    until that image stands alone, so the 13 others are tracked and only it says why it is not."""
    full = {f"team-{n}": "x" for n in range(49)}  # 49 tags: our three would make 52
    ids = [f"image-{c}" for c in "abcdefghijklmn"]
    ecs = Account([fleet_image(i, tags=full if i == "image-f" else {}, hours_ago=1) for i in ids])

    with capture_logs() as logs:
        outcomes = {o.image_id: o for o in run(ecs).outcomes}

    untracked = [i for i, o in outcomes.items() if "not tracked" in (o.reason or "")]
    assert untracked == ["image-f"]
    assert "QuotaExceeded.TagsPerResource" in str(outcomes["image-f"].reason)
    assert "too many tags" in str(outcomes["image-f"].reason)
    for image_id in ids:
        if image_id != "image-f":
            assert ecs.tags_of(image_id) == EXPORTING
    assert STATE_KEY not in ecs.tags_of("image-f")
    assert [line["image_ids"] for line in logs if line["event"] == "tracking.untracked"] == [["image-f"]]
    # halves, then quarters...: a handful of requests, not one per image
    assert 2 <= ecs.emulator.stats()["requests"]["TagResources"].get("200", 0) <= 6


def test_a_refusal_that_is_no_images_fault_is_not_split() -> None:
    """Without the permission every image is refused alike: one request, every image untracked, no split."""
    ids = [f"image-{c}" for c in "abcdefgh"]
    ecs = Account([fleet_image(i) for i in ids])
    ecs.ecs.tagging_allowed = False
    writes = tracker(ecs)

    for image_id in ids:
        writes.started(image_id)
    writes.flush()

    assert {e.code for e in writes.untracked.values()} == {"AccessDenied"}
    assert sorted(writes.untracked) == ids
    assert sum(ecs.emulator.stats()["requests"]["TagResources"].values()) == 1


def _claimed(ecs: Account, holder: str, *image_ids: str) -> dict[str, Claim]:
    """Write ``holder``'s report claim on the images, as its follow-up would have."""
    claims = {}
    for image_id in image_ids:
        claim = Claim.new("report", holder, now=ecs.clock.now(), lasts=900, reports=1)
        ecs.client.tag_images([image_id], {CLAIM_KEY: claim.value}, deadline=1e12)
        claims[image_id] = claim
    return claims


def test_a_retag_sets_each_state_once_clears_the_claim_and_a_refusal_only_logs() -> None:
    """Reported exports are retagged one request per state, their claim cleared; a refused retag is logged
    (the next run reports them again) and never raises."""
    ecs = account(tracked=dict.fromkeys(("image-a", "image-b", "image-c"), "exporting"))
    claims = _claimed(ecs, "run-1", "image-a", "image-b", "image-c")
    retags = [
        Retag("image-a", "exported", claims["image-a"]),
        Retag("image-b", "failed", claims["image-b"]),
        Retag("image-c", "exported", claims["image-c"]),
    ]

    tracker(ecs).retag(retags, deadline=1e12)

    assert [c[1] for c in ecs.calls if c[0] == "TagResources"] == [
        (("image-a", "image-c"), {STATE_KEY: "exported", CLAIM_KEY: NO_CLAIM}),
        (("image-b",), {STATE_KEY: "failed", CLAIM_KEY: NO_CLAIM}),
    ]
    assert ecs.tags_of("image-a") == {STATE_KEY: "exported", DEST_KEY: DEST, CLAIM_KEY: NO_CLAIM}
    assert ecs.tags_of("image-b")[STATE_KEY] == "failed"


def test_a_refused_retag_only_logs() -> None:
    ecs = account(tracked=dict.fromkeys(("image-a", "image-b"), "exporting"))
    claims = _claimed(ecs, "run-1", "image-a", "image-b")
    retags = [Retag("image-a", "exported", claims["image-a"]), Retag("image-b", "failed", claims["image-b"])]
    ecs.emulator.fail_next("TagResources", 500, "InternalError", "down", times=FOREVER)

    with capture_logs() as logs:
        tracker(ecs).retag(retags, deadline=1e12)

    assert sum(line["event"] == "tracking.retag_failed" for line in logs) == 2
    assert ecs.tags_of("image-a")[STATE_KEY] == "exporting"


def test_a_retag_leaves_an_image_re_exported_meanwhile_as_it_is() -> None:
    """The settle race: while this run reported image-x's failed export, an event exported it again and
    tagged it exporting (its claim cleared). The retag finds the claim gone and leaves the new export
    exporting, to be followed up; the other image is retagged."""
    ecs = account(tracked=dict.fromkeys(("image-x", "image-y"), "exporting"))
    claims = _claimed(ecs, "run-1", "image-x", "image-y")
    ecs.client.tag_images(["image-x"], EXPORTING, deadline=1e12)  # the event's tags, written meanwhile

    with capture_logs() as logs:
        tracker(ecs).retag(
            [Retag("image-x", "failed", claims["image-x"]), Retag("image-y", "failed", claims["image-y"])],
            deadline=1e12,
        )

    assert ecs.tags_of("image-x") == EXPORTING
    assert ecs.tags_of("image-y")[STATE_KEY] == "failed"
    assert [line["image_id"] for line in logs if line["event"] == "tracking.moved_on"] == ["image-x"]


def test_a_tagging_call_refused_before_sending_leaves_the_exports_untracked_and_the_retag_quiet() -> None:
    """A tagging call that raises (a tag the client refuses to send) marks the started exports not tracked,
    and a retag that raises is only logged."""
    ecs = account(tracked={"image-a": "exporting"})
    claims = _claimed(ecs, "run-1", "image-a")
    bad_key = TerminalApiError("bad key", code="InvalidTagKey.Malformed", action="TagResources")
    ecs.api.on("TagResources", failing(bad_key, bad_key))
    writes = tracker(ecs)

    with capture_logs() as logs:
        writes.started("image-a")
        writes.flush()
        writes.retag([Retag("image-a", "exported", claims["image-a"])], deadline=1e12)

    assert writes.untracked["image-a"].code == "InvalidTagKey.Malformed"
    assert [line["event"] for line in logs if line["log_level"] == "warning"] == [
        "tracking.untracked",
        "tracking.retag_failed",
    ]


def test_an_exporting_tag_without_a_readable_destination_is_checked_at_the_functions_own() -> None:
    """An image tagged exporting whose destination tag is missing or edited by hand is neither left in
    flight forever nor trusted: it is checked at the function's own destination, and its outcome names the
    odd value; a log line names it too."""
    ecs = account(
        tracked={"image-odd": "exporting"}, ended={"image-odd": "Succeeded"}, dest="s3://elsewhere/x"
    )

    with capture_logs() as logs:
        report = follow_up(ecs.api, ecs.api, tracker(ecs), deadline=1e12)

    (checked,) = report.outcomes
    assert (checked.status, checked.tos_bucket) == ("exported", "b-1")
    assert "'s3://elsewhere/x'" in str(checked.reason)
    assert [line["image_id"] for line in logs if line["event"] == "follow_up.no_destination"] == ["image-odd"]


def test_a_tag_search_at_the_apis_cap_lists_every_image_instead() -> None:
    """The API's tag search lists at most 1,000 images: when it returns that many, the follow-up lists all
    images and keeps those tagged exporting itself, so none is missed."""
    ids = [f"image-{n:04d}" for n in range(1000)]
    ecs = account(tracked=dict.fromkeys(ids, "exporting"), ended=dict.fromkeys(ids, "Running"))

    report = follow_up(ecs.api, ecs.api, tracker(ecs), deadline=1e12)

    assert report.in_flight == 1000
    assert [c[1] for c in ecs.calls if c[0] == "DescribeImages"] == [{STATE_KEY: "exporting"}, {}]


def test_an_event_whose_exports_in_flight_cannot_be_counted_defers_under_a_cap() -> None:
    """An event under a cap whose tag search fails starts nothing: its images are deferred."""
    ecs = account("image-a")
    _fail_tag_searches(ecs, 429, "FlowLimitExceeded")

    with capture_logs() as logs:
        outcome = run(ecs, ExportCommand(trigger="event", image_ids=("image-a",)), cap=2)

    assert statuses(outcome.outcomes) == {"image-a": "deferred"}
    assert any(line["event"] == "tracking.count_failed" for line in logs)


# -- two copies at once, crashes, adoption ------------------------------------------------------------------


def _during_first(ecs: Account, action: str, other: Callable[[], Any], *, before_send: bool) -> None:
    """Run ``other`` (another copy of the function) inside this copy's first ``action`` call, before or
    after it is sent: the interleaving two invocations at once can have."""

    def hook(call: Call, send: Callable[[], Any]) -> Any:
        if call.n != 1:
            return send()
        if before_send:
            other()
            return send()
        answer = send()
        other()
        return answer

    ecs.api.on(action, hook)


def _finished_dozen() -> tuple[Account, list[str]]:
    ids = [f"image-{n:02d}" for n in range(12)]
    ecs = account(tracked=dict.fromkeys(ids, "exporting"), ended=dict.fromkeys(ids, "Succeeded"))
    return ecs, ids


def _copy_b_during_the_first_claim(ecs: Account, *, before_send: bool) -> list[str]:
    """Have copy B (``run-b``, not recorded) follow up inside copy A's first claim write, before or after it is
    sent; the images B reports, filled in when it has run."""
    seen: list[str] = []

    def copy_b() -> None:
        report = follow_up(ecs.client, ecs.store_client, tracker(ecs, "run-b", ecs.client), deadline=1e12)
        seen.extend(o.image_id or "" for o in report.outcomes)

    _during_first(ecs, "TagResources", copy_b, before_send=before_send)
    return seen


def test_two_follow_ups_at_once_report_each_end_once_when_the_second_claims_first() -> None:
    """Copy B runs its whole follow-up between copy A's read of the tags and A's claim: B reports all 12;
    A's claim came too long after its read to be trusted, so A reports none of their ends: it defers each,
    saying why (never a silent ok)."""
    ecs, ids = _finished_dozen()
    seen = _copy_b_during_the_first_claim(ecs, before_send=True)
    with capture_logs() as logs:
        report = follow_up(ecs.api, ecs.api, tracker(ecs, "run-a"), deadline=1e12)

    assert sorted(seen) == ids
    assert sorted(o.image_id or "" for o in report.outcomes) == ids
    assert {(o.status, o.error.code if o.error else None) for o in report.outcomes} == {
        ("deferred", "ClaimTooSlow")
    }
    assert any(line["event"] == "tracking.claims_too_slow" for line in logs)


def test_many_finished_exports_are_claimed_in_chunks_and_all_reported() -> None:
    """250 exports that finished, against an API that takes 0.3 s a request: claiming them all takes longer
    than half the settle time, but each chunk's read and write do not, so every end is reported (it was
    none: the whole claim was dropped as too slow, and the run said ok)."""
    ids = [f"image-{n:03d}" for n in range(250)]
    ecs = account(tracked=dict.fromkeys(ids, "exporting"), ended=dict.fromkeys(ids, "Succeeded"))

    def slow(call: Call, send: Callable[[], Any]) -> Any:
        ecs.clock.advance(0.3)
        return send()

    for action in ("DescribeImages", "TagResources"):
        ecs.api.on(action, slow)
    report = follow_up(ecs.api, ecs.api, tracker(ecs, "run-a"), deadline=1e12)

    assert sorted(o.image_id or "" for o in report.outcomes) == ids
    assert {o.status for o in report.outcomes} == {"exported"}


def test_two_follow_ups_at_once_report_each_end_once_when_the_first_claims_first() -> None:
    """Copy B follows up while copy A's claims are settling: B sees A's claims and leaves the images; A
    reports all 12."""
    ecs, ids = _finished_dozen()
    seen = _copy_b_during_the_first_claim(ecs, before_send=False)
    report = follow_up(ecs.api, ecs.api, tracker(ecs, "run-a"), deadline=1e12)

    assert seen == []
    assert sorted(o.image_id or "" for o in report.outcomes) == ids


def test_two_scans_at_once_under_a_cap_of_3_start_3_in_all() -> None:
    """Copy B scans while copy A's start claims settle: B finds A's claims in the count and yields; A starts
    its 3. Neither starts more than the cap allows."""
    ecs = account(*(f"image-new{n}" for n in range(8)))
    plan = ExportPlan(
        bucket="b-1",
        prefix="nightly",
        region="cn-beijing",
        concurrency=3,
        dedupe_hours=None,
        lookback_hours=25,
    )
    other: dict[str, Any] = {}

    def copy_b() -> None:
        other["run"] = run_tracked(
            SCAN,
            api=ecs.client,
            store=ecs.store_client,
            plan=plan,
            budget=WIDE,
            cap=3,
            holder="run-b",
            clock=ecs.clock,
        )

    _during_first(ecs, "TagResources", copy_b, before_send=False)
    mine = run_tracked(
        SCAN, api=ecs.api, store=ecs.api, plan=plan, budget=WIDE, cap=3, holder="run-a", clock=ecs.clock
    )

    started = [o.image_id for o in (*mine.outcomes, *other["run"].outcomes) if o.status == "started"]
    assert len(started) == 3
    assert len(set(started)) == 3
    assert all(o.status == "queued" for o in other["run"].outcomes)
    assert sum(ecs.ecs.export_tasks_by_image().values()) == 3
    exporting = [i for i in (f"image-new{n}" for n in range(8)) if STATE_KEY in ecs.tags_of(i)]
    assert sorted(exporting) == sorted(started)  # the claims that yielded were removed again


def test_a_start_claim_whose_copy_died_before_its_export_is_released() -> None:
    """An image claimed to start by a copy that ended before its ExportImage (no task since the claim) is
    untagged by the next follow-up, and a scan exports it."""
    ecs = account(tracked={"image-a": "exporting"})
    dead = Claim.new("start", "run-dead", now=ecs.clock.now(), lasts=5)
    ecs.client.tag_images(["image-a"], {CLAIM_KEY: dead.value}, deadline=1e12)
    ecs.clock.advance(60)

    with capture_logs() as logs:
        report = follow_up(ecs.api, ecs.api, tracker(ecs), deadline=1e12)

    assert (report.outcomes, report.in_flight) == ((), 0)
    assert ecs.tags_of("image-a") == {}
    assert any(line["event"] == "tracking.released" for line in logs)
    assert statuses(run(ecs).outcomes) == {"image-a": "started"}


def test_a_start_claim_whose_export_went_out_is_followed_up_as_any_other() -> None:
    """The copy died after its ExportImage but before tagging it: the export task since the claim means the
    image is followed up and its end reported."""
    ecs = account(tracked={"image-a": "exporting"})
    dead = Claim.new("start", "run-dead", now=ecs.clock.now(), lasts=5)
    ecs.client.tag_images(["image-a"], {CLAIM_KEY: dead.value}, deadline=1e12)
    ecs.export_now("image-a")
    ecs.clock.advance(EXPORT_SECONDS)

    report = follow_up(ecs.api, ecs.api, tracker(ecs), deadline=1e12)

    assert statuses(report.outcomes) == {"image-a": "exported"}


def test_a_scan_adopts_an_export_it_finds_under_way_untracked_and_a_later_run_reports_it() -> None:
    """A crash after ExportImage and before tagging left an export untracked: the next scan finds its task,
    says so, tags the image exporting, and the run after reports how it ended."""
    ecs = account("image-a")
    ecs.export_now("image-a")  # the crashed run's export

    (adopted,) = run(ecs).outcomes
    assert adopted.status == "skipped"
    assert "now tagged exporting" in str(adopted.reason)
    assert ecs.tags_of("image-a") == EXPORTING

    ecs.clock.advance(EXPORT_SECONDS)
    assert statuses(run(ecs).outcomes) == {"image-a": "exported"}


def test_an_event_naming_an_exported_image_adopts_nothing() -> None:
    """Only a scan adopts (it knows the image is untracked): an event naming an image whose export is done
    is skipped and its tags left as they are."""
    ecs = account("image-a")
    ecs.export_now("image-a")

    outcome = run(ecs, ExportCommand(trigger="event", image_ids=("image-a",)))

    assert statuses(outcome.outcomes) == {"image-a": "skipped"}
    assert ecs.tags_of("image-a") == {}


@pytest.mark.parametrize(
    ("earlier_reports", "reported", "words"),
    [
        (0, True, None),
        (2, True, "reported again (3 of 3)"),
        (3, True, "needs attention"),
        (4, False, None),
    ],
)
def test_an_end_whose_retag_keeps_failing_is_reported_three_times_then_once_as_needing_attention(
    earlier_reports: int, reported: bool, words: str | None
) -> None:
    """The claim counts how often this task's end was claimed for reporting: after 3 reports and a notice
    that the image needs attention, the run leaves it out of its results (the log still says it)."""
    ecs = account(tracked={"image-a": "exporting"}, ended={"image-a": "Failed"})
    if earlier_reports:
        earlier = Claim.new("report", "run-0", now=ecs.clock.now(), lasts=1, reports=earlier_reports)
        ecs.client.tag_images(["image-a"], {CLAIM_KEY: earlier.value}, deadline=1e12)
        ecs.clock.advance(120)

    report = follow_up(ecs.api, ecs.api, tracker(ecs), deadline=1e12)

    assert [o.image_id for o in report.outcomes] == (["image-a"] if reported else [])
    if words:
        assert words in str(report.outcomes[0].reason)
    assert next_states(report) == [("image-a", "failed")]  # the retag is tried every time


def test_an_image_another_copy_is_reporting_is_left_to_it() -> None:
    ecs = account(tracked={"image-a": "exporting"}, ended={"image-a": "Succeeded"})
    theirs = Claim.new("report", "run-b", now=ecs.clock.now(), lasts=900, reports=1)
    ecs.client.tag_images(["image-a"], {CLAIM_KEY: theirs.value}, deadline=1e12)

    report = follow_up(ecs.api, ecs.api, tracker(ecs, "run-a"), deadline=1e12)

    assert report.outcomes == ()
    assert ecs.count("TagResources") == 0


def test_a_failed_retag_gives_up_its_claim_so_the_next_run_reports_again_at_once() -> None:
    """The state tag is refused but the claim tag is not: the claim is given up (it holds no more, its count
    stays), so the next run reports the end again, counting a second report, instead of waiting for this
    run's claim to run out."""
    ecs = account(tracked={"image-a": "exporting"}, ended={"image-a": "Failed"})
    refused = TerminalApiError("tag policy", code="OperationDenied.TagPolicy", action="TagResources")

    def refuse_state(call: Call, send: Callable[[], Any]) -> Any:
        _ids, tags = call.asked
        if STATE_KEY in tags:
            raise refused
        return send()

    ecs.api.on("TagResources", refuse_state)
    first = run(ecs, holder="run-1")
    first.settle(deadline=1e12)
    left = Claim.parse(ecs.tags_of("image-a")[CLAIM_KEY])
    assert left is not None
    assert not left.fresh(ecs.clock.now())
    assert left.reports == 1

    second = run(ecs, holder="run-2")

    (again,) = second.outcomes
    assert again.status == "export_failed"
    assert "reported again (2 of 3)" in str(again.reason)


# -- exporting again ----------------------------------------------------------------------------------------


def test_an_event_naming_an_image_whose_object_went_missing_exports_it_again() -> None:
    """The remedy the ExportObjectMissing fix line gives works: the image is tagged failed, its task
    Succeeded, and an event naming it starts a new export (its tags read only for this)."""
    ecs = account(tracked={"image-gone": "failed"}, ended={"image-gone": "Succeeded"})

    outcome = run(ecs, ExportCommand(trigger="event", image_ids=("image-gone",)))

    assert statuses(outcome.outcomes) == {"image-gone": "started"}
    assert ecs.tags_of("image-gone")[STATE_KEY] == "exporting"


def test_an_event_naming_an_exported_image_skips_it_unless_forced() -> None:
    ecs = account(tracked={"image-ok": "exported"}, ended={"image-ok": "Succeeded"})

    plain = run(ecs, ExportCommand(trigger="direct", image_ids=("image-ok",)))
    forced = run(ecs, ExportCommand(trigger="direct", image_ids=("image-ok",), force=True))

    assert statuses(plain.outcomes) == {"image-ok": "skipped"}
    assert statuses(forced.outcomes) == {"image-ok": "started"}


def test_force_never_starts_a_second_export_while_one_is_running() -> None:
    ecs = account(tracked={"image-busy": "exporting"}, ended={"image-busy": "Running"})

    outcome = run(ecs, ExportCommand(trigger="direct", image_ids=("image-busy",), force=True))

    (busy,) = outcome.outcomes
    assert busy.status == "skipped"
    assert "already running" in str(busy.reason)
    assert ecs.count("ExportImage") == 0


def test_the_usual_event_reads_no_tags_before_its_export() -> None:
    """A new image named by an event costs its task look-up and its export (no tag read to decide), its tag,
    and its start record: its metadata read once, after the tag, and one PutObject."""
    ecs = account("image-new")

    run(ecs, ExportCommand(trigger="event", image_ids=("image-new",)))

    assert [c[0] for c in ecs.calls] == [
        "DescribeTasks",
        "ExportImage",
        "TagResources",
        "DescribeImages",
        "PutObject",
    ]


def test_a_slow_tos_defers_the_checks_it_cannot_finish_and_the_new_exports_still_start() -> None:
    """Six finished exports to check and four new images, a 30 s budget, and a TOS that takes 20 s to fail
    each check: the checks get half the budget, those left are deferred (the export may well be fine), and
    all four new images start in the time kept for them."""
    finished = [f"image-done{n}" for n in range(6)]
    new = [f"image-new{n}" for n in range(4)]
    ecs = account(
        *new, tracked=dict.fromkeys(finished, "exporting"), ended=dict.fromkeys(finished, "Succeeded")
    )

    def silent(call: Call, send: Callable[[], Any]) -> Any:
        ecs.clock.advance(20)
        raise UnknownOutcomeError("no answer", code="ReadTimeout", action="ListObjectsV2")

    ecs.api.on("ListObjectsV2", silent)
    now = ecs.clock.monotonic()
    budget = Budget(send_by=now + 30, start_by=now + 27, seconds=30, report_by=now + 31)

    outcome = run_tracked(
        SCAN, api=ecs.api, store=ecs.api, plan=PLAN, budget=budget, cap=None, holder="run-1", clock=ecs.clock
    )

    results = statuses(outcome.outcomes)
    assert [results[i] for i in new] == ["started"] * 4
    assert [results[i] for i in finished] == ["deferred"] * 6
    assert ecs.count("ListObjectsV2") == 1  # the first check took the checks' whole share
    late = next(o for o in outcome.outcomes if o.image_id == "image-done5")
    assert "share of the time budget ran out" in str(late.reason)


def test_a_scan_past_the_page_cap_exports_what_it_read_and_says_how_to_narrow_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More private images than the scan's pages hold, one of them new: the listing stops at its page cap,
    the new image (listed first: the newest are) is exported, and one result that is not retried names the
    cap and how to narrow the scan. The follow-up finds the exports in flight by their tag instead. (The cap
    is 200 pages; 3 here keep the test quick: 20,051 images behave the same, in 10 s.)"""
    monkeypatch.setattr(ecs_adapter, "MAX_SCAN_PAGES", 3)
    old = [fleet_image(f"image-old{n:05d}", hours_ago=100 + n / 1000) for n in range(350)]
    ecs = Account([fleet_image("image-new", hours_ago=1), *old])

    outcome = run(ecs)

    new, cut = outcome.outcomes
    assert (new.image_id, new.status) == ("image-new", "started")
    assert (cut.image_id, cut.status) == (None, "failed")
    assert cut.error is not None
    assert (cut.error.code, cut.error.retryable) == ("ListingTruncated", False)
    assert "ImageNamePrefix or Tags" in cut.error.message
    assert ("DescribeImages", {STATE_KEY: "exporting"}) in ecs.calls
