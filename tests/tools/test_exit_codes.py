"""One exit-status convention for every ``exporter-tools`` command (docs/development.md, "Exit status"): 0
success, 1 the operation failed (an API error, a failed check), 2 a usage or configuration error; and, for
the errors people are expected to make, a message on stderr with no traceback and no log line before it."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from exporter_tools.cli import COMMANDS, main
from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.vefaas import VefaasEmulator
from handler.adapters.signing import Credentials
from tests.support.emulated import CREDENTIALS

_OWN_PREFIXES = ("VOLCENGINE_", "VOLC_", "EXPORT_", "WEBHOOK_", "TOS_", "LOG_")
Kind = Literal["usage", "configuration", "operation"]
EXPECTED: dict[Kind, int] = {"usage": 2, "configuration": 2, "operation": 1}
WRONG_SECRET = "not-the-emulators-secret-key"
TEMPLATE = """\
region: cn-beijing
function:
  name: image-exporter
  role: trn:iam::${env:ACCOUNT_ID}:role/VefaasEcsExportRole
  environment:
    EXPORT_TOS_BUCKET: ${env:BUCKET}
"""


@dataclass
class World:
    """What the cases point at: an ECS and a veFaaS emulator, files, a port already taken."""

    ecs: str
    vefaas: str
    folder: Path
    busy_port: int

    def file(self, name: str, text: str | bytes) -> str:
        path = self.folder / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return str(path)


@dataclass(frozen=True)
class Case:
    command: str
    kind: Kind
    argv: Callable[[World], list[str]]
    env: Callable[[World], dict[str, str]] = lambda _world: {}
    id: str = ""


def _zip() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


def _function_env(world: World, *, secret: str = CREDENTIALS.secret_key) -> dict[str, str]:
    """The function's variables for the ECS emulator (status, restore, retention read them)."""
    return {
        "VOLCENGINE_ENDPOINT": world.ecs,
        "TOS_ENDPOINT": world.ecs,
        "VOLCENGINE_ACCESS_KEY": CREDENTIALS.access_key,
        "VOLCENGINE_SECRET_KEY": secret,
        "EXPORT_TOS_BUCKET": "demo-exports",
        "VOLCENGINE_MAX_ATTEMPTS": "1",
    }


def _deploy_env(world: World, *, secret: str = CREDENTIALS.secret_key, **more: str) -> dict[str, str]:
    return {
        "VOLCENGINE_ENDPOINT": world.vefaas,
        "VOLCENGINE_ACCESS_KEY": CREDENTIALS.access_key,
        "VOLCENGINE_SECRET_KEY": secret,
        "VOLCENGINE_MAX_ATTEMPTS": "1",
        **more,
    }


def _deploy_args(world: World, *extra: str) -> list[str]:
    return ["--template", world.file("template.yaml", TEMPLATE), "--zip", world.file("f.zip", _zip()), *extra]


NO_CREDENTIALS = {
    "VOLCENGINE_CREDENTIAL_FILE": "/nonexistent/credential",
    "EXPORT_TOS_BUCKET": "demo-exports",
}

CASES = [
    Case("emulator", "usage", lambda w: ["--no-such-option"]),
    Case("emulator", "usage", lambda w: ["--port", "70000"], id="port-out-of-range"),
    Case("emulator", "configuration", lambda w: ["--fleet", "/nonexistent/fleet.json"]),
    Case("emulator", "operation", lambda w: ["--port", str(w.busy_port)], id="port-in-use"),
    Case("receiver", "usage", lambda w: ["--status", "999"], id="unknown-status"),
    Case("receiver", "usage", lambda w: ["--port", "-1"], id="port-out-of-range"),
    Case("receiver", "configuration", lambda w: ["--secret", "whsec_!!!"], id="bad-whsec-secret"),
    Case("receiver", "operation", lambda w: ["--port", str(w.busy_port)], id="port-in-use"),
    Case("demo", "usage", lambda w: ["--no-such-option"]),
    Case("validate-template", "usage", lambda w: ["--no-such-option"]),
    Case("validate-template", "usage", lambda w: ["/nonexistent/template.yaml"], id="no-such-file"),
    Case("validate-template", "operation", lambda w: [w.file("bad.yaml", "region: nowhere\n")], id="invalid"),
    Case("package", "usage", lambda w: ["--no-such-option"]),
    Case("package", "configuration", lambda w: ["--python", "/nonexistent/python3.12"], id="bad-python"),
    Case("deploy", "usage", lambda w: ["--no-such-option"]),
    Case("deploy", "usage", lambda w: ["--no-doctor"], id="no-doctor-without-apply"),
    Case("deploy", "usage", lambda w: ["--zip", "/nonexistent/function.zip"], _deploy_env, id="missing-zip"),
    Case("deploy", "configuration", _deploy_args, _deploy_env, id="missing-variables"),
    Case(
        "deploy", "configuration", _deploy_args, lambda w: {"ACCOUNT_ID": "1", "BUCKET": "b-1"}, id="no-keys"
    ),
    Case(
        "deploy",
        "operation",
        _deploy_args,
        lambda w: _deploy_env(w, secret=WRONG_SECRET, ACCOUNT_ID="2100000000", BUCKET="my-exports"),
        id="wrong-keys",
    ),
    Case("bench", "usage", lambda w: ["--no-such-option"]),
    Case("status", "usage", lambda w: ["--no-such-option"]),
    Case("status", "configuration", lambda w: [], lambda w: {"LOG_LEVEL": "TRACE"}, id="bad-setting"),
    Case("status", "configuration", lambda w: [], lambda w: NO_CREDENTIALS, id="no-keys"),
    Case(
        "status", "operation", lambda w: [], lambda w: _function_env(w, secret=WRONG_SECRET), id="wrong-keys"
    ),
    Case("restore", "usage", lambda w: []),
    Case("restore", "configuration", lambda w: ["image-ybqi99s7yq8rx7mnk44b"], lambda w: NO_CREDENTIALS),
    Case(
        "restore",
        "operation",
        lambda w: ["image-ybqi99s7yq8rx7mnk44b"],
        lambda w: _function_env(w, secret=WRONG_SECRET),
        id="wrong-keys",
    ),
    Case("doctor", "usage", lambda w: ["--no-such-option"]),
    # A bad setting is the doctor's own failed ``settings`` check (the others still run): 1, not 2.
    Case(
        "doctor",
        "operation",
        lambda w: [],
        lambda w: {**_function_env(w), "LOG_LEVEL": "TRACE"},
        id="bad-setting",
    ),
    Case(
        "doctor", "operation", lambda w: [], lambda w: _function_env(w, secret=WRONG_SECRET), id="wrong-keys"
    ),
    Case("retention", "usage", lambda w: ["--no-such-option"]),
    Case("retention", "configuration", lambda w: [], lambda w: NO_CREDENTIALS, id="no-keys"),
    Case(
        "retention",
        "operation",
        lambda w: [],
        lambda w: _function_env(w, secret=WRONG_SECRET),
        id="wrong-keys",
    ),
]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    ecs = EcsEmulator(credentials=CREDENTIALS)
    vefaas = VefaasEmulator(credentials=Credentials(CREDENTIALS.access_key, CREDENTIALS.secret_key))
    ecs.start()
    vefaas.start()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        yield World(ecs.endpoint, vefaas.endpoint, tmp_path, taken.getsockname()[1])
    finally:
        taken.close()
        ecs.close()
        vefaas.close()


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exited:  # argparse's usage errors
        return int(exited.code or 0)


def test_every_command_has_a_case_of_each_kind_it_can_meet() -> None:
    """Each command has a usage case; those that read a configuration or call something have those too."""
    kinds = {(case.command, case.kind) for case in CASES}
    assert {command for command, _ in kinds} == set(COMMANDS)
    assert all((command, "usage") in kinds for command in COMMANDS)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.command}-{c.kind}" + (f"-{c.id}" if c.id else ""))
def test_every_command_exits_0_1_or_2_by_the_convention(
    case: Case,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A usage error and a configuration error exit 2 with nothing on stdout; an operation that failed (an API
    error, a port in use, a check that found problems: validate-template's) 1, its report on stdout where
    the command has one (restore, retention); never a traceback, and no log line on stderr."""
    for name in [n for n in os.environ if n.startswith(_OWN_PREFIXES)]:
        monkeypatch.delenv(name)
    for name, value in case.env(world).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(world.folder)

    status = _run([case.command, *case.argv(world)])

    out, err = capsys.readouterr()
    assert status == EXPECTED[case.kind], err
    if case.kind != "operation":
        assert out == ""
    assert "Traceback" not in out + err
    assert (out + err).strip(), "an error says what went wrong"
    for line in err.splitlines():
        try:
            logged = json.loads(line)
        except ValueError:
            continue
        assert not (isinstance(logged, dict) and "event" in logged), f"a log line on stderr: {line}"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_is_success_on_stdout(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``exporter-tools COMMAND --help`` exits 0 with its usage on stdout (demo's included)."""
    assert _run([command, "--help"]) == 0
    out, err = capsys.readouterr()
    assert "usage: exporter-tools" in out
    assert err == ""


def test_version_is_the_projects(capsys: pytest.CaptureFixture[str]) -> None:
    """``exporter-tools --version`` prints the one version (handler/version.py) and exits 0."""
    from handler.version import __version__

    assert _run(["--version"]) == 0
    assert capsys.readouterr().out == f"exporter-tools {__version__}\n"
