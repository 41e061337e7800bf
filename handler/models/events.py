"""The events the function accepts (docs/contract.md, "Events accepted"), each turned into one typed command.

``parse_event(raw)`` returns a :class:`ScanCommand` (a timer with no ``ImageIds``: look for new images) or an
:class:`ExportCommand` (export exactly these images), or raises :class:`~handler.errors.InvalidEvent` whose
``field`` is the dotted path of what is wrong (``data.ImageIds[2]``, ``body.TOSBucket``, ``""`` for the whole
event). Shapes are recognised in this order:

1. HTTP (API gateway): ``httpMethod`` with ``body``/``headers``; the body is any of the shapes below.
2. Timer: a CloudEvent of type ``faas.timer.event``; ``data`` is a JSON object in a string, or nothing.
3. Any other CloudEvent (``specversion``): ``data`` or ``subject`` names the image.
4. EventBridge style: ``detail-type`` / ``detail`` with ``detail.ImageId``.
5. Direct: ``{"ImageId": …}`` or ``{"ImageIds": […]}``, the API's own parameter names.

Shapes are checked by hand rather than through a union of models: the messages can then say exactly what was
expected, and building the models stays cheap on a cold start. Values echoed in messages are cut to about 60
characters, so an event can never make an error message (or a log line) large.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeAlias, TypeGuard, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainValidator

from handler.errors import InvalidEvent
from handler.models.results import Trigger
from handler.models.settings import BUCKET_PATTERN, PREFIX_PATTERN

__all__ = [
    "IMAGE_ID_PATTERN",
    "MAX_IMAGE_IDS",
    "MAX_LOOKBACK_HOURS",
    "TIMER_EVENT_TYPE",
    "Command",
    "ExportCommand",
    "HttpRequestInfo",
    "ScanCommand",
    "decode_event_document",
    "http_request_info",
    "is_http_event",
    "parse_event",
]

# A custom image id, e.g. image-ybqi99s7yq8rx7mnk44b. \A and \Z so that ``match`` never lets a newline through.
IMAGE_ID_PATTERN = re.compile(r"\Aimage-[a-z0-9]{1,64}\Z")
MAX_IMAGE_IDS = 100  # DescribeImages / DescribeTasks take at most 100 ids per call (docs/facts.md §3)
MAX_LOOKBACK_HOURS = 8760.0  # one year
TIMER_EVENT_TYPE = "faas.timer.event"

MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
MAX_IMAGE_NAME_PREFIX = 128
MAX_EVENT_ID = 256

_EXAMPLE_IMAGE_ID = "image-ybqi99s7yq8rx7mnk44b"
_ECHO_LIMIT = 60
_IMAGE_KEYS = ("ImageId", "imageId", "image_id")  # then ResourceId, when it is an image id
_TIMER_KEYS = ("ImageIds", "TOSBucket", "TOSPrefix", "LookbackHours", "ImageNamePrefix", "Tags")
_SCAN_ONLY_KEYS = ("LookbackHours", "ImageNamePrefix", "Tags")
_DIRECT_KEYS = ("ImageId", "ImageIds", "TOSBucket", "TOSPrefix")
_SHAPES = (
    "expected a timer event (a CloudEvent of type faas.timer.event), a CloudEvent whose data names the "
    "image (data.ImageId), an EventBridge-style event (detail.ImageId), an HTTP event whose body is one of "
    'these, or a direct event {"ImageId": "image-…"} or {"ImageIds": ["image-…"]}'
)

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------------------
# Value rules, shared by the parser (which adds the field path) and the models (which validate on their own).


class _Rejected(ValueError):
    """A value or shape was refused; ``where`` is the path relative to the value being checked."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.where = where


def _clip(text: str) -> str:
    return text if len(text) <= _ECHO_LIMIT else text[: _ECHO_LIMIT - 1] + "…"


def _shown(value: object) -> str:
    """What was received, for a message: a short repr of a scalar, the kind of anything else."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)  # null, true, false: the event's own spelling
    if isinstance(value, int) and value.bit_length() > 64:
        return "a very large number"
    if isinstance(value, (str, int, float)):
        return _clip(repr(value))
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, Mapping):
        return "an object"
    return f"a value of type {type(value).__name__}"


def _key_name(key: object) -> str:
    return _clip(key) if isinstance(key, str) else _shown(key)


def _join(prefix: str, where: str) -> str:
    if not where:
        return prefix
    if not prefix or where.startswith("["):
        return prefix + where
    return f"{prefix}.{where}"


def _image_id(value: object) -> str:
    if isinstance(value, str) and IMAGE_ID_PATTERN.match(value):
        return value
    raise _Rejected(f"expected an image id like {_EXAMPLE_IMAGE_ID}, got {_shown(value)}")


def _image_ids(value: object) -> tuple[str, ...]:
    """1 to 100 image ids, duplicates dropped, first-seen order kept."""
    if not isinstance(value, (list, tuple)):
        raise _Rejected(f"expected a list of image ids, got {_shown(value)}")
    seen: dict[str, None] = {}
    for index, item in enumerate(value):
        try:
            seen[_image_id(item)] = None
        except _Rejected as exc:
            raise _Rejected(exc.message, f"[{index}]") from None
        if len(seen) > MAX_IMAGE_IDS:
            msg = f"expected at most {MAX_IMAGE_IDS} image ids, got more: split the batch into several events"
            raise _Rejected(msg)
    if not seen:
        raise _Rejected(f"expected 1 to {MAX_IMAGE_IDS} image ids, got an empty list")
    return tuple(seen)


def _bucket(value: object) -> str:
    if isinstance(value, str) and BUCKET_PATTERN.fullmatch(value):
        return value
    msg = "expected a TOS bucket name: 3-63 lowercase letters, digits or hyphens, no hyphen at either end"
    raise _Rejected(f"{msg}, got {_shown(value)}")


def _prefix(value: object) -> str:
    if isinstance(value, str) and PREFIX_PATTERN.fullmatch(value):
        return value
    raise _Rejected(f"expected a file-name prefix of 1-30 letters and digits, got {_shown(value)}")


def _lookback_hours(value: object) -> float:
    """A number of hours in (0, 8760]; a numeric string is accepted too (timer payloads are typed by hand)."""
    hours = math.nan
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            hours = float(value)
        except (ValueError, OverflowError):
            hours = math.nan
    if math.isfinite(hours) and 0 < hours <= MAX_LOOKBACK_HOURS:
        return hours
    msg = f"expected a number of hours above 0 and at most {MAX_LOOKBACK_HOURS:g} (one year)"
    raise _Rejected(f"{msg}, got {_shown(value)}")


def _image_name_prefix(value: object) -> str | None:
    """The start of the image names to keep; an empty string means no filter."""
    if isinstance(value, str) and len(value) <= MAX_IMAGE_NAME_PREFIX:
        return value or None
    msg = f"expected a string of at most {MAX_IMAGE_NAME_PREFIX} characters"
    raise _Rejected(f"{msg}, got {_shown(value)}")


def _tags(value: object) -> dict[str, str]:
    """Tag key to value; an image must carry every one of them to be scanned."""
    if not isinstance(value, Mapping):
        raise _Rejected(f"expected an object of tag key to value, got {_shown(value)}")
    if len(value) > MAX_TAGS:
        raise _Rejected(f"expected at most {MAX_TAGS} tags, got {len(value)}")
    tags: dict[str, str] = {}
    for key, tag_value in value.items():
        if not isinstance(key, str) or not 0 < len(key) <= MAX_TAG_KEY:
            raise _Rejected(f"expected tag keys of 1-{MAX_TAG_KEY} characters, got {_shown(key)}")
        if not isinstance(tag_value, str) or len(tag_value) > MAX_TAG_VALUE:
            msg = f"expected a string of at most {MAX_TAG_VALUE} characters"
            raise _Rejected(f"{msg}, got {_shown(tag_value)}", _clip(key))
        tags[key] = tag_value
    return tags


def _or_none(rule: Callable[[object], T]) -> Callable[[object], T | None]:
    def check(value: object) -> T | None:
        return None if value is None else rule(value)

    return check


# ---------------------------------------------------------------------------------------------------------
# The commands.


class ScanCommand(BaseModel):
    """Look for recent private images (DescribeImages) and export each: a timer whose payload names no image."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    trigger: Literal["timer", "http"]
    event_id: str | None = None
    tos_bucket: Annotated[str | None, PlainValidator(_or_none(_bucket))] = None
    tos_prefix: Annotated[str | None, PlainValidator(_or_none(_prefix))] = None
    lookback_hours: Annotated[float | None, PlainValidator(_or_none(_lookback_hours))] = None
    image_name_prefix: Annotated[str | None, PlainValidator(_or_none(_image_name_prefix))] = None
    tags: Annotated[dict[str, str], PlainValidator(_tags)] = Field(default_factory=dict)


class ExportCommand(BaseModel):
    """Export exactly these images (1 to 100, no duplicates, in the order they were named)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    trigger: Trigger
    event_id: str | None = None
    image_ids: Annotated[tuple[str, ...], PlainValidator(_image_ids)]
    tos_bucket: Annotated[str | None, PlainValidator(_or_none(_bucket))] = None
    tos_prefix: Annotated[str | None, PlainValidator(_or_none(_prefix))] = None


Command: TypeAlias = ScanCommand | ExportCommand


@dataclass(frozen=True)
class HttpRequestInfo:
    """The HTTP request line of an API-gateway event, for the log (the body is never logged)."""

    method: str
    path: str | None


# ---------------------------------------------------------------------------------------------------------
# The parser.


def is_http_event(raw: object) -> TypeGuard[dict[Any, Any]]:
    """True for a veFaaS API-gateway event: the entry then answers with statusCode/headers/body, even on error."""
    return isinstance(raw, dict) and "httpMethod" in raw and ("body" in raw or "headers" in raw)


def http_request_info(raw: object) -> HttpRequestInfo | None:
    """Method and path of an HTTP event (cut short), or None when ``raw`` is not one."""
    if not is_http_event(raw):
        return None
    method, path = raw.get("httpMethod"), raw.get("path")
    return HttpRequestInfo(
        method=method[:16] if isinstance(method, str) else "",
        path=path[:200] if isinstance(path, str) else None,
    )


def decode_event_document(raw: bytes) -> object:
    """An event file's bytes as JSON (the local runner's input): UTF-8 (a BOM is allowed), one document.

    Anything else (empty, another encoding, not JSON, nested past what the parser can follow) is an
    :class:`~handler.errors.InvalidEvent` saying so, never a decoding crash.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        msg = f"the event is not UTF-8 text (byte {exc.start} cannot be decoded): save it as UTF-8 JSON"
        raise InvalidEvent(msg) from None
    if not text.strip():
        raise InvalidEvent("the event is empty: expected a JSON document")
    try:
        return json.loads(text)
    except RecursionError:
        raise InvalidEvent("the event is nested too deeply to be read") from None
    except ValueError as exc:
        raise InvalidEvent(f"the event is not valid JSON: {exc}") from None


def parse_event(raw: object) -> Command:
    """Turn a raw event into a command, or raise ``InvalidEvent`` naming the field and what was expected."""
    try:
        return _parse_http(raw) if is_http_event(raw) else _parse_unwrapped(raw)
    except _Rejected as exc:
        raise InvalidEvent(exc.message, field=exc.where) from None


def _check(rule: Callable[[object], T], value: object, field: str) -> T:
    try:
        return rule(value)
    except _Rejected as exc:
        raise _Rejected(exc.message, _join(field, exc.where)) from None


def _optional(rule: Callable[[object], T], source: Mapping[Any, Any], key: str, prefix: str) -> T | None:
    """The value of an optional key: absent and null both mean "use the default"."""
    value = source.get(key)
    return None if value is None else _check(rule, value, _join(prefix, key))


def _parse_http(raw: dict[Any, Any]) -> Command:
    body = raw.get("body")
    inner: object
    if isinstance(body, Mapping):
        inner = body  # a gateway or a test tool that already decoded the JSON body
    elif body is None or isinstance(body, str):
        text = _decode_base64(body or "", "body") if raw.get("isBase64Encoded") is True else body or ""
        if not text.strip():
            raise _Rejected(f"empty; {_SHAPES}", "body")
        inner = _json(text, "body", "a JSON event")
    else:
        raise _Rejected(f"expected the request body as a string, got {_shown(body)}", "body")
    if is_http_event(inner):
        raise _Rejected("expected an event, got another HTTP event inside the body", "body")
    try:
        command = _parse_unwrapped(inner)
    except _Rejected as exc:
        raise _Rejected(exc.message, _join("body", exc.where)) from None
    event_id = command.event_id or _request_id(raw.get("headers"))
    return command.model_copy(update={"trigger": "http", "event_id": event_id})


def _decode_base64(text: str, field: str) -> str:
    try:
        return base64.b64decode("".join(text.split()), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise _Rejected("expected base64-encoded UTF-8 text (isBase64Encoded is true)", field) from None


def _json(text: str, field: str, expected: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise _Rejected(f"expected {expected}, got text that is not JSON", field) from None


def _request_id(headers: object) -> str | None:
    """The gateway's ``x-request-id`` header (any case), when it is a usable id."""
    if not isinstance(headers, Mapping):
        return None
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() == "x-request-id":
            return value if isinstance(value, str) and 0 < len(value) <= MAX_EVENT_ID else None
    return None


def _parse_unwrapped(raw: object) -> Command:
    if not isinstance(raw, dict):
        raise _Rejected(f"{_SHAPES}; got {_shown(raw)}")
    if raw.get("type") == TIMER_EVENT_TYPE:
        return _parse_timer(raw)
    if "specversion" in raw:
        return _parse_cloud_event(raw)
    if "detail-type" in raw or ("detail" in raw and "source" in raw):
        return _parse_eventbridge(raw)
    if any(_normalised(key) in _DIRECT_NORMALISED for key in raw):
        return _parse_direct(raw)
    if not raw:
        raise _Rejected(f"{_SHAPES}; got an empty object")
    keys = ", ".join(_key_name(key) for key in list(raw)[:5])
    raise _Rejected(f"{_SHAPES}; got an object with keys {_clip(keys)}")


def _event_id(raw: Mapping[Any, Any]) -> str | None:
    """A CloudEvent's or EventBridge event's ``id``, used to correlate logs and results."""
    value = raw.get("id")
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() <= 64:
        return str(value)
    if isinstance(value, str) and len(value) <= MAX_EVENT_ID:
        return value
    raise _Rejected(f"expected a string of at most {MAX_EVENT_ID} characters, got {_shown(value)}", "id")


def _cloud_event_data(raw: Mapping[Any, Any]) -> object:
    """``data``, or ``data_base64`` decoded to text (the CloudEvents JSON format's binary form)."""
    data = raw.get("data")
    if data is None and isinstance(raw.get("data_base64"), str):
        return _decode_base64(raw["data_base64"], "data_base64")
    return data


def _parse_timer(raw: dict[Any, Any]) -> Command:
    event_id = _event_id(raw)
    data = _cloud_event_data(raw)
    payload: object
    if data is None or (isinstance(data, str) and not data.strip()):
        payload = {}
    elif isinstance(data, str):
        payload = _json(data, "data", 'a JSON object like {"LookbackHours": 48}')
    else:
        payload = data  # already an object: accepted as is
    if not isinstance(payload, Mapping):
        msg = f'expected the timer payload to be a JSON object like {{"LookbackHours": 48}}, got {_shown(payload)}'
        raise _Rejected(msg, "data")
    _refuse_unknown_keys(payload, _TIMER_KEYS, "data", "the timer payload")
    tos_bucket = _optional(_bucket, payload, "TOSBucket", "data")
    tos_prefix = _optional(_prefix, payload, "TOSPrefix", "data")
    if "ImageIds" in payload:
        for key in _SCAN_ONLY_KEYS:
            if payload.get(key) is not None:
                msg = "applies to a scan only: remove it, or remove ImageIds to scan"
                raise _Rejected(msg, f"data.{key}")
        image_ids = _check(_image_ids, payload["ImageIds"], "data.ImageIds")
        return ExportCommand(
            trigger="timer",
            event_id=event_id,
            image_ids=image_ids,
            tos_bucket=tos_bucket,
            tos_prefix=tos_prefix,
        )
    return ScanCommand(
        trigger="timer",
        event_id=event_id,
        tos_bucket=tos_bucket,
        tos_prefix=tos_prefix,
        lookback_hours=_optional(_lookback_hours, payload, "LookbackHours", "data"),
        image_name_prefix=_optional(_image_name_prefix, payload, "ImageNamePrefix", "data"),
        tags=_optional(_tags, payload, "Tags", "data") or {},
    )


def _parse_cloud_event(raw: dict[Any, Any]) -> Command:
    event_id = _event_id(raw)
    data = _cloud_event_data(raw)
    if isinstance(data, str) and data.strip():
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            data = None  # text that is not JSON names no image; the subject still may
    content: Mapping[Any, Any] = data if isinstance(data, Mapping) else {}
    subject = raw.get("subject")
    fallback = subject if isinstance(subject, str) and IMAGE_ID_PATTERN.match(subject) else None
    image_id = _named_image(content, "data", fallback)
    return ExportCommand(
        trigger="event",
        event_id=event_id,
        image_ids=(image_id,),
        tos_bucket=_optional(_bucket, content, "TOSBucket", "data"),
        tos_prefix=_optional(_prefix, content, "TOSPrefix", "data"),
    )


def _parse_eventbridge(raw: dict[Any, Any]) -> Command:
    event_id = _event_id(raw)
    detail = raw.get("detail")
    if not isinstance(detail, Mapping):
        raise _Rejected(f"expected an object naming the image as ImageId, got {_shown(detail)}", "detail")
    # detail.State is not checked here: the planner asks the API whether the image is available yet.
    return ExportCommand(
        trigger="event",
        event_id=event_id,
        image_ids=(_named_image(detail, "detail", None),),
        tos_bucket=_optional(_bucket, detail, "TOSBucket", "detail"),
        tos_prefix=_optional(_prefix, detail, "TOSPrefix", "detail"),
    )


def _named_image(content: Mapping[Any, Any], prefix: str, fallback: str | None) -> str:
    """The image an event names: ImageId (any spelling), else a ResourceId that is an image id, else fallback."""
    for key in _IMAGE_KEYS:
        if content.get(key) is not None:
            return _check(_image_id, content[key], f"{prefix}.{key}")
    resource = content.get("ResourceId")
    if isinstance(resource, str) and IMAGE_ID_PATTERN.match(resource):
        return resource
    if fallback is not None:
        return fallback
    if resource is not None:
        return _check(_image_id, resource, f"{prefix}.ResourceId")
    also = " or a subject that is an image id" if prefix == "data" else ""
    msg = f"this event names no image: expected {prefix}.ImageId (or imageId, image_id, ResourceId){also}"
    raise _Rejected(msg, f"{prefix}.ImageId")


def _parse_direct(raw: dict[Any, Any]) -> Command:
    _refuse_unknown_keys(raw, _DIRECT_KEYS, "", "a direct event")
    has_one, has_many = raw.get("ImageId") is not None, raw.get("ImageIds") is not None
    if has_one and has_many:
        raise _Rejected("give either ImageId (one image) or ImageIds (a list), not both", "ImageIds")
    if has_one:
        image_ids: tuple[str, ...] = (_check(_image_id, raw["ImageId"], "ImageId"),)
    elif has_many:
        image_ids = _check(_image_ids, raw["ImageIds"], "ImageIds")
    else:
        raise _Rejected("missing: expected ImageId (one image) or ImageIds (a list of images)", "ImageId")
    return ExportCommand(
        trigger="direct",
        event_id=None,
        image_ids=image_ids,
        tos_bucket=_optional(_bucket, raw, "TOSBucket", ""),
        tos_prefix=_optional(_prefix, raw, "TOSPrefix", ""),
    )


def _normalised(key: object) -> str:
    return key.casefold().replace("_", "").replace("-", "") if isinstance(key, str) else ""


_DIRECT_NORMALISED = frozenset(_normalised(key) for key in _DIRECT_KEYS)


def _refuse_unknown_keys(
    content: Mapping[Any, Any], allowed: tuple[str, ...], prefix: str, what: str
) -> None:
    """A misspelt key must fail loudly: a timer payload whose ``ImageID`` were ignored would scan everything."""
    unknown = [key for key in content if key not in allowed]
    if not unknown:
        return
    first = unknown[0]
    hint = _suggestion(first, allowed)
    msg = f"unknown key{f' (did you mean {hint}?)' if hint else ''}; {what} accepts {', '.join(allowed)}"
    if len(unknown) > 1:
        msg += f"; also unknown: {_clip(', '.join(_key_name(key) for key in unknown[1:6]))}"
    raise _Rejected(msg, _join(prefix, _key_name(first)))


def _suggestion(key: object, allowed: tuple[str, ...]) -> str | None:
    """The allowed key that ``key`` most likely meant: same letters in another case or plural, else close."""
    if not isinstance(key, str):
        return None
    wanted = _normalised(key)
    for candidate in allowed:
        if _normalised(candidate) == wanted:
            return candidate
    for candidate in allowed:
        if _normalised(candidate).removesuffix("s") == wanted.removesuffix("s"):
            return candidate
    import difflib  # noqa: PLC0415 - only a rejected event pays for it

    close = difflib.get_close_matches(key[:100], allowed, n=1, cutoff=0.75)
    return close[0] if close else None
