"""The doctor's checks on the emulated account (in process, the function's own clients; docs/doctor.md): each
check's verdict on a good setup and on each misconfiguration, its fix, what it never shows, and the engine
that keeps the checks independent and within their time."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from exporter_tools.emulator.fleet import FleetBucket
from handler.adapters.signing import Credentials
from handler.adapters.webhooks import DeliveryReport
from handler.core.doctor import MAX_CHECK_SECONDS, SettingsReading, read_settings, run_doctor
from handler.core.doctor_bucket import probe_key
from handler.core.doctor_checks import Subjects
from handler.errors import BudgetExhausted, NoCredentials, fix_for
from handler.models.manifest import manifest_key
from handler.models.results import DoctorCheck
from tests.support.account import CREDENTIALS, Account
from tests.support.builders import ecs_client, fleet_image, manifest

SECRET = CREDENTIALS.secret_key
ENV = {
    "EXPORT_TOS_BUCKET": "b-1",
    "VOLCENGINE_ACCESS_KEY": CREDENTIALS.access_key,
    "VOLCENGINE_SECRET_KEY": SECRET,
}
FAR = 1e12
DISK = b"QFI\xfb" + b"\0" * 60
ORDER = ["settings", "credentials", "clock", "bucket", "bucket_access", "images"]


@pytest.fixture
def account() -> Account:
    """Two recent private images, one older than the lookback, and a public one; the bucket b-1."""
    return Account(
        [
            fleet_image("image-new1", hours_ago=2),
            fleet_image("image-new2", hours_ago=3),
            fleet_image("image-old1", hours_ago=100),
            fleet_image("image-pub1", visibility="public"),
        ]
    )


def subjects(account: Account, reading: SettingsReading, **changes: Any) -> Subjects:
    """The account's clients as the doctor's glue would give them, with ``changes``."""
    made = Subjects(
        settings=reading.settings,
        api=account.client,
        store=account.store_client,
        access_key=CREDENTIALS.access_key,
        clock=account.clock,
    )
    return dataclasses.replace(made, **changes)


def doctor(account: Account, env: dict[str, str] | None = None, **changes: Any) -> dict[str, DoctorCheck]:
    """Every check on ``account`` under ``env`` (default ``ENV``), by name, in order."""
    reading = read_settings(ENV if env is None else env)
    checks = run_doctor(
        reading, subjects(account, reading, **changes), deadline=account.clock.monotonic() + 60
    )
    return {check.name: check for check in checks}


def texts(checks: dict[str, DoctorCheck]) -> str:
    return json.dumps([dataclasses.asdict(check) for check in checks.values()], ensure_ascii=False)


# -- a good setup ----------------------------------------------------------------------------------------------


def test_on_a_good_setup_every_check_passes_in_order_without_a_fix(account: Account) -> None:
    """Settings, credentials, clock, bucket, bucket access and images, in that order, each ``pass`` with a
    detail and no fix; the feature checks (webhook, drill, retention) are left out while their feature is off."""
    checks = doctor(account)
    assert list(checks) == ORDER
    assert {check.status for check in checks.values()} == {"pass"}
    assert all(check.detail and check.fix is None for check in checks.values())
    assert "a scan now would consider 2 of the 3 private images in cn-beijing" in checks["images"].detail


def test_the_doctor_changes_nothing_but_its_probe_object(account: Account) -> None:
    """Only reads go to ECS; TOS gets one PutObject and one DeleteObject, of the probe object under the prefix,
    and the bucket holds nothing afterwards."""
    doctor(account, {**ENV, "RETENTION_MODE": "plan", "RESTORE_DRILL_DAYS": "7"})
    actions = set(account.emulator.stats()["requests"])
    assert actions == {"DescribeImages"}
    tos = account.emulator.stats()["tos"]["requests"]
    assert (tos["PUT 200"], tos["DELETE 204"]) == (1, 1)
    assert account.ecs.objects.present(account.clock.now()) == []


# -- settings ----------------------------------------------------------------------------------------------


def test_an_unknown_variable_is_a_warning_naming_the_likely_one() -> None:
    """A variable with one of the function's prefixes that it does not read is a warning: the detail names the
    likely variable, the fix says to rename it; one nothing resembles is to be removed."""
    reading = read_settings(
        {**ENV, "EXPORT_TOS_BUCKT": "b-2", "RESTORE_EVERYTHING": "yes", "OTHER_THING": "1"}
    )
    check = reading.check
    assert check.status == "warn"
    assert (
        "EXPORT_TOS_BUCKT is not a variable the function reads (did you mean EXPORT_TOS_BUCKET?)"
        in check.detail
    )
    assert check.fix == "rename EXPORT_TOS_BUCKT to EXPORT_TOS_BUCKET; remove RESTORE_EVERYTHING"
    assert "OTHER_THING" not in check.detail


def test_the_deployers_account_id_is_known_to_the_event_too() -> None:
    """VOLCENGINE_ACCOUNT_ID (template.yaml's role reads it) is set in the shells the README has deploy, the
    doctor and ``python -m handler invoke`` run from: no warning, wherever the settings check runs."""
    check = read_settings({**ENV, "VOLCENGINE_ACCOUNT_ID": "2100000000"}).check
    assert check.status == "pass"
    assert check.detail.startswith("3 variables set")


def test_a_bad_setting_fails_naming_it_and_the_other_checks_run_with_its_default(account: Account) -> None:
    """Each refused variable is named with what it expects; the settings read on without it (its default), so
    the other checks still run: the probe goes under the default prefix."""
    checks = doctor(account, {**ENV, "EXPORT_TOS_PREFIX": "bad_prefix!", "EXPORT_CONCURRENCY": "99"})
    settings = checks["settings"]
    assert settings.status == "fail"
    assert "EXPORT_TOS_PREFIX: expected 1-30 letters and digits, got 'bad_prefix!'" in settings.detail
    assert "EXPORT_CONCURRENCY: expected a whole number at least 1, at most 32" in settings.detail
    assert "the other checks ran with the defaults" in settings.detail
    assert settings.fix is not None
    assert "EXPORT_TOS_PREFIX" in settings.fix
    assert "EXPORT_CONCURRENCY" in settings.fix
    assert probe_key("imgexport") in checks["bucket_access"].detail
    assert checks["bucket_access"].status == "pass"


def test_settings_that_only_fail_together_are_named_and_left_out(account: Account) -> None:
    """Retention that keeps nothing by rule is refused naming RETENTION_KEEP_LAST, as the function refuses it;
    the doctor goes on with retention's default rules."""
    zero = {f"RETENTION_KEEP_{rule}": "0" for rule in ("LAST", "DAILY", "WEEKLY", "MONTHLY")}
    checks = doctor(account, {**ENV, **zero, "RETENTION_MODE": "plan"})
    assert checks["settings"].status == "fail"
    assert checks["settings"].detail.startswith("RETENTION_KEEP_LAST: expected at least one of")
    assert "keep_last=7" in checks["retention"].detail


def test_a_bad_secret_setting_is_named_never_shown() -> None:
    """WEBHOOK_SECRET's value never reaches the detail, nor a webhook URL's path."""
    reading = read_settings(
        {"WEBHOOK_SECRET": "whsec_%%%not-base64%%%", "WEBHOOK_URL": "http://hooks.example.com/t0ken"}
    )
    assert reading.check.status == "fail"
    assert "WEBHOOK_SECRET" in reading.check.detail
    assert "not-base64" not in reading.check.detail
    assert "t0ken" not in reading.check.detail


def test_a_region_ecs_is_not_known_in_is_a_warning() -> None:
    reading = read_settings({**ENV, "VOLCENGINE_REGION": "cn-atlantis"})
    assert reading.check.status == "warn"
    assert reading.check.fix == "check VOLCENGINE_REGION"


def test_the_settings_pass_says_what_was_read() -> None:
    check = read_settings(ENV).check
    assert check == DoctorCheck(
        name="settings",
        status="pass",
        detail="3 variables set, all valid (region cn-beijing, bucket b-1, prefix imgexport)",
    )


# -- credentials and clock -----------------------------------------------------------------------------------


def test_a_wrong_secret_key_fails_credentials_naming_four_characters_of_the_key(account: Account) -> None:
    """DescribeImages refuses the signature: the credentials check fails with the gateway's code and the
    table's fix; the access key shows its first 4 characters only, the secret nowhere."""
    wrong = Credentials(CREDENTIALS.access_key, "not-the-secret-key-0001")
    api = ecs_client(account.clock, wrong, endpoint=account.emulator.endpoint, attempts=1, http=account.http)
    checks = doctor(account, api=api)
    credentials = checks["credentials"]
    assert credentials.status == "fail"
    assert "SignatureDoesNotMatch" in credentials.detail
    assert f"access key {CREDENTIALS.access_key[:4]}…" in credentials.detail
    assert credentials.fix == fix_for("SignatureDoesNotMatch")
    assert CREDENTIALS.access_key[4:] not in texts(checks)
    assert "not-the-secret-key-0001" not in texts(checks)


def test_a_refused_signature_in_a_region_ecs_is_not_known_in_points_at_the_region_first(
    account: Account,
) -> None:
    """Every signature names its region: with VOLCENGINE_REGION not a known region, a SignatureDoesNotMatch's
    fix says to check the region before the secret key (the settings check warns about it too)."""
    wrong = Credentials(CREDENTIALS.access_key, "not-the-secret-key-0001")
    api = ecs_client(account.clock, wrong, endpoint=account.emulator.endpoint, attempts=1, http=account.http)
    checks = doctor(account, {**ENV, "VOLCENGINE_REGION": "cn-atlantis"}, api=api)
    assert checks["settings"].status == "warn"
    for name in ("credentials", "images"):
        fix = checks[name].fix
        assert fix is not None
        assert fix.startswith("check VOLCENGINE_REGION first (cn-atlantis is not a region ECS is known"), name
        assert fix.endswith(f"then {fix_for('SignatureDoesNotMatch')}"), name


def test_without_credentials_the_checks_that_sign_say_they_did_not_run(account: Account) -> None:
    """No credentials: the credentials check fails with the resolver's message; every check that needs a
    signature warns that it did not run, pointing at the credentials check; the settings check still passes."""
    missing = NoCredentials("no credentials found: set VOLCENGINE_ACCESS_KEY", source="VOLCENGINE_ACCESS_KEY")
    checks = doctor(account, api=None, store=None, access_key=None, unsigned=missing)
    assert checks["settings"].status == "pass"
    assert checks["credentials"].status == "fail"
    assert "no credentials found" in checks["credentials"].detail
    assert checks["credentials"].fix is not None
    assert checks["credentials"].fix.startswith("set VOLCENGINE_ACCESS_KEY and VOLCENGINE_SECRET_KEY")
    for name in ("clock", "bucket", "bucket_access", "images"):
        assert checks[name].status == "warn", name
        assert checks[name].detail.startswith("not checked: nothing to sign with"), name
        assert checks[name].fix == "fix the credentials check first"


@pytest.mark.parametrize(
    ("offset", "status"),
    [(0, "pass"), (45, "pass"), (120, "warn"), (-120, "warn"), (400, "fail")],
    ids=["same", "45s", "2min-ahead", "2min-behind", "400s"],
)
def test_the_clock_check_warns_past_a_minute_and_fails_past_five(
    account: Account, offset: int, status: str
) -> None:
    """TOS's Date against this clock: within a minute passes, past it warns, past 5 minutes (retention then
    deletes nothing) fails; the fix names TOS when only TOS's clock is off."""
    account.emulator.side_service.clock_offset = offset  # type: ignore[union-attr]
    clock = doctor(account)["clock"]
    assert clock.status == status
    if offset:
        said = re.search(r"TOS's Date is (\d+) s (ahead of|behind) this clock", clock.detail)
        assert said is not None
        assert abs(int(said[1]) - abs(offset)) <= 1  # a Date is cut to the second
        assert said[2] == ("ahead of" if offset > 0 else "behind")
    assert "the API's Date agrees with this clock" in clock.detail
    if status != "pass":
        assert clock.fix is not None
        assert "check that TOS_ENDPOINT names TOS" in clock.fix


# -- the bucket --------------------------------------------------------------------------------------------


def test_a_bucket_in_another_region_fails_naming_its_region() -> None:
    """HeadBucket says where the bucket is: another region than VOLCENGINE_REGION fails, naming both."""
    account = Account(buckets=(FleetBucket(name="b-1", region="cn-shanghai"),))
    bucket = doctor(account)["bucket"]
    assert bucket.status == "fail"
    assert bucket.detail.startswith("b-1 is in cn-shanghai, not in VOLCENGINE_REGION cn-beijing")
    assert bucket.fix is not None
    assert "VOLCENGINE_REGION=cn-shanghai" in bucket.fix


def test_a_missing_bucket_fails_with_the_tables_fix(account: Account) -> None:
    checks = doctor(account, {**ENV, "EXPORT_TOS_BUCKET": "no-such-bucket"})
    assert checks["bucket"].status == "fail"
    assert "NoSuchBucket" in checks["bucket"].detail
    assert checks["bucket"].fix == fix_for("NoSuchBucket")


def test_no_bucket_set_fails_the_bucket_check_and_skips_its_access(account: Account) -> None:
    checks = doctor(account, {k: v for k, v in ENV.items() if k != "EXPORT_TOS_BUCKET"})
    assert checks["bucket"].status == "fail"
    assert checks["bucket"].detail.startswith("EXPORT_TOS_BUCKET is not set")
    assert checks["bucket_access"].status == "warn"
    assert checks["bucket_access"].detail == "not checked: EXPORT_TOS_BUCKET is not set"


def test_a_read_only_bucket_fails_naming_the_write_and_delete_permissions(account: Account) -> None:
    """The role may list but not write: the write and the delete are refused, each named with its permission
    (tos:PutObject, tos:DeleteObject); the read is not tried on an object that was never written."""
    account.ecs.set_bucket_access("b-1", "read-only")
    access = doctor(account)["bucket_access"]
    assert access.status == "fail"
    assert access.detail == (
        f"tos://b-1/{probe_key('imgexport')}: list ✓, write refused (tos:PutObject), read not tried, "
        "delete refused (tos:DeleteObject)"
    )
    assert access.fix == "grant the function's role tos:PutObject and tos:DeleteObject on b-1 (IAM policy)"


def test_a_bucket_the_role_may_not_touch_refuses_every_step(account: Account) -> None:
    """No access at all: HeadBucket's 403 is a warning (the function never calls it), and every step of the
    probe is refused with its permission, tos:ListBucket first."""
    account.ecs.set_bucket_access("b-1", "none")
    checks = doctor(account)
    assert checks["bucket"].status == "warn"
    assert "the role may not call it, or the keys were refused" in checks["bucket"].detail
    assert checks["bucket"].fix == (
        "grant tos:HeadBucket to let the doctor read it (if the credentials check failed, fix it first)"
    )
    access = checks["bucket_access"]
    assert access.status == "fail"
    assert "list refused (tos:ListBucket), write refused (tos:PutObject)" in access.detail
    assert access.fix is not None
    assert access.fix.startswith(
        "grant the function's role tos:ListBucket and tos:PutObject and tos:DeleteObject"
    )


# -- images ------------------------------------------------------------------------------------------------


def test_images_a_scan_would_consider_follow_the_scans_rules(account: Account) -> None:
    """Only available private images within the lookback and not already tracked count, as the scan picks
    them; a longer EXPORT_LOOKBACK_HOURS takes in the older image."""
    account.ecs.add_image(fleet_image("image-done1", hours_ago=1, tags={"image-exporter:state": "exported"}))
    images = doctor(account, {**ENV, "EXPORT_LOOKBACK_HOURS": "200"})["images"]
    assert "consider 3 of the 4 private images" in images.detail


def test_no_private_image_is_a_warning_pointing_at_the_region() -> None:
    images = doctor(Account())["images"]
    assert images.status == "warn"
    assert images.fix == "if the images are in another region, set VOLCENGINE_REGION to it"


# -- the webhook -------------------------------------------------------------------------------------------

HOOK = "https://open.feishu.cn/open-apis/bot/v2/hook/secret-token-0001"


def report(delivered: bool, **fields: Any) -> DeliveryReport:
    return DeliveryReport(
        "feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/***", delivered, 1, **fields
    )


def test_a_delivered_test_message_passes_showing_only_the_host(account: Account) -> None:
    sent: list[float] = []

    def send(deadline: float) -> DeliveryReport:
        sent.append(deadline)
        return report(True, status=200, platform_code="0")

    webhook = doctor(account, {**ENV, "WEBHOOK_URL": HOOK}, send_test=send)["webhook"]
    assert webhook == DoctorCheck(
        "webhook", "pass", "a test message reached open.feishu.cn (feishu, HTTP 200)"
    )
    assert len(sent) == 1


@pytest.mark.parametrize(
    ("answer", "says", "fix"),
    [
        (
            {
                "status": 200,
                "platform_code": "19021",
                "platform_message": "sign match fail",
                "reason": "platform error",
            },
            "HTTP 200, platform code 19021, 'sign match fail', platform error",
            "check WEBHOOK_SECRET against the bot's signing secret",
        ),
        ({"status": 401, "reason": "HTTP 401"}, "HTTP 401", "check WEBHOOK_SECRET: the receiver refused"),
        (
            {"status": 404, "reason": "HTTP 404"},
            "HTTP 404",
            "check WEBHOOK_URL: the receiver has no such hook",
        ),
        ({"reason": "ConnectError"}, "ConnectError", "check WEBHOOK_URL and the network access to its host"),
        ({"status": 503, "reason": "HTTP 503"}, "HTTP 503", "the receiver is failing"),
    ],
    ids=["chat-refusal-in-200", "401", "404", "unreachable", "5xx"],
)
def test_a_refused_test_message_fails_with_what_the_platform_said(
    account: Account, answer: dict[str, Any], says: str, fix: str
) -> None:
    """The platform's answer, as the delivery judged it, is the detail; the fix follows from it. The URL's
    token never shows."""
    checks = doctor(
        account, {**ENV, "WEBHOOK_URL": HOOK}, send_test=lambda _deadline: report(False, **answer)
    )
    webhook = checks["webhook"]
    assert webhook.status == "fail"
    assert webhook.detail == f"open.feishu.cn did not take the test message (feishu): {says}"
    assert webhook.fix is not None
    assert webhook.fix.startswith(fix)
    assert "secret-token-0001" not in texts(checks)


# -- the restore drill and retention -----------------------------------------------------------------------


def test_the_drill_check_counts_the_room_for_a_drill_image(account: Account) -> None:
    """With RESTORE_DRILL_DAYS, the private images are counted: below 48 there is room; at 48 a warning."""
    drill = doctor(account, {**ENV, "RESTORE_DRILL_DAYS": "7"})["restore_drill"]
    assert drill.status == "pass"
    assert drill.detail.startswith("3 private images in cn-beijing, below 48")
    full = Account([fleet_image(f"image-many{n}", hours_ago=500) for n in range(48)])
    crowded = doctor(full, {**ENV, "RESTORE_DRILL_DAYS": "7"})["restore_drill"]
    assert crowded.status == "warn"
    assert crowded.fix == "delete the custom images no longer needed"


def test_a_drill_without_tags_never_runs_and_says_so(account: Account) -> None:
    drill = doctor(account, {**ENV, "RESTORE_DRILL_DAYS": "7", "EXPORT_TRACKING": "off"})["restore_drill"]
    assert drill.status == "warn"
    assert drill.fix == "set EXPORT_TRACKING=tags, or unset RESTORE_DRILL_DAYS"


def test_the_retention_check_sums_up_the_plan_and_deletes_nothing(account: Account) -> None:
    """Four verified exports of one group under keep_last=2, min_verified=1: two would go; in apply mode too,
    the doctor plans only: every manifest is still there."""
    exports = [
        manifest(f"image-web{day}", name=f"web-202611{day}", hours_ago=(26 - day) * 24, prefix="imgexport")
        for day in (20, 21, 22, 23)
    ]
    for found in exports:
        for one in found.objects:
            account.store_client.put_object(
                "b-1", one.key, DISK, content_type="application/octet-stream", deadline=FAR
            )
        key = manifest_key("imgexport", found.image.id)
        account.store_client.put_object(
            "b-1", key, found.to_bytes(), content_type="application/json", deadline=FAR
        )
    env = {**ENV, "RETENTION_MODE": "apply", "RETENTION_KEEP_LAST": "2", "RETENTION_MIN_VERIFIED": "1"}
    retention = doctor(account, env)["retention"]
    assert retention.status == "pass"
    assert retention.detail.startswith(
        "tos://b-1/imgexport: 4 exports in 1 groups by name under keep_last=2, min_verified=1; 2 would go"
    )
    assert "the next timer run deletes them (at most RETENTION_MAX_DELETES=10 a run)" in retention.detail
    present = {found.key for found in account.ecs.objects.present(account.clock.now())}
    assert len(present) == 8  # each export's file and its manifest, all still there


def test_retention_that_cannot_read_the_bucket_fails(account: Account) -> None:
    account.ecs.set_bucket_access("b-1", "none")
    retention = doctor(account, {**ENV, "RETENTION_MODE": "plan"})["retention"]
    assert retention.status == "fail"
    assert retention.fix == fix_for("TosAccessDenied.ListObjects")


# -- the engine --------------------------------------------------------------------------------------------


class _Broken:
    """An ECS client whose listing breaks: a defect (RuntimeError), or the budget running out."""

    def __init__(self, inner: Any, error: Exception) -> None:
        self._inner = inner
        self._error = error

    def probe(self, *, deadline: float) -> Any:
        return self._inner.probe(deadline=deadline)

    def describe_images(self, **_: Any) -> Iterator[Any]:
        raise self._error


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (RuntimeError("boom"), "the check failed unexpectedly (RuntimeError)"),
        (BudgetExhausted("out of time"), "not finished within its"),
    ],
    ids=["defect", "out-of-time"],
)
def test_one_check_failing_hides_no_other(account: Account, error: Exception, says: str) -> None:
    """A check that breaks (a defect, or out of time) is that check's ``fail``; every other check still
    gives its own verdict."""
    checks = doctor(account, api=_Broken(account.client, error))
    assert checks["images"].status == "fail"
    assert checks["images"].detail.startswith(says)
    assert {checks[name].status for name in ORDER if name != "images"} == {"pass"}


class _Timed:
    """The account's ECS client, noting how long each probe was given."""

    def __init__(self, inner: Any, account: Account) -> None:
        self._inner = inner
        self._account = account
        self.given: list[float] = []

    def probe(self, *, deadline: float) -> Any:
        self.given.append(deadline - self._account.clock.monotonic())
        return self._inner.probe(deadline=deadline)

    def describe_images(self, **options: Any) -> Iterator[Any]:
        return self._inner.describe_images(**options)  # type: ignore[no-any-return]


def test_each_check_gets_a_fair_share_of_the_time_left(account: Account) -> None:
    """Each check may take its share of what is left (what is left over the checks still to run, at most
    MAX_CHECK_SECONDS), never past the doctor's deadline: of 12 s and five checks after the settings', the first
    gets 12/5 s and the second 12/4 (no time passes on the test's still clock)."""
    timed = _Timed(account.client, account)
    reading = read_settings(ENV)
    run_doctor(reading, subjects(account, reading, api=timed), deadline=account.clock.monotonic() + 12)
    assert timed.given == [pytest.approx(12 / 5), pytest.approx(12 / 4)]
    run_doctor(reading, subjects(account, reading, api=timed), deadline=account.clock.monotonic() + 1e6)
    assert timed.given[2:] == [pytest.approx(MAX_CHECK_SECONDS)] * 2
