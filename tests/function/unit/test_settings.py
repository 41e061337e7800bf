"""Settings come from the environment; every bad value is a ConfigurationError naming its variable."""

from __future__ import annotations

import pytest

from handler.errors import ConfigurationError
from handler.models.settings import Settings, is_loopback_host


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
        ("EXPORT_CONCURRENCY", "0", "greater than or equal to 1"),
        ("EXPORT_CONCURRENCY", "many", "integer"),
        ("VOLCENGINE_MAX_RPS", "-1", "greater than 0"),
        ("VOLCENGINE_ENDPOINT", "open.volcengineapi.com", "scheme and host"),
        ("VOLCENGINE_ENDPOINT", "https://open.volcengineapi.com/v1", "without a path"),
        ("WEBHOOK_URL", "http://hooks.example.com/x", "https"),
        ("WEBHOOK_URL", "ftp://127.0.0.1/x", "https"),
        ("WEBHOOK_FORMAT", "teams", "standard"),
        ("LOG_LEVEL", "TRACE", "DEBUG"),
        ("EXPORT_DEDUPE_HOURS", "2", "shorter than the scan lookback"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, says: str) -> None:
    """A bad value stops with an error that names the variable and what was expected, never echoing secrets."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({variable: value})
    assert caught.value.source == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert says in str(caught.value)


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
