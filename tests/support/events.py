"""The sample events in ``events/``, loaded the same way by every test (and shown in the README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["EVENTS_DIR", "EVENT_NAMES", "load_event"]

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"

EVENT_NAMES: tuple[str, ...] = (
    "timer_scan",
    "timer_image_ids",
    "timer_empty",
    "image_created",
    "eventbridge",
    "http_direct",
    "direct_single",
    "direct_batch",
    "restore",
    "doctor",
    "invalid",
)


def load_event(name: str) -> dict[str, Any]:
    """The event in ``events/<name>.json``, as the platform would hand it to the function."""
    event = json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    if not isinstance(event, dict):
        msg = f"events/{name}.json: expected a JSON object"
        raise TypeError(msg)
    return event
