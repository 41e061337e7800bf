"""The doctor (docs/doctor.md): named checks of everything the function depends on, shared by the ``Doctor``
event (the function's own identity) and ``exporter-tools doctor`` (the caller's)::

    settings        every variable valid; an unknown EXPORT_/VOLCENGINE_/WEBHOOK_/RETENTION_/RESTORE_ one warns
    credentials     a signed DescribeImages answers                        (handler.core.doctor_checks)
    clock           the API's and TOS's Date within 1 minute (warn past), 5 minutes (fail past)
    bucket          HeadBucket: it exists, in VOLCENGINE_REGION            (handler.core.doctor_bucket)
    bucket_access   list, write, read back and delete a probe object under the prefix
    images          how many private images a scan would consider now
    webhook         WEBHOOK_URL set: a signed test message delivered, the platform's answer checked
    restore_drill   RESTORE_DRILL_DAYS set: room for a drill image (private images below 48)
    retention       RETENTION_MODE plan or apply: the plan summed up, never applied

:func:`read_settings` is the settings check: it reads the environment as the function does, and where a
variable is invalid reads on without it (its default), so that the other checks still run. :func:`run_doctor`
runs the others in order, each independent: each gets a fair share of what is left of the time (at most
``MAX_CHECK_SECONDS``), a check that cannot run is a ``warn`` saying so, and any error in one is that check's
``fail``, never the others'. Nothing is changed but the probe object ``bucket_access`` writes and deletes.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from handler.core.doctor_bucket import check_bucket, check_bucket_access
from handler.core.doctor_checks import (
    NotChecked,
    Subjects,
    check_clock,
    check_credentials,
    check_images,
    check_restore_drill,
    check_result,
    check_retention,
    check_webhook,
    failed_check,
)
from handler.errors import BudgetExhausted, ConfigurationError, ExporterError
from handler.models.results import CheckStatus, DoctorCheck
from handler.models.settings import KNOWN_REGIONS, Settings, known_variables

__all__ = [
    "DEPLOYER_VARIABLES",
    "MAX_CHECK_SECONDS",
    "OWN_PREFIXES",
    "SettingsReading",
    "read_settings",
    "run_doctor",
]

_log = structlog.get_logger("handler.doctor")

# The most one check may take, however much time is left: a slow service defers nothing else.
MAX_CHECK_SECONDS = 30.0
# Variables with these prefixes are the function's: one it does not read is likely misspelt.
OWN_PREFIXES = ("EXPORT_", "VOLCENGINE_", "WEBHOOK_", "RETENTION_", "RESTORE_")
# What the shipped template.yaml reads that the function does not: the README has the deployer export it, so
# it is set in the shells the doctor runs from (a test holds this to the template).
DEPLOYER_VARIABLES = frozenset({"VOLCENGINE_ACCOUNT_ID"})

Check = Callable[[Subjects, float], DoctorCheck]
# Every check after the settings', in order, and when it runs (the last three only when their feature is on).
_CHECKS: tuple[tuple[str, Check, Callable[[Settings], bool]], ...] = (
    ("credentials", check_credentials, lambda _: True),
    ("clock", check_clock, lambda _: True),
    ("bucket", check_bucket, lambda _: True),
    ("bucket_access", check_bucket_access, lambda _: True),
    ("images", check_images, lambda _: True),
    ("webhook", check_webhook, lambda settings: bool(settings.webhook_url)),
    ("restore_drill", check_restore_drill, lambda settings: settings.drill_days is not None),
    ("retention", check_retention, lambda settings: settings.retention_mode != "off"),
)


@dataclass(frozen=True, slots=True)
class SettingsReading:
    """The settings the checks run with (a refused variable left at its default) and the settings check."""

    settings: Settings
    check: DoctorCheck


def read_settings(environ: Mapping[str, str]) -> SettingsReading:
    """The ``settings`` check: every variable as the function reads it (``Settings.from_env``), each refused
    one named with what it expects (a secret's value never shown); an unknown variable with one of
    ``OWN_PREFIXES`` is a warning naming the likely variable (``DEPLOYER_VARIABLES`` are known); a region ECS
    is not known to run in, a warning."""
    settings, refused = _read_leaving_out(environ)
    problems = [str(error) for error in refused]
    fixes = [f"fix {error.source or 'the variable it names'}" for error in refused]
    # A refused setting was left at its default for the other checks (not SSL_CERT_FILE: httpx reads it itself).
    defaulted = [error for error in refused if error.source in _SETTINGS_VARIABLES]
    if defaulted:
        problems[-1] += "; the other checks ran with the default" + ("s" if len(defaulted) > 1 else "")
    for name, likely in _unknown(environ):
        problems.append(
            f"{name} is not a variable the function reads" + (f" (did you mean {likely}?)" if likely else "")
        )
        fixes.append(f"rename {name} to {likely}" if likely else f"remove {name}")
    if not settings.region_known:
        known = ", ".join(KNOWN_REGIONS)
        problems.append(
            f"VOLCENGINE_REGION {settings.region} is not a region ECS is known to run in ({known}); it is used as written"
        )
        fixes.append("check VOLCENGINE_REGION")
    if problems:
        status: CheckStatus = "fail" if refused else "warn"
        return SettingsReading(
            settings, check_result("settings", status, "; ".join(problems), "; ".join(fixes))
        )
    count = sum(1 for name, value in environ.items() if name in known_variables() and value.strip())
    where = (
        f"region {settings.region}, bucket {settings.tos_bucket or '(none)'}, prefix {settings.tos_prefix}"
    )
    return SettingsReading(
        settings, check_result("settings", "pass", f"{count} variables set, all valid ({where})")
    )


_SETTINGS_VARIABLES = frozenset(field.alias for field in Settings.model_fields.values() if field.alias)


def _read_leaving_out(environ: Mapping[str, str]) -> tuple[Settings, list[ConfigurationError]]:
    """The settings, each variable ``Settings.from_env`` refuses left out (so at its default) until the rest
    reads; and the refusals, in the order they came."""
    env = dict(environ)
    refused: list[ConfigurationError] = []
    while True:
        try:
            return Settings.from_env(env), refused
        except ConfigurationError as error:
            refused.append(error)
            if env.pop(error.source, None) is None:  # nothing to leave out: every default
                return Settings.from_env({}), refused


def _unknown(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """Each variable with one of ``OWN_PREFIXES`` that neither the function nor deploy reads, and the one it
    likely meant."""
    known = sorted(known_variables())
    unknown = sorted(
        name
        for name in environ
        if name.startswith(OWN_PREFIXES) and name not in known and name not in DEPLOYER_VARIABLES
    )
    return [
        (name, next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.75)), None)) for name in unknown
    ]


def run_doctor(reading: SettingsReading, subjects: Subjects, *, deadline: float) -> tuple[DoctorCheck, ...]:
    """The settings check, then every other check that applies (``_CHECKS``), each within its share of the
    time up to ``deadline`` (a ``subjects.clock.monotonic()`` reading)."""
    clock = subjects.clock
    wanted = [(name, check) for name, check, applies in _CHECKS if applies(subjects.settings)]
    checks = [reading.check]
    for index, (name, check) in enumerate(wanted):
        now = clock.monotonic()
        share = min(MAX_CHECK_SECONDS, max(0.0, deadline - now) / (len(wanted) - index))
        checks.append(_one(name, check, subjects, now + share, share))
    return tuple(checks)


def _one(name: str, check: Check, subjects: Subjects, deadline: float, share: float) -> DoctorCheck:
    """One check, whatever happens in it: not run (``NotChecked``, a warning), out of time, or failed."""
    try:
        return check(subjects, deadline)
    except NotChecked as skipped:
        return check_result(name, "warn", skipped.detail, skipped.fix)
    except BudgetExhausted:
        detail = f"not finished within its {share:.1f} s of the time budget"
        fix = "run the doctor with more time (the function's timeout, or exporter-tools doctor --timeout)"
        return check_result(name, "fail", detail, fix)
    except ExporterError as error:
        return failed_check(name, error, "the check stopped", subjects.settings)
    except Exception as error:  # a defect in one check must not hide the others' verdicts
        _log.exception("doctor.check_crashed", check=name)
        detail = f"the check failed unexpectedly ({type(error).__name__}); the log has the details (doctor.check_crashed)"
        return check_result(name, "fail", detail, "report it: this is a defect in the doctor")
