"""``exporter-tools retention [--apply]``: retention's plan for the function's bucket, as a table per group, and
with ``--apply`` carried out, with the function's own core (``handler.core.retention``) and settings
(``RETENTION_*``, ``EXPORT_TOS_BUCKET``, ``EXPORT_TOS_PREFIX``, ``TOS_ENDPOINT``, the region and the keys) and
the caller's credentials::

    Retention: tos://demo-exports/imgexport_*.manifest.json, grouped by name; keep_last=3, keep_weekly=4,
    min_verified=2

    web: 12 exports, 4 kept, 8 go
    EXPORT         FINISHED           VERIFIED   VERDICT  KEPT BY, OR WHY IT GOES
    image-web1123  2026-11-23T03:20Z  structure  keep     last 1, weekly 2026-W48, newest verified, min_verified
    image-web1120  2026-11-20T03:20Z  structure  expire   4th newest
    ...

    8 export(s) would go (8.0 GiB); --apply deletes at most 10 a run (RETENTION_MAX_DELETES)

``--apply`` deletes as a timer run with ``RETENTION_MODE=apply`` would: oldest first, each export whole, at
most ``RETENTION_MAX_DELETES``, nothing when the rails say so. Exit status: 0 done (a plan printed, or what
could be deleted deleted); 1 the bucket could not be read, a delete failed, or ``--apply`` could delete
nothing (the output says why); 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

from exporter_tools.bucket_session import open_bucket
from exporter_tools.tables import moment_text, size_text, text_table
from handler.clock import as_utc
from handler.core.retention import RetentionMode, RetentionRun, run_retention
from handler.core.retention_rules import Policy, RetentionPlan, Verdict, ordinal
from handler.errors import fix_for
from handler.models.commands import RefusedValue, check_bucket, check_prefix

__all__ = ["as_json", "build_parser", "main", "render"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exporter-tools retention",
        description=(
            "Print retention's plan for the exports in the function's bucket, a table per group: each export, "
            "when it finished, whether it was verified, and the rules that keep it or why it goes; --apply "
            "deletes what goes, as a timer run with RETENTION_MODE=apply would. The rules, the bucket, the "
            "prefix, the endpoints and the keys come from the function's variables (RETENTION_KEEP_*, "
            "RETENTION_MIN_VERIFIED, RETENTION_MAX_DELETES, RETENTION_GROUP_BY, EXPORT_TOS_BUCKET, "
            "EXPORT_TOS_PREFIX, TOS_ENDPOINT, VOLCENGINE_REGION, VOLCENGINE_ACCESS_KEY...)."
        ),
    )
    parser.add_argument("--apply", action="store_true", help="delete what the plan lets go")
    parser.add_argument("--bucket", type=_checked_bucket, help="the bucket (default: EXPORT_TOS_BUCKET)")
    parser.add_argument("--prefix", type=_checked_prefix, help="the prefix (default: EXPORT_TOS_PREFIX)")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds for the whole command (default 300)"
    )
    parser.add_argument("--json", action="store_true", help="print the plan and the results as JSON")
    parser.add_argument("--verbose", action="store_true", help="log each API call (JSON lines on stderr)")
    return parser


def _checked_bucket(text: str) -> str:
    try:
        return check_bucket(text)
    except RefusedValue as refused:
        raise argparse.ArgumentTypeError(refused.message) from None


def _checked_prefix(text: str) -> str:
    try:
        return check_prefix(text)
    except RefusedValue as refused:
        raise argparse.ArgumentTypeError(refused.message) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.timeout <= 3600:
        parser.error("--timeout must be above 0 and at most 3600 seconds")
    mode: RetentionMode = "apply" if args.apply else "plan"
    # The function's own reading, retention on as --apply says (a policy that keeps nothing by rule, or --apply
    # where no tags show the exports in flight, is refused as the function refuses it).
    session = open_bucket("retention", args, overrides={"RETENTION_MODE": mode}, tracking=True)
    if isinstance(session, int):
        return session
    settings, dest = session.settings, session.dest
    policy = Policy.of(settings)
    run = run_retention(
        session.clients.ecs,
        session.store,
        dest=dest,
        group_by=settings.retention_group_by,
        policy=policy,
        mode=mode,
        max_deletes=settings.max_deletes,
        deadline=time.monotonic() + args.timeout,
        workers=settings.concurrency,
    )
    if args.json:
        print(json.dumps(as_json(run), indent=2))
    else:
        heading = (
            f"tos://{dest.bucket}/{dest.prefix}_*.manifest.json, grouped by {settings.retention_group_by}"
        )
        print(render(run, heading=heading, apply=args.apply, max_deletes=settings.max_deletes), end="")
    return _status(run, apply=args.apply)


def _status(run: RetentionRun, *, apply: bool) -> int:
    if any(o.status in ("failed", "deferred") for o in run.outcomes):
        return 1
    return 1 if apply and run.refused is not None and run.plan is not None and run.plan.expiring else 0


def render(run: RetentionRun, *, heading: str, apply: bool, max_deletes: int) -> str:
    """The plan, a table per group, then what was (or would be) deleted, what waits, and what went wrong. With
    ``apply``, an export that goes shows what became of it: ``deleted``, ``waits`` (for a later run) or the
    status that stopped it."""
    if run.plan is None:
        return "\n".join(["Retention: " + heading, *_failures(run)]) + "\n"
    became = {o.manifest_key: _BECAME.get(o.status, o.status) for o in run.outcomes} if apply else {}
    lines = [f"Retention: {heading}; {run.plan.policy.describe()}"]
    for group, verdicts in run.plan.groups().items():
        lines += ["", _group_line(group, verdicts)]
        lines += text_table(
            ("EXPORT", "FINISHED", "VERIFIED", "VERDICT", "KEPT BY, OR WHY IT GOES"),
            [_row(v, became.get(v.export.key)) for v in verdicts],
        )
    if not run.plan.verdicts:
        lines += ["", "No exports (no manifest under the prefix)."]
    lines += ["", *_summary(run, apply=apply, max_deletes=max_deletes), *_failures(run)]
    if run.unread:
        lines.append(f"{run.unread} manifest(s) not read: the --timeout ran out first")
    if run.problems:
        lines += ["", f"Manifests with problems ({len(run.problems)}), left alone"]
        lines += text_table(("KEY", "PROBLEM"), [(e.key, e.problem or "") for e in run.problems])
    return "\n".join(lines) + "\n"


def _group_line(group: str, verdicts: Sequence[Verdict]) -> str:
    counts = {kind: sum(v.kind == kind for v in verdicts) for kind in ("keep", "expire", "untouched")}
    parts = [f"{counts['keep']} kept", f"{counts['expire']} go"]
    if counts["untouched"]:
        parts.append(f"{counts['untouched']} untouched")
    return f"{group}: {len(verdicts)} export{'s' if len(verdicts) != 1 else ''}, " + ", ".join(parts)


_BECAME = {"expired": "deleted", "would_expire": "waits"}


def _row(verdict: Verdict, became: str | None) -> tuple[str, str, str, str, str]:
    export = verdict.export
    verified = export.verification if export.verified else f"no ({export.verification})"
    return (export.image_id, moment_text(export.finished_at), verified, became or verdict.kind, _why(verdict))


def _why(verdict: Verdict) -> str:
    """The rules that keep it; its place when it goes; what holds it, or why it is not counted."""
    if verdict.kind == "keep":
        return ", ".join(verdict.rules)
    if verdict.rank is None:
        return verdict.reason
    place = f"{ordinal(verdict.rank)} newest"
    if verdict.export.gone:
        place += f"; {len(verdict.export.gone)} of its {len(verdict.export.objects)} files already gone"
    return f"{place}; held: {verdict.held_by}" if verdict.held_by else place


def _summary(run: RetentionRun, *, apply: bool, max_deletes: int) -> list[str]:
    plan: RetentionPlan | None = run.plan
    going = plan.expiring if plan is not None else ()
    if not going:
        return ["Nothing goes."]
    size = size_text(sum(v.export.size_bytes for v in going))
    if not apply:
        line = f"{len(going)} export(s) would go ({size}); --apply deletes at most {max_deletes} a run"
        line += " (RETENTION_MAX_DELETES)"
        return [line] + ([f"Nothing would be deleted now: {run.refused}"] if run.refused else [])
    if run.refused is not None:
        return [f"Nothing was deleted: {run.refused}"]
    lines = [f"Deleted {run.deleted} export(s) ({size_text(run.freed_bytes)} freed)."]
    if run.waiting:
        lines.append(f"{run.waiting} wait for the next run (RETENTION_MAX_DELETES={max_deletes}).")
    stopped = sum(o.status == "would_expire" for o in run.outcomes) - run.waiting
    if stopped:
        lines.append(f"{stopped} not deleted in this run: see below, or run again.")
    return lines


def _failures(run: RetentionRun) -> list[str]:
    lines: list[str] = []
    for outcome in run.outcomes:
        if outcome.status not in ("failed", "deferred"):
            continue
        lines.append(f"{outcome.image_id or 'retention'}: {outcome.status}: {outcome.reason}")
        if outcome.error is not None:
            lines.append(f"  {outcome.error.code}: {outcome.error.message}")
            fix = fix_for(outcome.error.code)
            if fix:
                lines.append(f"  fix: {fix}")
    return lines


def as_json(run: RetentionRun) -> dict[str, Any]:
    """The plan (every export's verdict), the results, and what was deleted."""
    plan = run.plan
    return {
        "policy": plan.policy.describe() if plan is not None else None,
        "plan": [_verdict_json(v) for v in plan.verdicts] if plan is not None else None,
        "results": [o.to_json() for o in run.outcomes],
        "deleted": run.deleted,
        "freed_bytes": run.freed_bytes,
        "waiting": run.waiting,
        "refused": run.refused,
        "unread": run.unread,
        "problems": [{"key": e.key, "problem": e.problem} for e in run.problems],
    }


def _verdict_json(verdict: Verdict) -> dict[str, Any]:
    export = verdict.export
    return {
        "group": export.group,
        "image_id": export.image_id,
        "manifest_key": export.key,
        "finished_at": as_utc(export.finished_at).isoformat().replace("+00:00", "Z"),
        "verified": export.verified,
        "verification": export.verification,
        "size_bytes": export.size_bytes,
        "verdict": verdict.kind,
        "rules": list(verdict.rules),
        "reason": verdict.reason,
    }
