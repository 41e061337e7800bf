"""Shared test helpers: the published check values (``tests/vectors``) that the tests reproduce, and the
end-to-end fixtures (``tests/support/emulated.py``) for every test folder.

``tests/vectors/README.md`` says where each vectors file comes from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# CI runs the same examples every time (a failure there is reproducible, never a one-off draw); locally each
# run draws new ones, which is how property tests keep finding what nobody thought of.
settings.register_profile("ci", derandomize=True)
# `make unit` is the quick loop: a quarter of the examples (every property still runs); `make test` and CI
# run them all. Tests that ask for more than the default scale with it (tests.support.builders.examples).
settings.register_profile("quick", max_examples=25)
settings.register_profile("ci-quick", max_examples=25, derandomize=True)
_quick = os.environ.get("HYPOTHESIS_PROFILE") == "quick"
if os.environ.get("CI"):
    settings.load_profile("ci-quick" if _quick else "ci")
elif _quick:
    settings.load_profile("quick")

pytest_plugins = ["tests.support.emulated", "tests.support.invocations", "tests.support.seeded_exports"]

# A test asking for one of these fixtures runs once per case of that vectors file.
_CASE_FIXTURES = {"volc_sign_case": "volc_sign.json", "vefaas_sign_case": "vefaas_sign.json"}


VECTORS = Path(__file__).resolve().parent / "vectors"


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    """The directory holding the published vectors (``volc_sign.json``, ``vefaas_sign.json``, …)."""
    return VECTORS


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
def _fresh_process_state() -> Any:
    """Each test starts as a new process would, and leaves nothing behind: ``reset_process_state`` forgets
    the HTTP clients, rate limiters, masked secrets, cached checks, structlog's configuration and context,
    and the entry's cold-start mark (``tests/function/unit/test_clients.py`` checks each)."""
    from handler.adapters.clients import reset_process_state

    reset_process_state()
    yield
    reset_process_state()
