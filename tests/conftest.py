"""Shared test helpers: the published check values (``shared/vectors``) that the tests reproduce.

The vectors live beside the repository (``../shared/vectors``), or under ``$EXPORTER_SHARED_DIR/vectors``.
When they cannot be found the tests fail, never skip: a signer checked against nothing is not checked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# A test asking for one of these fixtures runs once per case of that vectors file.
_CASE_FIXTURES = {"volc_sign_case": "volc_sign.json", "vefaas_sign_case": "vefaas_sign.json"}


def _vectors_dir() -> Path:
    override = os.environ.get("EXPORTER_SHARED_DIR")
    shared = Path(override) if override else Path(__file__).resolve().parents[2] / "shared"
    vectors = shared / "vectors"
    if not vectors.is_dir():
        pytest.fail(
            f"the shared test vectors are missing: expected the directory {vectors} "
            "(a copy of shared/ beside the repository, or EXPORTER_SHARED_DIR pointing at one)",
            pytrace=False,
        )
    return vectors


def _load(name: str) -> Any:
    return json.loads((_vectors_dir() / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    """The directory holding the shared vectors (``volc_sign.json``, ``vefaas_sign.json``, …)."""
    return _vectors_dir()


@pytest.fixture(scope="session")
def load_vector() -> Callable[[str], Any]:
    """Load one vectors file by name, e.g. ``load_vector("webhooks.json")``."""
    return _load


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``volc_sign_case`` / ``vefaas_sign_case`` with every case of their file, by case name."""
    for fixture, file_name in _CASE_FIXTURES.items():
        if fixture in metafunc.fixturenames:
            cases = _load(file_name)["cases"]
            named = (
                {name: {**case, "name": name} for name, case in cases.items()}
                if isinstance(cases, dict)
                else {case["name"]: case for case in cases}
            )
            metafunc.parametrize(fixture, list(named.values()), ids=list(named))


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Any:
    """Each test starts from structlog's defaults: a stream configured by one test never leaks into the next."""
    import structlog

    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
