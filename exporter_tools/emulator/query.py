"""Reading an OpenAPI query as the ECS API does: numbered lists (``Name.N``), tag filters, page sizes and
cursors (``NextToken``). A request the API refuses raises ``InvalidRequest``, which carries its answer.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from exporter_tools.emulator.api import ApiAnswer

__all__ = [
    "MAX_IDS",
    "InvalidRequest",
    "flag",
    "listed",
    "page",
    "page_size",
    "tag_filters",
    "tag_matches",
]

MAX_IDS = 100  # ImageIds.N, TaskIds.N, ResourceIds.N, MaxResults
_T = TypeVar("_T")


class InvalidRequest(Exception):
    """A request the API refuses; carries the answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.answer = ApiAnswer.error(status, code, message)


def listed(query: Mapping[str, str], name: str) -> list[str]:
    """The values of ``Name.1``, ``Name.2``… in order; more than 100 is refused as the API does."""
    pattern = re.compile(rf"^{re.escape(name)}\.(\d+)$")
    numbered = sorted((int(m.group(1)), value) for key, value in query.items() if (m := pattern.match(key)))
    if len(numbered) > MAX_IDS:
        raise InvalidRequest(400, "InvalidParameter", f"{name}.N takes at most {MAX_IDS} values")
    return [value for _, value in numbered if value]


def flag(query: Mapping[str, str], name: str, *, default: bool) -> bool:
    """A Boolean parameter: ``true`` or ``false`` (any case; the SDK sends lower case), ``default`` when
    absent or empty; anything else is refused naming it."""
    text = query.get(name, "").lower()
    if not text:
        return default
    if text not in ("true", "false"):
        raise InvalidRequest(
            400, f"InvalidParameter.{name}", f"{name} must be true or false, not {query[name]!r}"
        )
    return text == "true"


def tag_filters(query: Mapping[str, str]) -> list[tuple[str, tuple[str, ...]]]:
    """DescribeImages' ``TagFilters.N.Key`` with its ``TagFilters.N.Values.M``, in N order: (key, values).

    An image matches when it matches every filter (AND); a filter matches an image that has the key with one
    of the values (OR), or with any value when the filter lists none (``tag_matches``). A ``Values.M``
    without its ``Key``, or an empty ``Key``, is refused naming the filter (the code is not confirmed)."""
    keys: dict[int, str] = {}
    values: dict[int, list[tuple[int, str]]] = {}
    for name, value in query.items():
        if m := re.fullmatch(r"TagFilters\.(\d+)\.Key", name):
            keys[int(m.group(1))] = value
        elif m := re.fullmatch(r"TagFilters\.(\d+)\.Values\.(\d+)", name):
            values.setdefault(int(m.group(1)), []).append((int(m.group(2)), value))
    if orphans := sorted(set(values) - set(keys)):
        msg = f"TagFilters.{orphans[0]}.Values.M needs its TagFilters.{orphans[0]}.Key"
        raise InvalidRequest(400, "InvalidParameter.TagFilters", msg)
    if empty := sorted(n for n, key in keys.items() if not key):
        raise InvalidRequest(400, "InvalidParameter.TagFilters", f"TagFilters.{empty[0]}.Key is empty")
    return [(keys[n], tuple(v for _, v in sorted(values.get(n, [])))) for n in sorted(keys)]


def tag_matches(tags: Mapping[str, str], filters: Sequence[tuple[str, Sequence[str]]]) -> bool:
    """True when ``tags`` pass every filter of ``tag_filters``."""
    return all(key in tags and (not allowed or tags[key] in allowed) for key, allowed in filters)


def page_size(query: Mapping[str, str], *, default: int) -> int:
    text = query.get("MaxResults")
    if not text:
        return default
    try:
        size = int(text)
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_IDS:
        raise InvalidRequest(400, "InvalidParameter", f"MaxResults must be an integer from 1 to {MAX_IDS}")
    return size


def page(
    ordered: list[_T], key: Callable[[_T], tuple[float, str]], query: Mapping[str, str], size: int
) -> tuple[list[_T], str]:
    """One page after the cursor in ``NextToken`` (the sort key of the last item seen), and the next cursor
    ("" on the last page). A cursor, not an offset: a task created between two pages shifts nothing."""
    after = decode_token(query.get("NextToken") or "")
    rest = [item for item in ordered if after is None or key(item) > after]
    page = rest[:size]
    token = encode_token(key(page[-1])) if len(rest) > size else ""
    return page, token


def encode_token(cursor: tuple[float, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(cursor)).encode()).decode().rstrip("=")


def decode_token(token: str) -> tuple[float, str] | None:
    if not token:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return float(value[0]), str(value[1])
    except (ValueError, TypeError, IndexError, KeyError, binascii.Error):
        raise InvalidRequest(400, "InvalidParameter", "the NextToken is not one this API returned") from None
