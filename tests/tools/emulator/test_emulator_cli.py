"""``exporter-tools emulator`` (``python -m exporter_tools.emulator``): what it prints, what it refuses, and
that what it prints is enough for ``python -m handler invoke`` to work against it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from exporter_tools.emulator.__main__ import main
from handler.adapters.signing import Credentials
from tests.support.emulated import signed_get
from tests.tools.emulator.tos_requests import signed_tos_request

REPO = Path(__file__).resolve().parents[3]
AVAILABLE = "image-ybqi99s7yq8rx7mnk44b"


def export_params(image_id: str = AVAILABLE) -> dict[str, str]:
    return {"ImageId": image_id, "TOSBucket": "demo-exports", "TOSPrefix": "test1"}


def _start(*options: str) -> tuple[subprocess.Popen[str], list[str]]:
    """Start the command; its stdout lines up to the last ``export`` line it prints on starting."""
    command = [sys.executable, "-m", "exporter_tools.emulator", "--port", "0", *options]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    assert process.stdout is not None
    lines: list[str] = []
    for _ in range(20):
        line = process.stdout.readline()
        lines.append(line.rstrip("\n"))
        if not line or line.startswith("export EXPORT_TOS_BUCKET="):
            break
    return process, lines


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=10)
    return err


def test_the_command_prints_its_address_and_stops_on_sigterm() -> None:
    """``python -m exporter_tools.emulator`` prints where it listens, answers signed requests (TOS's with the
    ``Date`` ``--tos-clock-offset`` moves), exits 0 on SIGTERM."""
    keys = Credentials("AKLTcli", "cli-secret")
    command = [sys.executable, "-m", "exporter_tools.emulator", "--port", "0", "--seed", "3"]
    command += ["--access-key", keys.access_key, "--secret-key", keys.secret_key, "--task-seconds", "5"]
    command += ["--tos-clock-offset", "-300"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline().strip()
        prefix = "emulator listening on "
        assert first.startswith(prefix)
        target = SimpleNamespace(endpoint=first.removeprefix(prefix), region="cn-beijing")
        response = signed_get(target, "ExportImage", export_params(), credentials=keys)  # type: ignore[arg-type]
        assert response.status_code == 200
        port = int(target.endpoint.rsplit(":", 1)[1])
        bucket = signed_tos_request(
            SimpleNamespace(port=port, **vars(target)), "demo-exports", None, credentials=keys
        )
        tos_date = parsedate_to_datetime(bucket.headers["date"])
        assert abs((datetime.now(UTC) - tos_date).total_seconds() - 300) < 5
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)

    assert process.returncode == 0
    assert keys.secret_key not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--access-key", "AK"], "both --access-key and --secret-key", id="half-keys"),
        pytest.param(["--fleet", "/nonexistent/fleet.json"], "cannot read the fleet file", id="no-fleet"),
        pytest.param(["--error-rate", "2"], "between 0 and 1", id="rate"),
    ],
)
def test_the_command_refuses_bad_options(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A usage error exits 2 with a message that says what to fix."""
    with pytest.raises(SystemExit) as exited:
        main(argv)

    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_fleet_file_with_a_wrong_field_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A fleet whose image has an unknown status is refused, naming the field."""
    fleet = tmp_path / "fleet.json"
    fleet.write_text(json.dumps({"images": [{"id": "image-abc", "status": "broken"}]}), encoding="utf-8")

    with pytest.raises(SystemExit):
        main(["--fleet", str(fleet)])

    assert "images.0.status" in capsys.readouterr().err


def test_the_printed_export_lines_are_enough_for_invoke(tmp_path: Path) -> None:
    """Pasting the ``export`` lines the emulator prints into a shell points ``python -m handler invoke`` at
    it, TOS included: with nothing else set, the function starts the export through the emulator, and once
    the task ends the timer's follow-up checks the exported file on the emulator's TOS and reports it
    ``exported``, verified."""
    process, lines = _start("--seed", "5", "--task-seconds", "1")
    try:
        exports = [line for line in lines if line.startswith(("export ", "unset "))]
        names = {line.split()[1].split("=")[0] for line in exports}
        assert names >= {
            "VOLCENGINE_ENDPOINT",
            "TOS_ENDPOINT",
            "VOLCENGINE_ACCESS_KEY",
            "VOLCENGINE_SECRET_KEY",
            "VOLCENGINE_REGION",
            "EXPORT_TOS_BUCKET",
        }
        event = tmp_path / "event.json"
        event.write_text(json.dumps({"ImageId": AVAILABLE}), encoding="utf-8")
        clean = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("VOLCENGINE_", "VOLC_", "EXPORT_", "WEBHOOK_", "TOS_", "SSL_CERT_"))
        }

        def invoke(path: Path) -> subprocess.CompletedProcess[str]:
            script = "\n".join([*exports, f'exec "{sys.executable}" -m handler invoke "{path}"'])
            return subprocess.run(
                ["sh", "-c", script],
                env=clean,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        started = invoke(event)
        time.sleep(1.5)  # the export task ends
        followed = invoke(REPO / "events" / "timer_empty.json")
    finally:
        _stop(process)
    assert started.returncode == 0, started.stderr
    result = json.loads(started.stdout)
    assert [(r["image_id"], r["status"]) for r in result["results"]] == [(AVAILABLE, "started")]
    assert followed.returncode == 0, followed.stderr
    exported = [r for r in json.loads(followed.stdout)["results"] if r["image_id"] == AVAILABLE]
    assert [(r["status"], r["verified"]) for r in exported] == [("exported", True)]


def test_the_export_lines_carry_the_keys_given_and_a_session_token() -> None:
    """With ``--access-key``, ``--secret-key`` and ``--session-token``, the printed lines export exactly those,
    quoted for the shell."""
    keys = ["--access-key", "AKLTmine", "--secret-key", "it's secret", "--session-token", "tok en"]
    process, lines = _start(*keys)
    _stop(process)
    assert "export VOLCENGINE_ACCESS_KEY=AKLTmine" in lines
    assert "export VOLCENGINE_SECRET_KEY='it'\"'\"'s secret'" in lines
    assert "export VOLCENGINE_SESSION_TOKEN='tok en'" in lines
    assert "export EXPORT_TOS_BUCKET=demo-exports" in lines


def test_with_tls_the_export_lines_trust_the_emulators_certificate() -> None:
    """Served over TLS, the lines also set SSL_CERT_FILE to the certificate, so that the function trusts it."""
    from exporter_tools.emulator.__main__ import export_lines
    from exporter_tools.emulator.fleet import demo_fleet

    keys = Credentials("AKLTtls", "tls-secret")
    lines = export_lines(
        "https://127.0.0.1:8443", keys, "cn-beijing", demo_fleet(), ca_file="/etc/emulator/cert.pem"
    )
    assert "export SSL_CERT_FILE=/etc/emulator/cert.pem" in lines
    assert "export TOS_ENDPOINT=https://127.0.0.1:8443" in lines
