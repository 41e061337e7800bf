"""``exporter-tools restore IMAGE_ID``: the Restore event's core from a shell, against the emulator over a
real loopback socket; ``--wait`` follows the import to its end and settles it so no timer reports it again."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from exporter_tools.cli import main as tools_main
from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage
from handler.core.restoring import RESTORE_KEY
from tests.support.events import load_event

Emulated = Callable[..., EcsEmulator]
Run = Callable[..., tuple[dict[str, Any], bool]]

BUCKET, PREFIX = "demo-exports", "imgexport"
SOURCE = "image-web00001"
TASK_SECONDS = 1.0


def timer(n: int) -> dict[str, Any]:
    return {**load_event("timer_empty"), "id": f"timer-firing-{n}"}


@pytest.fixture
def exported(emulated: Emulated, run_handler: Run) -> EcsEmulator:
    image = FleetImage(id=SOURCE, name="web-20261201", size_gb=20, data_disks=(10,))
    emulator = emulated(
        Fleet(images=(image,), buckets=(FleetBucket(name=BUCKET),)), task_seconds=TASK_SECONDS
    )
    run_handler(timer(1))
    time.sleep(TASK_SECONDS + 0.5)
    second, _ = run_handler(timer(2))
    assert [r["status"] for r in second["results"]] == ["exported"]
    return emulator


def test_restore_starts_an_import_and_says_what_follows(
    exported: EcsEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code = tools_main(["restore", SOURCE, "--name", "web-rebuilt", "--json"])

    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["status"] == "restore_started"
    record = exported.imports()[out["restored_image_id"]]
    assert record.request.name == "web-rebuilt"
    assert len(record.request.data_volumes) == 1


def test_restore_wait_follows_the_import_with_a_progress_bar_and_settles_it(
    exported: EcsEmulator, run_handler: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--wait`` polls until the import ended: ``restored``, exit 0, a progress bar on stderr, the check in
    the manifest and the image retagged, so the next timer run reports nothing of it."""
    code = tools_main(["restore", SOURCE, "--wait", "--interval", "0.2"])

    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.startswith(f"{SOURCE}: restored → image-")
    lines = captured.err.splitlines()
    assert "\r" not in captured.err  # not a terminal: one line a change, no redrawing
    assert lines[-1].startswith("[##############################] 100% image-")
    assert lines[-1].endswith(" restored")
    assert len(lines) == len(set(lines))
    (new,) = exported.imports()
    assert exported.ecs.image_tags(new)[RESTORE_KEY] == "restored"
    later, _ = run_handler(timer(3))
    assert not [r for r in later["results"] if r["status"].startswith("restore")]


def test_restore_of_an_image_with_no_export_exits_1_with_the_fix(
    emulated: Emulated, capsys: pytest.CaptureFixture[str]
) -> None:
    emulated(Fleet(images=(FleetImage(id=SOURCE),), buckets=(FleetBucket(name=BUCKET),)))

    code = tools_main(["restore", SOURCE])

    out = capsys.readouterr().out
    assert code == 1
    assert "failed" in out
    assert "NoVerifiedExport" in out
    assert "fix: export the image first" in out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["restore", "img-1"], "expected an image id"),
        (["restore", SOURCE, "--bucket", "Bad_Bucket"], "TOS bucket name"),
        (["restore", SOURCE, "--timeout", "0"], "--timeout must be above 0"),
    ],
    ids=["bad-id", "bad-bucket", "bad-timeout"],
)
def test_restore_refuses_bad_arguments_with_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        tools_main(argv)
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_progress_bar_is_one_line_redrawn() -> None:
    from exporter_tools.restore import _Bar

    out = _Terminal()
    bar = _Bar(out)
    bar(20, "image-new1", "Running")
    bar(20, "image-new1", "Running")
    bar(100, "image-new1", "restored", done=True)

    assert out.getvalue().count("\r") == 3
    assert out.getvalue().endswith("\n")
    assert out.getvalue().count("\n") == 1
