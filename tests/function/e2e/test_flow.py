"""The function end to end against the ECS emulator over real sockets: every sample event, every refusal the
account can cause, bad keys, injected chaos, a rate limit, the command line and ``make demo``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from exporter_tools.demo import STEPS, Step, deliveries_from, step_problems
from exporter_tools.emulator.ecs import EcsEmulator, Faults
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage, FleetTask, new_images_fleet
from handler.adapters.signing import Credentials
from tests.support.emulated import CREDENTIALS
from tests.support.events import EVENT_NAMES, EVENTS_DIR, load_event

Emulated = Callable[..., EcsEmulator]
Run = Callable[..., tuple[dict[str, Any], bool]]

YBQI = "image-ybqi99s7yq8rx7mnk44b"
F3K = "image-3f7k2m9q1x8w5v6n4b0c"
P8D = "image-p8d2r5t7y1u3i9o0a6sl"
M1N = "image-m1n2b3v4c5x6z7l8k9jh"
K4J = "image-k4j6h8g2f0d1s3a5q7wz"
CREATING = "image-cr8t1ng5w7e9r1t3y5u7"

# What each sample event does to a fresh demo fleet: the trigger, and each image's status (None: the event).
EXPECTED: dict[str, tuple[str, dict[str | None, str]]] = {
    "timer_scan": ("timer", {F3K: "started", P8D: "started"}),
    "timer_image_ids": ("timer", {YBQI: "started", F3K: "started"}),
    "timer_empty": ("timer", dict.fromkeys((YBQI, F3K, P8D, M1N, K4J), "started")),
    "image_created": ("event", {YBQI: "started"}),
    "eventbridge": ("event", {P8D: "started"}),
    "http_direct": ("http", {K4J: "started"}),
    "direct_single": ("direct", {M1N: "started"}),
    "direct_batch": ("direct", {YBQI: "started", F3K: "started", P8D: "started"}),
    "invalid": ("direct", {None: "failed"}),
    "restore": ("direct", {YBQI: "failed"}),  # the demo fleet has no verified export yet: NoVerifiedExport
    "doctor": ("direct", {}),  # checks, no results: every check passes on the demo fleet (asserted below)
}


def statuses(result: dict[str, Any]) -> dict[str | None, str]:
    return {r.get("image_id"): r["status"] for r in result["results"]}


def only(result: dict[str, Any]) -> dict[str, Any]:
    (item,) = result["results"]
    return item  # type: ignore[no-any-return]


# -- every trigger ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_every_sample_event_against_the_demo_fleet(name: str, emulated: Emulated, run_handler: Run) -> None:
    """Each sample event exports exactly the images it names or scans for, once each, through real HTTP."""
    trigger, expected = EXPECTED[name]
    emulator = emulated()

    returned, raised = run_handler(load_event(name))

    result = json.loads(returned["body"]) if trigger == "http" else returned
    assert not raised
    assert result["trigger"] == trigger
    assert statuses(result) == expected
    started = {image for image, status in expected.items() if status == "started"}
    assert emulator.export_tasks_by_image() == dict.fromkeys(sorted(i for i in started if i), 1)
    if trigger == "http":
        assert returned["statusCode"] == (200 if result["ok"] else 400)
    if name == "doctor":
        assert result["ok"] is True
        assert {check["status"] for check in result["checks"]} == {"pass"}
    else:
        assert "checks" not in result


def test_the_scan_uses_the_timer_payloads_prefix_for_the_file_names(
    emulated: Emulated, run_handler: Run
) -> None:
    """The scan writes ``<TOSPrefix>_<ImageId>_system.qcow2`` with the payload's prefix into the bucket."""
    emulated()

    result, _ = run_handler(load_event("timer_scan"))

    assert {r["object_key"] for r in result["results"]} == {
        f"nightly_{F3K}_system.qcow2",
        f"nightly_{P8D}_system.qcow2",
    }
    assert {r["tos_bucket"] for r in result["results"]} == {"demo-exports"}


# -- what the account's state does -----------------------------------------------------------------------------

UNSUPPORTED = "InvalidImageForExportImage.UnSupported"


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param({"ImageId": "image-pub1ic0ubuntu2204x64"}, ("failed", UNSUPPORTED, False), id="public"),
        pytest.param({"ImageId": "image-sh4red0fr0mpartner01"}, ("failed", UNSUPPORTED, False), id="shared"),
        pytest.param({"ImageId": "image-n0exp0rt0licensed01"}, ("failed", UNSUPPORTED, False), id="flagged"),
        pytest.param(
            {"ImageId": YBQI, "TOSBucket": "locked-bucket"},
            ("failed", "InvalidTosPutObject.AccessDenied", False),
            id="no-put",
        ),
        pytest.param(
            {"ImageId": YBQI, "TOSBucket": "no-such-bucket"},
            ("failed", "InvalidTOSBucket.NotFound", False),
            id="no-bucket",
        ),
        pytest.param(
            {"ImageId": "image-nosuchimage000"}, ("failed", "InvalidImage.NotFound", False), id="no-image"
        ),
        pytest.param({"ImageId": CREATING}, ("deferred", "InvalidImageStatus", True), id="creating"),
    ],
)
def test_refusals_reach_the_result_with_their_code(
    emulated: Emulated, run_handler: Run, event: dict[str, str], expected: tuple[str, str | None, bool]
) -> None:
    """An image or bucket the export cannot work with ends failed with the API's code (not retried), or
    deferred with the API's code, raising for the trigger's retry, while the image is still being created."""
    status, code, raises = expected
    emulator = emulated()

    result, raised = run_handler(event)

    item = only(result)
    assert item["status"] == status
    assert (item.get("error") or {}).get("code") == code
    assert raised is raises
    assert emulator.export_tasks_by_image() == {}


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        pytest.param(
            FleetTask(image_id="image-abc1", status="Running"), ("skipped", "running"), id="export-running"
        ),
        pytest.param(
            FleetTask(image_id="image-abc1", status="Succeeded", created_hours_ago=30),
            ("skipped", "exported"),
            id="exported-before",
        ),
        pytest.param(
            FleetTask(image_id="image-abc1", type="CopyImage", status="Running"),
            ("deferred", "locked"),
            id="copy-running",
        ),
    ],
)
def test_existing_tasks_decide_between_skip_and_wait(
    emulated: Emulated, run_handler: Run, task: FleetTask, expected: tuple[str, str]
) -> None:
    """An export running or done elsewhere is skipped; another operation holding the image defers it."""
    status, reason_word = expected
    fleet = Fleet(
        images=(FleetImage(id="image-abc1"),), buckets=(FleetBucket(name="demo-exports"),), tasks=(task,)
    )
    emulator = emulated(fleet)

    result, raised = run_handler({"ImageId": "image-abc1"})

    item = only(result)
    assert item["status"] == status
    assert reason_word in item["reason"]
    assert raised is (status == "deferred")
    assert emulator.export_tasks_by_image() == {}


# -- bad keys --------------------------------------------------------------------------------------------------

CANARY = "canary-secret-7f3e9d2c1b0a"


@pytest.mark.parametrize(
    ("keys", "code"),
    [
        pytest.param(
            (CREDENTIALS, Credentials(CREDENTIALS.access_key, CANARY)), "SignatureDoesNotMatch", id="secret"
        ),
        pytest.param(
            (CREDENTIALS, Credentials("AKLTsomeoneelse01", CANARY)), "InvalidAccessKey", id="access-key"
        ),
        pytest.param(
            (
                Credentials("AKLTsts000000001", CANARY, "sts-token-of-the-emulator"),
                Credentials("AKLTsts000000001", CANARY, f"sts-token-{CANARY}"),
            ),
            "InvalidSecretToken",
            id="token",
        ),
    ],
)
def test_wrong_keys_fail_once_without_retry_and_never_reach_the_logs(
    emulated: Emulated,
    run_handler: Run,
    capsys: pytest.CaptureFixture[str],
    keys: tuple[Credentials, Credentials],
    code: str,
) -> None:
    """Keys the gateway refuses end failed with its code after one request: no retry, no secret in any output."""
    emulator_keys, handler_keys = keys
    emulator = emulated(credentials=emulator_keys, handler_credentials=handler_keys)

    result, raised = run_handler(load_event("image_created"))

    item = only(result)
    assert item["status"] == "failed"
    assert item["error"]["code"] == code
    assert item["error"]["retryable"] is False
    assert not raised
    stats = emulator.stats()
    assert stats["requests_total"] == 1
    assert stats["signature_failures"] == 1
    captured = capsys.readouterr()
    assert '"image.outcome"' in captured.err  # the logs were captured, and hold no secret
    for text in (captured.out, captured.err, json.dumps(result)):
        assert CANARY not in text


# -- chaos -----------------------------------------------------------------------------------------------------

CHAOS = Faults(error_rate=0.15, throttle_rate=0.10, drop_rate=0.10)
PLATFORM_RETRIES = 6
CHAOS_IMAGES = 40


def export_under_chaos(emulated: Emulated, run_handler: Run, seed: int, max_attempts: int) -> None:
    """Scan 40 new images under CHAOS, re-running the event as the platform retries it (at most 6 runs)."""
    emulator = emulated(
        new_images_fleet(CHAOS_IMAGES),
        faults=CHAOS,
        seed=seed,
        task_seconds=3600,
        env={
            "VOLCENGINE_MAX_RPS": "500",  # the injected 429s are the throttling under test, not the pace
            "VOLCENGINE_MAX_ATTEMPTS": str(max_attempts),
        },
    )
    event = load_event("timer_empty")

    for _ in range(PLATFORM_RETRIES):
        result, raised = run_handler(event)
        if not raised:
            break

    assert result["ok"], statuses(result)
    assert emulator.export_tasks_by_image() == {f"image-new{n:04d}": 1 for n in range(CHAOS_IMAGES)}


# 2 attempts per call: many images are left for the platform's retry; 4 (the default): most finish at once.
ATTEMPTS = pytest.mark.parametrize("max_attempts", [2, 4])


@ATTEMPTS
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chaos_exports_every_image_exactly_once(
    emulated: Emulated, run_handler: Run, seed: int, max_attempts: int
) -> None:
    """With 15% 500s, 10% 429s and 10% answers lost after the export started, re-running the scan as the
    platform retries it ends with exactly one export task per image: none twice, none missing."""
    export_under_chaos(emulated, run_handler, seed, max_attempts)


@pytest.mark.soak
@ATTEMPTS
@pytest.mark.parametrize("seed", range(4, 104))
def test_chaos_soak(emulated: Emulated, run_handler: Run, seed: int, max_attempts: int) -> None:
    """The chaos run over 100 more seeds: still exactly one export task per image."""
    export_under_chaos(emulated, run_handler, seed, max_attempts)


# -- a rate limit ----------------------------------------------------------------------------------------------

RATE_LIMIT = 20
# Requests leave evenly spaced, but a thread scheduled late can land in the next second's window.
PEAK_TOLERANCE = 3


def test_a_rate_limited_api_gets_no_more_than_it_allows(emulated: Emulated, run_handler: Run) -> None:
    """With the API limited to 20 requests a second and VOLCENGINE_MAX_RPS=20, 100 new images are all
    started in one invocation, and the API never sees more than the limit in any one second."""
    emulator = emulated(
        new_images_fleet(100),
        faults=Faults(max_rps=RATE_LIMIT),
        task_seconds=3600,
        env={"VOLCENGINE_MAX_RPS": str(RATE_LIMIT)},
    )

    result, raised = run_handler(load_event("timer_empty"))

    assert not raised
    assert set(statuses(result).values()) == {"started"}
    assert len(result["results"]) == 100
    assert emulator.export_tasks_by_image() == {f"image-new{n:04d}": 1 for n in range(100)}
    assert emulator.stats()["peak_rps"] <= RATE_LIMIT + PEAK_TOLERANCE


# -- the command line and the demo -----------------------------------------------------------------------------


def invoke_cli(target: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "handler", "invoke", target, "--timeout", "30"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("target", "stdin", "expected"),
    [
        pytest.param(str(EVENTS_DIR / "image_created.json"), None, (0, {YBQI: "started"}), id="started"),
        pytest.param(
            "-", json.dumps({"ImageId": CREATING}), (1, {CREATING: "deferred"}), id="deferred-stdin"
        ),
        pytest.param(str(EVENTS_DIR / "invalid.json"), None, (1, {None: "failed"}), id="invalid"),
    ],
)
def test_the_command_line_against_the_emulator(
    emulated: Emulated, target: str, stdin: str | None, expected: tuple[int, dict[str | None, str]]
) -> None:
    """``python -m handler invoke`` prints the result alone on stdout, JSON logs on stderr, and exits 0 or 1."""
    exit_code, images = expected
    emulated()

    done = invoke_cli(target, stdin)

    assert done.returncode == exit_code
    assert statuses(json.loads(done.stdout)) == images
    assert all(json.loads(line) for line in done.stderr.splitlines())


def test_the_entry_never_imports_the_emulator(emulated: Emulated) -> None:
    """The deployed function does not need the development tools: exporting an image loads none of them."""
    emulated()
    script = (
        "import json, sys\n"
        "from handler import handler\n"
        f"result = handler({{'ImageId': '{YBQI}'}}, None)\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('exporter_tools.emulator'))\n"
        "print(json.dumps([result['results'][0]['status'], loaded]))\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert json.loads(done.stdout) == ["started", []]


def test_make_demo_runs_every_step_as_expected() -> None:
    """``exporter-tools demo`` (``make demo``) starts its stand-ins, runs every step, exits 0."""
    done = subprocess.run(
        [sys.executable, "-m", "exporter_tools.demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "every step behaved as expected" in done.stdout
    assert done.stdout.count("as expected)") == len(STEPS)
    assert "signature verified" in done.stdout


@pytest.mark.parametrize(
    ("exit_code", "result", "problem"),
    [
        pytest.param(0, {"results": [{"image_id": YBQI, "status": "skipped"}]}, "results", id="status"),
        pytest.param(1, {"results": [{"image_id": YBQI, "status": "started"}]}, "exit status", id="exit"),
    ],
)
def test_the_demo_notices_a_step_that_misbehaves(
    exit_code: int, result: dict[str, Any], problem: str
) -> None:
    """A step whose exit status or image statuses differ from the expected is reported, not passed over."""
    step = Step("image-created event", "image_created.json", 0, {YBQI: "started"})

    problems = step_problems(step, exit_code, result)

    assert len(problems) == 1
    assert problem in problems[0]


def test_the_demo_reads_the_receivers_printed_deliveries() -> None:
    """Each block the receiver prints becomes one delivery: its header and its JSON body."""
    lines = [
        "listening on http://127.0.0.1:1/webhooks (format standard)",
        "--- POST /webhooks -> 204 (signature verified)",
        "{",
        '  "type": "image_export.result"',
        "}",
        "--- POST /webhooks -> 401 (SIGNATURE INVALID)",
        "not json",
    ]

    assert deliveries_from(lines) == [
        ("POST /webhooks -> 204 (signature verified)", {"type": "image_export.result"}),
        ("POST /webhooks -> 401 (SIGNATURE INVALID)", "not json"),
    ]
