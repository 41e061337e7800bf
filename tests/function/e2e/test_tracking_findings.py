"""The findings of issue 19 (D1-D7), each as a test over real loopback sockets against the ECS emulator:
seeded, bounded, and asserting the count the issue measured goes to zero (or to its exact figure).

Each finding has a quick variant (a few seeds, in `make test` / `make e2e`) and a soak variant with more seeds
(`make soak`). Invocations run as the platform runs them: in this process (``run_handler``) where nothing else
happens at the same time, and in processes of their own (``python -m handler invoke``, forked by the session's
``launcher``, or a fresh interpreter) where two run at once or one is killed. Export tasks end in about a
second, retries are fast (``FAST_ENV``), and the claim settle time the fix introduces is short
(``EXPORT_CLAIM_SETTLE_SECONDS``; an unknown variable is ignored before it lands). Where a race depends on how
long an invocation takes, requests go at the default 10 a second.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import pytest

from exporter_tools.emulator.ecs import EcsEmulator, Faults
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage, FleetTask, new_images_fleet
from exporter_tools.receiver import Delivery, WebhookReceiver
from tests.support.emulated import process_env
from tests.support.events import load_event
from tests.support.invocations import FOLLOW_UP_STATUSES, FunctionLauncher, Invocation, spawn
from tests.support.receivers import HeldReceiver

Emulated = Callable[..., EcsEmulator]
StartEmulator = Callable[..., EcsEmulator]
Run = Callable[..., tuple[dict[str, Any], bool]]

# The tracking tags (docs/contract.md, "Following exports to their end"); the claim tag the fix adds is not
# looked at here.
STATE = "image-exporter:state"
DEST = "image-exporter:dest"
BUCKET, PREFIX = "demo-exports", "imgexport"
TRACKED = {STATE: "exporting", DEST: f"tos://{BUCKET}/{PREFIX}"}
ENDED_STATES = frozenset({"exported", "failed"})

TASK_SECONDS = 1.0  # export tasks end this long after they start
TASKS_END = TASK_SECONDS + 0.4  # a wait after which every task started before has ended
# SETTLE: a short claim settle time (the fix's; ignored before it). QUICK adds requests paced fast enough not to
# matter, for tests where no race depends on how long an invocation takes (races run at the default 10 a second).
SETTLE = {"EXPORT_CLAIM_SETTLE_SECONDS": "0.2"}
QUICK = {**SETTLE, "VOLCENGINE_MAX_RPS": "100"}
# D6 counts the runs that report its export: a claim read and written more than half the settle time apart
# (0.1 s with SETTLE, on a loaded machine) is deferred as too slow and shifts that count, so D6 settles longer.
D6_ENV = {**QUICK, "EXPORT_CLAIM_SETTLE_SECONDS": "1.0"}


def seeded(seed: int) -> random.Random:
    """The run's random choices (kill points, offsets, fleet shapes), the same for the same seed."""
    return random.Random(seed)  # noqa: S311 - reproducible test choices, not secrets


def timer(name: str) -> dict[str, Any]:
    """A firing of the timer (a scan of the last 25 hours) with its own event id."""
    return {**load_event("timer_empty"), "id": name}


def image_created(image_id: str, name: str) -> dict[str, Any]:
    """The event bus's "image created" event for ``image_id``: an event invocation that exports it."""
    event = load_event("image_created")
    return {**event, "id": name, "subject": image_id, "data": {**event["data"], "ImageId": image_id}}


def finished_exports(
    ids: list[str], *, status: Literal["Succeeded", "Failed"] = "Succeeded"
) -> tuple[list[FleetImage], list[FleetTask]]:
    """Images tagged ``exporting`` whose export task (to the default destination) has ended with ``status``;
    a Succeeded one has written its object."""
    images = [FleetImage(id=image_id, tags=TRACKED) for image_id in ids]
    tasks = [FleetTask(image_id=i, status=status, bucket=BUCKET, prefix=PREFIX) for i in ids]
    return images, tasks


def fleet_of(images: list[FleetImage], tasks: list[FleetTask] | None = None) -> Fleet:
    return Fleet(images=tuple(images), buckets=(FleetBucket(name=BUCKET),), tasks=tuple(tasks or ()))


def state_of(emulator: EcsEmulator, image_id: str) -> str | None:
    return emulator.ecs.image_tags(image_id).get(STATE)


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def seeds(quick: Iterable[int], soak: Iterable[int]) -> list[Any]:
    """The quick seeds as they are, then the soak seeds, marked ``soak`` (``make soak``)."""
    marked = [pytest.param(seed, marks=pytest.mark.soak, id=f"soak-{seed}") for seed in soak]
    return [*quick, *marked]


# -- D1: a crash loses tracking ---------------------------------------------------------------------------------

KILLS = 20
FIRST_IMAGES = 30
NEW_IMAGES_EACH_FIRING = 2
MAX_FIRINGS = 80
# Clean runs follow until nothing is in flight, at most this many, started within this many seconds (claims
# left by killed runs must be taken over within it).
CLEAN_RUNS = 24
CLEAN_SECONDS = 40.0
# The most requests into an invocation it is killed at, then up to this much later (seconds): a scan of two
# new images, its follow-up, its exports, tagging and retagging all lie within the first eight or so.
KILL_REQUESTS = 9
KILL_DELAY = 0.03
# The killed runs' budget (seconds): their claims hold this long and 10 s more, well within the clean phase.
KILLED_BUDGET = 3.0


def tracking_ledger(emulator: EcsEmulator, runs: list[Invocation]) -> dict[str, list[str]]:
    """The images the emulator saw exported, and what went wrong with them: exported but not tagged as ended
    (untracked), ended but never reported as ``exported`` / ``export_failed`` by any run (unreported), exported
    twice."""
    exports = emulator.export_tasks_by_image()
    reported = {line["image_id"] for run in runs for line in run.follow_ups}
    return {
        "exported": sorted(exports),
        "untracked": sorted(i for i in exports if state_of(emulator, i) not in ENDED_STATES),
        "unreported": sorted(i for i in exports if i not in reported),
        "duplicates": sorted(i for i, count in exports.items() if count > 1),
    }


def crash_then_clean_runs(
    start_emulator: StartEmulator, launcher: FunctionLauncher, workdir: Path, seed: int
) -> tuple[int, dict[str, list[str]], list[str]]:
    """Timer firings as processes, each killed (SIGKILL) at a seeded random point until 20 were, two new
    images appearing before each; then clean firings until nothing is in flight. Returns the kills, the
    ledger and a line per clean run (its exit status and its results' statuses, for a failure's message)."""
    rng = seeded(seed)
    emulator = start_emulator(new_images_fleet(FIRST_IMAGES), task_seconds=TASK_SECONDS, seed=seed)
    # A killed run's claims hold until its budget is over (the time the platform gives it, and 10 s): a short
    # budget lets the clean runs take them over within the clean phase, as the next timers would after a real
    # kill. The budget is the invocation's own (``--timeout``, as the platform's context says), which wins
    # over FUNCTION_TIMEOUT_SECONDS: a killed run given the launcher's default 30 s held its claims about 40 s,
    # as long as the whole clean phase, and an export it had reported, not yet retagged, was left exporting.
    env = process_env(emulator) | QUICK | {"FUNCTION_TIMEOUT_SECONDS": f"{KILLED_BUDGET:g}"}
    runs: list[Invocation] = []
    kills, added = 0, FIRST_IMAGES
    for firing in range(MAX_FIRINGS):
        if kills >= KILLS:
            break
        for _ in range(NEW_IMAGES_EACH_FIRING if firing else 0):
            emulator.ecs.add_image(FleetImage(id=f"image-new{added:04d}", created_hours_ago=0.1))
            added += 1
        process = launcher.start(timer(f"d1-{seed}-kill-{firing}"), env, workdir, timeout=KILLED_BUDGET)
        run = process.kill_after_requests(
            emulator, rng.randint(1, KILL_REQUESTS), delay=rng.uniform(0, KILL_DELAY)
        )
        kills += run.killed
        runs.append(run)
    clean_until = time.monotonic() + CLEAN_SECONDS
    cleans: list[str] = []
    for clean in range(CLEAN_RUNS):
        if time.monotonic() > clean_until:
            break
        time.sleep(TASKS_END)
        run = spawn(
            timer(f"d1-{seed}-clean-{clean}"), env, workdir
        ).wait()  # a fresh interpreter, as deployed
        runs.append(run)
        cleans.append(f"exit {run.exit_code}: {sorted(Counter(run.statuses().values()).items())}")
        exporting = [i for i in emulator.export_tasks_by_image() if state_of(emulator, i) == "exporting"]
        # Clean: the run ended ok (a run whose short budget deferred its checks or scans is not clean, and
        # the next one goes on), nothing is tagged exporting, and it started nothing new.
        if run.exit_code == 0 and not exporting and "started" not in run.statuses().values():
            break
    ledger = tracking_ledger(emulator, runs)
    # For a failure's message: what the images gone wrong carry now.
    for image_id in sorted({*ledger["untracked"], *ledger["unreported"]}):
        seen = [
            (n, "killed" if run.killed else "", line.get("event"), line.get("status") or line.get("state"))
            for n, run in enumerate(runs)
            for line in run.log
            if image_id in (line.get("image_id"), *(line.get("image_ids") or ()))
        ]
        cleans.append(f"{image_id}: {emulator.ecs.image_tags(image_id)} {seen}")
    return kills, ledger, cleans


def check_crashes_lose_nothing(
    start_emulator: StartEmulator, launcher: FunctionLauncher, workdir: Path, seed: int
) -> None:
    kills, ledger, cleans = crash_then_clean_runs(start_emulator, launcher, workdir, seed)

    assert kills >= KILLS
    exported = len(ledger.pop("exported"))
    counts = {what: len(ids) for what, ids in ledger.items()}
    assert counts == {"untracked": 0, "unreported": 0, "duplicates": 0}, (
        f"{kills} kills, {exported} exported",
        ledger,
        cleans,
    )


@pytest.mark.parametrize("seed", seeds([7], [11, 23, 31, 37, 41, 43, 47, 53, 59, 61]))
def test_d1_twenty_kills_then_clean_runs_leave_every_export_tracked_and_reported_once(
    start_emulator: StartEmulator, launcher: FunctionLauncher, tmp_path: Path, seed: int
) -> None:
    """D1. Timer invocations killed (SIGKILL) at 20 random points, then run cleanly until nothing is in
    flight: every image with an export task ends tagged exported or failed (0 untracked), every finished
    export was reported exported / export_failed by some run's log (0 unreported), and no image has two
    export tasks (0 duplicates)."""
    check_crashes_lose_nothing(start_emulator, launcher, tmp_path, seed)


# -- D2: one image poisons its batch ----------------------------------------------------------------------------

BATCH = 14


@pytest.mark.parametrize("seed", seeds([1, 2, 3], range(4, 14)))
def test_d2_one_image_at_the_tag_limit_leaves_exactly_itself_untracked(
    emulated: Emulated, run_handler: Run, seed: int
) -> None:
    """D2. 14 new images, one (at a seeded place) already carrying 49 tags: after a scan exactly that one is
    untracked, its result saying so, and the other 13 are tagged exporting."""
    poisoned = seeded(seed).randrange(BATCH)
    full = {f"team-{n:02d}": "x" for n in range(49)}
    images = [FleetImage(id=f"image-new{n:04d}", tags=full if n == poisoned else {}) for n in range(BATCH)]
    emulator = emulated(fleet_of(images), task_seconds=3600, seed=seed, env=QUICK)

    result, _ = run_handler(timer(f"d2-{seed}"))

    untracked = [r["image_id"] for r in result["results"] if "not tracked" in (r.get("reason") or "")]
    exporting = [i.id for i in images if state_of(emulator, i.id) == "exporting"]
    assert (len(untracked), len(exporting)) == (1, BATCH - 1)
    assert untracked == [f"image-new{poisoned:04d}"]


# -- D3: the last retag overwrites a newer state ---------------------------------------------------------------

REEXPORTED = "image-reexp0rted"


def settle_race_round(
    emulated: Emulated, run_handler: Run, launcher: FunctionLauncher, workdir: Path, seed: int
) -> tuple[str | None, str | None, bool]:
    """One round: X is tagged exporting and its task Failed (beside 0-4 finished exports); a timer (a process)
    reports X export_failed and is held at its webhook; meanwhile an event re-exports X; then the timer ends.
    Returns X's state after the timer, the later timer's status for the new export, and whether that status
    names the new task."""
    rng = seeded(seed)
    others = [f"image-d0ne{n:04d}" for n in range(rng.randint(0, 4))]
    failed_images, failed_tasks = finished_exports([REEXPORTED], status="Failed")
    done_images, done_tasks = finished_exports(others)
    with HeldReceiver() as receiver:
        extra = {"WEBHOOK_URL": receiver.url, "WEBHOOK_FORMAT": "standard", **D6_ENV}
        fleet = fleet_of(failed_images + done_images, failed_tasks + done_tasks)
        emulator = emulated(fleet, task_seconds=TASK_SECONDS, seed=seed, env=extra)
        receiver.hold(1)
        following_up = launcher.start(timer(f"d3-{seed}-first"), process_env(emulator) | extra, workdir)
        assert wait_until(lambda: receiver.arrived.is_set() or not following_up.running, 20)
        assert receiver.arrived.is_set(), "the timer sent no notice to hold"
        time.sleep(rng.uniform(0, 0.2))

        event_result, _ = run_handler(image_created(REEXPORTED, f"d3-{seed}-event"))
        receiver.release()
        first = following_up.wait()

    (reexport,) = [r for r in event_result["results"] if r["image_id"] == REEXPORTED]
    assert reexport["status"] == "started"
    assert [o["status"] for o in first.follow_ups if o["image_id"] == REEXPORTED] == ["export_failed"]
    after_first = state_of(emulator, REEXPORTED)
    time.sleep(TASKS_END)
    later, _ = run_handler(timer(f"d3-{seed}-later"))
    ended = [r for r in later["results"] if r["image_id"] == REEXPORTED]
    later_status = ended[0]["status"] if ended else None
    return after_first, later_status, bool(ended) and ended[0].get("task_id") == reexport["task_id"]


@pytest.mark.parametrize("seed", seeds([1, 2, 3, 4], range(5, 15)))
def test_d3_a_re_export_during_a_follow_up_stays_exporting_and_is_reported_later(
    emulated: Emulated, run_handler: Run, launcher: FunctionLauncher, tmp_path: Path, seed: int
) -> None:
    """D3. While a timer that reported X export_failed waits on its webhook, an event re-exports X (a new
    task, tagged exporting); once the timer ends X is still exporting, and a later timer reports the new
    export's end (exported, its task)."""
    assert settle_race_round(emulated, run_handler, launcher, tmp_path, seed) == (
        "exporting",
        "exported",
        True,
    )


# -- D4: two follow-ups at once ---------------------------------------------------------------------------------

FINISHED = 12
FOLLOW_UP_OFFSET = 0.3  # the second timer starts up to this long after the first


def reports_of_two_follow_ups(
    start_emulator: StartEmulator, launcher: FunctionLauncher, workdir: Path, seed: int
) -> dict[str, int]:
    """12 finished exports tagged exporting; two timers (processes, notifying one receiver, at the default
    request rate) started 0-300 ms apart. How many times each image's end was reported across both logs."""
    rng = seeded(seed)
    ids = [f"image-f1n{n:04d}" for n in range(FINISHED)]
    images, tasks = finished_exports(ids)
    emulator = start_emulator(fleet_of(images, tasks), task_seconds=TASK_SECONDS, seed=seed)
    with WebhookReceiver(fmt="standard") as receiver:
        env = process_env(emulator) | SETTLE | {"WEBHOOK_URL": receiver.url, "WEBHOOK_FORMAT": "standard"}
        events = [timer(f"d4-{seed}-a"), timer(f"d4-{seed}-b")]
        offset = rng.uniform(0, FOLLOW_UP_OFFSET)
        runs = [process.wait() for process in launcher.start_together(events, env, workdir, offset=offset)]
    reports = dict.fromkeys(ids, 0)
    for run in runs:
        for line in run.follow_ups:
            reports[line["image_id"]] += 1
    return reports


@pytest.mark.parametrize("seed", seeds(range(1, 6), range(6, 16)))
def test_d4_two_follow_ups_at_once_report_each_finished_export_once(
    start_emulator: StartEmulator, launcher: FunctionLauncher, tmp_path: Path, seed: int
) -> None:
    """D4. Two timers started together over 12 finished exports report each of them exactly once between
    them (0 reported twice, 0 never)."""
    reports = reports_of_two_follow_ups(start_emulator, launcher, tmp_path, seed)

    twice = sorted(i for i, n in reports.items() if n > 1)
    never = sorted(i for i, n in reports.items() if n == 0)
    assert {"reported twice": len(twice), "never reported": len(never)} == {
        "reported twice": 0,
        "never reported": 0,
    }, reports


# -- D5: the cap ------------------------------------------------------------------------------------------------

CAP = 3
CAPPED_IMAGES = 10


@pytest.mark.parametrize("seed", seeds(range(1, 11), range(11, 21)))
def test_d5_two_scans_at_once_never_exceed_the_in_flight_cap(
    start_emulator: StartEmulator, launcher: FunctionLauncher, tmp_path: Path, seed: int
) -> None:
    """D5. With EXPORT_MAX_IN_FLIGHT=3, two scans started together over 10 new images create at most 3 export
    tasks between them (the tasks never end here, so that is the number in flight); a third scan alone then
    brings it to exactly 3."""
    rng = seeded(seed)
    emulator = start_emulator(new_images_fleet(CAPPED_IMAGES), task_seconds=3600, seed=seed)
    env = process_env(emulator) | SETTLE | {"EXPORT_MAX_IN_FLIGHT": str(CAP)}
    events = [timer(f"d5-{seed}-a"), timer(f"d5-{seed}-b")]

    for process in launcher.start_together(events, env, tmp_path, offset=rng.uniform(0, FOLLOW_UP_OFFSET)):
        process.wait()
    after_two = sum(emulator.export_tasks_by_image().values())
    launcher.run(timer(f"d5-{seed}-c"), env, tmp_path)
    after_three = sum(emulator.export_tasks_by_image().values())

    assert {"over the cap": max(0, after_two - CAP), "in flight after a third scan": after_three} == {
        "over the cap": 0,
        "in flight after a third scan": CAP,
    }


# -- D6: one webhook-id per outcome -----------------------------------------------------------------------------

STUCK = "image-st0ck0retag"
D6_RUNS = 8
RE_NOTIFY_BOUND = 5  # the fix: 3 reports, then one "needs attention" notice; no notice after the 5th run


def notices_of_a_failing_retag(
    emulated: Emulated, run_handler: Run, seed: int
) -> list[tuple[int, Delivery, dict[str, Any]]]:
    """X's export has ended (Succeeded, object written) and it is tagged exporting, but the account refuses
    tagging it exported; 8 timer runs follow, each also starting 1-2 new images (so that each notice carries
    other results too). Every delivery that carries X's end: (its run, the delivery, X's item in it)."""
    rng = seeded(seed)
    images, tasks = finished_exports([STUCK])
    with WebhookReceiver(fmt="standard") as receiver:
        extra = {"WEBHOOK_URL": receiver.url, "WEBHOOK_FORMAT": "standard", **D6_ENV}
        emulator = emulated(fleet_of(images, tasks), task_seconds=3600, seed=seed, env=extra)
        emulator.ecs.refuse_tag(STUCK, STATE, "exported")
        carrying: list[tuple[int, Delivery, dict[str, Any]]] = []
        added = 0
        for run in range(1, D6_RUNS + 1):
            for _ in range(rng.randint(1, 2)):
                emulator.ecs.add_image(FleetImage(id=f"image-new{added:04d}", created_hours_ago=0.1))
                added += 1
            before = len(receiver.deliveries)
            run_handler(timer(f"d6-{seed}-{run}"))
            carrying.extend(
                (run, delivery, item)
                for delivery in receiver.deliveries[before:]
                for item in delivery.json().get("data", {}).get("results", [])
                if item.get("image_id") == STUCK and item.get("status") in FOLLOW_UP_STATUSES
            )
    return carrying


@pytest.mark.parametrize("seed", seeds([1, 2, 3], range(4, 14)))
def test_d6_a_failing_retag_re_notifies_under_one_webhook_id_and_then_stops(
    emulated: Emulated, run_handler: Run, seed: int
) -> None:
    """D6. A finished export whose retag the account keeps refusing is re-notified by the following timer
    runs, every time under the same webhook-id (Standard Webhooks) although each notice carries other results
    too; then one "needs attention" notice under an id of its own (a receiver that dedupes must still see
    it), and no run after the 5th notifies it again."""
    carrying = notices_of_a_failing_retag(emulated, run_handler, seed)

    assert len(carrying) >= 2  # it is re-notified at all
    first = carrying[0][2]
    same = [
        (delivery, item)
        for _, delivery, item in carrying
        if (item["status"], item.get("task_id")) == (first["status"], first.get("task_id"))
    ]
    repeated = {
        d.headers["webhook-id"] for d, item in same if "needs attention" not in item.get("reason", "")
    }
    attention = [d.headers["webhook-id"] for d, item in same if "needs attention" in item.get("reason", "")]
    late_runs = sorted({run for run, _, _ in carrying if run > RE_NOTIFY_BOUND})
    assert {
        "webhook-ids of the re-reports": len(repeated),
        "needs-attention notices": len(attention),
        "runs notifying after the bound": len(late_runs),
    } == {
        "webhook-ids of the re-reports": 1,
        "needs-attention notices": 1,
        "runs notifying after the bound": 0,
    }, (repeated, attention, late_runs)
    assert attention[0] not in repeated


# -- D7: duplicates under throttling ----------------------------------------------------------------------------

# The look-up that clears an export may be at most 10 s old when ExportImage is sent (the clearance window, not
# configurable): only an export task lasting longer than that proves that a second copy never exports an image
# whose task it missed, so the tasks here last 10.5 s, and the throttled sends wait longer than that.
CLEARED_TASK_SECONDS = 10.5
THROTTLED_FOR = (
    12  # the 429's Retry-After, seconds: one throttled send outlives a whole export of the other copy
)


@pytest.mark.parametrize("seed", seeds([1], range(2, 12)))
def test_d7_a_send_throttled_past_a_whole_export_is_looked_up_again(
    start_emulator: StartEmulator, launcher: FunctionLauncher, tmp_path: Path, seed: int
) -> None:
    """D7, one race made certain. Copy B scans a new image and its ExportImage is throttled (429, Retry-After
    12 s); copy A, started meanwhile, scans and exports the image, and A's 10.5 s export ends before B sends
    again: B's retry goes out on a look-up older than the whole of A's export unless B looks up again. The
    image has exactly one export task."""
    rng = seeded(seed)
    emulator = start_emulator(
        new_images_fleet(1),
        task_seconds=CLEARED_TASK_SECONDS,
        seed=seed,
        faults=Faults(retry_after=THROTTLED_FOR),
    )
    emulator.fail_next("ExportImage", 429, "FlowLimitExceeded", "throttled (scripted)")
    env = process_env(emulator) | SETTLE
    first = launcher.start(timer(f"d7-{seed}-b"), env, tmp_path)
    assert wait_until(lambda: emulator.stats()["throttled"] >= 1 or not first.running, 20)
    time.sleep(rng.uniform(0, 0.5))

    second = launcher.run(timer(f"d7-{seed}-a"), env, tmp_path)
    first.wait()

    assert second.statuses() == {"image-new0000": "started"}  # A exported it
    assert emulator.export_tasks_by_image() == {"image-new0000": 1}


THROTTLED_IMAGES = 40
PLATFORM_ATTEMPTS = 4  # the platform runs a timer that raised (deferred) again, up to this many times


def scan_as_the_platform_retries(
    launcher: FunctionLauncher, event: dict[str, Any], env: dict[str, str], workdir: Path
) -> None:
    """One copy of the function: the timer event run as a process, again while it ends deferred."""
    for _ in range(PLATFORM_ATTEMPTS):
        if launcher.run(event, env, workdir, timeout=300).exit_code == 0:
            return


@pytest.mark.soak
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_d7_two_throttled_scans_at_once_export_no_image_twice(
    start_emulator: StartEmulator, launcher: FunctionLauncher, tmp_path: Path, seed: int
) -> None:
    """D7 as the issue measured it (soak only: minutes a seed). Two copies scanning the same 40 new images at
    once, each at VOLCENGINE_MAX_RPS=10, half of all requests throttled (429 with a 2 s Retry-After), export
    tasks lasting longer than the clearance window, each copy run again as the platform retries it: every
    image is exported, none twice."""
    rng = seeded(seed)
    emulator = start_emulator(
        new_images_fleet(THROTTLED_IMAGES),
        task_seconds=CLEARED_TASK_SECONDS,
        seed=seed,
        faults=Faults(throttle_rate=0.5, retry_after=2),
    )
    env = process_env(emulator) | SETTLE | {"VOLCENGINE_MAX_RPS": "10"}
    copies = [
        threading.Thread(
            target=scan_as_the_platform_retries, args=(launcher, timer(f"d7-{seed}-{name}"), env, tmp_path)
        )
        for name in ("a", "b")
    ]
    for copy in copies:
        copy.start()
        time.sleep(rng.uniform(0, FOLLOW_UP_OFFSET))
    for copy in copies:
        copy.join(timeout=1500)

    exports = emulator.export_tasks_by_image()
    twice = sorted(i for i, count in exports.items() if count > 1)
    # Under 50 % 429s a few images may still be deferred after the platform's attempts (a later timer exports
    # them: 36 to 40 of 40 exported per seed here); what must never happen is an image exported twice.
    assert twice == []
    assert len(exports) >= 1
