"""Which exports retention keeps and which it deletes (docs/contract.md, "Retention"): the rules and the rails,
as one pure function, :func:`plan_retention`. No I/O: ``handler.core.retention`` runs it against TOS and ECS.

**The rules** are restic's ``forget`` (Kopia's retention reads the same way), over each group's verified
exports by their ``finished_at`` in UTC, newest first; an export any rule keeps is kept (their union):

- ``RETENTION_KEEP_LAST=n``: the n newest.
- ``RETENTION_KEEP_DAILY=n``: for the last n days that have an export, the newest export of each day.
  ``RETENTION_KEEP_WEEKLY`` the same with ISO weeks (Monday to Sunday), ``RETENTION_KEEP_MONTHLY`` with
  calendar months. A period without an export is not counted, as in restic: a group that stops exporting
  keeps what it had rather than ageing out, and no rule reads the clock. (restic 0.17 also keeps a group's
  oldest snapshot while a calendar rule has periods to spare; this does not.)

**The rails**, whatever the rules say, each an export's own verdict:

- the newest verified export of a group whose files are all in the bucket is kept, and so are its newest
  ``RETENTION_MIN_VERIFIED`` such exports (one whose files are gone is no copy to fall back on);
- an export whose verification failed or did not run is neither counted nor deleted (``untouched``), nor is
  one whose manifest lists a file outside its export's own keys, nor one finished after the server's now
  (a clock far ahead must not push real exports out);
- nothing in a group is deleted while it has an export in flight, nor an export whose image is being
  exported again (it writes the same keys), nor one an import (a restore or a drill) reads from; an export
  whose source image carries ``image-exporter:keep`` is kept (``pinned``).

Adding an export never deletes one that a rule keeps in the catalogue with it, and it only ever pushes out
exports older than itself; deleting what a plan expires (all of it, or the first few, as the cap allows)
leaves a catalogue whose plan expires exactly the rest. The property tests hold the rules to these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from handler.clock import as_utc
from handler.core.catalogue import Catalogue, CatalogueEntry, group_of
from handler.models.settings import Settings

__all__ = [
    "CLOCK_TOLERANCE",
    "KEEP_KEY",
    "Export",
    "Holds",
    "Policy",
    "RetentionPlan",
    "Verdict",
    "VerdictKind",
    "carries_keep_tag",
    "clock_refusal",
    "exports_of",
    "ordinal",
    "plan_retention",
]

# An export whose source image carries this tag (any value) is never deleted.
KEEP_KEY = "image-exporter:keep"
# Nothing is deleted when TOS's Date and the local clock differ by more than this (docs/contract.md).
CLOCK_TOLERANCE = timedelta(minutes=5)
# The file names an export's objects have: <prefix>_<ImageId>_<disk>.qcow2 (docs/contract.md).
_OBJECT_SUFFIX = ".qcow2"
NEWEST = "newest verified"
MIN_VERIFIED = "min_verified"
PINNED = "pinned"


@dataclass(frozen=True, slots=True)
class Policy:
    """``RETENTION_KEEP_*`` and ``RETENTION_MIN_VERIFIED``: how many exports of a group stay."""

    keep_last: int = 7
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    min_verified: int = 2

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        return cls(
            settings.keep_last,
            settings.keep_daily,
            settings.keep_weekly,
            settings.keep_monthly,
            settings.min_verified,
        )

    def describe(self) -> str:
        """``keep_last=7, min_verified=2``: the rules that keep anything, then the rail."""
        rules = (
            ("keep_last", self.keep_last),
            ("keep_daily", self.keep_daily),
            ("keep_weekly", self.keep_weekly),
            ("keep_monthly", self.keep_monthly),
        )
        return ", ".join([f"{name}={n}" for name, n in rules if n] + [f"min_verified={self.min_verified}"])


@dataclass(frozen=True, slots=True)
class Export:
    """One export as retention sees it: its manifest's key, source image, group, when it finished, how it was
    checked, the files its manifest lists and their bytes in the bucket; ``gone``: the files the listing no
    longer has; ``foreign``: listed files outside ``<prefix>_<ImageId>_*.qcow2``, which are never deleted."""

    key: str
    image_id: str
    group: str
    finished_at: datetime
    verified: bool
    verification: str
    objects: tuple[str, ...]
    size_bytes: int = 0
    gone: tuple[str, ...] = ()
    foreign: tuple[str, ...] = ()

    @classmethod
    def of(cls, entry: CatalogueEntry, *, group_by: str, prefix: str, listed: Mapping[str, int]) -> Export:
        """The export of a catalogue entry with a manifest; ``listed``: each key the listing found, with its
        size."""
        manifest = entry.manifest
        if manifest is None or entry.finished_at is None:
            msg = f"{entry.key}: an entry without a manifest is not an export"
            raise ValueError(msg)
        keys = tuple(dict.fromkeys(o.key for o in manifest.objects))
        own = f"{prefix}_{manifest.image.id}_"
        return cls(
            key=entry.key,
            image_id=manifest.image.id,
            group=group_of(manifest, group_by),
            finished_at=entry.finished_at,
            verified=manifest.verification.verified,
            verification=manifest.verification.level,
            objects=keys,
            size_bytes=sum(listed.get(k, 0) for k in keys),
            gone=tuple(k for k in keys if k not in listed),
            foreign=tuple(k for k in keys if not (k.startswith(own) and k.endswith(_OBJECT_SUFFIX))),
        )


def exports_of(catalogue: Catalogue, group_by: str) -> tuple[Export, ...]:
    """Every export of the catalogue (its entries with a sound manifest), with what its listing says."""
    listed = {o.key: o.size_bytes for o in catalogue.objects}
    return tuple(
        Export.of(e, group_by=group_by, prefix=catalogue.prefix, listed=listed) for e in catalogue.exports
    )


@dataclass(frozen=True, slots=True)
class Holds:
    """What holds exports the rules would let go, from outside the catalogue: ``in_flight``, each group with an
    export in flight and one image exporting in it; ``exporting``, every image with an export in flight;
    ``importing``, the source images an import (a restore or a drill) reads from; ``pinned``, the source
    images tagged ``image-exporter:keep``."""

    in_flight: Mapping[str, str] = field(default_factory=dict)
    exporting: frozenset[str] = frozenset()
    importing: frozenset[str] = frozenset()
    pinned: frozenset[str] = frozenset()


VerdictKind = Literal["keep", "expire", "untouched"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What becomes of one export: ``keep`` (``rules``: each rule or rail that keeps it), ``expire`` (``reason``:
    why it goes) or ``untouched`` (``reason``: why it is neither counted nor deleted, or what holds it, then
    also in ``held_by``). ``rank``: its place among its group's counted exports, newest first (1 is the
    newest)."""

    export: Export
    kind: VerdictKind
    reason: str
    rules: tuple[str, ...] = ()
    rank: int | None = None
    held_by: str | None = None


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    """Every export's verdict, by group (in name order), each group newest first, under ``policy``."""

    verdicts: tuple[Verdict, ...]
    policy: Policy

    @property
    def expiring(self) -> tuple[Verdict, ...]:
        """The exports that go, oldest first (the order they are deleted in)."""
        going = [v for v in self.verdicts if v.kind == "expire"]
        return tuple(sorted(going, key=lambda v: (v.export.finished_at, v.export.key)))

    def groups(self) -> dict[str, tuple[Verdict, ...]]:
        """The verdicts of each group, newest first."""
        out: dict[str, list[Verdict]] = {}
        for verdict in self.verdicts:
            out.setdefault(verdict.export.group, []).append(verdict)
        return {group: tuple(members) for group, members in out.items()}


def plan_retention(
    exports: Iterable[Export], *, policy: Policy, now: datetime, holds: Holds | None = None
) -> RetentionPlan:
    """The verdict on every export (the module's rules and rails). ``now`` is the server's time (TOS's
    ``Date``): an export finished more than ``CLOCK_TOLERANCE`` after it is left untouched."""
    holds = holds or Holds()
    groups: dict[str, list[Export]] = {}
    for export in exports:
        groups.setdefault(export.group, []).append(export)
    verdicts: list[Verdict] = []
    for group in sorted(groups):
        members = sorted(groups[group], key=lambda e: (as_utc(e.finished_at), e.key), reverse=True)
        verdicts += _group_verdicts(group, members, policy, as_utc(now), holds)
    return RetentionPlan(tuple(verdicts), policy)


def _group_verdicts(
    group: str, members: list[Export], policy: Policy, now: datetime, holds: Holds
) -> list[Verdict]:
    counted: list[Export] = []
    left: dict[str, Verdict] = {}
    for export in members:
        why = _not_counted(export, now)
        if why is None:
            counted.append(export)
        else:
            left[export.key] = Verdict(export, "untouched", why)
    kept = _kept_by_rules(counted, policy)
    complete = [e for e in counted if not e.gone]
    if complete:
        kept.setdefault(complete[0].key, []).append(NEWEST)
    for export in complete[: policy.min_verified]:
        kept.setdefault(export.key, []).append(MIN_VERIFIED)
    for rank, export in enumerate(counted, start=1):
        rules = kept.get(export.key)
        if rules:
            left[export.key] = Verdict(export, "keep", "kept: " + ", ".join(rules), tuple(rules), rank)
        else:
            left[export.key] = _held_or_expired(group, export, rank, policy, holds)
    return [left[e.key] for e in members]


def _not_counted(export: Export, now: datetime) -> str | None:
    """Why an export is neither counted nor deleted, or None."""
    if not export.verified:
        return f"not verified (verification {export.verification}): never counted, never deleted"
    if export.foreign:
        return (
            f"its manifest lists {export.foreign[0][:120]!r}, not one of its export's own files: left as it is "
            "(only an export's own files are ever deleted)"
        )
    if as_utc(export.finished_at) > now + CLOCK_TOLERANCE:
        return (
            f"finished {_moment(export.finished_at)}, after TOS's now ({_moment(now)}): not counted, and left "
            "until that time has come"
        )
    return None


def _kept_by_rules(counted: list[Export], policy: Policy) -> dict[str, list[str]]:
    """Each export a rule keeps, with the rules that keep it (``counted`` newest first)."""
    kept: dict[str, list[str]] = {}
    for n, export in enumerate(counted[: policy.keep_last], start=1):
        kept.setdefault(export.key, []).append(f"last {n}")
    calendar: tuple[tuple[int, str, Callable[[datetime], str]], ...] = (
        (policy.keep_daily, "daily", lambda at: f"{at:%Y-%m-%d}"),
        (policy.keep_weekly, "weekly", _iso_week),
        (policy.keep_monthly, "monthly", lambda at: f"{at:%Y-%m}"),
    )
    for count, name, period_of in calendar:
        periods: list[str] = []
        for export in counted:
            period = period_of(as_utc(export.finished_at))
            if periods and periods[-1] == period:
                continue  # an older export of a period already kept
            if len(periods) == count:
                break
            periods.append(period)
            kept.setdefault(export.key, []).append(f"{name} {period}")
    return kept


def _iso_week(at: datetime) -> str:
    year, week, _ = at.isocalendar()
    return f"{year}-W{week:02d}"


def _held_or_expired(group: str, export: Export, rank: int, policy: Policy, holds: Holds) -> Verdict:
    """An export no rule keeps: expired, unless something outside the rules holds it."""
    reason = f"group {group}: {ordinal(rank)} newest; {policy.describe()}"
    if export.gone:
        reason += (
            f"; its files are already gone ({len(export.gone)} of {len(export.objects)}): only its manifest is left"
            if len(export.gone) == len(export.objects)
            else f"; {len(export.gone)} of its {len(export.objects)} files are already gone"
        )
    if export.image_id in holds.pinned:
        return Verdict(export, "keep", "kept: its source image carries image-exporter:keep", (PINNED,), rank)
    held = _held_by(group, export, holds)
    if held is not None:
        return Verdict(export, "untouched", f"would expire ({reason}), but {held}", rank=rank, held_by=held)
    return Verdict(export, "expire", reason, rank=rank)


def _held_by(group: str, export: Export, holds: Holds) -> str | None:
    if export.image_id in holds.exporting:
        return "its image is being exported again (the new export writes the same files)"
    exporting = holds.in_flight.get(group)
    if exporting is not None:
        return (
            f"group {group} has an export in flight ({exporting}): nothing in it is deleted until that ends"
        )
    if export.image_id in holds.importing:
        return "an import from it (a restore or a drill) is in flight"
    return None


def carries_keep_tag(tags: Iterable[tuple[str, str]]) -> bool:
    """Whether an image's tags (as DescribeImages lists them) pin its export: ``image-exporter:keep`` with any
    value, the key compared as every tag of ours is (without case and surrounding spaces)."""
    return any(key.strip().lower() == KEEP_KEY for key, _ in tags)


def clock_refusal(server_time: datetime | None, local_time: datetime | None) -> str | None:
    """Why nothing may be deleted by the clocks (TOS's ``Date`` against the local clock's reading when that
    answer came), or None when they agree within ``CLOCK_TOLERANCE``."""
    if server_time is None or local_time is None:
        return "TOS's answer carried no Date, so the exports' ages cannot be read from the server's clock"
    skew = as_utc(server_time) - as_utc(local_time)
    if abs(skew) <= CLOCK_TOLERANCE:
        return None
    which = "ahead of" if skew > timedelta(0) else "behind"
    return (
        f"TOS's Date ({_moment(server_time)}) is {_span(abs(skew))} {which} the local clock, more than "
        f"{_span(CLOCK_TOLERANCE)}: nothing is deleted until the clocks agree (sync the function's clock, or "
        "check that TOS_ENDPOINT is TOS)"
    )


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ``11th``, ``21st``, ``112th``."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _moment(at: datetime) -> str:
    return f"{as_utc(at):%Y-%m-%dT%H:%M:%SZ}"


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"
