"""The suites' scripted ECS passes every TOS request to its store, records it, and lets a test script it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from handler.models.objects import BucketInfo, ObjectListing, ObjectMissing, PutResult
from tests.support.fakes import Call, ScriptedEcs

WHEN = datetime(2026, 11, 27, 8, 30, tzinfo=UTC)


class RecordingStore:
    """An ObjectStore that answers each request with a fixed record and notes what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, tuple[Any, ...]]] = []

    def head_object(self, bucket: str, key: str, *, deadline: float) -> ObjectMissing:
        self.asked.append(("head_object", (bucket, key, deadline)))
        return ObjectMissing(bucket, key, None)

    def list_objects(
        self, bucket: str, prefix: str, *, deadline: float, max_keys: int = 1000, max_pages: int | None = None
    ) -> ObjectListing:
        self.asked.append(("list_objects", (bucket, prefix, deadline, max_keys, max_pages)))
        return ObjectListing(bucket, prefix, (), WHEN, None)

    def get_range(self, bucket: str, key: str, start: int, length: int, *, deadline: float) -> bytes:
        self.asked.append(("get_range", (bucket, key, start, length, deadline)))
        return b"x" * length

    def put_object(
        self, bucket: str, key: str, body: bytes, *, content_type: str, deadline: float
    ) -> PutResult:
        self.asked.append(("put_object", (bucket, key, body, content_type, deadline)))
        return PutResult("e", "1", None)

    def delete_object(self, bucket: str, key: str, *, deadline: float) -> None:
        self.asked.append(("delete_object", (bucket, key, deadline)))

    def head_bucket(self, bucket: str, *, deadline: float) -> BucketInfo:
        self.asked.append(("head_bucket", (bucket, deadline)))
        return BucketInfo("cn-beijing", None, WHEN, None)


def test_every_tos_request_goes_to_the_store_and_is_recorded() -> None:
    """Each request reaches the store with its arguments and is recorded under its TOS action."""
    store = RecordingStore()
    api = ScriptedEcs(inner=None, store=store)  # type: ignore[arg-type]
    assert api.list_objects("b-1", "p_", deadline=9, max_keys=5, max_pages=2).prefix == "p_"
    assert api.get_range("b-1", "k", 4, 3, deadline=9) == b"xxx"
    assert api.put_object("b-1", "k", b"{}", content_type="application/json", deadline=9).etag == "e"
    assert api.delete_object("b-1", "k", deadline=9) is None
    assert api.head_bucket("b-1", deadline=9).region == "cn-beijing"
    assert api.calls == [
        ("ListObjectsV2", "p_"),
        ("GetObject", ("k", 4, 3)),
        ("PutObject", "k"),
        ("DeleteObject", "k"),
        ("HeadBucket", "b-1"),
    ]
    assert [name for name, _ in store.asked] == [
        "list_objects",
        "get_range",
        "put_object",
        "delete_object",
        "head_bucket",
    ]
    assert store.asked[3] == ("delete_object", ("b-1", "k", 9))


def test_a_scripted_tos_request_answers_without_the_store() -> None:
    """A script on an action answers it in the store's place; the call is still recorded."""
    store = RecordingStore()
    api = ScriptedEcs(inner=None, store=store)  # type: ignore[arg-type]
    api.on("GetObject", lambda _call, _send: b"scripted")
    seen: list[Call] = []

    def note(call: Call, send: Any) -> Any:
        seen.append(call)
        return send()

    api.on("HeadBucket", note)
    assert api.get_range("b-1", "k", 0, 8, deadline=9) == b"scripted"
    api.head_bucket("b-1", deadline=9)
    assert [name for name, _ in store.asked] == ["head_bucket"]
    assert seen == [Call("HeadBucket", 1, "b-1")]


def test_without_a_store_a_tos_request_says_so() -> None:
    """A scripted ECS built without a store refuses TOS requests plainly."""
    with pytest.raises(RuntimeError, match="no store"):
        ScriptedEcs(inner=None).head_bucket("b-1", deadline=9)  # type: ignore[arg-type]
