"""The function's configuration, read from the environment once per invocation and validated as a whole.

Every field's alias is the environment variable that sets it, so a validation error names the variable to fix.
Credentials are not here: they rotate and are resolved on their own (``handler.adapters.credentials``).
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import os
import re
import ssl
import stat
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, get_args
from urllib.parse import SplitResult, urlsplit

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from handler.errors import ConfigurationError
from handler.models.exported import VerifyLevel
from handler.models.tagging import TAG_KEY_RULE, is_tag_key

__all__ = [
    "BUCKET_PATTERN",
    "CREDENTIAL_VARIABLES",
    "GROUP_BY_NAME",
    "GROUP_BY_TAG",
    "KNOWN_REGIONS",
    "MAX_HOURS",
    "MAX_KEEP",
    "PREFIX_PATTERN",
    "REGION_PATTERN",
    "LogFormat",
    "RetentionMode",
    "Settings",
    "TrackingMode",
    "WebhookFormat",
    "default_tos_endpoint",
    "is_loopback_host",
    "known_variables",
    "standard_webhook_key",
]

# TOS bucket names: 3-63 lowercase letters, digits and hyphens, not starting or ending with a hyphen.
BUCKET_PATTERN = re.compile(r"\A[a-z0-9][a-z0-9-]{1,61}[a-z0-9]\Z")
# ExportImage's TOSPrefix: 1-30 letters and digits.
PREFIX_PATTERN = re.compile(r"\A[A-Za-z0-9]{1,30}\Z")

WebhookFormat = Literal["standard", "feishu", "dingtalk", "wecom", "slack"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
# LOG_FORMAT: one JSON object per line (what the platform's log service reads), or lines for a person.
LogFormat = Literal["json", "console"]
NotifyWhen = Literal["all", "changes", "failures"]
TrackingMode = Literal["tags", "off"]
MAX_IN_FLIGHT_LIMIT = 100_000
# The longest window in hours any setting or event takes: one year.
MAX_HOURS = 8760.0
# A region id as Volcengine writes them: cn-beijing, ap-southeast-1, cn-beijing-autodriving. It becomes part
# of the TOS host name and of the signature scope, so nothing else (a dot, a slash) may pass.
REGION_PATTERN = re.compile(r"\A[a-z]{2}(-[a-z]+)+-?\d*\Z")
# The regions ECS is known to run in (the console's region list; not confirmed by docs/facts.md): another
# region that matches REGION_PATTERN is used as written, with a warning (settings.unknown_region).
KNOWN_REGIONS = (
    "cn-beijing",
    "cn-shanghai",
    "cn-guangzhou",
    "cn-hongkong",
    "ap-southeast-1",
    "ap-southeast-3",
    "cn-beijing-autodriving",
    "cn-shanghai-autodriving",
)
_WHSEC_PREFIX = "whsec_"
# RETENTION_GROUP_BY: exports are grouped by their image's name (less a trailing date, time or counter), or by
# the value of one tag on the image (``tag:KEY``); handler.core.catalogue.group_of holds the rule.
GROUP_BY_NAME = "name"
GROUP_BY_TAG = "tag:"
# RETENTION_MODE: off (the default), plan (report what retention would delete) or apply (delete it).
RetentionMode = Literal["off", "plan", "apply"]
# The most any RETENTION_KEEP_*, RETENTION_MIN_VERIFIED or RETENTION_MAX_DELETES may say.
MAX_KEEP = 10_000


MAX_DRILL_DAYS = 366
# The variables the credentials are read from (handler.adapters.credentials), in the order it reads them: the
# official SDK's key pair and token, the older SDK's key pair, the role's credential file.
CREDENTIAL_VARIABLES = (
    "VOLCENGINE_ACCESS_KEY",
    "VOLCENGINE_SECRET_KEY",
    "VOLCENGINE_SESSION_TOKEN",
    "VOLC_ACCESSKEY",
    "VOLC_SECRETKEY",
    "VOLCENGINE_CREDENTIAL_FILE",
)
# Read beside the settings: the CA bundle (httpx reads it; from_env checks it).
_OTHER_VARIABLES = ("SSL_CERT_FILE",)


def default_tos_endpoint(region: str) -> str:
    """TOS's public endpoint for a region: ``https://tos-<region>.volces.com`` (docs/facts.md §11)."""
    return f"https://tos-{region}.volces.com"


def standard_webhook_key(secret: str) -> bytes:
    """The Standard Webhooks signing key: base64 after ``whsec_`` (padded, as the reference library does,
    since unpadded base64 is common); a secret without the prefix is its UTF-8 bytes.

    Raises ValueError, whose message never holds the secret, when the base64 is broken or the key empty.
    """
    if not secret.startswith(_WHSEC_PREFIX):
        return secret.encode()
    encoded = secret.removeprefix(_WHSEC_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        msg = "expected whsec_ followed by base64"
        raise ValueError(msg) from None
    if not key:
        msg = "expected a non-empty key after whsec_"
        raise ValueError(msg)
    return key


def _port_in_range(parts: SplitResult) -> bool:
    """Whether the URL's port, if it has one, is 1-65535 (``urlsplit`` lets 0 through, and raises beyond)."""
    try:
        port = parts.port
    except ValueError:
        return False
    return port is None or 1 <= port <= 65535


def _split(value: str, expected: str) -> SplitResult:
    """``urlsplit`` whose ValueError (``https://[::1``) says what was expected."""
    try:
        return urlsplit(value)
    except ValueError:
        raise ValueError(expected) from None


def _printable_ascii(value: str) -> bool:
    """Printable ASCII (0x20-0x7E) only, as a header value must be."""
    return all(" " <= char <= "~" for char in value)


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseModel):
    """Everything the environment decides. Field aliases are the variable names (docs/configuration.md)."""

    # allow_inf_nan=False: inf and nan are refused by every number setting, as out of range.
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore", allow_inf_nan=False)

    region: Annotated[str, Field(alias="VOLCENGINE_REGION", min_length=1)] = "cn-beijing"
    endpoint: Annotated[str, Field(alias="VOLCENGINE_ENDPOINT")] = "https://open.volcengineapi.com"
    tos_bucket: Annotated[str | None, Field(alias="EXPORT_TOS_BUCKET")] = None
    tos_prefix: Annotated[str, Field(alias="EXPORT_TOS_PREFIX")] = "imgexport"

    concurrency: Annotated[int, Field(alias="EXPORT_CONCURRENCY", ge=1, le=32)] = 4
    dedupe_hours: Annotated[float | None, Field(alias="EXPORT_DEDUPE_HOURS", gt=0, le=MAX_HOURS)] = None
    lookback_hours: Annotated[float, Field(alias="EXPORT_LOOKBACK_HOURS", gt=0, le=MAX_HOURS)] = 25.0
    function_timeout: Annotated[float | None, Field(alias="FUNCTION_TIMEOUT_SECONDS", gt=0, le=900)] = None

    max_rps: Annotated[float, Field(alias="VOLCENGINE_MAX_RPS", ge=0.1, le=1000)] = 10.0
    connect_timeout: Annotated[float, Field(alias="VOLCENGINE_CONNECT_TIMEOUT", gt=0, le=60)] = 3.0
    read_timeout: Annotated[float, Field(alias="VOLCENGINE_READ_TIMEOUT", gt=0, le=300)] = 10.0
    max_attempts: Annotated[int, Field(alias="VOLCENGINE_MAX_ATTEMPTS", ge=1, le=10)] = 4
    backoff_base: Annotated[float, Field(alias="VOLCENGINE_BACKOFF_BASE", gt=0, le=10)] = 0.3
    backoff_cap: Annotated[float, Field(alias="VOLCENGINE_BACKOFF_CAP", gt=0, le=60)] = 5.0

    webhook_url: Annotated[str | None, Field(alias="WEBHOOK_URL")] = None
    webhook_format: Annotated[WebhookFormat | None, Field(alias="WEBHOOK_FORMAT")] = None
    webhook_secret: Annotated[str | None, Field(alias="WEBHOOK_SECRET", repr=False)] = None
    webhook_notify: Annotated[NotifyWhen, Field(alias="WEBHOOK_NOTIFY")] = "changes"
    # At most this many results in a standard notice's body (the rest are counted; the log has them all).
    webhook_max_results: Annotated[int, Field(alias="WEBHOOK_MAX_RESULTS", ge=1, le=10_000)] = 500

    log_level: Annotated[LogLevel, Field(alias="LOG_LEVEL")] = "INFO"
    log_format: Annotated[LogFormat, Field(alias="LOG_FORMAT")] = "json"

    tracking: Annotated[TrackingMode, Field(alias="EXPORT_TRACKING")] = "tags"
    max_in_flight: Annotated[int | None, Field(alias="EXPORT_MAX_IN_FLIGHT")] = None
    # How long a claim is left before it is read back (handler.core.claims): above twice the time a tag takes
    # to read back, and the clock difference between two copies, each.
    claim_settle: Annotated[float, Field(alias="EXPORT_CLAIM_SETTLE_SECONDS", ge=0.05, le=30)] = 2.0
    # How long after a first "no object" answer a follow-up may call an export's object missing for good.
    missing_confirm: Annotated[float, Field(alias="EXPORT_MISSING_CONFIRM_SECONDS", ge=0, le=86400)] = 300.0
    tos_endpoint: Annotated[str | None, Field(alias="TOS_ENDPOINT")] = None
    # How a finished export is checked before it counts as exported (handler.core.verification).
    verify: Annotated[VerifyLevel, Field(alias="EXPORT_VERIFY")] = "structure"
    # Prove exports restorable: a timer imports one back at most every this many days (unset: no drill).
    drill_days: Annotated[int | None, Field(alias="RESTORE_DRILL_DAYS")] = None
    # What makes exports one group, for retention and the restore drill: name, or tag:KEY.
    retention_group_by: Annotated[str, Field(alias="RETENTION_GROUP_BY")] = GROUP_BY_NAME
    # Retention (handler.core.retention_rules): which exports of a group stay, and how many go per run.
    retention_mode: Annotated[RetentionMode, Field(alias="RETENTION_MODE")] = "off"
    keep_last: Annotated[int, Field(alias="RETENTION_KEEP_LAST", ge=0, le=MAX_KEEP)] = 7
    keep_daily: Annotated[int, Field(alias="RETENTION_KEEP_DAILY", ge=0, le=MAX_KEEP)] = 0
    keep_weekly: Annotated[int, Field(alias="RETENTION_KEEP_WEEKLY", ge=0, le=MAX_KEEP)] = 0
    keep_monthly: Annotated[int, Field(alias="RETENTION_KEEP_MONTHLY", ge=0, le=MAX_KEEP)] = 0
    min_verified: Annotated[int, Field(alias="RETENTION_MIN_VERIFIED", ge=1, le=MAX_KEEP)] = 2
    max_deletes: Annotated[int, Field(alias="RETENTION_MAX_DELETES", ge=1, le=MAX_KEEP)] = 10

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not REGION_PATTERN.match(value):
            msg = (
                "expected a region id (lowercase letters joined by '-', maybe a number last), like cn-beijing"
            )
            raise ValueError(msg)
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_an_origin(cls, value: str) -> str:
        expected = "expected scheme and host[:port], like https://open.volcengineapi.com"
        parts = _split(value, expected)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            msg = "expected scheme and host, like https://open.volcengineapi.com"
            raise ValueError(msg)
        if not _port_in_range(parts):
            msg = "expected a port from 1 to 65535"
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
        parts = _split(value, "expected an https URL, like https://hooks.example.com/path")
        if not parts.hostname:
            msg = "expected an https URL"
            raise ValueError(msg)
        if not _port_in_range(parts):
            msg = "expected an https URL whose port is from 1 to 65535"
            raise ValueError(msg)
        if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback_host(parts.hostname)):
            msg = "expected an https URL (plain http only for a loopback receiver)"
            raise ValueError(msg)
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _standard_secret(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _printable_ascii(value):
            msg = "expected printable ASCII only (0x20-0x7E): it signs what is sent in a header"
            raise ValueError(msg)
        standard_webhook_key(value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("webhook_format", "webhook_notify", "log_format", mode="before")
    @classmethod
    def _choice_in_any_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _dedupe_covers_lookback(self) -> Settings:
        if self.dedupe_hours is not None and self.dedupe_hours < self.lookback_hours:
            msg = (
                f"expected at least the scan lookback, EXPORT_LOOKBACK_HOURS={self.lookback_hours:g} "
                "(a shorter dedupe window would export one image twice)"
            )
            raise ValueError(msg)
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Validate the environment; an empty variable counts as unset. Errors name the variable and read
        ``VARIABLE: expected …, got '…'`` (a secret's value is never shown). ``SSL_CERT_FILE``, when set,
        must name a readable file of PEM certificates; retention, when on, must keep something by rule and
        (``apply``) see the exports in flight by their tags."""
        aliases = {f.alias for f in cls.model_fields.values() if f.alias}
        raw = {k: v.strip() for k, v in environ.items() if k in aliases and v.strip()}
        try:
            settings = cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            variable = str(first["loc"][0]) if first["loc"] else "EXPORT_DEDUPE_HOURS"
            shown = _shown(variable, raw.get(variable, ""))
            raise ConfigurationError(f"{_expected(first, variable)}, got {shown}", source=variable) from None
        _check_retention(settings)
        _check_ca_file(environ.get("SSL_CERT_FILE", "").strip())
        return settings

    @property
    def region_known(self) -> bool:
        """Whether the region is one of ``KNOWN_REGIONS`` (another is used as written; the entry warns)."""
        return self.region in KNOWN_REGIONS

    @property
    def host(self) -> str:
        """The gateway's host[:port], as signed and sent."""
        return urlsplit(self.endpoint).netloc

    @property
    def tos_origin(self) -> str:
        """TOS's scheme + host[:port]: ``TOS_ENDPOINT``, else ``https://tos-<region>.volces.com``."""
        return self.tos_endpoint or default_tos_endpoint(self.region)

    @field_validator("tracking", mode="before")
    @classmethod
    def _tracking(cls, value: object) -> object:
        return _one_of(value, ("tags", "off"), "expected tags or off")

    @field_validator("verify", mode="before")
    @classmethod
    def _verify(cls, value: object) -> object:
        expected = "expected structure (read each object's qcow2 structure), head (the objects exist) or off"
        return _one_of(value, get_args(VerifyLevel), expected)

    @field_validator("retention_group_by", mode="before")
    @classmethod
    def _group_by(cls, value: object) -> object:
        """``name`` (in any case), or ``tag:KEY`` (``tag`` in any case, the key as written: keys are exact)."""
        text = str(value)
        if text.lower() == GROUP_BY_NAME:
            return GROUP_BY_NAME
        head, colon, key = text.partition(":")
        if colon and head.lower() == GROUP_BY_TAG.rstrip(":") and is_tag_key(key):
            return GROUP_BY_TAG + key
        msg = f"expected name, or tag:KEY with KEY a tag key ({TAG_KEY_RULE})"
        raise ValueError(msg)

    @field_validator("retention_mode", mode="before")
    @classmethod
    def _retention_mode(cls, value: object) -> object:
        expected = "expected off, plan (report what retention would delete) or apply (delete it)"
        return _one_of(value, get_args(RetentionMode), expected)

    @field_validator("max_in_flight", mode="before")
    @classmethod
    def _max_in_flight(cls, value: object) -> object:
        expected = f"expected a whole number from 1 to {MAX_IN_FLIGHT_LIMIT}, or unset for no cap"
        return _whole_or_unset(value, MAX_IN_FLIGHT_LIMIT, expected)

    @field_validator("drill_days", mode="before")
    @classmethod
    def _drill_days(cls, value: object) -> object:
        expected = (
            f"expected a whole number of days from 1 to {MAX_DRILL_DAYS}, or unset for no restore drill"
        )
        return _whole_or_unset(value, MAX_DRILL_DAYS, expected)

    @field_validator("tos_endpoint")
    @classmethod
    def _tos_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = _split(value, "expected scheme and host[:port], like https://tos-cn-beijing.volces.com")
        if parts.username is not None or parts.password is not None:
            msg = "expected scheme and host[:port] without credentials"
            raise ValueError(msg)
        origin = parts.scheme in ("http", "https") and bool(parts.hostname) and _port_in_range(parts)
        if not origin or parts.path not in ("", "/") or parts.query or parts.fragment:
            msg = "expected scheme and host[:port], like https://tos-cn-beijing.volces.com"
            raise ValueError(msg)
        return value.rstrip("/")


def _one_of(value: object, choices: Iterable[str], expected: str) -> str:
    """A choice in any case and without surrounding spaces, as the choice's own spelling; ``expected`` (the
    error's words) when it is none of them."""
    text = str(value).strip().lower()
    if text not in choices:
        raise ValueError(expected)
    return text


def _whole_or_unset(value: object, most: int, expected: str) -> int | None:
    """A whole number from 1 to ``most`` (digits only, surrounding spaces allowed), or None when unset."""
    if value is None:
        return None
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= most:
        raise ValueError(expected)
    return int(text)


def known_variables() -> frozenset[str]:
    """Every environment variable the function reads: the settings' (their fields' aliases), the credentials'
    and ``SSL_CERT_FILE``."""
    aliases = {field.alias for field in Settings.model_fields.values() if field.alias}
    return frozenset({*aliases, *CREDENTIAL_VARIABLES, *_OTHER_VARIABLES})


# --- error wording -----------------------------------------------------------------------------------------

_SECRET_VARIABLES = frozenset({"WEBHOOK_SECRET"})
_URL_VARIABLES = frozenset({"VOLCENGINE_ENDPOINT", "TOS_ENDPOINT"})
_SHOWN_CHARS = 40


def _shown(variable: str, value: str) -> str:
    """The bad value as an error shows it: quoted, on one line, cut short; a secret is never shown, and a
    webhook URL only as far as its host (its path and query may be the credential)."""
    if variable in _SECRET_VARIABLES:
        return "a value not shown here (it is a secret)"
    try:
        parts = urlsplit(value)
    except ValueError:  # https://[::1 and the like: shown as far as the scheme, like any unreadable URL
        parts = urlsplit("")
    if variable in _URL_VARIABLES and "@" in value:
        # user:password@ in an endpoint is a credential: only the scheme and host are shown.
        value = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}" if parts.netloc else value[:8] + "…"
    if variable == "WEBHOOK_URL":
        if parts.scheme and parts.netloc:
            host = parts.netloc.rpartition("@")[2]
            value = f"{parts.scheme}://{host}/…" if parts.path or parts.query else f"{parts.scheme}://{host}"
        else:
            value = value[:8] + "…" if len(value) > 8 else value
    flat = "".join(char if char.isprintable() else "?" for char in value)
    return "'" + (flat if len(flat) <= _SHOWN_CHARS else flat[: _SHOWN_CHARS - 1] + "…") + "'"


# Pydantic's number errors: each is answered with the field's kind of number and its range.
_NUMBER_KINDS = frozenset(
    {
        "int_parsing",
        "int_parsing_size",
        "int_type",
        "int_from_float",
        "float_parsing",
        "float_type",
        "finite_number",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
    }
)


def _range_of(variable: str) -> str:
    """``from 1 to 32``, ``above 0, at most 900``: the bounds the variable's field declares."""
    field = next((f for f in Settings.model_fields.values() if f.alias == variable), None)
    words: list[str] = []
    for bound in field.metadata if field is not None else ():
        if isinstance(bound, annotated_types.Gt):
            words.append(f"above {_plain(bound.gt)}")
        elif isinstance(bound, annotated_types.Ge):
            words.append(f"at least {_plain(bound.ge)}")
        elif isinstance(bound, annotated_types.Lt):
            words.append(f"below {_plain(bound.lt)}")
        elif isinstance(bound, annotated_types.Le):
            words.append(f"at most {_plain(bound.le)}")
    return " " + ", ".join(words) if words else ""


def _plain(bound: object) -> str:
    """A bound as written in the docs: ``8760``, not ``8760.0``."""
    return str(int(bound)) if isinstance(bound, float) and bound.is_integer() else str(bound)


def _expected(error: ErrorDetails, variable: str) -> str:
    """The ``expected …`` half of a setting's error, whatever pydantic reported."""
    kind = error["type"]
    if kind == "value_error":
        return error["msg"].removeprefix("Value error, ")
    if kind == "literal_error":
        ctx: dict[str, Any] = dict(error.get("ctx") or {})
        return f"expected one of {ctx.get('expected', '')} (in any case)"
    if kind in _NUMBER_KINDS:
        whole = Settings.model_fields[_field_name(variable)].annotation is int
        return f"expected {'a whole number' if whole else 'a number'}{_range_of(variable)}"
    return error["msg"].replace("Input should be", "expected")


def _field_name(variable: str) -> str:
    return next(name for name, f in Settings.model_fields.items() if f.alias == variable)


def _check_retention(settings: Settings) -> None:
    """Retention's settings that only make sense together: a policy that keeps something by rule (restic
    refuses an empty policy, Kopia reads one as "keep everything": neither is what a zero means here), and
    tags to see the exports in flight by before anything is deleted."""
    if settings.retention_mode == "off":
        return
    rules = (settings.keep_last, settings.keep_daily, settings.keep_weekly, settings.keep_monthly)
    if not any(rules):
        msg = (
            "expected at least one of RETENTION_KEEP_LAST, RETENTION_KEEP_DAILY, RETENTION_KEEP_WEEKLY and "
            f"RETENTION_KEEP_MONTHLY above 0 while RETENTION_MODE is {settings.retention_mode}, got 0 for all"
        )
        raise ConfigurationError(msg, source="RETENTION_KEEP_LAST")
    if settings.retention_mode == "apply" and settings.tracking == "off":
        msg = (
            "expected plan or off while EXPORT_TRACKING is off, got 'apply': retention deletes nothing in a "
            "group with an export in flight, and without the tags those exports cannot be seen"
        )
        raise ConfigurationError(msg, source="RETENTION_MODE")


# The largest SSL_CERT_FILE read: a system's whole CA bundle is about 200 KB.
MAX_CA_FILE_BYTES = 4 * 1024 * 1024


@functools.lru_cache(maxsize=8)
def _ca_file_loads(path: str, _mtime_ns: int, _size: int) -> str | None:
    """Why the CA file cannot be used (``None`` when it can); cached for an unchanged file."""
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError:
        return "it holds no PEM certificate"
    except (OSError, ValueError) as error:
        return f"it cannot be read ({getattr(error, 'strerror', None) or type(error).__name__})"
    return None


def _check_ca_file(path: str) -> None:
    """``SSL_CERT_FILE`` must name a readable file of PEM certificates (httpx loads it to trust the
    gateway): a missing or broken one is a ConfigurationError here rather than a crash on the first call."""
    if not path:
        return
    try:
        status = os.stat(path)
    except OSError as error:
        reason = (
            "no such file" if isinstance(error, FileNotFoundError) else error.strerror or "cannot be read"
        )
        msg = f"expected a file of PEM CA certificates, got {_shown('SSL_CERT_FILE', path)} ({reason})"
        raise ConfigurationError(msg, source="SSL_CERT_FILE") from None
    if not stat.S_ISREG(status.st_mode):
        msg = (
            f"expected a file of PEM CA certificates, got {_shown('SSL_CERT_FILE', path)}: not a regular file "
            "(a directory, a FIFO or a device)"
        )
        raise ConfigurationError(msg, source="SSL_CERT_FILE")
    if status.st_size > MAX_CA_FILE_BYTES:
        msg = (
            f"expected a file of PEM CA certificates, got {_shown('SSL_CERT_FILE', path)}: "
            f"{status.st_size:,} bytes, more than the {MAX_CA_FILE_BYTES:,} a CA bundle needs"
        )
        raise ConfigurationError(msg, source="SSL_CERT_FILE")
    problem = _ca_file_loads(path, status.st_mtime_ns, status.st_size)
    if problem is not None:
        msg = f"expected a file of PEM CA certificates, got {_shown('SSL_CERT_FILE', path)}: {problem}"
        raise ConfigurationError(msg, source="SSL_CERT_FILE")
