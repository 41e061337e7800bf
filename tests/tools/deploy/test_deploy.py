"""exporter-tools deploy against the local veFaaS emulator: from nothing, again, changed, and failing."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter_tools.deploy import cli
from exporter_tools.emulator.vefaas import VefaasEmulator
from handler.adapters.signing import Credentials

CREDENTIALS = Credentials("AKLTdeploye2e000001", "deploy-e2e-secret-000001")
ROLE = "trn:iam::2100000000:role/VefaasEcsExportRole"
HOOK_SECRET = "whsec_ZTJlIGRlcGxveSBzZWNyZXQgdmFsdWU="
APPLY = ("--apply", "--auto-approve")  # no terminal to confirm on in a test
TEMPLATE = """\
region: cn-beijing
function:
  name: image-exporter
  memory_mb: {memory}
  timeout_seconds: 900
  role: trn:iam::${{env:ACCOUNT_ID}}:role/VefaasEcsExportRole
  description: Exports new ECS custom images to TOS.
  tags:
    app: image-exporter
  environment:
    EXPORT_TOS_BUCKET: ${{env:BUCKET}}
    WEBHOOK_SECRET: ${{env:HOOK_SECRET:-}}
    WEBHOOK_URL: ${{env:HOOK_URL:-}}
timers:
  - name: nightly-scan
    crontab: "0 3 * * *"
    payload:
      LookbackHours: 26
    retries: 2
  - name: image-sweep
    crontab: "{sweep}"
    payload:
      LookbackHours: {lookback}
"""


def function_zip(marker: str = "v1", *, with_handler: bool = True) -> bytes:
    """A small deployable zip (or one the runtime cannot start: its index.py has no handler)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        index = zipfile.ZipInfo("index.py", date_time=(1980, 1, 1, 0, 0, 0))
        code = "def handler(event, context):\n    return {}\n" if with_handler else "HANDLER = None\n"
        archive.writestr(index, f"# {marker}\n{code}")
        archive.writestr(
            zipfile.ZipInfo("handler/__init__.py", date_time=(1980, 1, 1, 0, 0, 0)), f"# {marker}\n"
        )
    return buffer.getvalue()


class Deployer:
    """Runs ``deploy`` (main, as ``exporter-tools deploy`` does) on a template and zip in a folder."""

    def __init__(self, folder: Path, emulator: VefaasEmulator, capsys: pytest.CaptureFixture[str]) -> None:
        self.folder = folder
        self.emulator = emulator
        self.capsys = capsys
        self.stdin: io.StringIO = io.StringIO()  # not a terminal, unless a test gives a Terminal
        self.environ = {
            "VOLCENGINE_ENDPOINT": emulator.endpoint,
            "VOLCENGINE_ACCESS_KEY": CREDENTIALS.access_key,
            "VOLCENGINE_SECRET_KEY": CREDENTIALS.secret_key,
            "ACCOUNT_ID": "2100000000",
            "BUCKET": "my-exports",
            "HOOK_SECRET": HOOK_SECRET,
            "VOLCENGINE_MAX_RPS": "1000",
        }
        self.template(memory=512, sweep="*/15 * * * *", lookback=2)
        self.code(function_zip())

    def template(self, **values: Any) -> None:
        (self.folder / "template.yaml").write_text(TEMPLATE.format(**values), encoding="utf-8")

    def code(self, data: bytes) -> None:
        (self.folder / "function.zip").write_bytes(data)

    def __call__(self, *flags: str) -> tuple[int, str, str]:
        out = io.StringIO()
        args = ["--template", str(self.folder / "template.yaml"), "--zip", str(self.folder / "function.zip")]
        if "--apply" in flags and "--no-doctor" not in flags:
            flags = (*flags, "--no-doctor")  # no ECS here to check: tests/tools/deploy/test_deploy_doctor.py
        status = cli.main(
            [*args, "--poll-seconds", "0", *flags], environ=self.environ, out=out, stdin=self.stdin
        )
        err = self.capsys.readouterr().err
        assert HOOK_SECRET not in out.getvalue() + err
        return status, out.getvalue(), err

    def writes(self) -> list[tuple[str, dict[str, Any]]]:
        return list(self.emulator.vefaas.writes)

    def function(self) -> dict[str, Any]:
        found = self.emulator.vefaas.function_named("image-exporter")
        assert found is not None
        return found


@pytest.fixture
def start_vefaas() -> Iterator[Callable[..., VefaasEmulator]]:
    """Start veFaaS emulators (accepting CREDENTIALS unless told otherwise); all stop after the test."""
    started: list[VefaasEmulator] = []

    def start(**options: Any) -> VefaasEmulator:
        options.setdefault("credentials", CREDENTIALS)
        emulator = VefaasEmulator(seed=1, **options)
        emulator.start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.close()


@pytest.fixture
def deploy(
    start_vefaas: Callable[..., VefaasEmulator], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Deployer:
    """deploy, pointed at an empty emulated veFaaS account."""
    return Deployer(tmp_path, start_vefaas(), capsys)


def envs_of(function: dict[str, Any]) -> dict[str, str]:
    return {pair["Key"]: pair["Value"] for pair in function["Envs"]}


def test_deploy_from_nothing_creates_releases_and_schedules(deploy: Deployer) -> None:
    """An empty account gets the function, a done release of revision 1, and both timers."""
    # When
    status, out, err = deploy(*APPLY)
    # Then
    assert status == 0, err
    assert [action for action, _ in deploy.writes()] == [
        "CreateFunction",
        "Release",
        "CreateTimer",
        "CreateTimer",
    ]
    function = deploy.function()
    assert (function["Runtime"], function["MemoryMB"], function["RequestTimeout"]) == (
        "python3.12/v1",
        512,
        900,
    )
    assert function["Role"] == ROLE
    assert function["Code"] == function_zip()
    assert envs_of(function) == {
        "EXPORT_TOS_BUCKET": "my-exports",
        "WEBHOOK_SECRET": HOOK_SECRET,
        "VOLCENGINE_REGION": "cn-beijing",
        "FUNCTION_TIMEOUT_SECONDS": "900",
        "EXPORTER_CODE_SHA256": hashlib.sha256(function_zip()).hexdigest(),
    }
    assert [r["RevisionNumber"] for r in function["Revisions"]] == [1]
    timers = {t["Name"]: t for t in function["Timers"]}
    assert timers["nightly-scan"]["Crontab"] == "0 3 * * *"
    assert timers["nightly-scan"]["Payload"] == '{"LookbackHours": 26}'
    assert timers["nightly-scan"]["Retries"] == 2
    assert timers["image-sweep"]["Payload"] == '{"LookbackHours": 2}'
    assert "release status: done" in out
    assert "+ WEBHOOK_SECRET=(hidden)" in out
    assert '+ EXPORT_TOS_BUCKET="my-exports"' in out


def test_deploying_again_makes_no_write_call(deploy: Deployer) -> None:
    """A second apply with nothing changed only reads, and says there is nothing to change."""
    deploy(*APPLY)
    before = deploy.writes()
    status, out, _err = deploy(*APPLY)
    assert status == 0
    assert deploy.writes() == before
    assert "Nothing to change" in out
    requests = deploy.emulator.stats()["requests"]
    assert requests["CreateFunction"] == {"200": 1}
    assert "UpdateFunction" not in requests
    assert "UpdateTimer" not in requests


def test_the_plan_alone_writes_nothing(deploy: Deployer) -> None:
    """deploy without --apply lists the calls and leaves the account empty."""
    status, out, _err = deploy()
    assert status == 0
    assert deploy.writes() == []
    assert "4 write calls. Run with --apply to make them." in out


def test_a_changed_template_sends_exactly_the_changed_fields(deploy: Deployer) -> None:
    """More memory and a new sweep schedule: UpdateFunction {MemoryMB}, Release, UpdateTimer {Crontab, Payload}."""
    deploy(*APPLY)
    function_id = deploy.function()["Id"]
    sweep_id = next(t["Id"] for t in deploy.function()["Timers"] if t["Name"] == "image-sweep")
    done = len(deploy.writes())
    # When
    deploy.template(memory=1024, sweep="*/10 * * * *", lookback=3)
    status, out, err = deploy(*APPLY)
    # Then
    assert status == 0, err
    assert deploy.writes()[done:] == [
        ("UpdateFunction", {"Id": function_id, "MemoryMB": 1024}),
        (
            "Release",
            {
                "FunctionId": function_id,
                "RevisionNumber": 0,
                "TargetTrafficWeight": 100,
                "RollingStep": 100,
                "Description": f"code sha256 {hashlib.sha256(function_zip()).hexdigest()[:16]}",
            },
        ),
        (
            "UpdateTimer",
            {
                "FunctionId": function_id,
                "Id": sweep_id,
                "Crontab": "*/10 * * * *",
                "Payload": '{"LookbackHours": 3}',
            },
        ),
    ]
    assert "MemoryMB: 512 → 1024" in out
    assert 'Crontab: "*/15 * * * *" → "*/10 * * * *"' in out
    assert [r["RevisionNumber"] for r in deploy.function()["Revisions"]] == [1, 2]


def test_new_code_is_uploaded_with_its_digest_and_released(deploy: Deployer) -> None:
    """A different zip is sent inline with its new digest; nothing else changes."""
    deploy(*APPLY)
    done = len(deploy.writes())
    deploy.code(function_zip("v2"))
    status, out, err = deploy(*APPLY)
    assert status == 0, err
    (update, release) = deploy.writes()[done:]
    assert update[0] == "UpdateFunction"
    assert set(update[1]) == {
        "Id",
        "Envs",
        "SourceType",
    }  # Source is sent too; the emulator keeps it out of writes
    assert release[0] == "Release"
    assert deploy.function()["Code"] == function_zip("v2")
    assert "code: sha256 " in out


def test_a_release_that_fails_is_reported_and_nothing_is_scheduled(deploy: Deployer) -> None:
    """Code the runtime cannot start: exit 1 with the platform's error code, message and instance log;
    no timer points at a broken function. Fixing the code and deploying again finishes the job."""
    deploy.code(function_zip(with_handler=False))
    # When
    status, _out, err = deploy(*APPLY)
    # Then
    assert status == 1
    assert (
        "the release of image-exporter failed: function_start_failed: the runtime could not import index.handler"
        in err
    )
    assert "AttributeError: module 'index' has no attribute 'handler'" in err
    assert [action for action, _ in deploy.writes()] == ["CreateFunction", "Release"]
    # When the code is fixed
    deploy.code(function_zip("fixed"))
    status, _out, err = deploy(*APPLY)
    # Then
    assert status == 0, err
    assert [action for action, _ in deploy.writes()][2:] == [
        "UpdateFunction",
        "Release",
        "CreateTimer",
        "CreateTimer",
    ]


def test_a_failed_release_is_retried_by_the_next_deploy(deploy: Deployer) -> None:
    """When the platform fails a release, the next deploy releases again though nothing changed."""
    deploy.emulator.vefaas.fail_next_release("function_health_check_failed", "health check timed out", "")
    status, _out, err = deploy(*APPLY)
    assert status == 1
    assert "function_health_check_failed: health check timed out" in err
    assert "(no instance logs)" in err
    status, out, err = deploy(*APPLY)
    assert status == 0, err
    assert "the last release failed (function_health_check_failed): release again" in out
    assert [action for action, _ in deploy.writes()][2:] == ["Release", "CreateTimer", "CreateTimer"]


def test_a_role_vefaas_may_not_use_says_which_role_to_create(
    start_vefaas: Callable[..., VefaasEmulator], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CreateFunction refused for the role: exit 1, naming the role to create and its policy."""
    deploy = Deployer(tmp_path, start_vefaas(roles={"trn:iam::2100000000:role/SomethingElse"}), capsys)
    status, _out, err = deploy(*APPLY)
    assert status == 1
    assert f"veFaaS may not use the role {ROLE}" in err
    assert "Create the IAM role VefaasEcsExportRole" in err
    assert deploy.emulator.vefaas.function_named("image-exporter") is None


def test_keys_the_gateway_does_not_accept_stop_the_plan(
    start_vefaas: Callable[..., VefaasEmulator], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong secret key: the gateway's SignatureDoesNotMatch, exit 1, and the key never printed."""
    deploy = Deployer(tmp_path, start_vefaas(), capsys)
    deploy.environ["VOLCENGINE_SECRET_KEY"] = "not-the-right-secret-key"
    status, _out, err = deploy()
    assert status == 1
    assert "SignatureDoesNotMatch" in err
    assert "not-the-right-secret-key" not in err


def test_deploy_builds_the_real_zip_when_none_is_given(
    deploy: Deployer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without --zip, deploy builds dist/function.zip reproducibly and uploads it."""
    from exporter_tools.deploy import package

    root = Path(__file__).resolve().parents[3]
    monkeypatch.setattr(package, "DEFAULT_CACHE", root / "dist" / ".vendor")
    monkeypatch.setattr(package, "DEFAULT_OUTPUT", tmp_path / "dist" / "function.zip")
    status = cli.main(
        ["--template", str(deploy.folder / "template.yaml"), *APPLY, "--no-doctor", "--poll-seconds", "0"],
        environ=deploy.environ,
        out=io.StringIO(),
    )
    assert status == 0
    code = deploy.function()["Code"]
    assert code == (tmp_path / "dist" / "function.zip").read_bytes()
    assert "index.py" in zipfile.ZipFile(io.BytesIO(code)).namelist()


def seed_function(emulator: VefaasEmulator, name: str, runtime: str) -> None:
    """Put a function in the emulated account directly (as if created in the console)."""
    import base64
    import json

    from exporter_tools.emulator.api import ApiCall

    body = {
        "Name": name,
        "Runtime": runtime,
        "SourceType": "zip",
        "Source": base64.b64encode(function_zip()).decode(),
    }
    call = ApiCall("POST", "CreateFunction", "2024-06-06", {}, json.dumps(body).encode(), "application/json")
    assert emulator.vefaas.handle(call).code is None
    emulator.vefaas.writes.clear()


def test_a_same_named_function_of_another_runtime_is_a_name_clash(deploy: Deployer) -> None:
    """A function called image-exporter that is not ours (another runtime): exit 1, nothing written."""
    seed_function(deploy.emulator, "image-exporter", "nodejs16/v1")
    status, _out, err = deploy(*APPLY)
    assert status == 1
    assert "a function named image-exporter already exists" in err
    assert "Choose another function.name" in err
    assert deploy.writes() == []


def test_a_runtime_answered_in_another_spelling_is_still_ours(
    start_vefaas: Callable[..., VefaasEmulator], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An API that answers python3.12/v1 as vefaas.base.python3.12.v1 (the documentation spells it both ways):
    the next deploy compares the version, finds its own function and has nothing to change."""
    spelling = {"python3.12/v1": "vefaas.base.python3.12.v1"}
    deploy = Deployer(tmp_path, start_vefaas(runtime_answers=spelling), capsys)
    status, _out, err = deploy(*APPLY)
    assert status == 0, err
    assert deploy.function()["Runtime"] == "vefaas.base.python3.12.v1"
    status, out, err = deploy(*APPLY)
    assert status == 0, err
    assert "Nothing to change" in out


@pytest.mark.parametrize(
    ("deployed", "same"),
    [
        ("python3.12/v1", True),
        ("vefaas.base.python3.12.v1", True),
        ("Python3.12/v1", True),
        ("python3.9/v1", False),
        ("python3.1/v1", False),
        ("nodejs16/v1", False),
        ("golang/v1", False),
    ],
)
def test_runtimes_are_compared_by_language_and_version(deployed: str, same: bool) -> None:
    """same_runtime reads the language and version out of any spelling; 3.1 is not 3.12."""
    from exporter_tools.deploy.vefaas import same_runtime

    assert same_runtime(deployed, "python3.12/v1") is same


def test_functions_with_similar_names_are_not_mistaken_for_ours(deploy: Deployer) -> None:
    """The name filter also lists image-exporter-old; deploy matches exactly and creates its own."""
    seed_function(deploy.emulator, "image-exporter-old", "python3.12/v1")
    status, _out, err = deploy(*APPLY)
    assert status == 0, err
    assert deploy.writes()[0][0] == "CreateFunction"
    assert deploy.emulator.vefaas.function_named("image-exporter-old") is not None


def test_apply_says_it_is_applying_not_to_run_with_apply(deploy: Deployer) -> None:
    """With --apply the plan's last line says the calls are being made; without it, how to make them."""
    status, applied, _err = deploy(*APPLY)
    assert status == 0
    assert "4 write calls, applying:" in applied
    assert "Run with --apply" not in applied


def _zip_of(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (b"def handler(event, context):\n    return {}\n", "not a zip file (it is text)"),
        (
            _zip_of({"index.py": "", "pydantic_core/_pydantic_core.cpython-311-x86_64-linux-gnu.so": "x"}),
            "_pydantic_core.cpython-311-x86_64-linux-gnu.so is built for CPython 3.11, the runtime is 3.12",
        ),
        (_zip_of({"handler/__init__.py": ""}), "no index.py at the zip's root"),
    ],
)
def test_a_zip_the_runtime_cannot_start_is_refused_before_any_call(
    deploy: Deployer, code: bytes, expected: str
) -> None:
    """deploy --zip with a text file, a zip built for Python 3.11 or one without index.py: exit 2, the file
    and the reason named, and not one call made (nothing created that Release would then fail)."""
    deploy.code(code)
    status, _out, err = deploy(*APPLY)
    assert status == 2
    assert f"deploy: {deploy.folder / 'function.zip'}: not deployable to python3.12/v1: " in err
    assert expected in err
    assert deploy.emulator.stats()["requests_total"] == 0


@pytest.mark.parametrize(
    ("variable", "value", "refused"),
    [
        ("BUCKET", "Bad_Bucket", "function.environment.EXPORT_TOS_BUCKET: expected 3-63 lowercase letters"),
        ("HOOK_URL", "not-a-url", "function.environment.WEBHOOK_URL: expected an https URL"),
        (
            "HOOK_SECRET",
            "whsec_!!!",
            "function.environment.WEBHOOK_SECRET: expected whsec_ followed by base64",
        ),
    ],
)
def test_values_the_function_would_refuse_are_refused_by_name(
    deploy: Deployer, variable: str, value: str, refused: str
) -> None:
    """A value filled in from ${env:...} that the function's settings would refuse at every invocation: exit 2
    naming the variable, before any call; a secret's value is never shown (others are, as the function's own
    settings show them)."""
    deploy.environ[variable] = value
    status, out, err = deploy(*APPLY)
    assert status == 2
    assert refused in err
    assert "once ${env:…} is filled in" in err
    if variable == "HOOK_SECRET":
        assert value not in out + err
    assert deploy.emulator.stats()["requests_total"] == 0


class _StopsAfter(io.StringIO):
    """deploy's output that stops the process (Ctrl-C) once ``text`` has been printed."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def write(self, s: str, /) -> int:
        written = super().write(s)
        if self.text in s:
            raise KeyboardInterrupt
        return written


def interrupted(deploy: Deployer, after: str) -> None:
    """Run deploy --apply and stop it as soon as it prints ``after``."""
    args = ["--template", str(deploy.folder / "template.yaml"), "--zip", str(deploy.folder / "function.zip")]
    with pytest.raises(KeyboardInterrupt):
        cli.main(
            [*args, "--poll-seconds", "0", *APPLY, "--no-doctor"],
            environ=deploy.environ,
            out=_StopsAfter(after),
        )


def test_a_deploy_stopped_after_create_function_is_finished_by_the_next(deploy: Deployer) -> None:
    """Stopped right after CreateFunction (created, never released: GetReleaseStatus says pending), the next
    deploy releases the function and creates the timers."""
    interrupted(deploy, "created: id")
    assert [action for action, _ in deploy.writes()] == ["CreateFunction"]
    status, out, err = deploy(*APPLY)
    assert status == 0, err
    assert "Release image-exporter (revision 0: the latest code and configuration)" in out
    assert "the function has never been released: release it" in out
    assert [action for action, _ in deploy.writes()] == [
        "CreateFunction",
        "Release",
        "CreateTimer",
        "CreateTimer",
    ]
    assert [r["RevisionNumber"] for r in deploy.function()["Revisions"]] == [1]
    assert {t["Name"] for t in deploy.function()["Timers"]} == {"nightly-scan", "image-sweep"}


def test_a_deploy_stopped_during_the_release_waits_for_it_then_adds_the_timers(deploy: Deployer) -> None:
    """Stopped while the release runs, the next deploy waits for that release (no second one), then creates
    the timers."""
    interrupted(deploy, "releasing revision 1")
    status, out, err = deploy(*APPLY)
    assert status == 0, err
    assert "waiting for the release in progress" in out
    assert [action for action, _ in deploy.writes()] == [
        "CreateFunction",
        "Release",
        "CreateTimer",
        "CreateTimer",
    ]


def test_a_deploy_stopped_before_the_timers_only_adds_them(deploy: Deployer) -> None:
    """Released but stopped before the timers: the next deploy creates just the timers."""
    interrupted(deploy, "release status: done")
    status, _out, err = deploy(*APPLY)
    assert status == 0, err
    assert [action for action, _ in deploy.writes()] == [
        "CreateFunction",
        "Release",
        "CreateTimer",
        "CreateTimer",
    ]
    status, out, _err = deploy(*APPLY)
    assert status == 0
    assert "Nothing to change" in out
