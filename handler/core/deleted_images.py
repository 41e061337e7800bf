"""Reporting the exports whose source image was deleted before a follow-up saw their end (docs/how-it-works.md,
"Images deleted after their export").

ECS refuses to delete an image while it is exported, so the usual case is an export that ended, then its image
deleted (to free the quota) before the next timer run: the image's tags went with it, and the tag search no
longer finds the export. The start records (``handler.core.start_records``) still name it. After the exports
tagged ``exporting``, a timer's follow-up:

1. reads the start records under its destination (the newest ``MAX_RECORDS``);
2. sorts their images: tagged ``exporting`` (the follow-up's own listing found it) or reported by this run's
   follow-up → the tags carry it; listed by DescribeImages by ids (100 a request) in another state → done;
   not listed → **gone**;
3. claims each record holding a gone image: its claim (the claim tag's value, ``handler.core.claims``) written
   beside it and read back after the settle time, then the record read again, so that two copies at once
   report each image once (the rules of docs/how-it-works.md, "Two copies at once");
4. looks up each gone image's latest ExportImage task (DescribeTasks by ResourceIds) and decides: Succeeded →
   its objects checked as usual (``check_export`` with the image as recorded, so the manifest holds its
   metadata) → ``exported``, noting the deletion, or ``export_failed`` (corrupt; missing once the task ended
   ``EXPORT_MISSING_CONFIRM_SECONDS`` ago); Failed → ``export_failed`` ``ExportTaskFailed``; no task listed, or
   one not ended → ``export_failed`` ``ImageDeleted`` with the task's last status;
5. :meth:`DeletedImages.settle`, once the outcomes are logged and notified: each record loses the images
   reported or done, and is deleted when none is left, then its claim. A crash (or a failure) before it
   reports them again, never not at all; the claim counts the reports, as the claim tag does.

No I/O of its own: the ECS and TOS calls go through the protocols.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

import structlog

from handler.clock import Clock, as_utc
from handler.core.apis import EcsApi, ObjectStore
from handler.core.claims import Claim, claim_lasts, first_report, millis
from handler.core.fan_out import fan_out
from handler.core.follow_up_rules import FollowUp, decide_follow_up
from handler.core.start_records import (
    RECORD_TYPE,
    ReadRecord,
    Records,
    fetch_record,
    read_claim,
    read_records,
    write_claim,
)
from handler.core.tracker import Tracker
from handler.core.tracking import MISSING_CONFIRM_SECONDS, Destination, latest_export_tasks, tracking_of
from handler.core.verification import STRUCTURE, ExportCheck, Stopped, Verify, check_export
from handler.errors import BudgetExhausted, ClaimTooSlow, ExporterError, ImageDeleted, ObjectNotFound
from handler.models.api import FINISHED_STATUSES, SUCCEEDED, Task
from handler.models.manifest import image_of
from handler.models.results import ErrorInfo, ImageOutcome
from handler.models.start_record import RecordedExport, StartRecord, claim_key

__all__ = ["DeletedImages", "Report", "Stop", "decide_deleted", "follow_up_deleted"]

_log = structlog.get_logger("handler.tracking")

Whereabouts = Literal["tracked", "done", "gone"]

EXPORTED_NOTE = (
    "the source image was deleted after its export; the manifest holds the image's metadata as recorded when "
    "the export started"
)
FAILED_NOTE = "the source image was deleted after its export started"


@dataclass(frozen=True, slots=True)
class Report:
    """A deleted image's outcome, and the claim it is reported under (None: the record would not take one)."""

    outcome: ImageOutcome
    claim: Claim | None


@dataclass(frozen=True, slots=True)
class Stop:
    """A deleted image whose report a failure stopped at ``step``: deferred, a later run reports it."""

    image_id: str
    task_id: str | None
    error: ExporterError
    step: str


@dataclass(frozen=True, slots=True)
class _Settle:
    """What becomes of one record once the outcomes are reported: the images in ``drop`` leave it, and it is
    deleted when none is left. ``held``: the record as this invocation read it under its claim (``claim``;
    None: reported without one); None: a record nobody reported from, rewritten only when no other copy holds
    a fresh claim on it (``claimed``: a claim object is beside it)."""

    key: str
    drop: frozenset[str]
    listed: frozenset[str]  # the images the record held when it was read
    held: StartRecord | None = None
    claim: Claim | None = None
    claimed: bool = False


@dataclass(frozen=True, slots=True)
class DeletedImages:
    """What the follow-up of deleted images found: the reports, the reports a failure stopped, and the
    records to rewrite or delete (and the claims to remove) by :meth:`settle`."""

    reports: tuple[Report, ...] = ()
    stopped: tuple[Stop, ...] = ()
    settles: tuple[_Settle, ...] = ()
    orphans: tuple[str, ...] = ()  # claims whose record is gone
    store: ObjectStore | None = None
    dest: Destination | None = None
    holder: str = ""
    clock: Clock | None = None

    def settle(self, *, deadline: float) -> None:
        """Take the reported and done images out of their records, deleting each record left empty, then the
        claims. A record another copy holds a fresh claim on is left to it; a failure is logged (its images
        are reported again by a later run, counted by the claim left in place, or taken out then)."""
        if self.store is None or self.dest is None or self.clock is None:
            return
        store, dest = self.store, self.dest
        for settle in self.settles:
            try:
                _settle_one(store, dest, settle, holder=self.holder, now=self.clock.now(), deadline=deadline)
            except ExporterError as error:
                _log.warning("deleted_images.settle_failed", key=settle.key, error=error.code)
        for key in self.orphans:
            try:
                store.delete_object(dest.bucket, key, deadline=deadline)
            except ExporterError as error:
                _log.warning("deleted_images.settle_failed", key=key, error=error.code)


def follow_up_deleted(
    api: EcsApi,
    store: ObjectStore,
    tracker: Tracker,
    *,
    exporting: frozenset[str],
    reported: frozenset[str],
    deadline: float,
    workers: int = 1,
    verify: Verify = STRUCTURE,
    missing_confirm: float = MISSING_CONFIRM_SECONDS,
) -> DeletedImages:
    """Report the recorded exports whose image is gone; see the module's steps. ``exporting``: the images the
    follow-up found tagged ``exporting``; ``reported``: those it reports this run. Everything is done by
    ``deadline`` (the follow-up's share of the budget): a pass with no time left reads nothing."""
    if tracker.clock.monotonic() >= deadline:
        _log.info("deleted_images.no_time")
        return DeletedImages()
    records = read_records(store, tracker.dest, deadline=deadline, workers=workers)
    if not records.read and not records.orphans:
        return DeletedImages()
    where = _whereabouts(api, records.read, exporting, reported, deadline=deadline)
    if where is None:
        return DeletedImages()
    run = _Pass(api, store, tracker, where, deadline, workers, verify, missing_confirm)
    return run.report(records)


def _ids(record: StartRecord) -> list[str]:
    return [e.image.id for e in record.exports]


def _whereabouts(
    api: EcsApi,
    records: tuple[ReadRecord, ...],
    exporting: frozenset[str],
    reported: frozenset[str],
    *,
    deadline: float,
) -> dict[str, Whereabouts] | None:
    """Where each recorded image is: tracked by its tags, done, or gone (DescribeImages by ids for those the
    follow-up did not find tagged ``exporting``); None when DescribeImages failed (logged: a later run looks)."""
    where: dict[str, Whereabouts] = {}
    for read in records:
        for image_id in _ids(read.record):
            where[image_id] = "done" if image_id in reported else "tracked"
    unknown = [i for i, w in where.items() if w == "tracked" and i not in exporting]
    if not unknown:
        return where
    try:
        found = {i.image_id: i for i in api.describe_images(deadline=deadline, image_ids=unknown)}
    except ExporterError as error:
        _log.warning("deleted_images.look_up_failed", image_ids=unknown[:100], error=error.code)
        return None
    for image_id in unknown:
        image = found.get(image_id)
        if image is None:
            where[image_id] = "gone"
        elif tracking_of(image).state != "exporting":
            where[image_id] = "done"  # its tags say how the export ended (or it was never exported)
    return where


@dataclass(slots=True)
class _Pass:
    """One follow-up of the deleted images, once it is known where each recorded image is."""

    api: EcsApi
    store: ObjectStore
    tracker: Tracker
    where: Mapping[str, Whereabouts]
    deadline: float
    workers: int
    verify: Verify
    confirm: float
    stopped: list[Stop] = field(default_factory=list)
    _orphans: list[str] = field(default_factory=list)  # claims this invocation wrote on records gone since

    def report(self, records: Records) -> DeletedImages:
        """Claim the records holding gone images, report those images, and say how each record settles."""
        settles: list[_Settle] = []
        to_claim: list[ReadRecord] = []
        for read in records.read:
            ids = _ids(read.record)
            if any(self.where[i] == "gone" for i in ids):
                to_claim.append(read)
            elif drop := frozenset(i for i in ids if self.where[i] == "done"):
                claimed = claim_key(read.key) in records.claims
                settles.append(_Settle(read.key, drop, frozenset(ids), claimed=claimed))
        held = self._claim(to_claim)
        reports, final = self._outcomes(held)
        for read, claim in held:
            ids = _ids(read.record)
            drop = frozenset(i for i in ids if self.where.get(i) == "done" or i in final)
            settles.append(_Settle(read.key, drop, frozenset(ids), held=read.record, claim=claim))
        return DeletedImages(
            reports=tuple(reports),
            stopped=tuple(self.stopped),
            settles=tuple(settles),
            orphans=(*records.orphans, *self._orphans),
            store=self.store,
            dest=self.tracker.dest,
            holder=self.tracker.holder,
            clock=self.tracker.clock,
        )

    def _stop(self, record: StartRecord, error: ExporterError, step: str) -> None:
        """The gone images of ``record`` could not be reported (``step`` failed on ``error``)."""
        self.stopped.extend(
            Stop(e.image.id, e.task_id, error, step)
            for e in record.exports
            if self.where.get(e.image.id) == "gone"
        )

    # -- claims: each deleted image reported once, also by two copies at once ----------------------------

    def _claim(self, records: list[ReadRecord]) -> list[tuple[ReadRecord, Claim | None]]:
        """Claim the records (:meth:`_write_claim`), then, after the settle time, read each claim back and,
        when it is still this invocation's, the record again (another copy may have reported and removed it).
        The records held, as read then, each with its claim (None: the store refused a claim for good, and the
        record is reported without one: no copy can claim it, and a report twice beats none)."""
        held: list[tuple[ReadRecord, Claim | None]] = []
        written: list[tuple[ReadRecord, Claim]] = []
        for read in records:
            claim = self._write_claim(read)
            if claim == "refused":
                held.append((read, None))
            elif claim is not None:
                written.append((read, claim))
        if not written:
            return held
        clock, settle, dest = self.tracker.clock, self.tracker.settle, self.tracker.dest
        if clock.monotonic() + settle > self.deadline:
            for read, _ in written:
                ran_out = BudgetExhausted("no time left to wait for the claims to settle")
                self._stop(read.record, ran_out, "claiming its end for reporting")
            return held
        clock.sleep(settle)
        for read, claim in written:
            try:
                if read_claim(self.store, dest, read.key, deadline=self.deadline) != claim:
                    _log.info("deleted_images.claim_lost", key=read.key)
                    continue
                record = fetch_record(self.store, dest, read.key, deadline=self.deadline)
            except ObjectNotFound:
                record = None  # reported and removed by another copy: this claim is left over, and goes
                self._orphans.append(claim_key(read.key))
            except ExporterError as error:
                self._stop(read.record, error, "reading its claim back")
                continue
            if record is not None:
                held.append((ReadRecord(read.key, record), claim))
        return held

    def _write_claim(self, read: ReadRecord) -> Claim | Literal["refused"] | None:
        """This invocation's claim, written beside the record; ``"refused"`` when the store refused it for
        good; None when the record is not this invocation's to report (another copy holds a fresh claim on
        it), or a failure stopped the claim (its gone images are stopped)."""
        tracker, clock = self.tracker, self.tracker.clock
        began = clock.monotonic()
        try:
            held = read_claim(self.store, tracker.dest, read.key, deadline=self.deadline)
        except ExporterError as error:
            self._stop(read.record, error, "reading the claim on its start record")
            return None
        now = clock.now()
        if held is not None and held.fresh(now) and held.holder != tracker.holder:
            _log.info("deleted_images.claimed_elsewhere", key=read.key)
            return None
        lasts = claim_lasts(tracker.ends_at - clock.monotonic())
        if held is None or held.kind != "report":
            claim = first_report(now=now, lasts=lasts, holder=tracker.holder)
        else:
            claim = held.renewed(now=now, lasts=lasts, holder=tracker.holder)
        try:
            write_claim(self.store, tracker.dest, read.key, claim, deadline=self.deadline)
        except ExporterError as error:
            if not error.retryable:
                _log.warning("deleted_images.claim_refused", key=read.key, error=error.code)
                return "refused"
            self._stop(read.record, error, "claiming its end for reporting")
            return None
        took = clock.monotonic() - began
        if took > tracker.settle / 2:
            # Read and written too far apart: another copy's claim may have landed in between unseen.
            _log.warning("deleted_images.claim_too_slow", key=read.key, seconds=round(took, 3))
            slow = ClaimTooSlow(
                f"the claim was written {took:.1f} s after the one before it was read (more than half the "
                f"{tracker.settle:g} s settle time)"
            )
            self._stop(read.record, slow, "claiming its end for reporting")
            return None
        return claim

    # -- the outcomes ----------------------------------------------------------------------------------

    def _outcomes(self, held: list[tuple[ReadRecord, Claim | None]]) -> tuple[list[Report], frozenset[str]]:
        """The reports of the gone images of the records held (an image in several records once, from the
        newest record), and the images whose report is final (they leave the records)."""
        gone: dict[str, tuple[RecordedExport, Claim | None]] = {}
        for read, claim in sorted(held, key=lambda h: h[0].key):
            for export in read.record.exports:
                if self.where.get(export.image.id) == "gone":
                    gone[export.image.id] = (export, claim)
        if not gone:
            return [], frozenset()
        try:
            tasks = latest_export_tasks(
                self.api.describe_tasks(deadline=self.deadline, resource_ids=list(gone))
            )
        except ExporterError as error:
            _log.warning("deleted_images.tasks_failed", image_ids=sorted(gone), error=error.code)
            step = "looking up the export task of its deleted image"
            self.stopped.extend(Stop(i, e.task_id, error, step) for i, (e, _) in gone.items())
            return [], frozenset()
        due = [(e, tasks[i]) for i, (e, _) in gone.items() if i in tasks and tasks[i].status == SUCCEEDED]
        checks = self._checks(due)
        reports: list[Report] = []
        final: set[str] = set()
        now = self.tracker.clock.now()
        for image_id, (export, claim) in gone.items():
            checked = checks.get(image_id)
            if isinstance(checked, Stopped):
                self.stopped.append(Stop(image_id, export.task_id, checked.error, checked.step))
                continue
            decided = decide_deleted(
                image_id,
                self.tracker.dest,
                tasks.get(image_id),
                checked,
                recorded_task=export.task_id,
                now=now,
                confirm=self.confirm,
            )
            if decided.outcome is not None:
                reports.append(Report(decided.outcome, claim))
            if decided.next_state is not None:
                final.add(image_id)
        _log.info("deleted_images.found", image_ids=sorted(gone), final=sorted(final))
        return reports, frozenset(final)

    def _checks(self, due: list[tuple[RecordedExport, Task]]) -> dict[str, ExportCheck]:
        """Each Succeeded export's objects checked and its manifest written, from the image as recorded."""
        dest, clock = self.tracker.dest, self.tracker.clock

        def check(item: tuple[RecordedExport, Task]) -> ExportCheck:
            export, task = item
            if clock.monotonic() >= self.deadline:
                ran_out = BudgetExhausted(
                    "the follow-up's share of the time budget ran out before this check"
                )
                return Stopped(f"checking tos://{dest.bucket}/{dest.object_key(export.image.id)}", ran_out)
            return check_export(
                self.store,
                image_of(export.image),
                task,
                bucket=dest.bucket,
                prefix=dest.prefix,
                region=self.verify.region,
                level=self.verify.level,
                deadline=self.deadline,
                now=clock.now,
            )

        answers = fan_out(check, due, workers=self.workers, name="check")
        return {export.image.id: answer for (export, _), answer in zip(due, answers, strict=True)}


def decide_deleted(
    image_id: str,
    dest: Destination,
    task: Task | None,
    check: ExportCheck | None,
    *,
    recorded_task: str | None,
    now: datetime,
    confirm: float = MISSING_CONFIRM_SECONDS,
) -> FollowUp:
    """The outcome of an export whose image is gone, from its latest export task (None: none listed) and, when
    the task Succeeded, the check of its objects. A task that ended is decided as any export's
    (``decide_follow_up``; a missing object is final once the task ended ``confirm`` seconds ago, there being no
    tag to hold a first sighting), with a note that the image was deleted; any other is ``ImageDeleted``."""
    if task is None or task.status not in FINISHED_STATUSES:
        return FollowUp(outcome=_image_deleted(image_id, dest, task, recorded_task), next_state="failed")
    ended = task.end_at or task.updated_at or task.created_at
    sighted = millis(as_utc(ended)) if ended is not None else None
    decided = decide_follow_up(image_id, dest, task, check, now=now, sighted=sighted, confirm=confirm)
    if decided.outcome is None:  # pragma: no cover - an ended task always has an outcome
        return decided
    note = EXPORTED_NOTE if decided.outcome.status == "exported" else FAILED_NOTE
    reason = decided.outcome.reason
    return replace(decided, outcome=replace(decided.outcome, reason=f"{note}; {reason}" if reason else note))


def _image_deleted(image_id: str, dest: Destination, task: Task | None, recorded: str | None) -> ImageOutcome:
    if task is None:
        last = (
            f"its last task status is unknown: DescribeTasks lists no export task of it any more (task "
            f"{recorded or 'unknown'} was recorded when it started)"
        )
    else:
        done = f", {task.progress}% done" if task.progress is not None else ""
        last = f"its last task status was {task.status or 'unknown'} (task {task.task_id}{done})"
    message = f"image {image_id} was deleted before its export was checked; {last}"
    return ImageOutcome(
        image_id=image_id,
        status="export_failed",
        task_id=task.task_id if task is not None else recorded,
        tos_bucket=dest.bucket,
        object_key=dest.object_key(image_id),
        error=ErrorInfo(code=ImageDeleted.code, message=message),
    )


def _settle_one(
    store: ObjectStore, dest: Destination, settle: _Settle, *, holder: str, now: datetime, deadline: float
) -> None:
    """One record's settle: rewritten without ``drop``, or deleted when nothing is left in it; then the claim
    beside it removed (this invocation's, or a stale one). A record nobody reported from is read again first,
    and left alone while another copy holds a fresh claim on it."""
    record = settle.held
    if record is None:
        if settle.claimed:
            held = read_claim(store, dest, settle.key, deadline=deadline)
            if held is not None and held.fresh(now) and held.holder != holder:
                return  # another copy is reporting from it: it settles it
        if not settle.listed <= settle.drop:
            try:
                record = fetch_record(store, dest, settle.key, deadline=deadline)
            except ObjectNotFound:
                return  # another copy settled it
            if record is None:
                return
    kept = () if record is None else tuple(e for e in record.exports if e.image.id not in settle.drop)
    if not kept:
        store.delete_object(dest.bucket, settle.key, deadline=deadline)
        _log.info("deleted_images.record_deleted", key=settle.key)
    elif record is not None and len(kept) < len(record.exports):
        body = record.model_copy(update={"exports": kept}).to_bytes()
        store.put_object(dest.bucket, settle.key, body, content_type=RECORD_TYPE, deadline=deadline)
        _log.info("deleted_images.record_rewritten", key=settle.key, left=len(kept))
    if settle.claim is not None or settle.claimed:
        store.delete_object(dest.bucket, claim_key(settle.key), deadline=deadline)
