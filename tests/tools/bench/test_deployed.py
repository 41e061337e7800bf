"""The deployed cold start's three trees: one build of the function's zip, unpacked read-only three ways."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from exporter_tools.bench.archive import read_only, unzip
from exporter_tools.bench.deployed import DeployedTrees, prepare_deployed

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> DeployedTrees:
    return prepare_deployed(tmp_path_factory.mktemp("deployed"), ROOT / "dist" / ".vendor")


def pyc_flags(tree: Path) -> set[int]:
    """The PEP 552 flags word of every .pyc in ``tree`` (0 timestamp-based, 1 unchecked hash)."""
    return {int.from_bytes(path.read_bytes()[4:8], "little") for path in tree.rglob("*.pyc")}


def test_the_three_trees_differ_only_in_their_bytecode(trees: DeployedTrees) -> None:
    """As shipped: the zip's unchecked-hash .pyc; without .pyc: none; precompiled: this machine's
    timestamp-based ones for the same sources."""
    sources = {p.relative_to(trees.sources) for p in trees.sources.rglob("*.py")}
    assert sources == {p.relative_to(trees.shipped) for p in trees.shipped.rglob("*.py")}
    assert sources == {p.relative_to(trees.precompiled) for p in trees.precompiled.rglob("*.py")}
    assert not list(trees.sources.rglob("*.pyc"))
    assert pyc_flags(trees.shipped) == {1}
    assert pyc_flags(trees.precompiled) == {0}
    with zipfile.ZipFile(trees.zip_path) as archive:
        assert len(archive.namelist()) == sum(1 for p in trees.shipped.rglob("*") if p.is_file())
    assert trees.version.startswith("3.12.")


def test_every_tree_is_read_only_as_on_the_platform(trees: DeployedTrees) -> None:
    """No file or directory of any tree keeps a write permission bit."""
    for tree in (trees.shipped, trees.sources, trees.precompiled):
        assert not [p for p in [tree, *tree.rglob("*")] if p.stat().st_mode & 0o222]


def test_unpacking_again_replaces_a_read_only_tree(tmp_path: Path) -> None:
    """A tree left read-only by an earlier run is replaced, not refused."""
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("pkg/a.py", "x = 1\n")
        out.writestr("pkg/__pycache__/a.cpython-312.pyc", b"\0" * 16)
    tree = unzip(archive, tmp_path / "tree")
    read_only(tree)
    again = unzip(archive, tmp_path / "tree", bytecode=False)
    assert sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file()) == ["pkg/a.py"]
