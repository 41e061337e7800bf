"""template.yaml's ``storage:`` section: transitions in order and each colder, minimum stays, the bucket it
needs, no expiration, and the warnings (COLD_ARCHIVE outside Beijing and Shanghai, a section that removes the
rule, timers the rule does not cover)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from exporter_tools.deploy.model import Problem, Template, TemplateError
from exporter_tools.deploy.template import parse_template

BASE: dict[str, Any] = {
    "region": "cn-beijing",
    "function": {
        "name": "image-exporter",
        "role": "trn:iam::2100000000:role/VefaasEcsExportRole",
        "environment": {"EXPORT_TOS_BUCKET": "my-exports", "EXPORT_TOS_PREFIX": "imgexport"},
    },
    "timers": [{"name": "nightly-scan", "crontab": "0 3 * * *", "payload": {"LookbackHours": 26}}],
}


def with_storage(storage: object, **top: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["storage"] = storage
    doc.update(top)
    return doc


def transitions(*pairs: tuple[int, str]) -> dict[str, Any]:
    return {"transitions": [{"after_days": days, "storage_class": name} for days, name in pairs]}


def problems_of(doc: object) -> list[str]:
    with pytest.raises(TemplateError) as caught:
        parse_template(doc)
    return [str(problem) for problem in caught.value.problems]


def warnings_of(doc: object) -> list[Problem]:
    return parse_template(doc).warnings()


def test_a_storage_section_is_read_in_order() -> None:
    """Transitions in increasing days, each colder, with the abort days: the model holds them as written."""
    doc = with_storage(
        {
            **transitions((30, "IA"), (120, "ARCHIVE"), (365, "DEEP_COLD_ARCHIVE")),
            "abort_incomplete_upload_days": 7,
        }
    )
    template = parse_template(doc)
    assert template.storage is not None
    assert [(t.after_days, t.storage_class) for t in template.storage.transitions] == [
        (30, "IA"),
        (120, "ARCHIVE"),
        (365, "DEEP_COLD_ARCHIVE"),
    ]
    assert template.storage.abort_incomplete_upload_days == 7
    assert [w.path for w in template.warnings()] == [
        "storage.transitions[1].storage_class"
    ]  # ARCHIVE: restore


def test_a_class_that_must_be_restored_before_a_read_is_a_warning() -> None:
    """The first transition to ARCHIVE, COLD_ARCHIVE or DEEP_COLD_ARCHIVE is named: from then on the files
    and manifests cannot be read as they are; IA, INTELLIGENT_TIERING and ARCHIVE_FR are not warned about."""
    doc = with_storage(
        transitions((30, "IA"), (200, "ARCHIVE_FR"), (400, "COLD_ARCHIVE"), (800, "DEEP_COLD_ARCHIVE"))
    )
    assert [str(w) for w in warnings_of(doc)] == [
        (
            "storage.transitions[2].storage_class: an object in COLD_ARCHIVE must be restored before it can be "
            "read: from 400 days on, the exports' files and manifests cannot be read as they are (status, restores "
            "and the drill read them)"
        )
    ]
    assert warnings_of(with_storage(transitions((30, "INTELLIGENT_TIERING"), (200, "ARCHIVE_FR")))) == []


def test_no_storage_section_is_none() -> None:
    """Without ``storage:`` the template has none (deploy leaves the bucket's lifecycle alone)."""
    assert parse_template(copy.deepcopy(BASE)).storage is None


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        pytest.param(
            transitions((60, "IA"), (40, "ARCHIVE")),
            "storage.transitions[1].after_days: expected more than transitions[0]'s 60 days, got 40",
            id="days-down",
        ),
        pytest.param(
            transitions((30, "IA"), (30, "ARCHIVE")),
            "storage.transitions[1].after_days: expected more than transitions[0]'s 30 days, got 30",
            id="days-same",
        ),
        pytest.param(
            transitions((30, "ARCHIVE"), (400, "IA")),
            "storage.transitions[1].storage_class: expected a class colder than transitions[0]'s ARCHIVE, got IA",
            id="warmer",
        ),
        pytest.param(
            transitions((30, "IA"), (90, "INTELLIGENT_TIERING")),
            "storage.transitions[1].storage_class: expected a class colder than transitions[0]'s IA",
            id="as-warm",
        ),
        pytest.param(
            transitions((10, "IA"), (25, "ARCHIVE")),
            "storage.transitions[1].after_days: an object stays in IA at least 30 days: from transitions[0] at "
            "10 days, expected 40 or more, got 25",
            id="ia-30-days",
        ),
        pytest.param(
            transitions((30, "ARCHIVE_FR"), (100, "ARCHIVE")),
            "storage.transitions[1].after_days: an object stays in ARCHIVE_FR at least 90 days",
            id="archive-fr-90-days",
        ),
        pytest.param(
            transitions((30, "STANDARD")),
            "storage.transitions[0].storage_class: STANDARD is where every object starts",
            id="to-standard",
        ),
        pytest.param(
            transitions((30, "ia")),
            "storage.transitions[0].storage_class: expected one of IA, INTELLIGENT_TIERING, ARCHIVE_FR, "
            "ARCHIVE, COLD_ARCHIVE, DEEP_COLD_ARCHIVE, got 'ia' (did you mean IA?)",
            id="lowercase",
        ),
        pytest.param(
            transitions((0, "IA")),
            "storage.transitions[0].after_days: expected a whole number of days, 1 or more, got 0",
            id="day-0",
        ),
        pytest.param(
            {"transitions": [{"after_days": "30", "storage_class": "IA"}]},
            "storage.transitions[0].after_days: expected a whole number",
            id="days-text",
        ),
        pytest.param(
            {"abort_incomplete_upload_days": 0},
            "storage.abort_incomplete_upload_days: expected a whole number of days, 1 or more, got 0",
            id="abort-0",
        ),
        pytest.param(
            {"expiration_days": 365},
            "storage.expiration_days: no expiration on the export prefix: deleting exports is retention's job",
            id="expiration",
        ),
        pytest.param(
            {"transitions": [{"after_days": 30, "storage_class": "IA", "expiration": 90}]},
            "storage.transitions[0].expiration: no expiration on the export prefix",
            id="expiration-in-a-transition",
        ),
        pytest.param(
            {"transition": []},
            "storage.transition: unknown field (did you mean transitions?): expected one of transitions, "
            "abort_incomplete_upload_days",
            id="unknown-field",
        ),
        pytest.param(
            {"transitions": [{"days": 30, "storage_class": "IA"}]},
            "storage.transitions[0].days: unknown field",
            id="unknown-transition-field",
        ),
        pytest.param([], "storage: expected a mapping (key: value lines)", id="not-a-mapping"),
    ],
)
def test_each_storage_problem_names_its_field(storage: object, expected: str) -> None:
    """Every problem with the storage section names the field's path and what was expected there."""
    found = problems_of(with_storage(storage))
    assert any(problem.startswith(expected) for problem in found), found


def test_the_rule_needs_the_environments_bucket() -> None:
    """A storage section without EXPORT_TOS_BUCKET in the function's environment is refused: the rule goes on
    that bucket."""
    doc = with_storage(transitions((30, "IA")))
    del doc["function"]["environment"]["EXPORT_TOS_BUCKET"]
    doc["timers"][0]["payload"]["TOSBucket"] = "other-bucket"
    assert problems_of(doc) == [
        (
            "storage: needs function.environment.EXPORT_TOS_BUCKET: the lifecycle rule goes on that bucket "
            "(for EXPORT_TOS_PREFIX's files and manifests)"
        )
    ]


def test_every_transition_problem_is_reported_at_once() -> None:
    """Two transitions out of order and a model error elsewhere: all three in one report."""
    doc = with_storage(transitions((30, "IA"), (20, "ARCHIVE"), (10, "DEEP_COLD_ARCHIVE")))
    doc["function"]["memory_mb"] = 500
    found = problems_of(doc)
    assert [problem.split(":")[0] for problem in found] == [
        "function.memory_mb",
        "storage.transitions[1].after_days",
        "storage.transitions[2].after_days",
    ]


@pytest.mark.parametrize(
    ("region", "warned"), [("cn-beijing", False), ("cn-shanghai", False), ("cn-guangzhou", True)]
)
def test_cold_archive_outside_beijing_and_shanghai_is_a_warning(region: str, warned: bool) -> None:
    """COLD_ARCHIVE is offered in cn-beijing and cn-shanghai only: elsewhere a warning naming the transition."""
    doc = with_storage(transitions((30, "IA"), (90, "COLD_ARCHIVE")), region=region)
    found = [str(w) for w in warnings_of(doc) if "offered" in w.message]
    expected = [
        (
            "storage.transitions[1].storage_class: COLD_ARCHIVE is offered in cn-beijing and cn-shanghai only, "
            f"not {region}: TOS may refuse the rule"
        )
    ]
    assert found == (expected if warned else [])


def test_an_empty_section_warns_that_it_removes_the_rule() -> None:
    """``storage: {}`` is valid and means no rule: the warning says deploy removes this deployment's rule."""
    template = parse_template(with_storage({}))
    assert template.storage is not None
    assert template.storage.empty
    assert [w.path for w in template.warnings()] == ["storage"]
    assert "removes this deployment's lifecycle rule" in template.warnings()[0].message


def test_a_timer_exporting_elsewhere_is_not_covered() -> None:
    """A timer payload naming another bucket or prefix than the environment's: a warning on that field."""
    doc = with_storage(transitions((30, "IA")))
    doc["timers"][0]["payload"].update(TOSBucket="other-bucket", TOSPrefix="imgexport")
    doc["timers"].append({"name": "weekly", "crontab": "0 4 * * SUN", "payload": {"TOSPrefix": "weekly"}})
    assert [str(w) for w in warnings_of(doc)] == [
        (
            "timers[0].payload.TOSBucket: 'other-bucket' is not the environment's 'my-exports': the storage rule "
            "does not cover this timer's exports"
        ),
        (
            "timers[1].payload.TOSPrefix: 'weekly' is not the environment's 'imgexport': the storage rule does not "
            "cover this timer's exports"
        ),
    ]


def test_a_timer_is_compared_with_the_default_prefix_and_not_with_a_reference() -> None:
    """No EXPORT_TOS_PREFIX: the default imgexport is the rule's; a ``${env:…}`` bucket is not compared."""
    doc = with_storage(transitions((30, "IA")))
    doc["function"]["environment"] = {"EXPORT_TOS_BUCKET": "${env:BUCKET}"}
    doc["timers"][0]["payload"].update(TOSBucket="other-bucket", TOSPrefix="imgexport")
    assert [str(w) for w in warnings_of(doc)] == []


def test_the_model_is_frozen() -> None:
    """A parsed storage section cannot be changed in place."""
    template: Template = parse_template(with_storage(transitions((30, "IA"))))
    assert template.storage is not None
    with pytest.raises(ValueError, match="frozen"):
        template.storage.abort_incomplete_upload_days = 3  # type: ignore[misc]
