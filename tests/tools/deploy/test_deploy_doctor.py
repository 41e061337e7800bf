"""``deploy --apply`` ends with the doctor's checks on the settings it deployed (veFaaS's invoke API is not in
the verified facts, so the checks run from the deployer's machine): against one emulated account that serves
veFaaS, ECS and TOS on one port, as ``exporter-tools emulator`` does."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter_tools.deploy import cli
from exporter_tools.deploy.checkup import DOCTOR_EVENT_HINT, deployed_environment
from exporter_tools.deploy.connect import Connection
from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.vefaas import VefaasService
from handler.adapters.signing import Credentials
from handler.core.doctor_bucket import probe_key
from tests.support.emulated import CREDENTIALS
from tests.tools.deploy.test_deploy import function_zip

APPLY = ("--apply", "--auto-approve")
# The deployed prefix is the template's, never the deployer's shell's: the doctor's probe shows which it used.
TEMPLATE = """\
region: cn-beijing
function:
  name: image-exporter
  timeout_seconds: 900
  role: trn:iam::2100000000:role/VefaasEcsExportRole
  environment:
    EXPORT_TOS_BUCKET: ${env:BUCKET}
    EXPORT_TOS_PREFIX: deployed1
timers:
  - name: image-sweep
    crontab: "*/15 * * * *"
    payload:
      LookbackHours: 2
"""


class Account:
    """One emulated account (the demo fleet, its bucket demo-exports, and veFaaS) and ``deploy`` against it."""

    def __init__(self, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.emulator = EcsEmulator(credentials=CREDENTIALS, seed=1)
        self.vefaas = VefaasService(seed=1)
        self.emulator.services[self.vefaas.service] = self.vefaas
        self.emulator.start()
        self.folder = folder
        self.capsys = capsys
        (folder / "template.yaml").write_text(TEMPLATE, encoding="utf-8")
        (folder / "function.zip").write_bytes(function_zip())
        self.environ = {
            "VOLCENGINE_ENDPOINT": self.emulator.endpoint,
            "TOS_ENDPOINT": self.emulator.endpoint,
            "VOLCENGINE_ACCESS_KEY": CREDENTIALS.access_key,
            "VOLCENGINE_SECRET_KEY": CREDENTIALS.secret_key,
            "BUCKET": "demo-exports",
            "VOLCENGINE_MAX_RPS": "1000",
        }

    def deploy(self, *flags: str) -> tuple[int, str, str]:
        out = io.StringIO()
        args = ["--template", str(self.folder / "template.yaml"), "--zip", str(self.folder / "function.zip")]
        status = cli.main([*args, "--poll-seconds", "0", *flags], environ=self.environ, out=out)
        err = self.capsys.readouterr().err
        assert CREDENTIALS.secret_key not in out.getvalue() + err
        return status, out.getvalue(), err


@pytest.fixture
def account(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Account]:
    made = Account(tmp_path, capsys)
    yield made
    made.emulator.close()


def test_an_apply_ends_with_the_doctors_table_on_the_deployed_settings(account: Account) -> None:
    """After "Deployed …", the doctor's table: every check passes, with the template's prefix (not the
    shell's), and the last line says how to run the Doctor event with the function's own role."""
    status, out, err = account.deploy(*APPLY)

    assert status == 0, err
    _deployed, doctor = out.split("Deployed image-exporter (id ", 1)[1].split("\n", 1)
    assert doctor.startswith(
        "\nDoctor: the image exporter in cn-beijing, bucket demo-exports (prefix deployed1)\n"
        "The settings just deployed, checked from here with your keys:\n\n"
    )
    rows = [line for line in doctor.splitlines() if line.startswith("[")]
    assert [row.split()[:2] for row in rows] == [
        ["[✓]", name] for name in ("settings", "credentials", "clock", "bucket", "bucket_access", "images")
    ]
    assert f"tos://demo-exports/{probe_key('deployed1')}" in doctor
    assert doctor.endswith(
        "No issues found: 6 checks passed.\n" + DOCTOR_EVENT_HINT.format(name="image-exporter") + "\n"
    )
    assert '{"Doctor": true}' in doctor
    assert err.count("deploy:") == 0


def test_a_failed_check_exits_1_with_the_deployment_done_and_said_so(account: Account) -> None:
    """The role may not write the bucket: the function and its timer are deployed, the table shows the ✗ row
    and its fix, stderr says the deployment is done, and the exit status is 1."""
    account.emulator.set_bucket_access("demo-exports", "read-only")

    status, out, err = account.deploy(*APPLY)

    assert status == 1
    assert account.vefaas.function_named("image-exporter") is not None
    assert [action for action, _ in account.vefaas.writes] == ["CreateFunction", "Release", "CreateTimer"]
    assert "Deployed image-exporter" in out
    assert "[✗] bucket_access" in out
    assert "    → grant the function's role tos:PutObject" in out
    assert "1 check failed, 0 warnings." in out
    assert "deploy: the deployment is done, but a doctor's check failed" in err


def test_an_apply_with_nothing_to_change_still_ends_with_the_doctor(account: Account) -> None:
    account.deploy(*APPLY)
    writes = list(account.vefaas.writes)

    status, out, _err = account.deploy(*APPLY)

    assert status == 0
    assert account.vefaas.writes == writes
    assert "Nothing to change: the account matches the template.\n\nDoctor: the image exporter" in out


def test_no_doctor_leaves_the_checks_out(account: Account) -> None:
    """With --no-doctor nothing is sent to ECS or TOS: the apply's own calls only."""
    status, out, _err = account.deploy(*APPLY, "--no-doctor")

    assert status == 0
    assert "Doctor:" not in out
    stats = account.emulator.stats()
    assert "DescribeImages" not in stats["requests"]
    assert not stats["tos"]["requests"]


@pytest.mark.parametrize("flags", [("--no-doctor",), ("--plan", "--no-doctor")])
def test_no_doctor_without_apply_is_a_usage_error(
    account: Account, flags: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        account.deploy(*flags)
    assert stopped.value.code == 2
    assert "--no-doctor goes with --apply" in capsys.readouterr().err


def test_the_doctor_gets_the_deployed_environment_with_the_deployers_connection() -> None:
    """The function's own keys, endpoints and CA bundle give way to what this machine uses; every other
    deployed value is kept as it was deployed."""
    deployed = {
        "EXPORT_TOS_BUCKET": "demo-exports",
        "VOLCENGINE_ENDPOINT": "https://open.internal.example",
        "TOS_ENDPOINT": "https://tos-cn-beijing.ivolces.com",
        "VOLC_ACCESSKEY": "AKLTfunctions0001",
        "VOLC_SECRETKEY": "functions-secret",
        "SSL_CERT_FILE": "/function/ca.pem",
        "LOG_LEVEL": "INFO",
    }
    connected = Connection(
        Credentials("AKLTdeployer001", "deployer-secret", "sts-token"), "http://gw", "http://tos", 10
    )

    env = deployed_environment(deployed, connected, {"SSL_CERT_FILE": "/here/ca.pem", "OTHER": "x"})

    assert env == {
        "EXPORT_TOS_BUCKET": "demo-exports",
        "LOG_LEVEL": "INFO",
        "VOLCENGINE_ENDPOINT": "http://gw",
        "TOS_ENDPOINT": "http://tos",
        "VOLCENGINE_ACCESS_KEY": "AKLTdeployer001",
        "VOLCENGINE_SECRET_KEY": "deployer-secret",
        "VOLCENGINE_SESSION_TOKEN": "sts-token",
        "SSL_CERT_FILE": "/here/ca.pem",
    }


def test_the_readme_shows_the_table_as_deploy_prints_it() -> None:
    """The README's step 5 is the table deploy prints: its second line, a row per check in order with the
    mark first, the count, and the last line on the Doctor event."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    block = readme.split("### 5. The doctor", 1)[1].split("```\n", 2)[1].splitlines()
    assert block[0].startswith("Doctor: the image exporter in cn-beijing, bucket ")
    assert block[1] == "The settings just deployed, checked from here with your keys:"
    rows = [line.split()[:2] for line in block if line.startswith("[")]
    assert rows == [
        ["[✓]", name] for name in ("settings", "credentials", "clock", "bucket", "bucket_access", "images")
    ]
    assert block[-2:] == [
        "No issues found: 6 checks passed.",
        DOCTOR_EVENT_HINT.format(name="image-exporter"),
    ]
