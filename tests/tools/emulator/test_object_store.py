"""The TOS buckets' object index: writes due later, the latest write winning, deletions, prefix pages, and a
lookup that costs the same at 20,000 exported images as at one."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from exporter_tools.emulator.api import ApiCall
from exporter_tools.emulator.ecs import EcsService
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage
from exporter_tools.emulator.object_store import BytesContent, ObjectStore, StoredObject
from exporter_tools.emulator.tos import export_object_key
from tests.support.fakes import FakeClock

START = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
CONTENTS = {size: BytesContent(b"x" * size) for size in (1, 2, 3)}


def obj(key: str, seconds: float, size: int = 1, bucket: str = "b") -> StoredObject:
    return StoredObject(bucket, key, CONTENTS[size], START + timedelta(seconds=seconds))


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def test_an_object_due_later_is_absent_until_its_moment() -> None:
    """A write stamped in the future (an export task still running) is not there before its moment."""
    store = ObjectStore()
    store.write(obj("k", 10))
    assert store.get("b", "k", at(9)) is None
    assert store.get("b", "k", at(10)) == obj("k", 10)


def test_the_latest_write_wins_whatever_order_they_were_recorded_in() -> None:
    """Of two writes of a key, the later moment wins; at the same moment, the one recorded later."""
    store = ObjectStore()
    store.write(obj("k", 20, size=2))
    store.write(obj("k", 10, size=1))
    assert store.get("b", "k", at(15)) == obj("k", 10, size=1)
    assert store.get("b", "k", at(25)) == obj("k", 20, size=2)
    store.write(obj("k", 20, size=3))
    assert store.get("b", "k", at(25)) == obj("k", 20, size=3)


def test_a_deletion_hides_the_object_until_a_later_write() -> None:
    """A deleted key is absent from its deletion on, and present again from the next write."""
    store = ObjectStore()
    store.write(obj("k", 0), exported=True)
    store.write(obj("k", 50), exported=True)
    store.delete("b", "k", at(10))
    assert store.get("b", "k", at(20)) is None
    assert store.get("b", "k", at(50)) == obj("k", 50)
    assert store.deletions() == 1
    store.forget_changes()
    assert store.get("b", "k", at(20)) == obj("k", 0)


def test_a_listing_walks_one_prefix_a_page_at_a_time() -> None:
    """Keys under the prefix, in order, after the last one shown, skipping absent ones, a page at a time."""
    store = ObjectStore()
    for name in ("a1", "p1", "p2", "p3", "p4", "q1"):
        store.write(obj(name, 0))
    store.delete("b", "p2", at(1))
    first, more = store.listing("b", prefix="p", after="", limit=2, now=at(5))
    assert ([o.key for o in first], more) == (["p1", "p3"], True)
    rest, more = store.listing("b", prefix="p", after="p3", limit=2, now=at(5))
    assert ([o.key for o in rest], more) == (["p4"], False)
    assert store.listing("none", prefix="", after="", limit=5, now=at(5)) == ([], False)


def test_a_head_object_stays_fast_with_20000_exported_images() -> None:
    """With 20,000 images exported, a thousand lookups take well under a second (no scan of every task)."""
    count = 20_000
    images = tuple(FleetImage(id=f"image-n{n:05d}") for n in range(count))
    clock = FakeClock(wall=START)
    ecs = EcsService(Fleet(images=images, buckets=(FleetBucket(name="bkt"),)), task_seconds=10, clock=clock)
    for image in images:
        query = {"ImageId": image.id, "TOSBucket": "bkt", "TOSPrefix": "p"}
        assert ecs.handle(ApiCall("GET", "ExportImage", "2020-04-01", query)).status == 200
    clock.set_now(START + timedelta(seconds=11))
    tos = ecs.object_storage(lambda _: None, region="cn-beijing", clock=clock)
    started = time.perf_counter()
    for n in range(0, count, count // 1000):
        assert tos.head("bkt", export_object_key("p", f"image-n{n:05d}")) is not None
    assert time.perf_counter() - started < 1.0
    page, more = ecs.objects.listing("bkt", prefix="p_image-n1", after="", limit=1000, now=clock())
    assert (len(page), more) == (1000, True)
