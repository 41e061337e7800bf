"""Builders, so a test says only what matters to it: the API's records as DescribeImages and DescribeTasks
answer them (times counted back from one fixed moment) and the emulated account's (``tests.support.account``),
OpenAPI answers, the function's outcomes and results, and its EcsClient pointed at an endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from exporter_tools.emulator.fleet import FleetImage, FleetTask
from handler.adapters.ecs import API_VERSION, SERVICE, EcsClient
from handler.adapters.openapi import OpenApiClient
from handler.adapters.pacing import RateLimiter
from handler.adapters.retry import RetryPolicy
from handler.adapters.signing import Credentials
from handler.clock import Clock
from handler.models.api import Image, Task
from handler.models.manifest import (
    Manifest,
    ManifestExport,
    ManifestImage,
    ManifestObject,
    ManifestVerification,
    RestoreCheck,
)
from handler.models.results import ErrorInfo, ImageOutcome, InvocationResult, Status, Trigger

__all__ = [
    "EXPORTED",
    "EXPORT_FAILED",
    "GIB",
    "NOW",
    "QUEUED",
    "STARTED",
    "api_error",
    "api_ok",
    "ecs_client",
    "examples",
    "fleet_image",
    "fleet_task",
    "image",
    "manifest",
    "outcome",
    "result_of",
    "task",
]

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
GIB = 1024**3


def image(image_id: str, *, hours_ago: float = 1, **fields: Any) -> Image:
    """A private available image created ``hours_ago`` before ``NOW``; ``name``, ``status``, ``visibility``
    and ``tags`` override."""
    data: dict[str, Any] = {
        "ImageId": image_id,
        "ImageName": fields.pop("name", f"name-{image_id}"),
        "Status": fields.pop("status", "available"),
        "Visibility": fields.pop("visibility", "private"),
        "CreatedAt": (NOW - timedelta(hours=hours_ago)).isoformat(),
        "Tags": [{"Key": k, "Value": v} for k, v in fields.pop("tags", {}).items()],
    }
    return Image.from_api(data)


def task(status: str, *, kind: str = "ExportImage", hours_ago: float = 1, image_id: str = "image-a") -> Task:
    """A task of ``image_id`` created, updated and ended ``hours_ago`` before ``NOW``."""
    moment = (NOW - timedelta(hours=hours_ago)).isoformat()
    return Task.from_api(
        {
            "Id": f"t-{status.lower()}{hours_ago:g}",
            "Type": kind,
            "Status": status,
            "ResourceId": image_id,
            "CreatedAt": moment,
            "UpdatedAt": moment,
            "EndAt": moment,
        }
    )


def fleet_image(image_id: str, *, hours_ago: float = 1, **fields: Any) -> FleetImage:
    """An image of the emulated account: private, available, created ``hours_ago`` before its clock's now;
    ``name``, ``status``, ``visibility``, ``tags``, ``size_gb`` and ``export_outcome`` override."""
    return FleetImage.model_validate({"id": image_id, "created_hours_ago": hours_ago, **fields})


def fleet_task(image_id: str, status: str, *, kind: str = "ExportImage", hours_ago: float = 1) -> FleetTask:
    """A task the emulated account held before the test (its status stays as given), created ``hours_ago``
    before its clock's now."""
    return FleetTask.model_validate(
        {"image_id": image_id, "type": kind, "status": status, "created_hours_ago": hours_ago}
    )


def manifest(
    image_id: str,
    *,
    name: str | None = None,
    hours_ago: float = 1,
    verified: bool = True,
    tags: dict[str, str] | None = None,
    restored_hours_ago: tuple[float, ...] = (),
    bucket: str = "b-1",
    prefix: str = "nightly",
    **fields: Any,
) -> Manifest:
    """The manifest of an export of ``image_id`` into ``bucket``/``prefix`` that finished ``hours_ago``
    before ``NOW``: one 40 GiB system object, checked at ``structure`` (``verified``) or ``off``, with a
    Succeeded restore check ``restored_hours_ago`` each; ``fields`` override the manifest's own."""
    finished = NOW - timedelta(hours=hours_ago)
    system = ManifestObject(
        key=f"{prefix}_{image_id}_system.qcow2",
        disk="system",
        size_bytes=3 * GIB,
        virtual_size_bytes=40 * GIB,
    )
    data: dict[str, Any] = {
        "image": ManifestImage(id=image_id, name=name or f"name-{image_id}", size_gib=40, tags=tags or {}),
        "export": ManifestExport(
            task_id=f"t-{image_id}", region="cn-beijing", bucket=bucket, prefix=prefix, finished_at=finished
        ),
        "objects": (system,),
        "verification": ManifestVerification(
            level="structure" if verified else "off", verified=verified, checked_at=finished
        ),
        "restore_checks": tuple(
            RestoreCheck(
                at=NOW - timedelta(hours=h),
                image_id=f"image-drill{n}",
                task_id=f"t-drill{n}",
                result="Succeeded",
            )
            for n, h in enumerate(restored_hours_ago)
        ),
    }
    return Manifest(**(data | fields))


# -- OpenAPI answers ----------------------------------------------------------------------------------------


def api_ok(result: dict[str, Any] | None = None, request_id: str = "req-ok") -> httpx.Response:
    """A 200 answer carrying ``result``."""
    return httpx.Response(200, json={"ResponseMetadata": {"RequestId": request_id}, "Result": result or {}})


def api_error(status: int, code: str, message: str = "msg", **headers: str) -> httpx.Response:
    """An error answer with ``code`` (its RequestId ``req-<code>``), ``message`` and ``headers``."""
    body = {"ResponseMetadata": {"RequestId": f"req-{code}", "Error": {"Code": code, "Message": message}}}
    return httpx.Response(status, json=body, headers=headers)


def ecs_client(
    clock: Clock,
    credentials: Credentials,
    *,
    endpoint: str = "https://open.volcengineapi.com",
    attempts: int = 4,
    rps: float = 1000,
    http: httpx.Client | None = None,
    limiter: RateLimiter | None = None,
) -> EcsClient:
    """The function's ECS client at ``endpoint`` on ``clock`` (backoff from 0.1 s, at most 1 s)."""
    api = OpenApiClient(
        http=http or httpx.Client(),
        endpoint=endpoint,
        region="cn-beijing",
        service=SERVICE,
        version=API_VERSION,
        credentials=credentials,
        policy=RetryPolicy(max_attempts=attempts, base=0.1, cap=1.0),
        limiter=limiter or RateLimiter(rps, clock=clock),
        clock=clock,
    )
    return EcsClient(api)


# -- the function's outcomes and results --------------------------------------------------------------------


def outcome(
    image_id: str | None = "image-1",
    status: Status = "started",
    *,
    task_id: str | None = None,
    code: str | None = None,
    message: str = "it went wrong",
    reason: str | None = None,
    bucket: str | None = "my-exports",
) -> ImageOutcome:
    """One image's outcome; ``code`` gives it an error with ``message``."""
    error = ErrorInfo(code=code, message=message) if code else None
    return ImageOutcome(
        image_id=image_id, status=status, task_id=task_id, tos_bucket=bucket, reason=reason, error=error
    )


def result_of(
    *outcomes: ImageOutcome, event_id: str = "evt-1", trigger: Trigger = "timer"
) -> InvocationResult:
    """The invocation's result over ``outcomes``."""
    return InvocationResult.of(trigger, event_id, outcomes)


# The follow-up's outcomes: an export that ended with its object, one whose task failed, a new one, and one
# held back by the in-flight cap.
EXPORTED = ImageOutcome(
    image_id="image-ok",
    status="exported",
    task_id="t-ok",
    tos_bucket="bkt",
    object_key="p_image-ok_system.qcow2",
    size_bytes=40 * GIB,
    duration_s=18 * 60 + 10,
    verified=True,
    verification="structure",
    objects=tuple(
        ManifestObject(key=f"p_image-ok_{disk}.qcow2", disk="system" if disk == "system" else "data")
        for disk in ("system", "data1", "data2")
    ),
    manifest_key="p_image-ok.manifest.json",
)
EXPORT_FAILED = ImageOutcome(
    image_id="image-bad",
    status="export_failed",
    task_id="t-bad",
    tos_bucket="bkt",
    object_key="p_image-bad_system.qcow2",
    error=ErrorInfo(code="ExportTaskFailed", message="export task t-bad Failed"),
)
STARTED = ImageOutcome(image_id="image-new", status="started", task_id="t-new")
QUEUED = ImageOutcome(image_id="image-later", status="queued", reason="EXPORT_MAX_IN_FLIGHT=3")


# -- property tests -------------------------------------------------------------------------------------------


def examples(full: int) -> int:
    """``full`` examples under the default profile, scaled with the loaded one (``make unit`` runs a quarter)."""
    from hypothesis import settings

    return max(1, full * settings.default.max_examples // 100)
