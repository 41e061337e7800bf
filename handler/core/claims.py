"""Claims: how two copies of the function running at once share the tracked images without a database.

A claim is one more tag on the image, ``image-exporter:claim``, naming the invocation that holds it and
until when (docs/how-it-works.md, "Two copies at once"). There are two kinds:

- ``report``: this invocation is about to report how the export ended. Before reporting,
  the follow-up reads the images' tags again, writes its claim on those nobody else holds, waits the settle
  time and reads them once more: only the images still carrying its own claim are reported (and retagged).
  ``reports`` counts how often the export's end was claimed for reporting without the retag clearing the
  claim since (every retag, and every new export, writes ``none``), so a retag that keeps failing is not
  re-notified forever. Claims of a batch share one value, so they cost one TagResources request per 50.
- ``start``: under ``EXPORT_MAX_IN_FLIGHT``, an invocation tags the images it is about to export
  ``exporting`` with a start claim, waits the settle time and lists every image tagged ``exporting``: the
  exports in flight and every copy's start claims, in one order all copies compute alike. Only the claims
  that fit under the cap in that order are exported; the others are released (their tags removed).

The guarantee rests on two assumptions, checked where they can be: a tag written is read back by every
later DescribeImages within a quarter of the settle time, and the clocks of two copies agree within a
quarter of it (the claim's times are the writer's clock). A claim whose holder's invocation has ended
(``until`` is the holder's time budget plus a margin) is taken over.

This module is pure: values, parsing and the order of start claims. ``handler.core.follow_up`` and
``handler.core.export_flow`` make the requests.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from handler.models.api import Image

__all__ = [
    "CLAIM_KEY",
    "CLAIM_MARGIN_SECONDS",
    "DEFAULT_SETTLE_SECONDS",
    "NO_CLAIM",
    "REPORT_LIMIT",
    "TASK_CLOCK_SKEW_SECONDS",
    "Claim",
    "ClaimKind",
    "claim_lasts",
    "claim_of",
    "first_report",
    "granted_starts",
    "holds",
    "millis",
]

CLAIM_KEY = "image-exporter:claim"
# The claim tag's value when nobody holds the image: written with every ``exporting`` and every retag, so that
# a claim never outlives what it claimed.
NO_CLAIM = "none"
# EXPORT_CLAIM_SETTLE_SECONDS's default: how long a copy waits between writing its claims and reading them back.
DEFAULT_SETTLE_SECONDS = 2.0
# A claim outlives its holder's time budget by this much before another copy takes it over (the clocks of
# two copies agree far better than this).
CLAIM_MARGIN_SECONDS = 10.0
# A task created up to this long before a start claim's time may still be the export it led to (task times
# are the API's clock, the claim's the writer's).
TASK_CLOCK_SKEW_SECONDS = 60.0
# How often one export's end is reported while its state tag cannot be changed; once more it is reported as
# needing attention, then no more (each run logs it).
REPORT_LIMIT = 3
# No invocation runs longer than this (veFaaS allows 900 s): the longest budget a claim covers.
_LONGEST_BUDGET = 86400.0
# At most this many characters of the holder's id are kept in the value (tag values hold 256).
_HOLDER_CHARS = 100

ClaimKind = Literal["start", "report"]


def millis(moment: datetime) -> int:
    """A time as the claim writes it: milliseconds since the epoch (UTC)."""
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Claim:
    """One claim tag's value. ``since`` and ``until`` are the holder's clock, in milliseconds since the epoch.
    ``reports`` belongs to report claims: how often the export's end was claimed for reporting (this claim
    included)."""

    kind: ClaimKind
    holder: str
    since: int
    until: int
    reports: int = 0

    @classmethod
    def new(cls, kind: ClaimKind, holder: str, *, now: datetime, lasts: float, reports: int = 0) -> Claim:
        """A claim written now by ``holder`` that holds for ``lasts`` seconds."""
        since = millis(now)
        until = millis(now + timedelta(seconds=max(0.0, lasts)))
        name = "".join(c for c in holder if not c.isspace())[:_HOLDER_CHARS] or "-"
        return cls(
            kind, sys.intern(name), since, until, reports
        )  # one copy for a batch's thousands of claims

    @property
    def value(self) -> str:
        """The tag value: ``start <since> <until> <holder>`` or ``report <since> <until> <reports> <holder>``."""
        if self.kind == "start":
            return f"start {self.since} {self.until} {self.holder}"
        return f"report {self.since} {self.until} {self.reports} {self.holder}"

    @classmethod
    def parse(cls, value: str) -> Claim | None:
        """The claim a tag value holds; None for ``none`` and for anything this function never writes (a value
        edited by hand claims nothing)."""
        parts = value.split(" ")
        try:
            if parts[0] == "start" and len(parts) == 4:
                return cls("start", parts[3], int(parts[1]), int(parts[2]))
            if parts[0] == "report" and len(parts) == 5:
                return cls("report", parts[4], int(parts[1]), int(parts[2]), int(parts[3]))
        except ValueError:
            return None
        return None

    def fresh(self, now: datetime) -> bool:
        """Whether the claim still holds at ``now``: its holder may still be running."""
        return self.until > millis(now)

    def ended(self, now: datetime) -> Claim:
        """The same claim, given up at ``now``: it holds no more, and a report claim keeps its count."""
        return Claim(self.kind, self.holder, self.since, min(self.until, millis(now)), self.reports)

    def renewed(self, *, now: datetime, lasts: float, holder: str) -> Claim:
        """The report claim ``holder`` writes over this one: its count goes on from a report claim (the end was
        reported and the retag did not follow), and starts at 1 otherwise."""
        reports = self.reports + 1 if self.kind == "report" else 1
        return Claim.new("report", holder, now=now, lasts=lasts, reports=reports)


def claim_of(image: Image) -> Claim | None:
    """The claim an image's tags carry, or None."""
    value = dict(image.tags).get(CLAIM_KEY)
    return Claim.parse(value) if value is not None else None


def first_report(*, now: datetime, lasts: float, holder: str) -> Claim:
    """The report claim for an image whose tags carry no claim."""
    return Claim.new("report", holder, now=now, lasts=lasts, reports=1)


def granted_starts(
    listed: Iterable[Image], *, cap: int, finished: Iterable[str], now: datetime
) -> frozenset[str]:
    """The start claims that fit under ``cap``, as every copy computes them from the images tagged
    ``exporting`` (``listed``): the exports in flight come first (every image tagged ``exporting`` without a
    fresh start claim, less those this copy's follow-up found finished), then the fresh start claims in the
    order (since, holder, image id). Returns the ids of the images whose start claims are granted."""
    done = set(finished)
    in_flight = 0
    starts: list[tuple[int, str, str]] = []
    for image in listed:
        claim = claim_of(image)
        if claim is not None and claim.kind == "start" and claim.fresh(now):
            starts.append((claim.since, claim.holder, image.image_id))
        elif image.image_id not in done:
            in_flight += 1
    starts.sort()
    room = max(0, cap - in_flight)
    return frozenset(image_id for _, _, image_id in starts[:room])


def holds(image: Image, claim: Claim) -> bool:
    """Whether the image's tags carry exactly ``claim``."""
    return dict(image.tags).get(CLAIM_KEY) == claim.value


def claim_lasts(budget_left: float) -> float:
    """How long a claim written now holds: what is left of the writer's budget (at most a day), and the
    margin."""
    return min(max(0.0, budget_left), _LONGEST_BUDGET) + CLAIM_MARGIN_SECONDS
