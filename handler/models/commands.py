"""The commands an event becomes (a scan, an export of named images, a restore, the doctor) and the rules their
values follow.

The rules raise :class:`RefusedValue` with what was expected and what came (values echoed are cut to about 60
characters); the event parser (``handler.models.events``) adds the field's path, and the models apply the same
rules when built directly.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainValidator

from handler.models.results import Trigger
from handler.models.settings import BUCKET_PATTERN, MAX_HOURS, PREFIX_PATTERN

__all__ = [
    "IMAGE_ID_PATTERN",
    "MAX_IMAGE_IDS",
    "MAX_LOOKBACK_HOURS",
    "Command",
    "DoctorCommand",
    "ExportCommand",
    "ExportingCommand",
    "RefusedValue",
    "RestoreCommand",
    "ScanCommand",
    "TargetedCommand",
    "check_bucket",
    "check_doctor",
    "check_force",
    "check_image_id",
    "check_image_ids",
    "check_image_name",
    "check_image_name_prefix",
    "check_lookback_hours",
    "check_prefix",
    "check_tags",
    "clip",
    "shown",
]

# A custom image id, e.g. image-ybqi99s7yq8rx7mnk44b. \A and \Z so that ``match`` never lets a newline through.
IMAGE_ID_PATTERN = re.compile(r"\Aimage-[a-z0-9]{1,64}\Z")
MAX_IMAGE_IDS = 100  # DescribeImages / DescribeTasks take at most 100 ids per call (docs/facts.md §3)
MAX_LOOKBACK_HOURS = MAX_HOURS  # one year, as for the settings' hours

MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
MAX_IMAGE_NAME_PREFIX = 128
MAX_IMAGE_NAME = 128  # ECS image names: 1-128 characters
_EXAMPLE_IMAGE_ID = "image-ybqi99s7yq8rx7mnk44b"
_ECHO_LIMIT = 60

T = TypeVar("T")


class RefusedValue(ValueError):
    """A value or shape was refused; ``where`` is the path relative to the value being checked."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.where = where


def clip(text: str) -> str:
    """``text`` cut to about 60 characters, for a message."""
    return text if len(text) <= _ECHO_LIMIT else text[: _ECHO_LIMIT - 1] + "…"


def shown(value: object) -> str:
    """What was received, for a message: a short repr of a scalar, the kind of anything else."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)  # null, true, false: the event's own spelling
    if isinstance(value, int) and value.bit_length() > 64:
        return "a very large number"
    if isinstance(value, (str, int, float)):
        return clip(repr(value))
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, Mapping):
        return "an object"
    return f"a value of type {type(value).__name__}"


def check_image_id(value: object) -> str:
    if isinstance(value, str) and IMAGE_ID_PATTERN.match(value):
        return value
    raise RefusedValue(f"expected an image id like {_EXAMPLE_IMAGE_ID}, got {shown(value)}")


def check_force(value: object) -> bool:
    """``Force``: a JSON boolean (a string or a number is refused, so that "false" never means yes)."""
    if not isinstance(value, bool):
        raise RefusedValue(f"expected true or false, got {shown(value)}")
    return value


def check_doctor(value: object) -> bool:
    """``Doctor``: exactly ``true``; anything else (``false``, ``"true"``, 1) is refused rather than read as a
    request to do something else."""
    if value is not True:
        raise RefusedValue(f"expected true (the doctor runs its checks), got {shown(value)}")
    return True


def check_image_ids(value: object) -> tuple[str, ...]:
    """1 to 100 image ids, duplicates dropped, first-seen order kept."""
    if not isinstance(value, (list, tuple)):
        raise RefusedValue(f"expected a list of image ids, got {shown(value)}")
    seen: dict[str, None] = {}
    for index, item in enumerate(value):
        try:
            seen[check_image_id(item)] = None
        except RefusedValue as exc:
            raise RefusedValue(exc.message, f"[{index}]") from None
        if len(seen) > MAX_IMAGE_IDS:
            msg = f"expected at most {MAX_IMAGE_IDS} image ids, got more: split the batch into several events"
            raise RefusedValue(msg)
    if not seen:
        raise RefusedValue(f"expected 1 to {MAX_IMAGE_IDS} image ids, got an empty list")
    return tuple(seen)


def check_bucket(value: object) -> str:
    if isinstance(value, str) and BUCKET_PATTERN.fullmatch(value):
        return value
    msg = "expected a TOS bucket name: 3-63 lowercase letters, digits or hyphens, no hyphen at either end"
    raise RefusedValue(f"{msg}, got {shown(value)}")


def check_prefix(value: object) -> str:
    if isinstance(value, str) and PREFIX_PATTERN.fullmatch(value):
        return value
    raise RefusedValue(f"expected a file-name prefix of 1-30 letters and digits, got {shown(value)}")


def check_lookback_hours(value: object) -> float:
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
    raise RefusedValue(f"{msg}, got {shown(value)}")


def check_image_name_prefix(value: object) -> str | None:
    """The start of the image names to keep; an empty string means no filter."""
    if isinstance(value, str) and len(value) <= MAX_IMAGE_NAME_PREFIX:
        return value or None
    msg = f"expected a string of at most {MAX_IMAGE_NAME_PREFIX} characters"
    raise RefusedValue(f"{msg}, got {shown(value)}")


def check_image_name(value: object) -> str:
    """A new image's name (a restore's ``ImageName``): 1-128 characters on one line."""
    if isinstance(value, str) and 0 < len(value) <= MAX_IMAGE_NAME and value.isprintable() and value.strip():
        return value
    msg = f"expected an image name of 1-{MAX_IMAGE_NAME} printable characters"
    raise RefusedValue(f"{msg}, got {shown(value)}")


def check_tags(value: object) -> dict[str, str]:
    """Tag key to value; an image must carry every one of them to be scanned."""
    if not isinstance(value, Mapping):
        raise RefusedValue(f"expected an object of tag key to value, got {shown(value)}")
    if len(value) > MAX_TAGS:
        raise RefusedValue(f"expected at most {MAX_TAGS} tags, got {len(value)}")
    tags: dict[str, str] = {}
    for key, tag_value in value.items():
        if not isinstance(key, str) or not 0 < len(key) <= MAX_TAG_KEY:
            raise RefusedValue(f"expected tag keys of 1-{MAX_TAG_KEY} characters, got {shown(key)}")
        if not isinstance(tag_value, str) or len(tag_value) > MAX_TAG_VALUE:
            msg = f"expected a string of at most {MAX_TAG_VALUE} characters"
            raise RefusedValue(f"{msg}, got {shown(tag_value)}", clip(key))
        tags[key] = tag_value
    return tags


def _or_none(rule: Callable[[object], T]) -> Callable[[object], T | None]:
    def check(value: object) -> T | None:
        return None if value is None else rule(value)

    return check


class ScanCommand(BaseModel):
    """Look for recent private images (DescribeImages) and export each: a timer whose payload names no image."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    trigger: Literal["timer", "http"]
    event_id: str | None = None
    tos_bucket: Annotated[str | None, PlainValidator(_or_none(check_bucket))] = None
    tos_prefix: Annotated[str | None, PlainValidator(_or_none(check_prefix))] = None
    lookback_hours: Annotated[float | None, PlainValidator(_or_none(check_lookback_hours))] = None
    image_name_prefix: Annotated[str | None, PlainValidator(_or_none(check_image_name_prefix))] = None
    tags: Annotated[dict[str, str], PlainValidator(check_tags)] = Field(default_factory=dict)


class ExportCommand(BaseModel):
    """Export exactly these images (1 to 100, no duplicates, in the order they were named)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    trigger: Trigger
    event_id: str | None = None
    image_ids: Annotated[tuple[str, ...], PlainValidator(check_image_ids)]
    tos_bucket: Annotated[str | None, PlainValidator(_or_none(check_bucket))] = None
    tos_prefix: Annotated[str | None, PlainValidator(_or_none(check_prefix))] = None
    # Export again even when an earlier export succeeded (never while one is pending or running).
    force: bool = False


class RestoreCommand(BaseModel):
    """Import one image's newest verified export back into ECS (the ``Restore`` event)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    trigger: Trigger
    event_id: str | None = None
    image_id: Annotated[str, PlainValidator(check_image_id)]
    tos_bucket: Annotated[str | None, PlainValidator(_or_none(check_bucket))] = None
    tos_prefix: Annotated[str | None, PlainValidator(_or_none(check_prefix))] = None
    image_name: Annotated[str | None, PlainValidator(_or_none(check_image_name))] = None


class DoctorCommand(BaseModel):
    """Run the doctor's checks with the function's own identity and settings (the ``Doctor`` event): nothing
    is exported; a probe object is written and deleted."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    trigger: Trigger
    event_id: str | None = None


ExportingCommand: TypeAlias = ScanCommand | ExportCommand  # the commands that export
TargetedCommand: TypeAlias = ScanCommand | ExportCommand | RestoreCommand  # the commands with a destination
Command: TypeAlias = ScanCommand | ExportCommand | RestoreCommand | DoctorCommand


def is_timer(command: ExportingCommand) -> bool:
    """A timer invocation: a scan (only timers scan, also through the HTTP trigger), or a timer naming images."""
    return isinstance(command, ScanCommand) or command.trigger == "timer"


def forced(command: ExportingCommand) -> frozenset[str]:
    """The images exported again even after a succeeded export (``Force``): none but an export's, when asked."""
    if isinstance(command, ExportCommand) and command.force:
        return frozenset(command.image_ids)
    return frozenset()
