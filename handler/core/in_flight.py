"""The in-flight cap (``EXPORT_MAX_IN_FLIGHT``): how many exports a run may still start, and what the images
beyond them are told. Pure: the follow-up counts the exports in flight, the export flow takes the slots."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from handler.models.results import ImageOutcome, Status

if TYPE_CHECKING:
    from handler.core.tracker import Tracker

__all__ = ["Slots", "Tracked", "free_slots"]


@dataclass(frozen=True, slots=True)
class Tracked:
    """How export tracking shapes a run (``EXPORT_TRACKING=tags``): a scan leaves out every image that carries
    a state tag, and new exports start only while fewer than ``cap`` are in flight (``in_flight``: tagged
    ``exporting`` after the follow-up; None when they could not be counted, which holds every export back).

    ``tracker`` tags the exports as they start, and under a cap claims them first across copies of the
    function (``finished``: the images the follow-up found finished, still tagged ``exporting``); ``adopt``:
    an untracked image found exporting, or exported, is tagged and followed up (scans)."""

    cap: int | None = None
    in_flight: int | None = 0
    tracker: Tracker | None = None
    finished: frozenset[str] = field(default_factory=frozenset)
    adopt: bool = False


def free_slots(cap: int | None, in_flight: int) -> int | None:
    """How many exports a run may still start: ``cap`` minus those in flight (tagged ``exporting`` after the
    follow-up, plus any started already in this run), never below 0; None when there is no cap."""
    if cap is None:
        return None
    return max(0, cap - max(0, in_flight))


class Slots:
    """The exports one run may still start, used up in order as due images are found. The due images beyond
    them are ``queued`` (a scan: a later run starts them) or ``deferred`` (named images: the trigger retries
    the event). Images found exported or running never take a slot. Not thread-safe: the flow holds its lock.
    """

    def __init__(self, tracked: Tracked | None, *, scan: bool) -> None:
        self._left: int | None = None  # None: no cap
        self._status: Status = "queued" if scan else "deferred"
        self._cap: int | None = None
        self._in_flight: int | None = None  # counted before this run, None: could not be counted
        self._taken = 0  # handed out by this run
        if tracked is None or tracked.cap is None:
            return
        self._cap, self._in_flight = tracked.cap, tracked.in_flight
        self._left = 0 if tracked.in_flight is None else free_slots(tracked.cap, tracked.in_flight)

    @property
    def _reason(self) -> str:
        """Why a due image is held back, with the count as it stands now (this run's starts included)."""
        if self._in_flight is None:
            why = "the exports in flight could not be counted"
        else:
            why = f"{self._in_flight + self._taken} export(s) in flight"
            if self._taken:
                why += f" ({self._taken} started by this run)"
        return f"EXPORT_MAX_IN_FLIGHT={self._cap} and {why}; a later run starts it"

    @property
    def exhausted(self) -> bool:
        """True when the cap allows no more exports in this run."""
        return self._left == 0

    @property
    def left(self) -> int | None:
        """How many exports this run may still start; None: no cap."""
        return self._left

    def close(self) -> None:
        """Other copies of the function hold the rest of the cap: no more exports in this run."""
        if self._left is not None:
            self._left = 0

    def take(self) -> None:
        """One export is handed out."""
        if self._left is not None:
            self._left -= 1
            self._taken += 1

    def held(self, image_id: str) -> ImageOutcome:
        """The outcome of a due image the cap holds back."""
        return ImageOutcome(image_id=image_id, status=self._status, reason=self._reason)

    def yielded(self, image_id: str, cap: int) -> ImageOutcome:
        """The outcome of a due image whose slot another copy of the function, running at the same time, took."""
        reason = (
            f"EXPORT_MAX_IN_FLIGHT={cap} and another copy of the function running at the same time took the "
            "last slot; a later run starts it"
        )
        return ImageOutcome(image_id=image_id, status=self._status, reason=reason)
