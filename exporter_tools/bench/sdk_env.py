"""The baseline's own virtual environment: the official SDK's split packages, pinned, never in the project's.

The SDK is published whole (``volcengine-python-sdk``, about 600 MB) and split per service; the baseline needs
only the core and ECS packages. The environment is created on first use and kept (``.bench/sdk-venv``); a
changed pin rebuilds it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["SDK_DISTRIBUTIONS", "SDK_REQUIREMENTS", "SDK_VERSION", "ensure_sdk_venv", "site_packages"]

SDK_VERSION = "5.0.54"
SDK_DISTRIBUTIONS = ("volcenginesdk-core", "volcenginesdk-ecs")
SDK_REQUIREMENTS = tuple(f"{name}=={SDK_VERSION}" for name in SDK_DISTRIBUTIONS)
_MARKER = ".bench-installed"


def ensure_sdk_venv(venv: Path) -> Path:
    """The SDK environment's interpreter, creating the environment and installing the pins if needed.

    It is built from the interpreter running the benchmark, so both sides run the same Python."""
    python = venv / "bin" / "python"
    marker = venv / _MARKER
    wanted = " ".join(SDK_REQUIREMENTS)
    if python.exists() and marker.is_file() and marker.read_text(encoding="utf-8").strip() == wanted:
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *SDK_REQUIREMENTS],
        check=True,
        timeout=600,
    )
    marker.write_text(wanted + "\n", encoding="utf-8")
    return python


def site_packages(python: Path) -> Path:
    """Where ``python`` installs pure-Python packages."""
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Path(out.stdout.strip())
