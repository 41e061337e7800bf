"""Chat-message text: one-line fields, the lines for exports that finished (the follow-up's outcomes), and
retention's summary."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from handler.errors import fix_for
from handler.models.results import ImageOutcome

__all__ = ["FOLLOW_UP", "follow_up_line", "human_duration", "human_size", "one_line", "retention_line"]

# Outcomes of the follow-up: an export or a restore started earlier, reported when it ends (the same outcome
# every time).
FOLLOW_UP = frozenset({"exported", "export_failed", "restored", "restore_failed", "restore_verified"})
_RESTORE_ENDS = {"restored": "restored", "restore_verified": "restore drill passed"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\s]+")


def one_line(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (an ellipsis marks a cut)."""
    flat = _CONTROL.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def human_size(size: int) -> str:
    """``40.0 GiB``, ``512.0 MiB``: binary units, one decimal."""
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def human_duration(seconds: float) -> str:
    """``45 s``, ``18 min``, ``2.5 h``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def follow_up_line(outcome: ImageOutcome, escape: Callable[[str], str]) -> str:
    """``✅ image-… exported → tos://bucket/key (verified, 3 disks, 40.0 GiB, 18 min)`` or
    ``❌ image-… export failed (task t-…): ExportTaskFailed → advice``."""
    image = escape(one_line(outcome.image_id or "(image)", 80))
    if outcome.status in _RESTORE_ENDS:
        into = escape(one_line(outcome.restored_image_id or "(image)", 80))
        return f"✅ {image} {_RESTORE_ENDS[outcome.status]} → {into}"
    if outcome.status == "exported":
        where = escape(one_line(f"tos://{outcome.tos_bucket}/{outcome.object_key}", 200))
        facts = []
        if outcome.verified:
            facts.append("verified")
        if outcome.objects is not None:
            disks = len(outcome.objects)
            facts.append(f"{disks} disk" + ("s" if disks != 1 else ""))
        if outcome.size_bytes is not None:
            facts.append(human_size(outcome.size_bytes))
        if outcome.duration_s is not None:
            facts.append(human_duration(outcome.duration_s))
        if outcome.verified is False:
            facts.append("not verified: " + escape(one_line(outcome.reason or "TOS did not answer", 160)))
        return f"✅ {image} exported → {where}" + (f" ({', '.join(facts)})" if facts else "")
    line = f"❌ {image} {'restore' if outcome.status == 'restore_failed' else 'export'} failed"
    if outcome.task_id:
        line += f" (task {escape(one_line(outcome.task_id, 64))})"
    if outcome.error is not None:
        fix = fix_for(outcome.error.code)
        line += ": " + escape(one_line(outcome.error.code, 80)) + (f" → {escape(fix)}" if fix else "")
    return line


def retention_line(outcomes: Iterable[ImageOutcome]) -> str | None:
    """``🗑 Retention: 5 exports deleted (15.0 GiB freed); 3 wait for a later run`` (apply: what was deleted, and
    what waits past the cap or the budget), or ``🗑 Retention: 8 exports would be deleted (24.0 GiB)`` (plan, or
    nothing could be deleted); None when retention reported nothing."""
    expired = [o for o in outcomes if o.status in ("expired", "would_expire")]
    deleted = [o for o in expired if o.status == "expired"]
    waiting = [o for o in expired if o.status == "would_expire"]
    if not expired:
        return None
    if not deleted:
        return f"🗑 Retention: {_exports(len(waiting))} would be deleted ({human_size(_bytes(waiting))})"
    line = f"🗑 Retention: {_exports(len(deleted))} deleted ({human_size(_bytes(deleted))} freed)"
    return line + (f"; {len(waiting)} wait for a later run" if waiting else "")


def _exports(n: int) -> str:
    return f"{n} export" + ("" if n == 1 else "s")


def _bytes(outcomes: Iterable[ImageOutcome]) -> int:
    return sum(o.size_bytes or 0 for o in outcomes)
