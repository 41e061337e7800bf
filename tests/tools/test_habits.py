"""The project's habits agree with each other: the pre-commit hooks run exactly what `make lint typecheck` runs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def makefile_recipes(text: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The Makefile's simple variables (``NAME := value``, ``NAME ?= value``) and each target's recipe lines."""
    variables: dict[str, str] = {}
    recipes: dict[str, list[str]] = {}
    target = None
    for line in text.splitlines():
        if line.startswith("\t") and target is not None:
            recipes[target].append(line.strip())
            continue
        assignment = re.match(r"^([A-Z_]+)\s*[:?]?=\s*(.*?)\s*(#.*)?$", line)
        rule = re.match(r"^([\w.$()/-]+)\s*:(?!=)", line)
        if assignment:
            variables[assignment.group(1)] = assignment.group(2)
            target = None
        elif rule:
            target = rule.group(1)
            recipes[target] = []
        elif line.strip() and not line.startswith("#"):
            target = None
    return variables, recipes


def expand(command: str, variables: dict[str, str]) -> str:
    """``$(NAME)`` replaced by its value, as make would, until none is left."""
    while (found := re.search(r"\$\((\w+)\)", command)) is not None:
        command = command.replace(found.group(0), variables[found.group(1)])
    return command


def hook_id(command: str) -> str:
    """The id a hook running ``command`` goes by: the tool's name, with its subcommand for ruff."""
    argv = shlex.split(command)
    name = Path(argv[0]).name
    return f"{name}-{argv[1]}" if name == "ruff" else name


def test_the_pre_commit_hooks_run_what_make_lint_and_typecheck_run() -> None:
    """One hook per command of the Makefile's ``lint`` and ``typecheck`` recipes, in order, with the same
    arguments and the venv's pinned tools; each checks the whole tree as make does (no file list appended)."""
    variables, recipes = makefile_recipes((ROOT / "Makefile").read_text(encoding="utf-8"))
    commands = [expand(line, variables) for line in recipes["lint"] + recipes["typecheck"]]
    config: dict[str, Any] = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    (repo,) = config["repos"]
    assert repo["repo"] == "local"
    hooks = repo["hooks"]
    assert [hook["entry"] for hook in hooks] == commands
    assert [hook["id"] for hook in hooks] == [hook_id(command) for command in commands]
    for hook in hooks:
        assert hook["language"] == "system", hook["id"]
        assert hook["pass_filenames"] is False, hook["id"]
        assert hook["entry"].startswith(".venv/bin/"), hook["id"]


def test_the_makefile_reader_sees_the_recipes() -> None:
    """The reader the test above relies on finds the lint and typecheck commands with their variables."""
    variables, recipes = makefile_recipes(
        "BIN := .venv/bin  # tools\nlint: $(STAMP)\n\t$(BIN)/ruff check a\n\nX ?= y\ntypecheck:\n\t$(BIN)/mypy\n"
    )
    assert variables == {"BIN": ".venv/bin", "X": "y"}
    assert recipes["lint"] == ["$(BIN)/ruff check a"]
    assert [expand(line, variables) for line in recipes["typecheck"]] == [".venv/bin/mypy"]


def test_no_link_or_virtualenv_is_committed() -> None:
    """The repository holds files only: a committed link (a virtualenv pointing at a checkout, say) breaks
    every fresh clone's setup."""
    import subprocess

    if not (ROOT / ".git").exists():
        return  # an unpacked source tree: nothing is committed to check
    listed = subprocess.run(
        ["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    links = [line.split("\t", 1)[1] for line in listed if line.startswith("120000 ")]
    venvs = [line.split("\t", 1)[1] for line in listed if line.split("\t", 1)[1].startswith(".venv")]
    assert (links, venvs) == ([], [])
