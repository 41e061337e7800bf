"""The ECS calls the function makes, held to the official SDK's models (``volcenginesdk-ecs``): our client
sends what the SDK sends for the same request, and the emulator answers nothing the SDK's response model
does not describe.

The SDK also has TagResources and UntagResources, GET with Version 2020-04-01 like the others
(``ResourceIds.N``, ``ResourceType`` required, ``Tags.N.Key`` required / ``Tags.N.Value``; ``TagKeys.N``),
each answering only ``RequestId`` in its Result: what the emulator answers when it learns them.

ImportImage and DeleteImages have no client of ours yet: the emulator takes the query the SDK builds for them
and answers what the SDK's models hold (its ``TaskForDescribeTasksOutput`` has no error field, so an import's
failure reason stays on the emulator's own record, and its ``DescribeTasksRequest`` no type filter).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import volcenginesdkecs.models as ecs_models  # type: ignore[import-untyped]

from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import Fleet, FleetBucket, FleetImage, FleetTask, new_images_fleet
from exporter_tools.emulator.tos import data_disk_object_key, export_object_key
from handler.adapters.ecs import BATCH_LIMIT, EcsClient
from handler.adapters.openapi import OpenApiClient
from handler.adapters.pacing import RateLimiter
from handler.adapters.retry import RetryPolicy
from handler.adapters.signing import Credentials
from tests.support.emulated import signed_get
from tests.support.fakes import FakeClock
from tests.support.sdk_models import sdk_query, strict_sdk_model

CREDENTIALS = Credentials("AKLTsdkmodels0000001", "sdk-models-secret-0001")
FAR = float("inf")


class Recorder:
    """The emulator in-process, keeping every request's query and answer."""

    def __init__(self, emulator: EcsEmulator) -> None:
        self._inner = emulator.transport()
        self.calls: list[tuple[dict[str, str], dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        response.read()
        query = dict(parse_qsl(request.url.query.decode(), keep_blank_values=True))
        self.calls.append((query, response.json()))
        return response

    def sent(self, action: str) -> list[dict[str, str]]:
        """The queries of every call to ``action``, without Action and Version."""
        return [
            {k: v for k, v in query.items() if k not in ("Action", "Version")}
            for query, _ in self.calls
            if query["Action"] == action
        ]

    def results(self, action: str) -> list[Any]:
        return [answer["Result"] for query, answer in self.calls if query["Action"] == action]


@pytest.fixture
def ecs() -> Iterator[Callable[[Fleet], tuple[EcsClient, Recorder]]]:
    """``ecs(fleet)``: our ECS client wired to an emulator holding ``fleet``, and the recorder between them."""
    started: list[tuple[EcsEmulator, httpx.Client]] = []

    def start(fleet: Fleet) -> tuple[EcsClient, Recorder]:
        emulator = EcsEmulator(fleet, credentials=CREDENTIALS, seed=3, task_seconds=100)
        recorder = Recorder(emulator)
        http = httpx.Client(transport=httpx.MockTransport(recorder))
        started.append((emulator, http))
        api = OpenApiClient(
            http=http,
            endpoint="https://ecs.cn-beijing.volcengineapi.com",
            region="cn-beijing",
            service="ecs",
            version="2020-04-01",
            credentials=CREDENTIALS,
            policy=RetryPolicy(max_attempts=1, base=0.01, cap=0.01),
            limiter=RateLimiter(10_000),
        )
        return EcsClient(api), recorder

    yield start
    for emulator, http in started:
        http.close()
        emulator.close()


FLEET = Fleet(
    images=(
        FleetImage(id="image-sdk000000000000001", name="web", tags={"env": "prod", "team": "a"}),
        FleetImage(id="image-sdk000000000000002", tags={"env": "prod"}),
        FleetImage(id="image-sdk000000000000003", status="creating"),
    ),
    buckets=(FleetBucket(name="sdk-bucket"),),
    tasks=(
        FleetTask(image_id="image-sdk000000000000002", status="Succeeded", created_hours_ago=3),
        FleetTask(image_id="image-sdk000000000000003", type="CreateImage", status="Running"),
    ),
)


def test_export_image_sends_the_sdks_parameters_and_answers_its_model(
    ecs: Callable[[Fleet], tuple[EcsClient, Recorder]],
) -> None:
    """ExportImage: our query is the SDK's for the same request; the answer reads as ExportImageResponse."""
    client, recorder = ecs(FLEET)
    client.export_image("image-sdk000000000000001", "sdk-bucket", "nightly", deadline=FAR)
    request = ecs_models.ExportImageRequest(
        image_id="image-sdk000000000000001", tos_bucket="sdk-bucket", tos_prefix="nightly"
    )
    assert recorder.sent("ExportImage") == [sdk_query(request)]
    (result,) = recorder.results("ExportImage")
    assert strict_sdk_model(ecs_models.ExportImageResponse, result).task_id


def test_describe_images_sends_the_sdks_parameters_and_answers_its_model(
    ecs: Callable[[Fleet], tuple[EcsClient, Recorder]],
) -> None:
    """DescribeImages with every filter the function uses, over two pages: each query is the SDK's, and each
    page reads as DescribeImagesResponse with no field the model lacks."""
    fleet = new_images_fleet(BATCH_LIMIT + 5)
    tagged = tuple(image.model_copy(update={"tags": {"env": "prod"}}) for image in fleet.images)
    client, recorder = ecs(Fleet(images=tagged, buckets=fleet.buckets))
    found = list(
        client.describe_images(
            deadline=FAR, visibility="private", status="available", tag_filters={"env": "prod"}
        )
    )
    assert len(found) == BATCH_LIMIT + 5
    first, second = recorder.results("DescribeImages")
    filters = {
        "visibility": "private",
        "status": ["available"],
        "tag_filters": [ecs_models.TagFilterForDescribeImagesInput(key="env", values=["prod"])],
        "max_results": BATCH_LIMIT,
    }
    expected = [
        sdk_query(ecs_models.DescribeImagesRequest(**filters)),
        sdk_query(ecs_models.DescribeImagesRequest(**filters, next_token=first["NextToken"])),
    ]
    assert recorder.sent("DescribeImages") == expected
    for page in (first, second):
        model = strict_sdk_model(ecs_models.DescribeImagesResponse, page)
        assert all(image.image_id and image.status for image in model.images)


def test_describe_images_by_id_sends_the_sdks_parameters(
    ecs: Callable[[Fleet], tuple[EcsClient, Recorder]],
) -> None:
    """DescribeImages by ids: ``ImageIds.N`` as the SDK numbers them, and the answer reads strictly."""
    client, recorder = ecs(FLEET)
    ids = ["image-sdk000000000000001", "image-sdk000000000000003"]
    list(client.describe_images(deadline=FAR, image_ids=ids))
    assert recorder.sent("DescribeImages") == [
        sdk_query(ecs_models.DescribeImagesRequest(image_ids=ids, max_results=BATCH_LIMIT))
    ]
    (result,) = recorder.results("DescribeImages")
    strict_sdk_model(ecs_models.DescribeImagesResponse, result)


@pytest.mark.parametrize("by", ["resource_ids", "task_ids"])
def test_describe_tasks_sends_the_sdks_parameters_and_answers_its_model(
    ecs: Callable[[Fleet], tuple[EcsClient, Recorder]], by: str
) -> None:
    """DescribeTasks by image or task ids: the SDK's query; the answer reads as DescribeTasksResponse, a
    running task's EndAt is "" and a finished one's a time."""
    client, recorder = ecs(FLEET)
    started = client.export_image("image-sdk000000000000001", "sdk-bucket", "nightly", deadline=FAR)
    ids = (
        ["image-sdk000000000000001", "image-sdk000000000000002", "image-sdk000000000000003"]
        if by == "resource_ids"
        else [started.task_id]
    )
    list(client.describe_tasks(deadline=FAR, **{by: ids}))
    request = ecs_models.DescribeTasksRequest(**{by: ids}, max_results=str(BATCH_LIMIT))
    assert recorder.sent("DescribeTasks") == [sdk_query(request)]
    (result,) = recorder.results("DescribeTasks")
    model = strict_sdk_model(ecs_models.DescribeTasksResponse, result)
    ends = {task.status: task.end_at for task in model.tasks}
    assert ends["Pending"] == ""
    if by == "resource_ids":
        assert ends["Running"] == ""
        assert datetime.fromisoformat(ends["Succeeded"]) < datetime.now(UTC) - timedelta(hours=2)


def test_an_image_with_data_disks_reads_as_the_sdks_image_with_its_snapshots() -> None:
    """DescribeImages reports the system disk and each data disk as Snapshots (VolumeKind system / data, Size
    in GiB), with the image's Architecture, BootMode, Platform, PlatformVersion, OsType, OsName and
    Description, all as the SDK's model holds them."""
    spec = FleetImage(
        id="image-sdk0000000disks",
        size_gb=40,
        data_disks=(100, 20),
        architecture="arm64",
        boot_mode="UEFI",
        platform="Debian",
        platform_version="12",
        description="a whole machine",
    )
    with EcsEmulator(Fleet(images=(spec,)), credentials=CREDENTIALS, seed=3) as emulator:
        result = emulator.ecs.describe_images({"ImageIds.1": spec.id})
    model = strict_sdk_model(
        ecs_models.DescribeImagesResponse,
        result,
        required=("Images.Snapshots.SnapshotId", "Images.Snapshots.Size", "Images.Snapshots.VolumeKind"),
    )
    (image,) = model.images
    assert [(s.volume_kind, s.size) for s in image.snapshots] == [("system", 40), ("data", 100), ("data", 20)]
    assert len({s.snapshot_id for s in image.snapshots}) == 3
    assert all(s.snapshot_id.startswith("snap-") for s in image.snapshots)
    assert (image.architecture, image.boot_mode, image.platform, image.platform_version) == (
        "arm64",
        "UEFI",
        "Debian",
        "12",
    )
    assert (image.os_type, image.os_name, image.description) == (
        "Linux",
        "Debian 12 64 bit",
        "a whole machine",
    )


def _signed(emulator: EcsEmulator, http: httpx.Client, action: str, query: dict[str, str]) -> dict[str, Any]:
    """One signed GET of ``query`` (the SDK's) to the in-process emulator; its ``Result``."""
    answer = signed_get(emulator, action, query, credentials=CREDENTIALS, client=http)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()["Result"]
    return result


def test_import_image_takes_the_sdks_query_and_answers_its_models() -> None:
    """ImportImage as the SDK builds it, every parameter set (``Tags.N`` and ``ImportDataVolumes.N``
    flattened): the answer reads as ImportImageResponse, the import task as DescribeTasks' task (no field
    the model lacks: no error) and the new image as DescribeImages' image, with its snapshots and tags."""
    spec = FleetImage(id="image-sdk0000000source", size_gb=40, data_disks=(20,))
    clock = FakeClock(wall=None)
    fleet = Fleet(images=(spec,), buckets=(FleetBucket(name="sdk-bucket"),))
    emulator = EcsEmulator(fleet, credentials=CREDENTIALS, seed=3, task_seconds=100, port=None, clock=clock)
    with httpx.Client(transport=emulator.transport()) as http:
        export = ecs_models.ExportImageRequest(
            image_id=spec.id, tos_bucket="sdk-bucket", tos_prefix="nightly"
        )
        _signed(emulator, http, "ExportImage", sdk_query(export))
        clock.advance(101)
        host = "https://sdk-bucket.tos-cn-beijing.volces.com/"
        request = ecs_models.ImportImageRequest(
            image_name="restored",
            url=host + export_object_key("nightly", spec.id),
            import_data_volumes=[
                ecs_models.ImportDataVolumeForImportImageInput(
                    data_volume_url=host + data_disk_object_key("nightly", spec.id, 1)
                )
            ],
            platform="Ubuntu",
            platform_version="22.04",
            os_type="Linux",
            architecture="amd64",
            boot_mode="UEFI",
            description="a restore",
            project_name="default",
            license_type="BYOL",
            need_detection=False,
            tags=[ecs_models.TagForImportImageInput(key="image-exporter:restored-from", value=spec.id)],
        )
        query = sdk_query(request)
        assert query["ImportDataVolumes.1.DataVolumeUrl"].endswith("_data1.qcow2")
        assert (query["Tags.1.Key"], query["NeedDetection"]) == ("image-exporter:restored-from", "false")
        imported = strict_sdk_model(
            ecs_models.ImportImageResponse, _signed(emulator, http, "ImportImage", query)
        )
        clock.advance(101)
        tasks = _signed(
            emulator,
            http,
            "DescribeTasks",
            sdk_query(ecs_models.DescribeTasksRequest(resource_ids=[imported.image_id])),
        )
        images = _signed(
            emulator,
            http,
            "DescribeImages",
            sdk_query(ecs_models.DescribeImagesRequest(image_ids=[imported.image_id])),
        )
    (task,) = strict_sdk_model(ecs_models.DescribeTasksResponse, tasks).tasks
    assert (task.type, task.status, task.resource_id) == ("ImportImage", "Succeeded", imported.image_id)
    model = strict_sdk_model(
        ecs_models.DescribeImagesResponse,
        images,
        required=("Images.Snapshots.SnapshotId", "Images.Snapshots.Size", "Images.Tags.Key"),
    )
    (image,) = model.images
    assert (image.status, image.boot_mode, image.size) == ("available", "UEFI", 40)
    assert [(s.volume_kind, s.size) for s in image.snapshots] == [("system", 40), ("data", 20)]
    assert [(t.key, t.value) for t in image.tags] == [("image-exporter:restored-from", spec.id)]


def test_delete_images_takes_the_sdks_query_and_answers_its_model() -> None:
    """DeleteImages as the SDK builds it: each OperationDetails entry reads as the SDK's, with an ImageId, and
    an Error (Code, Message) for the image being exported and the unknown one only."""
    images = (FleetImage(id="image-sdk00000000gone"), FleetImage(id="image-sdk0000exporting"))
    fleet = Fleet(images=images, buckets=(FleetBucket(name="sdk-bucket"),))
    emulator = EcsEmulator(fleet, credentials=CREDENTIALS, seed=3, task_seconds=100, port=None)
    with httpx.Client(transport=emulator.transport()) as http:
        export = ecs_models.ExportImageRequest(
            image_id="image-sdk0000exporting", tos_bucket="sdk-bucket", tos_prefix="nightly"
        )
        _signed(emulator, http, "ExportImage", sdk_query(export))
        ids = ["image-sdk00000000gone", "image-sdk0000exporting", "image-sdk000000unknown"]
        request = ecs_models.DeleteImagesRequest(image_ids=ids, delete_binded_snapshots=False)
        result = _signed(emulator, http, "DeleteImages", sdk_query(request))
        assert [d.delete_binded_snapshots for d in emulator.deleted_images] == [False]
    model = strict_sdk_model(ecs_models.DeleteImagesResponse, result, required=("OperationDetails.ImageId",))
    errors = {d.image_id: (d.error.code if d.error else None) for d in model.operation_details}
    assert errors == {
        "image-sdk00000000gone": None,
        "image-sdk0000exporting": "OperationDenied.ImageIsExporting",
        "image-sdk000000unknown": "InvalidImage.NotFound",
    }
    assert all(d.error.message for d in model.operation_details if d.error)
