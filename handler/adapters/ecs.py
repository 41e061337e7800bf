"""The ECS client: ``ExportImage``, ``DescribeImages`` and ``DescribeTasks`` (Version 2020-04-01), typed.

``ExportImage`` raises ``UnknownOutcomeError`` when its answer was lost and ``RetryableApiError`` with code
``OperationDenied.ResourceLocked`` when the image is busy: in both cases only the image's tasks can tell
whether an export is under way, and the caller looks before it tries again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from handler.adapters.openapi import OpenApiClient
from handler.errors import MalformedResponse, RetryableApiError, UnknownOutcomeError
from handler.models.api import ExportStarted, Image, Task

__all__ = ["API_VERSION", "BATCH_LIMIT", "MAX_SCAN_PAGES", "SERVICE", "TASKS_PER_IMAGE", "EcsClient"]

API_VERSION = "2020-04-01"
SERVICE = "ecs"
BATCH_LIMIT = 100  # ids per DescribeImages / DescribeTasks request, and the largest page
# Paging ends: a listing gets at most the pages it can need, then a MalformedResponse (a NextToken that
# changes on every page would otherwise page forever). A scan without ids: 200 pages (20,000 images);
# tasks of a batch of images: 50 tasks an image on average; a listing by ids: one page more than the ids fill.
MAX_SCAN_PAGES = 200
TASKS_PER_IMAGE = 50

_M = TypeVar("_M", bound=BaseModel)


class EcsClient:
    """The three ECS actions over a signed ``OpenApiClient`` (service ``ecs``, GET requests)."""

    def __init__(self, api: OpenApiClient) -> None:
        self._api = api

    def export_image(self, image_id: str, bucket: str, prefix: str, *, deadline: float) -> ExportStarted:
        """Start an export of ``image_id`` to ``bucket``; the file is ``<prefix>_<image_id>_system.qcow2``."""
        params = {"ImageId": image_id, "TOSBucket": bucket, "TOSPrefix": prefix}
        result, request_id = self._api.call("ExportImage", params, deadline=deadline, read_only=False)
        task_id = result.get("TaskId")
        if not isinstance(task_id, str) or not task_id:
            msg = "ExportImage answered without a TaskId"
            raise UnknownOutcomeError(
                msg, code="MalformedResponse", request_id=request_id, action="ExportImage"
            )
        return ExportStarted(task_id=task_id, request_id=request_id)

    def describe_images(
        self,
        *,
        deadline: float,
        image_ids: Iterable[str] = (),
        visibility: str | None = None,
        status: str | None = None,
        tag_filters: Mapping[str, str] | None = None,
    ) -> Iterator[Image]:
        """Every image matching the filters, over all pages (and over batches of 100 ids)."""
        base: dict[str, str] = {}
        if visibility:
            base["Visibility"] = visibility
        if status:
            base["Status.1"] = status
        for n, (key, value) in enumerate(sorted((tag_filters or {}).items()), start=1):
            base[f"TagFilters.{n}.Key"] = key
            base[f"TagFilters.{n}.Values.1"] = value
        for batch in _batches(image_ids):
            params = base | {f"ImageIds.{n}": i for n, i in enumerate(batch, start=1)}
            pages = _pages_for(len(batch)) if batch else MAX_SCAN_PAGES
            for item in self._pages("DescribeImages", params, "Images", deadline=deadline, max_pages=pages):
                yield _model(Image, item, "DescribeImages")

    def describe_tasks(
        self, *, deadline: float, task_ids: Iterable[str] = (), resource_ids: Iterable[str] = ()
    ) -> Iterator[Task]:
        """Every task for these task ids or resource (image) ids, batched by 100, over all pages."""
        for key, ids in (("TaskIds", task_ids), ("ResourceIds", resource_ids)):
            for batch in _batches(ids, empty_means_none=True):
                params = {f"{key}.{n}": i for n, i in enumerate(batch, start=1)}
                per_id = 1 if key == "TaskIds" else TASKS_PER_IMAGE
                pages = _pages_for(len(batch) * per_id)
                for item in self._pages("DescribeTasks", params, "Tasks", deadline=deadline, max_pages=pages):
                    yield _model(Task, item, "DescribeTasks")

    def _pages(
        self, action: str, params: dict[str, str], key: str, *, deadline: float, max_pages: int
    ) -> Iterator[Any]:
        token: str | None = None
        seen: set[str] = set()
        for _ in range(max_pages):
            page = dict(params, MaxResults=str(BATCH_LIMIT))
            if token:
                page["NextToken"] = token
            result, _ = self._api.call(action, page, deadline=deadline, read_only=True)
            items = result.get(key) or []
            if not isinstance(items, list):
                msg = f"{key} is not a list"
                raise RetryableApiError(msg, code="MalformedResponse", action=action)
            yield from items
            token = result.get("NextToken") or None
            if not token or token in seen:  # a repeated token would page forever
                return
            seen.add(token)
        msg = f"the paging did not end: a new NextToken after {max_pages} pages, more than this listing can need"
        raise MalformedResponse(msg, action=action)


def _pages_for(items: int) -> int:
    """The pages a listing of ``items`` items can need: the full pages, and one more."""
    return -(-items // BATCH_LIMIT) + 1


def _model(model: type[_M], item: Any, action: str) -> _M:
    try:
        return model.model_validate(item)
    except ValidationError as exc:
        msg = f"unexpected item in the answer: {exc.error_count()} field error(s)"
        raise RetryableApiError(msg, code="MalformedResponse", action=action) from None


def _batches(ids: Iterable[str], *, empty_means_none: bool = False) -> Iterator[list[str]]:
    """Ids in order without repeats, in lists of at most ``BATCH_LIMIT``. No ids: one empty list (no
    filter), or nothing at all when ``empty_means_none``."""
    unique = list(dict.fromkeys(ids))
    if not unique:
        if not empty_means_none:
            yield []
        return
    for start in range(0, len(unique), BATCH_LIMIT):
        yield unique[start : start + BATCH_LIMIT]
