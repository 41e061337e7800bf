"""Credentials come from the first configured source; a half-configured one is an error that names what to fix."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from handler.adapters.credentials import (
    DEFAULT_CREDENTIAL_FILE,
    MAX_CREDENTIAL_FILE_BYTES,
    resolve_credentials,
)
from handler.adapters.signing import Credentials
from handler.errors import ConfigurationError

# Canary values: none of them may ever appear in an error message.
AK, SK, TOKEN = "AKLTcanaryNewKey", "canary-new-secret-7Qx", "canary-new-token-3Zr"
OLD_AK, OLD_SK = "AKLTcanaryOldKey", "canary-old-secret-9Wm"
FILE_AK, FILE_SK, FILE_TOKEN = "AKTPcanaryFileKey", "canary-file-secret-2Lp", "canary-file-token-8Hd"
CANARIES = (SK, TOKEN, OLD_SK, FILE_SK, FILE_TOKEN)

NEW_PAIR = {"VOLCENGINE_ACCESS_KEY": AK, "VOLCENGINE_SECRET_KEY": SK}
OLD_PAIR = {"VOLC_ACCESSKEY": OLD_AK, "VOLC_SECRETKEY": OLD_SK}
ROLE_FILE = {"access_key_id": FILE_AK, "secret_access_key": FILE_SK, "session_token": FILE_TOKEN}


@pytest.fixture
def absent_default(tmp_path: Path) -> Path:
    """A default credential file location where nothing exists (no IAM role)."""
    return tmp_path / "no-role" / "credential"


def _write(path: Path, content: object) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def _error(environ: dict[str, str], default_file: Path) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        resolve_credentials(environ, default_file=default_file)
    for canary in CANARIES:
        assert canary not in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param(NEW_PAIR, Credentials(AK, SK), id="VOLCENGINE pair"),
        pytest.param(
            {**NEW_PAIR, "VOLCENGINE_SESSION_TOKEN": TOKEN},
            Credentials(AK, SK, TOKEN),
            id="VOLCENGINE + token",
        ),
        pytest.param(OLD_PAIR, Credentials(OLD_AK, OLD_SK), id="VOLC pair"),
        pytest.param({**NEW_PAIR, **OLD_PAIR}, Credentials(AK, SK), id="VOLCENGINE wins over VOLC"),
        pytest.param(
            {**OLD_PAIR, "VOLCENGINE_ACCESS_KEY": "", "VOLCENGINE_SECRET_KEY": " "},
            Credentials(OLD_AK, OLD_SK),
            id="empty VOLCENGINE counts as unset",
        ),
        pytest.param(
            {**NEW_PAIR, "VOLCENGINE_SESSION_TOKEN": ""},
            Credentials(AK, SK),
            id="empty token counts as unset",
        ),
        pytest.param(
            {"VOLCENGINE_ACCESS_KEY": f" {AK}\n", "VOLCENGINE_SECRET_KEY": f"{SK}\n"},
            Credentials(AK, SK),
            id="surrounding whitespace trimmed",
        ),
    ],
)
def test_variables_are_taken_in_order(
    environ: dict[str, str], expected: Credentials, absent_default: Path
) -> None:
    """VOLCENGINE_* is used first, then VOLC_*; empty values are as good as unset."""
    assert resolve_credentials(environ, default_file=absent_default) == expected


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        pytest.param({"VOLCENGINE_ACCESS_KEY": AK}, "VOLCENGINE_SECRET_KEY", id="key without secret"),
        pytest.param({"VOLCENGINE_SECRET_KEY": SK}, "VOLCENGINE_ACCESS_KEY", id="secret without key"),
        pytest.param(
            {"VOLCENGINE_SECRET_KEY": SK, "VOLCENGINE_ACCESS_KEY": ""},
            "VOLCENGINE_ACCESS_KEY",
            id="secret with an empty key",
        ),
        pytest.param(
            {"VOLCENGINE_SESSION_TOKEN": TOKEN}, "VOLCENGINE_ACCESS_KEY", id="token without a key pair"
        ),
        pytest.param(
            {"VOLCENGINE_SESSION_TOKEN": TOKEN, **OLD_PAIR},
            "VOLCENGINE_ACCESS_KEY",
            id="token beside the older pair",
        ),
        pytest.param({"VOLC_ACCESSKEY": OLD_AK}, "VOLC_SECRETKEY", id="old key without secret"),
        pytest.param({"VOLC_SECRETKEY": OLD_SK}, "VOLC_ACCESSKEY", id="old secret without key"),
        pytest.param({"VOLCENGINE_ACCESS_KEY": AK, **OLD_PAIR}, "VOLCENGINE_SECRET_KEY", id="not skipped"),
    ],
)
def test_a_half_set_pair_is_an_error_naming_the_missing_variable(
    environ: dict[str, str], missing: str, tmp_path: Path
) -> None:
    """A key without its secret (or the reverse) stops with the missing variable's name, even if others exist."""
    role_file = _write(tmp_path / "credential", ROLE_FILE)
    error = _error(environ, role_file)
    assert error.source == missing
    assert missing in str(error)


def test_the_role_file_is_used_when_no_variable_is_set(tmp_path: Path) -> None:
    """A function with an IAM role signs with the STS credentials veFaaS writes to the default file."""
    role_file = _write(tmp_path / "credential", ROLE_FILE)
    assert resolve_credentials({}, default_file=role_file) == Credentials(FILE_AK, FILE_SK, FILE_TOKEN)


@pytest.mark.parametrize(
    "environ", [pytest.param(NEW_PAIR, id="VOLCENGINE"), pytest.param(OLD_PAIR, id="VOLC")]
)
def test_variables_win_over_the_role_file(environ: dict[str, str], tmp_path: Path) -> None:
    """Keys set in the environment are preferred to the role's credentials."""
    role_file = _write(tmp_path / "credential", ROLE_FILE)
    assert resolve_credentials(environ, default_file=role_file).secret_key != FILE_SK


def test_the_variable_names_another_role_file(tmp_path: Path, absent_default: Path) -> None:
    """VOLCENGINE_CREDENTIAL_FILE points at another file in the same format."""
    other = _write(tmp_path / "other.json", ROLE_FILE)
    environ = {"VOLCENGINE_CREDENTIAL_FILE": str(other)}
    assert resolve_credentials(environ, default_file=absent_default).access_key == FILE_AK


def test_the_role_file_is_read_again_on_every_call(tmp_path: Path) -> None:
    """Rotated role credentials are picked up by the next call, nothing is cached."""
    role_file = _write(tmp_path / "credential", ROLE_FILE)
    first = resolve_credentials({}, default_file=role_file)
    _write(role_file, {**ROLE_FILE, "secret_access_key": "rotated", "session_token": "rotated-token"})
    second = resolve_credentials({}, default_file=role_file)
    assert (first.secret_key, second.secret_key) == (FILE_SK, "rotated")
    assert second.session_token == "rotated-token"


@pytest.mark.parametrize(
    ("document", "expected_token"),
    [
        pytest.param({**ROLE_FILE, "session_token": None}, None, id="null token"),
        pytest.param({**ROLE_FILE, "session_token": ""}, None, id="empty token"),
        pytest.param({"access_key_id": FILE_AK, "secret_access_key": FILE_SK}, None, id="no token"),
        pytest.param({**ROLE_FILE, "extra": 1}, FILE_TOKEN, id="extra fields ignored"),
    ],
)
def test_the_file_token_is_optional(
    document: dict[str, object], expected_token: str | None, tmp_path: Path
) -> None:
    """A credential file with long-term keys and no session token is accepted."""
    role_file = _write(tmp_path / "credential", document)
    assert resolve_credentials({}, default_file=role_file).session_token == expected_token


def test_no_source_at_all_says_what_to_set(absent_default: Path) -> None:
    """With nothing configured, the error lists the variables to set and the role file looked for."""
    error = _error({"VOLCENGINE_REGION": "cn-beijing", "VOLCENGINE_ACCESS_KEY": ""}, absent_default)
    for name in ("VOLCENGINE_ACCESS_KEY", "VOLCENGINE_SECRET_KEY", "VOLC_ACCESSKEY", "VOLC_SECRETKEY"):
        assert name in str(error)
    assert str(absent_default) in str(error)
    assert "VOLCENGINE_CREDENTIAL_FILE" in str(error)


def test_the_default_file_is_the_vefaas_role_path() -> None:
    """Without configuration the role credentials are looked for where veFaaS writes them."""
    assert DEFAULT_CREDENTIAL_FILE == "/var/run/secrets/iam/credential"


def test_a_named_file_that_does_not_exist_is_an_error(tmp_path: Path, absent_default: Path) -> None:
    """A credential file named explicitly must exist: a typo in the path is reported, not ignored."""
    named = tmp_path / "typo.json"
    error = _error({"VOLCENGINE_CREDENTIAL_FILE": str(named)}, absent_default)
    assert error.source == str(named)
    assert "does not exist" in str(error)


@pytest.mark.parametrize(
    ("content", "field", "words"),
    [
        pytest.param(
            f"{{'access_key_id': '{FILE_AK}', 'secret_access_key': '{FILE_SK}'", "", "JSON", id="bad JSON"
        ),
        pytest.param(f'{{"secret_access_key": "{FILE_SK}"', "", "JSON", id="truncated JSON"),
        pytest.param(b"\xc3\x28" + FILE_SK.encode(), "", "UTF-8", id="not text"),
        pytest.param([FILE_AK, FILE_SK], "", "JSON object", id="a list"),
        pytest.param(FILE_SK, "", "JSON", id="the bare secret"),
        pytest.param({**ROLE_FILE, "access_key_id": ""}, "access_key_id", "missing", id="empty key id"),
        pytest.param({"secret_access_key": FILE_SK}, "access_key_id", "missing", id="no key id"),
        pytest.param({"access_key_id": FILE_AK}, "secret_access_key", "missing", id="no secret"),
        pytest.param({**ROLE_FILE, "secret_access_key": 12345}, "secret_access_key", "number", id="number"),
        pytest.param(
            {**ROLE_FILE, "session_token": {"value": FILE_TOKEN}},
            "session_token",
            "object",
            id="token object",
        ),
        pytest.param({**ROLE_FILE, "access_key_id": [FILE_AK]}, "access_key_id", "array", id="key id array"),
        pytest.param("[" * 60_000, "", "nests too deep", id="nested JSON"),
        pytest.param(" " * (64 * 1024) + json.dumps(ROLE_FILE), "", "larger than 64 KiB", id="over 64 KiB"),
    ],
)
def test_a_broken_role_file_names_the_file_and_field(
    content: object, field: str, words: str, tmp_path: Path
) -> None:
    """A malformed credential file is reported with its path and the field at fault, never a value."""
    role_file = tmp_path / "credential"
    if isinstance(content, bytes):
        role_file.write_bytes(content)
    else:
        _write(role_file, content)
    error = _error({}, role_file)
    assert error.source == str(role_file)
    assert str(role_file) in str(error)
    assert field in str(error)
    assert words in str(error)


def test_a_default_role_path_that_is_a_directory_is_an_error(tmp_path: Path) -> None:
    """A directory where the role file is looked for is reported with its path, not taken for no role."""
    error = _error({}, tmp_path)
    assert error.source == str(tmp_path)
    assert "not a regular file" in str(error)


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_a_role_path_that_is_not_a_regular_file_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    """A FIFO with no writer (which would block), /dev/zero (which never ends) or a directory is refused at
    once as not a regular file, naming the path: it is looked at (stat) before it is opened."""
    path = tmp_path / "credential"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path = Path("/dev/zero")
    started = time.monotonic()
    error = _error({"VOLCENGINE_CREDENTIAL_FILE": str(path)}, tmp_path / "absent")
    assert time.monotonic() - started < 2.0
    assert error.source == str(path)
    assert "not a regular file" in str(error)


def test_an_oversized_role_file_is_refused_by_its_size_before_it_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A credential file over 64 KiB is refused by what stat says: it is never opened."""
    role_file = tmp_path / "credential"
    with role_file.open("wb") as file:
        file.truncate(MAX_CREDENTIAL_FILE_BYTES + 1)
    opened: list[object] = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda *args, **kwargs: opened.append(args) or real_open(*args, **kwargs))
    error = _error({}, role_file)
    assert "larger than 64 KiB" in str(error)
    assert opened == []


# Values that cannot go into a header: a line break inside (the ends are trimmed), a control character,
# a character outside ASCII. Each is refused naming the variable or the file and field, never the value.
_NOT_HEADER_SAFE = [
    pytest.param(f"{SK[:5]}\n{SK[5:]}", "a line break", id="newline"),
    pytest.param(f"{SK[:5]}\r{SK[5:]}", "a line break", id="carriage return"),
    pytest.param(f"{SK}\x00", "a control character", id="NUL"),
    pytest.param(f"{SK}\x7f", "a control character", id="DEL"),
    pytest.param(f"{SK}é", "a non-ASCII character", id="non-ASCII"),
]


@pytest.mark.parametrize(
    ("variable", "environ"),
    [
        pytest.param("VOLCENGINE_ACCESS_KEY", {"VOLCENGINE_SECRET_KEY": SK}, id="VOLCENGINE_ACCESS_KEY"),
        pytest.param("VOLCENGINE_SECRET_KEY", {"VOLCENGINE_ACCESS_KEY": AK}, id="VOLCENGINE_SECRET_KEY"),
        pytest.param("VOLCENGINE_SESSION_TOKEN", NEW_PAIR, id="VOLCENGINE_SESSION_TOKEN"),
        pytest.param("VOLC_ACCESSKEY", {"VOLC_SECRETKEY": OLD_SK}, id="VOLC_ACCESSKEY"),
        pytest.param("VOLC_SECRETKEY", {"VOLC_ACCESSKEY": OLD_AK}, id="VOLC_SECRETKEY"),
    ],
)
@pytest.mark.parametrize(("value", "kind"), _NOT_HEADER_SAFE)
def test_a_credential_variable_that_is_not_printable_ascii_is_named_not_shown(
    variable: str, environ: dict[str, str], value: str, kind: str, absent_default: Path
) -> None:
    """Keys and tokens go into (or are signed into) headers: printable ASCII only, or a ConfigurationError
    naming the variable and the kind of character, without the value."""
    error = _error({**environ, variable: value}, absent_default)
    assert error.source == variable
    assert str(error).startswith(f"{variable}: the variable holds {kind}: expected printable ASCII only")
    assert SK[5:] not in str(error)


@pytest.mark.parametrize("field", ["access_key_id", "secret_access_key", "session_token"])
@pytest.mark.parametrize(("value", "kind"), _NOT_HEADER_SAFE)
def test_a_role_file_field_that_is_not_printable_ascii_names_the_file_and_field(
    field: str, value: str, kind: str, tmp_path: Path
) -> None:
    """The same rule for the credential file: the error names the file and the field, never the value."""
    role_file = _write(tmp_path / "credential", {**ROLE_FILE, field: value})
    error = _error({}, role_file)
    assert error.source == str(role_file)
    assert f"field {field} of the credential file holds {kind}" in str(error)
    assert SK[5:] not in str(error)
