"""Exports Volcengine ECS custom images to TOS object storage, on a schedule and on events.

``handler(event, context)`` is the function entry. Importing this package does no I/O, reads no environment
and builds no client: the entry's module is imported on the first call.
"""

from __future__ import annotations

from typing import Any

__all__ = ["handler"]


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """The veFaaS entry: validate the event, export what it names, return the result (docs/contract.md)."""
    from handler.entry import handle  # noqa: PLC0415 - keeps `import handler` free

    return handle(event, context)
