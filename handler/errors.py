"""Every error the exporter raises, as one small tree, and the one table of the error codes it reacts to.

::

    ExporterError
    ├── InvalidEvent              the event is malformed; the message names the field (never retried)
    ├── ConfigurationError        the environment or a credential file is wrong; names the variable or file
    │   └── NoCredentials         no credential source is set at all
    ├── ListingTruncated          a scan's listing reached the most pages a scan reads: narrow the scan
    ├── BudgetExhausted           the time budget ran out before a call could start: nothing sent, retry later
    ├── ClearanceExpired          an ExportImage attempt would go out on a task look-up older than the
    │                             clearance window (a Retry-After, a backoff, the rate limit): not sent; the
    │                             image's tasks are looked up again before another attempt
    ├── ClaimTooSlow              a claim's tags were read and written too far apart to be safe: not held,
    │                             the export is reported by a later run
    ├── ExportEndedBadly          the follow-up found an export started earlier ended badly (export_failed)
    │   ├── ExportTaskFailed          its ExportImage task Failed
    │   ├── ExportObjectMissing       its task Succeeded but no object is at its key
    │   ├── ExportObjectCorrupt       its object is there but cannot be a usable export
    │   └── ImageDeleted              its source image was deleted before the export's end could be checked
    ├── RestoreRefused            a restore cannot start: no verified export, or its manifest cannot say how
    │   ├── NoVerifiedExport          no manifest of a verified export of the image under the prefix
    │   └── ManifestUnusable          the manifest cannot be read, or lacks what ImportImage needs
    ├── RestoreEndedBadly         a restore or drill started earlier ended badly (restore_failed)
    │   ├── ImportTaskFailed          its ImportImage task Failed, or its image ended in status error
    │   └── DrillTimedOut             a drill image was still not restored 24 hours after it was made
    └── ApiError                  the OpenAPI answered with an error, or did not answer at all
        ├── TerminalApiError      the same request can never succeed: fix the input, the keys or the access
        │   ├── ImageNotReady         InvalidImageStatus: the image's status does not allow an export (yet)
        │   ├── ImageNotFound         InvalidImage.NotFound
        │   ├── ImageNotExportable    InvalidImageForExportImage.UnSupported
        │   ├── InvalidParameter      InvalidTOSPrefix.Malformed, MissingParameter.*
        │   ├── BucketNotFound        InvalidTOSBucket.NotFound, TOS's NoSuchBucket
        │   ├── ObjectNotFound        TOS's NoSuchKey: a read found no object under the key
        │   ├── RangeNotSatisfiable   TOS's InvalidRange (HTTP 416): the object ends before the range
        │   ├── BucketAccessDenied    InvalidTosPutObject.AccessDenied
        │   ├── AuthenticationFailed  InvalidTimestamp, InvalidAccessKey, SignatureDoesNotMatch,
        │   │                         InvalidSecretToken, and TOS's RequestTimeTooSkewed, InvalidAccessKeyId,
        │   │                         InvalidSecurityToken
        │   └── AccessDenied          AccessDenied
        │       └── TosAccessDenied       TosAccessDenied.<Action>: TOS refused the function's role
        ├── RetryableApiError     nothing was started, sending again is safe: 5xx, transport before send
        │   ├── ServerError           InternalError, ServiceUnavailable
        │   ├── ResourceLocked        OperationDenied.ResourceLocked: busy (maybe with our own export); a write
        │   │                         is never resent over it, the image's tasks say what holds it
        │   └── Throttled             FlowLimitExceeded / HTTP 429: slow down, then send again
        └── UnknownOutcomeError   the request was sent and no answer came back (read timeout, reset):
                                  for a write, look the effect up before sending it again

``ERROR_CODES`` is the one table: each code the exporter reacts to (the ExportImage API's error table and the
gateway's codes, docs/facts.md §1 and §2; TOS's, §11 and §15; then the transport's and the exporter's own)
with its class and the one line that tells a person what to do. ``api_error_for`` reads it to type an
answer; ``fix_for`` reads it for the advice a result or a webhook shows. ``ErrorInfo.code`` stays the
API's string: the class decides, the string is what the user looks up. One exception: TOS answers a 403
``AccessDenied`` whatever it refused, so the TOS client codes it ``TosAccessDenied.<Action>``, whose fix
names the permission to grant.

Inner code raises these; the entry point catches them once and turns them into results. Messages never
carry a credential: they name the variable, the file or the field instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = [
    "ERROR_CODES",
    "TOS_PERMISSIONS",
    "AccessDenied",
    "ApiError",
    "AuthenticationFailed",
    "BucketAccessDenied",
    "BucketNotFound",
    "BudgetExhausted",
    "ClaimTooSlow",
    "ClearanceExpired",
    "ConfigurationError",
    "DrillTimedOut",
    "ErrorCode",
    "ExportEndedBadly",
    "ExportObjectCorrupt",
    "ExportObjectMissing",
    "ExportTaskFailed",
    "ExporterError",
    "ImageDeleted",
    "ImageNotExportable",
    "ImageNotFound",
    "ImageNotReady",
    "ImportTaskFailed",
    "InvalidEvent",
    "InvalidParameter",
    "InvocationIncomplete",
    "ListingTruncated",
    "MalformedResponse",
    "ManifestUnusable",
    "NoCredentials",
    "NoVerifiedExport",
    "ObjectNotFound",
    "RangeNotSatisfiable",
    "ResourceLocked",
    "RestoreEndedBadly",
    "RestoreRefused",
    "RetryableApiError",
    "ServerError",
    "TerminalApiError",
    "Throttled",
    "TosAccessDenied",
    "UnknownOutcomeError",
    "api_error_for",
    "error_for",
    "fix_for",
]


class ExporterError(Exception):
    """Base of every error the exporter raises on purpose."""

    code: str = "ExporterError"
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidEvent(ExporterError):
    """The event cannot be understood; ``field`` says where (a dotted path, ``""`` for the whole event).
    ``trigger`` and ``event_id`` are what the parser recognised of the event all the same, for the result."""

    code = "InvalidEvent"

    def __init__(
        self, message: str, *, field: str = "", trigger: str | None = None, event_id: str | None = None
    ) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.trigger = trigger
        self.event_id = event_id


class ConfigurationError(ExporterError):
    """The deployment is misconfigured; ``source`` names the variable or file to fix."""

    code = "ConfigurationError"

    def __init__(self, message: str, *, source: str = "") -> None:
        super().__init__(f"{source}: {message}" if source else message)
        self.source = source


class NoCredentials(ConfigurationError):
    """No credential source is set at all (neither variable pair nor a credential file)."""


class ListingTruncated(ExporterError):
    """A scan's listing reached the most pages a scan reads (``MAX_SCAN_PAGES``) with more to come: the
    scan goes on with the images it read; running it again reads the same pages."""

    code = "ListingTruncated"


class BudgetExhausted(ExporterError):
    """The invocation's time budget ran out before the call could be made: nothing was sent, do it later."""

    code = "TimeBudgetExhausted"
    retryable = True


class ClaimTooSlow(ExporterError):
    """Claims were written too long after their images' tags were read (the API answered slowly): another
    copy's claim could have landed unseen in between, so they are not held; a later run reports the exports."""

    code = "ClaimTooSlow"
    retryable = True


class ClearanceExpired(ExporterError):
    """A write cleared by a look-up (ExportImage, by its image's DescribeTasks) would have gone out after that
    look-up grew older than the clearance window: a Retry-After, a backoff or the rate limit held it that
    long. It was not sent; look again before sending. ``late_by``: how many seconds past the window it would
    have gone out; ``cause``: the failure whose wait ran past it (None: the rate limit held it)."""

    code = "ClearanceExpired"
    retryable = True

    def __init__(self, message: str, *, late_by: float, cause: ApiError | None = None) -> None:
        super().__init__(message)
        self.late_by = late_by
        self.cause = cause


class ExportEndedBadly(ExporterError):
    """An export started by an earlier run ended without a usable object (an ``export_failed`` result).
    Re-running the invocation does not help; naming the image in an event exports it again."""


class ExportTaskFailed(ExportEndedBadly):
    """The export's task Failed (DescribeTasks gives no reason)."""

    code = "ExportTaskFailed"


class ExportObjectMissing(ExportEndedBadly):
    """The export's task Succeeded (or is no longer listed) but TOS has no object at its key."""

    code = "ExportObjectMissing"


class ExportObjectCorrupt(ExportEndedBadly):
    """The export's object is in TOS but cannot be a usable export (too small for a system disk)."""

    code = "ExportObjectCorrupt"


class ImageDeleted(ExportEndedBadly):
    """The export's source image was deleted while its task had not ended, or once DescribeTasks no longer
    listed it: how the export ended cannot be known."""

    code = "ImageDeleted"


class RestoreRefused(ExporterError):
    """A restore cannot start from what is in the bucket; the message says what is missing."""


class NoVerifiedExport(RestoreRefused):
    """The image has no manifest of a verified export under the bucket and prefix."""

    code = "NoVerifiedExport"


class ManifestUnusable(RestoreRefused):
    """The export's manifest cannot be read or parsed, or lacks a value ImportImage requires."""

    code = "ManifestUnusable"


class RestoreEndedBadly(ExporterError):
    """A restore (or a restore drill) started by an earlier run ended without a usable image."""


class ImportTaskFailed(RestoreEndedBadly):
    """The import's task Failed, or its image ended in status ``error`` (ECS gives no reason)."""

    code = "ImportTaskFailed"


class DrillTimedOut(RestoreEndedBadly):
    """A drill's image was not restored within 24 hours: it was deleted rather than left behind."""

    code = "DrillTimedOut"


class ApiError(ExporterError):
    """An OpenAPI call failed. ``code`` is the API's error code (or a transport name like ``ReadTimeout``)."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        http_status: int | None = None,
        request_id: str | None = None,
        action: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
        self.request_id = request_id
        self.action = action
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f" ({self.action}, HTTP {self.http_status})" if self.http_status else f" ({self.action})"
        return f"{self.code}: {self.message}{where if self.action else ''}"


class TerminalApiError(ApiError):
    """Sending the same request again cannot succeed: fix the input, the credentials or the permissions."""

    retryable = False


class RetryableApiError(ApiError):
    """Nothing was started; the same request may succeed later."""

    retryable = True


class UnknownOutcomeError(ApiError):
    """The request left us but no answer arrived: it may or may not have taken effect."""

    retryable = True


class Throttled(RetryableApiError):
    """The API is rate limiting us (HTTP 429, ``FlowLimitExceeded``)."""


class ServerError(RetryableApiError):
    """The API failed on its side (``InternalError``, ``ServiceUnavailable``): a later attempt may work."""


class ResourceLocked(RetryableApiError):
    """``OperationDenied.ResourceLocked``: another operation (maybe our own export) holds the image. Reads may
    retry; a write is never sent again over it: only the image's tasks can tell what holds it."""


class MalformedResponse(UnknownOutcomeError):
    """An answer arrived but cannot be read (too big, nested too deep, not the API's shape): for a write,
    whether it took effect is unknown, as when no answer came."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "MalformedResponse",
        http_status: int | None = None,
        request_id: str | None = None,
        action: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            code=code,
            http_status=http_status,
            request_id=request_id,
            action=action,
            retry_after=retry_after,
        )


class ImageNotReady(TerminalApiError):
    """``InvalidImageStatus``: the image's status does not allow an export; DescribeImages tells whether that
    is for now (still creating) or for good."""


class ImageNotFound(TerminalApiError):
    """``InvalidImage.NotFound``: no such image in this region."""


class ImageNotExportable(TerminalApiError):
    """``InvalidImageForExportImage.UnSupported``: only private custom images can be exported."""


class InvalidParameter(TerminalApiError):
    """A parameter is malformed or missing (``InvalidTOSPrefix.Malformed``, ``MissingParameter.*``)."""


class BucketNotFound(TerminalApiError):
    """``InvalidTOSBucket.NotFound`` (ECS) or ``NoSuchBucket`` (TOS): no such TOS bucket."""


class ObjectNotFound(TerminalApiError):
    """``NoSuchKey``: TOS has no object under the key a read named."""


class RangeNotSatisfiable(TerminalApiError):
    """``InvalidRange`` (HTTP 416): the object ends before the range a read asked for."""


class BucketAccessDenied(TerminalApiError):
    """``InvalidTosPutObject.AccessDenied``: ECS may not write to the bucket."""


class AuthenticationFailed(TerminalApiError):
    """The gateway refused the signature, the key, the token or the request's time."""


class AccessDenied(TerminalApiError):
    """The gateway knows the caller, who lacks a permission for the action."""


class TosAccessDenied(AccessDenied):
    """TOS refused the function's role an action (HTTP 403, ``AccessDenied``); the code names the action
    (``TosAccessDenied.PutObject``), so that its fix names the permission to grant."""


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One row of the table: the class a code becomes, what to do about it, and who says it.

    ``source``: ``api`` (the ExportImage API's error table), ``gateway`` (any OpenAPI action), ``tos`` (TOS's
    answers; a 403 is coded by the action it refused), ``transport`` (the HTTP exchange itself) or
    ``exporter`` (the exporter's own errors). Only ``api``, ``gateway`` and ``tos`` codes type an answer;
    the others are listed for their advice."""

    kind: type[ExporterError]
    fix: str
    source: Literal["api", "gateway", "tos", "transport", "exporter"]

    @property
    def retryable(self) -> bool:
        """Whether the class lets the same request (or a later run) try again."""
        return self.kind.retryable


_RETRY_LATER = "nothing to do: a later run retries it"
_THROTTLED = "the API is throttling: a later run retries it; lower VOLCENGINE_MAX_RPS if it persists"
_UNREACHABLE = (
    "check the endpoint the message names (VOLCENGINE_ENDPOINT or TOS_ENDPOINT) and the network access to it; "
    "a later run retries it"
)
_ANSWER_LOST = "no answer came: a later run checks whether the export started before retrying"
_BAD_KEYS = "check the access key (VOLCENGINE_ACCESS_KEY or the function's role)"
_REFRESH_STS = "refresh the STS token (VOLCENGINE_SESSION_TOKEN or the role's credential file)"
_TOS_GRANT = "grant the function's role {} on the bucket (IAM policy)"
# The IAM permission each TOS action the function sends needs (a listing needs tos:ListBucket).
TOS_PERMISSIONS: Mapping[str, str] = MappingProxyType(
    {
        "GetObject": "tos:GetObject",
        "ListObjects": "tos:ListBucket",
        "PutObject": "tos:PutObject",
        "DeleteObject": "tos:DeleteObject",
        "HeadBucket": "tos:HeadBucket",
    }
)

# Every error code the exporter reacts to. A code not listed is typed by its HTTP status (see api_error_for).
ERROR_CODES: Mapping[str, ErrorCode] = MappingProxyType(
    {
        # The ExportImage API's error table (docs/facts.md §1)
        "InvalidImageForExportImage.UnSupported": ErrorCode(
            ImageNotExportable, "this image cannot be exported: only private custom images can", "api"
        ),
        "InvalidImageStatus": ErrorCode(
            ImageNotReady, "wait until the image is available; a later run exports it", "api"
        ),
        "InvalidTOSPrefix.Malformed": ErrorCode(
            InvalidParameter,
            "set EXPORT_TOS_PREFIX (or the event's TOSPrefix) to 1-30 letters and digits",
            "api",
        ),
        "InvalidTosPutObject.AccessDenied": ErrorCode(
            BucketAccessDenied, "grant ECS tos:PutObject on the bucket (IAM policy)", "api"
        ),
        "MissingParameter.ImageId": ErrorCode(
            InvalidParameter, "name the image in the event as ImageId", "api"
        ),
        "MissingParameter.TOSBucket": ErrorCode(
            InvalidParameter, "set EXPORT_TOS_BUCKET or the event's TOSBucket", "api"
        ),
        "MissingParameter.TOSPrefix": ErrorCode(
            InvalidParameter, "set EXPORT_TOS_PREFIX or the event's TOSPrefix", "api"
        ),
        "InvalidImage.NotFound": ErrorCode(ImageNotFound, "check the image id and VOLCENGINE_REGION", "api"),
        "InvalidTOSBucket.NotFound": ErrorCode(
            BucketNotFound, "create the bucket or fix EXPORT_TOS_BUCKET (same region as the image)", "api"
        ),
        "OperationDenied.ResourceLocked": ErrorCode(
            ResourceLocked, "another operation holds the image; a later run retries it", "api"
        ),
        "InternalError": ErrorCode(ServerError, _RETRY_LATER, "api"),
        # The gateway's codes (docs/facts.md §2)
        "ServiceUnavailable": ErrorCode(ServerError, _RETRY_LATER, "gateway"),
        "InvalidTimestamp": ErrorCode(
            AuthenticationFailed, "sync the clock: a signed request is valid for 15 minutes", "gateway"
        ),
        "InvalidAccessKey": ErrorCode(AuthenticationFailed, _BAD_KEYS, "gateway"),
        "SignatureDoesNotMatch": ErrorCode(
            AuthenticationFailed,
            "check the secret key paired with the access key (VOLCENGINE_SECRET_KEY)",
            "gateway",
        ),
        "InvalidSecretToken": ErrorCode(AuthenticationFailed, _REFRESH_STS, "gateway"),
        "AccessDenied": ErrorCode(
            AccessDenied,
            "grant the function's identity ecs:ExportImage, ecs:DescribeImages, ecs:DescribeTasks, "
            "and ecs:TagResources, ecs:UntagResources",
            "gateway",
        ),
        "FlowLimitExceeded": ErrorCode(Throttled, _THROTTLED, "gateway"),
        "HTTP429": ErrorCode(Throttled, _THROTTLED, "gateway"),
        # TOS's answers (docs/facts.md §11 and §15); a 403 AccessDenied is coded by the action it refused
        "NoSuchBucket": ErrorCode(
            BucketNotFound, "create the bucket or fix EXPORT_TOS_BUCKET (same region as TOS_ENDPOINT)", "tos"
        ),
        "NoSuchKey": ErrorCode(
            ObjectNotFound,
            "the object is not in the bucket: check its lifecycle rules and who deletes objects",
            "tos",
        ),
        "InvalidRange": ErrorCode(
            RangeNotSatisfiable,
            "the object ends before the range read: it was cut or replaced while it was read; "
            "name the image in an event to export it again",
            "tos",
        ),
        "RequestTimeTooSkewed": ErrorCode(
            AuthenticationFailed, "sync the clock: TOS refuses a request signed far from its own time", "tos"
        ),
        "InvalidAccessKeyId": ErrorCode(AuthenticationFailed, _BAD_KEYS, "tos"),
        "InvalidSecurityToken": ErrorCode(AuthenticationFailed, _REFRESH_STS, "tos"),
        **{
            f"TosAccessDenied.{action}": ErrorCode(TosAccessDenied, _TOS_GRANT.format(permission), "tos")
            for action, permission in TOS_PERMISSIONS.items()
        },
        # The HTTP exchange (handler.adapters.openapi)
        # Not sent: the server was never reached
        "ConnectError": ErrorCode(RetryableApiError, _UNREACHABLE, "transport"),
        "ConnectTimeout": ErrorCode(RetryableApiError, _UNREACHABLE, "transport"),
        "PoolTimeout": ErrorCode(RetryableApiError, _UNREACHABLE, "transport"),
        "UnsupportedProtocol": ErrorCode(
            RetryableApiError,
            "the endpoint must be an http:// or https:// URL: check the variable",
            "transport",
        ),
        # Sent, then the answer was lost: whether it took effect is unknown
        "ReadTimeout": ErrorCode(UnknownOutcomeError, _ANSWER_LOST, "transport"),
        "WriteTimeout": ErrorCode(UnknownOutcomeError, _ANSWER_LOST, "transport"),
        "ReadError": ErrorCode(UnknownOutcomeError, _ANSWER_LOST, "transport"),
        "WriteError": ErrorCode(UnknownOutcomeError, _ANSWER_LOST, "transport"),
        "CloseError": ErrorCode(UnknownOutcomeError, _ANSWER_LOST, "transport"),
        "RemoteProtocolError": ErrorCode(UnknownOutcomeError, _ANSWER_LOST, "transport"),
        "LocalProtocolError": ErrorCode(UnknownOutcomeError, _ANSWER_LOST, "transport"),
        "ProxyError": ErrorCode(UnknownOutcomeError, _ANSWER_LOST, "transport"),
        "CertificateVerifyFailed": ErrorCode(
            TerminalApiError, "set SSL_CERT_FILE to the CA bundle that signs the endpoint", "transport"
        ),
        "MalformedResponse": ErrorCode(
            MalformedResponse,
            "the answer could not be read (too big, too deep or not the API's shape): a later run looks "
            "again; if it persists, check VOLCENGINE_ENDPOINT and TOS_ENDPOINT name the real services",
            "transport",
        ),
        # Refused before anything is sent (the API answers the tag codes in the same words)
        "InvalidBucketName": ErrorCode(
            InvalidParameter, "set EXPORT_TOS_BUCKET to 3-63 lowercase letters, digits or hyphens", "exporter"
        ),
        "InvalidObjectName": ErrorCode(
            InvalidParameter, "the object's key must be non-empty and have no '.' or '..' segment", "exporter"
        ),
        "ObjectTooLarge": ErrorCode(
            InvalidParameter,
            "the function writes small objects only (5 MiB at most in one PutObject): this one is larger",
            "exporter",
        ),
        "InvalidTagKey.Malformed": ErrorCode(
            InvalidParameter, "a tag key is 1-128 characters and does not start with volc: or sys:", "gateway"
        ),
        "InvalidTagValue.Malformed": ErrorCode(
            InvalidParameter, "a tag value is at most 256 characters", "gateway"
        ),
        "InvalidParameter.Tags": ErrorCode(InvalidParameter, "send 1-20 tags a request", "gateway"),
        "InvalidParameter.TagKeys": ErrorCode(InvalidParameter, "remove 1-20 tag keys a request", "gateway"),
        # The exporter's own
        "InvalidEvent": ErrorCode(InvalidEvent, "fix the event: the message names the field", "exporter"),
        "ConfigurationError": ErrorCode(
            ConfigurationError, "fix the environment variable or file the message names", "exporter"
        ),
        "ExportTaskFailed": ErrorCode(
            ExportTaskFailed,
            "the API gives no reason: check the image and that ECS may write to the bucket; "
            "name the image in an event to export it again",
            "exporter",
        ),
        "ExportObjectMissing": ErrorCode(
            ExportObjectMissing,
            "the object is not in the bucket: check its lifecycle rules and who deletes objects; "
            "name the image in an event to export it again",
            "exporter",
        ),
        "ExportObjectCorrupt": ErrorCode(
            ExportObjectCorrupt,
            "the object in the bucket is not a usable export (the message names the object and the check): "
            "name the image in an event to export it again",
            "exporter",
        ),
        "ImageDeleted": ErrorCode(
            ImageDeleted,
            "the source image was deleted before its export was checked (the message gives its last task "
            "status); export the image again from another copy if you need it",
            "exporter",
        ),
        "NoVerifiedExport": ErrorCode(
            NoVerifiedExport,
            "export the image first (a manifest is written once its export is verified), or name the "
            "bucket and prefix it was exported to as TOSBucket and TOSPrefix",
            "exporter",
        ),
        "ManifestUnusable": ErrorCode(
            ManifestUnusable,
            "the message names what is missing or unreadable; export the image again to write a new "
            "manifest, or import its objects by hand (ImportImage)",
            "exporter",
        ),
        "ImportTaskFailed": ErrorCode(
            ImportTaskFailed,
            "ECS gives no reason: check that ECS may read the bucket (its service authorisation for TOS), "
            "that the region has room for another custom image (50), and restore again",
            "exporter",
        ),
        "DrillTimedOut": ErrorCode(
            DrillTimedOut,
            "the drill's import did not finish in 24 hours and its image was deleted; a later run drills "
            "again; if it persists, check the import in the ECS console",
            "exporter",
        ),
        "ListingTruncated": ErrorCode(
            ListingTruncated,
            "the scan read the most pages it reads and more images were listed: narrow it with "
            "ImageNamePrefix or Tags in the timer payload (the newest images are exported first)",
            "exporter",
        ),
        "ClaimTooSlow": ErrorCode(
            ClaimTooSlow,
            "nothing to do if it passes: the API answered too slowly to claim the export's report safely, so a "
            "later run reports it; if it persists, raise VOLCENGINE_MAX_RPS or EXPORT_CLAIM_SETTLE_SECONDS",
            "exporter",
        ),
        "ClearanceExpired": ErrorCode(
            ClearanceExpired,
            "nothing to do: throttling held the export past the 10 s clearance window of its task look-up, "
            "so it was not sent on that look-up; a later run exports it; lower VOLCENGINE_MAX_RPS if it persists",
            "exporter",
        ),
        "TimeBudgetExhausted": ErrorCode(
            BudgetExhausted,
            "nothing to do: a later run exports it; a longer function timeout does more per run",
            "exporter",
        ),
    }
)


def fix_for(code: str | None) -> str | None:
    """The one-line advice for an error code, or None when the table has none."""
    known = ERROR_CODES.get(code) if code else None
    return known.fix if known is not None else None


def error_for(
    code: str,
    message: str,
    *,
    action: str,
    http_status: int | None = None,
    request_id: str | None = None,
) -> ApiError:
    """The typed error for one of the table's codes that the exporter makes itself (a value refused before
    it is sent, an answer that cannot be read); ``KeyError`` for a code the table does not list."""
    kind = ERROR_CODES[code].kind
    if not issubclass(kind, ApiError):
        msg = f"{code} is not an API error"
        raise TypeError(msg)
    return kind(message, code=code, http_status=http_status, request_id=request_id, action=action)


def api_error_for(
    http_status: int,
    code: str,
    message: str,
    *,
    request_id: str | None = None,
    action: str = "",
    retry_after: float | None = None,
) -> ApiError:
    """Build the typed error for an API error answer: the table decides, else the HTTP status does."""
    known = ERROR_CODES.get(code)
    kind: type[ApiError]
    if known is not None and known.source in ("api", "gateway", "tos") and issubclass(known.kind, ApiError):
        kind = known.kind
    elif http_status == 429:
        kind = Throttled
    elif http_status >= 500:
        kind = RetryableApiError
    else:
        kind = TerminalApiError
    return kind(
        message,
        code=code,
        http_status=http_status,
        request_id=request_id,
        action=action,
        retry_after=retry_after,
    )


class InvocationIncomplete(Exception):
    """Raised by the entry, after logging and notifying, when anything was deferred or failed retryably, so
    that the trigger's retry policy runs the event again (the dedupe makes that safe). ``result`` is the
    invocation's result, exactly as it would have been returned."""

    def __init__(self, result: dict[str, object], *, deferred: int, failed: int) -> None:
        super().__init__(
            f"{deferred} image(s) deferred and {failed} failed retryably: run this event again "
            "(images already exported are skipped)"
        )
        self.result = result
        self.deferred = deferred
        self.failed = failed
