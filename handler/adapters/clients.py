"""The one place clients are wired: credentials, signer, rate limiter, retry policy, HTTP client.

:func:`build_clients` gives the function's clients under its settings (the entry, the status tool and the
end-to-end tests use it); :func:`openapi_client` is the signed OpenAPI client any service is called with
(the ECS one here, veFaaS for the deployment tool). Nothing is built at import.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import structlog

from handler.adapters.ecs import API_VERSION, SERVICE, EcsClient
from handler.adapters.log import redactor, reset_first_invocation, set_quiet
from handler.adapters.openapi import (
    OpenApiClient,
    reset_shared_state,
    shared_http_client,
    shared_rate_limiter,
)
from handler.adapters.pacing import RateLimiter
from handler.adapters.retry import RetryPolicy
from handler.adapters.signing import Credentials
from handler.clock import SYSTEM_CLOCK, Clock
from handler.models.settings import Settings, _ca_file_loads

if TYPE_CHECKING:
    from handler.adapters.tos import TosClient
    from handler.models.objects import BucketInfo, HeadResult, ListResult, PutResult

__all__ = [
    "Clients",
    "LazyTosClient",
    "build_clients",
    "mask_credentials",
    "openapi_client",
    "reset_process_state",
    "webhook_secrets",
]


@dataclass(frozen=True, slots=True)
class Clients:
    """The function's clients: the ECS actions, the OpenAPI client under them, and TOS when exports are
    tracked (``EXPORT_TRACKING`` not ``off``: the follow-up checks each object)."""

    api: OpenApiClient
    ecs: EcsClient
    store: LazyTosClient | None


def mask_credentials(credentials: Credentials, *, also: Iterable[str] = ()) -> None:
    """Mask the credentials (and ``also``: the webhook's secrets) in every log line from now on."""
    redactor.set_secrets(
        [credentials.secret_key, credentials.session_token, *also], access_key=credentials.access_key
    )


def webhook_secrets(settings: Settings) -> list[str]:
    """The webhook secret, the whole URL and its credential parts (DingTalk token, WeCom key, ...): what
    ``build_clients`` is given to mask beside the credentials."""
    if not settings.webhook_url:
        return [settings.webhook_secret] if settings.webhook_secret else []
    from handler.adapters.webhooks import secret_parts  # noqa: PLC0415 - only when a webhook is set

    return [settings.webhook_url, *secret_parts(settings.webhook_url, settings.webhook_secret)]


def openapi_client(
    credentials: Credentials,
    *,
    service: str,
    version: str,
    endpoint: str,
    region: str,
    policy: RetryPolicy,
    limiter: RateLimiter,
    http: httpx.Client,
    clock: Clock = SYSTEM_CLOCK,
) -> OpenApiClient:
    """A signed OpenAPI client for ``service`` (the caller masks its credentials: ``mask_credentials``)."""
    return OpenApiClient(
        http=http,
        endpoint=endpoint,
        region=region,
        service=service,
        version=version,
        credentials=credentials,
        policy=policy,
        limiter=limiter,
        clock=clock,
    )


def build_clients(
    settings: Settings,
    credentials: Credentials,
    *,
    secrets: Iterable[str] = (),
    http: httpx.Client | None = None,
    clock: Clock = SYSTEM_CLOCK,
    with_store: bool = False,
) -> Clients:
    """The function's clients under ``settings``: the process's shared HTTP client and rate limiters (one
    per service) unless ``http`` is given; TOS when exports are tracked or ``with_store`` (a restore reads
    its manifest). From now on the credentials and ``secrets`` (the webhook's) are masked in every log
    line."""
    mask_credentials(credentials, also=secrets)
    http = http or shared_http_client(
        connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout
    )
    policy = RetryPolicy(settings.max_attempts, settings.backoff_base, settings.backoff_cap)
    api = openapi_client(
        credentials,
        service=SERVICE,
        version=API_VERSION,
        endpoint=settings.endpoint,
        region=settings.region,
        policy=policy,
        limiter=shared_rate_limiter(settings.max_rps),
        http=http,
        clock=clock,
    )
    store = None
    if settings.tracking != "off" or with_store:
        store = LazyTosClient(
            http=http,
            endpoint=settings.tos_origin,
            region=settings.region,
            credentials=credentials,
            policy=policy,
            max_rps=settings.max_rps,
            clock=clock,
        )
    return Clients(api=api, ecs=EcsClient(api), store=store)


class LazyTosClient:
    """The TOS client, built (and its module imported) on the first TOS request: most invocations with
    tracking on (an event's export) never send one, and a cold start should not pay for it."""

    def __init__(
        self,
        *,
        http: httpx.Client,
        endpoint: str,
        region: str,
        credentials: Credentials,
        policy: RetryPolicy,
        max_rps: float,
        clock: Clock,
    ) -> None:
        self._options = (http, endpoint, region, credentials, policy, max_rps, clock)
        self._built: TosClient | None = None

    @property
    def client(self) -> TosClient:
        if self._built is None:
            from handler.adapters.tos import TosClient, shared_tos_rate_limiter  # noqa: PLC0415 - on first use

            http, endpoint, region, credentials, policy, max_rps, clock = self._options
            self._built = TosClient(
                http=http,
                endpoint=endpoint,
                region=region,
                credentials=credentials,
                policy=policy,
                limiter=shared_tos_rate_limiter(max_rps),
                clock=clock,
            )
        return self._built

    def head_object(self, bucket: str, key: str, *, deadline: float) -> HeadResult:
        return self.client.head_object(bucket, key, deadline=deadline)

    def list_objects(
        self, bucket: str, prefix: str, *, deadline: float, max_keys: int = 1000, max_pages: int | None = None
    ) -> ListResult:
        return self.client.list_objects(
            bucket, prefix, deadline=deadline, max_keys=max_keys, max_pages=max_pages
        )

    def get_range(self, bucket: str, key: str, start: int, length: int, *, deadline: float) -> bytes:
        return self.client.get_range(bucket, key, start, length, deadline=deadline)

    def put_object(
        self, bucket: str, key: str, body: bytes, *, content_type: str, deadline: float
    ) -> PutResult:
        return self.client.put_object(bucket, key, body, content_type=content_type, deadline=deadline)

    def delete_object(self, bucket: str, key: str, *, deadline: float) -> None:
        self.client.delete_object(bucket, key, deadline=deadline)

    def head_bucket(self, bucket: str, *, deadline: float) -> BucketInfo:
        return self.client.head_bucket(bucket, deadline=deadline)


def reset_process_state() -> None:
    """Forget everything a warm process keeps between invocations, as a new process would start: the HTTP
    clients (closed), the OpenAPI and TOS rate limiters, the secrets the log masks, the CA-file check's cache,
    structlog's configuration and bound context, a quiet log (``set_quiet``), and that the cold start is over
    (tests; a long-lived host reloading)."""
    from handler.adapters.tos import reset_tos_rate_limiter  # noqa: PLC0415

    reset_shared_state()
    reset_tos_rate_limiter()
    redactor.set_secrets([])
    reset_first_invocation()
    set_quiet(False)
    _ca_file_loads.cache_clear()
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
