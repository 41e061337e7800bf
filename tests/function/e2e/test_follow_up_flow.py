"""Following exports to their end, against the ECS emulator (and its TOS HeadObject) over real sockets: tags
on the images, the follow-up on the next timer run, one notice, nothing reported twice, the in-flight cap,
and what tracking costs in requests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from exporter_tools.emulator.ecs import EcsEmulator, Faults
from exporter_tools.emulator.fleet import Fleet, FleetBucket, follow_up_fleet, new_images_fleet
from exporter_tools.emulator.qcow2_image import qcow2_layout
from exporter_tools.receiver import WebhookReceiver
from handler.core.tracking import DEST_KEY, STATE_KEY
from tests.support.events import load_event

Emulated = Callable[..., EcsEmulator]
Run = Callable[..., tuple[dict[str, Any], bool]]

GIB = 1024**3
# Export tasks end this long after they start; each test waits this plus a margin before the next run.
TASK_SECONDS = 1.0
OK40, OK20, FAILS, NO_OBJECT = (
    "image-fo110w0ok40",
    "image-fo110w0ok20",
    "image-fo110w0fai1",
    "image-fo110w0n0obj",
)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A Standard Webhooks receiver on a free loopback port."""
    with WebhookReceiver(fmt="standard") as started:
        yield started


def timer(n: int) -> dict[str, Any]:
    """The n-th firing of the timer: a scan of the last 25 hours, with its own event id."""
    return {**load_event("timer_empty"), "id": f"timer-firing-{n}"}


def by_image(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["image_id"]: r for r in result["results"]}


def wait_for_tasks_to_end() -> None:
    # The emulator computes a task's status from its age: past TASK_SECONDS every task has ended.
    time.sleep(TASK_SECONDS + 0.5)


def test_a_scan_its_follow_up_and_the_run_after(
    emulated: Emulated, run_handler: Run, receiver: WebhookReceiver
) -> None:
    """A scan starts and tags 4 exports; once their tasks end, the next timer run reports 2 exported (with
    their sizes) and 2 export_failed, retags them and posts one notice with all four; the run after reports
    none of them again and posts nothing. (A missing object is final at once here:
    ``EXPORT_MISSING_CONFIRM_SECONDS=0``; the default's second look is tested below.)"""
    env = {"WEBHOOK_URL": receiver.url, "EXPORT_MISSING_CONFIRM_SECONDS": "0"}
    emulator = emulated(follow_up_fleet(), task_seconds=TASK_SECONDS, env=env)
    four = {OK40, OK20, FAILS, NO_OBJECT}

    first, raised = run_handler(timer(1))
    assert not raised
    assert {i: r["status"] for i, r in by_image(first).items()} == dict.fromkeys(four, "started")
    for image_id in four:
        tags = emulator.ecs.image_tags(image_id)
        assert tags[STATE_KEY] == "exporting"
        assert tags[DEST_KEY] == "tos://demo-exports/imgexport"
    assert emulator.stats()["requests"]["TagResources"] == {"200": 1}  # one request for all four

    wait_for_tasks_to_end()
    second, raised = run_handler(timer(2))

    assert not raised
    assert not second["ok"]
    outcomes = by_image(second)
    assert set(outcomes) == four
    assert outcomes[OK40]["status"] == outcomes[OK20]["status"] == "exported"
    assert outcomes[OK40]["size_bytes"] == qcow2_layout(40 * GIB).length  # the qcow2 file, not the disk
    assert outcomes[OK20]["size_bytes"] == qcow2_layout(20 * GIB).length
    assert outcomes[OK40]["verified"] is True
    assert outcomes[OK40]["object_key"] == f"imgexport_{OK40}_system.qcow2"
    assert outcomes[OK40]["crc64"].isdigit()
    assert outcomes[OK40]["duration_s"] == pytest.approx(TASK_SECONDS, abs=0.01)
    assert outcomes[FAILS]["status"] == outcomes[NO_OBJECT]["status"] == "export_failed"
    assert outcomes[FAILS]["error"]["code"] == "ExportTaskFailed"
    assert outcomes[NO_OBJECT]["error"]["code"] == "ExportObjectMissing"
    states = {image_id: emulator.ecs.image_tags(image_id)[STATE_KEY] for image_id in four}
    assert states == {OK40: "exported", OK20: "exported", FAILS: "failed", NO_OBJECT: "failed"}
    assert len(receiver.deliveries) == 2  # the scan's notice, then one for all four outcomes
    notice = receiver.deliveries[1].json()["data"]
    assert {r["image_id"]: r["status"] for r in notice["results"]} == {
        i: r["status"] for i, r in outcomes.items()
    }

    third, raised = run_handler(timer(3))

    assert not raised
    assert third["results"] == []
    assert len(receiver.deliveries) == 2
    assert emulator.export_tasks_by_image() == dict.fromkeys(sorted(four), 1)


def test_the_in_flight_cap_queues_a_scan_and_later_runs_start_the_rest(
    emulated: Emulated, run_handler: Run
) -> None:
    """With EXPORT_MAX_IN_FLIGHT=3, 7 new images give 3 started and 4 queued (not an error); once those 3
    end, the next run reports them exported, starts 3 more and still queues 1."""
    emulator = emulated(new_images_fleet(7), task_seconds=TASK_SECONDS, env={"EXPORT_MAX_IN_FLIGHT": "3"})

    first, raised = run_handler(timer(1))

    assert not raised
    assert first["ok"]
    counts = [r["status"] for r in first["results"]]
    assert (counts.count("started"), counts.count("queued")) == (3, 4)

    wait_for_tasks_to_end()
    second, raised = run_handler(timer(2))

    assert not raised
    counts = [r["status"] for r in second["results"]]
    assert (counts.count("exported"), counts.count("started"), counts.count("queued")) == (3, 3, 1)
    exported = {r["image_id"] for r in second["results"] if r["status"] == "exported"}
    started = {r["image_id"] for r in first["results"] if r["status"] == "started"}
    assert exported == started
    assert sum(emulator.export_tasks_by_image().values()) == 6


def test_named_images_over_the_cap_are_deferred(emulated: Emulated, run_handler: Run) -> None:
    """An event naming more images than the cap leaves free starts those that fit and defers the rest, so
    the trigger runs it again."""
    emulated(new_images_fleet(3), task_seconds=3600, env={"EXPORT_MAX_IN_FLIGHT": "2"})

    result, raised = run_handler({"ImageIds": ["image-new0000", "image-new0001", "image-new0002"]})

    assert raised
    assert [r["status"] for r in result["results"]] == ["started", "started", "deferred"]
    assert "EXPORT_MAX_IN_FLIGHT=2" in result["results"][2]["reason"]


def test_a_role_that_may_not_tag_still_starts_exports_untracked(emulated: Emulated, run_handler: Run) -> None:
    """When TagResources is refused (403), the exports still count as started, and each result says that
    it is not tracked."""
    fleet = new_images_fleet(2).model_copy(update={"tagging_allowed": False})
    emulated(fleet, task_seconds=3600)

    result, raised = run_handler(timer(1))

    assert not raised
    assert result["ok"]
    assert [r["status"] for r in result["results"]] == ["started", "started"]
    assert all("not tracked" in r["reason"] for r in result["results"])


def test_a_scan_of_150_new_images_costs_at_most_1_05_requests_an_image(
    emulated: Emulated, run_handler: Run
) -> None:
    """150 new images cost at most 1.05 API requests each, all told, over real sockets: two listing pages, two
    task look-ups made just in time, 150 exports, and one TagResources request per 50 images. (The rate is
    raised so the test is quick; tests/function/unit/test_lookups.py shows the same two look-ups at the
    default 10 requests a second, on a fake clock.)"""
    emulator = emulated(new_images_fleet(150), task_seconds=3600, env={"VOLCENGINE_MAX_RPS": "1000"})

    result, raised = run_handler(timer(1))

    assert not raised
    assert [r["status"] for r in result["results"]] == ["started"] * 150
    stats = emulator.stats()
    assert stats["requests"]["TagResources"] == {"200": 3}
    assert stats["requests"]["DescribeTasks"] == {"200": 2}
    assert stats["requests_total"] / 150 <= 1.05


def test_an_object_that_vanished_is_deferred_then_reported_missing_on_a_later_look(
    emulated: Emulated, run_handler: Run
) -> None:
    """A task that Succeeded but whose object is gone from the bucket: the first follow-up defers it (one 404
    is no verdict: ok false, the image still exporting, the sighting tagged); a run sooner than
    EXPORT_MISSING_CONFIRM_SECONDS later still defers; one after it reports export_failed
    ExportObjectMissing and tags it failed, never exported."""
    fleet = Fleet(images=new_images_fleet(1).images, buckets=(FleetBucket(name="demo-exports"),))
    emulator = emulated(fleet, task_seconds=TASK_SECONDS, env={"EXPORT_MISSING_CONFIRM_SECONDS": "2"})
    run_handler(timer(1))
    wait_for_tasks_to_end()
    assert emulator.tos.remove_object("demo-exports", "imgexport_image-new0000_system.qcow2")

    first, _ = run_handler(timer(2))
    tags = emulator.ecs.image_tags("image-new0000")
    soon, _ = run_handler(timer(3))
    time.sleep(2.1)
    final, _ = run_handler(timer(4))

    (deferred,) = first["results"]
    assert (first["ok"], deferred["status"], deferred["error"]["code"]) == (
        False,
        "deferred",
        "ExportObjectMissing",
    )
    assert deferred["task_id"]
    assert "looks again" in deferred["reason"]
    assert tags[STATE_KEY] == "exporting"
    assert tags["image-exporter:unseen"].isdigit()
    assert [r["status"] for r in soon["results"]] == ["deferred"]
    (outcome,) = final["results"]
    assert outcome["status"] == "export_failed"
    assert outcome["error"]["code"] == "ExportObjectMissing"
    assert emulator.ecs.image_tags("image-new0000")[STATE_KEY] == "failed"


def test_outcomes_whose_retag_failed_are_reported_again_under_the_same_webhook_id(
    emulated: Emulated, run_handler: Run, receiver: WebhookReceiver
) -> None:
    """The tag changes only after the outcome is logged and notified: when the retag is refused, the next
    timer run reports the same outcome again, and its notice carries the same webhook-id, so a receiver
    that dedupes shows it once; after a successful retag it is never reported again."""
    emulator = emulated(new_images_fleet(1), task_seconds=TASK_SECONDS, env={"WEBHOOK_URL": receiver.url})
    run_handler(timer(1))
    wait_for_tasks_to_end()

    emulator.ecs.tagging_allowed = False
    second, _ = run_handler(timer(2))
    emulator.ecs.tagging_allowed = True
    third, _ = run_handler(timer(3))
    fourth, _ = run_handler(timer(4))

    assert statuses_of(second) == statuses_of(third) == {"image-new0000": "exported"}
    assert fourth["results"] == []
    first_notice, second_notice, third_notice = receiver.deliveries
    assert second_notice.headers["webhook-id"] == third_notice.headers["webhook-id"]
    assert first_notice.headers["webhook-id"] != second_notice.headers["webhook-id"]
    assert emulator.ecs.image_tags("image-new0000")[STATE_KEY] == "exported"


def test_an_object_the_role_may_not_read_is_deferred_never_ok(emulated: Emulated, run_handler: Run) -> None:
    """When TOS refuses the HeadObject (403: no read access to the bucket), a Succeeded export is deferred
    with AccessDenied and the permission to grant: not ``ok`` (nobody checked it), never a failure, and it
    stays in flight until TOS lets the function read it."""
    fleet = Fleet(
        images=new_images_fleet(1).images, buckets=(FleetBucket(name="demo-exports", read_allowed=False),)
    )
    emulator = emulated(fleet, task_seconds=TASK_SECONDS)
    run_handler(timer(1))
    wait_for_tasks_to_end()

    result, _ = run_handler(timer(2))

    assert not result["ok"]
    (outcome,) = result["results"]
    assert (outcome["status"], outcome["error"]["code"]) == ("deferred", "AccessDenied")
    assert "403" in outcome["reason"]
    assert "tos:ListBucket" in outcome["reason"]
    assert "size_bytes" not in outcome
    assert emulator.ecs.image_tags("image-new0000")[STATE_KEY] == "exporting"


def statuses_of(result: dict[str, Any]) -> dict[str, str]:
    return {r["image_id"]: r["status"] for r in result["results"]}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chaos_with_tagging_failing_still_exports_each_image_once(
    emulated: Emulated, run_handler: Run, seed: int
) -> None:
    """Under 15% 500s, 10% 429s and 10% lost answers, with every TagResources failing as well, re-running
    the scan as the platform retries it still ends with exactly one export task per image: an untracked
    export is found by its task, never started twice."""
    emulator = emulated(
        new_images_fleet(20),
        faults=Faults(error_rate=0.15, throttle_rate=0.10, drop_rate=0.10),
        seed=seed,
        task_seconds=3600,
        env={"VOLCENGINE_MAX_RPS": "500"},
    )
    emulator.fail_next("TagResources", 500, "InternalError", times=1000)

    for _ in range(6):
        result, raised = run_handler(timer(1))
        if not raised:
            break

    assert result["ok"], statuses_of(result)
    assert emulator.export_tasks_by_image() == {f"image-new{n:04d}": 1 for n in range(20)}
    assert "200" not in emulator.stats()["requests"]["TagResources"]


def test_a_follow_up_that_cannot_reach_tos_is_not_ok_until_tos_answers(
    emulated: Emulated, run_handler: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TOS_ENDPOINT names a port nothing listens on: the timer run after the exports finished defers each
    export with its task and the connection error, is not ok and raises for the platform's retry; with the
    endpoint fixed, the next run reports them exported."""
    emulator = emulated(follow_up_fleet(), task_seconds=TASK_SECONDS)
    first, _ = run_handler(timer(1))
    started = {i for i, r in by_image(first).items() if r["status"] == "started"}
    wait_for_tasks_to_end()
    right = os.environ["TOS_ENDPOINT"]
    monkeypatch.setenv("TOS_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing answers

    blind, raised = run_handler(timer(2))

    assert raised
    assert blind["ok"] is False
    unchecked = {i: r for i, r in by_image(blind).items() if r["status"] == "deferred"}
    succeeded = {OK40, OK20, NO_OBJECT} & started  # the tasks that Succeeded need their objects read
    assert set(unchecked) == succeeded
    for result in unchecked.values():
        assert result["task_id"]
        assert result["error"]["code"] in ("ConnectError", "ConnectTimeout")
        assert "check TOS_ENDPOINT" in result["reason"]
    assert emulator.ecs.image_tags(OK40)[STATE_KEY] == "exporting"

    monkeypatch.setenv("TOS_ENDPOINT", right)
    seeing, _ = run_handler(timer(3))
    assert by_image(seeing)[OK40]["status"] == "exported"
