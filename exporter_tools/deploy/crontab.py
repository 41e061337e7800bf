"""Crontab checking for timers: five fields, each a list of ``*``, values, ranges and steps (names for months
and days of the week, ``?`` in the two day fields), with a message that says which field is wrong and why."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["check_crontab"]

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True, slots=True)
class _CronField:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    question_mark: bool = False  # "?" (no specific value) is accepted in the two day fields

    def value(self, text: str) -> int | None:
        upper = text.upper()
        if upper in self.names:
            return self.names.index(upper) + self.low
        return int(text) if text.isdigit() else None

    @property
    def expected(self) -> str:
        names = f" or {self.names[0]}-{self.names[-1]}" if self.names else ""
        return f"{self.low}-{self.high}{names}"


_CRON_FIELDS = (
    _CronField("minute", 0, 59),
    _CronField("hour", 0, 23),
    _CronField("day of month", 1, 31, question_mark=True),
    _CronField("month", 1, 12, _MONTHS),
    _CronField("day of week", 0, 6, _DAYS, question_mark=True),
)


def check_crontab(text: str) -> str:
    """The crontab with its fields single-spaced; ``ValueError`` saying which field is wrong and why."""
    fields = text.split()
    if len(fields) != len(_CRON_FIELDS):
        msg = (
            "expected five fields (minute hour day-of-month month day-of-week) like '0 3 * * *', "
            f"got {len(fields)} in {text!r}"
        )
        raise ValueError(msg)
    for position, (field, spec) in enumerate(zip(fields, _CRON_FIELDS, strict=True), start=1):
        for item in field.split(","):
            problem = _cron_item_problem(item, spec)
            if problem:
                msg = f"field {position} ({spec.name}) {item!r}: {problem}"
                raise ValueError(msg)
    return " ".join(fields)


def _cron_item_problem(item: str, spec: _CronField) -> str | None:
    """Why one list item of a crontab field is wrong, or ``None``."""
    if not item:
        return "expected a value between the commas"
    if item == "?":
        return None if spec.question_mark else "'?' is only allowed in the day fields: expected *"
    base, slash, step = item.partition("/")
    if slash and not (step.isdigit() and 1 <= int(step) <= spec.high):
        return f"expected a step from 1 to {spec.high} after '/'"
    if base == "*":
        return None
    return _cron_range_problem(base, spec, stepped=bool(slash))


def _cron_range_problem(base: str, spec: _CronField, *, stepped: bool) -> str | None:
    """Why a value or range ``a-b`` of a crontab field is wrong, or ``None``."""
    first, dash, last = base.partition("-")
    if stepped and not dash:
        return f"a step needs * or a range before it, like */15 or {spec.low}-{spec.high}/2"
    start = spec.value(first)
    end = spec.value(last) if dash else start
    if start is None or end is None or not (spec.low <= start <= spec.high and spec.low <= end <= spec.high):
        return f"expected *, a value {spec.expected}, a range a-b or a step */n"
    return "expected a range that goes up (a-b with a <= b)" if start > end else None
