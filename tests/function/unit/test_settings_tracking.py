"""The export-tracking knobs: EXPORT_TRACKING, EXPORT_MAX_IN_FLIGHT and TOS_ENDPOINT, and their errors."""

from __future__ import annotations

import pytest

from handler.errors import ConfigurationError
from handler.models.settings import Settings


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


def test_an_empty_cap_means_no_cap() -> None:
    """EXPORT_MAX_IN_FLIGHT set to an empty string counts as unset: no cap."""
    assert Settings.from_env({"EXPORT_MAX_IN_FLIGHT": " "}).max_in_flight is None


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("EXPORT_TRACKING", "on", "EXPORT_TRACKING: expected tags or off, got 'on'"),
        ("EXPORT_MAX_IN_FLIGHT", "0", "EXPORT_MAX_IN_FLIGHT: expected a whole number from 1 to 100000"),
        ("EXPORT_MAX_IN_FLIGHT", "-2", "got '-2'"),
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
