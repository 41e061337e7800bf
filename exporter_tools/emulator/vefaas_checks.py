"""The checks the emulated veFaaS API makes on a request before it touches the account: the JSON body, a
function's configuration, its role and inline code, and the typed refusal each check raises.

veFaaS documents no error codes of its own: ``InvalidParameter`` (``invalid``) and the other codes are the
emulator's, with messages that say what a real answer says.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import zipfile
from collections.abc import Mapping
from typing import Any

from exporter_tools.emulator.api import ApiAnswer, ApiCall

__all__ = [
    "MAX_INLINE_SOURCE",
    "RUNTIMES",
    "Refused",
    "checked_config",
    "checked_integer",
    "checked_pairs",
    "checked_role",
    "checked_text",
    "decode_code",
    "invalid",
    "json_body",
    "start_failure",
]

MAX_INLINE_SOURCE = 15 * 1000 * 1000  # base64 characters of an inline zip
RUNTIMES = frozenset(
    {
        "python3.8/v1",
        "python3.9/v1",
        "python3.10/v1",
        "python3.12/v1",
        "nodejs14/v1",
        "nodejs16/v1",
        "golang/v1",
    }
)


class Refused(Exception):
    """A request the API refuses: ``answer`` is the error answer it gets, and the account is left as it was."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.answer = ApiAnswer.error(status, code, message)


def invalid(message: str) -> Refused:
    """The refusal of a bad parameter (HTTP 400 ``InvalidParameter``); ``message`` names the parameter."""
    return Refused(400, "InvalidParameter", message)


def checked_integer(body: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        msg = f"{name} must be a whole number from {low} to {high}"
        raise invalid(msg)
    return value


def checked_text(body: Mapping[str, Any], name: str, limit: int) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        msg = f"{name} must be a string of at most {limit} characters"
        raise invalid(msg)
    return value


def checked_pairs(value: object, name: str) -> list[dict[str, str]]:
    if not isinstance(value, list):
        msg = f'{name} must be a list of {{"Key", "Value"}} objects'
        raise invalid(msg)
    out: list[dict[str, str]] = []
    for index, item in enumerate(value):
        if not (
            isinstance(item, Mapping)
            and isinstance(item.get("Key"), str)
            and isinstance(item.get("Value"), str)
        ):
            msg = f'{name}[{index}] must be {{"Key": string, "Value": string}}'
            raise invalid(msg)
        out.append({"Key": item["Key"], "Value": item["Value"]})
    return out


def json_body(call: ApiCall) -> dict[str, Any]:
    """The call's JSON object body: every veFaaS action is a POST of one."""
    if call.method != "POST" or not call.content_type.startswith("application/json"):
        msg = f"{call.action} takes a POST with a JSON body (Content-Type: application/json)"
        raise invalid(msg)
    try:
        body = json.loads(call.body or b"{}")
    except ValueError:
        msg = "the body is not valid JSON"
        raise invalid(msg) from None
    if not isinstance(body, dict):
        msg = "the body must be a JSON object"
        raise invalid(msg)
    return body


def checked_config(body: Mapping[str, Any], roles: frozenset[str] | None) -> dict[str, Any]:
    """The configuration fields present in ``body``, checked (``roles``: see ``checked_role``)."""
    config: dict[str, Any] = {}
    if "MemoryMB" in body:
        memory = body["MemoryMB"]
        if not (isinstance(memory, int) and 512 <= memory <= 4096 and memory % 512 == 0):
            msg = "MemoryMB must be 512 to 4096 in steps of 512"
            raise invalid(msg)
        config["MemoryMB"] = memory
    if "RequestTimeout" in body:
        config["RequestTimeout"] = checked_integer(body, "RequestTimeout", 30, 1, 900)
    if "MaxConcurrency" in body:
        config["MaxConcurrency"] = checked_integer(body, "MaxConcurrency", 100, 1, 1000)
    if "Role" in body:
        config["Role"] = checked_role(body["Role"], roles)
    if "Description" in body:
        config["Description"] = checked_text(body, "Description", 1000)
    for name in ("Envs", "Tags"):
        if name in body:
            config[name] = checked_pairs(body[name], name)
    return config


def checked_role(role: object, roles: frozenset[str] | None) -> str:
    """A well-formed role TRN ("" for none) that is one of ``roles`` (``None``: the account has any role)."""
    if role in ("", None):
        return ""
    if not isinstance(role, str) or not role.startswith("trn:iam::") or ":role/" not in role:
        msg = "Role must look like trn:iam::<account id>:role/<name>"
        raise invalid(msg)
    if roles is not None and role not in roles:
        msg = f"the role {role} does not exist, or does not trust the veFaaS service"
        raise Refused(400, "InvalidRole", msg)
    return role


def start_failure(code: bytes) -> tuple[str, str, str] | None:
    """Why an instance of this code could not start (error code, message, instance log), or ``None``."""
    try:
        with zipfile.ZipFile(io.BytesIO(code)) as archive:
            names = set(archive.namelist())
            index = archive.read("index.py") if "index.py" in names else None
    except zipfile.BadZipFile:
        return "function_start_failed", "the code is not a zip file", "cannot unpack the code: not a zip file"
    if index is None:
        log = "Traceback (most recent call last):\nModuleNotFoundError: No module named 'index'"
        return "function_start_failed", "the runtime could not import index.handler", log
    if b"def handler" not in index:
        log = "Traceback (most recent call last):\nAttributeError: module 'index' has no attribute 'handler'"
        return "function_start_failed", "the runtime could not import index.handler", log
    return None


def decode_code(body: Mapping[str, Any], *, required: bool) -> bytes:
    """The inline zip of CreateFunction/UpdateFunction, checked as the API checks it."""
    source_type, source = body.get("SourceType"), body.get("Source")
    if source_type is None and source is None and not required:
        return b""
    if source_type != "zip":
        msg = "SourceType must be zip (the emulator keeps inline code only)"
        raise invalid(msg)
    if not isinstance(source, str) or not source:
        msg = "Source must be the base64 of the zip"
        raise invalid(msg)
    if len(source) > MAX_INLINE_SOURCE:
        msg = f"Source is {len(source)} base64 characters: the inline limit is {MAX_INLINE_SOURCE}"
        raise invalid(msg)
    try:
        return base64.b64decode(source, validate=True)
    except (binascii.Error, ValueError):
        msg = "Source is not valid base64"
        raise invalid(msg) from None
