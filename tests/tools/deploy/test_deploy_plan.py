"""deploy's plan at the HTTP edge (respx): what it reads, what it would write and why, and its error messages."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from exporter_tools.deploy import apply
from exporter_tools.deploy.apply import DeployError, Desired, desired_state, explain, make_plan
from exporter_tools.deploy.template import parse_template
from exporter_tools.deploy.vefaas import API_VERSION, SERVICE, VefaasClient
from exporter_tools.emulator.signature import verify_signature
from handler.adapters.openapi import OpenApiClient
from handler.adapters.pacing import RateLimiter, RetryPolicy
from handler.adapters.signing import Credentials
from handler.errors import RetryableApiError, TerminalApiError, UnknownOutcomeError
from tests.support.fakes import FakeClock

HOST = "vefaas.test.volcengineapi.com"
ENDPOINT = f"https://{HOST}"
CREDENTIALS = Credentials("AKLTplantest000001", "plan-test-secret-000001")
CODE = b"PK fake zip bytes"
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


def deployed_function(**fields: Any) -> dict[str, Any]:
    base = {
        "Id": "fn000001",
        "Name": "image-exporter",
        "Runtime": "python3.12/v1",
        "MemoryMB": 1024,
        "RequestTimeout": 600,
        "Role": "trn:iam::2100000000:role/VefaasEcsExportRole",
        "Description": "exports images",
        "Envs": deployed_envs(),
        "Tags": [{"Key": "app", "Value": "image-exporter"}],
    }
    return {**base, **fields}


def deployed_timer(timer_id: str, name: str, crontab: str, payload: str, **fields: Any) -> dict[str, Any]:
    base = {
        "Id": timer_id,
        "Name": name,
        "Crontab": crontab,
        "Payload": payload,
        "Enabled": True,
        "Retries": 0,
        "EnableConcurrency": False,
        "Description": "",
    }
    return {**base, **fields}


class FakeVefaas:
    """Answers each signed action from ``results`` (a dict, a callable of the body, or an error tuple),
    and records every request as (action, body)."""

    def __init__(self) -> None:
        self.results: dict[str, Any] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        problem = verify_signature(
            method=request.method,
            host=request.headers["host"],
            path=request.url.path,
            raw_query=request.url.query.decode(),
            headers=dict(request.headers),
            body=request.content,
            credentials_for={CREDENTIALS.access_key: CREDENTIALS}.get,
            region="cn-beijing",
            service=SERVICE,
        )
        assert problem is None, problem
        action = request.url.params["Action"]
        body = json.loads(request.content)
        self.calls.append((action, body))
        answer = self.results.get(action)
        if callable(answer):
            answer = answer(body)
        meta: dict[str, Any] = {
            "RequestId": f"req-{len(self.calls)}",
            "Action": action,
            "Version": API_VERSION,
        }
        if isinstance(answer, tuple):
            status, code, message = answer
            return httpx.Response(
                status, json={"ResponseMetadata": {**meta, "Error": {"Code": code, "Message": message}}}
            )
        assert answer is not None, f"unexpected call {action}"
        return httpx.Response(200, json={"ResponseMetadata": meta, "Result": answer})

    def actions(self) -> list[str]:
        return [action for action, _ in self.calls]


@pytest.fixture
def fake() -> Iterator[FakeVefaas]:
    """A veFaaS endpoint behind respx that checks signatures."""
    stand_in = FakeVefaas()
    with respx.mock(assert_all_called=False) as router:
        router.post(url__startswith=ENDPOINT).mock(side_effect=stand_in)
        yield stand_in


@pytest.fixture
def client() -> Iterator[VefaasClient]:
    """The deploy client, with fast retries."""
    with httpx.Client() as http:
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


def existing(
    fake: FakeVefaas,
    *,
    function: dict[str, Any] | None = None,
    timers: list[dict[str, Any]] | None = None,
    release: Any = None,
) -> None:
    """Script an account holding one function (TEMPLATE's, unless changed), its timers and release status."""
    function = function or deployed_function()
    timers = timers if timers is not None else []
    fake.results.update(
        ListFunctions={"Items": [function], "Total": 1},
        GetFunction=function,
        GetReleaseStatus=release or {"Status": "done"},
        ListTriggers={
            "Items": [{"Id": t["Id"], "Name": t["Name"], "Type": "timer"} for t in timers],
            "Total": len(timers),
        },
        GetTimer=lambda body: next(t for t in timers if t["Id"] == body["Id"]),
    )


MATCHING_TIMERS = [
    deployed_timer("t1", "nightly-scan", "0 3 * * *", '{"TOSPrefix":"nightly","LookbackHours":26}'),
    deployed_timer("t2", "image-sweep", "*/15  *  * * *", '{"LookbackHours": 2}'),
    deployed_timer("t3", "weekly", "0 4 * * SUN", ""),
]


def test_nothing_deployed_plans_create_release_and_timers(fake: FakeVefaas, client: VefaasClient) -> None:
    """With no function of that exact name (over all pages), the plan creates, releases and adds each timer."""
    lookalikes = [deployed_function(Id=f"x{n:07d}", Name=f"image-exporter-{n}") for n in range(100)]
    pages = {1: lookalikes, 2: [deployed_function(Id="y0000001", Name="old-image-exporter")]}
    fake.results["ListFunctions"] = lambda body: {"Items": pages[body["PageNumber"]], "Total": 101}
    plan = make_plan(desired(), client)
    assert [(s.action, s.subject) for s in plan.steps] == [
        ("CreateFunction", "image-exporter"),
        ("Release", "image-exporter (revision 0: the latest code and configuration)"),
        ("CreateTimer", "nightly-scan"),
        ("CreateTimer", "image-sweep"),
        ("CreateTimer", "weekly"),
    ]
    assert [body["PageNumber"] for _, body in fake.calls] == [1, 2]
    assert fake.actions() == ["ListFunctions", "ListFunctions"]
    assert plan.steps[0].upload
    text = plan.render()
    assert "no function named image-exporter in cn-beijing: create it with the code" in text
    assert "5 write calls. Run with --apply to make them." in text


def test_a_matching_account_plans_nothing(fake: FakeVefaas, client: VefaasClient) -> None:
    """Same config, same code digest, same timers (payload key order and crontab spacing aside): no write."""
    existing(fake, timers=MATCHING_TIMERS)
    plan = make_plan(desired(), client)
    assert plan.steps == ()
    assert plan.unchanged == (
        "function image-exporter",
        "timer nightly-scan",
        "timer image-sweep",
        "timer weekly",
    )
    assert "Nothing to change" in plan.render()
    assert set(fake.actions()) == {
        "ListFunctions",
        "GetFunction",
        "GetReleaseStatus",
        "ListTriggers",
        "GetTimer",
    }


def test_config_differences_are_listed_and_only_they_are_sent(fake: FakeVefaas, client: VefaasClient) -> None:
    """Changed fields are named with old and new values; UpdateFunction carries just those fields."""
    function = deployed_function(MemoryMB=512, Description="old", Tags=[{"Key": "app", "Value": "other"}])
    existing(fake, function=function, timers=MATCHING_TIMERS)
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


def test_environment_changes_hide_secret_values(fake: FakeVefaas, client: VefaasClient) -> None:
    """An added variable shows its value, a changed secret says (hidden), a removed one is named."""
    envs = deployed_envs(WEBHOOK_SECRET="whsec_b2xkIHNlY3JldCB2YWx1ZQ==", LOG_LEVEL=None, OLD_SETTING="1")
    existing(fake, function=deployed_function(Envs=envs), timers=MATCHING_TIMERS)
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
    fake: FakeVefaas, client: VefaasClient, deployed_digest: str | None, reason: str
) -> None:
    """A different (or unknown) code digest plans an upload, sending the new digest in Envs."""
    envs = deployed_envs(EXPORTER_CODE_SHA256=deployed_digest)
    existing(fake, function=deployed_function(Envs=envs), timers=MATCHING_TIMERS)
    (update, _release) = make_plan(desired(), client).steps
    assert update.upload
    assert update.reasons[-1].startswith(reason)
    assert {p["Key"]: p["Value"] for p in update.changes["Envs"]}["EXPORTER_CODE_SHA256"] == DIGEST
    assert set(update.changes) == {"Envs"}


def test_timers_are_created_updated_or_left_alone(fake: FakeVefaas, client: VefaasClient) -> None:
    """A missing timer is created, a different one updated with just its changes, an extra one left alone."""
    timers = [
        deployed_timer(
            "t1", "nightly-scan", "0 2 * * *", '{"LookbackHours": 26, "TOSPrefix": "nightly"}', Retries=3
        ),
        deployed_timer("t9", "handmade", "0 0 * * *", ""),
    ]
    existing(fake, timers=timers)
    plan = make_plan(desired(), client)
    steps = [(s.action, s.subject, dict(s.changes)) for s in plan.steps]
    assert steps == [
        ("UpdateTimer", "nightly-scan (id t1)", {"Crontab": "0 3 * * *", "Retries": 0}),
        ("CreateTimer", "image-sweep", {}),
        ("CreateTimer", "weekly", {}),
    ]
    assert plan.steps[0].reasons == ('Crontab: "0 2 * * *" → "0 3 * * *"', "Retries: 3 → 0")
    assert plan.left_alone == ("timer handmade (id t9)",)
    assert "not in the template, left as they are: timer handmade (id t9)" in plan.render()


@pytest.mark.parametrize(
    ("release", "reason"),
    [
        ((404, "ResourceNotFound", "never released"), "the function has never been released"),
        (
            {"Status": "failed", "ErrorCode": "function_start_failed"},
            "the last release failed (function_start_failed): release again",
        ),
    ],
)
def test_an_unreleased_or_failed_function_is_released_again(
    fake: FakeVefaas, client: VefaasClient, release: Any, reason: str
) -> None:
    """Nothing changed, but the latest code never got released: the plan releases it."""
    existing(fake, timers=MATCHING_TIMERS, release=release)
    (step,) = make_plan(desired(), client).steps
    assert (step.action, step.reasons) == ("Release", (reason,))


def test_a_release_in_progress_is_waited_for_before_releasing(fake: FakeVefaas, client: VefaasClient) -> None:
    """When a change needs a release while one is running, the plan says apply waits for it first."""
    existing(
        fake,
        function=deployed_function(MemoryMB=512),
        timers=MATCHING_TIMERS,
        release={"Status": "inprogress"},
    )
    plan = make_plan(desired(), client)
    assert plan.release_in_progress
    assert "a release is in progress: apply waits for it to finish first" in plan.render()


def test_a_function_of_another_runtime_is_a_name_clash(fake: FakeVefaas, client: VefaasClient) -> None:
    """A same-named function with another runtime is not ours: deploy stops and asks for another name."""
    existing(fake, function=deployed_function(Runtime="nodejs16/v1"))
    with pytest.raises(DeployError, match=r"runtime nodejs16/v1.*Choose another function.name"):
        make_plan(desired(), client)


def test_two_functions_with_the_exact_name_stop_the_plan(fake: FakeVefaas, client: VefaasClient) -> None:
    """Deploy never guesses which of two same-named functions to update."""
    twins = [deployed_function(Id="fn000001"), deployed_function(Id="fn000002")]
    fake.results["ListFunctions"] = {"Items": twins, "Total": 2}
    with pytest.raises(DeployError, match="2 functions are named image-exporter"):
        make_plan(desired(), client)


def test_reads_are_retried_after_a_server_error(fake: FakeVefaas, client: VefaasClient) -> None:
    """A 500 on a read is retried (same signer and retry policy as the function's ECS calls)."""
    answers = iter([(500, "InternalError", "try again"), {"Items": [], "Total": 0}])
    fake.results["ListFunctions"] = lambda _body: next(answers)
    assert make_plan(desired(), client).steps[0].action == "CreateFunction"
    assert fake.actions() == ["ListFunctions", "ListFunctions"]


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
    status = apply.main(args, environ=environ)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_main_prints_the_plan_and_writes_nothing(
    fake: FakeVefaas, template_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """deploy (plan is the default) prints the calls and makes only reads."""
    fake.results["ListFunctions"] = {"Items": [], "Total": 0}
    env = {
        **ENVIRON,
        "VOLCENGINE_ACCESS_KEY": CREDENTIALS.access_key,
        "VOLCENGINE_SECRET_KEY": CREDENTIALS.secret_key,
        "VOLCENGINE_ENDPOINT": ENDPOINT,
    }
    args = ["--template", str(template_file), "--zip", str(template_file.parent / "function.zip")]
    status, out, err = run_main(args, env, capsys)
    assert status == 0, err
    assert "1. CreateFunction image-exporter" in out
    assert fake.actions() == ["ListFunctions"]
    assert SECRET not in out + err


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
    fake: FakeVefaas,
    template_file: Path,
    capsys: pytest.CaptureFixture[str],
    environ: dict[str, str],
    expected: str,
) -> None:
    """Missing credentials or a missing ${env:} variable: exit 2, a message naming what to set, no call."""
    args = ["--template", str(template_file), "--zip", str(template_file.parent / "function.zip")]
    status, _out, err = run_main(args, environ, capsys)
    assert status == 2
    assert expected in err
    assert fake.calls == []
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
        apply.main(["--plan", "--apply"])
    assert stopped.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_api_errors_while_planning_exit_1_with_the_explanation(
    fake: FakeVefaas, template_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused read (here: the deployer may not list functions) exits 1 and says what to grant."""
    fake.results["ListFunctions"] = (403, "AccessDenied", "not allowed")
    env = {
        **ENVIRON,
        "VOLCENGINE_ACCESS_KEY": CREDENTIALS.access_key,
        "VOLCENGINE_SECRET_KEY": CREDENTIALS.secret_key,
        "VOLCENGINE_ENDPOINT": ENDPOINT,
    }
    args = ["--template", str(template_file), "--zip", str(template_file.parent / "function.zip")]
    status, _out, err = run_main(args, env, capsys)
    assert status == 1
    assert "the deployer's credentials may not call ListFunctions (AccessDenied: not allowed" in err


def test_a_release_that_never_finishes_gives_up_with_its_last_status(
    fake: FakeVefaas, client: VefaasClient
) -> None:
    """Waiting for a release stops after the timeout, saying where it stood; deploy can be run again."""
    fake.results["GetReleaseStatus"] = {"Status": "inprogress"}
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    out = io.StringIO()
    with pytest.raises(DeployError, match=r"did not finish within 10 s \(last status: inprogress\)"):
        apply.wait_for_release(
            client,
            "fn000001",
            poll_seconds=2.0,
            timeout=10.0,
            out=out,
            sleep=sleep,
            monotonic=lambda: clock[0],
        )
    assert out.getvalue() == "     release status: inprogress\n"
    assert fake.actions().count("GetReleaseStatus") == 6
