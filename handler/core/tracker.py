"""One invocation's writes to the tracking tags: the exports it starts, tagged as it goes; the claims it
takes before reporting an export's end or starting one under the cap; the retags after reporting.

Every write that changes what another copy decided from is conditional: the images are read again first
(one DescribeImages by ids a batch) and only those whose tags still say what this invocation saw are
changed; TagResources itself has no condition, so the window left is one request long. The rules of claims
are ``handler.core.claims``'s; this module makes the requests, through the ``TrackingApi`` protocol.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from handler.clock import Clock
from handler.core.apis import EcsApi, TrackingApi
from handler.core.claims import (
    CLAIM_KEY,
    NO_CLAIM,
    Claim,
    claim_lasts,
    claim_of,
    first_report,
    granted_starts,
    holds,
    millis,
)
from handler.core.export_flow import TAG_SCAN_CAP
from handler.core.start_records import StartRecorder
from handler.core.tracking import (
    DEST_KEY,
    STATE_KEY,
    TRANSITIONS,
    UNSEEN_KEY,
    Destination,
    TrackingState,
    latest_export_tasks,
    state_tags,
    tracking_of,
)
from handler.errors import BudgetExhausted, ClaimTooSlow, ExporterError
from handler.models.api import Image

__all__ = ["EXPORTING_FILTER", "Retag", "Tracker", "group_by_tags", "list_exporting"]

_log = structlog.get_logger("handler.tracking")

EXPORTING_FILTER = {STATE_KEY: "exporting"}
# Started exports are tagged in batches: as soon as this many wait, or the oldest has waited this long.
TAG_BATCH = 50
TAG_WAIT_SECONDS = 2.0
# Report claims are read and written this many images at a time (one DescribeImages by ids, two
# TagResources): each chunk's read and write stay well within half the settle time at the default request
# rate, however many exports finished; all of them are read back after one settle time.
CLAIM_CHUNK = 100


@dataclass(frozen=True, slots=True)
class Retag:
    """A finished export's next state, set after its outcome is reported, while ``claim`` is still its own."""

    image_id: str
    state: TrackingState
    claim: Claim | None  # None: reported without a claim (the API would not take one)


@dataclass(frozen=True, slots=True)
class ReportClaim:
    """A finished export this invocation wants to report: the image, its destination and the id of the task
    decided on (the task itself is not kept: a follow-up claims tens of thousands)."""

    image_id: str
    dest: Destination
    task_id: str | None


class Tracker:
    """The tracking writes of one invocation by ``holder`` (its request or event id). ``settle`` is the wait
    between writing claims and reading them back; ``ends_at`` the monotonic time the invocation is over by
    (its claims hold that long, and a margin); ``records`` writes a start record of each batch tagged
    ``exporting`` (None: none is written)."""

    def __init__(
        self,
        api: TrackingApi,
        dest: Destination,
        *,
        holder: str,
        clock: Clock,
        settle: float,
        ends_at: float,
        deadline: float,
        records: StartRecorder | None = None,
    ) -> None:
        self.api = api
        self.records = records
        self.dest = dest
        self.holder = holder
        self.clock = clock
        self.settle = settle
        self.ends_at = ends_at
        self.deadline = deadline
        self._lock = threading.Lock()
        self._waiting: list[str] = []
        self._waiting_since: float | None = None
        self.untracked: dict[str, ExporterError] = {}
        self._starts: dict[str, Claim] = {}  # the start claims granted to this invocation
        self._failed: dict[str, ExporterError] = {}  # report claims a transient failure stopped

    def _lasts(self) -> float:
        return claim_lasts(self.ends_at - self.clock.monotonic())

    # -- exports started: tagged as they go ------------------------------------------------------------

    def started(self, image_id: str, *, task_id: str | None = None, image: Image | None = None) -> None:
        """An export of the image started (or was found under way and is adopted): tag it ``exporting`` soon,
        with the next ones; the batch goes out when it is full or its oldest has waited ``TAG_WAIT_SECONDS``.
        ``task_id`` and ``image`` (as the flow's DescribeImages gave it) go into the batch's start record."""
        if self.records is not None:
            self.records.note(image_id, task_id, image)
        with self._lock:
            self._waiting.append(image_id)
            if self._waiting_since is None:
                self._waiting_since = self.clock.monotonic()
            due = len(self._waiting) >= TAG_BATCH or (
                self.clock.monotonic() - self._waiting_since >= TAG_WAIT_SECONDS
            )
            batch = self._take() if due else []
        self._tag_exporting(batch)

    def flush(self) -> None:
        """Tag every export still waiting."""
        with self._lock:
            batch = self._take()
        self._tag_exporting(batch)

    def _take(self) -> list[str]:
        batch, self._waiting, self._waiting_since = self._waiting, [], None
        return batch

    def _tag_exporting(self, image_ids: Sequence[str]) -> None:
        if not image_ids:
            return
        tags = state_tags(TRANSITIONS[None, "started"], self.dest) | {CLAIM_KEY: NO_CLAIM}
        failed = _tag(self.api, image_ids, tags, deadline=self.deadline)
        if failed:
            with self._lock:
                self.untracked.update(failed)
            _log.warning(
                "tracking.untracked",
                image_ids=sorted(failed),
                errors=sorted({e.code for e in failed.values()}),
            )
        if self.records is not None:
            self.records.write([i for i in image_ids if i not in failed])

    # -- start claims: the in-flight cap across copies -----------------------------------------------

    def reserve(self, image_ids: Sequence[str], *, cap: int, finished: Iterable[str]) -> frozenset[str]:
        """Claim these images for export under ``cap`` and return those granted (see
        ``handler.core.claims``); the others are released again. Any failure grants nothing."""
        if not image_ids:
            return frozenset()
        claim = Claim.new("start", self.holder, now=self.clock.now(), lasts=self._lasts())
        tags = state_tags("exporting", self.dest) | {CLAIM_KEY: claim.value}
        failed = _tag(self.api, image_ids, tags, deadline=self.deadline)
        written = [i for i in image_ids if i not in failed]
        if failed:
            _log.warning("tracking.claim_failed", image_ids=sorted(failed), kind="start")
        if not written:
            return frozenset()
        try:
            self._wait_settle()
            listed = list_exporting(self.api, deadline=self.deadline)
        except ExporterError as error:
            _log.warning("tracking.claim_failed", image_ids=written, kind="start", error=error.code)
            self.release(written, claim)
            return frozenset()
        mine = {image.image_id for image in listed if holds(image, claim)}
        granted = granted_starts(listed, cap=cap, finished=finished, now=self.clock.now()) & mine
        refused = [i for i in written if i not in granted]
        if refused:
            _log.info("tracking.claims_yielded", image_ids=refused, cap=cap)
            self.release([i for i in refused if i in mine], claim)
        with self._lock:
            self._starts.update(dict.fromkeys(granted, claim))
        return frozenset(granted)

    def note_unseen(self, image_ids: Sequence[str]) -> None:
        """Record on each image that its export's object was not found now (``image-exporter:unseen``): a
        later run confirms it. A record that fails is logged; the export stays deferred and is noted again."""
        if not image_ids:
            return
        tags = {UNSEEN_KEY: str(millis(self.clock.now()))}
        for image_id, error in _tag(self.api, image_ids, tags, deadline=self.deadline).items():
            _log.warning(
                "tracking.unseen_not_noted", image_id=image_id, error=error.code, message=error.message
            )

    def release_start(self, image_id: str) -> None:
        """The image was claimed to start and granted, but not exported (refused, deferred): release it."""
        with self._lock:
            claim = self._starts.pop(image_id, None)
        if claim is not None:
            self.release([image_id], claim)

    def release(self, image_ids: Sequence[str], claim: Claim | None = None) -> None:
        """Remove the tracking tags of images whose start claim (``claim``, or any start claim that has
        expired when None) is still on them: they were not exported after all."""
        if not image_ids:
            return
        try:
            now_tags = _by_id(self.api.describe_images(deadline=self.deadline, image_ids=image_ids))
        except ExporterError as error:
            _log.warning("tracking.release_failed", image_ids=list(image_ids), error=error.code)
            return
        now = self.clock.now()
        free: list[str] = []
        for image_id in image_ids:
            image = now_tags.get(image_id)
            if image is None:
                continue
            held = claim_of(image)
            if claim is not None and held != claim:
                continue
            if claim is None and (held is None or held.kind != "start" or held.fresh(now)):
                continue
            free.append(image_id)
        if not free:
            return
        try:
            report = self.api.untag_images(free, (STATE_KEY, DEST_KEY, CLAIM_KEY), deadline=self.deadline)
        except ExporterError as error:
            _log.warning("tracking.release_failed", image_ids=free, error=error.code)
            return
        if report.failures:
            _log.warning("tracking.release_failed", image_ids=list(report.failed_ids))
        if report.done:
            _log.info("tracking.released", image_ids=list(report.done))

    def _wait_settle(self) -> None:
        if self.clock.monotonic() + self.settle > self.deadline:
            msg = "no time left to wait for the claims to settle"
            raise BudgetExhausted(msg)
        self.clock.sleep(self.settle)

    # -- report claims: each finished export reported once ---------------------------------------------

    def claim_reports(
        self, wanted: Sequence[ReportClaim]
    ) -> tuple[dict[str, Claim | None], dict[str, ExporterError]]:
        """Claim the finished exports for reporting; the images this invocation may report, with their
        claims. An image that moved on meanwhile (another state, another destination, a newer export task),
        or that another copy holds, is left out and logged. An image whose claim the API refuses for good
        (no permission to tag, too many tags) is reported without one (``None``): no copy can claim it, and a
        report twice beats none. A transient failure holds nothing: returned apart, with the error (the
        follow-up defers those images), and a later run reports them."""
        if not wanted:
            return {}, {}
        self._failed = {}
        claims: dict[str, Claim] = {}
        unclaimable: dict[str, Claim | None] = {}
        for start in range(0, len(wanted), CLAIM_CHUNK):
            began = self.clock.monotonic()
            written, refused = self._write_report_claims(wanted[start : start + CLAIM_CHUNK])
            unclaimable |= refused
            took = self.clock.monotonic() - began
            if written and took > self.settle / 2:
                # Read and written too far apart: another copy's claim may have landed in between unseen.
                _log.warning("tracking.claims_too_slow", image_ids=sorted(written), seconds=round(took, 3))
                slow = ClaimTooSlow(
                    f"the claims were written {took:.1f} s after the tags were read (more than half the "
                    f"{self.settle:g} s settle time)"
                )
                self._failed.update(dict.fromkeys(written, slow))
                continue
            claims |= written
        if not claims:
            return unclaimable, self._failed
        decided = {w.image_id: w.task_id for w in wanted}
        return unclaimable | self._confirm(claims, decided), self._failed

    def _write_report_claims(
        self, wanted: Sequence[ReportClaim]
    ) -> tuple[dict[str, Claim], dict[str, Claim | None]]:
        """Read the images' tags again and write a report claim on each still to be reported by this
        invocation: the claims written, and the images the API refused a claim for good."""
        ids = [w.image_id for w in wanted]
        try:
            before = _by_id(self.api.describe_images(deadline=self.deadline, image_ids=ids))
        except ExporterError as error:
            _log.warning("tracking.claim_failed", image_ids=ids, kind="report", error=error.code)
            self._failed.update(dict.fromkeys(ids, error))
            return {}, {}
        now = self.clock.now()
        claims: dict[str, Claim] = {}
        for item in wanted:
            claim = self._report_claim(item, before.get(item.image_id), now)
            if claim is not None:
                claims[item.image_id] = claim
        unclaimable: dict[str, Claim | None] = {}
        for tags, group in group_by_tags((i, {CLAIM_KEY: c.value}) for i, c in claims.items()):
            for image_id, refusal in _tag(self.api, group, tags, deadline=self.deadline).items():
                claims.pop(image_id, None)
                _log.warning("tracking.claim_failed", image_id=image_id, kind="report", error=refusal.code)
                if not refusal.retryable:
                    unclaimable[image_id] = None
                else:
                    self._failed[image_id] = refusal
        return claims, unclaimable

    def _confirm(
        self, claims: dict[str, Claim], decided: Mapping[str, str | None]
    ) -> dict[str, Claim | None]:
        """After the settle time, the claims still on their images whose latest export task is still the one
        decided on; read back ``CLAIM_CHUNK`` images at a time, so that only a chunk is held at once."""
        try:
            self._wait_settle()
        except ExporterError as error:
            _log.warning("tracking.claim_failed", image_ids=sorted(claims), kind="report", error=error.code)
            self._failed.update(dict.fromkeys(claims, error))
            return {}
        held: dict[str, Claim | None] = {}
        ids = list(claims)
        for start in range(0, len(ids), CLAIM_CHUNK):
            chunk = ids[start : start + CLAIM_CHUNK]
            try:
                after = _by_id(self.api.describe_images(deadline=self.deadline, image_ids=chunk))
                newest = latest_export_tasks(
                    self.api.describe_tasks(deadline=self.deadline, resource_ids=chunk)
                )
            except ExporterError as error:
                _log.warning("tracking.claim_failed", image_ids=chunk, kind="report", error=error.code)
                self._failed.update(dict.fromkeys(chunk, error))
                continue
            for image_id in chunk:
                claim, image, task_id = claims[image_id], after.get(image_id), decided[image_id]
                latest = newest.get(image_id)
                same_task = (latest.task_id if latest else None) == task_id
                if image is not None and holds(image, claim) and same_task:
                    held[image_id] = claim
                else:
                    _log.info("tracking.claim_lost", image_id=image_id, kind="report")
        return held

    def _report_claim(self, item: ReportClaim, image: Image | None, now: datetime) -> Claim | None:
        if image is None:
            _log.info("tracking.moved_on", image_id=item.image_id, why="the image is no longer listed")
            return None
        tracking = tracking_of(image)
        if tracking.state != "exporting" or tracking.dest not in (None, item.dest):
            _log.info("tracking.moved_on", image_id=item.image_id, state=tracking.state)
            return None
        held = claim_of(image)
        if held is not None and held.fresh(now) and held.holder != self.holder:
            _log.info("tracking.claimed_elsewhere", image_id=item.image_id, kind=held.kind)
            return None
        lasts = self._lasts()
        if held is None:
            return first_report(now=now, lasts=lasts, holder=self.holder)
        return held.renewed(now=now, lasts=lasts, holder=self.holder)

    # -- retags after reporting -------------------------------------------------------------------------

    def retag(self, retags: Sequence[Retag], *, deadline: float) -> None:
        """Tag each reported export with its next state, where the image still carries this invocation's
        claim and is still ``exporting``; one that moved on (re-exported meanwhile, claimed by another copy)
        is left alone and logged. An image not retagged is reported again by a later run."""
        if not retags:
            return
        ids = [r.image_id for r in retags]
        try:
            now_tags = _by_id(self.api.describe_images(deadline=deadline, image_ids=ids))
        except ExporterError as error:
            _log.warning("tracking.retag_failed", image_ids=ids, error=error.code)
            return
        ready: list[tuple[str, Mapping[str, str]]] = []
        now = self.clock.now()
        for retag in retags:
            image = now_tags.get(retag.image_id)
            if image is None or not self._still_mine(image, retag.claim, now):
                _log.info("tracking.moved_on", image_id=retag.image_id, wanted=retag.state)
                continue
            tags = state_tags(retag.state)
            ready.append((retag.image_id, tags | {CLAIM_KEY: NO_CLAIM} if retag.claim else tags))
        claims = {r.image_id: r.claim for r in retags}
        for tags, group in group_by_tags(ready):
            failed = _tag(self.api, group, tags, deadline=deadline)
            if failed:
                _log.warning(
                    "tracking.retag_failed",
                    image_ids=sorted(failed),
                    error=sorted({e.code for e in failed.values()}),
                )
                self._give_up({i: claims[i] for i in failed}, deadline=deadline)
            done = [i for i in group if i not in failed]
            if done:
                _log.info("tracking.retagged", image_ids=done, state=tags[STATE_KEY])

    def _give_up(self, claims: Mapping[str, Claim | None], *, deadline: float) -> None:
        """Give up the report claims of images whose retag failed, so that the next run reports them again
        at once rather than after this invocation's claims run out (each claim keeps its count)."""
        now = self.clock.now()
        ended = [(i, {CLAIM_KEY: c.ended(now).value}) for i, c in claims.items() if c is not None]
        for tags, group in group_by_tags(ended):
            if failed := _tag(self.api, group, tags, deadline=deadline):
                _log.info("tracking.claim_kept", image_ids=sorted(failed))

    def _still_mine(self, image: Image, claim: Claim | None, now: datetime) -> bool:
        """Whether the image is still ``exporting`` under this invocation's claim (or, reported without one,
        under nobody else's)."""
        if tracking_of(image).state != "exporting":
            return False
        if claim is not None:
            return holds(image, claim)
        other = claim_of(image)
        return other is None or not other.fresh(now) or other.holder == self.holder


def list_exporting(api: EcsApi, *, deadline: float) -> list[Image]:
    """Every image tagged ``exporting``: a tag search, or, when it lists the 1,000 images a tag search lists at
    most, every image with those tagged ``exporting`` kept here, so that none is missed."""
    found = list(api.describe_images(deadline=deadline, tag_filters=EXPORTING_FILTER))
    if len(found) >= TAG_SCAN_CAP:
        found = [i for i in api.describe_images(deadline=deadline) if tracking_of(i).state == "exporting"]
    return found


def group_by_tags(
    wanted: Iterable[tuple[str, Mapping[str, str]]],
) -> list[tuple[dict[str, str], tuple[str, ...]]]:
    """Images that get the same tags, together (one TagResources request per group and 50 images), in the
    order each group first appears (tags compared whatever their order); an image named twice is tagged
    once, with its first tags."""
    groups: dict[frozenset[tuple[str, str]], tuple[dict[str, str], list[str]]] = {}
    seen: set[str] = set()
    for image_id, tags in wanted:
        if image_id in seen:
            continue
        seen.add(image_id)
        groups.setdefault(frozenset(tags.items()), (dict(tags), []))[1].append(image_id)
    return [(tags, tuple(ids)) for tags, ids in groups.values()]


def _tag(
    api: TrackingApi, image_ids: Sequence[str], tags: Mapping[str, str], *, deadline: float
) -> dict[str, ExporterError]:
    """Tag the images; the ones left untagged, each with why."""
    try:
        report = api.tag_images(image_ids, tags, deadline=deadline)
    except ExporterError as error:
        return dict.fromkeys(image_ids, error)
    return {i: failure.error for failure in report.failures for i in failure.image_ids}


def _by_id(images: Iterable[Image]) -> dict[str, Image]:
    return {image.image_id: image for image in images}
