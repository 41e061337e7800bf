"""What the core asks of the outside world: the ECS and TOS calls, as protocols.

The signed clients in ``handler.adapters`` (``EcsClient``, ``TosClient``) satisfy them in production, the
emulator's transport and the tests' fakes elsewhere; nothing in ``handler.core`` imports an adapter.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the protocols' signatures only: an untracked export imports nothing of TOS
    from handler.models.api import ExportStarted, Image, ImportSpec, ImportStarted, Probe, Task
    from handler.models.objects import BucketInfo, HeadResult, ListResult, PutResult
    from handler.models.tagging import TaggingReport

__all__ = ["DoctorApi", "EcsApi", "ObjectStore", "RestoreApi", "TrackingApi"]


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


class RestoreApi(TrackingApi, Protocol):
    """The ECS actions restores and drills add: ImportImage, and DeleteImages for drill images (each id to
    None when deleted, else the API's error code for it)."""

    def import_image(self, spec: ImportSpec, *, deadline: float) -> ImportStarted: ...

    def delete_images(self, image_ids: Iterable[str], *, deadline: float) -> dict[str, str | None]: ...


class DoctorApi(EcsApi, Protocol):
    """The ECS actions the doctor adds: a probe, one signed DescribeImages whose answer's ``Date`` is kept
    whatever it said (a final refusal is in the probe, not raised)."""

    def probe(self, *, deadline: float) -> Probe: ...


class ObjectStore(Protocol):
    """The TOS requests (``handler.adapters.tos.TosClient``, which documents each answer and error).

    ``head_object``: found, missing (404) or unreadable (403). ``list_objects``: every object under
    ``prefix``, every page (or the first ``max_pages``), or unreadable (403). ``get_range``: ``length`` bytes from ``start``, fewer only
    at the object's end (``RangeNotSatisfiable`` past it, ``TosAccessDenied`` on a 403). ``put_object``: a
    small body, safe to send again. ``delete_object``: done whether or not the key existed.
    ``head_bucket``: the bucket's region (``BucketNotFound`` when there is none)."""

    def head_object(self, bucket: str, key: str, *, deadline: float) -> HeadResult: ...

    def list_objects(
        self, bucket: str, prefix: str, *, deadline: float, max_keys: int = 1000, max_pages: int | None = None
    ) -> ListResult: ...

    def get_range(self, bucket: str, key: str, start: int, length: int, *, deadline: float) -> bytes: ...

    def put_object(
        self, bucket: str, key: str, body: bytes, *, content_type: str, deadline: float
    ) -> PutResult: ...

    def delete_object(self, bucket: str, key: str, *, deadline: float) -> None: ...

    def head_bucket(self, bucket: str, *, deadline: float) -> BucketInfo: ...
