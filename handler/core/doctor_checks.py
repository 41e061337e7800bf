"""The doctor's checks of the account (docs/doctor.md; the bucket's are ``handler.core.doctor_bucket``): each a
small function of what it examines and the moment it must be done by, returning one
:class:`~handler.models.results.DoctorCheck`. Against protocols: the signed clients (or the tests' emulated
account) are handed in as :class:`Subjects`.

These checks send only reads. A check that cannot run raises :class:`NotChecked` (a ``warn``); an error it
does not expect is raised as it is: the engine (``handler.core.doctor``) turns it into the check's ``fail``, so
one check's trouble never hides another's verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

from handler.clock import SYSTEM_CLOCK, Clock, as_utc
from handler.core.apis import DoctorApi, ObjectStore
from handler.core.restoring import DRILL_IMAGE_ROOM
from handler.core.retention_rules import CLOCK_TOLERANCE
from handler.core.selection import pick_scan_images
from handler.errors import (
    AccessDenied,
    AuthenticationFailed,
    ConfigurationError,
    ExporterError,
    NoCredentials,
    fix_for,
)
from handler.models.results import CheckStatus, DoctorCheck
from handler.models.settings import Settings

__all__ = [
    "CLOCK_FAIL",
    "CLOCK_WARN",
    "NotChecked",
    "Subjects",
    "WebhookReport",
    "check_clock",
    "check_credentials",
    "check_images",
    "check_restore_drill",
    "check_result",
    "check_retention",
    "check_webhook",
    "doctor_fix",
    "failed_check",
    "shown_key",
]

# The clocks may differ this much before the clock check warns; past CLOCK_FAIL it fails: retention then
# deletes nothing (handler.core.retention_rules), and past 15 minutes every signed request is refused.
CLOCK_WARN = timedelta(minutes=1)
CLOCK_FAIL = CLOCK_TOLERANCE
_DETAIL_CHARS = 400
_HALF_SECOND = timedelta(seconds=0.5)


class WebhookReport(Protocol):
    """What delivering the test message came to (``handler.adapters.webhooks.DeliveryReport``): nothing here is
    secret (``target`` is the redacted URL, the platform's text is scrubbed)."""

    @property
    def format(self) -> str: ...
    @property
    def delivered(self) -> bool: ...
    @property
    def status(self) -> int | None: ...
    @property
    def platform_code(self) -> str | None: ...
    @property
    def platform_message(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...


class NotChecked(Exception):
    """A check cannot run: something it needs is missing (the check that says why fails on its own). The
    engine reports it as a ``warn`` with ``detail`` and ``fix``."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


@dataclass(frozen=True, slots=True)
class Subjects:
    """What the checks examine: the settings (as the settings check read them), the signed clients (None when
    there are no credentials to sign with: ``unsigned`` says why), the access key (only its first characters
    are ever shown), the test message's sender (None: no ``WEBHOOK_URL``) and the clock."""

    settings: Settings
    api: DoctorApi | None
    store: ObjectStore | None
    access_key: str | None = None
    unsigned: ExporterError | None = None
    send_test: Callable[[float], WebhookReport | None] | None = None
    clock: Clock = SYSTEM_CLOCK

    def signed(self) -> tuple[DoctorApi, ObjectStore]:
        """The clients, or :class:`NotChecked` when there are none (no usable credentials)."""
        if self.api is None or self.store is None:
            why = self.unsigned.message if self.unsigned is not None else "no credentials"
            raise NotChecked(
                f"not checked: nothing to sign with ({why[:120]})", "fix the credentials check first"
            )
        return self.api, self.store

    def bucket(self) -> str:
        """``EXPORT_TOS_BUCKET``, or :class:`NotChecked` when it is not set."""
        if not self.settings.tos_bucket:
            raise NotChecked("not checked: EXPORT_TOS_BUCKET is not set", "fix the bucket check first")
        return self.settings.tos_bucket


def check_result(name: str, status: CheckStatus, detail: str, fix: str | None = None) -> DoctorCheck:
    """One check's verdict: the detail cut to ``_DETAIL_CHARS``, the fix kept for a warn or a fail only."""
    cut = detail if len(detail) <= _DETAIL_CHARS else detail[: _DETAIL_CHARS - 1] + "…"
    return DoctorCheck(name=name, status=status, detail=cut, fix=fix if status != "pass" else None)


def failed_check(name: str, error: ExporterError, doing: str, settings: Settings) -> DoctorCheck:
    """``name`` failed on ``error`` while ``doing``: the code and message (never a secret: the clients mask
    them), and the fix (:func:`doctor_fix`)."""
    return check_result(name, "fail", f"{doing}: {error.code}: {error.message}", doctor_fix(error, settings))


def doctor_fix(error: ExporterError, settings: Settings) -> str:
    """The table's fix for ``error``; a refused signature in a region ECS is not known to run in points at the
    region first (every signature's scope names it)."""
    fix = fix_for(error.code) or "the detail names the error; run the doctor again once it is fixed"
    if error.code == "SignatureDoesNotMatch" and not settings.region_known:
        return (
            f"check VOLCENGINE_REGION first ({settings.region} is not a region ECS is known to run in, and "
            f"every signature names its region); then {fix}"
        )
    return fix


def shown_key(access_key: str) -> str:
    """The access key as the doctor shows it: its first 4 characters (fewer for a key too short to spare them)."""
    return access_key[: min(4, len(access_key) // 2)] + "…"


# -- credentials and clock ---------------------------------------------------------------------------------


def check_credentials(subjects: Subjects, deadline: float) -> DoctorCheck:
    """A signed DescribeImages answers: the keys are accepted and may list images."""
    name = "credentials"
    if subjects.api is None:
        error = subjects.unsigned
        detail = str(error) if error is not None else "no credentials"
        return check_result(name, "fail", detail, _unsigned_fix(error))
    key = shown_key(subjects.access_key or "")
    region = subjects.settings.region
    probe = subjects.api.probe(deadline=deadline)
    error = probe.error
    if error is None:
        return check_result(
            name, "pass", f"a signed DescribeImages answered for the access key {key} in {region}"
        )
    if isinstance(error, AuthenticationFailed):
        doing = f"DescribeImages refused the access key {key}"
    elif isinstance(error, AccessDenied):
        doing = f"the access key {key} is valid but may not call DescribeImages"
    else:
        doing = f"DescribeImages failed for the access key {key}"
    return failed_check(name, error, doing, subjects.settings)


def _unsigned_fix(error: ExporterError | None) -> str:
    """What to do when there is nothing to sign with: set the keys, or fix the variable or file named."""
    if error is None or isinstance(error, NoCredentials):
        return (
            "set VOLCENGINE_ACCESS_KEY and VOLCENGINE_SECRET_KEY (in the function: give it its IAM role, "
            "function.role in template.yaml)"
        )
    if isinstance(error, ConfigurationError) and error.source:
        return f"fix {error.source}"
    return fix_for(error.code) or "the detail says what is wrong with the credentials"


def _offset(server: datetime, local: datetime) -> timedelta:
    """How far the server's clock is ahead of the local one: a ``Date`` is cut to the second, so the server's
    time was half a second past it, on average."""
    return as_utc(server) + _HALF_SECOND - as_utc(local)


def _said(who: str, offset: timedelta) -> str:
    seconds = round(offset.total_seconds())
    if seconds == 0:
        return f"{who} Date agrees with this clock"
    return f"{who} Date is {abs(seconds)} s {'ahead of' if seconds > 0 else 'behind'} this clock"


def check_clock(subjects: Subjects, deadline: float) -> DoctorCheck:
    """The API's ``Date`` (a probe's: read even when the signature is refused) and TOS's (HeadBucket's, when a
    bucket is set) against the local clock: warn past ``CLOCK_WARN``, fail past ``CLOCK_FAIL``."""
    name = "clock"
    api, store = subjects.signed()
    offsets: dict[str, timedelta] = {}
    notes: list[str] = []
    probe = api.probe(deadline=deadline)
    if probe.server_time is not None:
        offsets["the API's"] = _offset(probe.server_time, probe.local_time)
    else:
        notes.append("the API's answer carried no Date")
    bucket = subjects.settings.tos_bucket
    if bucket:
        try:
            info = store.head_bucket(bucket, deadline=deadline)
        except ExporterError as error:
            notes.append(f"TOS's Date was not read (HeadBucket: {error.code})")
        else:
            if info.server_time is not None:
                offsets["TOS's"] = _offset(info.server_time, subjects.clock.now())
            else:
                notes.append("TOS's answer carried no Date")
    said = "; ".join([*(_said(who, offset) for who, offset in offsets.items()), *notes])
    if not offsets:
        fix = "check that VOLCENGINE_ENDPOINT and TOS_ENDPOINT name the real services"
        return check_result(name, "warn", f"the clocks could not be compared: {said}", fix)
    worst = max(abs(offset) for offset in offsets.values())
    if worst <= CLOCK_WARN:
        return check_result(name, "pass", said)
    status: CheckStatus = "fail" if worst > CLOCK_FAIL else "warn"
    return check_result(name, status, said, _clock_fix(offsets))


def _clock_fix(offsets: dict[str, timedelta]) -> str:
    """Who is likely wrong: this clock when every server disagrees with it, else the server that stands alone."""
    off = [who for who, offset in offsets.items() if abs(offset) > CLOCK_WARN]
    limits = (
        f"retention deletes nothing past {CLOCK_FAIL.total_seconds() / 60:g} minutes apart and signed requests "
        "fail past 15"
    )
    if len(off) == len(offsets):
        return f"sync this machine's clock (NTP): {limits}"
    if off == ["TOS's"]:
        return f"this clock agrees with the API's but not TOS's: check that TOS_ENDPOINT names TOS ({limits})"
    return f"this clock agrees with TOS's but not the API's: check VOLCENGINE_ENDPOINT ({limits})"


# -- the images --------------------------------------------------------------------------------------------


def check_images(subjects: Subjects, deadline: float) -> DoctorCheck:
    """How many private images a timer scan would consider now (the scan's own rules,
    ``handler.core.selection.pick_scan_images``, before its look-up of each image's tasks)."""
    name = "images"
    api, _ = subjects.signed()
    settings = subjects.settings
    images = list(api.describe_images(deadline=deadline, visibility="private"))
    picked = pick_scan_images(
        images,
        now=subjects.clock.now(),
        lookback_hours=settings.lookback_hours,
        skip_tracked=settings.tracking != "off",
    )
    if not images:
        detail = f"no private images in {settings.region}: a scan has nothing to export"
        fix = "if the images are in another region, set VOLCENGINE_REGION to it"
        return check_result(name, "warn", detail, fix)
    rules = f"available, created within EXPORT_LOOKBACK_HOURS={settings.lookback_hours:g}"
    if settings.tracking != "off":
        rules += ", not tracked as exporting, exported or failed"
    detail = (
        f"a scan now would consider {len(picked)} of the {len(images)} private images in {settings.region} "
        f"({rules}; images exported before are then skipped by their tasks)"
    )
    return check_result(name, "pass", detail)


# -- the webhook -------------------------------------------------------------------------------------------


def check_webhook(subjects: Subjects, deadline: float) -> DoctorCheck:
    """A signed test message delivered to ``WEBHOOK_URL`` and the platform's answer judged as a notice's is (a
    chat platform answers HTTP 200 with an error code for a bad signature or keyword: not delivered). The
    URL is shown as far as its host: its path or query may be the credential."""
    name = "webhook"
    url = subjects.settings.webhook_url or ""
    host = urlsplit(url).hostname or "the webhook"
    report = subjects.send_test(deadline) if subjects.send_test is not None else None
    if report is None:
        return check_result(
            name, "warn", "not checked: no WEBHOOK_URL", "set WEBHOOK_URL to check its receiver"
        )
    if report.delivered:
        status = f", HTTP {report.status}" if report.status is not None else ""
        return check_result(name, "pass", f"a test message reached {host} ({report.format}{status})")
    said = [f"HTTP {report.status}"] if report.status is not None else []
    if report.platform_code is not None:
        said.append(f"platform code {report.platform_code[:40]}")
    if report.platform_message:
        said.append(repr(report.platform_message[:120]))
    if report.reason and report.reason not in said:
        said.append(report.reason[:120])
    detail = f"{host} did not take the test message ({report.format}): {', '.join(said) or 'no answer'}"
    return check_result(name, "fail", detail, _webhook_fix(report))


_WEBHOOK_FIXES: dict[int, str] = {
    401: "check WEBHOOK_SECRET: the receiver refused the signature",
    403: "check WEBHOOK_SECRET: the receiver refused the signature",
    404: "check WEBHOOK_URL: the receiver has no such hook",
    410: "check WEBHOOK_URL: the receiver has no such hook",
    400: "check WEBHOOK_FORMAT: the receiver could not read the message",
    429: "the receiver is busy: run the doctor again later",
}


def _webhook_fix(report: WebhookReport) -> str:
    """What to do about an answer the delivery judged a failure."""
    status = report.status
    if status is None:
        return "check WEBHOOK_URL and the network access to its host"
    if 200 <= status < 300:
        return (
            "check WEBHOOK_SECRET against the bot's signing secret, and the bot's keyword and IP rules (the "
            "platform's code says which)"
        )
    if status >= 500:
        return "the receiver is failing: run the doctor again later"
    return _WEBHOOK_FIXES.get(status, "check WEBHOOK_URL, WEBHOOK_FORMAT and WEBHOOK_SECRET")


# -- the restore drill and retention (when enabled) --------------------------------------------------------


def check_restore_drill(subjects: Subjects, deadline: float) -> DoctorCheck:
    """``RESTORE_DRILL_DAYS``: timers drill only with the tags on, and only while the region holds fewer than
    ``DRILL_IMAGE_ROOM`` private images (a drill imports one more; ECS allows 50)."""
    name = "restore_drill"
    settings = subjects.settings
    if settings.tracking == "off":
        detail = "RESTORE_DRILL_DAYS is set but EXPORT_TRACKING is off: no timer run drills"
        return check_result(name, "warn", detail, "set EXPORT_TRACKING=tags, or unset RESTORE_DRILL_DAYS")
    api, _ = subjects.signed()
    private = 0
    for private, _ in enumerate(api.describe_images(deadline=deadline, visibility="private"), start=1):
        if private >= DRILL_IMAGE_ROOM:
            break
    if private >= DRILL_IMAGE_ROOM:
        detail = (
            f"{settings.region} holds {DRILL_IMAGE_ROOM} or more private images: no drill starts until it holds "
            f"fewer (ECS allows 50 custom images a region)"
        )
        return check_result(name, "warn", detail, "delete the custom images no longer needed")
    detail = (
        f"{private} private images in {settings.region}, below {DRILL_IMAGE_ROOM}: room for a drill image; "
        f"one export a group is imported back at most every {settings.drill_days} days"
    )
    return check_result(name, "pass", detail)


def check_retention(subjects: Subjects, deadline: float) -> DoctorCheck:
    """``RETENTION_MODE`` plan or apply: retention's plan on the bucket and prefix (``run_retention`` in plan
    mode: it reads the manifests and what holds exports, and deletes nothing), summed up."""
    from handler.core.retention import run_retention  # noqa: PLC0415 - retention only
    from handler.core.retention_rules import Policy  # noqa: PLC0415
    from handler.core.tracking import Destination  # noqa: PLC0415

    name = "retention"
    dest = Destination(subjects.bucket(), subjects.settings.tos_prefix)
    api, store = subjects.signed()
    settings = subjects.settings
    policy = Policy.of(settings)
    run = run_retention(
        api,
        store,
        dest=dest,
        group_by=settings.retention_group_by,
        policy=policy,
        mode="plan",
        max_deletes=settings.max_deletes,
        deadline=deadline,
        workers=settings.concurrency,
        clock=subjects.clock,
    )
    if run.plan is None:
        error = next((o.error for o in run.outcomes if o.error is not None), None)
        detail = run.refused or "retention could not read the exports"
        fix = (fix_for(error.code) if error is not None else None) or "the detail says why"
        return check_result(name, "fail", detail, fix)
    plan = run.plan
    going = plan.expiring
    size = sum(v.export.size_bytes for v in going) / 1024**3
    when = (
        f"the next timer run deletes them (at most RETENTION_MAX_DELETES={settings.max_deletes} a run)"
        if settings.retention_mode == "apply"
        else "RETENTION_MODE=plan only reports them"
    )
    summary = (
        f"tos://{dest.bucket}/{dest.prefix}: {len(plan.verdicts)} exports in {len(plan.groups())} groups by "
        f"{settings.retention_group_by} under {policy.describe()}; {len(going)} would go ({size:.1f} GiB)"
        + (f": {when}" if going else "")
    )
    if run.refused:
        return check_result(
            name, "warn", f"{summary}; nothing would be deleted now: {run.refused}", "the detail says why"
        )
    if run.problems:
        detail = f"{summary}; {len(run.problems)} manifest(s) cannot be read and are never deleted"
        return check_result(name, "warn", detail, "exporter-tools status names them: remove or rewrite them")
    return check_result(name, "pass", summary)
