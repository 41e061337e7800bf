"""The function in processes of its own (``tests.support.invocations``): a forked invocation is the command
line's, and a killed one keeps what it logged before the kill."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import new_images_fleet
from tests.support.emulated import process_env
from tests.support.events import load_event
from tests.support.invocations import FunctionLauncher, spawn

StartEmulator = Callable[..., EcsEmulator]


def test_a_forked_invocation_does_what_the_command_line_does(
    start_emulator: StartEmulator, launcher: FunctionLauncher, tmp_path: Path
) -> None:
    """The same scan on two identical accounts, once forked from the launcher and once as ``python -m
    handler invoke``: the same exit status and results, each image's outcome logged, both cold starts."""
    runs = []
    for start in (launcher.start, spawn):
        emulator = start_emulator(new_images_fleet(3), task_seconds=3600, seed=1)
        runs.append(start(load_event("timer_empty"), process_env(emulator), tmp_path).wait())
    forked, fresh = runs

    assert (forked.exit_code, forked.killed) == (fresh.exit_code, fresh.killed) == (0, False)
    assert (
        forked.statuses()
        == fresh.statuses()
        == dict.fromkeys(("image-new0000", "image-new0001", "image-new0002"), "started")
    )
    for run in runs:
        assert {line["image_id"]: line["status"] for line in run.outcomes} == run.statuses()
        assert [line["cold_start"] for line in run.log if line["event"] == "cold_start"] == [True]


def test_a_killed_invocation_keeps_its_log_but_has_no_result(
    start_emulator: StartEmulator, launcher: FunctionLauncher, tmp_path: Path
) -> None:
    """Killed once the emulator has answered its first request, an invocation has no exit status and no
    result, but the lines it logged until then are read back; a process that ends first is not killed."""
    emulator = start_emulator(new_images_fleet(30), task_seconds=3600, seed=1)
    env = process_env(emulator) | {"VOLCENGINE_MAX_RPS": "5"}  # 30 exports take seconds: time to kill

    killed = launcher.start(load_event("timer_empty"), env, tmp_path).kill_after_requests(emulator, 1)
    ended = launcher.start(load_event("image_created"), process_env(emulator), tmp_path)
    finished = ended.kill_after_requests(emulator, 10_000)

    assert (killed.killed, killed.exit_code, killed.result) == (True, None, None)
    assert [line["event"] for line in killed.log][:1] == ["cold_start"]
    assert killed.outcomes == []
    assert sum(emulator.export_tasks_by_image().values()) < 30
    assert (finished.killed, finished.exit_code) == (
        False,
        1,
    )  # the demo fleet's image is not in this account
