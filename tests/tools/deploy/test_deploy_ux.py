"""deploy as a plan-and-apply tool, against the local veFaaS emulator: confirmation and --auto-approve, the
plan as JSON, --detailed-exitcode, --destroy, every missing variable in one run, and the warning for a
webhook URL that cannot be meant for a deployed function."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exporter_tools.deploy import package
from exporter_tools.deploy import template as validate
from exporter_tools.deploy.checks import resolved_warnings
from exporter_tools.deploy.destroy import DestroyPlan, apply_destroy, plan_destroy
from exporter_tools.deploy.plan import DeployError
from exporter_tools.deploy.vefaas import DeployedFunction, TriggerRef
from exporter_tools.emulator.vefaas import VefaasEmulator
from handler.errors import TerminalApiError
from tests.tools.deploy.test_deploy import APPLY, HOOK_SECRET, Deployer, deploy, start_vefaas

__all__ = ["deploy", "start_vefaas"]  # the fixtures, shared with test_deploy.py

WRITES = ["CreateFunction", "Release", "CreateTimer", "CreateTimer"]


class Terminal(io.StringIO):
    """A stdin that is a terminal, holding what the person types."""

    def isatty(self) -> bool:
        return True


def actions(deploy: Deployer) -> list[str]:
    return [action for action, _ in deploy.writes()]


# ---------------------------------------------------------------------------------------------------------
# --apply asks on a terminal, and needs --auto-approve without one.


def test_apply_without_a_terminal_needs_auto_approve(deploy: Deployer) -> None:
    """--apply with stdin not a terminal and no --auto-approve: a usage error (exit 2) before any call."""
    with pytest.raises(SystemExit) as stopped:
        deploy("--apply")
    assert stopped.value.code == 2
    assert "add --auto-approve to apply without asking" in deploy.capsys.readouterr().err
    assert deploy.emulator.stats()["requests_total"] == 0


def test_apply_on_a_terminal_asks_and_yes_makes_the_calls(deploy: Deployer) -> None:
    """On a terminal, --apply prints the plan, asks, and makes the calls on "yes"."""
    deploy.stdin = Terminal("yes\n")
    status, out, err = deploy("--apply")
    assert status == 0, err
    assert "4 write calls.\nMake these 4 calls in cn-beijing? Only 'yes' is accepted: applying:\n" in out
    assert actions(deploy) == WRITES


@pytest.mark.parametrize(
    "answer", ["no\n", "y\n", "YES please\n", ""], ids=["no", "y", "other", "end-of-input"]
)
def test_anything_but_yes_cancels_and_writes_nothing(deploy: Deployer, answer: str) -> None:
    """Any other answer, or the end of input: exit 1, "cancelled: nothing was written", not one write."""
    deploy.stdin = Terminal(answer)
    status, _out, err = deploy("--apply")
    assert status == 1
    assert "deploy: cancelled: nothing was written" in err
    assert deploy.writes() == []


def test_nothing_to_change_asks_nothing(deploy: Deployer) -> None:
    """A plan with no write call applies without a question (there is nothing to confirm)."""
    deploy(*APPLY)
    deploy.stdin = Terminal("")
    status, out, _err = deploy("--apply")
    assert status == 0
    assert "Nothing to change" in out
    assert "Only 'yes'" not in out


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--json", "--apply", "--auto-approve"), "--json prints the plan"),
        (("--detailed-exitcode", "--apply", "--auto-approve"), "--detailed-exitcode is for a plan"),
        (("--auto-approve",), "--auto-approve goes with --apply"),
    ],
)
def test_flags_that_do_not_go_together_are_usage_errors(
    deploy: Deployer, flags: tuple[str, ...], says: str
) -> None:
    """Each is refused (exit 2, or 1 under --detailed-exitcode, whose 2 means changes) before any call."""
    if "--detailed-exitcode" in flags:
        status, _out, err = deploy(*flags)
        assert status == 1
    else:
        with pytest.raises(SystemExit) as stopped:
            deploy(*flags)
        assert stopped.value.code == 2
        err = deploy.capsys.readouterr().err
    assert says in err
    assert deploy.emulator.stats()["requests_total"] == 0


# ---------------------------------------------------------------------------------------------------------
# --json


def test_json_is_the_plan_for_programs(deploy: Deployer) -> None:
    """deploy --json: one JSON document with every step (action, subject, reasons, the fields it sends by name
    only), whether anything would change, and no secret; nothing is written."""
    status, out, err = deploy("--json")
    assert status == 0, err
    plan = json.loads(out)
    assert (plan["format_version"], plan["operation"], plan["changes_pending"]) == (1, "deploy", True)
    assert plan["function"] == {"name": "image-exporter", "id": None, "region": "cn-beijing"}
    assert [step["action"] for step in plan["steps"]] == WRITES
    assert plan["steps"][0]["uploads_code"] is True
    assert any("WEBHOOK_SECRET=(hidden)" in reason for reason in plan["steps"][0]["reasons"])
    assert HOOK_SECRET not in out
    assert deploy.writes() == []


def test_json_after_applying_has_nothing_pending(deploy: Deployer) -> None:
    """Once applied, the JSON plan has no step, lists what is unchanged, and says nothing is pending."""
    deploy(*APPLY)
    changed = len(deploy.writes())
    deploy.template(memory=1024, sweep="*/15 * * * *", lookback=2)
    update = json.loads(deploy("--json")[1])
    assert [(s["action"], s["fields"]) for s in update["steps"]] == [
        ("UpdateFunction", ["MemoryMB"]),
        ("Release", []),
    ]
    deploy.template(memory=512, sweep="*/15 * * * *", lookback=2)
    plan = json.loads(deploy("--json")[1])
    assert (plan["changes_pending"], plan["steps"]) == (False, [])
    assert "timer nightly-scan" in plan["unchanged"]
    assert len(deploy.writes()) == changed


# ---------------------------------------------------------------------------------------------------------
# --detailed-exitcode


def test_detailed_exitcode_says_whether_the_plan_has_changes(deploy: Deployer) -> None:
    """0 nothing to change, 2 changes pending (as Terraform's plan), and the plan still printed."""
    status, out, _err = deploy("--detailed-exitcode")
    assert status == 2
    assert "4 write calls. Run with --apply to make them." in out
    deploy(*APPLY)
    assert deploy("--detailed-exitcode")[0] == 0
    assert deploy("--detailed-exitcode", "--json")[0] == 0


@pytest.mark.parametrize(
    ("spoil", "plain"),
    [
        pytest.param(lambda d: d.environ.pop("BUCKET"), 2, id="configuration"),
        pytest.param(lambda d: d.environ.update(VOLCENGINE_SECRET_KEY="not-the-secret-key"), 1, id="api"),
        pytest.param(lambda d: d.code(b"not a zip"), 2, id="zip"),
    ],
)
def test_detailed_exitcode_makes_every_error_1(
    deploy: Deployer, spoil: Callable[[Deployer], Any], plain: int
) -> None:
    """Under --detailed-exitcode a configuration error, an API error and a bad zip all exit 1, so that 2
    only ever means changes pending; without it each keeps the convention's status."""
    spoil(deploy)
    assert deploy("--detailed-exitcode")[0] == 1
    assert deploy()[0] == plain


# ---------------------------------------------------------------------------------------------------------
# --destroy


def test_destroy_plans_the_deletes_and_writes_nothing(deploy: Deployer) -> None:
    """deploy --destroy lists DeleteTimer for each timer, then DeleteFunction, and what is kept; no write."""
    deploy(*APPLY)
    written = deploy.writes()
    status, out, err = deploy("--destroy")
    assert status == 0, err
    function_id = deploy.function()["Id"]
    assert f"Destroy plan for function image-exporter (id {function_id}) in cn-beijing:" in out
    assert re.findall(r"\d\. (\w+) ", out) == ["DeleteTimer", "DeleteTimer", "DeleteFunction"]
    assert "kept: the export bucket, its exports and manifests, and its lifecycle rules" in out
    assert "3 write calls. Run with --destroy --apply to make them." in out
    assert deploy.writes() == written


def test_destroy_apply_deletes_the_timers_then_the_function_and_never_touches_tos(
    start_vefaas: Callable[..., VefaasEmulator], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--destroy --apply --auto-approve: the timers, then the function, are deleted; the bucket (and TOS) is
    not touched; a second destroy has nothing to do (exit 0, and 0 under --detailed-exitcode)."""
    deploy = Deployer(tmp_path, start_vefaas(buckets=["my-exports"]), capsys)
    deploy(*APPLY)
    status, out, err = deploy("--destroy", *APPLY)
    assert status == 0, err
    assert actions(deploy)[4:] == ["DeleteTimer", "DeleteTimer", "DeleteFunction"]
    assert deploy.emulator.vefaas.function_named("image-exporter") is None
    assert "Destroyed image-exporter: the function and its timers are deleted" in out
    assert deploy.emulator.tos.stats()["requests"] == {}
    status, out, _err = deploy("--destroy")
    assert status == 0
    assert "Nothing to destroy: no function named image-exporter in cn-beijing." in out
    assert deploy("--destroy", "--detailed-exitcode")[0] == 0


def test_destroy_needs_no_variable_and_no_zip(deploy: Deployer) -> None:
    """A destroy reads only the function's name and region: no ${env:...}, no zip is built or read."""
    deploy(*APPLY)
    for name in ("ACCOUNT_ID", "BUCKET", "HOOK_SECRET"):
        deploy.environ.pop(name)
    deploy.code(b"not a zip")
    deploy.stdin = Terminal("yes\n")
    status, out, err = deploy("--destroy", "--apply")
    assert status == 0, err
    assert "Make these 3 calls in cn-beijing? Only 'yes' is accepted: applying:" in out
    assert deploy.emulator.vefaas.function_named("image-exporter") is None


def test_destroy_as_json_and_with_detailed_exitcode(deploy: Deployer) -> None:
    """--destroy --json: the deletes in the deploy plan's shape; --detailed-exitcode: 2 while there is one."""
    deploy(*APPLY)
    plan = json.loads(deploy("--destroy", "--json")[1])
    assert (plan["operation"], plan["changes_pending"]) == ("destroy", True)
    assert [step["action"] for step in plan["steps"]] == ["DeleteTimer", "DeleteTimer", "DeleteFunction"]
    assert deploy("--destroy", "--detailed-exitcode")[0] == 2


class _Account:
    """A function with triggers, for the destroy plan alone."""

    def __init__(self, *triggers: TriggerRef) -> None:
        self._triggers = list(triggers)
        self.deleted: list[tuple[str, str]] = []

    def functions_named(self, name: str) -> list[DeployedFunction]:
        return [DeployedFunction.model_validate({"Id": "fn-1", "Name": name})]

    def triggers(self, function_id: str) -> list[TriggerRef]:
        return self._triggers

    def delete_timer(self, function_id: str, timer_id: str) -> None:
        if timer_id == "gone":
            raise TerminalApiError("timer gone does not exist", code="ResourceNotFound", http_status=404)
        self.deleted.append(("DeleteTimer", timer_id))

    def delete_function(self, function_id: str) -> None:
        self.deleted.append(("DeleteFunction", function_id))


def _trigger(trigger_id: str, kind: str) -> TriggerRef:
    return TriggerRef.model_validate({"Id": trigger_id, "Name": f"t-{trigger_id}", "Type": kind})


def test_a_trigger_deploy_cannot_delete_stops_the_destroy_plan() -> None:
    """An HTTP (or any non-timer) trigger, added in the console: the plan names it and deletes nothing."""
    account = _Account(_trigger("tm1", "timer"), _trigger("gw1", "apig"))
    with pytest.raises(DeployError, match=r"cannot delete: t-gw1 \(id gw1, type apig\)\. Delete them in the"):
        plan_destroy("image-exporter", "cn-beijing", account)
    assert account.deleted == []


def test_a_timer_already_gone_counts_as_deleted() -> None:
    """A timer deleted since the plan read it (HTTP 404): reported already gone, and the destroy goes on."""
    account = _Account(_trigger("gone", "timer"), _trigger("tm2", "timer"))
    plan: DestroyPlan = plan_destroy("image-exporter", "cn-beijing", account)
    out = io.StringIO()
    apply_destroy(plan, account, out=out)
    assert "already gone" in out.getvalue()
    assert account.deleted == [("DeleteTimer", "tm2"), ("DeleteFunction", "fn-1")]


# ---------------------------------------------------------------------------------------------------------
# Every missing variable in one run, with hints that validate.


def test_every_missing_variable_and_the_keys_are_named_in_one_run(
    deploy: Deployer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ACCOUNT_ID (the role), no BUCKET (the environment), no keys: one run names all three, exit 2,
    before the zip is built and before any call."""

    def no_build(*_args: object, **_kwargs: object) -> None:
        pytest.fail("the zip is built only once the environment is complete")

    monkeypatch.setattr(package, "build_package", no_build)
    for name in ("ACCOUNT_ID", "BUCKET", "VOLCENGINE_ACCESS_KEY", "VOLCENGINE_SECRET_KEY"):
        deploy.environ.pop(name)
    out = io.StringIO()
    from exporter_tools.deploy import cli

    status = cli.main(["--template", str(deploy.folder / "template.yaml")], environ=deploy.environ, out=out)
    err = deploy.capsys.readouterr().err
    assert status == 2
    assert "function.environment.EXPORT_TOS_BUCKET: ${env:BUCKET} needs BUCKET" in err
    assert "function.role: ${env:ACCOUNT_ID} needs ACCOUNT_ID" in err
    assert "no credentials to deploy with" in err
    assert deploy.emulator.stats()["requests_total"] == 0


def test_each_hint_makes_a_template_that_validates(
    deploy: Deployer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The environment's hint (${env:NAME:-}) and the role's (export the account id, or write it in the
    role) each give a template validate-template accepts, and that deploy plans."""
    for name in ("ACCOUNT_ID", "BUCKET"):
        deploy.environ.pop(name)
    _status, _out, err = deploy()
    optional = re.search(r"write (\$\{env:BUCKET:-\}) to make it optional", err)
    assert optional is not None
    assert "export ACCOUNT_ID=<your account id, digits only>, or write the account id itself" in err
    path = deploy.folder / "template.yaml"
    text = path.read_text(encoding="utf-8").replace("${env:BUCKET}", optional[1])
    path.write_text(text.replace("${env:ACCOUNT_ID}", "2100000000"), encoding="utf-8")
    assert validate.main([str(path)]) == 0
    capsys.readouterr()
    status, out, err = deploy()
    assert status == 0, err
    assert "4 write calls" in out


# ---------------------------------------------------------------------------------------------------------
# A webhook URL a deployed function cannot mean.


def test_a_loopback_webhook_url_left_from_the_receiver_is_deployed_with_a_warning(deploy: Deployer) -> None:
    """WEBHOOK_URL=http://127.0.0.1:8765/... (the receiver's line, still in the shell): the plan goes on, and
    stderr and the JSON plan both warn, naming the variable and never the URL's secret parts."""
    deploy.environ["HOOK_URL"] = "http://127.0.0.1:8765/open-apis/bot/v2/hook/local-token"
    status, _out, err = deploy()
    assert status == 0, err
    warning = "warning: function.environment.WEBHOOK_URL: WEBHOOK_URL points at a loopback host (127.0.0.1)"
    assert warning in err
    assert "local-token" not in err
    plan = json.loads(deploy("--json")[1])
    assert any("loopback host (127.0.0.1)" in w for w in plan["warnings"])


@pytest.mark.parametrize(
    ("url", "warned"),
    [
        ("http://localhost:8765/webhooks", "a loopback host (localhost)"),
        ("https://[::1]:8443/webhooks", "a loopback host (::1)"),
        ("http://hooks.example.com/x", "plain http"),
        ("https://open.feishu.cn/open-apis/bot/v2/hook/abc", None),
    ],
)
def test_which_webhook_urls_are_warned_about(url: str, warned: str | None) -> None:
    found = resolved_warnings({"WEBHOOK_URL": url})
    assert [warned in p.message for p in found] == ([] if warned is None else [True])
