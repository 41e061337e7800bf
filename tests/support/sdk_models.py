"""The official Volcengine SDKs' models (``volcenginesdk-ecs``, ``volcenginesdk-vefaas``: test-only
dependencies) as strict references for what goes over the wire.

- ``sdk_query(request)``: the query parameters the SDK sends for a request model (GET actions), flattened
  by the SDK's own code (``ImageIds.1``, ``TagFilters.1.Values.1``, booleans as ``true``/``false``).
- ``strict_deserialize(data, "DescribeTasksResponse", package="volcenginesdkecs")``: reads an answer's
  ``Result`` into the SDK's response model and raises ``ModelMismatch`` naming the path of any field the
  model does not know, any value of the wrong JSON type, and any field the model requires that is missing.
  The SDK's own deserializer ignores unknown fields; this one does not.

This module stands alone: it needs only the SDK packages.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Mapping
from typing import Any

from volcenginesdkcore.interceptor.interceptors import (  # type: ignore[import-untyped]
    build_request_interceptor as sdk_build,
)

__all__ = ["ModelMismatch", "sdk_query", "strict_deserialize"]

_LIST = re.compile(r"^list\[(.+)\]$")
_DICT = re.compile(r"^dict\(([^,]+), (.+)\)$")
_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
}


class ModelMismatch(AssertionError):
    """An answer that the SDK's model would not describe exactly; the message names the field's path."""


def sdk_query(request: Any) -> dict[str, str]:
    """The query parameters (without Action and Version) the SDK sends for this GET request model."""
    body = sdk_build.sanitize_for_serialization(request)
    # The SDK's own flattening (a private method: name-mangled), so the check follows the SDK if it changes.
    pairs = sdk_build.BuildRequestInterceptor()._BuildRequestInterceptor__req_to_params(body)
    return {str(name): str(value) for name, value in pairs}


def strict_deserialize(data: Any, model: str, *, package: str, path: str = "Result") -> Any:
    """``data`` as an instance of the SDK model named ``model`` (in ``package.models``), strictly."""
    models = importlib.import_module(f"{package}.models")
    return _value(data, model, models, path)


def _value(data: Any, kind: str, models: Any, path: str) -> Any:
    if data is None:
        return None
    if kind == "object":
        return data
    if kind in _PRIMITIVES:
        allowed = _PRIMITIVES[kind]
        if not isinstance(data, allowed) or (kind != "bool" and isinstance(data, bool)):
            msg = f"{path}: expected {kind}, got {type(data).__name__} {data!r}"
            raise ModelMismatch(msg)
        return data
    if match := _LIST.match(kind):
        if not isinstance(data, list):
            msg = f"{path}: expected a list, got {type(data).__name__}"
            raise ModelMismatch(msg)
        return [_value(item, match.group(1), models, f"{path}[{n}]") for n, item in enumerate(data)]
    if match := _DICT.match(kind):
        if not isinstance(data, dict):
            msg = f"{path}: expected an object, got {type(data).__name__}"
            raise ModelMismatch(msg)
        return {key: _value(item, match.group(2), models, f"{path}.{key}") for key, item in data.items()}
    return _model(data, getattr(models, kind), models, path)


def _required(cls: type) -> list[str]:
    """The attributes whose setter refuses None: what the model requires (the SDK marks it nowhere else)."""
    required = []
    for attr in cls.swagger_types:  # type: ignore[attr-defined]
        setter = getattr(cls, attr).fset
        if "must not be `None`" in inspect.getsource(setter):
            required.append(attr)
    return required


def _model(data: Any, cls: type, models: Any, path: str) -> Any:
    if not isinstance(data, Mapping):
        msg = f"{path}: expected an object ({cls.__name__}), got {type(data).__name__}"
        raise ModelMismatch(msg)
    types: dict[str, str] = cls.swagger_types  # type: ignore[attr-defined]
    by_json = {json_name: attr for attr, json_name in cls.attribute_map.items()}  # type: ignore[attr-defined]
    unknown = sorted(set(data) - set(by_json))
    if unknown:
        msg = f"{path}: {cls.__name__} has no field {', '.join(unknown)}"
        raise ModelMismatch(msg)
    missing = [cls.attribute_map[attr] for attr in _required(cls) if cls.attribute_map[attr] not in data]  # type: ignore[attr-defined]
    if missing:
        msg = f"{path}: {cls.__name__} requires {', '.join(missing)}, missing here"
        raise ModelMismatch(msg)
    values = {
        by_json[name]: _value(item, types[by_json[name]], models, f"{path}.{name}")
        for name, item in data.items()
    }
    try:
        instance = cls(**values)
    except ValueError as exc:  # the model's own validation: allowed values, bounds, a required None
        msg = f"{path}: {cls.__name__} refuses it: {exc}"
        raise ModelMismatch(msg) from None
    return instance
