"""Tag requests of the emulated ECS API, read and checked: ``TagResources`` and ``UntagResources``
(docs/facts.md §10; DescribeImages' ``TagFilters`` are read by ``exporter_tools.emulator.query``).

The limits are the documented ones: ``ResourceIds.N`` 1-50, ``Tags.N`` 1-20 a call, at most 50 tags on a
resource, keys of 1-128 letters, digits, spaces and ``_ . : / = + - @`` that never start with ``volc:`` or
``sys:`` (in any case), values of at most 256 characters. The error codes are plausible, not confirmed: the
documentation names the rules, not the codes a refusal carries. ``MissingParameter.<Name>`` and
``InvalidParameter.<Name>`` follow the shape of ExportImage's documented codes; ``InvalidTagKey.Malformed``,
``InvalidTagValue.Malformed`` and ``QuotaExceeded.TagsPerResource`` are guesses in the same style.

A ``TagRefusal`` is a rule the account holds beyond the documented limits, as a tag policy would: a
TagResources that sets one key to one value on one image is refused whole (400, by default the guessed code
``OperationDenied.TagPolicy``), while the same image takes any other tag. Tests use it for a retag that keeps
failing (``EcsService.refuse_tag``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from exporter_tools.emulator.query import InvalidRequest

__all__ = [
    "MAX_RESOURCE_IDS",
    "MAX_TAGS_PER_CALL",
    "MAX_TAGS_PER_RESOURCE",
    "RESOURCE_TYPES",
    "TAG_POLICY_CODE",
    "TagRefusal",
    "TagRequestError",
    "TagUpdate",
    "apply_tag_update",
    "check_tag_key",
    "parse_tag_resources",
    "parse_tags",
    "parse_untag_resources",
]

MAX_RESOURCE_IDS = 50
MAX_TAGS_PER_CALL = 20
MAX_TAGS_PER_RESOURCE = 50
MAX_KEY_LENGTH = 128
MAX_VALUE_LENGTH = 256
RESOURCE_TYPES = frozenset({"instance", "image", "reservedinstance", "scheduledinstance", "keypair"})
TAG_POLICY_CODE = "OperationDenied.TagPolicy"  # a guess, as the codes above
_KEY_SYMBOLS = frozenset(" _.:/=+-@")
_RESERVED_PREFIXES = ("volc:", "sys:")


class TagRequestError(InvalidRequest):
    """A tag request the API refuses: HTTP status, error code and a message naming the parameter."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class TagUpdate:
    """One checked TagResources (``tags`` to set) or UntagResources (``keys`` to remove) request."""

    resource_type: str
    resource_ids: tuple[str, ...]
    tags: tuple[tuple[str, str], ...] = ()
    keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TagRefusal:
    """A TagResources that sets ``key`` to ``value`` on ``image_id`` is refused, whole, with this error."""

    image_id: str
    key: str
    value: str
    status: int = 400
    code: str = TAG_POLICY_CODE

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            msg = "a tag refusal answers an HTTP error status (400-599)"
            raise ValueError(msg)

    def refuses(self, update: TagUpdate) -> bool:
        """Whether this rule refuses ``update``: it sets the rule's key to its value on the rule's image."""
        return self.image_id in update.resource_ids and (self.key, self.value) in update.tags

    def error(self) -> TagRequestError:
        msg = f"the image {self.image_id} may not be tagged {self.key}={self.value} (emulator: refuse_tag)"
        return TagRequestError(self.status, self.code, msg)


def parse_tag_resources(query: Mapping[str, str]) -> TagUpdate:
    """``ResourceType``, ``ResourceIds.N`` and ``Tags.N.Key`` / ``Tags.N.Value``, checked (``parse_tags``;
    at least one tag)."""
    resource_type, ids = _resources(query)
    if not _numbered(query, "Tags", ".Key"):
        raise TagRequestError(400, "MissingParameter.Tags", "the parameter Tags.N.Key is required")
    return TagUpdate(resource_type, ids, tags=parse_tags(query, at_most=MAX_TAGS_PER_CALL))


def parse_tags(query: Mapping[str, str], *, at_most: int) -> tuple[tuple[str, str], ...]:
    """``Tags.N.Key`` / ``Tags.N.Value`` in N order, checked: at most ``at_most`` (none is no error here), a
    missing value is ``""``, a key given twice in one call is refused. TagResources and ImportImage read
    them."""
    keys = _numbered(query, "Tags", ".Key")
    values = dict(_numbered(query, "Tags", ".Value"))
    if len(keys) > at_most:
        msg = f"Tags.N takes at most {at_most} tags a call, not {len(keys)}"
        raise TagRequestError(400, "InvalidParameter.Tags", msg)
    if stray := sorted(set(values) - {n for n, _ in keys}):
        msg = f"Tags.{stray[0]}.Value has no Tags.{stray[0]}.Key"
        raise TagRequestError(400, "MissingParameter.Tags", msg)
    tags: list[tuple[str, str]] = []
    for n, key in keys:
        check_tag_key(key, f"Tags.{n}.Key")
        value = values.get(n, "")
        if len(value) > MAX_VALUE_LENGTH:
            msg = f"Tags.{n}.Value is {len(value)} characters long; at most {MAX_VALUE_LENGTH} are allowed"
            raise TagRequestError(400, "InvalidTagValue.Malformed", msg)
        if any(key == seen for seen, _ in tags):
            raise TagRequestError(400, "InvalidParameter.Tags", f"Tags.{n}.Key repeats the key {key!r}")
        tags.append((key, value))
    return tuple(tags)


def parse_untag_resources(query: Mapping[str, str]) -> TagUpdate:
    """``ResourceType``, ``ResourceIds.N`` and ``TagKeys.N`` (1-20 keys, the same limit as Tags.N: the
    documentation gives none), checked."""
    resource_type, ids = _resources(query)
    keys = [key for _, key in _numbered(query, "TagKeys", "")]
    if not keys:
        raise TagRequestError(400, "MissingParameter.TagKeys", "the parameter TagKeys.N is required")
    if len(keys) > MAX_TAGS_PER_CALL:
        msg = f"TagKeys.N takes 1 to {MAX_TAGS_PER_CALL} keys a call, not {len(keys)}"
        raise TagRequestError(400, "InvalidParameter.TagKeys", msg)
    for n, key in enumerate(keys, start=1):
        if not key:
            raise TagRequestError(400, "InvalidTagKey.Malformed", f"TagKeys.{n} is empty")
    return TagUpdate(resource_type, ids, keys=tuple(dict.fromkeys(keys)))


def apply_tag_update(
    update: TagUpdate, tags_of: Mapping[str, dict[str, str]], refusals: Iterable[TagRefusal] = ()
) -> None:
    """Apply a checked request to the tags of each resource (``tags_of``: resource id -> its tags, changed in
    place), all or nothing: every resource must exist, none may end up with more than 50 tags, and no
    ``refusals`` rule may refuse it. A key already there gets the new value; removing an absent key is no
    error."""
    if missing := [i for i in update.resource_ids if i not in tags_of]:
        raise TagRequestError(404, "InvalidImage.NotFound", f"the image {missing[0]} does not exist")
    for refusal in refusals:
        if refusal.refuses(update):
            raise refusal.error()
    for resource_id in update.resource_ids:
        after = {**tags_of[resource_id], **dict(update.tags)}
        if len(after) > MAX_TAGS_PER_RESOURCE:
            msg = f"the image {resource_id} would have {len(after)} tags; at most {MAX_TAGS_PER_RESOURCE}"
            raise TagRequestError(400, "QuotaExceeded.TagsPerResource", msg)
    for resource_id in update.resource_ids:
        tags = tags_of[resource_id]
        tags.update(update.tags)
        for key in update.keys:
            tags.pop(key, None)


def check_tag_key(key: str, name: str) -> None:
    """Refuse a key the documented rules do not allow, naming the parameter ``name``."""
    if not key:
        raise TagRequestError(400, "MissingParameter.Tags", f"{name} is empty")
    if len(key) > MAX_KEY_LENGTH:
        msg = f"{name} is {len(key)} characters long; at most {MAX_KEY_LENGTH} are allowed"
        raise TagRequestError(400, "InvalidTagKey.Malformed", msg)
    if key.lower().startswith(_RESERVED_PREFIXES):
        msg = f"{name} starts with a reserved prefix (volc: or sys:, in any case)"
        raise TagRequestError(400, "InvalidTagKey.Malformed", msg)
    if bad := [ch for ch in key if not (ch.isalnum() or ch in _KEY_SYMBOLS)]:
        msg = f"{name} holds {bad[0]!r}: only letters, digits, spaces and _ . : / = + - @ are allowed"
        raise TagRequestError(400, "InvalidTagKey.Malformed", msg)


def _resources(query: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    resource_type = query.get("ResourceType", "")
    if not resource_type:
        raise TagRequestError(400, "MissingParameter.ResourceType", "the parameter ResourceType is required")
    if resource_type not in RESOURCE_TYPES:
        msg = f"ResourceType must be one of {', '.join(sorted(RESOURCE_TYPES))}, not {resource_type!r}"
        raise TagRequestError(400, "InvalidParameter.ResourceType", msg)
    ids = [value for _, value in _numbered(query, "ResourceIds", "")]
    if not ids or not all(ids):
        raise TagRequestError(
            400, "MissingParameter.ResourceIds", "the parameter ResourceIds.N is required (1 to 50 ids)"
        )
    if len(ids) > MAX_RESOURCE_IDS:
        msg = f"ResourceIds.N takes 1 to {MAX_RESOURCE_IDS} ids, not {len(ids)}"
        raise TagRequestError(400, "InvalidParameter.ResourceIds", msg)
    return resource_type, tuple(dict.fromkeys(ids))


def _numbered(query: Mapping[str, str], name: str, suffix: str) -> list[tuple[int, str]]:
    """``(N, value)`` of every ``<name>.N<suffix>`` parameter, in N order."""
    pattern = re.compile(rf"{re.escape(name)}\.(\d+){re.escape(suffix)}")
    return sorted((int(m.group(1)), value) for key, value in query.items() if (m := pattern.fullmatch(key)))
