"""The events the function accepts (docs/contract.md, "Events accepted"), each turned into one typed command.

``parse_event(raw)`` returns a :class:`ScanCommand` (a timer with no ``ImageIds``: look for new images), an
:class:`ExportCommand` (export exactly these images), a :class:`RestoreCommand` (import an image's newest
verified export back) or a :class:`DoctorCommand` (run the doctor's checks), or raises :class:`~handler.errors.InvalidEvent` whose
``field`` is the dotted path of what is wrong (``data.ImageIds[2]``, ``body.TOSBucket``, ``""`` for the whole
event). The commands and the rules their values follow are in ``handler.models.commands``. Shapes are
recognised in this order:

1. HTTP (API gateway): ``httpMethod`` with ``body``/``headers``; the body is any of the shapes below.
2. Timer: a CloudEvent of type ``faas.timer.event``; ``data`` is a JSON object in a string, or nothing.
3. Any other CloudEvent (``specversion``): ``data`` or ``subject`` names the image.
4. EventBridge style: ``detail-type`` / ``detail`` with ``detail.ImageId``.
5. Direct: ``{"ImageId": …}`` or ``{"ImageIds": […]}``, the API's own parameter names; or
   ``{"Restore": {"ImageId": …}}``; or ``{"Doctor": true}``.

Shapes are checked by hand rather than through a union of models: the messages can then say exactly what was
expected, and building the models stays cheap on a cold start. Values echoed in messages are cut to about 60
characters, so an event can never make an error message (or a log line) large.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias, TypeGuard, TypeVar

from handler.errors import InvalidEvent
from handler.models.commands import (
    IMAGE_ID_PATTERN,
    MAX_IMAGE_IDS,
    MAX_LOOKBACK_HOURS,
    Command,
    DoctorCommand,
    ExportCommand,
    RefusedValue,
    RestoreCommand,
    ScanCommand,
    check_bucket,
    check_doctor,
    check_force,
    check_image_id,
    check_image_ids,
    check_image_name,
    check_image_name_prefix,
    check_lookback_hours,
    check_prefix,
    check_tags,
    clip,
    shown,
)
from handler.models.results import Trigger

__all__ = [
    "IMAGE_ID_PATTERN",
    "MAX_IMAGE_IDS",
    "MAX_LOOKBACK_HOURS",
    "TIMER_EVENT_TYPE",
    "Command",
    "DoctorCommand",
    "ExportCommand",
    "RestoreCommand",
    "ScanCommand",
    "decode_event_document",
    "is_http_event",
    "parse_event",
    "recognise",
]

TIMER_EVENT_TYPE = "faas.timer.event"
MAX_EVENT_ID = 256

_IMAGE_KEYS = ("ImageId", "imageId", "image_id")  # then ResourceId, when it is an image id
_TIMER_KEYS = ("ImageIds", "TOSBucket", "TOSPrefix", "LookbackHours", "ImageNamePrefix", "Tags", "Force")
_SCAN_ONLY_KEYS = ("LookbackHours", "ImageNamePrefix", "Tags")
_DIRECT_KEYS = ("ImageId", "ImageIds", "TOSBucket", "TOSPrefix", "Force", "Restore", "Doctor")
_RESTORE_KEYS = ("ImageId", "TOSBucket", "TOSPrefix", "ImageName")
_SHAPES = (
    "expected a timer event (a CloudEvent of type faas.timer.event), a CloudEvent whose data names the "
    "image (data.ImageId), an EventBridge-style event (detail.ImageId), an HTTP event whose body is one of "
    'these, a direct event {"ImageId": "image-…"} or {"ImageIds": ["image-…"]}, a restore '
    '{"Restore": {"ImageId": "image-…"}}, or the doctor {"Doctor": true}'
)

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------------------
# Paths in messages.


def _key_name(key: object) -> str:
    return clip(key) if isinstance(key, str) else shown(key)


def _join(prefix: str, where: str) -> str:
    if not where:
        return prefix
    if not prefix or where.startswith("["):
        return prefix + where
    return f"{prefix}.{where}"


# ---------------------------------------------------------------------------------------------------------
# The parser.


def is_http_event(raw: object) -> TypeGuard[dict[Any, Any]]:
    """True for a veFaaS API-gateway event: the entry then answers with statusCode/headers/body, even on error."""
    return isinstance(raw, dict) and "httpMethod" in raw and ("body" in raw or "headers" in raw)


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
    """Turn a raw event into a command, or raise ``InvalidEvent`` naming the field and what was expected (and
    the trigger and event id recognised all the same)."""
    trigger, event_id = recognise(raw)
    try:
        return _parse_http(raw) if is_http_event(raw) else _parse_unwrapped(raw)
    except RefusedValue as exc:
        raise InvalidEvent(exc.message, field=exc.where, trigger=trigger, event_id=event_id) from None


def _check(rule: Callable[[object], T], value: object, field: str) -> T:
    try:
        return rule(value)
    except RefusedValue as exc:
        raise RefusedValue(exc.message, _join(field, exc.where)) from None


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
            raise RefusedValue(f"empty; {_SHAPES}", "body")
        inner = _json(text, "body", "a JSON event")
    else:
        raise RefusedValue(f"expected the request body as a string, got {shown(body)}", "body")
    if is_http_event(inner):
        raise RefusedValue("expected an event, got another HTTP event inside the body", "body")
    try:
        command = _parse_unwrapped(inner)
    except RefusedValue as exc:
        raise RefusedValue(exc.message, _join("body", exc.where)) from None
    event_id = command.event_id or _request_id(raw.get("headers"))
    return command.model_copy(update={"trigger": "http", "event_id": event_id})


def _decode_base64(text: str, field: str) -> str:
    try:
        return base64.b64decode("".join(text.split()), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise RefusedValue("expected base64-encoded UTF-8 text (isBase64Encoded is true)", field) from None


def _json(text: str, field: str, expected: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise RefusedValue(f"expected {expected}, got text that is not JSON", field) from None


def _request_id(headers: object) -> str | None:
    """The gateway's ``x-request-id`` header (any case), when it is a usable id."""
    if not isinstance(headers, Mapping):
        return None
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() == "x-request-id":
            return value if isinstance(value, str) and 0 < len(value) <= MAX_EVENT_ID else None
    return None


_Shape: TypeAlias = Literal["timer", "cloudevent", "eventbridge", "direct"]


def _shape(raw: dict[Any, Any]) -> _Shape | None:
    """Which shape an unwrapped event has (the module docstring's order), or None for none of them."""
    if raw.get("type") == TIMER_EVENT_TYPE:
        return "timer"
    if "specversion" in raw:
        return "cloudevent"
    if "detail-type" in raw or ("detail" in raw and "source" in raw):
        return "eventbridge"
    if any(_normalised(key) in _DIRECT_NORMALISED for key in raw):
        return "direct"
    return None


def recognise(raw: object) -> tuple[Trigger, str | None]:
    """The trigger an event came by and the id it carries (an HTTP event: its ``x-request-id`` header), read
    by the parser's rules even when the event is invalid; the id is None when it has no usable one."""
    if is_http_event(raw):
        return "http", _request_id(raw.get("headers"))
    if not isinstance(raw, dict):
        return "direct", None
    shape = _shape(raw)
    trigger: Trigger = (
        "timer" if shape == "timer" else "event" if shape in ("cloudevent", "eventbridge") else "direct"
    )
    try:
        return trigger, _event_id(raw)
    except RefusedValue:
        return trigger, None


def _parse_unwrapped(raw: object) -> Command:
    if not isinstance(raw, dict):
        raise RefusedValue(f"{_SHAPES}; got {shown(raw)}")
    shape = _shape(raw)
    if shape == "timer":
        return _parse_timer(raw)
    if shape == "cloudevent":
        return _parse_cloud_event(raw)
    if shape == "eventbridge":
        return _parse_eventbridge(raw)
    if shape == "direct":
        return _parse_direct(raw)
    if not raw:
        raise RefusedValue(f"{_SHAPES}; got an empty object")
    keys = ", ".join(_key_name(key) for key in list(raw)[:5])
    raise RefusedValue(f"{_SHAPES}; got an object with keys {clip(keys)}")


def _event_id(raw: Mapping[Any, Any]) -> str | None:
    """A CloudEvent's or EventBridge event's ``id``, used to correlate logs and results."""
    value = raw.get("id")
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() <= 64:
        return str(value)
    if isinstance(value, str) and len(value) <= MAX_EVENT_ID:
        return value
    raise RefusedValue(f"expected a string of at most {MAX_EVENT_ID} characters, got {shown(value)}", "id")


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
        msg = f'expected the timer payload to be a JSON object like {{"LookbackHours": 48}}, got {shown(payload)}'
        raise RefusedValue(msg, "data")
    _refuse_unknown_keys(payload, _TIMER_KEYS, "data", "the timer payload")
    tos_bucket = _optional(check_bucket, payload, "TOSBucket", "data")
    tos_prefix = _optional(check_prefix, payload, "TOSPrefix", "data")
    if "ImageIds" in payload:
        for key in _SCAN_ONLY_KEYS:
            if payload.get(key) is not None:
                msg = "applies to a scan only: remove it, or remove ImageIds to scan"
                raise RefusedValue(msg, f"data.{key}")
        image_ids = _check(check_image_ids, payload["ImageIds"], "data.ImageIds")
        return ExportCommand(
            trigger="timer",
            event_id=event_id,
            image_ids=image_ids,
            tos_bucket=tos_bucket,
            tos_prefix=tos_prefix,
            force=_optional(check_force, payload, "Force", "data") or False,
        )
    if payload.get("Force") is not None:
        raise RefusedValue(
            "applies to named images only: add ImageIds, or remove Force to scan", "data.Force"
        )
    return ScanCommand(
        trigger="timer",
        event_id=event_id,
        tos_bucket=tos_bucket,
        tos_prefix=tos_prefix,
        lookback_hours=_optional(check_lookback_hours, payload, "LookbackHours", "data"),
        image_name_prefix=_optional(check_image_name_prefix, payload, "ImageNamePrefix", "data"),
        tags=_optional(check_tags, payload, "Tags", "data") or {},
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
        tos_bucket=_optional(check_bucket, content, "TOSBucket", "data"),
        tos_prefix=_optional(check_prefix, content, "TOSPrefix", "data"),
    )


def _parse_eventbridge(raw: dict[Any, Any]) -> Command:
    event_id = _event_id(raw)
    detail = raw.get("detail")
    if not isinstance(detail, Mapping):
        raise RefusedValue(f"expected an object naming the image as ImageId, got {shown(detail)}", "detail")
    # detail.State is not checked here: the planner asks the API whether the image is available yet.
    return ExportCommand(
        trigger="event",
        event_id=event_id,
        image_ids=(_named_image(detail, "detail", None),),
        tos_bucket=_optional(check_bucket, detail, "TOSBucket", "detail"),
        tos_prefix=_optional(check_prefix, detail, "TOSPrefix", "detail"),
    )


def _named_image(content: Mapping[Any, Any], prefix: str, fallback: str | None) -> str:
    """The image an event names: ImageId (any spelling), else a ResourceId that is an image id, else fallback."""
    for key in _IMAGE_KEYS:
        if content.get(key) is not None:
            return _check(check_image_id, content[key], f"{prefix}.{key}")
    resource = content.get("ResourceId")
    if isinstance(resource, str) and IMAGE_ID_PATTERN.match(resource):
        return resource
    if fallback is not None:
        return fallback
    if resource is not None:
        return _check(check_image_id, resource, f"{prefix}.ResourceId")
    also = " or a subject that is an image id" if prefix == "data" else ""
    msg = f"this event names no image: expected {prefix}.ImageId (or imageId, image_id, ResourceId){also}"
    raise RefusedValue(msg, f"{prefix}.ImageId")


def _parse_direct(raw: dict[Any, Any]) -> Command:
    _refuse_unknown_keys(raw, _DIRECT_KEYS, "", "a direct event")
    if "Doctor" in raw:
        return _parse_doctor(raw)
    if "Restore" in raw:
        return _parse_restore(raw)
    has_one, has_many = raw.get("ImageId") is not None, raw.get("ImageIds") is not None
    if has_one and has_many:
        raise RefusedValue("give either ImageId (one image) or ImageIds (a list), not both", "ImageIds")
    if has_one:
        image_ids: tuple[str, ...] = (_check(check_image_id, raw["ImageId"], "ImageId"),)
    elif has_many:
        image_ids = _check(check_image_ids, raw["ImageIds"], "ImageIds")
    else:
        raise RefusedValue("missing: expected ImageId (one image) or ImageIds (a list of images)", "ImageId")
    return ExportCommand(
        trigger="direct",
        event_id=None,
        image_ids=image_ids,
        tos_bucket=_optional(check_bucket, raw, "TOSBucket", ""),
        tos_prefix=_optional(check_prefix, raw, "TOSPrefix", ""),
        force=_optional(check_force, raw, "Force", "") or False,
    )


def _parse_doctor(raw: dict[Any, Any]) -> DoctorCommand:
    """``{"Doctor": true}``: an event of its own, with nothing beside it."""
    others = [key for key in raw if key != "Doctor"]
    if others:
        msg = 'the doctor is an event of its own: send {"Doctor": true} and nothing else'
        raise RefusedValue(msg, _key_name(others[0]))
    _check(check_doctor, raw["Doctor"], "Doctor")
    return DoctorCommand(trigger="direct", event_id=None)


def _parse_restore(raw: dict[Any, Any]) -> RestoreCommand:
    """``{"Restore": {"ImageId": …, "TOSBucket"?, "TOSPrefix"?, "ImageName"?}}``: an event of its own."""
    others = [key for key in raw if key != "Restore"]
    if others:
        msg = "a restore is an event of its own: move TOSBucket and TOSPrefix inside Restore, remove the rest"
        raise RefusedValue(msg, _key_name(others[0]))
    restore = raw["Restore"]
    if not isinstance(restore, Mapping):
        msg = f'expected an object like {{"ImageId": "image-…"}}, got {shown(restore)}'
        raise RefusedValue(msg, "Restore")
    _refuse_unknown_keys(restore, _RESTORE_KEYS, "Restore", "a restore")
    if restore.get("ImageId") is None:
        raise RefusedValue(
            "missing: expected the source image's id, whose export is restored", "Restore.ImageId"
        )
    return RestoreCommand(
        trigger="direct",
        event_id=None,
        image_id=_check(check_image_id, restore["ImageId"], "Restore.ImageId"),
        tos_bucket=_optional(check_bucket, restore, "TOSBucket", "Restore"),
        tos_prefix=_optional(check_prefix, restore, "TOSPrefix", "Restore"),
        image_name=_optional(check_image_name, restore, "ImageName", "Restore"),
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
        msg += f"; also unknown: {clip(', '.join(_key_name(key) for key in unknown[1:6]))}"
    raise RefusedValue(msg, _join(prefix, _key_name(first)))


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
