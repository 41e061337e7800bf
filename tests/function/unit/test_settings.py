"""Settings come from the environment; every bad value is a ConfigurationError naming its variable."""

from __future__ import annotations

import os
from pathlib import Path

import certifi
import pytest

from handler.adapters.credentials import CREDENTIAL_FILE_VARIABLE
from handler.errors import ConfigurationError
from handler.models.settings import (
    CREDENTIAL_VARIABLES,
    KNOWN_REGIONS,
    Settings,
    is_loopback_host,
    known_variables,
)
from tests.support.refused_settings import SECRET_CANARY, SETTINGS_ROWS, Refused, params


def test_defaults_need_nothing_set() -> None:
    """An empty environment gives the documented defaults."""
    settings = Settings.from_env({})
    assert settings.region == "cn-beijing"
    assert settings.endpoint == "https://open.volcengineapi.com"
    assert settings.host == "open.volcengineapi.com"
    assert (settings.tos_bucket, settings.tos_prefix) == (None, "imgexport")
    assert (settings.concurrency, settings.max_rps, settings.dedupe_hours) == (4, 10.0, None)
    assert settings.webhook_notify == "changes"


def test_values_are_read_and_empty_ones_ignored() -> None:
    """Set variables override defaults; an empty variable counts as unset."""
    settings = Settings.from_env(
        {
            "VOLCENGINE_REGION": "cn-shanghai",
            "VOLCENGINE_ENDPOINT": "http://127.0.0.1:8080/",
            "EXPORT_TOS_BUCKET": "my-bucket",
            "EXPORT_TOS_PREFIX": "",
            "EXPORT_CONCURRENCY": "8",
            "EXPORT_DEDUPE_HOURS": "48",
            "UNRELATED": "x",
        }
    )
    assert settings.endpoint == "http://127.0.0.1:8080"
    assert settings.host == "127.0.0.1:8080"
    assert (settings.region, settings.tos_bucket, settings.tos_prefix) == (
        "cn-shanghai",
        "my-bucket",
        "imgexport",
    )
    assert (settings.concurrency, settings.dedupe_hours) == (8, 48.0)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("EXPORT_TOS_BUCKET", "My_Bucket", "lowercase"),
        ("EXPORT_TOS_BUCKET", "-bucket", "hyphen"),
        ("EXPORT_TOS_BUCKET", "ab", "3-63"),
        ("EXPORT_TOS_BUCKET", "a" * 64, "3-63"),
        ("EXPORT_TOS_PREFIX", "has space", "letters and digits"),
        ("EXPORT_TOS_PREFIX", "x" * 31, "1-30"),
        ("EXPORT_CONCURRENCY", "0", "expected a whole number at least 1, at most 32, got '0'"),
        ("EXPORT_CONCURRENCY", "many", "expected a whole number at least 1, at most 32, got 'many'"),
        ("VOLCENGINE_MAX_RPS", "-1", "expected a number at least 0.1, at most 1000, got '-1'"),
        ("VOLCENGINE_ENDPOINT", "open.volcengineapi.com", "scheme and host"),
        ("VOLCENGINE_ENDPOINT", "https://open.volcengineapi.com/v1", "without a path"),
        ("WEBHOOK_URL", "http://hooks.example.com/x", "https"),
        ("WEBHOOK_URL", "ftp://127.0.0.1/x", "https"),
        ("WEBHOOK_FORMAT", "teams", "standard"),
        ("LOG_LEVEL", "TRACE", "expected one of 'DEBUG', 'INFO', 'WARNING' or 'ERROR' (in any case)"),
        ("LOG_FORMAT", "pretty", "expected one of 'json' or 'console' (in any case)"),
        ("EXPORT_DEDUPE_HOURS", "2", "expected at least the scan lookback, EXPORT_LOOKBACK_HOURS=25"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, says: str) -> None:
    """A bad value stops with one wording for every setting, ``VARIABLE: expected …, got '…'``."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({variable: value})
    assert caught.value.source == variable
    assert str(caught.value).startswith(f"{variable}: expected ")
    assert says in str(caught.value)
    shown = value if len(value) <= 40 else value[:39] + "…"
    if variable != "WEBHOOK_URL":
        assert str(caught.value).endswith(f", got '{shown}'")


def test_a_bad_prefix_is_shown_cut_short() -> None:
    """A long bad EXPORT_TOS_PREFIX is quoted in the error, cut to 40 characters."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"EXPORT_TOS_PREFIX": "img-export-" + "x" * 100})
    assert str(caught.value) == (
        "EXPORT_TOS_PREFIX: expected 1-30 letters and digits, got 'img-export-" + "x" * 28 + "…'"
    )


def test_a_webhook_url_error_shows_only_scheme_and_host() -> None:
    """A refused WEBHOOK_URL is shown up to its host: its path and query may be the credential."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"WEBHOOK_URL": "http://hooks.example.com/in?token=CANARY-token"})
    assert str(caught.value).endswith(", got 'http://hooks.example.com/…'")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("LOG_LEVEL", "debug", "DEBUG"),
        ("WEBHOOK_FORMAT", "Feishu", "feishu"),
        ("WEBHOOK_NOTIFY", "ALL", "all"),
        ("LOG_FORMAT", "Console", "console"),
    ],
)
def test_choices_are_accepted_in_any_case(variable: str, value: str, expected: str) -> None:
    """LOG_LEVEL=debug, WEBHOOK_FORMAT=Feishu, WEBHOOK_NOTIFY=ALL and LOG_FORMAT=Console are read as their
    canonical values."""
    settings = Settings.from_env({variable: value})
    read = (settings.log_level, settings.webhook_format, settings.webhook_notify, settings.log_format)
    assert expected in read


def test_logs_are_json_unless_log_format_says_console() -> None:
    """LOG_FORMAT defaults to json everywhere; only an explicit console changes it."""
    assert Settings.from_env({}).log_format == "json"
    assert Settings.from_env({"LOG_FORMAT": "console"}).log_format == "console"


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "(no such file)"), ("not a certificate\n", "holds no PEM certificate"), ("", "holds no PEM")],
)
def test_a_broken_ssl_cert_file_is_a_configuration_error(
    tmp_path: Path, content: str | None, reason: str
) -> None:
    """SSL_CERT_FILE naming a missing or non-PEM file stops at settings load, naming the variable."""
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"SSL_CERT_FILE": str(path)})
    assert caught.value.source == "SSL_CERT_FILE"
    assert str(caught.value).startswith("SSL_CERT_FILE: expected a file of PEM CA certificates, got ")
    assert reason in str(caught.value)


def test_an_ssl_cert_file_that_is_a_fifo_or_huge_is_refused_without_reading_it(tmp_path: Path) -> None:
    """A FIFO would block the first read past the budget, /dev/zero would never end: SSL_CERT_FILE must be
    a regular file of at most 4 MiB, checked before it is opened."""
    fifo = tmp_path / "ca.pem"
    os.mkfifo(fifo)
    big = tmp_path / "big.pem"
    with big.open("wb") as file:
        file.truncate(5 * 1024 * 1024)
    for path, reason in (
        (fifo, "not a regular file"),
        (Path("/dev/zero"), "not a regular file"),
        (big, "more than"),
    ):
        with pytest.raises(ConfigurationError, match=reason) as caught:
            Settings.from_env({"SSL_CERT_FILE": str(path)})
        assert caught.value.source == "SSL_CERT_FILE"


def test_a_pem_ssl_cert_file_is_accepted() -> None:
    """A real PEM CA bundle (certifi's, which httpx ships with) passes the check."""
    assert Settings.from_env({"SSL_CERT_FILE": certifi.where()}).region == "cn-beijing"


def test_webhook_secret_is_not_in_the_repr() -> None:
    """Printing the settings never shows the webhook secret."""
    settings = Settings.from_env({"WEBHOOK_SECRET": "canary-secret-value"})
    assert "canary-secret-value" not in repr(settings)


def test_plain_http_webhook_is_allowed_on_loopback_only() -> None:
    """A local receiver may use http; anything else must be https."""
    assert Settings.from_env({"WEBHOOK_URL": "http://127.0.0.1:9000/hook"}).webhook_url
    assert Settings.from_env({"WEBHOOK_URL": "http://[::1]:9000/hook"}).webhook_url
    assert Settings.from_env({"WEBHOOK_URL": "https://open.feishu.cn/open-apis/bot/v2/hook/x"}).webhook_url


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("10.0.0.1", False),
        ("example.com", False),
        ("0.0.0.0", False),  # noqa: S104 - a host name under test, nothing binds to it,
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    """Only localhost and the loopback ranges count as local."""
    assert is_loopback_host(host) is loopback


def test_broken_standard_webhook_secret_is_a_configuration_error() -> None:
    """A whsec_ secret that is not base64 stops at start-up, naming the variable and never the value."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"WEBHOOK_SECRET": "whsec_not*base64!"})
    assert caught.value.source == "WEBHOOK_SECRET"
    assert "not*base64" not in str(caught.value)
    assert str(caught.value).endswith("got a value not shown here (it is a secret)")


# -- the export-tracking knobs: EXPORT_TRACKING, EXPORT_MAX_IN_FLIGHT and TOS_ENDPOINT --------------------


def test_tracking_defaults_to_tags_no_cap_and_the_regions_tos() -> None:
    """Unset, exports are tracked with tags, nothing caps them, and TOS is the region's public endpoint."""
    settings = Settings.from_env({"VOLCENGINE_REGION": "cn-shanghai"})
    assert (settings.tracking, settings.max_in_flight, settings.tos_endpoint) == ("tags", None, None)
    assert settings.tos_origin == "https://tos-cn-shanghai.volces.com"


def test_tracking_values_are_read() -> None:
    """Set variables are taken (EXPORT_TRACKING in any case; a trailing slash on TOS_ENDPOINT dropped)."""
    settings = Settings.from_env(
        {"EXPORT_TRACKING": "OFF", "EXPORT_MAX_IN_FLIGHT": "3", "TOS_ENDPOINT": "http://127.0.0.1:9000/"}
    )
    assert (settings.tracking, settings.max_in_flight) == ("off", 3)
    assert settings.tos_origin == "http://127.0.0.1:9000"


@pytest.mark.parametrize(("value", "level"), [(None, "structure"), ("HEAD", "head"), (" off ", "off")])
def test_export_verify_defaults_to_the_structure_check(value: str | None, level: str) -> None:
    """Unset, every finished export's qcow2 structure is read; ``head`` and ``off`` are taken in any case."""
    env = {} if value is None else {"EXPORT_VERIFY": value}
    assert Settings.from_env(env).verify == level


@pytest.mark.parametrize(("value", "days"), [(None, None), ("7", 7), (" 30 ", 30), ("366", 366)])
def test_restore_drill_days_is_off_unless_set(value: str | None, days: int | None) -> None:
    """Unset, no drill ever imports anything; set, a whole number of days."""
    env = {} if value is None else {"RESTORE_DRILL_DAYS": value}
    assert Settings.from_env(env).drill_days == days


def test_an_empty_cap_means_no_cap() -> None:
    """EXPORT_MAX_IN_FLIGHT set to an empty string counts as unset: no cap."""
    assert Settings.from_env({"EXPORT_MAX_IN_FLIGHT": " "}).max_in_flight is None


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("EXPORT_TRACKING", "on", "EXPORT_TRACKING: expected tags or off, got 'on'"),
        (
            "EXPORT_VERIFY",
            "deep",
            "EXPORT_VERIFY: expected structure (read each object's qcow2 structure), head",
        ),
        ("EXPORT_MAX_IN_FLIGHT", "0", "EXPORT_MAX_IN_FLIGHT: expected a whole number from 1 to 100000"),
        ("EXPORT_MAX_IN_FLIGHT", "-2", "got '-2'"),
        ("RESTORE_DRILL_DAYS", "0", "RESTORE_DRILL_DAYS: expected a whole number of days from 1 to 366"),
        ("RESTORE_DRILL_DAYS", "1.5", "got '1.5'"),
        ("RESTORE_DRILL_DAYS", "weekly", "got 'weekly'"),
        ("EXPORT_MAX_IN_FLIGHT", "2.5", "got '2.5'"),
        ("EXPORT_MAX_IN_FLIGHT", "²", "got '²'"),
        ("EXPORT_MAX_IN_FLIGHT", "many", "got 'many'"),
        ("EXPORT_MAX_IN_FLIGHT", "100001", "got '100001'"),
        ("TOS_ENDPOINT", "tos-cn-beijing.volces.com", "TOS_ENDPOINT: expected scheme and host[:port]"),
        (
            "TOS_ENDPOINT",
            "https://tos-cn-beijing.volces.com/bucket",
            "got 'https://tos-cn-beijing.volces.com/bucket'",
        ),
        ("TOS_ENDPOINT", "https://h.example?x=1", "expected scheme and host[:port]"),
        ("TOS_ENDPOINT", "http://127.0.0.1:port", "expected scheme and host[:port]"),
        ("TOS_ENDPOINT", "ftp://h.example", "expected scheme and host[:port]"),
    ],
)
def test_a_bad_value_names_its_variable_what_was_expected_and_what_came(
    variable: str, value: str, says: str
) -> None:
    """Each bad value is a ConfigurationError that names the variable, the expected form and the value."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({variable: value})
    assert caught.value.source == variable
    assert says in str(caught.value)


def test_credentials_in_tos_endpoint_are_refused_without_echoing_them() -> None:
    """A TOS_ENDPOINT carrying user:password is refused and the message does not repeat the password."""
    with pytest.raises(ConfigurationError, match=r"TOS_ENDPOINT: .*without credentials") as caught:
        Settings.from_env({"TOS_ENDPOINT": "https://user:hunter2@tos.example"})
    assert "hunter2" not in str(caught.value)


def test_settings_built_in_code_take_none_as_unset() -> None:
    """Settings built directly (tests, tools) with None for the cap and the endpoint mean no cap, default TOS."""
    settings = Settings.model_validate({"EXPORT_MAX_IN_FLIGHT": None, "TOS_ENDPOINT": None})
    assert (settings.max_in_flight, settings.tos_origin) == (None, "https://tos-cn-beijing.volces.com")


# -- bounded inputs (issue 20, item 5): every number finite and in range, ports, the region, the secret ----


@pytest.mark.parametrize("row", params(SETTINGS_ROWS))
def test_each_refused_value_is_a_configuration_error_naming_its_variable(row: Refused) -> None:
    """inf, nan and 1e308 hours, a rate outside 0.1-1000, port 0 or 99999, an unparseable URL, a region that
    is not a region id, an empty whsec_ key, a secret that cannot sign a header: each is a ConfigurationError
    whose source is the variable, never a traceback, and a secret's value is never shown."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({row.variable: row.value})
    assert caught.value.source == row.variable
    assert str(caught.value).startswith(f"{row.variable}: expected ")
    assert row.says in str(caught.value)
    assert SECRET_CANARY not in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EXPORT_LOOKBACK_HOURS", "8760"),
        ("EXPORT_LOOKBACK_HOURS", "0.5"),
        ("EXPORT_DEDUPE_HOURS", "8760"),
        ("VOLCENGINE_MAX_RPS", "0.1"),
        ("VOLCENGINE_MAX_RPS", "1000"),
        ("VOLCENGINE_ENDPOINT", "https://open.volcengineapi.com:1"),
        ("VOLCENGINE_ENDPOINT", "http://127.0.0.1:65535"),
        ("TOS_ENDPOINT", "http://[::1]:65535"),
        ("WEBHOOK_URL", "https://hooks.example.com:443/in"),
        ("WEBHOOK_SECRET", "whsec_AAECAw"),
        ("WEBHOOK_SECRET", "feishu-secret ~!@#$%^&*()"),
    ],
)
def test_the_bounds_themselves_are_accepted(variable: str, value: str) -> None:
    """The ends of each range are in it: 8760 hours, 0.1 and 1000 a second, ports 1 and 65535; an unpadded
    whsec_ key (as the webhook signer reads it) and any printable ASCII secret pass."""
    Settings.from_env({variable: value})


@pytest.mark.parametrize(
    "region", ["cn-beijing", "cn-shanghai", "ap-southeast-1", "cn-beijing-autodriving", *KNOWN_REGIONS]
)
def test_known_regions_are_accepted_as_known(region: str) -> None:
    """The regions ECS is known to run in are taken, and known."""
    settings = Settings.from_env({"VOLCENGINE_REGION": region})
    assert (settings.region, settings.region_known) == (region, True)


@pytest.mark.parametrize("region", ["eu-west-1", "cn-chengdu", "ap-southeast-12", "cn-beijing-x-2"])
def test_a_region_that_looks_like_one_but_is_not_known_is_used_as_written(region: str) -> None:
    """A region id outside the list (a new region, or a typo) is not refused: it is used, marked unknown,
    and the entry warns (settings.unknown_region)."""
    settings = Settings.from_env({"VOLCENGINE_REGION": region})
    assert (settings.region, settings.region_known) == (region, False)


# -- RETENTION_GROUP_BY: what makes exports one group (retention, the restore drill) -----------------------


@pytest.mark.parametrize(
    ("value", "group_by"),
    [
        (None, "name"),
        ("name", "name"),
        ("NAME", "name"),
        ("tag:app", "tag:app"),
        ("Tag:App", "tag:App"),
        ("tag:team/app:env", "tag:team/app:env"),
        ("tag:" + "k" * 128, "tag:" + "k" * 128),
    ],
)
def test_retention_group_by_is_name_or_a_tag(value: str | None, group_by: str) -> None:
    """Unset, exports are grouped by name; ``name`` and the ``tag:`` prefix are taken in any case, the tag
    key as written (tag keys are exact), any key TagResources takes."""
    env = {} if value is None else {"RETENTION_GROUP_BY": value}
    assert Settings.from_env(env).retention_group_by == group_by


@pytest.mark.parametrize(
    "value",
    [
        "names",
        "tag",
        "tag:",
        "tags:app",
        "label:app",
        "tag:volc:x",
        "tag:SYS:x",
        "tag:a#b",
        "tag:" + "k" * 129,
    ],
)
def test_any_other_retention_group_by_is_refused_naming_the_variable(value: str) -> None:
    """Anything but name or tag:KEY with a valid tag key is a ConfigurationError naming RETENTION_GROUP_BY,
    what it expects and the value."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"RETENTION_GROUP_BY": value})
    assert caught.value.source == "RETENTION_GROUP_BY"
    message = str(caught.value)
    assert message.startswith(
        "RETENTION_GROUP_BY: expected name, or tag:KEY with KEY a tag key (1-128 letters"
    )
    shown = value if len(value) <= 40 else value[:39] + "…"
    assert message.endswith(f", got '{shown}'")


# -- RETENTION_*: which exports of a group stay, and how many go per run -----------------------------------


def test_retention_is_off_by_default_and_keeps_the_last_seven() -> None:
    """Unset, retention is off: KEEP_LAST 7, the calendar rules 0, at least 2 verified, 10 deletes a run."""
    settings = Settings.from_env({})
    assert settings.retention_mode == "off"
    assert (settings.keep_last, settings.keep_daily, settings.keep_weekly, settings.keep_monthly) == (
        7,
        0,
        0,
        0,
    )
    assert (settings.min_verified, settings.max_deletes) == (2, 10)


def test_retention_values_are_read() -> None:
    env = {
        "RETENTION_MODE": "Apply",
        "RETENTION_KEEP_LAST": "3",
        "RETENTION_KEEP_DAILY": "7",
        "RETENTION_KEEP_WEEKLY": "4",
        "RETENTION_KEEP_MONTHLY": "12",
        "RETENTION_MIN_VERIFIED": "1",
        "RETENTION_MAX_DELETES": "5",
    }
    settings = Settings.from_env(env)
    assert settings.retention_mode == "apply"
    assert (settings.keep_last, settings.keep_daily, settings.keep_weekly, settings.keep_monthly) == (
        3,
        7,
        4,
        12,
    )
    assert (settings.min_verified, settings.max_deletes) == (1, 5)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        (
            "RETENTION_MODE",
            "delete",
            "RETENTION_MODE: expected off, plan (report what retention would delete)",
        ),
        (
            "RETENTION_KEEP_LAST",
            "-1",
            "RETENTION_KEEP_LAST: expected a whole number at least 0, at most 10000",
        ),
        ("RETENTION_KEEP_DAILY", "1.5", "RETENTION_KEEP_DAILY: expected a whole number"),
        ("RETENTION_KEEP_WEEKLY", "many", "got 'many'"),
        ("RETENTION_KEEP_MONTHLY", "10001", "got '10001'"),
        ("RETENTION_MIN_VERIFIED", "0", "RETENTION_MIN_VERIFIED: expected a whole number at least 1"),
        ("RETENTION_MAX_DELETES", "0", "RETENTION_MAX_DELETES: expected a whole number at least 1"),
        ("RETENTION_MAX_DELETES", "inf", "got 'inf'"),
    ],
)
def test_a_bad_retention_value_names_its_variable(variable: str, value: str, says: str) -> None:
    """Each RETENTION_* variable is validated like the others: the error names it, what it expects and what
    came; MIN_VERIFIED is at least 1 (the last verified export of a group is never deleted)."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({variable: value})
    assert caught.value.source == variable
    assert says in str(caught.value)


def test_a_policy_that_keeps_nothing_by_rule_is_refused_once_retention_is_on() -> None:
    """Every KEEP_* at 0 is refused while retention is on, naming RETENTION_KEEP_LAST (restic refuses such a
    policy, Kopia reads it as keep everything: here it would be neither); with retention off it is no error."""
    zero = {f"RETENTION_KEEP_{rule}": "0" for rule in ("LAST", "DAILY", "WEEKLY", "MONTHLY")}
    Settings.from_env(zero)
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({**zero, "RETENTION_MODE": "plan"})
    assert caught.value.source == "RETENTION_KEEP_LAST"
    assert "at least one of RETENTION_KEEP_LAST" in str(caught.value)
    assert (
        Settings.from_env({**zero, "RETENTION_MODE": "plan", "RETENTION_KEEP_MONTHLY": "1"}).keep_monthly == 1
    )


def test_retention_apply_needs_the_tags_that_show_exports_in_flight() -> None:
    """RETENTION_MODE=apply with EXPORT_TRACKING=off is refused naming RETENTION_MODE: without the tags no
    export in flight can be seen, and retention deletes nothing in a group with one; plan is allowed."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"RETENTION_MODE": "apply", "EXPORT_TRACKING": "off"})
    assert caught.value.source == "RETENTION_MODE"
    assert "EXPORT_TRACKING is off, got 'apply'" in str(caught.value)
    assert Settings.from_env({"RETENTION_MODE": "plan", "EXPORT_TRACKING": "off"}).retention_mode == "plan"


def test_the_known_variables_are_every_setting_the_credentials_and_the_ca_bundle() -> None:
    """``known_variables`` (what the doctor holds an unknown variable against) names each setting by its
    variable, every variable the credentials are read from, and SSL_CERT_FILE; nothing else."""
    aliases = {field.alias for field in Settings.model_fields.values()}
    known = known_variables()
    assert aliases <= known
    assert known - aliases == {*CREDENTIAL_VARIABLES, "SSL_CERT_FILE"}
    assert CREDENTIAL_FILE_VARIABLE in CREDENTIAL_VARIABLES
