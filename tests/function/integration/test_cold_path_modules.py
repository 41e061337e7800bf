"""What a cold invocation loads: a direct export, in a fresh interpreter against the emulator over loopback,
imports exactly the function's modules on the committed allow-list for its settings: the defaults (tracking
on), and ``EXPORT_TRACKING=off`` (the benchmark's cold start). A new feature whose code lands on either path
fails here on purpose: import it where it is used."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage
from tests.support.emulated import process_env

ROOT = Path(__file__).resolve().parents[3]
LISTS = {
    "tags": Path(__file__).with_name("cold_path_modules.txt"),
    "off": Path(__file__).with_name("cold_path_modules_untracked.txt"),
}
IMAGE = "image-c0ldpath0000000001"

SCRIPT = f"""
import json, sys
import handler
result = handler.handler({{"ImageId": "{IMAGE}"}}, None)
print(json.dumps({{
    "statuses": [r["status"] for r in result["results"]],
    "modules": sorted(m for m in sys.modules if m == "handler" or m.startswith("handler.")),
}}))
"""


def allowed(listed: Path) -> list[str]:
    lines = listed.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("tracking", ["tags", "off"])
def test_a_cold_direct_export_imports_only_the_allowed_modules(
    start_emulator: Callable[..., EcsEmulator], tracking: str
) -> None:
    emulator = start_emulator(
        Fleet(images=(FleetImage(id=IMAGE),), buckets=(FleetBucket(name="demo-exports"),))
    )
    listed = LISTS[tracking]
    env = {**process_env(emulator), "PYTHONPATH": str(ROOT), "EXPORT_TRACKING": tracking}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["statuses"] == ["started"]
    extra = sorted(set(seen["modules"]) - set(allowed(listed)))
    missing = sorted(set(allowed(listed)) - set(seen["modules"]))
    assert not extra, (
        f"a cold direct export now imports {extra}: import them only on the paths that use them, or (when "
        f"every export needs them) add them to {listed.name}"
    )
    assert not missing, f"{missing} are no longer imported: take them off {listed.name}"
