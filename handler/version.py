"""The function's version, and what the build that shipped it recorded.

``__version__`` is written here and nowhere else: pyproject.toml reads it (hatchling's dynamic version) and
``exporter-tools package`` writes it into the zip's ``handler/build.json`` with the digest of the package's
sources and the build time. :func:`build_info` reads that file once, on its first call (importing this module
reads nothing); run from a source tree, without the file, it reports ``"source_sha256": "unpackaged"``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

__all__ = ["BUILD_JSON", "__version__", "build_info"]

__version__ = "0.1.0"

# Written beside this module by `exporter-tools package`; absent from a source tree.
BUILD_JSON = Path(__file__).with_name("build.json")

_RECORDED = ("source_sha256", "built_at")


@functools.cache
def build_info() -> dict[str, str]:
    """``{"version", "source_sha256", "built_at"}`` from the zip's ``handler/build.json``.

    Without the file: the version and ``"source_sha256": "unpackaged"``. A file that cannot be read, is not
    JSON or lacks a field counts as absent, with ``"build_json": "unreadable"`` added. Read once per process."""
    info = {"version": __version__}
    try:
        recorded = json.loads(BUILD_JSON.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {**info, "source_sha256": "unpackaged"}
    except (OSError, ValueError):  # ValueError: not UTF-8, or not JSON
        recorded = None
    if not isinstance(recorded, dict) or not all(isinstance(recorded.get(key), str) for key in _RECORDED):
        return {**info, "source_sha256": "unpackaged", "build_json": "unreadable"}
    return {**info, **{key: recorded[key] for key in _RECORDED}}
