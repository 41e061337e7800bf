"""``exporter-tools doctor [--json] [--timeout S]``: the doctor's checks (docs/doctor.md) with the function's
settings and the caller's credentials, as a table like ``flutter doctor``'s::

    Doctor: the image exporter in cn-beijing, bucket demo-exports (prefix imgexport)

    [✓] settings       14 variables set, all valid (region cn-beijing, bucket demo-exports, prefix imgexport)
    [✓] credentials    a signed DescribeImages answered for the access key AKLT… in cn-beijing
    [!] clock          the API's Date agrees with this clock; TOS's Date is 75 s ahead of this clock
        → this clock agrees with the API's but not TOS's: check that TOS_ENDPOINT names TOS (…)
    [✗] bucket_access  tos://demo-exports/imgexport_image-exporter-doctor-probe.json: list ✓, write refused …
        → grant the function's role tos:PutObject and tos:DeleteObject on demo-exports (IAM policy)

    1 check failed, 1 warning.

One fix line under each check that warns or fails. ``--json`` prints ``{"ok", "checks"}`` instead, the
checks as the ``Doctor`` event's result carries them. The same core runs as for the event; only the
identity differs (the caller's keys, not the function's role).

Exit status: 0 no check failed (warnings allowed); 1 a check failed, a bad setting included (it is the
``settings`` check's failure, shown in the table, the other checks run with its default); 2 a usage error.

``deploy --apply`` ends with the same checks (:func:`examine_environment`, :func:`report`) on the settings it
deployed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Mapping, Sequence

from handler.adapters.log import configure_logging
from handler.core.doctor import SettingsReading
from handler.doctor import examine, read_settings
from handler.models.results import DoctorCheck

__all__ = ["MARKS", "build_parser", "examine_environment", "main", "render", "report"]

MARKS = {"pass": "✓", "warn": "!", "fail": "✗"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exporter-tools doctor",
        description=(
            "Check everything the function depends on, with its settings (the EXPORT_*, VOLCENGINE_*, "
            "WEBHOOK_*, RETENTION_* and RESTORE_* variables) and your credentials: the settings, the keys, "
            "the clocks, the bucket and what the role may do there (a probe object is written and deleted "
            "under the prefix: nothing else changes), the images a scan would consider, and, when they are "
            "set, the webhook (a test message is sent), the restore drill and retention (its plan, never "
            "applied). Exit status: 0 no check failed, 1 a check failed, 2 a usage error."
        ),
    )
    parser.add_argument(
        "--json", action="store_true", help='print {"ok", "checks"} as JSON instead of the table'
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds for every check together (default 120)"
    )
    parser.add_argument("--verbose", action="store_true", help="log each API call (JSON lines on stderr)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.timeout <= 900:
        parser.error("--timeout must be above 0 and at most 900 seconds")
    configure_logging("INFO" if args.verbose else "ERROR")  # the table says what the checks found
    reading, checks = examine_environment(os.environ, timeout=args.timeout)
    failed = any(check.status == "fail" for check in checks)
    if args.json:
        shown = [{k: v for k, v in dataclasses.asdict(check).items() if v is not None} for check in checks]
        print(json.dumps({"ok": not failed, "checks": shown}, indent=2, ensure_ascii=False))
    else:
        print("\n".join(report(reading, checks)))
    return 1 if failed else 0


def examine_environment(
    environ: Mapping[str, str], *, timeout: float
) -> tuple[SettingsReading, tuple[DoctorCheck, ...]]:
    """Every check with the settings and credentials ``environ`` holds, within ``timeout`` seconds."""
    reading = read_settings(environ)
    return reading, examine(reading, environ, deadline=time.monotonic() + timeout)


def report(reading: SettingsReading, checks: Sequence[DoctorCheck]) -> list[str]:
    """The headline (region, bucket, prefix), a blank line, then the table (:func:`render`)."""
    settings = reading.settings
    bucket = settings.tos_bucket or "(no bucket)"
    headline = (
        f"Doctor: the image exporter in {settings.region}, bucket {bucket} (prefix {settings.tos_prefix})"
    )
    return [headline, "", *render(checks)]


def render(checks: Sequence[DoctorCheck]) -> list[str]:
    """The table: ``[✓] name  detail`` a check, ``→ fix`` under each that warns or fails, then the count."""
    width = max(len(check.name) for check in checks)
    lines: list[str] = []
    for check in checks:
        lines.append(f"[{MARKS[check.status]}] {check.name:<{width}}  {check.detail}")
        if check.fix:
            lines.append(f"    → {check.fix}")
    failed = sum(check.status == "fail" for check in checks)
    warned = sum(check.status == "warn" for check in checks)
    if not failed and not warned:
        summary = f"No issues found: {len(checks)} checks passed."
    else:
        summary = f"{failed} check{'s' * (failed != 1)} failed, {warned} warning{'s' * (warned != 1)}."
    return [*lines, "", summary]
