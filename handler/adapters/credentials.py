"""Where the function's Volcengine credentials come from (docs/contract.md, Configuration).

The first source that has them wins: ``VOLCENGINE_ACCESS_KEY``/``VOLCENGINE_SECRET_KEY`` (with the
optional ``VOLCENGINE_SESSION_TOKEN``), then ``VOLC_ACCESSKEY``/``VOLC_SECRETKEY``, then the JSON file veFaaS
writes for a function with an IAM role. A half-set source is an error rather than skipped, so a missing
variable never silently selects other keys. The file is read again on every call because role credentials rotate.
Errors name the variable, the file and the field, never a value.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from handler.adapters.signing import Credentials
from handler.errors import ConfigurationError, NoCredentials
from handler.models.settings import CREDENTIAL_VARIABLES

__all__ = [
    "CREDENTIAL_FILE_VARIABLE",
    "DEFAULT_CREDENTIAL_FILE",
    "MAX_CREDENTIAL_FILE_BYTES",
    "resolve_credentials",
]

DEFAULT_CREDENTIAL_FILE = "/var/run/secrets/iam/credential"

# The variables, named once (handler.models.settings.CREDENTIAL_VARIABLES, in the order they are read).
_ACCESS_KEY, _SECRET_KEY, _SESSION_TOKEN, _OLD_ACCESS_KEY, _OLD_SECRET_KEY, CREDENTIAL_FILE_VARIABLE = (
    CREDENTIAL_VARIABLES
)
# The most of the credential file that is read: a role's file is a few hundred bytes.
MAX_CREDENTIAL_FILE_BYTES = 64 * 1024


def resolve_credentials(
    environ: Mapping[str, str], *, default_file: str | os.PathLike[str] = DEFAULT_CREDENTIAL_FILE
) -> Credentials:
    """The credentials to sign with now, from the first source that has them (empty values count as unset).

    ``default_file`` is where role credentials are looked for when ``VOLCENGINE_CREDENTIAL_FILE`` is unset:
    its absence just means there is no file source, whereas a file the variable names must exist.
    """
    env = {name: text.strip() for name, text in environ.items() if text.strip()}
    found = _from_variables(env, _ACCESS_KEY, _SECRET_KEY, token_name=_SESSION_TOKEN)
    if found is None:
        found = _from_variables(env, _OLD_ACCESS_KEY, _OLD_SECRET_KEY, token_name=None)
    if found is None:
        explicit = env.get(CREDENTIAL_FILE_VARIABLE)
        found = _from_file(Path(explicit) if explicit else Path(default_file), must_exist=bool(explicit))
    if found is None:
        msg = (
            f"no credentials found: set {_ACCESS_KEY} and {_SECRET_KEY} (and {_SESSION_TOKEN} for temporary "
            f"keys), or {_OLD_ACCESS_KEY} and {_OLD_SECRET_KEY}, or give the function an IAM role "
            f"(its credentials are read from {default_file}; {CREDENTIAL_FILE_VARIABLE} names another file)"
        )
        raise NoCredentials(msg, source=_ACCESS_KEY)
    return found


def _from_variables(
    env: Mapping[str, str], key_name: str, secret_name: str, *, token_name: str | None
) -> Credentials | None:
    """The pair of variables as credentials, ``None`` when none of them is set, an error when half set."""
    access_key, secret_key = env.get(key_name), env.get(secret_name)
    session_token = env.get(token_name) if token_name else None
    if access_key and secret_key:
        for name, text in ((key_name, access_key), (secret_name, secret_key), (token_name, session_token)):
            if name and text is not None:
                _header_safe(text, "the variable", source=name)
        return Credentials(access_key, secret_key, session_token)
    if access_key:
        raise ConfigurationError(f"{key_name} is set but {secret_name} is not: set both", source=secret_name)
    if secret_key:
        raise ConfigurationError(f"{secret_name} is set but {key_name} is not: set both", source=key_name)
    if session_token:
        msg = f"{token_name} is set but {key_name} and {secret_name} are not: a token needs its key pair"
        raise ConfigurationError(msg, source=key_name)
    return None


def _header_safe(text: str, what: str, *, source: str) -> str:
    """``text`` when it is printable ASCII (0x20-0x7E), as every value sent in or signed into a header must
    be; else a ConfigurationError naming ``what`` and ``source`` and the kind of character, never the value."""
    bad = next((char for char in text if not " " <= char <= "~"), None)
    if bad is None:
        return text
    if bad in "\r\n":
        kind = "a line break"
    else:
        kind = "a control character" if ord(bad) < 0x80 else "a non-ASCII character"
    msg = f"{what} holds {kind}: expected printable ASCII only (0x20-0x7E), as a header value must be"
    raise ConfigurationError(msg, source=source)


def _read_small_file(path: Path) -> bytes:
    """The file's bytes: a regular file (never a FIFO, a directory or a device, which could block or never
    end) of at most ``MAX_CREDENTIAL_FILE_BYTES``, both checked before it is opened. Raises OSError, or
    ConfigurationError naming the file."""
    _check_regular_and_small(os.stat(path), path)
    # O_NONBLOCK: should the path turn into a FIFO between the stat and the open, the open must not wait;
    # the fstat below refuses it.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as file:
        _check_regular_and_small(os.fstat(fd), path)
        raw = file.read(MAX_CREDENTIAL_FILE_BYTES + 1)
    if len(raw) > MAX_CREDENTIAL_FILE_BYTES:
        raise ConfigurationError(_too_large(), source=str(path))
    return raw


def _check_regular_and_small(status: os.stat_result, path: Path) -> None:
    if not stat.S_ISREG(status.st_mode):
        msg = "the credential file is not a regular file (a directory, a FIFO or a device)"
        raise ConfigurationError(msg, source=str(path))
    if status.st_size > MAX_CREDENTIAL_FILE_BYTES:
        raise ConfigurationError(_too_large(), source=str(path))


def _too_large() -> str:
    return f"the credential file is larger than {MAX_CREDENTIAL_FILE_BYTES // 1024} KiB"


def _from_file(path: Path, *, must_exist: bool) -> Credentials | None:
    """Role credentials from the JSON file; ``None`` when an optional file is absent."""
    source = str(path)
    try:
        raw = _read_small_file(path)
    except FileNotFoundError:
        if not must_exist:
            return None
        msg = f"the credential file named by {CREDENTIAL_FILE_VARIABLE} does not exist"
        raise ConfigurationError(msg, source=source) from None
    except OSError as error:
        msg = f"the credential file cannot be read ({error.strerror or type(error).__name__})"
        raise ConfigurationError(msg, source=source) from None
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        msg = f"the credential file is not valid JSON (line {error.lineno}, column {error.colno})"
        raise ConfigurationError(msg, source=source) from None
    except UnicodeDecodeError:
        msg = "the credential file is not UTF-8 JSON text"
        raise ConfigurationError(msg, source=source) from None
    except RecursionError:
        msg = "the credential file's JSON nests too deep to be read"
        raise ConfigurationError(msg, source=source) from None
    if not isinstance(document, dict):
        msg = "the credential file is not a JSON object with access_key_id, secret_access_key, session_token"
        raise ConfigurationError(msg, source=source)
    return Credentials(
        access_key=_required_field(document, "access_key_id", source),
        secret_key=_required_field(document, "secret_access_key", source),
        session_token=_optional_field(document, "session_token", source),
    )


def _required_field(document: dict[str, object], name: str, source: str) -> str:
    text = _optional_field(document, name, source)
    if text is None:
        msg = f"field {name} of the credential file is missing or empty"
        raise ConfigurationError(msg, source=source)
    return text


def _optional_field(document: dict[str, object], name: str, source: str) -> str | None:
    """One string field of the credential file; absent, null or blank is ``None``, any other type an error,
    and so is a value that is not printable ASCII (it goes into a header)."""
    field_value = document.get(name)
    if field_value is not None and not isinstance(field_value, str):
        msg = f"field {name} of the credential file is a JSON {_json_type(field_value)}, expected a string"
        raise ConfigurationError(msg, source=source)
    text = (field_value or "").strip() or None
    if text is not None:
        _header_safe(text, f"field {name} of the credential file", source=source)
    return text


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}
    return names.get(type(value), "value")
