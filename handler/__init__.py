"""Exports Volcengine ECS custom images to TOS object storage, on a schedule and on events.

``handler(event, context)`` is the function entry. Importing this package does no I/O, reads no environment
and builds no client: the entry's module is imported on the first call.
"""

from __future__ import annotations

from typing import Any

__all__ = ["handler"]


def without_pydantic_plugins() -> None:
    """Turn pydantic's plugin discovery off (``PYDANTIC_DISABLE_PLUGINS=__all__``) unless it is set already.

    pydantic looks for plugins in every installed distribution's entry points when it builds its first model;
    the function uses none, and the scan costs a cold start. Called before anything imports pydantic."""
    import os  # noqa: PLC0415 - already loaded by the interpreter; here to keep `import handler` free

    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """The veFaaS entry: validate the event, export what it names, return the result (docs/contract.md)."""
    without_pydantic_plugins()
    from handler.entry import handle  # noqa: PLC0415 - keeps `import handler` free

    return handle(event, context)
