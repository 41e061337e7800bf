"""Test doubles shared across the suites: a clock that never really sleeps, the one scripted ECS (around the
function's real client over the emulator), an HTTP client facing an untrusted certificate, and the ExportImage
API's error table."""

from __future__ import annotations

import ssl
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpcore
import httpx

from handler.adapters.ecs import EcsClient
from handler.core.apis import ObjectStore, RestoreApi, TrackingApi
from handler.errors import (
    ApiError,
    BucketAccessDenied,
    BucketNotFound,
    ImageNotExportable,
    ImageNotFound,
    ImageNotReady,
    InvalidParameter,
    ListingTruncated,
    ResourceLocked,
    ServerError,
)
from handler.models.api import ExportStarted, Image, ImportSpec, ImportStarted, Task
from handler.models.objects import BucketInfo, HeadResult, ListResult, PutResult
from handler.models.tagging import TaggingReport

__all__ = [
    "EXPORT_IMAGE_ERRORS",
    "Call",
    "FakeClock",
    "Hook",
    "ScriptedEcs",
    "failing",
    "untrusted_tls_client",
]

WALL_START = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)


class FakeClock:
    """The one fake :class:`handler.clock.Clock` of the suites; ``sleep`` never really waits.

    ``t`` is the monotonic reading; ``now()`` is ``wall`` moved on by as much as ``t`` moved from ``start``
    (``wall=None``: the real time moved on so, for an emulator whose signatures must stay fresh while its
    tasks progress). ``sleep`` records the wait in ``slept`` and the moment it ends in ``woke``, and moves
    ``t`` on, unless the clock is ``still`` (callers that never wait in line: time moves only when told).
    ``advance`` moves time on, ``set_now`` puts the wall clock at a moment; ``random()`` always draws
    ``jitter``, so backoff waits are exact. Called, it answers ``now()``: the emulator's ``clock``.
    """

    def __init__(
        self,
        start: float = 100.0,
        *,
        jitter: float = 1.0,
        wall: datetime | None = WALL_START,
        still: bool = False,
    ) -> None:
        self.t = start
        self.start = start
        self.jitter = jitter
        self.wall = wall
        self.still = still
        self.slept: list[float] = []
        self.woke: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.woke.append(self.t + seconds)
        if not self.still:
            self.t += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds`` (back, if negative), the wall clock with it."""
        self.t += seconds

    def set_now(self, moment: datetime) -> None:
        """Put the wall clock at ``moment`` (the monotonic reading moves by as much)."""
        self.t = self.start + (moment - self._wall()).total_seconds()

    def now(self) -> datetime:
        return self._wall() + timedelta(seconds=self.t - self.start)

    def __call__(self) -> datetime:
        return self.now()

    def random(self) -> float:
        return self.jitter

    def _wall(self) -> datetime:
        return self.wall if self.wall is not None else datetime.now(UTC)


def _certificate_failure() -> httpx.ConnectError:
    """The error httpx raises when the server's certificate is not trusted: its ``ConnectError``, caused by
    httpcore's, caused by ``ssl.SSLCertVerificationError``."""
    reason = (
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate (_ssl.c:1000)"
    )
    try:
        try:
            try:
                raise ssl.SSLCertVerificationError(1, reason)
            except ssl.SSLError as exc:
                raise httpcore.ConnectError(str(exc)) from exc
        except httpcore.ConnectError as exc:
            raise httpx.ConnectError(str(exc)) from exc
    except httpx.ConnectError as raised:
        return raised


def untrusted_tls_client() -> tuple[httpx.Client, list[httpx.Request]]:
    """An HTTP client whose every request fails as against a server with an untrusted certificate (the error
    chained as httpx chains it, which respx's side effects do not keep), and the list of requests it got."""
    requests: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        raise _certificate_failure()

    return httpx.Client(transport=httpx.MockTransport(refuse)), requests


# The ExportImage error table of the API document (docs/facts.md §1): HTTP status, code, the class it must become.
EXPORT_IMAGE_ERRORS: list[tuple[int, str, type[ApiError]]] = [
    (400, "InvalidImageForExportImage.UnSupported", ImageNotExportable),
    (400, "InvalidImageStatus", ImageNotReady),
    (400, "InvalidTOSPrefix.Malformed", InvalidParameter),
    (400, "InvalidTosPutObject.AccessDenied", BucketAccessDenied),
    (400, "MissingParameter.ImageId", InvalidParameter),
    (400, "MissingParameter.TOSBucket", InvalidParameter),
    (400, "MissingParameter.TOSPrefix", InvalidParameter),
    (404, "InvalidImage.NotFound", ImageNotFound),
    (404, "InvalidTOSBucket.NotFound", BucketNotFound),
    (412, "OperationDenied.ResourceLocked", ResourceLocked),
    (500, "InternalError", ServerError),
]


@dataclass(frozen=True, slots=True)
class Call:
    """One call a :class:`ScriptedEcs` got: the action, its number among that action's calls (from 1), and
    what it asked for (as recorded in ``calls``)."""

    action: str
    n: int
    asked: Any


Hook = Callable[[Call, Callable[[], Any]], Any]
"""Scripts one action: called with the call and ``send`` (which makes the call for real and returns its
answer); whatever it returns is the answer, whatever it raises the caller gets."""


class ScriptedEcs:
    """The one scripted ECS (and TOS) of the suites: it passes every call to ``inner`` (the function's own
    ``EcsClient`` over the emulator, ``tests.support.account``) and ``store`` (its ``TosClient``), records
    each in ``calls`` as (action, what it asked for), and lets a test script, with :meth:`on`, what the
    emulator cannot do by itself: a failure at one exact point, a request that takes time, something the
    account's state cannot hold.

    What is recorded: ExportImage the image id, ImportImage the ``ImportSpec``, DeleteImages the image ids, DescribeImages the tag filters (``{}`` for none),
    DescribeTasks the image ids, TagResources (the image ids, the tags), UntagResources (the image ids, the
    keys), HeadObject the key, ListObjectsV2 the prefix, GetObject (the key, the start, the length), PutObject
    the key, DeleteObject the key, HeadBucket the bucket.
    """

    def __init__(self, inner: TrackingApi, store: ObjectStore | None = None) -> None:
        self.inner = inner
        self.store = store
        self.calls: list[tuple[str, Any]] = []
        self._hooks: dict[str, Hook] = {}
        self.cleared: list[float | None] = []  # each ExportImage's cleared_until, in order
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def on(self, action: str, hook: Hook) -> None:
        """Script ``action`` with ``hook`` from its next call on (replacing the action's earlier script)."""
        self._hooks[action] = hook

    def count(self, action: str) -> int:
        """How many calls of ``action`` were made."""
        return sum(1 for name, _ in self.calls if name == action)

    def _call(self, action: str, asked: Any, send: Callable[[], Any]) -> Any:
        with self._lock:
            self.calls.append((action, asked))
            self._counts[action] += 1
            n = self._counts[action]
        hook = self._hooks.get(action)
        return send() if hook is None else hook(Call(action, n, asked), send)

    def export_image(
        self, image_id: str, bucket: str, prefix: str, *, deadline: float, cleared_until: float | None = None
    ) -> ExportStarted:
        self.cleared.append(cleared_until)
        started: ExportStarted = self._call(
            "ExportImage",
            image_id,
            lambda: self.inner.export_image(
                image_id, bucket, prefix, deadline=deadline, cleared_until=cleared_until
            ),
        )
        return started

    def describe_images(
        self,
        *,
        deadline: float,
        image_ids: Iterable[str] = (),
        visibility: str | None = None,
        status: str | None = None,
        tag_filters: Mapping[str, str] | None = None,
    ) -> Iterator[Image]:
        ids = list(image_ids)
        cut: list[ListingTruncated] = []

        def send() -> list[Image]:
            # The pages before a cut listing's end are kept, as the real client yields them before it raises.
            images: list[Image] = []
            listing = self.inner.describe_images(
                deadline=deadline,
                image_ids=ids,
                visibility=visibility,
                status=status,
                tag_filters=tag_filters,
            )
            try:
                images.extend(listing)
            except ListingTruncated as truncated:
                cut.append(truncated)
            return images

        yield from self._call("DescribeImages", dict(tag_filters or {}), send)
        if cut:
            raise cut[0]

    def describe_tasks(
        self, *, deadline: float, task_ids: Iterable[str] = (), resource_ids: Iterable[str] = ()
    ) -> Iterator[Task]:
        tasks, ids = list(task_ids), list(resource_ids)
        yield from self._call(
            "DescribeTasks",
            ids,
            lambda: list(self.inner.describe_tasks(deadline=deadline, task_ids=tasks, resource_ids=ids)),
        )

    def tag_images(
        self, image_ids: Iterable[str], tags: Mapping[str, str], *, deadline: float
    ) -> TaggingReport:
        ids = tuple(image_ids)
        report: TaggingReport = self._call(
            "TagResources", (ids, dict(tags)), lambda: self.inner.tag_images(ids, tags, deadline=deadline)
        )
        return report

    def untag_images(
        self, image_ids: Iterable[str], keys: Iterable[str], *, deadline: float
    ) -> TaggingReport:
        ids, names = tuple(image_ids), tuple(keys)
        report: TaggingReport = self._call(
            "UntagResources", (ids, names), lambda: self.inner.untag_images(ids, names, deadline=deadline)
        )
        return report

    def import_image(self, spec: ImportSpec, *, deadline: float) -> ImportStarted:
        started: ImportStarted = self._call(
            "ImportImage", spec, lambda: self._restorer().import_image(spec, deadline=deadline)
        )
        return started

    def delete_images(self, image_ids: Iterable[str], *, deadline: float) -> dict[str, str | None]:
        ids = tuple(image_ids)
        deleted: dict[str, str | None] = self._call(
            "DeleteImages", ids, lambda: self._restorer().delete_images(ids, deadline=deadline)
        )
        return deleted

    def _restorer(self) -> RestoreApi:
        if not isinstance(self.inner, EcsClient):
            msg = "this ScriptedEcs's inner API cannot import or delete images"
            raise TypeError(msg)
        return self.inner

    def _store(self) -> ObjectStore:
        if self.store is None:
            msg = "this ScriptedEcs has no store"
            raise RuntimeError(msg)
        return self.store

    def head_object(self, bucket: str, key: str, *, deadline: float) -> HeadResult:
        store = self._store()
        result: HeadResult = self._call(
            "HeadObject", key, lambda: store.head_object(bucket, key, deadline=deadline)
        )
        return result

    def list_objects(
        self, bucket: str, prefix: str, *, deadline: float, max_keys: int = 1000, max_pages: int | None = None
    ) -> ListResult:
        store = self._store()
        result: ListResult = self._call(
            "ListObjectsV2",
            prefix,
            lambda: store.list_objects(
                bucket, prefix, deadline=deadline, max_keys=max_keys, max_pages=max_pages
            ),
        )
        return result

    def get_range(self, bucket: str, key: str, start: int, length: int, *, deadline: float) -> bytes:
        store = self._store()
        data: bytes = self._call(
            "GetObject",
            (key, start, length),
            lambda: store.get_range(bucket, key, start, length, deadline=deadline),
        )
        return data

    def put_object(
        self, bucket: str, key: str, body: bytes, *, content_type: str, deadline: float
    ) -> PutResult:
        store = self._store()
        result: PutResult = self._call(
            "PutObject",
            key,
            lambda: store.put_object(bucket, key, body, content_type=content_type, deadline=deadline),
        )
        return result

    def delete_object(self, bucket: str, key: str, *, deadline: float) -> None:
        store = self._store()
        self._call("DeleteObject", key, lambda: store.delete_object(bucket, key, deadline=deadline))

    def head_bucket(self, bucket: str, *, deadline: float) -> BucketInfo:
        store = self._store()
        info: BucketInfo = self._call(
            "HeadBucket", bucket, lambda: store.head_bucket(bucket, deadline=deadline)
        )
        return info


def failing(*errors: BaseException | None, commit: bool = False) -> Hook:
    """A script whose successive calls raise ``errors`` in order (``None``: answer as the emulator does),
    then answer as the emulator does. ``commit``: each failing call is sent first, so its effect happens
    and only the answer is lost (or taken over by the error)."""
    queued = list(errors)
    lock = threading.Lock()

    def hook(_call: Call, send: Callable[[], Any]) -> Any:
        with lock:
            error = queued.pop(0) if queued else None
        if error is None:
            return send()
        if commit:
            send()
        raise error

    return hook
