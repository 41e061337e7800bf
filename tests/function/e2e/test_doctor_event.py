"""The Doctor event end to end against the emulator over real sockets (docs/doctor.md): all green on a good
setup, and each misconfiguration its own failing (or warning) check with its fix; never raised to be retried,
nothing changed but the probe object."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage
from exporter_tools.receiver import WebhookReceiver
from handler.adapters.signing import Credentials
from handler.errors import fix_for
from tests.support.emulated import CREDENTIALS
from tests.support.events import load_event

Emulated = Callable[..., EcsEmulator]
Run = Callable[..., tuple[dict[str, Any], bool]]

BUCKET = "demo-exports"
NAMES = ["settings", "credentials", "clock", "bucket", "bucket_access", "images"]


def checks_of(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in result["checks"]}


def run_doctor(run_handler: Run) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The doctor event once: its result (never raised to be retried) and its checks by name."""
    result, raised = run_handler(load_event("doctor"))
    assert not raised
    assert result["results"] == []
    return result, checks_of(result)


def test_on_the_demo_fleet_the_doctor_is_all_green_and_changes_nothing(
    emulated: Emulated, run_handler: Run
) -> None:
    """Every check passes on the demo fleet with the function's own variables (the checks of features left
    off are left out), ``ok`` is true, no export starts and the bucket holds nothing afterwards."""
    emulator = emulated()

    result, checks = run_doctor(run_handler)

    assert result["ok"] is True
    assert result["trigger"] == "direct"
    assert list(checks) == NAMES
    assert {check["status"] for check in checks.values()} == {"pass"}
    assert all("fix" not in check for check in checks.values())
    assert emulator.export_tasks_by_image() == {}
    assert [o for o in emulator.tos.objects() if o.bucket == BUCKET] == []


def test_through_the_http_trigger_a_failing_check_is_a_502_never_a_retry(
    emulated: Emulated, run_handler: Run
) -> None:
    """As an HTTP body the doctor answers 200 when nothing failed, 502 (no Retry-After) when a check did: a
    failed check is not transient."""
    emulator = emulated()
    http = {"httpMethod": "POST", "headers": {"x-request-id": "req-doctor-1"}, "body": '{"Doctor": true}'}

    good, _ = run_handler(http)
    emulator.set_bucket_access(BUCKET, "read-only")
    bad, raised = run_handler(http)

    assert (good["statusCode"], json.loads(good["body"])["event_id"]) == (200, "req-doctor-1")
    assert not raised
    assert bad["statusCode"] == 502
    assert "Retry-After" not in bad["headers"]
    assert json.loads(bad["body"])["ok"] is False


def test_a_wrong_secret_key_fails_the_credentials_check_with_its_fix(
    emulated: Emulated, run_handler: Run
) -> None:
    """The gateway refuses the signature: credentials fails naming the code, four characters of the key and
    the fix; the secret is nowhere in the result. The clock is still read from the refusal's Date."""
    wrong = Credentials(CREDENTIALS.access_key, "the-wrong-secret-key-0001")
    emulated(handler_credentials=wrong)

    result, checks = run_doctor(run_handler)

    assert result["ok"] is False
    credentials = checks["credentials"]
    assert credentials["status"] == "fail"
    assert "SignatureDoesNotMatch" in credentials["detail"]
    assert credentials["fix"] == fix_for("SignatureDoesNotMatch")
    assert f"access key {CREDENTIALS.access_key[:4]}…" in credentials["detail"]
    text = json.dumps(result)
    assert "the-wrong-secret-key-0001" not in text
    assert CREDENTIALS.access_key[4:] not in text
    assert "the API's Date agrees with this clock" in checks["clock"]["detail"]


def test_a_bucket_in_another_region_fails_naming_its_region(emulated: Emulated, run_handler: Run) -> None:
    emulated(
        Fleet(
            images=(FleetImage(id="image-one1"),), buckets=(FleetBucket(name=BUCKET, region="cn-shanghai"),)
        )
    )

    result, checks = run_doctor(run_handler)

    assert result["ok"] is False
    assert checks["bucket"]["status"] == "fail"
    assert "is in cn-shanghai, not in VOLCENGINE_REGION cn-beijing" in checks["bucket"]["detail"]
    assert "VOLCENGINE_REGION=cn-shanghai" in checks["bucket"]["fix"]


def test_a_read_only_bucket_fails_the_put_naming_tos_put_object(emulated: Emulated, run_handler: Run) -> None:
    emulator = emulated()
    emulator.set_bucket_access(BUCKET, "read-only")

    result, checks = run_doctor(run_handler)

    access = checks["bucket_access"]
    assert result["ok"] is False
    assert access["status"] == "fail"
    assert "write refused (tos:PutObject)" in access["detail"]
    assert "tos:PutObject" in access["fix"]


def test_a_misspelt_variable_warns_with_the_likely_name(emulated: Emulated, run_handler: Run) -> None:
    """EXPORT_TOS_BUCKT is a warning naming EXPORT_TOS_BUCKET; a warning leaves ``ok`` true."""
    emulated(env={"EXPORT_TOS_BUCKT": "other-bucket"})

    result, checks = run_doctor(run_handler)

    assert result["ok"] is True
    assert checks["settings"]["status"] == "warn"
    assert "(did you mean EXPORT_TOS_BUCKET?)" in checks["settings"]["detail"]
    assert checks["settings"]["fix"] == "rename EXPORT_TOS_BUCKT to EXPORT_TOS_BUCKET"


@pytest.mark.parametrize(("offset", "status", "ok"), [(-150, "warn", True), (420, "fail", False)])
def test_a_clock_offset_warns_then_fails(
    emulated: Emulated, run_handler: Run, offset: float, status: str, ok: bool
) -> None:
    """TOS's clock 150 s behind warns; 7 minutes ahead fails (retention would delete nothing)."""
    emulator = emulated()
    emulator.set_tos_clock_offset(offset)

    result, checks = run_doctor(run_handler)

    assert result["ok"] is ok
    assert checks["clock"]["status"] == status
    assert "TOS's Date is" in checks["clock"]["detail"]
    assert "check that TOS_ENDPOINT names TOS" in checks["clock"]["fix"]


def test_a_webhook_that_refuses_the_signature_fails_with_the_platforms_code(
    emulated: Emulated, run_handler: Run
) -> None:
    """A Feishu receiver whose secret is not WEBHOOK_SECRET answers HTTP 200 with code 19021: the webhook
    check fails with that code and the fix; the URL shows only its host, the secret nowhere. With the right
    secret it passes."""
    with WebhookReceiver(fmt="feishu", secret="the-bots-own-secret") as receiver:
        env = {
            "WEBHOOK_URL": receiver.url,
            "WEBHOOK_FORMAT": "feishu",
            "WEBHOOK_SECRET": "not-the-bots-secret",
        }
        emulated(env=env)

        result, checks = run_doctor(run_handler)

    webhook = checks["webhook"]
    assert result["ok"] is False
    assert webhook["status"] == "fail"
    assert webhook["detail"].startswith(
        "127.0.0.1 did not take the test message (feishu): HTTP 200, platform code 19021"
    )
    assert webhook["fix"].startswith("check WEBHOOK_SECRET")
    assert len(receiver.deliveries) == 1
    assert receiver.deliveries[0].verified is False
    text = json.dumps(result)
    assert "local-token" not in text
    assert "not-the-bots-secret" not in text


def test_a_webhook_that_takes_the_test_message_passes(emulated: Emulated, run_handler: Run) -> None:
    with WebhookReceiver(fmt="standard", secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") as receiver:
        env = {
            "WEBHOOK_URL": receiver.url,
            "WEBHOOK_FORMAT": "standard",
            "WEBHOOK_SECRET": receiver.secret or "",
        }
        emulated(env=env)

        result, checks = run_doctor(run_handler)

    assert result["ok"] is True
    assert checks["webhook"]["status"] == "pass"
    (delivery,) = receiver.deliveries
    assert delivery.verified is True
    assert delivery.json()["type"] == "image_export.test"


def test_retention_and_the_drill_are_checked_when_they_are_on(emulated: Emulated, run_handler: Run) -> None:
    emulated(env={"RETENTION_MODE": "plan", "RESTORE_DRILL_DAYS": "7"})

    result, checks = run_doctor(run_handler)

    assert result["ok"] is True
    assert list(checks)[-2:] == ["restore_drill", "retention"]
    assert checks["retention"]["status"] == "pass"
    assert checks["restore_drill"]["status"] == "pass"
