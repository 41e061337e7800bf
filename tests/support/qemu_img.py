"""``qemu-img`` for the tests that hold a qcow2 file to QEMU's own check: skipped where it is missing, a
failure under CI (which installs qemu-utils)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["QEMU_IMG", "needs_qemu", "qemu_check"]

QEMU_IMG = shutil.which("qemu-img")
if QEMU_IMG is None and os.environ.get("CI"):
    pytest.fail("qemu-img is not on PATH under CI: install qemu-utils (.ci/run does as root)", pytrace=False)
needs_qemu = pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img not on PATH (Debian package qemu-utils)")


def qemu_check(path: Path) -> subprocess.CompletedProcess[str]:
    """``qemu-img check`` of the file (exit status 0: no error found)."""
    assert QEMU_IMG is not None
    return subprocess.run(
        [QEMU_IMG, "check", str(path)], capture_output=True, text=True, check=False, timeout=60
    )
