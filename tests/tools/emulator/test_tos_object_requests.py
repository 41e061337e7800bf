"""The emulator's TOS requests beyond HeadObject, over a loopback socket, signed (docs/facts.md §15):
ListObjectsV2, ranged GetObject, PutObject, DeleteObject, HeadBucket, the ``Date`` of every answer, and a
bucket the caller may read but not write."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from urllib.parse import quote

import httpx
import pytest

from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage
from exporter_tools.emulator.object_store import crc64_ecma
from exporter_tools.emulator.qcow2_image import qcow2_layout
from exporter_tools.emulator.tos import MAX_PUT_BYTES, export_object_key
from handler.core.qcow2 import MAGIC
from tests.support.fakes import FakeClock
from tests.tools.emulator.tos_requests import signed_tos_request

BUCKET = "exports-1"
TASK_SECONDS = 100.0
GIB = 1 << 30


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall=None)  # real time, moved: signatures fresh, tasks progress


@pytest.fixture
def emulator(start_emulator: Callable[..., EcsEmulator], clock: FakeClock) -> EcsEmulator:
    images = tuple(FleetImage(id=f"image-ls{n}", size_gb=10 + n) for n in range(5))
    fleet = Fleet(images=images, buckets=(FleetBucket(name=BUCKET), FleetBucket(name="other")))
    emu = start_emulator(fleet, task_seconds=TASK_SECONDS, clock=clock)
    for image in images:
        query = {"ImageId": image.id, "TOSBucket": BUCKET, "TOSPrefix": "px"}
        assert emu.ecs.export_image(query).status == 200
    clock.advance(TASK_SECONDS + 1)
    return emu


def tos(emulator: EcsEmulator, method: str, key: str | None, **options: object) -> httpx.Response:
    return signed_tos_request(emulator, BUCKET, key, method=method, **options)  # type: ignore[arg-type]


def list_page(emulator: EcsEmulator, **params: str) -> httpx.Response:
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in sorted({"list-type": "2", **params}.items()))
    return tos(emulator, "GET", "", query=query)


def test_list_objects_v2_pages_through_a_prefix_with_an_opaque_token(emulator: EcsEmulator) -> None:
    """Keys in order, two a page, each with its size, CRC-64, ETag, storage class and owner; the token leads
    to the next page and the last page is not truncated."""
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        params = {"prefix": "px_image-ls", "max-keys": "2"}
        if token:
            params["continuation-token"] = token
        response = list_page(emulator, **params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert (page["Name"], page["Prefix"], page["MaxKeys"]) == (BUCKET, "px_image-ls", 2)
        assert page["KeyCount"] == len(page["Contents"])
        seen += [item["Key"] for item in page["Contents"]]
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            break
        token = page["NextContinuationToken"]
        assert "px_" not in token  # opaque
    assert pages == 3
    assert seen == sorted(export_object_key("px", f"image-ls{n}") for n in range(5))
    (item,) = list_page(emulator, prefix=export_object_key("px", "image-ls0")).json()["Contents"]
    layout = qcow2_layout(10 * GIB)
    assert (item["Size"], item["HashCrc64ecma"], item["StorageClass"]) == (
        layout.length,
        str(layout.crc64),
        "STANDARD",
    )
    assert item["ETag"] == f'"{layout.md5_hex}"'
    assert item["LastModified"].endswith("Z")
    assert set(item["Owner"]) == {"ID", "DisplayName"}


def test_list_objects_v2_caps_max_keys_and_refuses_a_foreign_token(emulator: EcsEmulator) -> None:
    """max-keys above 1000 is 1000; a token the emulator never gave is 400; a delimiter is not answered."""
    assert list_page(emulator, **{"max-keys": "5000"}).json()["MaxKeys"] == 1000
    assert list_page(emulator).json()["MaxKeys"] == 1000
    refused = list_page(emulator, **{"continuation-token": "!!!"})
    assert (refused.status_code, refused.json()["Code"]) == (400, "InvalidArgument")
    assert list_page(emulator, delimiter="/").status_code == 501


@pytest.mark.parametrize(
    ("asked", "first", "last"),
    [("bytes=0-103", 0, 103), ("bytes=65530-65545", 65530, 65545), ("bytes=-10", None, None)],
)
def test_a_ranged_get_answers_206_with_the_part_and_its_content_range(
    emulator: EcsEmulator, asked: str, first: int | None, last: int | None
) -> None:
    """``Range: bytes=A-B`` gives those bytes of the qcow2 file, 206, ``Content-Range: bytes A-B/TOTAL``."""
    layout = qcow2_layout(10 * GIB)
    total = layout.length
    if first is None or last is None:
        first, last = total - 10, total - 1
    got = tos(emulator, "GET", export_object_key("px", "image-ls0"), unsigned={"Range": asked})
    assert got.status_code == 206
    assert got.headers["content-range"] == f"bytes {first}-{last}/{total}"
    assert got.content == layout.read(first, last - first + 1)
    assert int(got.headers["content-length"]) == last - first + 1
    assert got.headers["etag"] == f'"{layout.md5_hex}"'
    assert got.headers["x-tos-hash-crc64ecma"] == str(layout.crc64)
    if first == 0:
        assert got.content.startswith(MAGIC)


def test_a_range_past_the_end_is_416_and_no_range_is_the_whole_object(emulator: EcsEmulator) -> None:
    """A range starting past the end: 416 InvalidRange (JSON); no Range: 200 and every byte."""
    layout = qcow2_layout(10 * GIB)
    key = export_object_key("px", "image-ls0")
    past = tos(emulator, "GET", key, unsigned={"Range": f"bytes={layout.length}-"})
    assert (past.status_code, past.json()["Code"]) == (416, "InvalidRange")
    assert past.headers["content-range"] == f"bytes */{layout.length}"
    whole = tos(emulator, "GET", key)
    assert whole.status_code == 200
    assert whole.content == layout.read(0, layout.length)


def test_put_then_get_head_list_and_delete(emulator: EcsEmulator) -> None:
    """A put object is read back whole and listed, its ETag the body's MD5; a delete is 204 and it is gone;
    a second delete is 204 too."""
    body = b'{"manifest": 1}\n'
    put = tos(emulator, "PUT", "manifests/run-1.json", body=body)
    assert put.status_code == 200, put.text
    assert put.headers["etag"] == f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
    assert put.headers["x-tos-hash-crc64ecma"] == str(crc64_ecma(body))
    assert tos(emulator, "GET", "manifests/run-1.json").content == body
    assert tos(emulator, "HEAD", "manifests/run-1.json").headers["content-length"] == str(len(body))
    listed = list_page(emulator, prefix="manifests/").json()["Contents"]
    assert [(item["Key"], item["Size"]) for item in listed] == [("manifests/run-1.json", len(body))]
    assert tos(emulator, "DELETE", "manifests/run-1.json").status_code == 204
    assert tos(emulator, "HEAD", "manifests/run-1.json").status_code == 404
    assert tos(emulator, "DELETE", "manifests/run-1.json").status_code == 204


def test_a_body_over_the_cap_is_refused(emulator: EcsEmulator) -> None:
    """A body over MAX_PUT_BYTES is 400 EntityTooLarge, and nothing is stored."""
    refused = tos(emulator, "PUT", "big.bin", body=b"\0" * (MAX_PUT_BYTES + 1))
    assert (refused.status_code, refused.json()["Code"]) == (400, "EntityTooLarge")
    assert tos(emulator, "HEAD", "big.bin").status_code == 404


def test_head_bucket_says_its_region_and_404_for_no_bucket(emulator: EcsEmulator) -> None:
    """HeadBucket: 200 with the region, storage class and redundancy; no such bucket: 404 with no body."""
    found = tos(emulator, "HEAD", None)
    assert found.status_code == 200
    assert found.headers["x-tos-bucket-region"] == emulator.region
    assert found.headers["x-tos-storage-class"] == "STANDARD"
    assert found.headers["x-tos-az-redundancy"]
    missing = signed_tos_request(emulator, "nobucket", None)
    assert (missing.status_code, missing.content, missing.headers["content-length"]) == (404, b"", "0")


def test_head_bucket_answers_the_region_the_fleet_gives_a_bucket(
    start_emulator: Callable[..., EcsEmulator],
) -> None:
    """A fleet bucket with a ``region`` of its own is reported there by HeadBucket (the doctor's bucket check
    reads it); the others are in the emulator's region."""
    fleet = Fleet(buckets=(FleetBucket(name="far-away", region="cn-shanghai"), FleetBucket(name="near")))
    emulator = start_emulator(fleet)
    far = signed_tos_request(emulator, "far-away", None)
    near = signed_tos_request(emulator, "near", None)
    assert far.headers["x-tos-bucket-region"] == "cn-shanghai"
    assert near.headers["x-tos-bucket-region"] == emulator.region


def test_every_answer_carries_the_emulators_date_and_a_request_id(
    emulator: EcsEmulator, clock: FakeClock
) -> None:
    """``Date`` is the emulator's clock (one header), whatever the status; so is ``x-tos-request-id``."""
    for response in (
        tos(emulator, "HEAD", export_object_key("px", "image-ls1")),
        tos(emulator, "GET", "nope"),
    ):
        assert response.headers.get_list("date") == [response.headers["date"]]
        assert abs((parsedate_to_datetime(response.headers["date"]) - clock()).total_seconds()) < 2
        assert response.headers["x-tos-request-id"]


def test_a_read_only_bucket_refuses_writes_and_serves_reads(emulator: EcsEmulator) -> None:
    """``set_bucket_access(bucket, "read-only")``: PutObject and DeleteObject 403 AccessDenied, reads 200;
    ``none``: reads 403 too; ``read-write`` again: the put lands."""
    key = export_object_key("px", "image-ls2")
    emulator.set_bucket_access(BUCKET, "read-only")
    refused = tos(emulator, "PUT", "m.json", body=b"{}")
    assert (refused.status_code, refused.json()["Code"]) == (403, "AccessDenied")
    assert tos(emulator, "DELETE", key).status_code == 403
    assert tos(emulator, "HEAD", key).status_code == 200
    emulator.set_bucket_access(BUCKET, "none")
    assert tos(emulator, "HEAD", key).status_code == 403
    emulator.set_bucket_access(BUCKET, "read-write")
    assert tos(emulator, "PUT", "m.json", body=b"{}").status_code == 200
    with pytest.raises(ValueError, match="access must be"):
        emulator.set_bucket_access(BUCKET, "write-only")  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        emulator.set_bucket_access("nobucket", "none")


def test_a_put_object_vanishes_on_reset(emulator: EcsEmulator) -> None:
    """``reset`` forgets what was put and deleted; the export tasks' objects come back."""
    key = export_object_key("px", "image-ls3")
    assert tos(emulator, "PUT", "m.json", body=b"{}").status_code == 200
    assert tos(emulator, "DELETE", key).status_code == 204
    emulator.tos.reset()
    assert tos(emulator, "HEAD", "m.json").status_code == 404
    assert tos(emulator, "HEAD", key).status_code == 200


def test_every_request_is_counted_by_kind_and_each_objects_bytes_read(emulator: EcsEmulator) -> None:
    """A listing, two ranged GETs (one refused 416), a whole GET, a PUT, a HEAD and a DELETE each count under
    their kind; the bytes each object's GETs sent add up by object; ``reset`` forgets them."""
    key = export_object_key("px", "image-ls0")
    total = qcow2_layout(10 * GIB).length
    list_page(emulator, prefix="px_")
    tos(emulator, "GET", key, unsigned={"Range": "bytes=0-4095"})
    tos(emulator, "GET", key, unsigned={"Range": f"bytes={total}-"})
    tos(emulator, "PUT", "m.json", body=b"{}")
    tos(emulator, "GET", "m.json")
    tos(emulator, "HEAD", key)
    tos(emulator, "DELETE", "m.json")
    stats = emulator.stats()["tos"]
    assert stats["kinds"] == {"list": 1, "ranged GET": 2, "GET": 1, "PUT": 1, "HEAD": 1, "other": 1}
    assert stats["bytes_read"] == 4096 + 2
    assert emulator.tos.records.bytes_read_by_object() == {(BUCKET, key): 4096, (BUCKET, "m.json"): 2}
    emulator.tos.reset()
    assert emulator.stats()["tos"]["kinds"] == dict.fromkeys(stats["kinds"], 0)
    assert emulator.tos.records.bytes_read_by_object() == {}
