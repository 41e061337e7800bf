"""exporter-tools deploy with a ``storage:`` section, against the emulated veFaaS account and its TOS: the
lifecycle rule merged into the export bucket's other rules, which stay exactly as they were."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter_tools.deploy import cli
from exporter_tools.deploy.apply import apply_plan, explain
from exporter_tools.deploy.desired import desired_state
from exporter_tools.deploy.model import TemplateError
from exporter_tools.deploy.plan import DeployError, make_plan
from exporter_tools.deploy.template import parse_template
from exporter_tools.deploy.tos_lifecycle import LifecycleClient
from exporter_tools.deploy.vefaas import VefaasClient
from exporter_tools.emulator.vefaas import VefaasEmulator
from handler.adapters.clients import openapi_client
from handler.adapters.pacing import RateLimiter
from handler.adapters.retry import RetryPolicy
from handler.adapters.signing import Credentials
from handler.adapters.tos import tos_sender
from handler.errors import MalformedResponse, TerminalApiError, UnknownOutcomeError

CREDENTIALS = Credentials("AKLTdeploylc0000001", "deploy-lifecycle-secret-01")
BUCKET = "my-exports"
TEMPLATE = """\
region: cn-beijing
function:
  name: image-exporter
  role: trn:iam::2100000000:role/VefaasEcsExportRole
  environment:
    EXPORT_TOS_BUCKET: ${{env:BUCKET}}
timers:
  - name: nightly-scan
    crontab: "0 3 * * *"
    payload:
      LookbackHours: 26
{storage}"""
STORAGE = """\
storage:
  transitions:
    - after_days: {ia}
      storage_class: IA
    - after_days: 120
      storage_class: ARCHIVE
  abort_incomplete_upload_days: 7
"""
# Two rules someone else put on the bucket, with fields deploy knows nothing of, in an order of their own.
FOREIGN: list[dict[str, Any]] = [
    {
        "Status": "Enabled",
        "ID": "logs-expire",
        "Prefix": "logs/",
        "Expiration": {"Days": 14},
        "Tags": [{"Key": "kind", "Value": "log"}],
        "Filter": {"ObjectSizeGreaterThan": 1024, "GreaterThanIncludeEqual": "Enabled"},
    },
    {
        "ID": "tmp-cleanup",
        "Prefix": "tmp/",
        "Status": "Disabled",
        "NoncurrentVersionExpiration": {"NoncurrentDays": 3},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2},
    },
]
OURS = {
    "ID": "image-exporter-imgexport",
    "Prefix": "imgexport_",
    "Status": "Enabled",
    "Transitions": [{"Days": 30, "StorageClass": "IA"}, {"Days": 120, "StorageClass": "ARCHIVE"}],
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
}

APPLY = ("--apply", "--auto-approve")  # no terminal to confirm on in a test


def function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            zipfile.ZipInfo("index.py", (1980, 1, 1, 0, 0, 0)), "def handler(e, c):\n    return {}\n"
        )
    return buffer.getvalue()


def as_text(rules: list[dict[str, Any]] | None) -> list[str]:
    """Each rule as JSON text: equal texts are the same fields with the same values in the same order."""
    return [json.dumps(rule, ensure_ascii=False) for rule in rules or []]


class Deployer:
    """Runs ``deploy`` on a template (with or without a storage section) against the account and its TOS."""

    def __init__(self, folder: Path, emulator: VefaasEmulator, capsys: pytest.CaptureFixture[str]) -> None:
        self.folder = folder
        self.emulator = emulator
        self.capsys = capsys
        self.environ = {
            "VOLCENGINE_ENDPOINT": emulator.endpoint,
            "TOS_ENDPOINT": emulator.endpoint,
            "VOLCENGINE_ACCESS_KEY": CREDENTIALS.access_key,
            "VOLCENGINE_SECRET_KEY": CREDENTIALS.secret_key,
            "BUCKET": BUCKET,
            "VOLCENGINE_MAX_RPS": "1000",
        }
        self.template(STORAGE.format(ia=30))
        (folder / "function.zip").write_bytes(function_zip())

    def template(self, storage: str) -> None:
        (self.folder / "template.yaml").write_text(TEMPLATE.format(storage=storage), encoding="utf-8")

    def __call__(self, *flags: str) -> tuple[int, str, str]:
        out = io.StringIO()
        args = ["--template", str(self.folder / "template.yaml"), "--zip", str(self.folder / "function.zip")]
        if "--apply" in flags:
            flags = (*flags, "--no-doctor")  # no ECS here to check: tests/tools/deploy/test_deploy_doctor.py
        status = cli.main([*args, "--poll-seconds", "0", *flags], environ=self.environ, out=out)
        return status, out.getvalue(), self.capsys.readouterr().err

    def rules(self) -> list[dict[str, Any]] | None:
        return self.emulator.tos.lifecycle(BUCKET)

    def tos_requests(self) -> dict[str, int]:
        requests: dict[str, int] = self.emulator.tos.stats()["requests"]
        return requests


@pytest.fixture
def emulator() -> Iterator[VefaasEmulator]:
    emulator = VefaasEmulator(credentials=CREDENTIALS, seed=1, buckets=[BUCKET])
    emulator.start()
    yield emulator
    emulator.close()


@pytest.fixture
def deploy(emulator: VefaasEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Deployer:
    return Deployer(tmp_path, emulator, capsys)


def test_the_rule_is_merged_into_two_foreign_rules_that_stay_as_they_were(deploy: Deployer) -> None:
    """The bucket has two rules someone else put: deploy adds its rule after them, shows it in the plan, and
    the two come back from TOS exactly as they were (every field, in its order)."""
    # Given
    deploy.emulator.tos.set_lifecycle(BUCKET, FOREIGN)
    before = as_text(FOREIGN)
    # When
    status, out, err = deploy(*APPLY)
    # Then
    assert status == 0, err
    rules = deploy.rules()
    assert rules is not None
    assert as_text(rules[:2]) == before
    assert rules[2] == OURS
    assert "PutBucketLifecycle bucket my-exports" in out
    assert (
        "+ rule image-exporter-imgexport (prefix 'imgexport_'): IA after 30 days, ARCHIVE after 120 days; "
        "unfinished uploads dropped after 7 days"
    ) in out
    assert "the bucket's 2 other rules stay as they are: logs-expire, tmp-cleanup" in out
    assert "written: 3 rules, 2 of them kept as they were" in out
    assert deploy.emulator.write_actions()[:2] == ["CreateFunction", "Release"]


def test_deploying_again_reads_the_rules_and_writes_nothing(deploy: Deployer) -> None:
    """A second run finds the rule as wanted: unchanged in the plan, no PutBucketLifecycle."""
    deploy.emulator.tos.set_lifecycle(BUCKET, FOREIGN)
    deploy(*APPLY)
    puts = deploy.tos_requests().get("PUT 200", 0)
    status, out, _err = deploy(*APPLY)
    assert status == 0
    assert (
        "unchanged: function image-exporter, timer nightly-scan, lifecycle rule image-exporter-imgexport"
        in out
    )
    assert "Nothing to change" in out
    assert deploy.tos_requests().get("PUT 200", 0) == puts


def test_a_changed_rule_is_replaced_in_its_place(deploy: Deployer) -> None:
    """Our rule between the two foreign ones, with other days: replaced where it was, the others untouched;
    the plan shows the rule before and after."""
    old = {**OURS, "Transitions": [{"Days": 60, "StorageClass": "IA"}]}
    deploy.emulator.tos.set_lifecycle(BUCKET, [FOREIGN[0], old, FOREIGN[1]])
    status, out, err = deploy(*APPLY)
    assert status == 0, err
    rules = deploy.rules()
    assert rules is not None
    assert as_text([rules[0], rules[2]]) == as_text(FOREIGN)
    assert rules[1] == OURS
    assert (
        "~ rule image-exporter-imgexport: IA after 60 days; unfinished uploads dropped after 7 days → IA after "
        "30 days, ARCHIVE after 120 days; unfinished uploads dropped after 7 days"
    ) in out


def test_an_empty_section_removes_the_rule_and_keeps_the_others(deploy: Deployer) -> None:
    """``storage: {}``: our rule goes, the others stay; when it was the only one, the configuration goes."""
    deploy.emulator.tos.set_lifecycle(BUCKET, [*FOREIGN, OURS])
    deploy.template("storage: {}\n")
    status, out, err = deploy(*APPLY)
    assert status == 0, err
    assert as_text(deploy.rules()) == as_text(FOREIGN)
    assert "- rule image-exporter-imgexport" in out
    deploy.emulator.tos.set_lifecycle(BUCKET, [OURS])
    status, out, err = deploy(*APPLY)
    assert status == 0, err
    assert deploy.rules() is None
    assert "DeleteBucketLifecycle bucket my-exports" in out
    assert "removed: the bucket has no lifecycle rule left" in out


def test_without_a_storage_section_the_bucket_is_never_asked(deploy: Deployer) -> None:
    """No ``storage:``: not a single TOS request, whatever rules the bucket has."""
    deploy.emulator.tos.set_lifecycle(BUCKET, [*FOREIGN, OURS])
    deploy.template("")
    status, out, err = deploy(*APPLY)
    assert status == 0, err
    assert deploy.tos_requests() == {}
    assert "lifecycle" not in out
    assert deploy.rules() == [*FOREIGN, OURS]


def test_another_prefixs_rule_is_left_alone_and_shown(deploy: Deployer) -> None:
    """A rule of another prefix (another deployment's, or an earlier EXPORT_TOS_PREFIX) stays and is listed
    with what deploy leaves as it is."""
    theirs = {**OURS, "ID": "image-exporter-nightly", "Prefix": "nightly_"}
    deploy.emulator.tos.set_lifecycle(BUCKET, [theirs])
    status, out, err = deploy(*APPLY)
    assert status == 0, err
    assert deploy.rules() == [theirs, OURS]
    assert "left as they are: lifecycle rule image-exporter-nightly on bucket my-exports" in out


def test_a_bucket_deploy_may_not_write_fails_after_the_function_and_keeps_its_rules(deploy: Deployer) -> None:
    """A read-only bucket: the function is deployed, then PutBucketLifecycle is refused; exit 1 with the
    permissions to grant; the rules are as they were."""
    deploy.emulator.tos.set_lifecycle(BUCKET, FOREIGN)
    deploy.emulator.set_bucket_access(BUCKET, "read-only")
    status, _out, err = deploy(*APPLY)
    assert status == 1
    assert "may not call PutBucketLifecycle on bucket my-exports" in err
    assert "tos:PutBucketLifecycle" in err
    assert "Release" in deploy.emulator.write_actions()
    assert as_text(deploy.rules()) == as_text(FOREIGN)


def test_a_bucket_deploy_may_not_read_stops_the_plan_before_any_write(deploy: Deployer) -> None:
    """GetBucketLifecycle refused (or no such bucket): the plan cannot be made, nothing is written."""
    deploy.emulator.set_bucket_access(BUCKET, "none")
    status, _out, err = deploy(*APPLY)
    assert status == 1
    assert "may not call GetBucketLifecycle on bucket my-exports" in err
    deploy.environ["BUCKET"] = "no-such-bucket"
    status, _out, err = deploy(*APPLY)
    assert status == 1
    assert "TOS has no bucket no-such-bucket" in err
    assert deploy.emulator.write_actions() == []


def test_the_overlap_setting_of_the_bucket_is_kept(deploy: Deployer) -> None:
    """Rules put allowing same-action overlaps are written back allowing them."""
    deploy.emulator.tos.set_lifecycle(BUCKET, FOREIGN, allow_overlap=True)
    status, _out, err = deploy(*APPLY)
    assert status == 0, err
    assert deploy.emulator.tos.allows_overlap(BUCKET)
    assert deploy.rules() == [*FOREIGN, OURS]


def test_a_tos_endpoint_that_is_not_a_url_is_refused_before_any_call(deploy: Deployer) -> None:
    """TOS_ENDPOINT without a scheme: exit 2, naming the variable."""
    deploy.environ["TOS_ENDPOINT"] = "tos-cn-beijing.volces.com"
    status, _out, err = deploy()
    assert status == 2
    assert "TOS_ENDPOINT" in err
    assert deploy.emulator.stats()["requests_total"] == 0


def test_an_empty_bucket_variable_is_a_template_error(deploy: Deployer) -> None:
    """EXPORT_TOS_BUCKET resolving to nothing with a storage section: refused, naming storage."""
    template = parse_template(
        {
            "region": "cn-beijing",
            "function": {"name": "image-exporter", "environment": {"EXPORT_TOS_BUCKET": "${env:B:-}"}},
            "storage": {"transitions": [{"after_days": 30, "storage_class": "IA"}]},
        }
    )
    with pytest.raises(TemplateError, match="storage: needs EXPORT_TOS_BUCKET, which came out empty"):
        desired_state(template, {}, code=function_zip())


def test_rules_changed_between_plan_and_apply_are_not_written_over(emulator: VefaasEmulator) -> None:
    """Someone changes the bucket's rules after the plan read them: apply reads again, finds them changed,
    and stops without writing."""
    template = parse_template(
        {
            "region": "cn-beijing",
            "function": {
                "name": "image-exporter",
                "role": "trn:iam::2100000000:role/VefaasEcsExportRole",
                "environment": {"EXPORT_TOS_BUCKET": BUCKET},
            },
            "storage": {"transitions": [{"after_days": 30, "storage_class": "IA"}]},
        }
    )
    desired = desired_state(template, {}, code=function_zip())
    emulator.tos.set_lifecycle(BUCKET, FOREIGN)
    with httpx.Client(timeout=5) as http:
        api = openapi_client(
            CREDENTIALS,
            service="vefaas",
            version="2024-06-06",
            endpoint=emulator.endpoint,
            region="cn-beijing",
            policy=RetryPolicy(max_attempts=2, base=0.0, cap=0.0),
            limiter=RateLimiter(1000.0),
            http=http,
        )
        client = VefaasClient(api, deadline=float("inf"))
        sender = tos_sender(
            http=http,
            region="cn-beijing",
            credentials=CREDENTIALS,
            policy=RetryPolicy(max_attempts=2, base=0.0, cap=0.0),
            limiter=RateLimiter(1000.0),
        )
        lifecycle = LifecycleClient(sender, emulator.endpoint, deadline=float("inf"))
        plan = make_plan(desired, client, lifecycle)
        emulator.tos.set_lifecycle(BUCKET, FOREIGN[:1])
        with pytest.raises(DeployError, match="changed since the plan read them"):
            apply_plan(
                plan,
                client,
                zip_base64=lambda: base64.b64encode(function_zip()).decode(),
                out=io.StringIO(),
                poll_seconds=0,
                lifecycle=lifecycle,
            )
    assert emulator.tos.lifecycle(BUCKET) == FOREIGN[:1]


def test_the_rule_deploy_writes_is_read_by_the_official_sdk_as_meant() -> None:
    """The rule, parsed by the tos SDK's own lifecycle parser: the prefix, status, transitions and the abort
    days deploy means."""
    tos = pytest.importorskip("tos")
    from tos.models2 import _parse_lifecycle_rules  # the parser GetBucketLifecycleOutput uses

    (rule,) = _parse_lifecycle_rules([OURS])
    assert (rule.id, rule.prefix, rule.status) == (
        "image-exporter-imgexport",
        "imgexport_",
        tos.StatusType.Status_Enable,
    )
    assert [(t.storage_class, t.days) for t in rule.transitions] == [
        (tos.StorageClassType.Storage_Class_Ia, 30),
        (tos.StorageClassType.Storage_Class_Archive, 120),
    ]
    assert rule.abort_in_complete_multipart_upload.days_after_init == 7
    assert rule.expiration is None


def test_lifecycle_failures_are_explained_in_the_deployers_terms() -> None:
    """A rule set that cannot be read says nothing was written; a lost PUT may or may not have happened; a
    rule TOS refused points at the storage section."""
    template = parse_template(
        {
            "region": "cn-beijing",
            "function": {"name": "image-exporter", "environment": {"EXPORT_TOS_BUCKET": BUCKET}},
            "storage": {"transitions": [{"after_days": 30, "storage_class": "IA"}]},
        }
    )
    desired = desired_state(template, {}, code=function_zip())
    malformed = MalformedResponse(
        "GetBucketLifecycle answered rules that are not JSON", action="GetBucketLifecycle"
    )
    assert "could not be read rule for rule" in explain(malformed, "GetBucketLifecycle", desired)
    lost = UnknownOutcomeError("no answer", code="ReadTimeout", action="PutBucketLifecycle")
    assert "may or may not have happened" in explain(lost, "PutBucketLifecycle", desired)
    refused = TerminalApiError(
        "bad rule", code="InvalidArgument", http_status=400, action="PutBucketLifecycle"
    )
    assert "check the template's storage section" in explain(refused, "PutBucketLifecycle", desired)
