"""The entry's HTTP-edge tests talk to the ECS emulator in-process: its gateway served through respx by its
``httpx.MockTransport`` (``OpenApiEmulator.transport()``), at a public-looking endpoint.

The same signature checks, API errors and state as the emulator over a socket; this module only records
the (action, status) of each call and lets a test replace a dropped answer's error with its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl

import httpx

from exporter_tools.emulator.ecs import EcsEmulator
from exporter_tools.emulator.fleet import Fleet, FleetBucket
from handler.adapters.signing import Credentials
from tests.support.builders import fleet_image

__all__ = ["ENDPOINT", "HOST", "Gateway"]

HOST = "ecs.test.volcengineapi.com"
ENDPOINT = f"https://{HOST}"


class Gateway:
    """An ``EcsEmulator`` with no images and one writable bucket, ``demo-exports``, answering in-process.

    Use it as respx's side effect for ``HOST``. ``emulator`` is the whole emulator (``fail_next``,
    ``drop_next``, ``stats``…); ``lost_answer`` is raised instead of the emulator's ``httpx.ReadError`` when
    it drops an answer."""

    def __init__(self, credentials: Credentials, region: str = "cn-beijing") -> None:
        fleet = Fleet(buckets=(FleetBucket(name="demo-exports"),))
        self.emulator = EcsEmulator(fleet, credentials=credentials, region=region, seed=11)
        self._transport = self.emulator.transport()
        self.requests: list[tuple[str, int]] = []
        self.lost_answer: Exception | None = None

    @property
    def credentials(self) -> tuple[Credentials, ...]:
        """The key pairs the emulator accepts."""
        return self.emulator.credentials

    @credentials.setter
    def credentials(self, keys: Credentials | Iterable[Credentials]) -> None:
        self.emulator.credentials = keys

    def add_image(
        self,
        image_id: str,
        *,
        status: str = "available",
        hours_ago: float = 1,
        name: str = "",
        tags: dict[str, str] | None = None,
    ) -> None:
        """Put a private image in the account; a ``creating`` one stays creating."""
        self.emulator.ecs.add_image(
            fleet_image(image_id, status=status, hours_ago=hours_ago, name=name, tags=tags or {})
        )

    def exports(self, image_id: str) -> int:
        """How many export tasks ExportImage created for the image."""
        return self.emulator.export_tasks_by_image().get(image_id, 0)

    def close(self) -> None:
        self.emulator.close()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        action = dict(parse_qsl(request.url.query.decode(), keep_blank_values=True)).get("Action", "")
        try:
            response = self._transport.handle_request(request)
        except httpx.ReadError:
            self.requests.append((action, 0))
            if self.lost_answer is not None:
                raise self.lost_answer from None
            raise
        response.read()
        self.requests.append((action, response.status_code))
        return response
