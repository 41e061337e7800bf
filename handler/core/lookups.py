"""The just-in-time task look-ups that clear each image for export.

Two copies of the function may scan the same images at once (a sweep and the nightly scan). The task look-up
that clears an image for export is therefore at most ``ExportPlan.clearance_seconds`` old when its ExportImage
is sent: the images are walked in order and their tasks looked up just in time, a chunk at a time, each chunk
as large as the request rate (``ExportPlan.max_rps``) lets the flow export within the window; an image whose
look-up would still be too old by then (throttling, slow answers) is looked up again with the next ones. The
API's lock (``ResourceLocked`` while an export runs) covers the rest.

Pure bookkeeping: the export flow hands in the function that lists tasks and holds its own lock around every
call here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from handler.clock import Clock
from handler.core.dedupe import Dedupe, dedupe
from handler.core.plan import ExportPlan
from handler.errors import ExporterError
from handler.models.api import Task

__all__ = ["LOOKUP_BATCH", "Lookups"]

LOOKUP_BATCH = 100  # ids per DescribeTasks request
# The share of the clearance window a chunk of exports leaves unused, for the requests' own wait and answers.
_MARGIN = 0.1

TaskLister = Callable[[list[str]], Mapping[str, Iterable[Task]]]


class Lookups:
    """What the latest task look-up of each image found (or why it failed), how old it is, and how large the
    next look-up should be for the exports it clears to go out while it is young enough."""

    def __init__(
        self, list_tasks: TaskLister, plan: ExportPlan, clock: Clock, *, now: datetime, workers: int
    ) -> None:
        self._list_tasks = list_tasks
        self._plan = plan
        self._clock = clock
        self._now = now
        self._workers = max(1, workers)
        self._looked_at: dict[str, float] = {}  # image → when its latest task look-up was sent
        self._found: dict[str, Dedupe] = {}  # image → what that look-up found
        self._failed: dict[str, ExporterError] = {}  # image → why its look-up failed
        self._handouts: deque[float] = deque(maxlen=self._workers + 1)  # when the latest exports went out
        self._step = 1.0 / plan.max_rps  # the time between two requests, as recently seen

    def covers(self, image_id: str) -> bool:
        """Whether a look-up (found or failed) covers the image yet."""
        return image_id in self._found or image_id in self._failed

    def failure(self, image_id: str) -> ExporterError | None:
        """Why the image's latest look-up failed, or None."""
        return self._failed.get(image_id)

    def found(self, image_id: str) -> Dedupe:
        """What the image's latest look-up found (the image must be covered and not failed)."""
        return self._found[image_id]

    def chunk_size(self) -> int:
        """How many images one look-up clears: as many as the limiter lets the flow export within the
        clearance window less a tenth of it, after the look-up itself and the requests the other workers may
        have queued ahead of the last export (at 10 requests a second and 10 s: 89 with one worker, 86 with
        four). :meth:`stale` then finds none of them too old, at that rate."""
        usable = self._plan.clearance_seconds * (1 - _MARGIN) * self._plan.max_rps
        return max(1, min(LOOKUP_BATCH, int(usable + 1e-9) - self._workers))

    def look_up(self, image_ids: Iterable[str]) -> None:
        """Look up the tasks of these images (one request, or as many pages as the answer has). A look-up's
        age counts from when it was asked for; a failed one leaves each image with its error, so that nothing
        it covers is exported blind."""
        batch = list(dict.fromkeys(image_ids))
        looked_at = self._clock.monotonic()
        try:
            tasks = self._list_tasks(batch)
        except ExporterError as error:
            for image_id in batch:
                self._found.pop(image_id, None)
                self._failed[image_id] = error
            return
        for image_id in batch:
            self._failed.pop(image_id, None)
            self._looked_at[image_id] = looked_at
            self._found[image_id] = dedupe(
                tasks.get(image_id, ()), now=self._now, window_hours=self._plan.dedupe_hours
            )

    def stale(self, image_id: str) -> bool:
        """Whether an image still due would be sent on a look-up older than the window less half the margin:
        the workers' requests go first, each taking the time recently seen between two exports (at least the
        limiter's step)."""
        found = self._found.get(image_id)
        if found is None or found.task is not None:
            return False
        wait = self._workers * self._step
        return self.age(image_id) + wait > self._plan.clearance_seconds * (1 - _MARGIN / 2)

    def cleared_until(self, image_id: str) -> float:
        """Until when (a ``clock.monotonic()`` reading) the image's latest look-up clears its export: the
        moment it grows older than the clearance window (minus infinity: no look-up yet). For an image handed
        out it may be read without the flow's lock: no later look-up covers that image again."""
        return self._looked_at.get(image_id, float("-inf")) + self._plan.clearance_seconds

    def too_old(self, image_id: str) -> bool:
        """Whether the image's look-up is older than the clearance window: it cannot clear an export now."""
        return self.age(image_id) > self._plan.clearance_seconds

    def handed_out(self) -> None:
        """Note when an export was handed out: the pace is the mean gap over the last few (one per worker)."""
        self._handouts.append(self._clock.monotonic())
        if len(self._handouts) > 1:
            mean_gap = (self._handouts[-1] - self._handouts[0]) / (len(self._handouts) - 1)
            self._step = max(1.0 / self._plan.max_rps, mean_gap)

    def age(self, image_id: str) -> float:
        """Seconds since the image's latest successful look-up was asked for (infinite: none yet)."""
        return self._clock.monotonic() - self._looked_at.get(image_id, float("-inf"))
