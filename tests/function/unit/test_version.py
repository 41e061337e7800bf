"""handler.version: one version for the project and the function, and what a build recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from handler import version
from handler.version import __version__, build_info


@pytest.fixture
def build_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Where build_info looks for the build record, moved to an empty directory; the cache starts empty."""
    path = tmp_path / "build.json"
    monkeypatch.setattr(version, "BUILD_JSON", path)
    build_info.cache_clear()
    yield path
    build_info.cache_clear()


def test_the_installed_project_has_the_functions_version() -> None:
    """pyproject.toml takes its version from handler/version.py, so the two never differ."""
    assert metadata.version("vefaas-image-exporter") == __version__


def test_without_a_build_record_the_version_is_reported_unpackaged(build_json: Path) -> None:
    """A source tree has no build.json: the version, and a source digest that says so."""
    assert build_info() == {"version": __version__, "source_sha256": "unpackaged"}


def test_the_build_record_gives_the_source_digest_and_build_time(build_json: Path) -> None:
    """In the zip, build.json supplies the digest and the time; the version is the running code's own."""
    build_json.write_text(
        json.dumps({"version": __version__, "source_sha256": "ab" * 32, "built_at": "2026-11-28T00:00:00Z"}),
        encoding="utf-8",
    )
    assert build_info() == {
        "version": __version__,
        "source_sha256": "ab" * 32,
        "built_at": "2026-11-28T00:00:00Z",
    }


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe",
        b'["a list"]',
        b'{"version": "0.1.0", "built_at": "2026-11-28T00:00:00Z"}',
        b'{"version": "0.1.0", "source_sha256": 1, "built_at": "x"}',
    ],
    ids=["not-json", "not-utf8", "not-an-object", "no-digest", "digest-not-a-string"],
)
def test_an_unreadable_build_record_counts_as_absent_and_says_so(build_json: Path, content: bytes) -> None:
    """A damaged build.json never stops the function: reported as unpackaged, marked unreadable."""
    build_json.write_bytes(content)
    assert build_info() == {"version": __version__, "source_sha256": "unpackaged", "build_json": "unreadable"}


def test_a_build_record_that_cannot_be_opened_is_unreadable(build_json: Path) -> None:
    """A directory where the file should be (any OSError but absence) is reported unreadable too."""
    build_json.mkdir()
    assert build_info()["build_json"] == "unreadable"


def test_the_record_is_read_once(build_json: Path) -> None:
    """The first call reads the file; later calls answer from the cache, whatever happens to it."""
    first = build_info()
    build_json.write_text('{"source_sha256": "new", "built_at": "now"}', encoding="utf-8")
    assert build_info() is first
