"""``python -m handler invoke``: the result alone on stdout, logs on stderr, exit codes as the contract says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.events import EVENTS_DIR
from tests.support.refused_settings import CREDENTIAL_ROWS, SECRET_CANARY, SETTINGS_ROWS, Refused, params

ENV = {
    "PATH": os.environ.get("PATH", ""),
    "EXPORT_TOS_BUCKET": "demo-exports",
    "VOLCENGINE_ACCESS_KEY": "AKLTclitest000",
    "VOLCENGINE_SECRET_KEY": "cli-secret-value",
    "VOLCENGINE_ENDPOINT": "http://127.0.0.1:9",
    "VOLCENGINE_MAX_ATTEMPTS": "1",
    "VOLCENGINE_CREDENTIAL_FILE": "",
}


def run_cli(
    *args: str, stdin: str | bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    data = stdin.decode() if isinstance(stdin, bytes) else stdin
    return subprocess.run(
        [sys.executable, "-m", "handler", *args],
        input=data,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
        check=False,
    )


def test_invalid_event_prints_the_result_and_exits_1() -> None:
    """A bad event: stdout is one JSON result naming the field; exit status 1."""
    done = run_cli("invoke", str(EVENTS_DIR / "invalid.json"))
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["results"][0]["error"]["code"] == "InvalidEvent"
    assert all(json.loads(line)["event"] for line in done.stderr.splitlines())


def test_not_json_is_an_event_error(tmp_path: Path) -> None:
    """A file that is not JSON is an InvalidEvent result with exit status 1, not a crash."""
    bad = tmp_path / "event.json"
    bad.write_text("{not json", encoding="utf-8")
    done = run_cli("invoke", str(bad))
    assert done.returncode == 1
    error = json.loads(done.stdout)["results"][0]["error"]
    assert error["code"] == "InvalidEvent"
    assert "not valid JSON" in error["message"]


def test_stdin_is_read_with_a_dash() -> None:
    """``-`` reads the event from standard input."""
    done = run_cli("invoke", "-", stdin='{"ImageId": "bad"}')
    assert done.returncode == 1
    assert json.loads(done.stdout)["results"][0]["error"]["message"].startswith("ImageId: ")


def test_unreachable_api_fails_retryably_with_exit_1() -> None:
    """When the API cannot be reached the result says so, retryable, and the exit status is 1."""
    done = run_cli("invoke", str(EVENTS_DIR / "direct_single.json"), "--timeout", "30")
    assert done.returncode == 1
    error = json.loads(done.stdout)["results"][0]["error"]
    assert (error["code"], error["retryable"]) == ("ConnectError", True)
    assert "127.0.0.1:9" in error["message"]


@pytest.mark.parametrize("args", [("invoke",), ("frobnicate",)])
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    """A wrong command line is a usage error: exit 2, nothing on stdout (nothing ran)."""
    done = run_cli(*args)
    assert done.returncode == 2
    assert done.stdout == ""


def _refused_file(done: Any) -> str:
    """The message of the InvalidEvent result an unreadable event file gets (exit 2, no traceback)."""
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (result,) = json.loads(done.stdout)["results"]
    assert (result["status"], result["error"]["code"]) == ("failed", "InvalidEvent")
    return str(result["error"]["message"])


def test_a_missing_event_file_exits_2_with_a_result() -> None:
    assert "cannot read /nonexistent/event.json" in _refused_file(
        run_cli("invoke", "/nonexistent/event.json")
    )


def test_an_event_file_that_is_a_fifo_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    """A FIFO (or a device, or a directory) as the event file would block or flood: refused at once."""
    fifo = tmp_path / "event.json"
    os.mkfifo(fifo)
    assert "is not a regular file" in _refused_file(run_cli("invoke", str(fifo), timeout=10))
    assert "is not a regular file" in _refused_file(run_cli("invoke", "/dev/zero", timeout=10))


def test_an_event_over_6_mb_is_refused_from_a_file_or_from_stdin(tmp_path: Path) -> None:
    """The event is read with a cap of 6 MB (veFaaS's request limit): a bigger file is refused by its size,
    endless stdin after 6 MB, and the memory stays small."""
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b"1," * 3_500_000 + b"1]")
    assert "over the 6,000,000 bytes" in _refused_file(run_cli("invoke", str(big), timeout=10))
    endless = run_cli("invoke", "-", stdin=b"x" * 7_000_000, timeout=10)
    assert "over the 6,000,000 bytes" in _refused_file(endless)


def _first_of_each_variable(rows: tuple[Refused, ...]) -> tuple[Refused, ...]:
    firsts: dict[str, Refused] = {}
    for row in rows:
        firsts.setdefault(row.variable, row)
    return tuple(firsts.values())


def _invoke_direct(env: dict[str, str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m handler invoke -`` with one direct event on stdin, in ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "handler", "invoke", "-"],
        input='{"ImageId": "image-ybqi99s7yq8rx7mnk44b"}',
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("row", params(_first_of_each_variable(SETTINGS_ROWS + CREDENTIAL_ROWS)))
def test_a_refused_setting_prints_a_result_and_no_traceback(row: Refused) -> None:
    """Through ``python -m handler invoke`` (one refused value per variable; tests/function/integration
    test_entry.py runs every row in process): stdout is the result naming the variable, exit 1, and stderr
    carries no traceback and no secret."""
    done = _invoke_direct({**ENV, row.variable: row.value}, timeout=60)
    assert done.returncode == 1
    (result,) = json.loads(done.stdout)["results"]
    assert result["error"]["code"] == "ConfigurationError"
    assert result["error"]["message"].startswith(f"{row.variable}: ")
    assert row.says in result["error"]["message"]
    assert "Traceback" not in done.stderr
    assert SECRET_CANARY not in done.stdout + done.stderr


def test_a_credential_file_that_is_a_fifo_prints_a_result_at_once(tmp_path: Path) -> None:
    """VOLCENGINE_CREDENTIAL_FILE naming a FIFO with no writer: a result naming the file, not a hang."""
    fifo = tmp_path / "credential"
    os.mkfifo(fifo)
    env = {
        **{k: v for k, v in ENV.items() if not k.startswith("VOLCENGINE_")},
        "VOLCENGINE_CREDENTIAL_FILE": str(fifo),
    }
    done = _invoke_direct(env, timeout=10)
    (result,) = json.loads(done.stdout)["results"]
    assert result["error"]["message"].startswith(f"{fifo}: the credential file is not a regular file")
    assert "Traceback" not in done.stderr


def test_help_explains_events_and_environment() -> None:
    """``invoke --help`` lists the event shapes, the main variables and the exit codes."""
    done = run_cli("invoke", "--help")
    assert done.returncode == 0
    for word in ("faas.timer.event", "ImageIds", "EXPORT_TOS_BUCKET", "exit status"):
        assert word in done.stdout


def test_tools_are_not_commands_of_the_function() -> None:
    """The function's runner knows ``invoke`` only, and points at ``exporter-tools`` for the rest."""
    done = run_cli("validate-template", "--help")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "exporter-tools" in done.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e308", "0", "-1", "ten", ""])
def test_a_timeout_that_is_not_a_positive_finite_number_is_a_usage_error(value: str) -> None:
    """``--timeout`` takes a positive, finite number of seconds; anything else exits 2 with a usage
    message on stderr and nothing on stdout (no run, no log line)."""
    done = run_cli("invoke", str(EVENTS_DIR / "direct_single.json"), "--timeout", value)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "--timeout" in done.stderr
    assert "usage: python -m handler invoke" in done.stderr


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        ('{"ImageId": "image-abc"}'.encode("utf-16"), "not UTF-8"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_an_unreadable_event_file_is_an_event_error(tmp_path: Path, content: bytes, words: str) -> None:
    """Empty, non-UTF-8 and absurdly nested event files give an InvalidEvent result saying what is wrong,
    with exit status 1: never a traceback."""
    bad = tmp_path / "event.json"
    bad.write_bytes(content)
    done = run_cli("invoke", str(bad))
    assert done.returncode == 1
    error = json.loads(done.stdout)["results"][0]["error"]
    assert error["code"] == "InvalidEvent"
    assert words in error["message"]
    assert "Traceback" not in done.stderr


def test_a_utf8_file_with_a_byte_order_mark_is_read() -> None:
    """An editor's UTF-8 byte order mark does not make a valid event invalid."""
    done = run_cli("invoke", "-", stdin="\ufeff" + '{"ImageId": "bad"}')
    assert json.loads(done.stdout)["results"][0]["error"]["message"].startswith("ImageId: ")


def test_version_prints_the_functions_version() -> None:
    """``python -m handler --version``: the version (handler/version.py) and the sources' digest, exit 0."""
    from handler.version import __version__

    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout == f"vefaas-image-exporter {__version__} (source_sha256 unpackaged)\n"


def test_quiet_prints_the_result_and_no_log_line() -> None:
    """``--quiet``: the result on stdout as ever, and nothing at all on stderr, at any LOG_LEVEL."""
    env = {**ENV, "LOG_LEVEL": "DEBUG"}
    done = subprocess.run(
        [sys.executable, "-m", "handler", "invoke", str(EVENTS_DIR / "invalid.json"), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["results"][0]["error"]["code"] == "InvalidEvent"
    assert done.stderr == ""


def _on_a_terminal(**env: str) -> str:
    """What ``invoke`` writes on stderr when stderr is a terminal (a pseudo-terminal here)."""
    import pty

    main, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "handler", "invoke", str(EVENTS_DIR / "invalid.json")],
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
            env={**ENV, **env},
            timeout=60,
            check=False,
        )
        os.close(follower)
        follower = -1
        assert done.returncode == 1
        chunks = []
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal is closed once its last writer is gone
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(main)
        if follower != -1:
            os.close(follower)
    return b"".join(chunks).decode()


def test_on_a_terminal_the_logs_are_for_people_unless_log_format_says_otherwise() -> None:
    """stderr a terminal and LOG_FORMAT unset: structlog's console lines (no JSON), the first one included;
    LOG_FORMAT=json on the same terminal: JSON lines as everywhere else."""
    console = _on_a_terminal()
    assert "image.outcome" in console
    assert not any(line.lstrip().startswith("{") for line in console.splitlines() if line.strip())
    as_json = _on_a_terminal(LOG_FORMAT="json")
    assert all(json.loads(line)["event"] for line in as_json.splitlines() if line.strip())


def test_log_format_console_off_a_terminal_is_for_people_without_colour() -> None:
    """LOG_FORMAT=console through a pipe: console lines, no escape codes."""
    done = subprocess.run(
        [sys.executable, "-m", "handler", "invoke", str(EVENTS_DIR / "invalid.json")],
        capture_output=True,
        text=True,
        env={**ENV, "LOG_FORMAT": "console"},
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "invocation.result" in done.stderr
    assert "\x1b[" not in done.stderr
    assert not done.stderr.lstrip().startswith("{")
