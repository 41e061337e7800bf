"""The export prefix's lifecycle rule, and how deploy merges it into a bucket's other rules. Pure: no I/O.

The template's ``storage:`` section becomes one rule, ID ``image-exporter-<prefix>``, on the prefix
``<prefix>_`` (the export files ``<prefix>_<ImageId>_*.qcow2`` and the manifests
``<prefix>_<ImageId>.manifest.json``). A PUT replaces every rule of a bucket, so deploy reads them, changes only
that one (added, replaced in its place, or removed), and sends every other rule back as the object TOS sent.
Another rule whose ID starts with ``image-exporter-`` is another prefix's (another deployment's, or one left
from an earlier ``EXPORT_TOS_PREFIX``): it is left as it is and shown in the plan, as timers the template does
not name are. A rule set left empty is removed with DeleteBucketLifecycle: a PUT carries at least one rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from exporter_tools.deploy.storage import StorageSpec
from exporter_tools.deploy.tos_lifecycle import BucketLifecycle

__all__ = [
    "ABORT_FIELD",
    "RULE_ID_PREFIX",
    "LifecycleChange",
    "LifecycleWanted",
    "describe_rule",
    "describe_storage",
    "merge_rule",
    "wanted_rule",
]

RULE_ID_PREFIX = "image-exporter-"
# The abort action's field, as the official SDK writes and reads it (docs/facts.md spells the SDK class).
ABORT_FIELD = "AbortIncompleteMultipartUpload"

Rule = dict[str, Any]
ChangeKind = Literal["add", "replace", "remove", "none"]


@dataclass(frozen=True, slots=True)
class LifecycleWanted:
    """The rule this deployment wants on ``bucket`` (None: none, so it is removed if there)."""

    bucket: str
    rule_id: str
    rule: Rule | None


def wanted_rule(storage: StorageSpec, *, bucket: str, prefix: str) -> LifecycleWanted:
    """The rule for ``storage`` on the export prefix ``prefix`` in ``bucket``: its transitions and abort days."""
    rule_id = f"{RULE_ID_PREFIX}{prefix}"
    if storage.empty:
        return LifecycleWanted(bucket, rule_id, None)
    rule: Rule = {"ID": rule_id, "Prefix": f"{prefix}_", "Status": "Enabled"}
    if storage.transitions:
        rule["Transitions"] = [
            {"Days": t.after_days, "StorageClass": t.storage_class} for t in storage.transitions
        ]
    if storage.abort_incomplete_upload_days is not None:
        rule[ABORT_FIELD] = {"DaysAfterInitiation": storage.abort_incomplete_upload_days}
    return LifecycleWanted(bucket, rule_id, rule)


@dataclass(frozen=True, slots=True)
class LifecycleChange:
    """What deploy does to a bucket's rules: ``kind`` of change to this deployment's rule (``before`` as the
    bucket has it, ``after`` as wanted), the whole set to write (``rules``; empty: remove them all), the set
    as it was read (a write goes ahead only while it still is), the other rules kept as they are, and the
    other ``image-exporter-`` rules left alone."""

    bucket: str
    rule_id: str
    kind: ChangeKind
    before: Rule | None
    after: Rule | None
    rules: tuple[Rule, ...]
    read: tuple[Rule, ...]
    kept: tuple[str, ...]
    other_prefixes: tuple[str, ...]
    allow_overlap: bool

    @property
    def action(self) -> str:
        """The TOS request that makes the change: the whole set again, or none left to put."""
        return "PutBucketLifecycle" if self.rules else "DeleteBucketLifecycle"

    def reasons(self) -> tuple[str, ...]:
        """The change for the plan: our rule added, changed or removed, and every other rule kept."""
        shown = f"rule {self.rule_id}"
        if self.kind == "add":
            first = f"+ {shown} (prefix {_prefix(self.after)}): {describe_rule(self.after)}"
        elif self.kind == "replace":
            first = f"~ {shown}: {describe_rule(self.before)} → {describe_rule(self.after)}"
        else:
            first = f"- {shown} ({describe_rule(self.before)}): the template's storage section is empty"
        count = len(self.kept)
        kept = (
            f"the bucket's {count} other rule{'' if count == 1 else 's'} stay as they are: {', '.join(self.kept)}"
            if self.kept
            else "the bucket has no other rule"
        )
        if not self.rules:
            kept += ": its lifecycle configuration is removed"
        return first, kept


def merge_rule(current: BucketLifecycle, wanted: LifecycleWanted) -> LifecycleChange:
    """``current``'s rules with this deployment's rule added, replaced in its place or removed; every other
    rule the very object TOS sent, in its place."""
    rules = list(current.rules)
    index = next((n for n, rule in enumerate(rules) if rule.get("ID") == wanted.rule_id), None)
    before = rules[index] if index is not None else None
    kind: ChangeKind
    if wanted.rule is None:
        kind = "none" if index is None else "remove"
        if index is not None:
            del rules[index]
    elif index is None:
        kind = "add"
        rules.append(wanted.rule)
    elif _same(rules[index], wanted.rule):
        kind = "none"
    else:
        kind = "replace"
        rules[index] = wanted.rule
    others = [rule for rule in current.rules if rule.get("ID") != wanted.rule_id]
    ids = [str(rule.get("ID", "(no ID)")) for rule in others]
    return LifecycleChange(
        bucket=current.bucket,
        rule_id=wanted.rule_id,
        kind=kind,
        before=before,
        after=wanted.rule,
        rules=tuple(rules),
        read=current.rules,
        kept=tuple(ids),
        other_prefixes=tuple(rule_id for rule_id in ids if rule_id.startswith(RULE_ID_PREFIX)),
        allow_overlap=current.allow_overlap,
    )


def _same(found: Rule, wanted: Rule) -> bool:
    """Whether the bucket's rule is the wanted one: the same fields and values, in any order (an empty field
    TOS may add, such as ``"Tags": []``, does not count)."""
    present = {key: value for key, value in found.items() if value not in (None, "", [], {})}
    return present == wanted


def _prefix(rule: Rule | None) -> str:
    return repr((rule or {}).get("Prefix", ""))


def describe_rule(rule: Mapping[str, Any] | None) -> str:
    """A rule in a few words (``IA after 30 days, ARCHIVE after 120 days; unfinished uploads dropped after 7
    days``), whatever its shape."""
    if not rule:
        return "(none)"
    parts: list[str] = []
    transitions = rule.get("Transitions")
    moves = [
        f"{t.get('StorageClass', '?')} after {t.get('Days', t.get('Date', '?'))} days"
        for t in (transitions if isinstance(transitions, list) else [])
        if isinstance(t, Mapping)
    ]
    if moves:
        parts.append(", ".join(moves))
    abort = rule.get(ABORT_FIELD)
    if isinstance(abort, Mapping):
        parts.append(f"unfinished uploads dropped after {abort.get('DaysAfterInitiation', '?')} days")
    expiration = rule.get("Expiration")
    if isinstance(expiration, Mapping):
        parts.append(f"deleted after {expiration.get('Days', expiration.get('Date', '?'))} days")
    others = sorted(set(rule) - {"ID", "Prefix", "Status", "Transitions", ABORT_FIELD, "Expiration"})
    if others:
        parts.append(f"and {', '.join(others)}")
    text = "; ".join(parts) or "no action"
    return text if rule.get("Status", "Enabled") == "Enabled" else f"{text} (status {rule.get('Status')})"


def describe_storage(storage: StorageSpec) -> str:
    """The storage section as its rule would read (``validate-template``'s summary)."""
    if storage.empty:
        return "no rule (deploy removes this deployment's rule)"
    return describe_rule(wanted_rule(storage, bucket="-", prefix="-").rule)
