"""The cold path: pydantic's plugin discovery is off unless the user turned it on, and models build lazily."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

# A fresh interpreter (pydantic is already imported in the test process): one invocation with an event the
# function refuses before any network call, then what pydantic saw.
SCRIPT = """
import json, os
import handler
result = handler.handler({"unknown": "shape"}, None)
from pydantic.plugin import _loader
from handler.models import events
print(json.dumps({
    "ok": result["ok"],
    "setting": os.environ.get("PYDANTIC_DISABLE_PLUGINS"),
    "scanned": _loader._plugins is not None,
    "scan_built": events.ScanCommand.__pydantic_complete__,
}))
"""


def invoke_fresh(**settings: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYDANTIC_", "VOLCENGINE_", "EXPORT_"))}
    env.update(settings, PYTHONPATH=str(ROOT))
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
    output: dict[str, object] = json.loads(completed.stdout.strip().splitlines()[-1])
    return output


def test_an_invocation_never_scans_for_pydantic_plugins() -> None:
    """The first invocation builds its models without pydantic reading every distribution's entry points,
    and leaves the models of other event shapes unbuilt."""
    output = invoke_fresh()
    assert output["ok"] is False
    assert output["setting"] == "__all__"
    assert output["scanned"] is False
    assert output["scan_built"] is False


@pytest.mark.parametrize("value", ["", "logfire"])
def test_a_users_pydantic_plugins_setting_is_kept(value: str) -> None:
    """PYDANTIC_DISABLE_PLUGINS set by the user (even empty: discover every plugin) is left as it is."""
    output = invoke_fresh(PYDANTIC_DISABLE_PLUGINS=value)
    assert output["setting"] == value
    assert output["scanned"] is True
