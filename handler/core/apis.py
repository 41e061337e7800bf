"""What the core asks of the outside world: the ECS and TOS calls, as protocols.

The signed clients in ``handler.adapters`` (``EcsClient``, ``TosClient``) satisfy them in production, the
emulator's transport and the tests' fakes elsewhere; nothing in ``handler.core`` imports an adapter.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

from handler.models.api import ExportStarted, Image, Task
from handler.models.objects import HeadResult
from handler.models.tagging import TaggingReport

__all__ = ["EcsApi", "ObjectStore", "TrackingApi"]


class EcsApi(Protocol):
    """The three ECS actions every export needs (``handler.adapters.ecs.EcsClient``). ``cleared_until`` (a
    ``Clock.monotonic()`` reading): no ExportImage attempt, the first or a retry, goes out after it
    (``ClearanceExpired``); None: no bound."""

    def export_image(
        self, image_id: str, bucket: str, prefix: str, *, deadline: float, cleared_until: float | None = None
    ) -> ExportStarted: ...

    def describe_images(
        self,
        *,
        deadline: float,
        image_ids: Iterable[str] = (),
        visibility: str | None = None,
        status: str | None = None,
        tag_filters: Mapping[str, str] | None = None,
    ) -> Iterator[Image]: ...

    def describe_tasks(
        self, *, deadline: float, task_ids: Iterable[str] = (), resource_ids: Iterable[str] = ()
    ) -> Iterator[Task]: ...


class TrackingApi(EcsApi, Protocol):
    """The ECS actions tracking adds: TagResources and UntagResources on images."""

    def tag_images(
        self, image_ids: Iterable[str], tags: Mapping[str, str], *, deadline: float
    ) -> TaggingReport: ...

    def untag_images(
        self, image_ids: Iterable[str], keys: Iterable[str], *, deadline: float
    ) -> TaggingReport: ...


class ObjectStore(Protocol):
    """TOS HeadObject (``handler.adapters.tos.TosClient``)."""

    def head_object(self, bucket: str, key: str, *, deadline: float) -> HeadResult: ...
