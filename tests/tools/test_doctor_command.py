"""``exporter-tools doctor``: the Doctor event's checks from a shell with the caller's credentials, against the
emulator over a real loopback socket: the table (✓ ! ✗, a fix line under each problem), ``--json`` and the exit
status (0 nothing failed, 1 a check failed, a bad setting included, 2 a usage error)."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from exporter_tools.cli import main as tools_main
from exporter_tools.doctor import render
from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import BucketAccess, Fleet, FleetBucket, FleetImage
from handler.core.doctor import DEPLOYER_VARIABLES, OWN_PREFIXES
from handler.errors import fix_for
from handler.models.results import DoctorCheck
from handler.models.settings import known_variables
from tests.support.emulated import CREDENTIALS

Emulated = Callable[..., EcsEmulator]
ROOT = Path(__file__).resolve().parents[2]


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


def test_the_deployers_account_id_is_no_misspelling(
    emulated: Emulated, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README has the deployer export VOLCENGINE_ACCOUNT_ID (template.yaml's role) in the shell the doctor
    then runs in: it is not warned about, and the doctor stays all green."""
    emulated(env={"VOLCENGINE_ACCOUNT_ID": "2100000000"})

    code = tools_main(["doctor"])

    assert code == 0
    assert "No issues found" in capsys.readouterr().out


def test_the_deployers_variables_are_what_the_template_reads_beyond_the_function() -> None:
    """Every ``${env:NAME}`` of the shipped template.yaml with one of the function's prefixes is a variable the
    function reads, or one of ``DEPLOYER_VARIABLES``, and each of those is in the template."""
    template = (ROOT / "template.yaml").read_text(encoding="utf-8")
    read = {
        name for name in re.findall(r"\$\{env:([A-Za-z0-9_]+)", template) if name.startswith(OWN_PREFIXES)
    }
    assert read - known_variables() == DEPLOYER_VARIABLES


def _closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass(frozen=True)
class Misconfiguration:
    """One mistake of the contract's doctor list, made against the emulator, and the row that names its fix."""

    check: str
    status: str
    fix: str  # the start of the row's fix
    env: dict[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    fleet: Fleet | None = None
    bucket_access: BucketAccess | None = None
    detail: str = ""  # a part of the row's detail


_BUCKET = (FleetBucket(name="demo-exports"),)
MISCONFIGURATIONS = {
    "no-such-bucket": Misconfiguration(
        "bucket", "fail", "create the bucket or fix EXPORT_TOS_BUCKET", env={"EXPORT_TOS_BUCKET": "no-such-1"}
    ),
    "bucket-unset": Misconfiguration("bucket", "fail", "set EXPORT_TOS_BUCKET", unset=("EXPORT_TOS_BUCKET",)),
    "bucket-out-of-bounds": Misconfiguration(
        "bucket_access", "fail", "grant the function's role tos:ListBucket", bucket_access="none"
    ),
    "half-set-keys": Misconfiguration(
        "credentials", "fail", "fix VOLCENGINE_SECRET_KEY", unset=("VOLCENGINE_SECRET_KEY",)
    ),
    "credential-file-missing": Misconfiguration(
        "credentials",
        "fail",
        "fix /nonexistent/credential",
        env={"VOLCENGINE_CREDENTIAL_FILE": "/nonexistent/credential"},
        unset=("VOLCENGINE_ACCESS_KEY", "VOLCENGINE_SECRET_KEY"),
    ),
    "unknown-access-key": Misconfiguration(
        "credentials",
        "fail",
        fix_for("InvalidAccessKey") or "",
        env={"VOLCENGINE_ACCESS_KEY": "AKLTnobodys0000001"},
        detail="InvalidAccessKey",
    ),
    "unknown-region": Misconfiguration(
        "credentials", "fail", "check VOLCENGINE_REGION first", env={"VOLCENGINE_REGION": "cn-atlantis"}
    ),
    "api-unreachable": Misconfiguration(
        "credentials",
        "fail",
        "check the endpoint the message names (VOLCENGINE_ENDPOINT or TOS_ENDPOINT)",
        env={"VOLCENGINE_ENDPOINT": "http://127.0.0.1:{closed}"},
        detail="check VOLCENGINE_ENDPOINT",
    ),
    "tos-unreachable": Misconfiguration(
        "bucket",
        "fail",
        "check the endpoint the message names (VOLCENGINE_ENDPOINT or TOS_ENDPOINT)",
        env={"TOS_ENDPOINT": "http://127.0.0.1:{closed}"},
        detail="check TOS_ENDPOINT",
    ),
    "no-private-image": Misconfiguration(
        "images",
        "warn",
        "if the images are in another region, set VOLCENGINE_REGION",
        fleet=Fleet(images=(FleetImage(id="image-pub1", visibility="public"),), buckets=_BUCKET),
    ),
    "no-room-for-a-drill": Misconfiguration(
        "restore_drill",
        "warn",
        "delete the custom images no longer needed",
        env={"RESTORE_DRILL_DAYS": "7"},
        fleet=Fleet(images=tuple(FleetImage(id=f"image-many{n:02d}") for n in range(48)), buckets=_BUCKET),
    ),
    "retention-cannot-list": Misconfiguration(
        "retention",
        "fail",
        "grant the function's role tos:ListBucket",
        env={"RETENTION_MODE": "plan"},
        bucket_access="none",
    ),
    "webhook-unreachable": Misconfiguration(
        "webhook", "fail", "check WEBHOOK_URL", env={"WEBHOOK_URL": "http://127.0.0.1:{closed}/hook"}
    ),
}


@pytest.mark.parametrize("mistake", MISCONFIGURATIONS.values(), ids=MISCONFIGURATIONS.keys())
def test_each_misconfiguration_is_a_row_naming_its_fix(
    mistake: Misconfiguration,
    emulated: Emulated,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Against the emulator, from a shell: each mistake the doctor looks for (beside those the Doctor event's
    tests make) fails or warns in its own row, with the fix; a failure exits 1, a warning alone 0."""
    closed = str(_closed_port())
    env = {name: value.replace("{closed}", closed) for name, value in mistake.env.items()}
    emulator = emulated(mistake.fleet, env=env)
    for name in mistake.unset:
        monkeypatch.delenv(name)
    if mistake.bucket_access:
        emulator.set_bucket_access("demo-exports", mistake.bucket_access)

    code = tools_main(["doctor", "--json", "--timeout", "60"])

    checks: dict[str, Any] = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    row = checks[mistake.check]
    assert (row["status"], code) == (mistake.status, 1 if mistake.status == "fail" else 0)
    assert row["fix"].startswith(mistake.fix)
    assert mistake.detail in row["detail"]
