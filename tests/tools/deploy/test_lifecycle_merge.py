"""Merging this deployment's lifecycle rule into a bucket's rules (pure): every other rule the very object TOS
sent, in its place; ours added, replaced where it was, or removed; the change described for the plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exporter_tools.deploy.lifecycle import describe_rule, merge_rule, wanted_rule
from exporter_tools.deploy.storage import StorageSpec, TransitionSpec
from exporter_tools.deploy.template import main
from exporter_tools.deploy.tos_lifecycle import BucketLifecycle

BUCKET = "my-exports"
LOGS: dict[str, Any] = {"ID": "logs", "Prefix": "logs/", "Status": "Enabled", "Expiration": {"Days": 14}}
NO_ID: dict[str, Any] = {"Prefix": "tmp/", "Status": "Enabled", "Expiration": {"Days": 1}}
STORAGE = StorageSpec(
    transitions=[
        TransitionSpec(after_days=30, storage_class="IA"),
        TransitionSpec(after_days=90, storage_class="ARCHIVE"),
    ],
    abort_incomplete_upload_days=3,
)
WANTED = wanted_rule(STORAGE, bucket=BUCKET, prefix="px")


def bucket(*rules: dict[str, Any]) -> BucketLifecycle:
    return BucketLifecycle(BUCKET, rules)


def test_the_rule_covers_the_prefix_files_and_manifests() -> None:
    """ID image-exporter-<prefix>, Prefix <prefix>_, enabled, the transitions in order and the abort days;
    no Expiration ever."""
    assert WANTED.rule == {
        "ID": "image-exporter-px",
        "Prefix": "px_",
        "Status": "Enabled",
        "Transitions": [{"Days": 30, "StorageClass": "IA"}, {"Days": 90, "StorageClass": "ARCHIVE"}],
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3},
    }
    only_abort = wanted_rule(StorageSpec(abort_incomplete_upload_days=2), bucket=BUCKET, prefix="px").rule
    assert only_abort is not None
    assert "Transitions" not in only_abort
    assert wanted_rule(StorageSpec(), bucket=BUCKET, prefix="px").rule is None


def test_an_added_rule_goes_last_and_the_others_are_the_objects_read() -> None:
    """Added after the others, which are the very objects TOS sent (not copies), a rule without an ID too."""
    current = bucket(LOGS, NO_ID)
    change = merge_rule(current, WANTED)
    assert change.kind == "add"
    assert change.action == "PutBucketLifecycle"
    assert change.rules[0] is current.rules[0]
    assert change.rules[1] is current.rules[1]
    assert change.rules[2] == WANTED.rule
    assert change.kept == ("logs", "(no ID)")
    assert change.read == current.rules


def test_a_different_rule_is_replaced_where_it_was() -> None:
    """Our rule in the middle with other days: replaced in its place; before and after shown."""
    old = {**(WANTED.rule or {}), "Transitions": [{"Days": 60, "StorageClass": "IA"}]}
    change = merge_rule(bucket(LOGS, old, NO_ID), WANTED)
    assert change.kind == "replace"
    assert [rule.get("ID") for rule in change.rules] == ["logs", "image-exporter-px", None]
    assert change.rules[1] == WANTED.rule
    assert change.reasons()[0].startswith("~ rule image-exporter-px: IA after 60 days; unfinished")


@pytest.mark.parametrize(
    "extra",
    [{}, {"Tags": []}, {"Filter": {}}, {"Tags": [], "Filter": None}],
    ids=["same", "empty-tags", "empty-filter", "both"],
)
def test_the_same_rule_in_another_order_or_with_empty_extras_is_no_change(extra: dict[str, Any]) -> None:
    """The bucket's rule with its fields in another order, or an empty field TOS may add: no change."""
    found = dict(reversed(list((WANTED.rule or {}).items())))
    change = merge_rule(bucket(LOGS, {**found, **extra}), WANTED)
    assert change.kind == "none"


def test_a_rule_someone_edited_is_replaced() -> None:
    """Our rule with a field someone added (Tags, Disabled): replaced with the template's."""
    edited = {**(WANTED.rule or {}), "Status": "Disabled"}
    assert merge_rule(bucket(edited), WANTED).kind == "replace"
    tagged = {**(WANTED.rule or {}), "Tags": [{"Key": "a", "Value": "b"}]}
    assert merge_rule(bucket(tagged), WANTED).kind == "replace"


def test_no_rule_wanted_removes_ours_and_an_empty_set_is_deleted() -> None:
    """An empty storage section: ours removed, the others kept; if none is left, DeleteBucketLifecycle."""
    none = wanted_rule(StorageSpec(), bucket=BUCKET, prefix="px")
    ours = WANTED.rule or {}
    change = merge_rule(bucket(LOGS, ours), none)
    assert (change.kind, change.rules, change.action) == ("remove", (LOGS,), "PutBucketLifecycle")
    alone = merge_rule(bucket(ours), none)
    assert (alone.kind, alone.rules, alone.action) == ("remove", (), "DeleteBucketLifecycle")
    assert alone.reasons()[1] == "the bucket has no other rule: its lifecycle configuration is removed"
    assert merge_rule(bucket(LOGS), none).kind == "none"


def test_other_prefixes_rules_are_kept_and_named() -> None:
    """Another image-exporter- rule (another prefix) is kept as it is and listed apart."""
    theirs = {**(WANTED.rule or {}), "ID": "image-exporter-old", "Prefix": "old_"}
    change = merge_rule(bucket(theirs, LOGS), WANTED)
    assert change.rules[0] is theirs
    assert change.other_prefixes == ("image-exporter-old",)


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (None, "(none)"),
        ({"ID": "x"}, "no action"),
        (
            {"ID": "x", "Expiration": {"Days": 7}, "Status": "Disabled"},
            "deleted after 7 days (status Disabled)",
        ),
        (
            {"ID": "x", "Transitions": [{"Date": "2030-01-01", "StorageClass": "IA"}]},
            "IA after 2030-01-01 days",
        ),
        ({"ID": "x", "Transitions": "odd", "Filter": {"a": 1}}, "and Filter"),
    ],
)
def test_any_rule_is_described_whatever_its_shape(rule: dict[str, Any] | None, text: str) -> None:
    """A foreign rule of any shape is described without failing."""
    assert describe_rule(rule) == text


def test_validate_template_summarises_the_storage_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """validate-template prints the rule the storage section makes."""
    (tmp_path / "t.yaml").write_text(
        "region: cn-beijing\n"
        "function:\n  name: image-exporter\n  role: trn:iam::2100000000:role/R\n"
        "  environment:\n    EXPORT_TOS_BUCKET: my-exports\n"
        "storage:\n  transitions:\n    - after_days: 30\n      storage_class: IA\n",
        encoding="utf-8",
    )
    assert main([str(tmp_path / "t.yaml")]) == 0
    assert "storage: IA after 30 days\n" in capsys.readouterr().out
