"""deploy's plan against the emulated veFaaS account (through the emulator's in-process transport): what it
reads, what it would write and why, how it waits for a release, and its error messages."""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter_tools.deploy import cli
from exporter_tools.deploy.apply import explain, wait_for_release
from exporter_tools.deploy.desired import Desired, desired_state
from exporter_tools.deploy.plan import DeployError, make_plan
from exporter_tools.deploy.template import parse_template
from exporter_tools.deploy.vefaas import (
    API_VERSION,
    SERVICE,
    DeployedFunction,
    DeployedTimer,
    ReleaseStarted,
    ReleaseStatus,
    VefaasClient,
)
from exporter_tools.emulator.api import ApiCall
from exporter_tools.emulator.vefaas import VefaasEmulator
from handler.adapters.openapi import OpenApiClient
from handler.adapters.pacing import RateLimiter
from handler.adapters.retry import RetryPolicy
from handler.adapters.signing import Credentials
from handler.errors import AccessDenied, RetryableApiError, TerminalApiError, UnknownOutcomeError
from tests.support.fakes import FakeClock

HOST = "vefaas.test.volcengineapi.com"
ENDPOINT = f"https://{HOST}"
CREDENTIALS = Credentials("AKLTplantest000001", "plan-test-secret-000001")


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("index.py"), "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


CODE = _zip()
DIGEST = hashlib.sha256(CODE).hexdigest()
SECRET = "whsec_dGhpcyBpcyBhIHNlY3JldCB2YWx1ZQ=="
ENVIRON = {"ACCOUNT": "2100000000", "BUCKET": "my-exports", "HOOK_SECRET": SECRET}
TEMPLATE: dict[str, Any] = {
    "region": "cn-beijing",
    "function": {
        "name": "image-exporter",
        "memory_mb": 1024,
        "timeout_seconds": 600,
        "role": "trn:iam::${env:ACCOUNT}:role/VefaasEcsExportRole",
        "description": "exports images",
        "tags": {"app": "image-exporter"},
        "environment": {
            "EXPORT_TOS_BUCKET": "${env:BUCKET}",
            "WEBHOOK_SECRET": "${env:HOOK_SECRET}",
            "LOG_LEVEL": "INFO",
        },
    },
    "timers": [
        {
            "name": "nightly-scan",
            "crontab": "0 3 * * *",
            "payload": {"LookbackHours": 26, "TOSPrefix": "nightly"},
        },
        {"name": "image-sweep", "crontab": "*/15 * * * *", "payload": {"LookbackHours": 2}, "retries": 0},
        {"name": "weekly", "crontab": "0 4 * * SUN"},
    ],
}


def desired(code: bytes = CODE, environ: dict[str, str] | None = None) -> Desired:
    return desired_state(parse_template(TEMPLATE), ENVIRON if environ is None else environ, code=code)


def deployed_envs(**changes: str | None) -> list[dict[str, str]]:
    """The Envs the platform reports for a function deployed from TEMPLATE with CODE, with changes."""
    envs = {
        "EXPORT_TOS_BUCKET": "my-exports",
        "WEBHOOK_SECRET": SECRET,
        "LOG_LEVEL": "INFO",
        "VOLCENGINE_REGION": "cn-beijing",
        "FUNCTION_TIMEOUT_SECONDS": "600",
        "EXPORTER_CODE_SHA256": DIGEST,
    }
    for name, value in changes.items():
        if value is None:
            envs.pop(name, None)
        else:
            envs[name] = value
    return [{"Key": k, "Value": v} for k, v in envs.items()]


FUNCTION: dict[str, Any] = {
    "Name": "image-exporter",
    "Runtime": "python3.12/v1",
    "MemoryMB": 1024,
    "RequestTimeout": 600,
    "Role": "trn:iam::2100000000:role/VefaasEcsExportRole",
    "Description": "exports images",
    "Tags": [{"Key": "app", "Value": "image-exporter"}],
}


def deployed_timer(name: str, crontab: str, payload: str, **fields: Any) -> dict[str, Any]:
    base = {
        "Name": name,
        "Crontab": crontab,
        "Payload": payload,
        "Enabled": True,
        "Retries": 0,
        "EnableConcurrency": False,
        "Description": "",
    }
    return {**base, **fields}


class Account:
    """The emulated veFaaS account (the emulator's own service behind its gateway, in-process through
    ``OpenApiEmulator.transport()``: the same signature checks and state as ``exporter-tools emulator``)."""

    def __init__(self, emulator: VefaasEmulator) -> None:
        self.emulator = emulator
        self.service = emulator.vefaas

    def call(self, action: str, **body: Any) -> dict[str, Any]:
        """Change the account directly, as the console would (not through the gateway: not counted)."""
        payload = json.dumps(body).encode()
        answer = self.service.handle(ApiCall("POST", action, API_VERSION, {}, payload, "application/json"))
        assert answer.code is None, answer.message
        self.service.writes.clear()
        return dict(answer.result or {})

    def function(self, code: bytes = CODE, **fields: Any) -> str:
        """Create TEMPLATE's function (with ``fields`` changed; None leaves one out) and return its id."""
        body = {**FUNCTION, "Envs": deployed_envs(), **fields}
        body = {name: value for name, value in body.items() if value is not None}
        source = base64.b64encode(code).decode()
        return str(self.call("CreateFunction", **body, SourceType="zip", Source=source)["Id"])

    def release(self, function_id: str, *, polls: int = 1) -> dict[str, Any]:
        """Release the function and read its status ``polls`` times (one ends it, by default)."""
        started = self.call("Release", FunctionId=function_id, RevisionNumber=0)
        for _ in range(polls):
            self.call("GetReleaseStatus", FunctionId=function_id)
        return started

    def timers(self, function_id: str, timers: list[dict[str, Any]]) -> list[str]:
        return [str(self.call("CreateTimer", FunctionId=function_id, **timer)["Id"]) for timer in timers]

    def deployed(self, timers: list[dict[str, Any]] | None = None, **fields: Any) -> str:
        """TEMPLATE's function, released, with ``timers``: the account a finished deploy leaves."""
        function_id = self.function(**fields)
        self.release(function_id)
        self.timers(function_id, timers or [])
        return function_id

    def requests(self) -> dict[str, dict[str, int]]:
        """What reached the gateway, by action and HTTP status."""
        requests: dict[str, dict[str, int]] = self.emulator.stats()["requests"]
        return requests


@pytest.fixture
def account() -> Iterator[Account]:
    """An empty emulated veFaaS account that accepts CREDENTIALS."""
    emulator = VefaasEmulator(credentials=CREDENTIALS, seed=7)
    try:
        yield Account(emulator)
    finally:
        emulator.close()


@pytest.fixture
def client(account: Account) -> Iterator[VefaasClient]:
    """The deploy client, with fast retries, talking to the account through the emulator's transport."""
    with httpx.Client(transport=account.emulator.transport()) as http:
        api = OpenApiClient(
            http=http,
            endpoint=ENDPOINT,
            region="cn-beijing",
            service=SERVICE,
            version=API_VERSION,
            credentials=CREDENTIALS,
            policy=RetryPolicy(max_attempts=3, base=0.0, cap=0.0),
            limiter=RateLimiter(1000.0),
            clock=FakeClock(),
        )
        yield VefaasClient(api, deadline=float("inf"))


MATCHING_TIMERS = [
    deployed_timer("nightly-scan", "0 3 * * *", '{"TOSPrefix":"nightly","LookbackHours":26}'),
    deployed_timer("image-sweep", "*/15  *  * * *", '{"LookbackHours": 2}'),
    deployed_timer("weekly", "0 4 * * SUN", ""),
]
READS = {"ListFunctions", "GetFunction", "GetReleaseStatus", "ListTriggers", "GetTimer"}


def test_nothing_deployed_plans_create_release_and_timers(account: Account, client: VefaasClient) -> None:
    """With no function of that exact name (over all pages), the plan creates, releases and adds each timer."""
    for n in range(100):
        account.function(Name=f"image-exporter-{n}")
    account.function(Name="old-image-exporter")
    plan = make_plan(desired(), client)
    assert [(s.action, s.subject) for s in plan.steps] == [
        ("CreateFunction", "image-exporter"),
        ("Release", "image-exporter (revision 0: the latest code and configuration)"),
        ("CreateTimer", "nightly-scan"),
        ("CreateTimer", "image-sweep"),
        ("CreateTimer", "weekly"),
    ]
    assert account.requests() == {"ListFunctions": {"200": 2}}
    assert plan.steps[0].upload
    text = plan.render()
    assert "no function named image-exporter in cn-beijing: create it with the code" in text
    assert "5 write calls. Run with --apply to make them." in text


def test_a_matching_account_plans_nothing(account: Account, client: VefaasClient) -> None:
    """Same config and tags, same code digest, same timers (payload key order and crontab spacing aside): no
    write, although GetFunction does not report the tags (the ListFunctions item does)."""
    account.deployed(MATCHING_TIMERS)
    plan = make_plan(desired(), client)
    assert plan.steps == ()
    assert plan.unchanged == (
        "function image-exporter",
        "timer nightly-scan",
        "timer image-sweep",
        "timer weekly",
    )
    assert "Nothing to change" in plan.render()
    assert set(account.requests()) == READS


def test_config_differences_are_listed_and_only_they_are_sent(account: Account, client: VefaasClient) -> None:
    """Changed fields are named with old and new values; UpdateFunction carries just those fields."""
    account.deployed(
        MATCHING_TIMERS, MemoryMB=512, Description="old", Tags=[{"Key": "app", "Value": "other"}]
    )
    plan = make_plan(desired(), client)
    update, release = plan.steps
    assert update.action == "UpdateFunction"
    assert dict(update.changes) == {
        "MemoryMB": 1024,
        "Description": "exports images",
        "Tags": [{"Key": "app", "Value": "image-exporter"}],
    }
    assert not update.upload
    assert update.reasons == (
        "MemoryMB: 512 → 1024",
        'Description: "old" → "exports images"',
        'Tags: ~ app: "other" → "image-exporter"',
    )
    assert (release.action, release.reasons) == ("Release", ("publish the update",))


def test_environment_changes_hide_secret_values(account: Account, client: VefaasClient) -> None:
    """An added variable shows its value, a changed secret says (hidden), a removed one is named."""
    envs = deployed_envs(WEBHOOK_SECRET="whsec_b2xkIHNlY3JldCB2YWx1ZQ==", LOG_LEVEL=None, OLD_SETTING="1")
    account.deployed(MATCHING_TIMERS, Envs=envs)
    plan = make_plan(desired(), client)
    (reason,) = plan.steps[0].reasons
    assert reason == 'Envs: + LOG_LEVEL="INFO", - OLD_SETTING, ~ WEBHOOK_SECRET (hidden)'
    assert "whsec_" not in plan.render()
    sent = {pair["Key"]: pair["Value"] for pair in plan.steps[0].changes["Envs"]}
    assert sent["WEBHOOK_SECRET"] == SECRET
    assert "OLD_SETTING" not in sent


@pytest.mark.parametrize(
    ("deployed_digest", "reason"),
    [
        ("0" * 64, "code: sha256 0000000000000000… deployed, "),
        (None, "code: the deployed code's digest is not recorded: upload"),
    ],
)
def test_new_code_is_uploaded_with_its_digest(
    account: Account, client: VefaasClient, deployed_digest: str | None, reason: str
) -> None:
    """A different (or unknown) code digest plans an upload, sending the new digest in Envs."""
    account.deployed(MATCHING_TIMERS, Envs=deployed_envs(EXPORTER_CODE_SHA256=deployed_digest))
    (update, _release) = make_plan(desired(), client).steps
    assert update.upload
    assert update.reasons[-1].startswith(reason)
    assert {p["Key"]: p["Value"] for p in update.changes["Envs"]}["EXPORTER_CODE_SHA256"] == DIGEST
    assert set(update.changes) == {"Envs"}


def test_timers_are_created_updated_or_left_alone(account: Account, client: VefaasClient) -> None:
    """A missing timer is created, a different one updated with just its changes, an extra one left alone."""
    nightly = deployed_timer("nightly-scan", "0 2 * * *", '{"LookbackHours": 26, "TOSPrefix": "nightly"}')
    nightly_id, handmade_id = account.timers(
        account.deployed(), [{**nightly, "Retries": 3}, deployed_timer("handmade", "0 0 * * *", "")]
    )
    plan = make_plan(desired(), client)
    steps = [(s.action, s.subject, dict(s.changes)) for s in plan.steps]
    assert steps == [
        ("UpdateTimer", f"nightly-scan (id {nightly_id})", {"Crontab": "0 3 * * *", "Retries": 0}),
        ("CreateTimer", "image-sweep", {}),
        ("CreateTimer", "weekly", {}),
    ]
    assert plan.steps[0].reasons == ('Crontab: "0 2 * * *" → "0 3 * * *"', "Retries: 3 → 0")
    assert plan.left_alone == (f"timer handmade (id {handmade_id})",)
    assert f"not in the template, left as they are: timer handmade (id {handmade_id})" in plan.render()


def test_a_function_created_but_never_released_is_released(account: Account, client: VefaasClient) -> None:
    """Nothing changed, but the function was never released (GetReleaseStatus answers pending, not 404):
    the plan releases it, as when a deploy stopped right after CreateFunction."""
    account.timers(account.function(), MATCHING_TIMERS)
    (step,) = make_plan(desired(), client).steps
    assert (step.action, step.reasons) == ("Release", ("the function has never been released: release it",))


def test_a_function_whose_last_release_failed_is_released_again(
    account: Account, client: VefaasClient
) -> None:
    """Nothing changed, but the latest code never started: the plan releases it again."""
    account.service.fail_next_release()
    account.deployed(MATCHING_TIMERS)
    (step,) = make_plan(desired(), client).steps
    reason = "the last release failed (function_start_failed): release again"
    assert (step.action, step.reasons) == ("Release", (reason,))


def test_a_release_in_progress_is_waited_for_before_releasing(account: Account, client: VefaasClient) -> None:
    """When a change needs a release while one is running, the plan says apply waits for it first."""
    function_id = account.function(MemoryMB=512)
    account.timers(function_id, MATCHING_TIMERS)
    account.service.release_polls = 5
    account.release(function_id, polls=0)
    plan = make_plan(desired(), client)
    assert plan.release_in_progress
    assert "a release is in progress: apply waits for it to finish first" in plan.render()


def test_a_function_of_another_runtime_is_a_name_clash(account: Account, client: VefaasClient) -> None:
    """A same-named function with another runtime is not ours: deploy stops and asks for another name."""
    account.function(Runtime="nodejs16/v1")
    with pytest.raises(DeployError, match=r"runtime nodejs16/v1.*Choose another function.name"):
        make_plan(desired(), client)


class _TwinsAccount:
    """A read-only account listing two functions with the same exact name (veFaaS refuses to create a
    second one, so the emulator cannot hold them; the plan must still never pick one)."""

    def functions_named(self, name: str) -> list[DeployedFunction]:
        return [DeployedFunction(Id=f"fn00000{n}", Name=name) for n in (1, 2)]

    def get_function(self, function_id: str) -> DeployedFunction:
        raise AssertionError(function_id)

    def release_status(self, function_id: str) -> ReleaseStatus:
        raise AssertionError(function_id)

    def timers(self, function_id: str) -> list[DeployedTimer]:
        raise AssertionError(function_id)


def test_two_functions_with_the_exact_name_stop_the_plan() -> None:
    """Deploy never guesses which of two same-named functions to update."""
    with pytest.raises(DeployError, match=r"2 functions are named image-exporter \(fn000001, fn000002\)"):
        make_plan(desired(), _TwinsAccount())


def test_reads_are_retried_after_a_server_error(account: Account, client: VefaasClient) -> None:
    """A 500 on a read is retried (same signer and retry policy as the function's ECS calls)."""
    account.service.refuse_next("ListFunctions", 500, "InternalError", "try again")
    assert make_plan(desired(), client).steps[0].action == "CreateFunction"
    assert account.requests() == {"ListFunctions": {"500": 1, "200": 1}}


ROLE = "trn:iam::2100000000:role/VefaasEcsExportRole"


@pytest.mark.parametrize(
    ("error", "action", "expected"),
    [
        (
            TerminalApiError(
                "the role does not exist", code="InvalidRole", http_status=400, request_id="r-1"
            ),
            "CreateFunction",
            f"veFaaS may not use the role {ROLE} (InvalidRole: the role does not exist (RequestId r-1)). Create the IAM role VefaasEcsExportRole",
        ),
        (
            TerminalApiError(
                "function name image-exporter already exists", code="InvalidParameter", http_status=400
            ),
            "CreateFunction",
            "a function named image-exporter already exists in cn-beijing, though ListFunctions did not list it",
        ),
        (
            TerminalApiError("no permission", code="AccessDenied", http_status=403),
            "UpdateTimer",
            "the deployer's credentials may not call UpdateTimer",
        ),
        (
            AccessDenied("no permission", code="AccessDenied", http_status=200),
            "DeleteTimer",
            "the deployer's credentials may not call DeleteTimer",
        ),
        (
            UnknownOutcomeError("no answer", code="ReadTimeout"),
            "CreateFunction",
            "CreateFunction was sent but its answer was lost",
        ),
        (
            TerminalApiError(
                "timer name nightly-scan already exists", code="InvalidParameter", http_status=400
            ),
            "CreateTimer",
            "a timer with this name already exists on the function",
        ),
        (
            RetryableApiError("internal", code="InternalError", http_status=500),
            "Release",
            "Release failed: InternalError: internal",
        ),
    ],
)
def test_failed_calls_are_explained_with_what_to_do(error: Any, action: str, expected: str) -> None:
    """Role refused, name taken, access denied, a lost answer: each message says what to do next."""
    assert expected in explain(error, action, desired())


@pytest.fixture
def template_file(tmp_path: Path) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(json.dumps(TEMPLATE), encoding="utf-8")
    (tmp_path / "function.zip").write_bytes(CODE)
    return path


def run_main(
    args: list[str], environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    status = cli.main(args, environ=environ)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def served(account: Account) -> dict[str, str]:
    """Serve the account on 127.0.0.1 (deploy's CLI makes its own HTTP client) and return the deployer's
    environment pointing at it."""
    account.emulator.start()
    return {
        **ENVIRON,
        "VOLCENGINE_ACCESS_KEY": CREDENTIALS.access_key,
        "VOLCENGINE_SECRET_KEY": CREDENTIALS.secret_key,
        "VOLCENGINE_ENDPOINT": account.emulator.endpoint,
    }


def test_main_prints_the_plan_and_writes_nothing(
    account: Account, template_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """deploy (plan is the default) prints the calls and makes only reads."""
    args = ["--template", str(template_file), "--zip", str(template_file.parent / "function.zip")]
    status, out, err = run_main(args, served(account), capsys)
    assert status == 0, err
    assert "1. CreateFunction image-exporter" in out
    assert "Run with --apply to make them." in out
    assert account.requests() == {"ListFunctions": {"200": 1}}
    assert SECRET not in out + err


def test_a_region_outside_the_known_list_deploys_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A region the known list lacks is not refused: deploy plans against it and warns on stderr."""
    doc = copy.deepcopy(TEMPLATE)
    doc["region"] = "ap-southeast-2"
    path = tmp_path / "template.yaml"
    path.write_text(json.dumps(doc), encoding="utf-8")
    (tmp_path / "function.zip").write_bytes(CODE)
    account = Account(VefaasEmulator(credentials=CREDENTIALS, region="ap-southeast-2", seed=7))
    try:
        args = ["--template", str(path), "--zip", str(tmp_path / "function.zip")]
        status, out, err = run_main(args, served(account), capsys)
    finally:
        account.emulator.close()
    assert status == 0, err
    assert "1. CreateFunction image-exporter" in out
    assert f"deploy: {path}: warning: region: 'ap-southeast-2' is not one of the known regions" in err


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({**ENVIRON}, "no credentials to deploy with: set VOLCENGINE_ACCESS_KEY and VOLCENGINE_SECRET_KEY"),
        (
            {**ENVIRON, "VOLCENGINE_ACCESS_KEY": "AKLTx"},
            "VOLCENGINE_ACCESS_KEY is set but VOLCENGINE_SECRET_KEY is not",
        ),
        (
            {"ACCOUNT": "2100000000", "HOOK_SECRET": SECRET},
            "function.environment.EXPORT_TOS_BUCKET: ${env:BUCKET} needs BUCKET",
        ),
    ],
)
def test_main_stops_before_any_call_when_the_deployer_environment_is_incomplete(
    account: Account,
    template_file: Path,
    capsys: pytest.CaptureFixture[str],
    environ: dict[str, str],
    expected: str,
) -> None:
    """Missing credentials or a missing ${env:} variable: exit 2, a message naming what to set, no call."""
    args = ["--template", str(template_file), "--zip", str(template_file.parent / "function.zip")]
    status, _out, err = run_main(
        args, {**environ, "VOLCENGINE_ENDPOINT": served(account)["VOLCENGINE_ENDPOINT"]}, capsys
    )
    assert status == 2
    assert expected in err
    assert account.requests() == {}
    assert SECRET not in err


def test_main_reports_an_invalid_template_by_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid template stops deploy with the same field-path messages as validate-template."""
    path = tmp_path / "template.yaml"
    path.write_text(json.dumps({**TEMPLATE, "region": "nowhere"}), encoding="utf-8")
    status, _out, err = run_main(["--template", str(path), "--zip", str(path)], {}, capsys)
    assert status == 2
    assert f"deploy: {path}: region: expected a region id" in err


def test_apply_and_plan_cannot_be_combined(capsys: pytest.CaptureFixture[str]) -> None:
    """--plan and --apply are exclusive: a usage error."""
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--plan", "--apply"])
    assert stopped.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_api_errors_while_planning_exit_1_with_the_explanation(
    account: Account, template_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused read (here: the deployer may not list functions) exits 1 and says what to grant."""
    account.service.refuse_next("ListFunctions", 403, "AccessDenied", "not allowed")
    args = ["--template", str(template_file), "--zip", str(template_file.parent / "function.zip")]
    status, _out, err = run_main(args, served(account), capsys)
    assert status == 1
    assert "the deployer's credentials may not call ListFunctions (AccessDenied: not allowed" in err


def test_a_release_that_never_finishes_gives_up_with_its_last_status(
    account: Account, client: VefaasClient
) -> None:
    """Waiting for a release stops after the timeout, saying where it stood; deploy can be run again."""
    function_id = account.function()
    account.service.release_polls = 100
    started = client.release(function_id, description="test")
    clock, out = FakeClock(0.0), io.StringIO()
    with pytest.raises(DeployError, match=r"did not finish within 10 s \(last status: inprogress\)"):
        wait_for_release(
            client,
            function_id,
            started=started,
            poll_seconds=2.0,
            timeout=10.0,
            out=out,
            sleep=clock.sleep,
            monotonic=clock.monotonic,
        )
    assert out.getvalue() == "     release status: inprogress\n"
    assert account.requests()["GetReleaseStatus"] == {"200": 6}


def test_an_earlier_releases_done_is_not_taken_for_ours(account: Account, client: VefaasClient) -> None:
    """The status still names the earlier release (revision 1, done): the wait for ours goes on, and gives
    up rather than report an old success."""
    function_id = account.function()
    earlier = account.release(function_id)
    ours = ReleaseStarted(earlier["NewRevisionNumber"] + 1, "a-later-record")
    clock, out = FakeClock(0.0), io.StringIO()
    with pytest.raises(DeployError, match="did not finish within 4 s"):
        wait_for_release(
            client,
            function_id,
            started=ours,
            poll_seconds=2.0,
            timeout=4.0,
            out=out,
            sleep=clock.sleep,
            monotonic=clock.monotonic,
        )
    assert out.getvalue() == "     release status: done (an earlier release; waiting for ours)\n"


def test_release_answers_the_revision_and_record_the_wait_follows(
    account: Account, client: VefaasClient
) -> None:
    """Release names the new revision and its record; the status of that record is followed to done."""
    function_id = account.function()
    started = client.release(function_id, description="first")
    status = wait_for_release(
        client, function_id, started=started, poll_seconds=0, timeout=5, out=io.StringIO()
    )
    assert (started.revision, status.status, status.new_revision_number) == (1, "done", 1)
    assert status.release_record_id == started.record_id != ""
    assert status.stable_revision_number == 1
