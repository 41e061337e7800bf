"""The TOS client for a bucket's lifecycle rules, for deploying: GET, PUT and DELETE ``/?lifecycle`` on the
bucket (docs/facts.md §15), sent by the function's own TOS engine (``handler.adapters.tos.tos_sender``: the
same signer, retries and masking). The function never makes these requests, so they live here.

The rules are read as JSON and each rule is kept as the JSON object TOS sent, every field in its order, so
that a merge can send the other rules back exactly as they were. An answer that cannot be held that way (not
JSON, ``Rules`` not a list of objects, a key written twice in one object) is a ``MalformedResponse``: a rule
that was misread would be written back changed.

A bucket without rules answers 404 ``NoSuchLifecycleConfiguration`` (S3's code; TOS's own is not confirmed):
only that code reads as "no rules"; any other 404 is an error, so that a rule set is never taken for empty
and overwritten. A PUT replaces every rule, so it always carries the whole set; it goes with its
``Content-MD5`` (as the official SDK sends it) and keeps the bucket's ``x-tos-allow-same-action-overlap``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from handler.adapters.exchange import Answer
from handler.adapters.signed import Mask, SignedSender
from handler.adapters.tos import answer_code, answer_error, bucket_url, tos_request_id
from handler.errors import MalformedResponse, error_for
from handler.models.settings import BUCKET_PATTERN

__all__ = [
    "DELETE_LIFECYCLE",
    "GET_LIFECYCLE",
    "MAX_LIFECYCLE_BYTES",
    "NO_LIFECYCLE_CODE",
    "OVERLAP_HEADER",
    "PUT_LIFECYCLE",
    "BucketLifecycle",
    "LifecycleClient",
    "lifecycle_body",
]

GET_LIFECYCLE = "GetBucketLifecycle"
PUT_LIFECYCLE = "PutBucketLifecycle"
DELETE_LIFECYCLE = "DeleteBucketLifecycle"
NO_LIFECYCLE_CODE = "NoSuchLifecycleConfiguration"
OVERLAP_HEADER = "x-tos-allow-same-action-overlap"
# A rule is a few hundred bytes and a bucket holds at most 1000: an answer larger than this is not read.
MAX_LIFECYCLE_BYTES = 4 * 1024 * 1024
_ERROR_BYTES = 64 * 1024
_QUERY = {"lifecycle": ""}

Rule = dict[str, Any]


@dataclass(frozen=True, slots=True)
class BucketLifecycle:
    """A bucket's lifecycle rules as TOS answered them (empty: it has none), each the JSON object it sent,
    and whether the bucket allows rules with the same action on overlapping prefixes."""

    bucket: str
    rules: tuple[Rule, ...]
    allow_overlap: bool = False
    request_id: str | None = None


def lifecycle_body(rules: Sequence[Rule]) -> bytes:
    """The PUT body for ``rules``: ``{"Rules": [...]}`` as compact UTF-8 JSON, each rule's fields in order."""
    return json.dumps({"Rules": list(rules)}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class LifecycleClient:
    """A bucket's lifecycle rules over TOS (``endpoint``: scheme + host[:port]), all within one deadline (a
    ``clock.monotonic()`` value of the sender's clock)."""

    def __init__(self, sender: SignedSender, endpoint: str, *, deadline: float) -> None:
        self._sender = sender
        self._endpoint = endpoint.rstrip("/")
        self._deadline = deadline

    def get(self, bucket: str) -> BucketLifecycle:
        """Every rule of ``bucket`` (none when it has none). ``NoSuchBucket`` is ``BucketNotFound``; a rule
        set that cannot be read rule for rule is ``MalformedResponse``."""
        _check_bucket(bucket, GET_LIFECYCLE)
        return self._sender.send(
            GET_LIFECYCLE,
            "GET",
            bucket_url(self._endpoint, bucket, _QUERY),
            deadline=self._deadline,
            idempotent=True,
            read=lambda answer, mask: (_lifecycle(answer, bucket, mask), tos_request_id(answer)),
            max_bytes=lambda status: MAX_LIFECYCLE_BYTES if status == 200 else _ERROR_BYTES,
        )

    def put(self, bucket: str, rules: Sequence[Rule], *, allow_overlap: bool = False) -> None:
        """Replace every rule of ``bucket`` with ``rules`` (at least one: ``delete`` removes them all). The
        same body again has the same effect, so a lost answer is sent again."""
        _check_bucket(bucket, PUT_LIFECYCLE)
        if not rules:
            msg = "a PutBucketLifecycle carries at least one rule: remove them all with delete()"
            raise ValueError(msg)
        body = lifecycle_body(rules)
        headers = {
            "Content-Type": "application/json",
            "Content-MD5": base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode(),
        }
        if allow_overlap:
            headers[OVERLAP_HEADER] = "true"
        self._sender.send(
            PUT_LIFECYCLE,
            "PUT",
            bucket_url(self._endpoint, bucket, _QUERY),
            deadline=self._deadline,
            idempotent=True,
            read=lambda answer, mask: _done(answer, mask, PUT_LIFECYCLE),
            max_bytes=_ERROR_BYTES,
            content=body,
            headers=headers,
        )

    def delete(self, bucket: str) -> None:
        """Remove every rule of ``bucket`` (204, also when it had none)."""
        _check_bucket(bucket, DELETE_LIFECYCLE)
        self._sender.send(
            DELETE_LIFECYCLE,
            "DELETE",
            bucket_url(self._endpoint, bucket, _QUERY),
            deadline=self._deadline,
            idempotent=True,
            read=lambda answer, mask: _done(answer, mask, DELETE_LIFECYCLE),
            max_bytes=_ERROR_BYTES,
        )


def _check_bucket(bucket: str, action: str) -> None:
    if not BUCKET_PATTERN.match(bucket):
        msg = f"bucket {bucket!r}: expected 3-63 lowercase letters, digits or hyphens"
        raise error_for("InvalidBucketName", msg, action=action)


def _malformed(answer: Answer, what: str) -> MalformedResponse:
    msg = f"{GET_LIFECYCLE} answered {what}: the rules cannot be kept as they are, so none is written"
    return MalformedResponse(
        msg, http_status=answer.status, request_id=tos_request_id(answer), action=GET_LIFECYCLE
    )


def _lifecycle(answer: Answer, bucket: str, mask: Mask) -> BucketLifecycle:
    if answer.status == 404 and answer_code(answer) == NO_LIFECYCLE_CODE:
        return BucketLifecycle(bucket, (), request_id=tos_request_id(answer))
    if answer.status >= 300:
        raise answer_error(answer, mask, GET_LIFECYCLE, missing="NoSuchBucket")
    if answer.status != 200:
        raise _malformed(answer, f"HTTP {answer.status} where the rules were expected")
    if not answer.complete or answer.encoding != "identity":
        raise _malformed(answer, f"rules larger than {MAX_LIFECYCLE_BYTES} bytes (or compressed)")
    try:
        document = json.loads(answer.body, object_pairs_hook=_unique_keys)
    except _DuplicateKey as twice:
        raise _malformed(answer, f"an object with the key {twice.key[:60]!r} twice") from None
    except (ValueError, RecursionError):
        raise _malformed(answer, "rules that are not JSON") from None
    rules = document.get("Rules") if isinstance(document, dict) else None
    if not isinstance(rules, list) or not all(isinstance(rule, dict) for rule in rules):
        raise _malformed(answer, 'something other than {"Rules": [rule objects]}')
    overlap = (answer.headers.get(OVERLAP_HEADER) or "").strip().lower() == "true"
    return BucketLifecycle(bucket, tuple(rules), overlap, tos_request_id(answer))


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict in its own order; a key written twice is refused (a dict would keep one)."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = value
    return found


def _done(answer: Answer, mask: Mask, action: str) -> tuple[None, str | None]:
    if answer.status >= 300:
        raise answer_error(answer, mask, action, missing="NoSuchBucket")
    if answer.status not in (200, 204):
        msg = f"{action} answered HTTP {answer.status} where 200 or 204 was expected"
        raise MalformedResponse(
            msg, http_status=answer.status, request_id=tos_request_id(answer), action=action
        )
    return None, tos_request_id(answer)
