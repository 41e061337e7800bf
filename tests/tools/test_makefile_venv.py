"""The Makefile refuses a ``.venv`` made by a Python older than 3.11 and says how to make it again."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def fake_venv(folder: Path, version: str) -> Path:
    """A venv whose ``bin/python`` says it is ``version`` (and answers the version check as that Python
    would), without being one: nothing can be installed into it."""
    old = tuple(int(part) for part in version.split(".")[:2]) < (3, 11)
    script = f"""#!/bin/sh
case "$1" in
  -V) echo "Python {version}" ;;
  -c) exit {1 if old else 0} ;;
  *) echo "fake python: $*" >&2; exit 3 ;;
esac
"""
    python = folder / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(script, encoding="utf-8")
    python.chmod(0o755)
    return folder / "venv"


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("target", ["check-venv", "lint"])
def test_a_venv_of_python_3_10_is_refused_with_how_to_make_it_again(tmp_path: Path, target: str) -> None:
    """``make lint`` (every target that uses the venv) stops before pip or a tool runs, naming the venv's
    Python and the command that makes the venv again."""
    venv = fake_venv(tmp_path, "3.10.12")
    done = make(target, f"VENV={venv}")
    assert done.returncode != 0
    assert f"{venv} was made by Python 3.10.12; the project needs Python 3.11 or newer." in done.stderr
    assert f"rm -rf {venv} && make" in done.stderr
    assert "fake python:" not in done.stderr  # nothing ran in it


def test_a_venv_of_python_3_11_passes_the_check(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path, "3.11.9")
    done = make("check-venv", f"VENV={venv}")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
