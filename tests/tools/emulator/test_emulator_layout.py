"""The emulator's modules import one another in one direction only: shared types below, the CLI on top."""

from __future__ import annotations

import ast
from pathlib import Path

import exporter_tools.emulator

PACKAGE = Path(exporter_tools.emulator.__file__).resolve().parent
PREFIX = "exporter_tools.emulator."


def _imports() -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports (at any depth of its code)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX):
                names.add(node.module.removeprefix(PREFIX))
            elif isinstance(node, ast.Import):
                names |= {a.name.removeprefix(PREFIX) for a in node.names if a.name.startswith(PREFIX)}
        graph[path.stem] = names
    return graph


def test_no_import_circle_among_the_emulator_modules() -> None:
    """Following imports from any emulator module never leads back to it, and nothing imports the CLI."""
    graph = _imports()
    assert not any("__main__" in imported for imported in graph.values())
    for start in graph:
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            module = todo.pop()
            assert module != start, f"{start} imports itself through {sorted(seen)}"
            if module not in seen:
                seen.add(module)
                todo.extend(graph.get(module, ()))


def test_the_shared_types_import_nothing_of_the_emulator() -> None:
    """``api`` is the bottom layer: the gateway and every service build on it, it on none of them."""
    assert _imports()["api"] == set()
