"""The ECS client: ``ExportImage``, ``DescribeImages``, ``DescribeTasks``, ``TagResources``,
``UntagResources``, for restores ``ImportImage`` and ``DeleteImages`` (Version 2020-04-01), typed, and the
doctor's ``probe``.

``ExportImage`` raises ``UnknownOutcomeError`` when its answer was lost and ``RetryableApiError`` with code
``OperationDenied.ResourceLocked`` when the image is busy: in both cases only the image's tasks can tell
whether an export is under way, and the caller looks before it tries again. It raises ``ClearanceExpired``,
having sent nothing more, when an attempt would go out after the clearance its caller set
(``cleared_until``): the caller looks the image's tasks up again before it sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from handler.adapters.openapi import OpenApiClient
from handler.errors import (
    AccessDenied,
    AuthenticationFailed,
    ExporterError,
    ListingTruncated,
    MalformedResponse,
    error_for,
)
from handler.models.api import ExportStarted, Image, ImportSpec, ImportStarted, Probe, Task
from handler.models.tagging import TAG_KEY_RULE, TaggingFailure, TaggingReport, is_tag_key

__all__ = [
    "API_VERSION",
    "BATCH_LIMIT",
    "MAX_SCAN_PAGES",
    "SERVICE",
    "TAGS_PER_CALL",
    "TAG_BATCH_LIMIT",
    "TASKS_PER_IMAGE",
    "EcsClient",
    "TaggingFailure",
    "TaggingReport",
    "validate_tag_key",
]

API_VERSION = "2020-04-01"
SERVICE = "ecs"
BATCH_LIMIT = 100  # ids per DescribeImages / DescribeTasks request, and the largest page
# Paging ends: a listing gets at most the pages it can need, then a MalformedResponse (a NextToken that
# changes on every page would otherwise page forever). A scan without ids: 200 pages (20,000 images);
# tasks of a batch of images: 50 tasks an image on average; a listing by ids: one page more than the ids fill.
MAX_SCAN_PAGES = 200
TASKS_PER_IMAGE = 50
TAG_BATCH_LIMIT = 50  # resource ids per TagResources request (docs/facts.md §10)
TAGS_PER_CALL = 20  # tags per TagResources request
TAG_VALUE_LIMIT = 256

_M = TypeVar("_M", Image, Task)


def validate_tag_key(key: str) -> str:
    """A tag key as TagResources takes it (docs/facts.md §10); else a ``TerminalApiError`` naming the key."""
    if not is_tag_key(key):
        msg = f"tag key {key!r}: expected {TAG_KEY_RULE}"
        raise error_for("InvalidTagKey.Malformed", msg, action="TagResources")
    return key


def _checked_tags(tags: Mapping[str, str]) -> list[tuple[str, str]]:
    pairs = list(tags.items())
    if not 1 <= len(pairs) <= TAGS_PER_CALL:
        msg = f"tags: expected 1-{TAGS_PER_CALL} tags a request, got {len(pairs)}"
        raise error_for("InvalidParameter.Tags", msg, action="TagResources")
    for key, value in pairs:
        validate_tag_key(key)
        if len(value) > TAG_VALUE_LIMIT:
            msg = f"tag {key!r}: expected a value of at most {TAG_VALUE_LIMIT} characters, got {len(value)}"
            raise error_for("InvalidTagValue.Malformed", msg, action="TagResources")
    return pairs


class EcsClient:
    """The ECS actions over a signed ``OpenApiClient`` (service ``ecs``, GET requests)."""

    def __init__(self, api: OpenApiClient) -> None:
        self._api = api

    def export_image(
        self, image_id: str, bucket: str, prefix: str, *, deadline: float, cleared_until: float | None = None
    ) -> ExportStarted:
        """Start an export of ``image_id`` to ``bucket``; the file is ``<prefix>_<image_id>_system.qcow2``.
        No attempt goes out after ``cleared_until`` (a monotonic time): ``ClearanceExpired`` instead."""
        params = {"ImageId": image_id, "TOSBucket": bucket, "TOSPrefix": prefix}
        result, request_id = self._api.call(
            "ExportImage", params, deadline=deadline, idempotent=False, cleared_until=cleared_until
        )
        task_id = result.get("TaskId")
        if not isinstance(task_id, str) or not task_id:
            msg = "ExportImage answered without a TaskId"
            raise MalformedResponse(msg, request_id=request_id, action="ExportImage")
        return ExportStarted(task_id=task_id, request_id=request_id)

    def import_image(self, spec: ImportSpec, *, deadline: float) -> ImportStarted:
        """Import an image from files in TOS (``ImportImage``); never resent after an unknown outcome (a second
        send could make a second image)."""
        params = {"ImageName": spec.image_name, "Url": spec.url, "Platform": spec.platform}
        optional = {
            "PlatformVersion": spec.platform_version,
            "OsType": spec.os_type,
            "Architecture": spec.architecture,
            "BootMode": spec.boot_mode,
            "Description": spec.description,
        }
        params |= {key: value for key, value in optional.items() if value}
        for n, url in enumerate(spec.data_urls, start=1):
            params[f"ImportDataVolumes.{n}.DataVolumeUrl"] = url
        for n, (key, value) in enumerate(_checked_tags(dict(spec.tags)), start=1):
            params[f"Tags.{n}.Key"] = key
            params[f"Tags.{n}.Value"] = value
        result, request_id = self._api.call("ImportImage", params, deadline=deadline, idempotent=False)
        image_id = result.get("ImageId")
        if not isinstance(image_id, str) or not image_id:
            msg = "ImportImage answered without an ImageId"
            raise MalformedResponse(msg, request_id=request_id, action="ImportImage")
        return ImportStarted(image_id=image_id, request_id=request_id)

    def delete_images(self, image_ids: Iterable[str], *, deadline: float) -> dict[str, str | None]:
        """Delete images with their snapshots (``DeleteImages``): each id to None when deleted, else the error
        code the API gave for it (``OperationDenied.ImageIsExporting``, a not-found code…). Deleting twice
        deletes nothing more, so an unknown outcome is retried like a read."""
        outcome: dict[str, str | None] = {}
        for batch in _batches(image_ids, empty_means_none=True):
            params = {f"ImageIds.{n}": i for n, i in enumerate(batch, start=1)}
            params["DeleteBindedSnapshots"] = "true"
            result, _ = self._api.call("DeleteImages", params, deadline=deadline, idempotent=True)
            outcome |= dict.fromkeys(batch)
            details = result.get("OperationDetails") or []
            for detail in details if isinstance(details, list) else []:
                error = detail.get("Error") if isinstance(detail, dict) else None
                code = error.get("Code") if isinstance(error, dict) else None
                if isinstance(code, str) and code and detail.get("ImageId") in outcome:
                    outcome[detail["ImageId"]] = code
        return outcome

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
            listing = self._pages(
                "DescribeImages", params, "Images", deadline=deadline, max_pages=pages, scan=not batch
            )
            for item in listing:
                yield _model(Image, item, "DescribeImages")

    def probe(self, *, deadline: float) -> Probe:
        """One signed ``DescribeImages`` of a single private image, for what its answer says of the keys and
        the server (``OpenApiClient.probe``): the doctor's credentials and clock checks."""
        params = {"Visibility": "private", "MaxResults": "1"}
        return self._api.probe("DescribeImages", params, deadline=deadline)

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

    def tag_images(
        self, image_ids: Iterable[str], tags: Mapping[str, str], *, deadline: float
    ) -> TaggingReport:
        """Set ``tags`` (1-20; a key already on an image gets the new value) on every image: TagResources with
        ``ResourceType=image``, 50 images a request.

        Bad keys or values raise a ``TerminalApiError`` naming the key before anything is sent. A request
        the API refuses, or that fails after retries, is reported beside its images and the others go on.
        Setting a tag twice changes nothing, so an unknown outcome is retried like a read.
        """
        params: dict[str, str] = {"ResourceType": "image"}
        for n, (key, value) in enumerate(_checked_tags(tags), start=1):
            params[f"Tags.{n}.Key"] = key
            params[f"Tags.{n}.Value"] = value
        return self._tag_batches("TagResources", image_ids, params, deadline=deadline)

    def untag_images(
        self, image_ids: Iterable[str], keys: Iterable[str], *, deadline: float
    ) -> TaggingReport:
        """Remove the tags ``keys`` (1-20) from every image: UntagResources with ``ResourceType=image``, 50
        images a request, reported like :meth:`tag_images`. A key an image does not carry is no error."""
        wanted = list(dict.fromkeys(keys))
        if not 1 <= len(wanted) <= TAGS_PER_CALL:
            msg = f"tag keys: expected 1-{TAGS_PER_CALL} keys a request, got {len(wanted)}"
            raise error_for("InvalidParameter.TagKeys", msg, action="UntagResources")
        params: dict[str, str] = {"ResourceType": "image"}
        for n, key in enumerate(wanted, start=1):
            params[f"TagKeys.{n}"] = validate_tag_key(key)
        return self._tag_batches("UntagResources", image_ids, params, deadline=deadline)

    def _tag_batches(
        self, action: str, image_ids: Iterable[str], params: dict[str, str], *, deadline: float
    ) -> TaggingReport:
        done: list[str] = []
        failures: list[TaggingFailure] = []
        unique = list(dict.fromkeys(image_ids))
        for start in range(0, len(unique), TAG_BATCH_LIMIT):
            batch = unique[start : start + TAG_BATCH_LIMIT]
            self._tag_group(action, batch, params, deadline=deadline, done=done, failures=failures)
        return TaggingReport(tuple(done), tuple(failures))

    def _tag_group(
        self,
        action: str,
        batch: list[str],
        params: dict[str, str],
        *,
        deadline: float,
        done: list[str],
        failures: list[TaggingFailure],
    ) -> None:
        """One request for ``batch``. The API refuses a request as a whole when one of its images cannot take
        the tags (gone, or at the tag limit): such a refusal splits the batch in halves, and again, until the
        images it refuses stand alone and every other image is tagged. A failure that is no image's own
        (throttled or unanswered past the retries, out of time, a key without the permission) is the whole
        batch's: splitting it would only send more requests into the same wall."""
        ids = {f"ResourceIds.{n}": i for n, i in enumerate(batch, start=1)}
        try:
            self._api.call(action, params | ids, deadline=deadline, idempotent=True)
        except ExporterError as error:
            if len(batch) == 1 or not _refused_for_an_image(error):
                failures.append(TaggingFailure(tuple(batch), error))
                return
            half = len(batch) // 2
            for part in (batch[:half], batch[half:]):
                self._tag_group(action, part, params, deadline=deadline, done=done, failures=failures)
        else:
            done.extend(batch)

    def _pages(
        self,
        action: str,
        params: dict[str, str],
        key: str,
        *,
        deadline: float,
        max_pages: int,
        scan: bool = False,
    ) -> Iterator[Any]:
        token: str | None = None
        seen: set[str] = set()
        for _ in range(max_pages):
            page = dict(params, MaxResults=str(BATCH_LIMIT))
            if token:
                page["NextToken"] = token
            result, _ = self._api.call(action, page, deadline=deadline, idempotent=True)
            items = result.get(key) or []
            if not isinstance(items, list):
                msg = f"{key} is not a list"
                raise MalformedResponse(msg, action=action)
            yield from items
            token = result.get("NextToken") or None
            if not token or token in seen:  # a repeated token would page forever
                return
            seen.add(token)
        if scan:
            msg = (
                f"{action} listed more than {max_pages} pages ({max_pages * BATCH_LIMIT:,} images) and the scan "
                "reads no more: narrow it with ImageNamePrefix or Tags"
            )
            raise ListingTruncated(msg)
        msg = f"the paging did not end: a new NextToken after {max_pages} pages, more than this listing can need"
        raise MalformedResponse(msg, action=action)


def _refused_for_an_image(error: ExporterError) -> bool:
    """Whether a refused tagging request may be one image's fault: a final answer that is not about the
    caller's identity or permission (those refuse every image alike)."""
    return not error.retryable and not isinstance(error, AccessDenied | AuthenticationFailed)


def _pages_for(items: int) -> int:
    """The pages a listing of ``items`` items can need: the full pages, and one more."""
    return -(-items // BATCH_LIMIT) + 1


def _model(model: type[_M], item: Any, action: str) -> _M:
    try:
        return model.from_api(item)
    except ValidationError as exc:
        msg = f"unexpected item in the answer: {exc.error_count()} field error(s)"
        raise MalformedResponse(msg, action=action) from None


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
