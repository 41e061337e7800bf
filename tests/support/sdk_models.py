"""The official SDKs' models as the reference for shapes: what a request carries, and what an answer may hold.

``volcenginesdk-ecs`` and ``volcenginesdk-vefaas`` (dev-only dependencies, never the function's) generate one
request and one response model per action, each with ``swagger_types`` (field → type) and ``attribute_map``
(field → the API's JSON key). The SDK's own deserializer ignores keys a model does not know; these helpers do
not:

- ``strict_sdk_model(Model, data)`` builds the model from an answer's ``Result`` and raises
  ``SdkShapeMismatch`` listing every key the model (or a nested one) does not know, every value of the wrong
  JSON type, and every field the model requires (its setter refuses ``None``) or that ``required`` names;
- ``sdk_json_body(request)`` is the JSON body the SDK sends for a request model (POST actions: veFaaS);
- ``sdk_query(request)`` is the query the SDK sends for it (GET actions: ECS), lists flattened as ``Name.N``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from volcenginesdkcore.configuration import Configuration
from volcenginesdkcore.flatten import Flatten
from volcenginesdkcore.interceptor.interceptors.build_request_interceptor import sanitize_for_serialization

__all__ = ["SdkShapeMismatch", "sdk_json_body", "sdk_query", "strict_sdk_model"]

_LIST = re.compile(r"^list\[(?P<item>.+)\]$")
_DICT = re.compile(r"^dict\((?P<key>[^,]+),\s*(?P<value>.+)\)$")
_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
}


class SdkShapeMismatch(AssertionError):
    """An answer the official model would not hold as it is; ``problems`` lists each, with its path."""

    def __init__(self, model: str, problems: list[str]) -> None:
        super().__init__(f"{model}: " + "; ".join(problems))
        self.problems = problems


def strict_sdk_model(model: type[Any], data: object, *, required: Iterable[str] = ()) -> Any:
    """``data`` (an answer's ``Result``) as an instance of the SDK's ``model``; ``SdkShapeMismatch`` when any
    key is unknown, any value has the wrong type, or a required field (dotted JSON keys in ``required``,
    e.g. ``Items.Id`` for each item) is missing or null."""
    problems: list[str] = []
    instance = _build(model, data, model.__name__, problems)
    for dotted in required:
        problems.extend(_missing(data, dotted.split("."), model.__name__))
    if problems:
        raise SdkShapeMismatch(model.__name__, problems)
    return instance


def sdk_json_body(request: Any) -> dict[str, Any]:
    """The JSON body the SDK builds for ``request`` (its own serializer: API keys, nulls left out)."""
    body: dict[str, Any] = sanitize_for_serialization(request)
    return body


def sdk_query(request: Any) -> dict[str, str]:
    """The query parameters the SDK builds for ``request`` (lists flattened as ``Name.1``, ``Name.1.Key``)."""
    flat = Flatten(sanitize_for_serialization(request), ".", 1).flat()
    return {key: _query_text(value) for key, value in flat.items()}


def _query_text(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _models_module(model: type[Any]) -> Any:
    return importlib.import_module(model.__module__.rsplit(".", 1)[0])


def _build(model: type[Any], data: object, path: str, problems: list[str]) -> Any:
    """The model instance for ``data``, noting every problem under ``path``."""
    if not isinstance(data, Mapping):
        problems.append(f"{path}: expected an object, got {type(data).__name__}")
        return None
    keys = {json_key: attr for attr, json_key in model.attribute_map.items()}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        attr = keys.get(key)
        if attr is None:
            problems.append(f"{path}.{key}: not a field of {model.__name__}")
            continue
        kwargs[attr] = _value(model, model.swagger_types[attr], value, f"{path}.{key}", problems)
    try:
        return model(**kwargs, _configuration=Configuration())
    except ValueError as exc:  # a setter refuses None for a field the model requires
        problems.append(f"{path}: {exc}")
        return None


def _value(model: type[Any], kind: str, value: object, path: str, problems: list[str]) -> Any:
    """``value`` as the SDK type ``kind`` (a primitive, ``object``, ``list[T]``, ``dict(K, V)`` or a model)."""
    if value is None or kind == "object":
        return value
    if kind in _PRIMITIVES:
        wrong = not isinstance(value, _PRIMITIVES[kind]) or (kind != "bool" and isinstance(value, bool))
        if wrong:
            problems.append(f"{path}: expected {kind}, got {type(value).__name__} {value!r}")
        return value
    listed, mapped = _LIST.match(kind), _DICT.match(kind)
    if listed:
        return _list(model, listed["item"], value, path, problems)
    if mapped:
        return _dict(model, mapped["value"], value, path, problems)
    nested = getattr(_models_module(model), kind, None)
    if nested is None:
        problems.append(f"{path}: the SDK has no model {kind}")
        return None
    return _build(nested, value, path, problems)


def _list(model: type[Any], item_kind: str, value: object, path: str, problems: list[str]) -> Any:
    if not isinstance(value, list):
        problems.append(f"{path}: expected a list, got {type(value).__name__}")
        return None
    return [_value(model, item_kind, item, f"{path}[{index}]", problems) for index, item in enumerate(value)]


def _dict(model: type[Any], value_kind: str, value: object, path: str, problems: list[str]) -> Any:
    if not isinstance(value, Mapping):
        problems.append(f"{path}: expected an object, got {type(value).__name__}")
        return None
    return {key: _value(model, value_kind, item, f"{path}.{key}", problems) for key, item in value.items()}


def _missing(data: object, keys: list[str], path: str) -> list[str]:
    """Where the dotted ``keys`` are absent or null in ``data`` (lists: in each item)."""
    if isinstance(data, list):
        return [
            problem for index, item in enumerate(data) for problem in _missing(item, keys, f"{path}[{index}]")
        ]
    if not keys:
        return []
    head, rest = keys[0], keys[1:]
    if not isinstance(data, Mapping) or data.get(head) is None:
        return [f"{path}.{head}: required, missing"]
    return _missing(data[head], rest, f"{path}.{head}")
