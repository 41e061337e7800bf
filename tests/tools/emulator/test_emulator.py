"""The ECS emulator over real loopback sockets: the API's shapes, errors from state, the gateway and faults."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from exporter_tools.emulator.ecs import API_VERSION, EcsEmulator, Faults
from exporter_tools.emulator.fleet import new_images_fleet
from exporter_tools.emulator.server import ADMIN_RESET_PATH, ADMIN_STATS_PATH
from handler.adapters.signing import Credentials, canonical_query, format_x_date, sign_request
from tests.support.emulated import CREDENTIALS, signed_get

Start = Callable[..., EcsEmulator]
Call = Callable[..., httpx.Response]

AVAILABLE = "image-ybqi99s7yq8rx7mnk44b"
CREATING = "image-cr8t1ng5w7e9r1t3y5u7"
PUBLIC = "image-pub1ic0ubuntu2204x64"
SHARED = "image-sh4red0fr0mpartner01"
NOT_EXPORTABLE = "image-n0exp0rt0licensed01"


def export_params(
    image_id: str = AVAILABLE, bucket: str = "demo-exports", prefix: str = "test1"
) -> dict[str, str]:
    return {"ImageId": image_id, "TOSBucket": bucket, "TOSPrefix": prefix}


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["ResponseMetadata"]["Error"]
    return error


# -- the API's shapes ---------------------------------------------------------------------------------------


def test_answers_carry_the_gateways_response_metadata(emulator: EcsEmulator, call: Call) -> None:
    """Every answer names its RequestId, Action, Version, Service and Region, with the Result beside it."""
    response = call(emulator, "DescribeImages")

    assert response.status_code == 200
    meta = response.json()["ResponseMetadata"]
    assert meta["Action"] == "DescribeImages"
    assert meta["Version"] == API_VERSION
    assert meta["Service"] == "ecs"
    assert meta["Region"] == "cn-beijing"
    assert meta["RequestId"].isdigit()
    assert len(meta["RequestId"]) == 34
    assert response.json()["Result"]["TotalCount"] == 10


def test_every_answer_carries_one_date_from_the_gateways_clock(start_emulator: Start, call: Call) -> None:
    """An answer, and a refusal of its signature alike, carries one ``Date``: the gateway's clock, as a server's
    own (the doctor compares it with the caller's)."""
    moment = datetime.now(UTC).replace(microsecond=0)  # still, and fresh enough for the signatures
    emulator = start_emulator(clock=lambda: moment)
    answered = call(emulator, "DescribeTasks", {"TaskIds.1": "t-1"})
    refused = call(emulator, "DescribeImages", credentials=Credentials("AKLTother", "other-secret"))
    assert (answered.status_code, refused.status_code) == (200, 401)
    for response in (answered, refused):
        (date,) = response.headers.get_list("date")
        assert parsedate_to_datetime(date) == moment


def test_image_times_are_iso_8601_in_utc_plus_8(emulator: EcsEmulator, call: Call) -> None:
    """CreatedAt is written like the real API's, ``2024-06-01T16:15:42+08:00``, and two hours old here."""
    response = call(emulator, "DescribeImages", {"ImageIds.1": AVAILABLE})

    (image,) = response.json()["Result"]["Images"]
    assert image["CreatedAt"].endswith("+08:00")
    age = datetime.now(UTC) - datetime.fromisoformat(image["CreatedAt"])
    assert 1.9 < age.total_seconds() / 3600 < 2.1


def test_export_answers_a_task_id_that_describe_tasks_reports(emulator: EcsEmulator, call: Call) -> None:
    """ExportImage returns a TaskId; DescribeTasks then shows that export, pending, for the image."""
    started = call(emulator, "ExportImage", export_params())
    task_id = started.json()["Result"]["TaskId"]

    tasks = call(emulator, "DescribeTasks", {"TaskIds.1": task_id}).json()["Result"]["Tasks"]

    assert started.status_code == 200
    assert task_id.startswith("t-")
    assert [(t["Id"], t["Type"], t["ResourceId"], t["Status"]) for t in tasks] == [
        (task_id, "ExportImage", AVAILABLE, "Pending")
    ]
    assert emulator.export_tasks_by_image() == {AVAILABLE: 1}


# -- every error of the ExportImage error table arises from state ---------------------------------------------


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        pytest.param(
            {"TOSBucket": "demo-exports", "TOSPrefix": "a1"}, 400, "MissingParameter.ImageId", id="no-image"
        ),
        pytest.param(
            {"ImageId": AVAILABLE, "TOSPrefix": "a1"}, 400, "MissingParameter.TOSBucket", id="no-bucket"
        ),
        pytest.param(
            {"ImageId": AVAILABLE, "TOSBucket": "demo-exports"},
            400,
            "MissingParameter.TOSPrefix",
            id="no-prefix",
        ),
        pytest.param(export_params(prefix="bad-prefix!"), 400, "InvalidTOSPrefix.Malformed", id="bad-prefix"),
        pytest.param(export_params(prefix="a" * 31), 400, "InvalidTOSPrefix.Malformed", id="long-prefix"),
        pytest.param(
            export_params("image-nosuchimage0000"), 404, "InvalidImage.NotFound", id="unknown-image"
        ),
        pytest.param(
            export_params(bucket="no-such-bucket"), 404, "InvalidTOSBucket.NotFound", id="unknown-bucket"
        ),
        pytest.param(export_params(CREATING), 400, "InvalidImageStatus", id="creating"),
        pytest.param(export_params(PUBLIC), 400, "InvalidImageForExportImage.UnSupported", id="public"),
        pytest.param(export_params(SHARED), 400, "InvalidImageForExportImage.UnSupported", id="shared"),
        pytest.param(
            export_params(NOT_EXPORTABLE), 400, "InvalidImageForExportImage.UnSupported", id="flagged"
        ),
        pytest.param(
            export_params(bucket="locked-bucket"), 400, "InvalidTosPutObject.AccessDenied", id="no-put"
        ),
    ],
)
def test_export_refusals_follow_from_the_account_state(
    emulator: EcsEmulator, call: Call, params: dict[str, str], status: int, code: str
) -> None:
    """Each ExportImage error of the API's table comes back, with its HTTP status, when the state calls for it."""
    response = call(emulator, "ExportImage", params)

    assert response.status_code == status
    assert error_of(response)["Code"] == code
    assert "CodeN" not in error_of(response)
    assert "Result" not in response.json()
    assert emulator.export_tasks_by_image() == {}


@pytest.mark.parametrize(
    ("task_seconds", "second_status"),
    [pytest.param(60.0, 412, id="still-running"), pytest.param(0.0, 200, id="already-succeeded")],
)
def test_a_running_export_locks_the_image(
    start_emulator: Start, call: Call, task_seconds: float, second_status: int
) -> None:
    """A second export while the first is pending or running is OperationDenied.ResourceLocked; after it ends, allowed."""
    emulator = start_emulator(task_seconds=task_seconds)
    call(emulator, "ExportImage", export_params())

    second = call(emulator, "ExportImage", export_params())

    assert second.status_code == second_status
    if second_status == 412:
        assert error_of(second)["Code"] == "OperationDenied.ResourceLocked"


# -- the gateway ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "code", "code_n"),
    [
        pytest.param(
            (CREDENTIALS, Credentials(CREDENTIALS.access_key, "another-secret")),
            "SignatureDoesNotMatch",
            100010,
            id="secret",
        ),
        pytest.param(
            (CREDENTIALS, Credentials("AKLTunknown0000", "x-secret")),
            "InvalidAccessKey",
            100009,
            id="access-key",
        ),
        pytest.param(
            (Credentials("AKLTsts", "sts-secret", "token-1"), Credentials("AKLTsts", "sts-secret")),
            "InvalidSecretToken",
            None,
            id="no-token",
        ),
        pytest.param(
            (
                Credentials("AKLTsts", "sts-secret", "token-1"),
                Credentials("AKLTsts", "sts-secret", "token-2"),
            ),
            "InvalidSecretToken",
            None,
            id="other-token",
        ),
    ],
)
def test_a_bad_signature_is_refused_as_the_gateway_does(
    start_emulator: Start,
    call: Call,
    keys: tuple[Credentials, Credentials],
    code: str,
    code_n: int | None,
) -> None:
    """Wrong keys get HTTP 401 with the gateway's code (and CodeN where it has one); nothing is exported."""
    emulator_keys, sent_keys = keys
    emulator = start_emulator(credentials=emulator_keys)

    response = call(emulator, "ExportImage", export_params(), credentials=sent_keys)

    assert response.status_code == 401
    assert error_of(response)["Code"] == code
    assert error_of(response).get("CodeN") == code_n
    assert emulator.stats()["signature_failures"] == 1
    assert emulator.export_tasks_by_image() == {}


def test_temporary_keys_with_their_token_are_accepted(start_emulator: Start, call: Call) -> None:
    """STS keys work when X-Security-Token is sent and signed."""
    keys = Credentials("AKLTsts", "sts-secret", "token-1")
    emulator = start_emulator(credentials=keys)

    assert call(emulator, "DescribeImages", credentials=keys).status_code == 200


@pytest.mark.parametrize(
    ("region", "service"),
    [pytest.param("cn-shanghai", "ecs", id="region"), pytest.param("cn-beijing", "vpc", id="service")],
)
def test_a_signature_for_another_scope_does_not_match(
    emulator: EcsEmulator, call: Call, region: str, service: str
) -> None:
    """A request signed for another region or service is SignatureDoesNotMatch (100010)."""
    response = call(emulator, "DescribeImages", region=region, service=service)

    assert response.status_code == 401
    assert (error_of(response)["Code"], error_of(response)["CodeN"]) == ("SignatureDoesNotMatch", 100010)


def test_the_signature_is_checked_before_any_fault(start_emulator: Start, call: Call) -> None:
    """With every request failing on purpose, a bad signature still gets 401, not 500."""
    emulator = start_emulator(faults=Faults(error_rate=1.0, throttle_rate=1.0))

    response = call(emulator, "DescribeImages", credentials=Credentials(CREDENTIALS.access_key, "wrong"))

    assert response.status_code == 401


def test_the_query_may_come_in_any_order_with_plus_for_space(emulator: EcsEmulator) -> None:
    """Like the gateway, the emulator re-sorts the query and reads '+' as a space before checking the signature."""
    params = {"Action": "DescribeImages", "Version": API_VERSION, "ImageName": "Ubuntu 22.04 LTS 64-bit"}
    host = f"127.0.0.1:{emulator.port}"
    signed = sign_request(
        method="GET",
        host=host,
        path="/",
        query=canonical_query(params),
        headers={},
        body=b"",
        credentials=CREDENTIALS,
        region="cn-beijing",
        service="ecs",
        x_date=format_x_date(datetime.now(UTC)),
    )
    wire = f"ImageName=Ubuntu+22.04+LTS+64-bit&Version={API_VERSION}&Action=DescribeImages"

    with httpx.Client() as client:
        response = client.get(f"{emulator.endpoint}/?{wire}", headers={"Host": host, **signed.headers})

    assert response.status_code == 200
    assert [i["ImageId"] for i in response.json()["Result"]["Images"]] == [PUBLIC]


@pytest.mark.parametrize(
    ("action", "version"),
    [
        pytest.param("StopInstances", API_VERSION, id="action"),
        pytest.param("DescribeImages", "2019-01-01", id="version"),
    ],
)
def test_an_unknown_action_or_version_is_refused(
    emulator: EcsEmulator, call: Call, action: str, version: str
) -> None:
    """An action the emulator does not serve is 404 InvalidActionOrVersion."""
    response = call(emulator, action, version=version)

    assert response.status_code == 404
    assert error_of(response)["Code"] == "InvalidActionOrVersion"


# -- DescribeImages and DescribeTasks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"Visibility": "public"}, {PUBLIC}, id="visibility"),
        pytest.param({"Status.1": "creating"}, {CREATING}, id="status-n"),
        pytest.param({"ImageStatus": "creating"}, {CREATING}, id="image-status"),
        pytest.param(
            {"ImageIds.1": AVAILABLE, "ImageIds.2": PUBLIC, "ImageIds.3": "image-none"},
            {AVAILABLE, PUBLIC},
            id="ids",
        ),
        pytest.param({"ImageName": "adhoc-debug"}, {"image-k4j6h8g2f0d1s3a5q7wz"}, id="name"),
        pytest.param(
            {"TagFilters.1.Key": "team", "TagFilters.1.Values.1": "data"},
            {"image-m1n2b3v4c5x6z7l8k9jh"},
            id="tag",
        ),
        pytest.param(
            {
                "TagFilters.1.Key": "env",
                "TagFilters.1.Values.1": "staging",
                "TagFilters.1.Values.2": "dev",
                "TagFilters.2.Key": "team",
            },
            {AVAILABLE},
            id="tag-values-and-keys",
        ),
        pytest.param(
            {"Visibility": "private", "Status.1": "available", "OsType": "Windows"},
            {NOT_EXPORTABLE},
            id="combined",
        ),
    ],
)
def test_describe_images_filters(
    emulator: EcsEmulator, call: Call, params: dict[str, str], expected: set[str]
) -> None:
    """Each DescribeImages filter narrows the list as the API documents; filters combine with AND."""
    result = call(emulator, "DescribeImages", params).json()["Result"]

    assert {i["ImageId"] for i in result["Images"]} == expected
    assert result["TotalCount"] == len(expected)


@pytest.mark.parametrize("page_size", [1, 3, 4, 10])
def test_describe_images_pages_through_every_image_once(
    emulator: EcsEmulator, call: Call, page_size: int
) -> None:
    """Following NextToken visits every image exactly once, newest first; the last page's token is empty."""
    seen: list[str] = []
    token = ""
    for _ in range(20):
        params = {"MaxResults": str(page_size)} | ({"NextToken": token} if token else {})
        result = call(emulator, "DescribeImages", params).json()["Result"]
        assert len(result["Images"]) <= page_size
        seen += [i["ImageId"] for i in result["Images"]]
        token = result["NextToken"]
        if not token:
            break

    assert len(seen) == len(set(seen)) == 10
    assert seen[0] == CREATING


@pytest.mark.parametrize(("action", "default"), [("DescribeImages", 15), ("DescribeTasks", 20)])
def test_page_size_defaults_as_documented(
    start_emulator: Start, call: Call, action: str, default: int
) -> None:
    """Without MaxResults a page holds 15 images or 20 tasks."""
    emulator = start_emulator(new_images_fleet(30), task_seconds=0)
    for n in range(30):
        call(emulator, "ExportImage", export_params(f"image-new{n:04d}"))

    result = call(emulator, action).json()["Result"]

    assert len(result["Images" if action == "DescribeImages" else "Tasks"]) == default
    assert result["NextToken"]


@pytest.mark.parametrize("action", ["DescribeImages", "DescribeTasks"])
@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"MaxResults": "0"}, id="max-0"),
        pytest.param({"MaxResults": "101"}, id="max-101"),
        pytest.param({"MaxResults": "ten"}, id="max-text"),
        pytest.param({"NextToken": "not-a-token"}, id="token"),
    ],
)
def test_bad_paging_parameters_are_invalid(
    emulator: EcsEmulator, call: Call, action: str, params: dict[str, str]
) -> None:
    """MaxResults outside 1-100 or a NextToken the API never gave is 400 InvalidParameter."""
    response = call(emulator, action, params)

    assert response.status_code == 400
    assert error_of(response)["Code"] == "InvalidParameter"


@pytest.mark.parametrize(
    ("action", "key"),
    [("DescribeImages", "ImageIds"), ("DescribeTasks", "TaskIds"), ("DescribeTasks", "ResourceIds")],
)
def test_more_than_100_ids_are_refused(emulator: EcsEmulator, call: Call, action: str, key: str) -> None:
    """101 ids in one request is 400 InvalidParameter; 100 is fine."""
    ids = {f"{key}.{n}": f"image-x{n}" for n in range(1, 102)}

    too_many = call(emulator, action, ids)
    del ids[f"{key}.101"]
    enough = call(emulator, action, ids)

    assert too_many.status_code == 400
    assert error_of(too_many)["Code"] == "InvalidParameter"
    assert enough.status_code == 200


@pytest.mark.parametrize("filter_key", ["ResourceIds.1", "ResourceId"])
def test_describe_tasks_by_resource(start_emulator: Start, call: Call, filter_key: str) -> None:
    """DescribeTasks by image id (ResourceIds.N or ResourceId) lists only that image's tasks."""
    emulator = start_emulator()
    call(emulator, "ExportImage", export_params())
    call(emulator, "ExportImage", export_params("image-3f7k2m9q1x8w5v6n4b0c"))

    tasks = call(emulator, "DescribeTasks", {filter_key: AVAILABLE}).json()["Result"]["Tasks"]

    assert [t["ResourceId"] for t in tasks] == [AVAILABLE]


# -- faults ---------------------------------------------------------------------------------------------------


def test_an_injected_internal_error_starts_nothing(start_emulator: Start, call: Call) -> None:
    """error_rate 1: every request is 500 InternalError and no export task is created."""
    emulator = start_emulator(faults=Faults(error_rate=1.0))

    response = call(emulator, "ExportImage", export_params())

    assert response.status_code == 500
    assert error_of(response)["Code"] == "InternalError"
    assert emulator.export_tasks_by_image() == {}
    assert emulator.stats()["injected_errors"] == 1


def test_injected_throttling_answers_flow_limit_exceeded(start_emulator: Start, call: Call) -> None:
    """throttle_rate 1: every request is 429 FlowLimitExceeded and counted as throttled."""
    emulator = start_emulator(faults=Faults(throttle_rate=1.0))

    response = call(emulator, "DescribeTasks")

    assert response.status_code == 429
    assert error_of(response)["Code"] == "FlowLimitExceeded"
    assert emulator.stats()["throttled"] == 1


def test_throttling_says_when_to_come_back_when_told(start_emulator: Start, call: Call) -> None:
    """retry_after: every 429 the gateway answers, random or over the rate limit, carries that Retry-After;
    its other answers carry none, and without retry_after no 429 does."""
    clock = [100.0]
    told = start_emulator(faults=Faults(max_rps=1, retry_after=2.5), monotonic=lambda: clock[0])
    untold = start_emulator(faults=Faults(throttle_rate=1.0))

    passed, limited = call(told, "DescribeImages"), call(told, "DescribeImages")
    told.faults = Faults(throttle_rate=1.0, retry_after=4)
    clock[0] += 1.0
    thrown = call(told, "DescribeImages")

    assert (passed.status_code, limited.status_code, thrown.status_code) == (200, 429, 429)
    assert "retry-after" not in passed.headers
    assert (limited.headers["retry-after"], thrown.headers["retry-after"]) == ("2.5", "4")
    assert "retry-after" not in call(untold, "DescribeImages").headers


def test_the_rate_limit_counts_a_sliding_second(start_emulator: Start, call: Call) -> None:
    """max_rps 2: a third request within the same second is 429; a second later requests pass again."""
    clock = [100.0]
    emulator = start_emulator(faults=Faults(max_rps=2), monotonic=lambda: clock[0])

    first = [call(emulator, "DescribeImages").status_code for _ in range(3)]
    clock[0] += 1.0
    later = call(emulator, "DescribeImages").status_code

    assert first == [200, 200, 429]
    assert later == 200
    stats = emulator.stats()
    assert stats["throttled"] == 1
    assert stats["peak_rps"] == 3
    assert stats["requests"]["DescribeImages"] == {"200": 3, "429": 1}


def test_commit_then_drop_creates_the_task_and_answers_nothing(start_emulator: Start, call: Call) -> None:
    """drop_rate 1: ExportImage's task exists, but the connection closes without any answer."""
    emulator = start_emulator(faults=Faults(drop_rate=1.0))

    with pytest.raises(httpx.TransportError):
        call(emulator, "ExportImage", export_params())
    tasks = call(emulator, "DescribeTasks", {"ResourceIds.1": AVAILABLE})

    assert tasks.status_code == 200
    assert len(tasks.json()["Result"]["Tasks"]) == 1
    assert emulator.export_tasks_by_image() == {AVAILABLE: 1}
    assert emulator.stats()["dropped"] == 1
    assert emulator.stats()["requests"]["ExportImage"] == {"dropped": 1}


def test_a_refused_export_is_never_dropped(start_emulator: Start, call: Call) -> None:
    """Only a write that took effect is dropped: a refused ExportImage still gets its error answer."""
    emulator = start_emulator(faults=Faults(drop_rate=1.0))

    response = call(emulator, "ExportImage", export_params(CREATING))

    assert response.status_code == 400


def test_latency_is_added_to_every_answer(start_emulator: Start, call: Call) -> None:
    """latency_ms 50: the emulator waits 50 ms before each answer, errors included."""
    waits: list[float] = []
    emulator = start_emulator(faults=Faults(latency_ms=50), sleep=waits.append)

    call(emulator, "DescribeImages")
    call(emulator, "ExportImage", export_params(CREATING))

    assert waits == [0.05, 0.05]


def test_faults_are_reproducible_with_a_seed(start_emulator: Start, call: Call) -> None:
    """Two emulators with the same seed fail the same requests."""
    runs = []
    for _ in range(2):
        emulator = start_emulator(faults=Faults(error_rate=0.5), seed=7)
        runs.append([call(emulator, "DescribeImages").status_code for _ in range(16)])

    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 500}


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param({"error_rate": 1.5}, id="rate"),
        pytest.param({"max_rps": 0}, id="rps"),
        pytest.param({"latency_ms": -1}, id="latency"),
        pytest.param({"retry_after": -1}, id="retry-after"),
    ],
)
def test_impossible_faults_are_refused(faults: dict[str, float]) -> None:
    """A share outside 0-1, a non-positive rate limit, a negative latency or Retry-After is a ValueError."""
    with pytest.raises(ValueError, match=next(iter(faults))):
        Faults(**faults)


# -- admin paths ----------------------------------------------------------------------------------------------


def test_stats_are_served_as_json_without_a_signature(emulator: EcsEmulator, call: Call) -> None:
    """GET /__admin/stats answers the same statistics as ``stats()``, for scripts."""
    call(emulator, "ExportImage", export_params())

    response = httpx.get(emulator.endpoint + ADMIN_STATS_PATH)

    assert response.status_code == 200
    assert response.json() == emulator.stats()
    assert response.json()["ecs"]["export_tasks_by_image"] == {AVAILABLE: 1}
    assert response.json()["requests"]["ExportImage"] == {"200": 1}


def test_reset_forgets_exports_and_statistics(emulator: EcsEmulator, call: Call) -> None:
    """POST /__admin/reset puts the fleet back as loaded and clears the counts."""
    call(emulator, "ExportImage", export_params())

    response = httpx.post(emulator.endpoint + ADMIN_RESET_PATH)

    assert response.status_code == 200
    assert emulator.export_tasks_by_image() == {}
    assert emulator.stats()["requests_total"] == 0
    assert call(emulator, "ExportImage", export_params()).status_code == 200


def test_admin_paths_refuse_clients_other_than_loopback(emulator: EcsEmulator) -> None:
    """The unsigned admin paths answer 403 to anyone but the local machine."""
    reply = emulator.answer(method="GET", target=ADMIN_STATS_PATH, headers={}, body=b"", loopback=False)

    assert reply.status == 403


def test_an_emulator_without_a_port_opens_no_socket_and_answers_in_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``port=None`` builds no server: nothing listens, ``start`` refuses, ``close`` is harmless, and the
    transport answers as ever (the unit tests' accounts)."""
    opened: list[object] = []
    real = socket.socket

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            opened.append(args)
            super().__init__(*args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(socket, "socket", Counting)
        emulator = EcsEmulator(credentials=CREDENTIALS, port=None)
    assert opened == []
    with pytest.raises(RuntimeError, match="in-process only"):
        emulator.start()
    with httpx.Client(transport=emulator.transport()) as client:
        assert signed_get(emulator, "DescribeImages", client=client).status_code == 200
    emulator.close()


def test_the_same_gateway_answers_in_process_through_its_transport() -> None:
    """``transport()`` gives the emulator's answers without a socket: a signed call exports, a bad signature is
    refused as over HTTP, and a dropped answer is a transport error after the export was made."""
    emulator = EcsEmulator(credentials=CREDENTIALS, faults=Faults(drop_rate=0.0))
    try:
        with httpx.Client(transport=emulator.transport(), base_url=emulator.endpoint) as client:
            ok = signed_get(emulator, "DescribeImages", client=client)
            assert ok.status_code == 200
            assert ok.json()["Result"]["Images"]
            wrong = Credentials(CREDENTIALS.access_key, "not-the-secret")
            refused = signed_get(emulator, "DescribeImages", credentials=wrong, client=client)
            assert refused.json()["ResponseMetadata"]["Error"]["Code"] == "SignatureDoesNotMatch"
            emulator.faults = Faults(drop_rate=1.0)
            images = ok.json()["Result"]["Images"]
            image_id = next(i["ImageId"] for i in images if i["Status"] == "available")
            with pytest.raises(httpx.ReadError):
                signed_get(
                    emulator,
                    "ExportImage",
                    {"ImageId": image_id, "TOSBucket": "demo-exports", "TOSPrefix": "drop"},
                    client=client,
                )
        assert emulator.stats()["dropped"] == 1
    finally:
        emulator.close()
