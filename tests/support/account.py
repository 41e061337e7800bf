"""An ECS account (and its TOS) in the emulator, answering in-process, behind the function's own clients.

The unit tests of the flows talk to it instead of hand-written fakes: the same ``EcsService`` state as the
emulator over a socket (tasks that progress, locks from exports in progress, the tag search's cap), through
the real ``EcsClient`` and ``TosClient`` (signing, paging, batching, the error table), with no socket and no
thread. ``api`` is the :class:`~tests.support.fakes.ScriptedEcs` around them, which records every call and
scripts what the emulator cannot do by itself.

The account's state runs on the test's :class:`~tests.support.fakes.FakeClock`. Each side checks signatures
against the time its client signs with: the OpenAPI gateway against real time (``VolcSigner``), TOS against
the test's clock (``TosClient`` signs with its clock).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

from exporter_tools.emulator.ecs import EcsService
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage, FleetTask
from exporter_tools.emulator.server import OpenApiEmulator
from handler.adapters.pacing import RateLimiter
from handler.adapters.retry import RetryPolicy
from handler.adapters.signing import Credentials
from handler.adapters.tos import TosClient
from tests.support.builders import NOW, ecs_client
from tests.support.fakes import FakeClock, ScriptedEcs

__all__ = ["CREDENTIALS", "Account"]

CREDENTIALS = Credentials("AKLTunittest000000001", "unit-secret-key-000000001")
# One attempt a call: a scripted failure reaches the flow as the client's error, with no retry in between.
ONE_ATTEMPT = RetryPolicy(max_attempts=1, base=0.0, cap=0.0)


class Account:
    """``images`` and earlier ``tasks`` (fleet records; ``tests.support.builders.fleet_image`` and
    ``fleet_task``) in buckets ``buckets`` (names, or fleet buckets: a region, an access of their own),
    created relative to ``clock``'s now (default: a still clock at ``NOW``); exports take ``task_seconds``.

    ``api`` is what the flows get; ``client`` and ``store_client`` are the function's clients underneath
    (a call through them is not recorded: another copy of the function, say), ``http`` the client they send
    with; ``ecs`` is the emulated state."""

    def __init__(
        self,
        images: Iterable[FleetImage] = (),
        tasks: Iterable[FleetTask] = (),
        *,
        buckets: Iterable[str | FleetBucket] = ("b-1",),
        clock: FakeClock | None = None,
        task_seconds: float = 30.0,
    ) -> None:
        self.clock = clock or FakeClock(0.0, wall=NOW, jitter=0.5)
        fleet = Fleet(
            images=tuple(images),
            tasks=tuple(tasks),
            buckets=tuple(b if isinstance(b, FleetBucket) else FleetBucket(name=b) for b in buckets),
        )
        self.ecs = EcsService(fleet, task_seconds=task_seconds, seed=7, clock=self.clock)
        self.emulator = OpenApiEmulator([self.ecs], credentials=CREDENTIALS, seed=7, port=None)
        self.emulator.side_service = self.ecs.object_storage(
            self.emulator.accepted_key, region=self.emulator.region, clock=self.clock
        )
        http = httpx.Client(transport=self.emulator.transport())
        self.http = http
        limiter = RateLimiter(1e9, clock=self.clock)  # never waits: time is the test's to move
        self.client = ecs_client(
            self.clock, CREDENTIALS, endpoint=self.emulator.endpoint, attempts=1, http=http, limiter=limiter
        )
        self.store_client = TosClient(
            http=http,
            endpoint=self.emulator.endpoint,
            region=self.emulator.region,
            credentials=CREDENTIALS,
            policy=ONE_ATTEMPT,
            limiter=limiter,
            clock=self.clock,
        )
        self.api = ScriptedEcs(self.client, store=self.store_client)

    @property
    def calls(self) -> list[tuple[str, Any]]:
        """Every call the flows made, in order (``ScriptedEcs.calls``)."""
        return self.api.calls

    def count(self, action: str) -> int:
        return self.api.count(action)

    def add(self, image: FleetImage) -> None:
        """Put one more image in the account, created ``created_hours_ago`` before the clock's now."""
        self.ecs.add_image(image)

    def tasks_of(self, image_id: str) -> list[dict[str, Any]]:
        """The image's tasks as DescribeTasks answers them, newest first (the earlier ones included)."""
        tasks: list[dict[str, Any]] = self.ecs.describe_tasks({"ResourceId": image_id, "MaxResults": "100"})[
            "Tasks"
        ]
        return tasks

    def exports_of(self, image_id: str) -> int:
        """How many export tasks the image has (the earlier ones included)."""
        return sum(1 for t in self.tasks_of(image_id) if t["Type"] == "ExportImage")

    def tags_of(self, image_id: str) -> dict[str, str]:
        return self.ecs.image_tags(image_id)

    def export_now(self, image_id: str, bucket: str = "b-1", prefix: str = "nightly") -> str:
        """Export the image as another copy of the function would (not recorded); its task id."""
        return self.client.export_image(
            image_id, bucket, prefix, deadline=self.clock.monotonic() + 60
        ).task_id
