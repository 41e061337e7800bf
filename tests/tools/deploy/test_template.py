"""template.yaml: the model, the crontab check, ${env:NAME} references and validate-template's messages."""

from __future__ import annotations

import copy
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from exporter_tools.deploy.crontab import check_crontab
from exporter_tools.deploy.model import Problem, Template, TemplateError
from exporter_tools.deploy.references import looks_secret
from exporter_tools.deploy.template import (
    MAX_YAML_DEPTH,
    MAX_YAML_INT_DIGITS,
    load_template,
    main,
    parse_template,
    resolved_environment,
    resolved_role,
    schema_text,
)
from handler.core.budget import smallest_workable_budget
from handler.models.settings import Settings

ROOT = Path(__file__).resolve().parents[3]

BASE: dict[str, Any] = {
    "region": "cn-beijing",
    "function": {
        "name": "image-exporter",
        "memory_mb": 512,
        "timeout_seconds": 900,
        "role": "trn:iam::${env:ACCOUNT}:role/VefaasEcsExportRole",
        "environment": {"EXPORT_TOS_BUCKET": "${env:BUCKET}", "EXPORT_TOS_PREFIX": "imgexport"},
    },
    "timers": [
        {"name": "nightly-scan", "crontab": "0 3 * * *", "payload": {"LookbackHours": 26}},
        {"name": "image-sweep", "crontab": "*/15 * * * *", "payload": {"LookbackHours": 2}},
    ],
}


def document(**changes: Any) -> dict[str, Any]:
    """BASE with dotted-path changes applied (``function.memory_mb=1024``; a value of ... deletes)."""
    doc = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        key: Any = int(last) if last.isdigit() else last
        if value is ...:
            del node[key]
        else:
            node[key] = value
    return doc


def problems_of(doc: object) -> list[Problem]:
    with pytest.raises(TemplateError) as caught:
        parse_template(doc)
    return caught.value.problems


def test_repository_template_is_a_valid_scheduled_deployment() -> None:
    """The repository's own template.yaml validates, with a nightly scan and a frequent sweep."""
    template = load_template(ROOT / "template.yaml")
    assert template.function.runtime == "python3.12/v1"
    crontabs = {timer.name: timer.crontab for timer in template.timers}
    assert crontabs == {"nightly-scan": "7 3 * * *", "image-sweep": "*/15 * * * *"}  # never together
    assert template.function.role is not None
    assert all(timer.payload and "LookbackHours" in timer.payload for timer in template.timers)


def test_committed_schema_is_the_generated_one() -> None:
    """template.schema.json is exactly what the model generates (regenerate: validate-template --schema)."""
    committed = (ROOT / "template.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text()


def test_schema_describes_every_field() -> None:
    """Editors get a description for each field of the template."""
    schema = json.loads(schema_text())
    for definition in [schema, *schema["$defs"].values()]:
        for name, field in definition["properties"].items():
            assert field.get("description") or "$ref" in field, name


@pytest.mark.parametrize(
    ("crontab", "normalised"),
    [
        ("0 3 * * *", "0 3 * * *"),
        ("*/15 * * * *", "*/15 * * * *"),
        ("  0   3  * *  * ", "0 3 * * *"),
        ("0 0 1 JAN *", "0 0 1 JAN *"),
        ("0 9 * * mon-fri", "0 9 * * mon-fri"),
        ("0,30 8-18/2 ? * SUN", "0,30 8-18/2 ? * SUN"),
        ("59 23 31 12 6", "59 23 31 12 6"),
        ("0 0 1-31/7 jan-dec/3 ?", "0 0 1-31/7 jan-dec/3 ?"),
    ],
)
def test_valid_crontabs_are_accepted(crontab: str, normalised: str) -> None:
    """Values, ranges, lists, steps and month/day names in any case are valid crontab fields."""
    assert check_crontab(crontab) == normalised


@pytest.mark.parametrize(
    ("crontab", "expected"),
    [
        ("0 3 * *", "expected five fields"),
        ("0 3 * * * *", "got 6"),
        ("60 * * * *", "field 1 (minute) '60': expected *, a value 0-59"),
        ("* 24 * * *", "field 2 (hour) '24': expected *, a value 0-23"),
        ("* * 0 * *", "field 3 (day of month) '0'"),
        ("* * * 13 *", "field 4 (month) '13': expected *, a value 1-12 or JAN-DEC"),
        ("* * * * 7", "field 5 (day of week) '7': expected *, a value 0-6 or SUN-SAT"),
        ("* * * FOO *", "field 4 (month) 'FOO'"),
        ("*/0 * * * *", "expected a step from 1 to 59"),
        ("*/x * * * *", "expected a step"),
        ("5/10 * * * *", "a step needs * or a range"),
        ("* 10-5 * * *", "a range that goes up"),
        ("1,,2 * * * *", "between the commas"),
        ("? * * * *", "only allowed in the day fields"),
        ("* * * * -1", "field 5"),
    ],
)
def test_invalid_crontabs_say_which_field_and_what_was_expected(crontab: str, expected: str) -> None:
    """A bad crontab names its field and the values that field takes."""
    with pytest.raises(ValueError, match=r"expected|step") as caught:
        check_crontab(crontab)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "path", "expected"),
    [
        ({"region": "cn_beijing"}, "region", "expected a region id"),
        ({"region": ...}, "region", "required"),
        ({"function__name": "ab"}, "function.name", "expected 4-64 letters"),
        ({"function__runtime": "python3.9/v1"}, "function.runtime", "expected 'python3.12/v1'"),
        ({"function__memory_mb": 1000}, "function.memory_mb", "steps of 512"),
        ({"function__memory_mb": 8192}, "function.memory_mb", "512 to 4096"),
        ({"function__memory_mb": "512"}, "function.memory_mb", 'expected a whole number, got "512"'),
        ({"function__timeout_seconds": 901}, "function.timeout_seconds", "expected 1 to 900 seconds"),
        ({"function__role": "arn:aws:iam::1:role/x"}, "function.role", "expected trn:iam::<account id>"),
        ({"function__role": "trn:iam::${ACCOUNT}:role/x"}, "function.role", "expected ${env:NAME}"),
        ({"function__environment__1BAD": "x"}, "function.environment.1BAD (the key)", "variable name"),
        ({"function__environment__X": True}, "function.environment.X", "quote it"),
        ({"function__environment__X": None}, "function.environment.X", "expected a string, got null"),
        ({"function__environment__X": "${HOME}"}, "function.environment.X", "${env:NAME}"),
        (
            {"function__environment__FUNCTION_TIMEOUT_SECONDS": "60"},
            "function.environment.FUNCTION_TIMEOUT_SECONDS (the key)",
            "set by deploy itself, from function.timeout_seconds",
        ),
        (
            {"function__environment__EXPORTER_CODE_SHA256": "x"},
            "function.environment.EXPORTER_CODE_SHA256 (the key)",
            "the code's digest",
        ),
        (
            {"function__environment__EXPORT_TOS_PREFIX": "img-export"},
            "function.environment.EXPORT_TOS_PREFIX",
            "expected 1-30 letters and digits",
        ),
        ({"function__tags": ["a"]}, "function.tags", "expected a mapping"),
        ({"function__tags": {"k": "v" * 257}}, "function.tags.k", "at most 256 characters"),
        ({"timers": {"a": 1}}, "timers", "expected a list"),
        ({"timers__1__crontab": "0 25 * * *"}, "timers[1].crontab", "field 2 (hour) '25'"),
        ({"timers__1__crontab": ...}, "timers[1].crontab", "required"),
        ({"timers__0__name": "image-sweep"}, "timers[1].name", "expected a unique name"),
        ({"timers__0__name": "has space"}, "timers[0].name", "expected 1-64 letters"),
        ({"timers__0__enabled": "yes"}, "timers[0].enabled", 'expected true or false, got "yes"'),
        ({"timers__0__retries": 11}, "timers[0].retries", "expected 0 to 10 retries"),
        ({"timers__0__concurrency": 1}, "timers[0].concurrency", "expected true or false"),
        ({"timers__0__payload": "scan"}, "timers[0].payload", "expected a mapping"),
        ({"timers__0__payload": {"LookbackHours": -1}}, "timers[0].payload.LookbackHours", "above 0"),
        ({"timers__0__payload": {"Bogus": 1}}, "timers[0].payload.Bogus", "unknown key"),
        (
            {"timers__0__payload": {"ImageIds": ["image-ybqi99s7yq8rx7mnk44b"], "LookbackHours": 2}},
            "timers[0].payload.LookbackHours",
            "applies to a scan only",
        ),
        ({"timers__0__description": "d" * 300}, "timers[0].description", "at most 256 characters"),
    ],
)
def test_every_error_names_the_field_path_and_what_was_expected(
    changes: dict[str, Any], path: str, expected: str
) -> None:
    """validate-template's errors point at the field (timers[1].crontab) and say what it takes."""
    problems = problems_of(document(**changes))
    matching = [problem for problem in problems if problem.path == path]
    assert matching, problems
    assert expected in matching[0].message


@pytest.mark.parametrize(
    ("where", "key", "suggestion"),
    [
        ("function", "memmory_mb", "did you mean memory_mb?"),
        ("timers__0", "cron", "did you mean crontab?"),
        ("", "regions", "did you mean region?"),
    ],
)
def test_an_unknown_field_is_named_with_the_fields_allowed_there(
    where: str, key: str, suggestion: str
) -> None:
    """A misspelt key is an error that suggests the right one and lists the allowed keys."""
    doc = document(**({f"{where}__{key}" if where else key: 1}))
    (problem,) = [p for p in problems_of(doc) if p.path.endswith(key)]
    assert suggestion in problem.message
    assert "expected one of" in problem.message


def test_all_problems_are_reported_at_once() -> None:
    """Field errors and cross-field errors (duplicate timer names) come in one report."""
    doc = document(function__memory_mb=3, timers__0__name="image-sweep", timers__0__payload={"Bogus": 1})
    paths = {problem.path for problem in problems_of(doc)}
    assert {"function.memory_mb", "timers[1].name", "timers[0].payload.Bogus"} <= paths


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "region: cn-beijing\nfunction: {name: fn-1}\ntimers:\n  - name: t\n    crontab: */15 * * * *\n",
            "quote",
        ),
        ("region: cn-beijing\nregion: cn-shanghai\n", "line 2, column 1: the key 'region' appears twice"),
        ("region: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("", "expected a mapping"),
    ],
)
def test_a_file_that_is_not_a_template_mapping_says_where(tmp_path: Path, text: str, expected: str) -> None:
    """YAML mistakes (an unquoted '*', a repeated key) are reported with their line and a hint."""
    path = tmp_path / "template.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TemplateError) as caught:
        load_template(path)
    assert expected in str(caught.value)
    assert caught.value.source == str(path)


_HOSTILE_YAML = [
    pytest.param(
        "? [a, b]\n: 1\n", "line 1, column 3: a key must be plain text or a number, not a list", id="list key"
    ),
    pytest.param("? {a: 1}\n: 1\n", "not a mapping", id="mapping key"),
    pytest.param("region: {? [a]: 1}\n", "not a list", id="flow list key"),
    pytest.param("[" * 50_000, "line 1, column 65: nested more than 64 levels deep", id="50,000 [ deep"),
    pytest.param("{a: " * 50_000, "nested more than 64 levels deep", id="50,000 { deep"),
    pytest.param(
        "a:\n" + "".join(" " * i + "a:\n" for i in range(1, 100)), "nested more than 64 levels", id="block"
    ),
    pytest.param("[" * 64 + "]" * 64, "expected a mapping", id="64 deep is read"),
    pytest.param(
        "region: " + "9" * 5000 + "\n",
        "line 1, column 9: an integer of more than 20 digits",
        id="5,000 digits",
    ),
    pytest.param("x: -" + "1_" * 20 + "1\n", "an integer of more than 20 digits", id="21 digits, signed"),
    pytest.param("x: 0x" + "f" * 30 + "\n", "an integer of more than 20 digits", id="hex"),
    pytest.param("a: &x [*x]\n", "not valid YAML", id="recursive alias"),
]


@pytest.mark.parametrize(("text", "expected"), _HOSTILE_YAML)
def test_yaml_that_could_crash_the_loader_is_a_template_error(
    tmp_path: Path, text: str, expected: str
) -> None:
    """An unhashable key, nesting past 64 levels (50,000 would hit the recursion limit) and an integer past
    20 digits (5,000 would hit Python's int conversion limit) are TemplateErrors with the line, not crashes."""
    path = tmp_path / "template.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TemplateError) as caught:
        load_template(path)
    assert expected in str(caught.value)
    assert caught.value.source == str(path)


def test_validate_template_reports_hostile_yaml_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """validate-template on a 50,000-deep file exits 1 with one line naming the file and the bound."""
    path = tmp_path / "t.yaml"
    path.write_text("[" * 50_000, encoding="utf-8")
    assert main([str(path)]) == 1
    err = capsys.readouterr().err
    assert err == f"{path}: line 1, column 65: nested more than {MAX_YAML_DEPTH} levels deep\n"
    assert MAX_YAML_INT_DIGITS == 20


def test_a_missing_file_is_a_template_error(tmp_path: Path) -> None:
    """Pointing at a file that does not exist says so."""
    with pytest.raises(TemplateError, match="cannot read the file"):
        load_template(tmp_path / "nope.yaml")


def test_payload_is_sent_as_a_json_string_with_sorted_keys() -> None:
    """A timer's YAML payload becomes the JSON text the timer sends; no payload sends an empty string."""
    template = parse_template(document(timers__0__payload={"TOSPrefix": "nightly", "LookbackHours": 26}))
    assert template.timers[0].payload_text == '{"LookbackHours": 26, "TOSPrefix": "nightly"}'
    assert parse_template(document(timers__0__payload=...)).timers[0].payload_text == ""


def test_numbers_in_the_environment_become_text() -> None:
    """EXPORT_CONCURRENCY: 8 (a YAML number) is the string "8" in the function's environment."""
    template = parse_template(document(function__environment__EXPORT_CONCURRENCY=8))
    assert template.function.environment["EXPORT_CONCURRENCY"] == "8"


@pytest.mark.parametrize(
    ("value", "environ", "expected"),
    [
        ("${env:BUCKET}", {"BUCKET": "my-bucket"}, "my-bucket"),
        ("prefix-${env:A}-${env:B}", {"A": "1", "B": "2"}, "prefix-1-2"),
        ("${env:OPTIONAL:-}", {}, None),
        ("${env:OPTIONAL:-fallback}", {}, "fallback"),
        ("${env:OPTIONAL:-fallback}", {"OPTIONAL": "set"}, "set"),
        ("${env:OPTIONAL:-fallback}", {"OPTIONAL": ""}, "fallback"),
        ("literal", {}, "literal"),
    ],
)
def test_env_references_are_filled_in_from_the_deployers_environment(
    value: str, environ: dict[str, str], expected: str | None
) -> None:
    """${env:NAME} takes the deployer's variable, ${env:NAME:-x} has a default; empty entries are left out."""
    template = parse_template(document(function__environment={"EXPORT_TOS_BUCKET": "bucket-1", "X": value}))
    resolved = resolved_environment(template, environ)
    assert resolved.get("X") == expected


def test_missing_variables_are_all_named_with_the_entry_that_needs_them() -> None:
    """Deploying without a variable the template needs names the variable and the field, never a value."""
    env = {"EXPORT_TOS_BUCKET": "${env:BUCKET}", "WEBHOOK_SECRET": "${env:HOOK_SECRET}"}
    template = parse_template(document(function__environment=env))
    with pytest.raises(TemplateError) as caught:
        resolved_environment(template, {"UNRELATED": "whsec_c2VjcmV0"})
    message = str(caught.value)
    assert "function.environment.EXPORT_TOS_BUCKET: ${env:BUCKET} needs BUCKET" in message
    assert "function.environment.WEBHOOK_SECRET: ${env:HOOK_SECRET} needs HOOK_SECRET" in message
    assert "whsec_" not in message


def test_the_role_account_id_may_come_from_the_environment() -> None:
    """function.role may take its account id from ${env:…}."""
    role = resolved_role(parse_template(BASE), {"ACCOUNT": "2100000000"})
    assert role == "trn:iam::2100000000:role/VefaasEcsExportRole"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "function.role: ${env:ACCOUNT} needs ACCOUNT"),
        ({"ACCOUNT": "my-account"}, "function.role: expected trn:iam::<account id>:role/<name> once ACCOUNT"),
    ],
)
def test_a_missing_or_malformed_role_account_id_is_an_error(environ: dict[str, str], expected: str) -> None:
    """A missing or non-numeric account id for the role is named, with the field."""
    with pytest.raises(TemplateError) as caught:
        resolved_role(parse_template(BASE), environ)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("WEBHOOK_SECRET", "x", True),
        ("WEBHOOK_URL", "https://open.feishu.cn/open-apis/bot/v2/hook/abc", True),
        ("VOLCENGINE_SECRET_KEY", "x", True),
        ("VOLCENGINE_ACCESS_KEY", "AKLT", True),
        ("API_TOKEN", "x", True),
        ("DB_PASSWORD", "x", True),
        ("SOMETHING", "whsec_c2VjcmV0", True),
        ("HOOK", "https://oapi.dingtalk.com/robot/send?access_token=abc", True),
        ("BLOB", "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3k", True),
        ("EXPORT_TOS_BUCKET", "my-bucket", False),
        ("EXPORT_TOS_PREFIX", "imgexport", False),
        ("LOG_LEVEL", "INFO", False),
        ("KEYBOARD_LAYOUT", "us", False),
    ],
)
def test_secret_looking_variables_are_recognised(name: str, value: str, secret: bool) -> None:
    """Values whose name or shape looks like a credential are never printed by deploy."""
    assert looks_secret(name, value) is secret


@pytest.mark.parametrize(
    ("changes", "path", "expected"),
    [
        (
            {"function__environment__VOLCENGINE_SECRET_KEY": "${env:SK}"},
            "function.environment.VOLCENGINE_SECRET_KEY",
            "prefer a role",
        ),
        ({"function__role": ...}, "function.role", "no role and no access keys"),
        ({"function__environment": {}}, "function.environment", "no EXPORT_TOS_BUCKET"),
    ],
)
def test_suspicious_but_valid_templates_get_warnings(
    changes: dict[str, Any], path: str, expected: str
) -> None:
    """Access keys instead of a role, no credentials at all, or no bucket are flagged."""
    warnings = parse_template(document(**changes)).warnings()
    assert any(w.path == path and expected in w.message for w in warnings), warnings


def test_the_repository_template_has_no_warnings() -> None:
    """The shipped template uses a role and names its bucket."""
    assert load_template(ROOT / "template.yaml").warnings() == []


def test_env_variables_lists_what_deploy_will_read() -> None:
    """The variables a template reads are listed, optional ones marked."""
    template = parse_template(document(function__environment__HOOK="${env:HOOK_URL:-}"))
    assert template.env_variables() == [("ACCOUNT", True), ("BUCKET", True), ("HOOK_URL", False)]


def test_cli_accepts_the_repository_template(capsys: pytest.CaptureFixture[str]) -> None:
    """validate-template exits 0 on a valid file and lists what deploy reads from the environment."""
    assert main([str(ROOT / "template.yaml")]) == 0
    out = capsys.readouterr().out
    assert "is valid: function image-exporter" in out
    assert "EXPORT_TOS_BUCKET" in out
    assert "WEBHOOK_URL (optional)" in out


def test_cli_prints_each_problem_prefixed_with_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """validate-template exits 1 and prints one line per problem: file, field path, what was expected."""
    path = tmp_path / "t.yaml"
    doc = document(timers__1__crontab="0 25 * * *", function__memory_mb=100)
    path.write_text(json.dumps(doc), encoding="utf-8")  # JSON is YAML
    assert main([str(path)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert (
        f"{path}: timers[1].crontab: field 2 (hour) '25': expected *, a value 0-23, a range a-b or a step */n"
        in lines
    )
    assert any(line.startswith(f"{path}: function.memory_mb: expected 512 to 4096") for line in lines)


def test_cli_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """validate-template --schema prints the generated JSON Schema."""
    assert main(["--schema"]) == 0
    assert capsys.readouterr().out == schema_text()


def test_template_model_is_frozen() -> None:
    """A parsed template cannot be changed by accident while deploying."""
    template = parse_template(BASE)
    with pytest.raises(ValueError, match="frozen"):
        template.region = "cn-shanghai"  # type: ignore[misc]
    assert isinstance(template, Template)


@pytest.mark.parametrize("argv", [["--schema"], ["--", "--schema"]])
def test_cli_arguments_may_follow_a_double_dash(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """exporter-tools validate-template -- --schema works like --schema (options after the tool name)."""
    assert main(argv) == 0
    assert capsys.readouterr().out == schema_text()


def test_without_pyyaml_the_hint_names_the_real_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without PyYAML, reading a template says to install pyyaml (through the deploy extra)."""
    path = tmp_path / "template.yaml"
    path.write_text("region: cn-beijing\n", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(TemplateError) as raised:
        load_template(path)
    (problem,) = raised.value.problems
    assert "the PyPI package pyyaml" in problem.message
    assert "pip install -e '.[deploy]'" in problem.message


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("EXPORT_TOS_BUCKT", "did you mean EXPORT_TOS_BUCKET?"),
        ("WEBHOOK_SECRETS", "did you mean WEBHOOK_SECRET?"),
        ("VOLCENGINE_MAXRPS", "did you mean VOLCENGINE_MAX_RPS?"),
    ],
)
def test_a_misspelt_setting_is_named_with_the_right_one(name: str, suggestion: str) -> None:
    """An EXPORT_/VOLCENGINE_/WEBHOOK_ name the function does not read would leave the setting at its
    default without a word: validate-template refuses it and suggests the closest known name."""
    doc = copy.deepcopy(BASE)
    doc["function"]["environment"][name] = "1"
    (problem,) = [p for p in problems_of(doc) if p.path == f"function.environment.{name}"]
    assert problem.message == f"the function reads no such variable: {suggestion}"


def test_names_outside_the_functions_prefixes_are_left_alone() -> None:
    """Variables of other tools (no EXPORT_/VOLCENGINE_/WEBHOOK_ prefix) are the deployer's business."""
    doc = copy.deepcopy(BASE)
    doc["function"]["environment"]["HTTPS_PROXY"] = "http://proxy.internal:3128"
    assert parse_template(doc).function.environment["HTTPS_PROXY"] == "http://proxy.internal:3128"


def test_a_ca_bundle_path_on_the_function_is_not_looked_for_on_the_deployer() -> None:
    """SSL_CERT_FILE names a file on the function's machine (in the zip): validate-template accepts a path
    that does not exist where it runs."""
    doc = copy.deepcopy(BASE)
    doc["function"]["environment"]["SSL_CERT_FILE"] = "/code/certs/corporate-ca.pem"
    environment = parse_template(doc).function.environment
    assert environment["SSL_CERT_FILE"] == "/code/certs/corporate-ca.pem"


def test_a_timer_looking_back_past_the_dedupe_window_is_refused() -> None:
    """A timer whose LookbackHours exceeds EXPORT_DEDUPE_HOURS would have every firing refused by the
    function: validate-template names the timer's field and both numbers."""
    doc = copy.deepcopy(BASE)
    doc["function"]["environment"]["EXPORT_DEDUPE_HOURS"] = 25
    (problem,) = problems_of(doc)
    assert problem.path == "timers[0].payload.LookbackHours"
    assert problem.message.startswith("26 h is longer than the dedupe window (EXPORT_DEDUPE_HOURS=25)")


@pytest.mark.parametrize(("region", "hint"), [("cn-bejing", "did you mean cn-beijing? "), ("us-east-1", "")])
def test_a_region_outside_the_known_list_is_a_warning(region: str, hint: str) -> None:
    """A region outside the known list is accepted with a warning naming the known ones (the list is not
    confirmed, so a real region is never blocked); a near miss suggests the right one."""
    template = parse_template(document(region=region))
    assert template.region == region
    (warning,) = [w for w in template.warnings() if w.path == "region"]
    assert warning.message == (
        f"{region!r} is not one of the known regions (cn-beijing, cn-shanghai, cn-guangzhou, cn-hongkong, "
        f"ap-southeast-1, ap-southeast-3): {hint}deploy uses it as written, so check that ECS and veFaaS run "
        "there"
    )


@pytest.mark.parametrize(
    ("environment", "timeout"),
    [({}, 5), ({"VOLCENGINE_CONNECT_TIMEOUT": "0.5", "VOLCENGINE_READ_TIMEOUT": "1"}, 6)],
)
def test_a_timeout_below_the_smallest_workable_budget_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], environment: dict[str, str], timeout: int
) -> None:
    """validate-template still passes a function timeout too short for the look-ups before the first export,
    but warns on stderr, naming the timeout and the smallest workable budget for the template's settings."""
    doc = document(function__timeout_seconds=timeout)
    doc["function"]["environment"].update(environment)
    path = tmp_path / "t.yaml"
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert main([str(path)]) == 0
    settings = Settings.from_env({"EXPORT_TOS_PREFIX": "imgexport", **environment})
    smallest = smallest_workable_budget(settings)
    assert smallest > timeout
    assert (
        f"{path}: warning: function.timeout_seconds: {timeout} s is below {smallest:g} s, the smallest time "
        "budget"
    ) in capsys.readouterr().err


def test_a_timeout_at_the_smallest_workable_budget_is_not_flagged() -> None:
    """A timeout the budget can work with draws no timeout warning."""
    smallest = smallest_workable_budget(Settings.from_env({}))
    template = parse_template(document(function__timeout_seconds=math.ceil(smallest)))
    assert [w for w in template.warnings() if w.path == "function.timeout_seconds"] == []
