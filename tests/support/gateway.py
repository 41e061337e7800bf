"""A small stateful stand-in for the ECS gateway, served through respx, for the entry's HTTP-edge tests.

It checks each request's signature with the same verifier the emulator uses, so a test that passes here
sent exactly what a real gateway would accept.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx

from exporter_tools.emulator.signature import verify_signature
from handler.adapters.signing import Credentials

HOST = "ecs.test.volcengineapi.com"
ENDPOINT = f"https://{HOST}"


def _answer(
    action: str, result: dict[str, Any] | None = None, *, status: int = 200, code: str = "", message: str = ""
) -> httpx.Response:
    meta: dict[str, Any] = {
        "RequestId": f"req-{action}",
        "Action": action,
        "Version": "2020-04-01",
        "Service": "ecs",
        "Region": "cn-beijing",
    }
    if code:
        meta["Error"] = {"Code": code, "Message": message or code}
        return httpx.Response(status, json={"ResponseMetadata": meta})
    return httpx.Response(status, json={"ResponseMetadata": meta, "Result": result or {}})


class Gateway:
    """Images and tasks in memory; ``faults`` maps an action to responses served before normal answers."""

    def __init__(self, credentials: Credentials, region: str = "cn-beijing") -> None:
        self.credentials = credentials
        self.region = region
        self.images: dict[str, dict[str, Any]] = {}
        self.tasks: list[dict[str, Any]] = []
        self.faults: dict[str, list[httpx.Response]] = {}
        self.requests: list[tuple[str, int]] = []
        self._ids = itertools.count(1)

    def add_image(
        self,
        image_id: str,
        *,
        status: str = "available",
        hours_ago: float = 1,
        name: str = "",
        tags: dict[str, str] | None = None,
    ) -> None:
        created = datetime.now(UTC) - timedelta(hours=hours_ago)
        self.images[image_id] = {
            "ImageId": image_id,
            "ImageName": name or image_id,
            "Status": status,
            "Visibility": "private",
            "CreatedAt": created.isoformat(),
            "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()],
        }

    def exports(self, image_id: str) -> int:
        return sum(1 for t in self.tasks if t["ResourceId"] == image_id)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        query = dict(parse_qsl(request.url.query.decode(), keep_blank_values=True))
        action = query.get("Action", "")
        problem = verify_signature(
            method=request.method,
            host=request.headers["host"],
            path=request.url.path,
            raw_query=request.url.query.decode(),
            headers=request.headers,
            body=request.content,
            credentials_for=lambda ak: self.credentials if ak == self.credentials.access_key else None,
            region=self.region,
            service="ecs",
        )
        if problem is not None:
            response = _answer(
                action, status=401, code="SignatureDoesNotMatch", message=problem.split(": ", 1)[-1]
            )
        elif self.faults.get(action):
            response = self.faults[action].pop(0)
        else:
            response = getattr(self, f"_{action}")(query)
        self.requests.append((action, response.status_code))
        return response

    def _ExportImage(self, q: dict[str, str]) -> httpx.Response:  # noqa: N802 - named after the action
        image = self.images.get(q.get("ImageId", ""))
        if image is None:
            return _answer("ExportImage", status=404, code="InvalidImage.NotFound")
        if image["Status"] != "available":
            return _answer("ExportImage", status=400, code="InvalidImageStatus")
        task = {
            "Id": f"t-{next(self._ids)}",
            "Type": "ExportImage",
            "Status": "Pending",
            "ResourceId": image["ImageId"],
            "CreatedAt": datetime.now(UTC).isoformat(),
        }
        self.tasks.append(task)
        return _answer("ExportImage", {"TaskId": task["Id"]})

    def _DescribeImages(self, q: dict[str, str]) -> httpx.Response:  # noqa: N802
        ids = [v for k, v in q.items() if k.startswith("ImageIds.")]
        images = [i for i in self.images.values() if not ids or i["ImageId"] in ids]
        if q.get("Status.1"):
            images = [i for i in images if i["Status"] == q["Status.1"]]
        return _answer("DescribeImages", {"Images": images, "NextToken": "", "TotalCount": len(images)})

    def _DescribeTasks(self, q: dict[str, str]) -> httpx.Response:  # noqa: N802
        ids = [v for k, v in q.items() if k.startswith("ResourceIds.")]
        tasks = [t for t in self.tasks if t["ResourceId"] in ids]
        return _answer("DescribeTasks", {"Tasks": tasks, "NextToken": ""})


def fault(action: str, status: int, code: str) -> httpx.Response:
    return _answer(action, status=status, code=code, message=f"injected {code}")
