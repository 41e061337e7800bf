"""The ``storage:`` section of ``template.yaml``: which storage classes the exports move to, and when.

Deploy turns it into one lifecycle rule on the export bucket (``exporter_tools.deploy.lifecycle``), covering
the export prefix's files and manifests (``<prefix>_``). Moving objects is all the rule does: deleting
exports is retention's job, so the section has no expiration.

The storage classes are TOS's (docs/facts.md §15). A transition goes to a colder class than the one before,
after more days than the one before; an object stays in ``IA`` at least 30 days and in ``ARCHIVE_FR`` at
least 90 (TOS's minimum storage durations), so a later transition must leave it that long. How the classes
rank is this project's reading of them: ``IA`` and ``INTELLIGENT_TIERING`` are equally warm (neither may follow
the other), then ``ARCHIVE_FR``, ``ARCHIVE``, ``COLD_ARCHIVE``, ``DEEP_COLD_ARCHIVE``. ``COLD_ARCHIVE`` is
offered in cn-beijing and cn-shanghai only: elsewhere it is a warning (TOS decides). An object in ``ARCHIVE``,
``COLD_ARCHIVE`` or ``DEEP_COLD_ARCHIVE`` must be restored before it can be read (docs/facts.md §15; whether
``ARCHIVE_FR``'s must too is not confirmed, and it is not warned about): a warning, since the rule covers the
manifests that status, restores and the drill read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

__all__ = [
    "COLDNESS",
    "COLD_ARCHIVE_REGIONS",
    "MINIMUM_DAYS",
    "RESTORE_BEFORE_READ",
    "TRANSITION_CLASSES",
    "StorageSpec",
    "TransitionSpec",
    "refused_field",
    "transition_problems",
]

# How cold each class is; a transition goes to a colder one. STANDARD is where every object starts.
COLDNESS: Final[Mapping[str, int]] = {
    "STANDARD": 0,
    "IA": 1,
    "INTELLIGENT_TIERING": 1,
    "ARCHIVE_FR": 2,
    "ARCHIVE": 3,
    "COLD_ARCHIVE": 4,
    "DEEP_COLD_ARCHIVE": 5,
}
TRANSITION_CLASSES: Final = tuple(name for name in COLDNESS if name != "STANDARD")
# The least time an object stays in a class before it may move on (docs/facts.md §15).
MINIMUM_DAYS: Final[Mapping[str, int]] = {"IA": 30, "ARCHIVE_FR": 90}
COLD_ARCHIVE_REGIONS: Final = ("cn-beijing", "cn-shanghai")
# Classes whose objects must be restored before they can be read.
RESTORE_BEFORE_READ: Final = ("ARCHIVE", "COLD_ARCHIVE", "DEEP_COLD_ARCHIVE")


def _storage_class(value: str) -> str:
    if value in TRANSITION_CLASSES:
        return value
    if value == "STANDARD":
        msg = "STANDARD is where every object starts: a transition goes to a colder class"
        raise ValueError(msg)
    hint = f" (did you mean {value.upper()}?)" if value.upper() in TRANSITION_CLASSES else ""
    msg = f"expected one of {', '.join(TRANSITION_CLASSES)}, got {value!r}{hint}"
    raise ValueError(msg)


def _at_least_a_day(value: int) -> int:
    if value < 1:
        msg = f"expected a whole number of days, 1 or more, got {value}"
        raise ValueError(msg)
    return value


Days = Annotated[StrictInt, AfterValidator(_at_least_a_day), Field(json_schema_extra={"minimum": 1})]


class TransitionSpec(BaseModel):
    """One move to a colder storage class, a number of days after an object was written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    after_days: Annotated[
        Days, Field(description="Days after an object is written (more than the last one).")
    ]
    storage_class: Annotated[
        str,
        AfterValidator(_storage_class),
        Field(
            description="The class it moves to, colder than the last one's. COLD_ARCHIVE: cn-beijing and "
            "cn-shanghai only.",
            json_schema_extra={"enum": list(TRANSITION_CLASSES)},
        ),
    ]


class StorageSpec(BaseModel):
    """The export prefix's lifecycle rule: transitions to colder classes, and when to drop unfinished
    uploads. No expiration: deleting exports is retention's job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transitions: Annotated[
        list[TransitionSpec],
        Field(
            description="In increasing after_days, each class colder than the last; an object stays in IA at "
            "least 30 days and in ARCHIVE_FR at least 90 before the next one."
        ),
    ] = Field(default_factory=list)
    abort_incomplete_upload_days: Annotated[
        Days | None,
        Field(description="Drop the parts of an upload never completed this many days after it began."),
    ] = None

    @property
    def empty(self) -> bool:
        """Nothing to do: deploy removes this deployment's rule, if the bucket has one."""
        return not self.transitions and self.abort_incomplete_upload_days is None


def transition_problems(transitions: Sequence[object]) -> list[tuple[str, str]]:
    """(field path under ``storage``, message) for each transition out of order, no colder than the last, or
    too soon after a class with a minimum stay. Reads the raw document: entries the model refuses are
    skipped (it reports them)."""
    problems: list[tuple[str, str]] = []
    previous: tuple[int, int, str] | None = None  # index, after_days, storage_class
    for index, raw in enumerate(transitions):
        days = raw.get("after_days") if isinstance(raw, Mapping) else None
        storage_class = raw.get("storage_class") if isinstance(raw, Mapping) else None
        if not isinstance(days, int) or isinstance(days, bool) or storage_class not in TRANSITION_CLASSES:
            previous = None
            continue
        if previous is not None:
            problems.extend(_after(previous, (index, days, str(storage_class))))
        previous = (index, days, str(storage_class))
    return problems


def _after(previous: tuple[int, int, str], current: tuple[int, int, str]) -> list[tuple[str, str]]:
    """What is wrong with ``current`` coming after ``previous`` (each: index, after_days, storage_class)."""
    before, before_days, before_class = previous
    index, days, storage_class = current
    where = f"transitions[{index}]"
    if days <= before_days:
        message = (
            f"expected more than transitions[{before}]'s {before_days} days, got {days}: transitions go in "
            "increasing after_days"
        )
        return [(f"{where}.after_days", message)]
    problems: list[tuple[str, str]] = []
    if COLDNESS[storage_class] <= COLDNESS[before_class]:
        message = (
            f"expected a class colder than transitions[{before}]'s {before_class}, got {storage_class}: "
            "each transition goes colder than the last"
        )
        problems.append((f"{where}.storage_class", message))
    least = MINIMUM_DAYS.get(before_class, 0)
    if days - before_days < least:
        message = (
            f"an object stays in {before_class} at least {least} days: from transitions[{before}] at "
            f"{before_days} days, expected {before_days + least} or more, got {days}"
        )
        problems.append((f"{where}.after_days", message))
    return problems


def refused_field(loc: Sequence[int | str]) -> str | None:
    """Why a field the model does not have is refused, when it is one people reach for: an expiration."""
    if len(loc) >= 2 and loc[0] == "storage" and "expir" in str(loc[-1]).lower():
        return (
            "no expiration on the export prefix: deleting exports is retention's job (docs/operations.md), "
            "the lifecycle rule only moves them to colder classes"
        )
    return None
