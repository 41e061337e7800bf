"""``exporter-tools status`` against the emulator over a real loopback socket: exports in flight with their
task's progress and age, the outcomes recorded on the images' tags, and the exports in TOS read from the
manifests the function wrote."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from exporter_tools import status
from exporter_tools.cli import main as tools_main
from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage
from tests.support.events import load_event
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
    flight, outcomes, tos = out.split("\n\n")
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
    assert tos == "Exports in TOS (0): tos://demo-exports/imgexport_*.manifest.json, grouped by name\n"


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
    """An account with no tracking tags and no manifests prints three empty tables, and no DescribeTasks
    (nothing in flight) or DescribeImages by id (no export to look a source up for) is needed."""
    emulator = emulated(fleet())
    assert status.main([]) == 0
    assert capsys.readouterr().out == (
        "Exports in flight (0)\n\nOutcomes (0)\n\n"
        "Exports in TOS (0): tos://demo-exports/imgexport_*.manifest.json, grouped by name\n"
    )
    assert "DescribeTasks" not in emulator.stats()["requests"]
    assert emulator.stats()["requests"]["DescribeImages"] == {"200": 1}


def test_status_without_a_bucket_says_how_to_name_one(
    emulated: Callable[..., EcsEmulator], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no EXPORT_TOS_BUCKET and no --bucket, the exports in TOS are not read, and the output says how to
    name the bucket; --json says null."""
    emulated(fleet())
    monkeypatch.delenv("EXPORT_TOS_BUCKET")
    assert status.main([]) == 0
    assert capsys.readouterr().out.endswith(
        "\n\nExports in TOS: no bucket to read (set EXPORT_TOS_BUCKET, or give --bucket)\n"
    )
    assert status.main(["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tos"] is None


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


# -- the exports in TOS, from the manifests the function wrote ----------------------------------------------

TASK_SECONDS = 1.0
WEB, DB = "image-web20261201", "image-db20261201"


def timer(n: int) -> dict[str, Any]:
    return {**load_event("timer_empty"), "id": f"status-timer-{n}"}


def columns(line: str) -> list[str]:
    """A table row's cells (columns are two spaces or more apart)."""
    return re.split(r"\s{2,}", line.strip())


@pytest.fixture
def exported_two(
    emulated: Callable[..., EcsEmulator], run_handler: Callable[..., tuple[dict[str, Any], bool]]
) -> EcsEmulator:
    """Two images exported through the function (a timer scan), followed up by the next timer so that their
    exports are verified and their manifests written, then one source image deleted from the account."""
    images = (
        FleetImage(id=WEB, name="web-20261201", size_gb=20, data_disks=(10,)),
        FleetImage(id=DB, name="db_20261201", size_gb=20),
    )
    emulator = emulated(
        Fleet(images=images, buckets=(FleetBucket(name="demo-exports"),)),
        task_seconds=TASK_SECONDS,
        # One copy of the function: a short settle, yet long enough that a loaded machine never makes the
        # claim too slow to hold (ClaimTooSlow defers a claim whose read and write are settle/2 apart).
        env={"EXPORT_CLAIM_SETTLE_SECONDS": "0.6"},
    )
    first, _ = run_handler(timer(1))
    assert sorted((r["image_id"], r["status"]) for r in first["results"]) == [
        (DB, "started"),
        (WEB, "started"),
    ]
    time.sleep(TASK_SECONDS + 0.5)
    second, raised = run_handler(timer(2))
    assert not raised
    assert {r["image_id"]: r["status"] for r in second["results"]} == {WEB: "exported", DB: "exported"}
    emulator.ecs.remove_image(DB)
    return emulator


def test_status_lists_the_exports_in_tos_and_marks_a_deleted_source(
    exported_two: EcsEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both exports are listed from their manifests, by group (the name without its date), each verified at
    structure with its objects and their size; the export whose source image is gone is marked deleted;
    the deleted image's tags went with it, so only the other is an outcome."""
    assert status.main([]) == 0
    out = capsys.readouterr().out
    _, outcomes, tos = out.split("\n\n")
    assert [line.split()[0] for line in outcomes.splitlines()[2:]] == [WEB]
    lines = tos.splitlines()
    assert lines[0] == "Exports in TOS (2): tos://demo-exports/imgexport_*.manifest.json, grouped by name"
    assert columns(lines[1]) == ["GROUP", "SOURCE", "EXPORTED", "OBJECTS", "SIZE", "VERIFIED", "RESTORED"]
    rows = {columns(line)[0]: columns(line) for line in lines[2:]}
    assert list(rows) == ["db", "web"]
    assert rows["db"][1] == f"{DB} (deleted)"
    assert rows["web"][1] == WEB
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\dZ", rows["web"][2])
    assert (rows["web"][3], rows["db"][3]) == ("2", "1")
    assert all(row[4].endswith(("KiB", "MiB", "GiB")) for row in rows.values())
    assert [row[5:] for row in rows.values()] == [["structure", "-"], ["structure", "-"]]


def test_status_json_carries_the_exports_in_tos(
    exported_two: EcsEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--json`` has the same exports under ``tos``, each with its group, whether its source is deleted,
    its objects and bytes (those of its manifest), its verification and its manifest's key."""
    assert status.main(["--json"]) == 0
    tos = json.loads(capsys.readouterr().out)["tos"]
    assert (tos["bucket"], tos["prefix"], tos["group_by"]) == ("demo-exports", "imgexport", "name")
    assert (tos["problems"], tos["unread"], tos["error"], tos["sources_error"]) == ([], 0, None, None)
    exports = {e["image_id"]: e for e in tos["exports"]}
    assert (exports[DB]["group"], exports[DB]["source_deleted"]) == ("db", True)
    assert (exports[WEB]["group"], exports[WEB]["source_deleted"]) == ("web", False)
    web = exports[WEB]
    manifest = json.loads(
        exported_two.tos.head("demo-exports", web["manifest_key"]).content.read(0, 1 << 20)  # type: ignore[union-attr]
    )
    assert web["size_bytes"] == sum(o["size_bytes"] for o in manifest["objects"])
    assert (web["objects"], web["verification"], web["verified"], web["last_restore_at"]) == (
        2,
        "structure",
        True,
        None,
    )
    assert web["exported_at"].endswith("Z")


def test_status_lists_a_broken_manifest_as_a_problem_and_goes_on(
    exported_two: EcsEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A manifest that is not JSON is listed under the problems with what is wrong; the sound exports are
    still listed and the command succeeds. Grouped by a tag, an export without it is in a named group."""
    exported_two.tos.put_object("demo-exports", "imgexport_image-broken.manifest.json", b"{not json")
    monkeypatch.setenv("RETENTION_GROUP_BY", "tag:app")
    assert status.main([]) == 0
    tos = capsys.readouterr().out.split("\n\n", 2)[2]
    assert tos.splitlines()[0].endswith(", grouped by tag:app")
    assert {columns(line)[0] for line in tos.splitlines()[2:4]} == {"(no tag app)"}
    problems = tos.split("\n\n")[1].splitlines()
    assert problems[0] == "Manifests with problems (1)"
    assert columns(problems[2])[0] == "imgexport_image-broken.manifest.json"
    assert columns(problems[2])[1].startswith("not a valid manifest: Invalid JSON")


def test_status_says_when_the_bucket_cannot_be_listed_and_exits_1(
    emulated: Callable[..., EcsEmulator], capsys: pytest.CaptureFixture[str]
) -> None:
    """A bucket TOS refuses to list: the tags' tables are printed, the exports in TOS say why they could not
    be listed, and the exit status is 1."""
    emulated(fleet()).set_bucket_access("demo-exports", "none")
    assert status.main([]) == 1
    tos = capsys.readouterr().out.split("\n\n")[2]
    assert tos.startswith(
        "Exports in TOS: tos://demo-exports/imgexport_*.manifest.json could not be listed: "
    )
    assert "tos:ListBucket" in tos


def test_status_bucket_and_prefix_options_name_their_variables(
    emulated: Callable[..., EcsEmulator], capsys: pytest.CaptureFixture[str]
) -> None:
    """--bucket and --prefix stand for EXPORT_TOS_BUCKET and EXPORT_TOS_PREFIX (read as the function reads
    them), and a bad bucket name is refused naming the variable."""
    emulated(fleet())
    assert status.main(["--bucket", "other-exports", "--prefix", "weekly"]) == 1  # no such bucket
    assert "tos://other-exports/weekly_*.manifest.json could not be listed: NoSuchBucket" in (
        capsys.readouterr().out
    )
    assert status.main(["--bucket", "Bad_Bucket"]) == 2
    assert "EXPORT_TOS_BUCKET" in capsys.readouterr().err
