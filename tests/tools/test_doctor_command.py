"""``exporter-tools doctor``: the Doctor event's checks from a shell with the caller's credentials, against the
emulator over a real loopback socket: the table (✓ ! ✗, a fix line under each problem), ``--json`` and the exit
status (0 nothing failed, 1 a check failed, a bad setting included, 2 a usage error)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from exporter_tools.cli import main as tools_main
from exporter_tools.doctor import render
from exporter_tools.emulator.ecs import EcsEmulator
from handler.models.results import DoctorCheck
from tests.support.emulated import CREDENTIALS

Emulated = Callable[..., EcsEmulator]


def test_on_a_good_setup_the_table_is_all_ticks_and_the_exit_is_0(
    emulated: Emulated, capsys: pytest.CaptureFixture[str]
) -> None:
    emulated()

    code = tools_main(["doctor"])

    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(
        "Doctor: the image exporter in cn-beijing, bucket demo-exports (prefix imgexport)\n"
    )
    rows = [line for line in out.splitlines() if line.startswith("[")]
    assert [row.split()[:2] for row in rows] == [
        ["[✓]", name] for name in ("settings", "credentials", "clock", "bucket", "bucket_access", "images")
    ]
    assert out.rstrip().endswith("No issues found: 6 checks passed.")
    assert "→" not in out


def test_a_problem_gets_its_mark_and_one_fix_line_and_exits_1(
    emulated: Emulated, capsys: pytest.CaptureFixture[str]
) -> None:
    """A read-only bucket fails bucket_access (✗, its fix under it); a misspelt variable warns (!); exit 1. The
    secret key is nowhere in what is printed."""
    emulator = emulated(env={"EXPORT_TOS_BUCKT": "x"})
    emulator.set_bucket_access("demo-exports", "read-only")

    code = tools_main(["doctor"])

    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert code == 1
    access = next(n for n, line in enumerate(lines) if line.startswith("[✗] bucket_access"))
    assert "write refused (tos:PutObject)" in lines[access]
    assert lines[access + 1].startswith("    → grant the function's role tos:PutObject")
    settings = next(n for n, line in enumerate(lines) if line.startswith("[!] settings"))
    assert lines[settings + 1] == "    → rename EXPORT_TOS_BUCKT to EXPORT_TOS_BUCKET"
    assert lines[-1] == "1 check failed, 1 warning."
    assert CREDENTIALS.secret_key not in captured.out + captured.err


def test_json_prints_ok_and_the_checks_as_the_event_carries_them(
    emulated: Emulated, capsys: pytest.CaptureFixture[str]
) -> None:
    emulated(env={"RETENTION_MODE": "plan"})

    code = tools_main(["doctor", "--json"])

    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["ok"] is True
    assert [check["name"] for check in out["checks"]][-1] == "retention"
    assert all(set(check) == {"name", "status", "detail"} for check in out["checks"])


def test_a_bad_setting_is_a_failed_check_in_the_table_not_a_usage_error(
    emulated: Emulated, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXPORT_TOS_PREFIX that is not 1-30 letters and digits: the settings check fails naming it, the other
    checks run with the default prefix, exit 1 (not 2)."""
    emulated(env={"EXPORT_TOS_PREFIX": "not a prefix"})

    code = tools_main(["doctor", "--json"])

    checks = {check["name"]: check for check in json.loads(capsys.readouterr().out)["checks"]}
    assert code == 1
    assert checks["settings"]["status"] == "fail"
    assert checks["settings"]["detail"].startswith("EXPORT_TOS_PREFIX: expected 1-30 letters and digits")
    assert checks["bucket_access"]["status"] == "pass"


@pytest.mark.parametrize("words", [["--timeout", "0"], ["--timeout", "soon"], ["--colour"]])
def test_a_usage_error_exits_2(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        tools_main(["doctor", *words])
    assert stopped.value.code == 2
    assert "usage: exporter-tools doctor" in capsys.readouterr().err


def test_the_table_aligns_the_names_and_counts_the_problems() -> None:
    lines = render(
        [
            DoctorCheck("settings", "pass", "all valid"),
            DoctorCheck("bucket_access", "fail", "write refused", "grant it"),
            DoctorCheck("clock", "warn", "75 s apart", "sync it"),
        ]
    )
    assert lines == [
        "[✓] settings       all valid",
        "[✗] bucket_access  write refused",
        "    → grant it",
        "[!] clock          75 s apart",
        "    → sync it",
        "",
        "1 check failed, 1 warning.",
    ]
