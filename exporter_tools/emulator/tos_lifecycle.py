"""The emulated TOS's bucket lifecycle: the rules of each bucket, and the checks a PutBucketLifecycle body gets.

``GET /?lifecycle`` answers ``{"Rules": [...]}`` (docs/facts.md §15), or 404 ``NoSuchLifecycleConfiguration``
when the bucket has none: that code is S3's for the same case; which code TOS answers is not confirmed.
``PUT /?lifecycle`` replaces every rule with the body's; ``DELETE /?lifecycle`` removes them all (204).

Each rule is kept exactly as it was sent, fields the emulator does not know included and in their order, and
answered back the same way: a caller that merges its own rule into the others can be held to leaving them as
they were. The checks are the emulator's own, in the spirit of S3's (TOS's exact ones are not published): a
JSON object with 1 to ``MAX_RULES`` rules, each with a unique ``ID`` and a ``Status`` of ``Enabled`` or
``Disabled``, at least one action, transitions to a storage class TOS has (not ``STANDARD``; ``COLD_ARCHIVE``
only in ``COLD_ARCHIVE_REGIONS``), whole numbers of days, and a ``Content-MD5`` that matches the body when one
is sent (the official SDK sends one). The field of the abort action is ``AbortIncompleteMultipartUpload``, as
the official SDK writes and reads it (docs/facts.md spells it ``AbortInCompleteMultipartUpload``, the SDK
class's name).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "ABORT_FIELD",
    "COLD_ARCHIVE_REGIONS",
    "MAX_RULES",
    "NO_LIFECYCLE_CODE",
    "OVERLAP_HEADER",
    "TRANSITION_CLASSES",
    "LifecycleRefused",
    "checked_rules",
]

NO_LIFECYCLE_CODE = "NoSuchLifecycleConfiguration"
OVERLAP_HEADER = "x-tos-allow-same-action-overlap"
ABORT_FIELD = "AbortIncompleteMultipartUpload"
MAX_RULES = 1000
MAX_BODY_BYTES = 1024 * 1024
TRANSITION_CLASSES: Final = frozenset(
    {"IA", "ARCHIVE_FR", "INTELLIGENT_TIERING", "ARCHIVE", "COLD_ARCHIVE", "DEEP_COLD_ARCHIVE"}
)
COLD_ARCHIVE_REGIONS: Final = ("cn-beijing", "cn-shanghai")
_ACTIONS: Final = (
    "Transitions",
    "Expiration",
    "NoncurrentVersionTransitions",
    "NoncurrentVersionExpiration",
    "AccessTimeTransitions",
    "NoncurrentVersionAccessTimeTransitions",
    ABORT_FIELD,
)


class LifecycleRefused(Exception):
    """A PutBucketLifecycle body the emulator refuses: the HTTP status, the code and what is wrong."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _refuse(message: str, code: str = "InvalidArgument") -> LifecycleRefused:
    return LifecycleRefused(400, code, message)


def checked_rules(body: bytes, headers: Mapping[str, str], *, region: str) -> list[dict[str, Any]]:
    """The rules of a PutBucketLifecycle body, as sent; ``LifecycleRefused`` says what is wrong with it."""
    if len(body) > MAX_BODY_BYTES:
        raise _refuse(f"the lifecycle configuration is larger than {MAX_BODY_BYTES} bytes")
    _check_digest(body, headers.get("content-md5"))
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise _refuse("the body is not JSON", "MalformedBody") from None
    rules = document.get("Rules") if isinstance(document, dict) else None
    if not isinstance(rules, list) or not 1 <= len(rules) <= MAX_RULES:
        raise _refuse(f'expected {{"Rules": [...]}} with 1 to {MAX_RULES} rules', "MalformedBody")
    seen: set[str] = set()
    for index, rule in enumerate(rules):
        rule_id = _check_rule(rule, index, region)
        if rule_id in seen:
            raise _refuse(f"Rules[{index}]: the ID {rule_id!r} is used by another rule")
        seen.add(rule_id)
    return rules


def _check_digest(body: bytes, content_md5: str | None) -> None:
    if content_md5 is None:
        return
    try:
        given = base64.b64decode(content_md5.strip(), validate=True)
    except (ValueError, binascii.Error):
        given = b""
    if given != hashlib.md5(body, usedforsecurity=False).digest():
        raise _refuse("the Content-MD5 is not the body's", "InvalidDigest")


def _check_rule(rule: object, index: int, region: str) -> str:
    where = f"Rules[{index}]"
    if not isinstance(rule, dict):
        raise _refuse(f"{where}: expected an object")
    rule_id = rule.get("ID")
    if not isinstance(rule_id, str) or not 1 <= len(rule_id) <= 255:
        raise _refuse(f"{where}.ID: expected 1-255 characters")
    if rule.get("Status") not in ("Enabled", "Disabled"):
        raise _refuse(f"{where}.Status: expected Enabled or Disabled")
    if "Prefix" in rule and not isinstance(rule["Prefix"], str):
        raise _refuse(f"{where}.Prefix: expected a string")
    if not any(rule.get(action) for action in _ACTIONS):
        raise _refuse(f"{where}: expected at least one action ({', '.join(_ACTIONS)})")
    transitions = rule.get("Transitions", [])
    if not isinstance(transitions, list):
        raise _refuse(f"{where}.Transitions: expected a list")
    for number, transition in enumerate(transitions):
        _check_transition(transition, f"{where}.Transitions[{number}]", region)
    expiration = rule.get("Expiration")
    dated = isinstance(expiration, dict) and (
        _days(expiration.get("Days"), 1) or isinstance(expiration.get("Date"), str)
    )
    if expiration is not None and not dated:
        raise _refuse(f"{where}.Expiration: expected Days (1 or more) or a Date")
    abort = rule.get(ABORT_FIELD)
    if abort is not None and not (isinstance(abort, dict) and _days(abort.get("DaysAfterInitiation"), 1)):
        raise _refuse(
            f"{where}.{ABORT_FIELD}.DaysAfterInitiation: expected a whole number of days, 1 or more"
        )
    return rule_id


def _check_transition(transition: object, where: str, region: str) -> None:
    if not isinstance(transition, dict):
        raise _refuse(f"{where}: expected an object")
    storage_class = transition.get("StorageClass")
    if storage_class not in TRANSITION_CLASSES:
        raise _refuse(
            f"{where}.StorageClass: expected one of {', '.join(sorted(TRANSITION_CLASSES))}, got {storage_class!r}",
            "InvalidStorageClass",
        )
    if storage_class == "COLD_ARCHIVE" and region not in COLD_ARCHIVE_REGIONS:
        raise _refuse(
            f"{where}.StorageClass: COLD_ARCHIVE is offered in {' and '.join(COLD_ARCHIVE_REGIONS)} only, "
            f"not {region}",
            "InvalidStorageClass",
        )
    if not _days(transition.get("Days"), 0) and not isinstance(transition.get("Date"), str):
        raise _refuse(f"{where}: expected Days (a whole number, 0 or more) or a Date")


def _days(value: object, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least
