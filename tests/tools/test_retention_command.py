"""``exporter-tools retention [--apply]``: retention's plan from a shell, a table per group, and ``--apply`` with
the function's own core and settings, against the emulator over a real loopback socket
(``tests.support.seeded_exports``: the worked example in web, pin, raw and busy beside it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from exporter_tools.cli import main as tools_main
from exporter_tools.emulator.ecs import EcsEmulator
from tests.support.seeded_exports import ALL, EXPORTS, RETENTION, WORKED_GO, exports_in, fleet, seed

Emulated = Callable[..., EcsEmulator]
Seeded = Callable[..., EcsEmulator]


def rows(out: str) -> dict[str, str]:
    """Each table row by its export (the first cell)."""
    return {line.split()[0]: line for line in out.splitlines() if line.startswith("image-")}


def test_the_plan_is_a_table_per_group_saying_what_keeps_each_export_or_why_it_goes(
    seeded_bucket: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --apply: the policy, then per group a line of counts and a table (export, finished, verified,
    verdict, the rules that keep it or why it goes), then what would go; nothing is deleted, exit 0."""
    emulator = seeded_bucket()
    capsys.readouterr()  # the seeding's log lines

    code = tools_main(["retention"])

    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(
        "Retention: tos://demo-exports/imgexport_*.manifest.json, grouped by name; keep_last=3, keep_weekly=4, "
        "min_verified=2\n"
    )
    assert "web: 12 exports, 4 kept, 8 go" in out
    assert "raw: 3 exports, 0 kept, 0 go, 3 untouched" in out
    table = rows(out)
    assert table["image-web1123"].split()[1:4] == ["2026-11-23T03:20Z", "structure", "keep"]
    assert table["image-web1123"].endswith("last 1, weekly 2026-W48, newest verified, min_verified")
    assert table["image-web1115"].endswith("keep     weekly 2026-W46")
    assert table["image-web1112"].endswith("expire   12th newest")
    assert table["image-pin1116"].endswith("keep     pinned")
    assert table["image-raw1102"].endswith("not verified (verification off): never counted, never deleted")
    assert "no (off)" in table["image-raw1102"]
    assert table["image-busy1116"].endswith(
        "5th newest; held: group busy has an export in flight (image-busy1204): nothing in it is deleted until "
        "that ends"
    )
    assert "8 export(s) would go (8.0 KiB); --apply deletes at most 5 a run (RETENTION_MAX_DELETES)" in out
    assert exports_in(emulator) == ALL


def test_apply_deletes_at_most_the_cap_and_says_what_waits(
    seeded_bucket: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator = seeded_bucket()
    capsys.readouterr()

    code = tools_main(["retention", "--apply"])

    out = capsys.readouterr().out
    assert code == 0
    assert "Deleted 5 export(s) (5.0 KiB freed)." in out
    assert "3 wait for the next run (RETENTION_MAX_DELETES=5)." in out
    assert exports_in(emulator) == ALL - set(WORKED_GO[:5])

    assert tools_main(["retention", "--apply", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in document["results"]] == ["expired"] * 3
    assert (document["deleted"], document["freed_bytes"], document["waiting"]) == (3, 3 * 1024, 0)
    assert exports_in(emulator) == ALL - set(WORKED_GO)


def test_json_carries_every_exports_verdict(
    seeded_bucket: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded_bucket()
    capsys.readouterr()
    assert tools_main(["retention", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["policy"] == "keep_last=3, keep_weekly=4, min_verified=2"
    verdicts = {v["image_id"]: v for v in document["plan"]}
    assert len(verdicts) == len(EXPORTS)
    assert verdicts["image-web1123"]["rules"] == [
        "last 1",
        "weekly 2026-W48",
        "newest verified",
        "min_verified",
    ]
    assert verdicts["image-web1112"]["verdict"] == "expire"
    assert verdicts["image-web1112"]["finished_at"] == "2026-11-12T03:20:00Z"
    assert [r["status"] for r in document["results"]] == ["would_expire"] * 8


def test_apply_that_may_delete_nothing_exits_1_and_says_why(
    emulated: Emulated, capsys: pytest.CaptureFixture[str]
) -> None:
    """TOS's Date 10 minutes ahead of the local clock: --apply deletes nothing, says why, exits 1."""
    emulator = emulated(fleet(), env=RETENTION, clock=lambda: datetime.now(UTC) + timedelta(minutes=10))
    seed(EXPORTS)
    capsys.readouterr()

    code = tools_main(["retention", "--apply"])

    out = capsys.readouterr().out
    assert code == 1
    assert "Nothing was deleted: TOS's Date (" in out
    assert exports_in(emulator) == ALL


def test_a_bucket_that_cannot_be_read_exits_1_with_the_error(
    seeded_bucket: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded_bucket()
    capsys.readouterr()
    code = tools_main(["retention", "--bucket", "no-such-bucket"])
    out = capsys.readouterr().out
    assert code == 1
    assert "retention: failed: retention could not read the exports in tos://no-such-bucket/imgexport" in out
    assert "fix: " in out


@pytest.mark.parametrize(
    "case",
    [
        (["--timeout", "0"], {}, "--timeout must be above 0"),
        (["--bucket", "Not_A_Bucket"], {}, "--bucket"),
        ([], {"RETENTION_KEEP_LAST": "-1"}, "RETENTION_KEEP_LAST: expected a whole number"),
        (
            [],
            {f"RETENTION_KEEP_{rule}": "0" for rule in ("LAST", "DAILY", "WEEKLY", "MONTHLY")},
            "at least one of RETENTION_KEEP_LAST",
        ),
        (["--apply"], {"EXPORT_TRACKING": "off"}, "EXPORT_TRACKING is off, got 'apply'"),
        ([], {"EXPORT_TOS_BUCKET": ""}, "no bucket: set EXPORT_TOS_BUCKET or give --bucket"),
    ],
)
def test_usage_and_configuration_errors_exit_2(
    seeded_bucket: Seeded,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: tuple[list[str], dict[str, str], str],
) -> None:
    """Bad options (argparse's exit), a variable the function refuses, or no bucket: exit 2, the error on
    stderr."""
    argv, env, says = case
    seeded_bucket()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert exit_code(["retention", *argv]) == 2
    assert says in capsys.readouterr().err


def exit_code(argv: list[str]) -> int:
    try:
        return tools_main(argv)
    except SystemExit as ended:
        return int(ended.code or 0)
