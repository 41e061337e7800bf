"""The function's configuration, read from the environment once per invocation and validated as a whole.

Every field's alias is the environment variable that sets it, so a validation error names the variable to fix.
Credentials are not here: they rotate and are resolved on their own (``handler.adapters.credentials``).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from handler.errors import ConfigurationError

__all__ = [
    "BUCKET_PATTERN",
    "PREFIX_PATTERN",
    "Settings",
    "WebhookFormat",
    "is_loopback_host",
]

# TOS bucket names: 3-63 lowercase letters, digits and hyphens, not starting or ending with a hyphen.
BUCKET_PATTERN = re.compile(r"\A[a-z0-9][a-z0-9-]{1,61}[a-z0-9]\Z")
# ExportImage's TOSPrefix: 1-30 letters and digits.
PREFIX_PATTERN = re.compile(r"\A[A-Za-z0-9]{1,30}\Z")

WebhookFormat = Literal["standard", "feishu", "dingtalk", "wecom", "slack"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
NotifyWhen = Literal["all", "changes", "failures"]


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseModel):
    """Everything the environment decides. Field aliases are the variable names (README, configuration)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    region: Annotated[str, Field(alias="VOLCENGINE_REGION", min_length=1)] = "cn-beijing"
    endpoint: Annotated[str, Field(alias="VOLCENGINE_ENDPOINT")] = "https://open.volcengineapi.com"
    tos_bucket: Annotated[str | None, Field(alias="EXPORT_TOS_BUCKET")] = None
    tos_prefix: Annotated[str, Field(alias="EXPORT_TOS_PREFIX")] = "imgexport"

    concurrency: Annotated[int, Field(alias="EXPORT_CONCURRENCY", ge=1, le=32)] = 4
    dedupe_hours: Annotated[float | None, Field(alias="EXPORT_DEDUPE_HOURS", gt=0)] = None
    lookback_hours: Annotated[float, Field(alias="EXPORT_LOOKBACK_HOURS", gt=0)] = 25.0
    function_timeout: Annotated[float, Field(alias="FUNCTION_TIMEOUT_SECONDS", gt=0, le=900)] = 900.0

    max_rps: Annotated[float, Field(alias="VOLCENGINE_MAX_RPS", gt=0, le=1000)] = 10.0
    connect_timeout: Annotated[float, Field(alias="VOLCENGINE_CONNECT_TIMEOUT", gt=0, le=60)] = 3.0
    read_timeout: Annotated[float, Field(alias="VOLCENGINE_READ_TIMEOUT", gt=0, le=300)] = 10.0
    max_attempts: Annotated[int, Field(alias="VOLCENGINE_MAX_ATTEMPTS", ge=1, le=10)] = 4
    backoff_base: Annotated[float, Field(alias="VOLCENGINE_BACKOFF_BASE", gt=0, le=10)] = 0.3
    backoff_cap: Annotated[float, Field(alias="VOLCENGINE_BACKOFF_CAP", gt=0, le=60)] = 5.0

    webhook_url: Annotated[str | None, Field(alias="WEBHOOK_URL")] = None
    webhook_format: Annotated[WebhookFormat | None, Field(alias="WEBHOOK_FORMAT")] = None
    webhook_secret: Annotated[str | None, Field(alias="WEBHOOK_SECRET", repr=False)] = None
    webhook_notify: Annotated[NotifyWhen, Field(alias="WEBHOOK_NOTIFY")] = "changes"

    log_level: Annotated[LogLevel, Field(alias="LOG_LEVEL")] = "INFO"

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_an_origin(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            msg = "expected scheme and host, like https://open.volcengineapi.com"
            raise ValueError(msg)
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            msg = "expected only scheme and host[:port], without a path or query"
            raise ValueError(msg)
        return value.rstrip("/")

    @field_validator("tos_bucket")
    @classmethod
    def _bucket_name(cls, value: str | None) -> str | None:
        if value is not None and not BUCKET_PATTERN.match(value):
            msg = "expected 3-63 lowercase letters, digits or hyphens, no hyphen at either end"
            raise ValueError(msg)
        return value

    @field_validator("tos_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not PREFIX_PATTERN.match(value):
            msg = "expected 1-30 letters and digits"
            raise ValueError(msg)
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if not parts.hostname:
            msg = "expected an https URL"
            raise ValueError(msg)
        if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback_host(parts.hostname)):
            msg = "expected an https URL (plain http only for a loopback receiver)"
            raise ValueError(msg)
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _standard_secret(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("whsec_"):
            try:
                base64.b64decode(value.removeprefix("whsec_"), validate=True)
            except binascii.Error:
                msg = "expected whsec_ followed by base64 (the value is not shown)"
                raise ValueError(msg) from None
        return value

    @model_validator(mode="after")
    def _dedupe_covers_lookback(self) -> Settings:
        if self.dedupe_hours is not None and self.dedupe_hours < self.lookback_hours:
            msg = (
                f"the dedupe window ({self.dedupe_hours:g} h) is shorter than the scan lookback "
                f"({self.lookback_hours:g} h, EXPORT_LOOKBACK_HOURS): one image would be exported twice"
            )
            raise ValueError(msg)
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Validate the environment; an empty variable counts as unset. Errors name the variable."""
        aliases = {f.alias for f in cls.model_fields.values() if f.alias}
        raw = {k: v.strip() for k, v in environ.items() if k in aliases and v.strip()}
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            loc = first["loc"]
            variable = str(loc[0]) if loc else "EXPORT_DEDUPE_HOURS"
            message = first["msg"].removeprefix("Value error, ")
            raise ConfigurationError(message, source=variable) from None

    @property
    def host(self) -> str:
        """The gateway's host[:port], as signed and sent."""
        return urlsplit(self.endpoint).netloc
