"""``exporter-tools status`` against the emulator over a real loopback socket: exports in flight with their
task's progress and age, and the outcomes recorded on the images' tags."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from exporter_tools import status
from exporter_tools.cli import main as tools_main
from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage
from tests.support.fakes import FakeClock

STATE, DEST = "image-exporter:state", "image-exporter:dest"


def fleet() -> Fleet:
    ids = ("image-run1", "image-run2", "image-done", "image-fail", "image-untracked", "image-notask")
    images = tuple(FleetImage(id=i, created_hours_ago=n + 1) for n, i in enumerate(ids))
    return Fleet(images=images, buckets=(FleetBucket(name="demo-exports"),))


def tag(emulator: EcsEmulator, call: Callable[..., httpx.Response], image_id: str, state: str) -> None:
    params = {
        "ResourceType": "image",
        "ResourceIds.1": image_id,
        "Tags.1.Key": STATE,
        "Tags.1.Value": state,
        "Tags.2.Key": DEST,
        "Tags.2.Value": "tos://demo-exports/imgexport",
    }
    assert call(emulator, "TagResources", params).status_code == 200


@pytest.fixture
def tracked(
    emulated: Callable[..., EcsEmulator], call: Callable[..., httpx.Response]
) -> tuple[EcsEmulator, dict[str, str]]:
    """Two exports 40 s into their 100 s, one exported, one failed, one tagged exporting with no task listed,
    and one image never tracked; the function's variables point at the emulator."""
    clock = FakeClock(wall=None)  # real time, moved: tasks created "earlier", signatures fresh
    emulator = emulated(fleet(), task_seconds=100.0, clock=clock)
    clock.advance(-40)
    tasks = {}
    for image in ("image-run1", "image-run2", "image-untracked"):
        params = {"ImageId": image, "TOSBucket": "demo-exports", "TOSPrefix": "imgexport"}
        tasks[image] = call(emulator, "ExportImage", params).json()["Result"]["TaskId"]
    clock.advance(40)
    for image, state in (
        ("image-run1", "exporting"),
        ("image-run2", "exporting"),
        ("image-done", "exported"),
        ("image-fail", "failed"),
        ("image-notask", "exporting"),
    ):
        tag(emulator, call, image, state)
    return emulator, tasks


def test_status_lists_exports_in_flight_and_outcomes(
    tracked: tuple[EcsEmulator, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """The in-flight table shows each exporting image's task, status, Process % and age; the outcomes table
    each exported or failed image with its object's URL; an untracked image is in neither."""
    _, tasks = tracked
    assert tools_main(["status"]) == 0
    out = capsys.readouterr().out
    flight, outcomes = out.split("\n\n")
    rows = {line.split()[0]: line.split() for line in flight.splitlines()[2:]}
    assert flight.splitlines()[0] == "Exports in flight (3)"
    assert flight.splitlines()[1].split() == ["IMAGE", "TASK", "STATUS", "PROCESS", "AGE"]
    assert rows["image-run1"][1:4] == [tasks["image-run1"], "Running", "40%"]
    assert rows["image-run1"][4] in ("0m40s", "0m41s", "0m42s")
    assert rows["image-run2"][1] == tasks["image-run2"]
    assert rows["image-notask"][1:] == ["-", "(no", "task", "listed)", "-", "-"]
    lines = outcomes.splitlines()
    assert lines[0] == "Outcomes (2)"
    assert lines[2].split() == [
        "image-done",
        "exported",
        "tos://demo-exports/imgexport_image-done_system.qcow2",
    ]
    assert lines[3].split() == [
        "image-fail",
        "failed",
        "tos://demo-exports/imgexport_image-fail_system.qcow2",
    ]
    assert "image-untracked" not in out


def test_status_as_json_and_with_a_limit(
    tracked: tuple[EcsEmulator, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--json`` prints the same facts for scripts; ``--limit`` caps the outcomes listed."""
    assert status.main(["--json", "--limit", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [f["image_id"] for f in data["in_flight"]] == ["image-run1", "image-run2", "image-notask"]
    assert data["in_flight"][0]["process"] == 40
    assert data["outcomes"] == [
        {
            "image_id": "image-done",
            "state": "exported",
            "destination": "tos://demo-exports/imgexport_image-done_system.qcow2",
        }
    ]


def test_status_uses_one_tag_search_and_one_task_lookup(tracked: tuple[EcsEmulator, dict[str, str]]) -> None:
    """Reading the status costs one DescribeImages (tag filter) and one DescribeTasks for all images in flight."""
    emulator, _ = tracked
    before = emulator.stats()["requests"]
    assert status.main([]) == 0
    after = emulator.stats()["requests"]
    assert after["DescribeImages"]["200"] - before.get("DescribeImages", {}).get("200", 0) == 1
    assert after["DescribeTasks"]["200"] - before.get("DescribeTasks", {}).get("200", 0) == 1


def test_status_with_nothing_tracked_says_so(
    emulated: Callable[..., EcsEmulator], capsys: pytest.CaptureFixture[str]
) -> None:
    """An account with no tracking tags prints two empty tables and no DescribeTasks is needed."""
    emulator = emulated(fleet())
    assert status.main([]) == 0
    assert capsys.readouterr().out == "Exports in flight (0)\n\nOutcomes (0)\n"
    assert "DescribeTasks" not in emulator.stats()["requests"]


def test_status_refused_keys_exit_1_without_the_secret(
    emulated: Callable[..., EcsEmulator], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Keys the API refuses end the command with exit 1 and the API's reason, never the secret key."""
    emulated(fleet())
    monkeypatch.setenv("VOLCENGINE_SECRET_KEY", "a-wrong-secret-key-123")
    assert status.main([]) == 1
    err = capsys.readouterr().err
    assert "SignatureDoesNotMatch" in err or "signature" in err
    assert "a-wrong-secret-key-123" not in err


def test_status_names_a_bad_endpoint_option(
    emulated: Callable[..., EcsEmulator], capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed --endpoint exits 2 with a message naming the variable it stands for."""
    emulated(fleet())
    assert status.main(["--endpoint", "not-a-url"]) == 2
    assert "VOLCENGINE_ENDPOINT" in capsys.readouterr().err


def test_status_reads_the_environment_as_the_function_does(
    emulated: Callable[..., EcsEmulator],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An empty variable counts as unset (the default applies), and a bad one is named with the function's
    own wording: status never disagrees with the function about its settings."""
    emulated(fleet())
    monkeypatch.setenv("EXPORT_TOS_PREFIX", "")
    assert status.main([]) == 0
    monkeypatch.setenv("LOG_LEVEL", "chatty")
    assert status.main([]) == 2
    assert "status: LOG_LEVEL: expected" in capsys.readouterr().err
