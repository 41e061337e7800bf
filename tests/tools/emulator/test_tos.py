"""The emulator's TOS side: the TOS4-HMAC-SHA256 check against the official vectors, and HeadObject on the
objects export tasks write, over a real loopback socket on the gateway's port."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage
from exporter_tools.emulator.qcow2_image import qcow2_layout
from exporter_tools.emulator.tos import crc64_ecma, export_object_key
from exporter_tools.emulator.tos_auth import tos_canonical_request, tos_signature, verify_tos_signature
from handler.adapters.signing import Credentials
from tests.support.emulated import CREDENTIALS
from tests.support.fakes import FakeClock
from tests.tools.emulator.tos_requests import signed_tos_request

VECTORS = json.loads((Path(__file__).parents[2] / "vectors" / "tos_sign.json").read_text(encoding="utf-8"))
CASES = sorted(VECTORS["cases"])
BUCKET = "exports-1"
TASK_SECONDS = 100.0


def vector_request(name: str) -> tuple[dict[str, Any], str, str]:
    """A vector case, with its path and query as they go on the wire."""
    case = VECTORS["cases"][name]
    url = urlsplit(case["url"])
    return case, url.path, url.query


def vector_credentials(access_key: str) -> Credentials | None:
    creds = VECTORS["credentials"]
    if access_key != creds["ak"]:
        return None
    return Credentials(creds["ak"], creds["sk"], creds["session_token"])


def vector_long_term(access_key: str) -> Credentials | None:
    creds = VECTORS["credentials"]
    return Credentials(creds["ak"], creds["sk"]) if access_key == creds["ak"] else None


def at_vector_date() -> datetime:
    return datetime.strptime(VECTORS["credentials"]["date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


@pytest.mark.parametrize("name", CASES)
def test_vector_canonical_request_and_signature(name: str) -> None:
    """The emulator's canonical request and signature are the official TOS SDK's, byte for byte."""
    case, path, query = vector_request(name)
    headers = {k.lower(): v for k, v in case["headers"].items()}
    names = case["headers"]["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    canonical = tos_canonical_request(
        method=case["method"],
        path=path,
        raw_query=query,
        signed_headers=[(n, headers[n]) for n in names],
        payload=headers["x-tos-content-sha256"],
    )
    assert canonical == case["canonical_request"]
    signature = tos_signature(
        canonical,
        x_tos_date=headers["x-tos-date"],
        secret_key=VECTORS["credentials"]["sk"],
        region="cn-beijing",
    )
    assert case["headers"]["Authorization"].endswith(f"Signature={signature}")


@pytest.mark.parametrize("name", CASES)
def test_the_verifier_accepts_each_vector_at_its_date(name: str) -> None:
    """Each vector request is accepted at the vector's date (with the STS token where the request carries one)."""
    case, path, query = vector_request(name)
    with_token = "x-tos-security-token" in {k.lower() for k in case["headers"]}
    problem = verify_tos_signature(
        method=case["method"],
        path=path,
        raw_query=query,
        headers=case["headers"],
        credentials_for=vector_credentials if with_token else vector_long_term,
        region="cn-beijing",
        now=at_vector_date() + timedelta(minutes=14),
    )
    assert problem is None


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ("path", "SignatureDoesNotMatch"),
        ("date", "SignatureDoesNotMatch"),
        ("signature", "SignatureDoesNotMatch"),
        ("late", "RequestTimeTooSkewed"),
        ("unknown_key", "InvalidAccessKeyId"),
        ("no_auth", "AccessDenied"),
        ("region", "SignatureDoesNotMatch"),
    ],
)
def test_the_verifier_refuses_a_tampered_vector(change: str, code: str) -> None:
    """A vector request changed in any signed part, read too late, or unsigned, is refused with a 403 code."""
    case, path, query = vector_request("head_object")
    headers = dict(case["headers"])
    now = at_vector_date()
    region = "cn-beijing"
    if change == "path":
        path = path.replace("image-", "image-x")
    elif change == "date":
        headers["x-tos-date"] = "20261127T083001Z"
    elif change == "signature":
        headers["Authorization"] = headers["Authorization"][:-1] + (
            "0" if headers["Authorization"][-1] != "0" else "1"
        )
    elif change == "late":
        now += timedelta(minutes=16)
    elif change == "unknown_key":
        headers["Authorization"] = headers["Authorization"].replace("AKLTtosvectors", "AKLTsomeoneelse")
    elif change == "no_auth":
        del headers["Authorization"]
    elif change == "region":
        region = "cn-shanghai"
    problem = verify_tos_signature(
        method="HEAD",
        path=path,
        raw_query=query,
        headers=headers,
        credentials_for=vector_long_term,
        region=region,
        now=now,
    )
    assert problem is not None
    assert problem[:2] == (403, code)
    assert VECTORS["credentials"]["sk"] not in problem[2]


def test_temporary_keys_need_their_token() -> None:
    """The STS vector is refused when the token sent is not the one issued with the keys."""
    case, path, query = vector_request("head_object+token")

    def other_token(access_key: str) -> Credentials | None:
        found = vector_credentials(access_key)
        return Credentials(found.access_key, found.secret_key, "another-token") if found else None

    problem = verify_tos_signature(
        method="HEAD",
        path=path,
        raw_query=query,
        headers=case["headers"],
        credentials_for=other_token,
        region="cn-beijing",
        now=at_vector_date(),
    )
    assert problem is not None
    assert problem[1] == "InvalidSecurityToken"


def test_crc64_ecma_check_value() -> None:
    """The CRC-64 is CRC-64/ECMA as TOS computes it: the standard check value for "123456789"."""
    assert crc64_ecma(b"123456789") == 0x995DC9BBDF1939FA


# -- over a socket ------------------------------------------------------------------------------------------


def head(emulator: EcsEmulator, bucket: str, key: str, **options: Any) -> httpx.Response:
    return signed_tos_request(emulator, bucket, key, **options)


def export(
    emulator: EcsEmulator, image_id: str, call: Callable[..., httpx.Response], prefix: str = "px"
) -> str:
    response = call(emulator, "ExportImage", {"ImageId": image_id, "TOSBucket": BUCKET, "TOSPrefix": prefix})
    assert response.status_code == 200, response.text
    return str(response.json()["Result"]["TaskId"])


def four_images(**bucket: Any) -> Fleet:
    images = (
        FleetImage(id="image-ok1", size_gb=40),
        FleetImage(id="image-ok2", size_gb=20),
        FleetImage(id="image-bad", export_outcome="failed"),
        FleetImage(id="image-gone", export_outcome="no_object"),
    )
    return Fleet(images=images, buckets=(FleetBucket(name=BUCKET, **bucket), FleetBucket(name="other")))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall=None)  # real time, moved: signatures fresh, tasks progress


@pytest.fixture
def tos_emulator(start_emulator: Callable[..., EcsEmulator], clock: FakeClock) -> EcsEmulator:
    return start_emulator(four_images(), task_seconds=TASK_SECONDS, clock=clock)


def test_objects_appear_when_export_tasks_succeed(
    tos_emulator: EcsEmulator, clock: FakeClock, call: Callable[..., httpx.Response]
) -> None:
    """Two succeed with objects of their image's size, one fails, one succeeds without an object."""
    for image in ("image-ok1", "image-ok2", "image-bad", "image-gone"):
        export(tos_emulator, image, call)
    assert head(tos_emulator, BUCKET, export_object_key("px", "image-ok1")).status_code == 404
    clock.advance(TASK_SECONDS + 1)
    ok1 = head(tos_emulator, BUCKET, export_object_key("px", "image-ok1"))
    ok2 = head(tos_emulator, BUCKET, export_object_key("px", "image-ok2"))
    assert ok1.status_code == 200
    assert int(ok1.headers["content-length"]) == qcow2_layout(40 * 2**30).length
    assert int(ok2.headers["content-length"]) == qcow2_layout(20 * 2**30).length
    assert ok1.headers["x-tos-hash-crc64ecma"] == str(qcow2_layout(40 * 2**30).crc64)
    assert ok1.headers["etag"].startswith('"')
    assert ok1.headers["etag"] != ok2.headers["etag"]
    assert ok1.headers["x-tos-request-id"]
    modified = parsedate_to_datetime(ok1.headers["last-modified"])
    assert abs((modified - clock()).total_seconds()) < 30
    for image in ("image-bad", "image-gone"):
        missing = head(tos_emulator, BUCKET, export_object_key("px", image))
        assert missing.status_code == 404
        assert missing.content == b""
    tasks = call(tos_emulator, "DescribeTasks", {"ResourceIds.1": "image-bad", "ResourceIds.2": "image-gone"})
    statuses = {t["ResourceId"]: t["Status"] for t in tasks.json()["Result"]["Tasks"]}
    assert statuses == {"image-bad": "Failed", "image-gone": "Succeeded"}


def test_an_object_vanishes_on_request_and_returns_with_a_new_export(
    tos_emulator: EcsEmulator, clock: FakeClock, call: Callable[..., httpx.Response]
) -> None:
    """remove_object (or DELETE /__admin/tos/<bucket>/<key>) makes HeadObject answer 404; a new export writes it again."""
    key = export_object_key("px", "image-ok1")
    export(tos_emulator, "image-ok1", call)
    export(tos_emulator, "image-ok2", call)
    clock.advance(TASK_SECONDS + 1)
    assert tos_emulator.tos.remove_object(BUCKET, key) is True
    assert head(tos_emulator, BUCKET, key).status_code == 404
    other = export_object_key("px", "image-ok2")
    with httpx.Client(timeout=5) as client:
        removed = client.delete(f"{tos_emulator.endpoint}/__admin/tos/{BUCKET}/{other}")
        listed = client.get(f"{tos_emulator.endpoint}/__admin/tos").json()
    assert removed.json() == {"removed": True}
    assert head(tos_emulator, BUCKET, other).status_code == 404
    assert listed == {"objects": []}
    clock.advance(1)
    export(tos_emulator, "image-ok1", call)
    clock.advance(TASK_SECONDS + 1)
    assert head(tos_emulator, BUCKET, key).status_code == 200


def test_a_bucket_the_role_cannot_read_answers_403_with_the_json_error(
    start_emulator: Callable[..., EcsEmulator], clock: FakeClock, call: Callable[..., httpx.Response]
) -> None:
    """read_allowed false: HEAD answers 403 (no body, as HTTP wants) and GET the JSON error body of TOS."""
    emulator = start_emulator(four_images(read_allowed=False), task_seconds=TASK_SECONDS, clock=clock)
    export(emulator, "image-ok1", call)
    clock.advance(TASK_SECONDS + 1)
    key = export_object_key("px", "image-ok1")
    heard = head(emulator, BUCKET, key)
    got = head(emulator, BUCKET, key, method="GET")
    assert heard.status_code == 403
    assert heard.content == b""
    assert heard.headers["x-tos-ec"]
    assert got.status_code == 403
    body = got.json()
    assert set(body) == {"Code", "Message", "RequestId", "HostId", "Resource", "EC"}
    assert body["Code"] == "AccessDenied"
    assert body["RequestId"] == got.headers["x-tos-request-id"]


def test_errors_for_unknown_buckets_bad_signatures_and_stale_dates(tos_emulator: EcsEmulator) -> None:
    """No such bucket is 404 NoSuchBucket; a wrong secret 403 SignatureDoesNotMatch; an old date 403 RequestTimeTooSkewed."""
    key = export_object_key("px", "image-ok1")
    assert head(tos_emulator, "nobucket", key, method="GET").json()["Code"] == "NoSuchBucket"
    wrong = Credentials(CREDENTIALS.access_key, "not-the-secret")
    refused = head(tos_emulator, BUCKET, key, credentials=wrong, method="GET")
    assert refused.status_code == 403
    assert refused.json()["Code"] == "SignatureDoesNotMatch"
    stale = head(tos_emulator, BUCKET, key, method="GET", moment=datetime.now(UTC) - timedelta(minutes=20))
    assert stale.json()["Code"] == "RequestTimeTooSkewed"
    with httpx.Client(timeout=5) as client:
        anonymous = client.get(f"{tos_emulator.endpoint}/{BUCKET}/{key}")
    assert (anonymous.status_code, anonymous.json()["Code"]) == (403, "AccessDenied")


def test_tos_accepts_the_key_pairs_the_gateway_accepts_now(
    tos_emulator: EcsEmulator, clock: FakeClock, call: Callable[..., httpx.Response]
) -> None:
    """After the emulator's accepted keys are replaced, HeadObject takes the new pair and refuses the old one."""
    export(tos_emulator, "image-ok1", call)
    clock.advance(TASK_SECONDS + 1)
    key = export_object_key("px", "image-ok1")
    rotated = Credentials("AKLTrotated", "rotated-secret")
    tos_emulator.credentials = rotated
    assert head(tos_emulator, BUCKET, key, credentials=rotated).status_code == 200
    old = head(tos_emulator, BUCKET, key, method="GET")
    assert (old.status_code, old.json()["Code"]) == (403, "InvalidAccessKeyId")


def test_tos_and_openapi_share_the_port(
    tos_emulator: EcsEmulator, clock: FakeClock, call: Callable[..., httpx.Response]
) -> None:
    """OpenAPI requests still reach ECS on the same port, and the TOS requests are counted apart."""
    export(tos_emulator, "image-ok1", call)
    clock.advance(TASK_SECONDS + 1)
    assert head(tos_emulator, BUCKET, export_object_key("px", "image-ok1")).status_code == 200
    stats = tos_emulator.stats()
    assert stats["requests"]["ExportImage"] == {"200": 1}
    assert stats["tos"]["requests"] == {"HEAD 200": 1}


def test_object_keys_are_case_sensitive(
    tos_emulator: EcsEmulator, clock: FakeClock, call: Callable[..., httpx.Response]
) -> None:
    """The object is found under its exact key only: another case of the prefix is another key."""
    export(tos_emulator, "image-ok2", call, prefix="Px9")
    clock.advance(TASK_SECONDS + 1)
    assert head(tos_emulator, BUCKET, "Px9_image-ok2_system.qcow2").status_code == 200
    assert head(tos_emulator, BUCKET, "px9_image-ok2_system.qcow2").status_code == 404


def test_the_in_process_transport_answers_tos_requests_too(
    tos_emulator: EcsEmulator, clock: FakeClock, call: Callable[..., httpx.Response]
) -> None:
    """``EcsEmulator.transport()`` serves HeadObject as the socket does: the size header, and no body."""
    export(tos_emulator, "image-ok2", call)
    clock.advance(TASK_SECONDS + 1)
    key = export_object_key("px", "image-ok2")
    with httpx.Client(transport=tos_emulator.transport()) as client:
        found = head(tos_emulator, BUCKET, key, client=client)
        missing = head(tos_emulator, BUCKET, key + ".x", client=client)
    assert found.status_code == 200
    assert int(found.headers["content-length"]) == qcow2_layout(20 * 2**30).length
    assert found.content == b""
    assert missing.status_code == 404


def test_injected_tos_errors_are_retryable_answers_with_the_json_body(
    tos_emulator: EcsEmulator, clock: FakeClock, call: Callable[..., httpx.Response]
) -> None:
    """error_rate 1 answers every signed request 500 InternalError; throttle_rate 1 answers 429; off again, 200."""
    export(tos_emulator, "image-ok1", call)
    clock.advance(TASK_SECONDS + 1)
    key = export_object_key("px", "image-ok1")
    tos_emulator.tos.error_rate = 1.0
    failed = head(tos_emulator, BUCKET, key, method="GET")
    tos_emulator.tos.error_rate, tos_emulator.tos.throttle_rate = 0.0, 1.0
    throttled = head(tos_emulator, BUCKET, key)
    tos_emulator.tos.throttle_rate = 0.0
    assert (failed.status_code, failed.json()["Code"]) == (500, "InternalError")
    assert throttled.status_code == 429
    assert head(tos_emulator, BUCKET, key).status_code == 200


def test_the_admin_reset_clears_the_tos_side(
    tos_emulator: EcsEmulator, clock: FakeClock, call: Callable[..., httpx.Response]
) -> None:
    """POST /__admin/reset forgets removals and TOS statistics along with the rest; /__admin/stats shows them."""
    export(tos_emulator, "image-ok1", call)
    clock.advance(TASK_SECONDS + 1)
    key = export_object_key("px", "image-ok1")
    tos_emulator.tos.remove_object(BUCKET, key)
    with httpx.Client(timeout=5) as client:
        stats = client.get(f"{tos_emulator.endpoint}/__admin/stats").json()
        assert stats["tos"]["removed"] == 1
        client.post(f"{tos_emulator.endpoint}/__admin/reset")
    after = tos_emulator.stats()["tos"]
    assert (after["requests"], after["removed"], after["bytes_read"]) == ({}, 0, 0)
    assert not any(after["kinds"].values())
