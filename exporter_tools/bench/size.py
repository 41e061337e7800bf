"""How much each side deploys: our function zip against the SDK packages the baseline needs.

Our zip comes from the deployment packager (``exporter_tools.deploy.package``) when it is there. Both sides are
also measured the same way: the files their distributions installed (dependencies included, no ``.pyc``),
and those files packed into a zip as the packager packs (deflate, level 9).
"""

from __future__ import annotations

import importlib
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path

from exporter_tools.bench.report import SizeResult
from exporter_tools.deploy.package import runtime_sources

__all__ = ["RUNTIME_DISTRIBUTIONS", "distribution_closure", "installed_files", "measure_sizes", "zip_bytes"]

RUNTIME_DISTRIBUTIONS = ("httpx", "pydantic", "structlog")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution_closure(roots: Iterable[str], path: list[str] | None = None) -> list[metadata.Distribution]:
    """The installed distributions ``roots`` need, their dependencies included (extras left out), looked
    up on ``path`` (default ``sys.path``); a dependency not installed there is skipped."""
    found: dict[str, metadata.Distribution] = {}
    pending = [_canonical(r) for r in roots]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found_here = (
            metadata.distributions(name=name)
            if path is None
            else metadata.distributions(name=name, path=path)
        )
        dist = next(iter(found_here), None)
        if dist is None:
            continue
        found[name] = dist
        for requirement in dist.requires or ():
            if "extra ==" in requirement.replace('"', "").replace("'", ""):
                continue
            match = re.match(r"[A-Za-z0-9._-]+", requirement)
            if match:
                pending.append(_canonical(match.group()))
    return [found[name] for name in sorted(found)]


def installed_files(distributions: Iterable[metadata.Distribution]) -> Iterator[tuple[str, Path]]:
    """``(name relative to site-packages, file)`` for what the distributions installed: no ``.pyc``, no
    scripts outside site-packages, no install records."""
    for dist in distributions:
        for entry in dist.files or ():
            name = entry.as_posix()
            if (
                name.startswith("..")
                or "__pycache__/" in name
                or name.endswith((".pyc", "RECORD", "INSTALLER"))
            ):
                continue
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                yield name, path


def zip_bytes(files: Iterable[tuple[str, Path]]) -> int:
    """The size of a zip of ``files`` packed as the deployment packager packs them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, path in sorted(files):
            archive.writestr(name, path.read_bytes(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return len(buffer.getvalue())


def _built_zip(work: Path) -> tuple[int | None, str]:
    """Our deployment zip's size from the packager, or None and why when it cannot be built here."""
    try:
        package = importlib.import_module("exporter_tools.deploy.package")
    except ImportError:
        return None, "the deployment packager is not there yet"
    try:
        built = package.build_package(work / "function.zip")
    except Exception as exc:  # any failure of another tool is reported in the table, not fatal
        return None, f"the packager failed: {str(exc).splitlines()[0][:160]}"
    return int(built.size), "`exporter-tools package` (cp312 manylinux wheels, with their 3.12 bytecode)"


def measure_sizes(project_root: Path, sdk_site_packages: Path, work: Path) -> list[SizeResult]:
    """Our zip and installed runtime against the SDK core and ECS packages with their dependencies."""
    ours_files = [
        *installed_files(distribution_closure(RUNTIME_DISTRIBUTIONS)),
        *runtime_sources(project_root),
    ]
    ours_installed = sum(path.stat().st_size for _, path in ours_files)
    built, how = _built_zip(work)
    ours_names = ", ".join(d.metadata["Name"] for d in distribution_closure(RUNTIME_DISTRIBUTIONS))
    from exporter_tools.bench.sdk_env import SDK_DISTRIBUTIONS  # noqa: PLC0415

    sdk_dists = distribution_closure(SDK_DISTRIBUTIONS, [str(sdk_site_packages)])
    sdk_files = list(installed_files(sdk_dists))
    return [
        SizeResult(
            "ours",
            "ours",
            built,
            ours_installed,
            f"{how}; the handler package and {ours_names}",
        ),
        SizeResult(
            "sdk",
            "official SDK (core + ECS)",
            zip_bytes(sdk_files),
            sum(path.stat().st_size for _, path in sdk_files),
            "zipped here the same way; " + ", ".join(d.metadata["Name"] for d in sdk_dists),
        ),
        SizeResult(
            "ours-local",
            "ours, zipped here the same way",
            zip_bytes(ours_files),
            ours_installed,
            "this machine's wheels of the same packages, for a like-for-like zip",
        ),
    ]
