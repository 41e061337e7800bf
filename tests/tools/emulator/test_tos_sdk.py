"""The emulator's TOS answers, parsed by the official ``tos`` SDK (2.9.3, a dev-only dependency): HeadObject
(200, 404 and a 403), ListObjectsV2 (one page, and every page), ranged GetObject, PutObject, DeleteObject,
HeadBucket and the bucket lifecycle (get, put, delete). What the SDK reads is what the real TOS sends, so an
answer it cannot parse is a wrong answer.

How the SDK reaches the emulator: it only speaks virtual-hosted addressing (``https://<bucket>.<endpoint>/<key>``)
and resolves the bucket's host name itself, so the client is built for the real endpoint
(``tos-cn-beijing.volces.com``) and its ``requests`` session gets a transport adapter that sends each
request, unchanged, to the emulator's loopback port over plain HTTP. The ``Host`` header (signed) stays the
virtual host, and the emulator takes the bucket from it. So the SDK signs its own requests, the emulator
checks them, and the SDK parses the real bytes that come back: nothing is rebuilt on either side. The
alternative, building the SDK's output classes over answers fetched by our own client, would have skipped
the SDK's signing, its retries and its CRC-64 check on upload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from requests.adapters import HTTPAdapter

from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage
from exporter_tools.emulator.qcow2_image import qcow2_layout
from exporter_tools.emulator.tos import export_object_key
from tests.support.emulated import CREDENTIALS
from tests.support.fakes import FakeClock

# The SDK signs with datetime.utcnow(), deprecated since Python 3.12: its warning, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utcnow:DeprecationWarning")

tos = pytest.importorskip("tos")

BUCKET = "sdk-exports"
REGION = "cn-beijing"
ENDPOINT = f"tos-{REGION}.volces.com"
TASK_SECONDS = 100.0
GIB = 1 << 30


class LoopbackAdapter(HTTPAdapter):
    """Sends every request the session makes to ``127.0.0.1:port`` over HTTP, headers (``Host``) unchanged."""

    def __init__(self, port: int) -> None:
        super().__init__(max_retries=0)
        self._port = port

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        request.headers.setdefault("Host", parts.netloc)
        request.url = f"http://127.0.0.1:{self._port}{parts.path}" + (
            f"?{parts.query}" if parts.query else ""
        )
        kwargs["verify"] = False
        return super().send(request, *args, **kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall=None)  # real time, moved: signatures fresh, tasks progress


@pytest.fixture
def emulator(start_emulator: Callable[..., EcsEmulator], clock: FakeClock) -> EcsEmulator:
    images = tuple(FleetImage(id=f"image-sdk{n}", size_gb=20 + n) for n in range(3))
    buckets = (FleetBucket(name=BUCKET), FleetBucket(name="sdk-private", read_allowed=False))
    emu = start_emulator(Fleet(images=images, buckets=buckets), task_seconds=TASK_SECONDS, clock=clock)
    for image in images:
        assert (
            emu.ecs.export_image({"ImageId": image.id, "TOSBucket": BUCKET, "TOSPrefix": "sdk"}).status == 200
        )
    clock.advance(TASK_SECONDS + 1)
    return emu


@pytest.fixture
def client(emulator: EcsEmulator) -> Iterator[Any]:
    sdk = tos.TosClientV2(
        CREDENTIALS.access_key,
        CREDENTIALS.secret_key,
        ENDPOINT,
        REGION,
        max_retry_count=0,
        enable_crc=True,
        dns_cache_time=0,  # its refresh thread uses a deprecated call (a warning, an error here)
    )
    adapter = LoopbackAdapter(emulator.port)
    sdk.session.mount("https://", adapter)
    sdk.session.mount("http://", adapter)
    yield sdk
    sdk.close()


def key_of(n: int) -> str:
    return export_object_key("sdk", f"image-sdk{n}")


def test_head_object_reads_the_qcow2_files_size_crc_and_etag(client: Any) -> None:
    """HeadObject 200: the SDK's size, CRC-64 (int), ETag (unquoted), storage class and Last-Modified."""
    layout = qcow2_layout(20 * GIB)
    out = client.head_object(BUCKET, key_of(0))
    assert out.status_code == 200
    assert out.content_length == layout.length
    assert out.hash_crc64_ecma == layout.crc64
    assert out.etag == layout.md5_hex
    assert out.storage_class == tos.StorageClassType.Storage_Class_Standard
    assert out.last_modified is not None
    assert out.request_id


def test_head_object_404_and_403_are_server_errors_the_sdk_reads(client: Any) -> None:
    """No such key: TosServerError 404 with the request id; a bucket the role may not read: 403. Neither
    answer to a HEAD has a body or declares one, so the SDK raises no client error."""
    with pytest.raises(tos.exceptions.TosServerError) as missing:
        client.head_object(BUCKET, "sdk_nothing_system.qcow2")
    assert missing.value.status_code == 404
    assert missing.value.request_id
    with pytest.raises(tos.exceptions.TosServerError) as denied:
        client.head_object("sdk-private", key_of(0))
    assert denied.value.status_code == 403


def test_an_error_body_reads_as_the_sdks_error(client: Any) -> None:
    """A GET on a missing key: the SDK reads Code, Message, HostId, Resource and EC from the JSON body."""
    with pytest.raises(tos.exceptions.TosServerError) as missing:
        client.get_object(BUCKET, "sdk_nothing_system.qcow2")
    error = missing.value
    assert (error.status_code, error.code) == (404, "NoSuchKey")
    assert error.message
    assert error.host_id == "tos-emulator"
    assert error.resource
    assert error.ec


def test_list_objects_v2_one_page_and_every_page(client: Any) -> None:
    """One page of two, truncated with a token; the token's page holds the third; one listing holds all
    three in order (the SDK's ``max_keys`` is the total it wants, not a page size), each with its size, CRC-64, ETag, storage class, owner and a LastModified it parses."""
    page = client.list_objects_type2(BUCKET, prefix="sdk_", max_keys=2, list_only_once=True)
    assert [o.key for o in page.contents] == [key_of(0), key_of(1)]
    assert page.is_truncated is True
    assert page.next_continuation_token
    assert page.key_count == 2
    rest = client.list_objects_type2(
        BUCKET,
        prefix="sdk_",
        max_keys=2,
        continuation_token=page.next_continuation_token,
        list_only_once=True,
    )
    assert [o.key for o in rest.contents] == [key_of(2)]
    assert rest.is_truncated is False
    every = client.list_objects_type2(BUCKET, prefix="sdk_")
    assert [o.key for o in every.contents] == [key_of(n) for n in range(3)]
    first = every.contents[0]
    layout = qcow2_layout(20 * GIB)
    assert (first.size, first.hash_crc64_ecma, first.etag) == (layout.length, layout.crc64, layout.md5_hex)
    assert first.storage_class == tos.StorageClassType.Storage_Class_Standard
    assert first.owner.id
    assert first.last_modified.tzinfo is not None


def test_a_ranged_get_object_reads_the_part(client: Any) -> None:
    """``range_start``/``range_end``: 206, the SDK's content_range and exactly those bytes."""
    layout = qcow2_layout(21 * GIB)
    out = client.get_object(BUCKET, key_of(1), range_start=0, range_end=4095)
    assert out.status_code == 206
    assert out.content_range == f"bytes 0-4095/{layout.length}"
    assert out.read() == layout.read(0, 4096)


def test_put_then_delete_object(client: Any) -> None:
    """PutObject: the SDK checks our CRC-64 against its own (enable_crc) and reads the ETag; the object
    reads back; DeleteObject 204, twice."""
    body = b'{"run": 1, "objects": 3}\n'
    put = client.put_object(BUCKET, "manifests/run-1.json", content=body)
    assert put.status_code == 200
    assert put.hash_crc64_ecma is not None
    assert client.get_object(BUCKET, "manifests/run-1.json").read() == body
    assert client.delete_object(BUCKET, "manifests/run-1.json").status_code == 204
    assert client.delete_object(BUCKET, "manifests/run-1.json").status_code == 204
    with pytest.raises(tos.exceptions.TosServerError):
        client.head_object(BUCKET, "manifests/run-1.json")


def test_a_read_only_bucket_refuses_the_sdks_put(client: Any, emulator: EcsEmulator) -> None:
    """``set_bucket_access(bucket, "read-only")``: PutObject is a 403 AccessDenied server error."""
    emulator.set_bucket_access(BUCKET, "read-only")
    with pytest.raises(tos.exceptions.TosServerError) as denied:
        client.put_object(BUCKET, "manifests/run-2.json", content=b"{}")
    assert (denied.value.status_code, denied.value.code) == (403, "AccessDenied")


def test_head_bucket_reads_region_storage_class_and_redundancy(client: Any) -> None:
    """HeadBucket: the emulator's region, STANDARD and an AZ redundancy the SDK knows; no bucket: 404."""
    out = client.head_bucket(BUCKET)
    assert out.region == REGION
    assert out.storage_class == tos.StorageClassType.Storage_Class_Standard
    assert out.az_redundancy == tos.AzRedundancyType.Az_Redundancy_Single_Az
    with pytest.raises(tos.exceptions.TosServerError) as missing:
        client.head_bucket("sdk-nobucket")
    assert missing.value.status_code == 404


def test_lifecycle_rules_the_sdk_puts_read_back_in_its_models(client: Any, emulator: EcsEmulator) -> None:
    """PutBucketLifecycle through the SDK (its Content-MD5 checked), then GetBucketLifecycle: each rule's id,
    prefix, status, transitions, expiration, abort days and tags as the SDK's models hold them; the stored
    rules use the SDK's own field names (``AbortIncompleteMultipartUpload``)."""
    models = tos.models2
    ours = models.BucketLifeCycleRule(
        id="image-exporter-sdk",
        prefix="sdk_",
        status=tos.StatusType.Status_Enable,
        transitions=[
            models.BucketLifeCycleTransition(tos.StorageClassType.Storage_Class_Ia, days=30),
            models.BucketLifeCycleTransition(tos.StorageClassType.Storage_Class_Archive, days=120),
        ],
        abort_in_complete_multipart_upload=models.BucketLifeCycleAbortInCompleteMultipartUpload(7),
    )
    logs = models.BucketLifeCycleRule(
        id="logs-expire",
        prefix="logs/",
        status=tos.StatusType.Status_Disable,
        expiration=models.BucketLifeCycleExpiration(days=14),
        tags=[models.Tag("kind", "log")],
    )
    assert client.put_bucket_lifecycle(BUCKET, [ours, logs]).status_code == 200
    stored = emulator.tos.lifecycle(BUCKET)
    assert stored is not None
    assert stored[0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    out = client.get_bucket_lifecycle(BUCKET)
    first, second = out.rules
    assert (first.id, first.prefix, first.status) == (
        "image-exporter-sdk",
        "sdk_",
        tos.StatusType.Status_Enable,
    )
    assert [(t.storage_class, t.days) for t in first.transitions] == [
        (tos.StorageClassType.Storage_Class_Ia, 30),
        (tos.StorageClassType.Storage_Class_Archive, 120),
    ]
    assert first.abort_in_complete_multipart_upload.days_after_init == 7
    assert (second.id, second.status, second.expiration.days) == (
        "logs-expire",
        tos.StatusType.Status_Disable,
        14,
    )
    assert [(tag.key, tag.value) for tag in second.tags] == [("kind", "log")]


def test_no_lifecycle_is_a_404_the_sdk_reads_and_a_delete_is_204(client: Any) -> None:
    """A bucket without rules: GetBucketLifecycle is the SDK's TosServerError 404 NoSuchLifecycleConfiguration;
    DeleteBucketLifecycle is 204, with rules and without."""
    with pytest.raises(tos.exceptions.TosServerError) as missing:
        client.get_bucket_lifecycle(BUCKET)
    assert (missing.value.status_code, missing.value.code) == (404, "NoSuchLifecycleConfiguration")
    rule = tos.models2.BucketLifeCycleRule(
        id="r1",
        prefix="sdk_",
        status=tos.StatusType.Status_Enable,
        expiration=tos.models2.BucketLifeCycleExpiration(3),
    )
    client.put_bucket_lifecycle(BUCKET, [rule])
    assert client.delete_bucket_lifecycle(BUCKET).status_code == 204
    assert client.delete_bucket_lifecycle(BUCKET).status_code == 204
    with pytest.raises(tos.exceptions.TosServerError):
        client.get_bucket_lifecycle(BUCKET)
