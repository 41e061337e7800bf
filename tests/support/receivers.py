"""A webhook receiver that keeps an invocation waiting: it holds deliveries unanswered until the test releases
them, so that a test can act while the function is between notifying and retagging."""

from __future__ import annotations

import threading
from typing import Any

from exporter_tools.receiver import WebhookReceiver

__all__ = ["HeldReceiver"]

# However the test goes, a held delivery is answered after this long (the function's own attempt gives up
# after 5 s and sends again, unheld).
HOLD_LIMIT = 20.0


class HeldReceiver(WebhookReceiver):
    """A Standard Webhooks receiver (``WebhookReceiver``) whose next ``hold(n)`` deliveries wait, unanswered,
    until ``release()``; ``arrived`` is set when the first held one comes in. Later deliveries are answered at
    once."""

    def __init__(self, **options: Any) -> None:
        super().__init__(fmt="standard", **options)
        self.arrived = threading.Event()
        self._released = threading.Event()
        self._guard = threading.Lock()
        self._to_hold = 0

    def hold(self, count: int = 1) -> None:
        """Hold the next ``count`` deliveries."""
        with self._guard:
            self._to_hold = count
            self._released.clear()
            self.arrived.clear()

    def release(self) -> None:
        """Answer the held deliveries now."""
        self._released.set()

    def receive(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        with self._guard:
            held = self._to_hold > 0
            self._to_hold -= int(held)
        if held:
            self.arrived.set()
            self._released.wait(timeout=HOLD_LIMIT)
        return super().receive(path, headers, body)

    def __enter__(self) -> HeldReceiver:
        self.start()
        return self

    def stop(self) -> None:
        self.release()
        super().stop()
