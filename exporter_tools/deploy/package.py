"""``exporter-tools package``: the function's zip, built so that the same sources give the same bytes.

The zip holds ``index.py`` (the runtime's fixed entry, ``index.handler``), the runtime part of the ``handler``
package (no emulator, CLI, deployment or benchmark code) and the runtime dependencies, installed by pip from
``cp312`` ``manylinux2014_x86_64`` wheels: the veFaaS Python 3.12 runtime's platform, whatever machine
builds it. Versions are pinned to those installed here, so a build is repeatable; the installed tree is cached
under ``dist/.vendor``. Entries are sorted, with a fixed timestamp and fixed permissions, and no ``.pyc``
(compiled files whose timestamps do not match their sources would be recompiled at every cold start).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from exporter_tools.deploy import tool_arguments
from handler.errors import ExporterError

__all__ = [
    "FUNCTION_TARGET",
    "INDEX_PY",
    "MAX_INLINE_BASE64_BYTES",
    "MAX_ZIP_BYTES",
    "RUNTIME_REQUIREMENTS",
    "BuiltPackage",
    "PackageError",
    "Target",
    "build_package",
    "local_target",
    "main",
    "pinned_requirements",
    "runtime_sources",
    "vendor_dependencies",
]

RUNTIME_REQUIREMENTS = ("httpx", "pydantic", "structlog")
# The size rules: the zip itself, and its base64 form, which is what CreateFunction carries inline.
MAX_ZIP_BYTES = 10_000_000
MAX_INLINE_BASE64_BYTES = 15_000_000
DEFAULT_OUTPUT = Path("dist/function.zip")
DEFAULT_LOCAL_OUTPUT = Path("dist/function-local.zip")
DEFAULT_CACHE = Path("dist/.vendor")

INDEX_PY = b'''"""The veFaaS Python runtime calls index.handler(event, context): it hands over to the package."""

from handler import handler as _handler


def handler(event, context):
    return _handler(event, context)
'''

_SOURCE_SUFFIXES = (".py", ".typed")
# What pip leaves in a --target directory that the function does not need, or that would differ between builds.
_EXCLUDED_VENDOR = re.compile(
    r"(^|/)__pycache__/|\.pyc$|^bin/|\.dist-info/(RECORD|INSTALLER|REQUESTED|direct_url\.json)$|^\.complete$"
)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644  # a regular file, rw-r--r--
_UNIX = 3
_CACHE_FORMAT = 1  # bump when what is cached changes


class PackageError(ExporterError):
    """The zip cannot be built, or is too large to deploy inline; the message says what to do."""

    code = "PackageError"


@dataclass(frozen=True, slots=True)
class Target:
    """The interpreter the vendored wheels are for: ``platform=None`` means the one running the build."""

    python_version: str
    platform: str | None = None
    implementation: str | None = None

    @property
    def label(self) -> str:
        return f"{self.implementation or 'local'}{self.python_version.replace('.', '')}-{self.platform or sys.platform}"

    def pip_options(self) -> list[str]:
        if self.platform is None:
            return []
        options = ["--platform", self.platform, "--python-version", self.python_version]
        return [*options, "--implementation", self.implementation] if self.implementation else options


FUNCTION_TARGET = Target("3.12", "manylinux2014_x86_64", "cp")


def local_target() -> Target:
    """The running interpreter: a zip for it can be imported here (tests, local trials), not on veFaaS."""
    return Target(f"{sys.version_info.major}.{sys.version_info.minor}")


@dataclass(frozen=True, slots=True)
class BuiltPackage:
    """A built zip: where it is, its size, its SHA-256 (hex) and how many files it holds."""

    path: Path
    size: int
    sha256: str
    files: int
    target: Target

    @property
    def base64_size(self) -> int:
        return 4 * ((self.size + 2) // 3)

    def summary(self) -> str:
        mib = self.size / (1 << 20)
        inline = self.base64_size / (1 << 20)
        return (
            f"{self.path}: {self.size:,} bytes ({mib:.1f} MiB; {inline:.1f} MiB as base64, limit "
            f"{MAX_INLINE_BASE64_BYTES / 1e6:.0f} MB), {self.files} files, for {self.target.label}\n"
            f"sha256 {self.sha256}\n"
        )


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_requirements(roots: Iterable[str] = RUNTIME_REQUIREMENTS) -> dict[str, str]:
    """Each runtime dependency and what it depends on, with the version installed in this environment.

    Dependencies behind an extra are left out; so are those not installed here (they are for other Pythons:
    pip still resolves them for the target)."""
    pins: dict[str, str] = {}
    pending = [_canonical(name) for name in roots]
    for root in pending:
        try:
            metadata.distribution(root)
        except metadata.PackageNotFoundError:
            msg = f"{root} is not installed here: install the project first (pip install -e '.[dev]')"
            raise PackageError(msg) from None
    while pending:
        name = pending.pop()
        if name in pins:
            continue
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        pins[name] = distribution.version
        for requirement in distribution.requires or ():
            if "extra ==" in requirement.replace('"', "").replace("'", ""):
                continue
            match = re.match(r"[A-Za-z0-9._-]+", requirement)
            if match:
                pending.append(_canonical(match.group()))
    return dict(sorted(pins.items()))


Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _run_pip(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - our own argv


def vendor_dependencies(
    target: Target, pins: dict[str, str], cache: Path, *, run: Runner = _run_pip, refresh: bool = False
) -> Path:
    """A directory holding ``pins`` installed for ``target`` by ``pip install --target``: reused from
    ``cache`` when the same pins were installed for the same target before."""
    key = hashlib.sha256(
        json.dumps([_CACHE_FORMAT, target.label, target.pip_options(), pins]).encode()
    ).hexdigest()[:16]
    destination = cache / f"{target.label}-{key}"
    if (destination / ".complete").is_file() and not refresh:
        return destination
    staging = cache / f".staging-{key}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(staging),
        *target.pip_options(),
        "--only-binary=:all:",
        *(f"{name}=={version}" for name, version in pins.items()),
    ]
    completed = run(command)
    if completed.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        detail = "\n".join((completed.stderr or completed.stdout or "").strip().splitlines()[-8:])
        msg = f"pip could not install the runtime dependencies for {target.label}:\n{detail}"
        raise PackageError(msg)
    (staging / ".complete").write_text(" ".join(command[4:]) + "\n", encoding="utf-8")
    shutil.rmtree(destination, ignore_errors=True)
    staging.rename(destination)
    return destination


def runtime_sources(source_root: Path) -> Iterator[tuple[str, Path]]:
    """``(name in the zip, file)`` for each source file of the ``handler`` package: the package ships whole."""
    package = source_root / "handler"
    if not (package / "__init__.py").is_file():
        msg = f"no handler package under {source_root}"
        raise PackageError(msg)
    for path in sorted(package.rglob("*")):
        name = path.relative_to(source_root).as_posix()
        if path.is_file() and name.endswith(_SOURCE_SUFFIXES) and "/__pycache__/" not in name:
            yield name, path


def _vendored_files(directory: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(directory.rglob("*")):
        name = path.relative_to(directory).as_posix()
        if path.is_file() and not _EXCLUDED_VENDOR.search(name):
            yield name, path


def write_zip(entries: dict[str, bytes], output: Path) -> None:
    """Write ``entries`` as a zip whose bytes depend on nothing but the entries: names sorted, one fixed
    timestamp, ``rw-r--r--`` for every file, maximum deflate compression. Written atomically."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = _UNIX
            info.external_attr = _FILE_MODE << 16
            archive.writestr(info, entries[name], compresslevel=9)
    partial.replace(output)


def build_package(
    output: Path = DEFAULT_OUTPUT,
    *,
    target: Target = FUNCTION_TARGET,
    source_root: Path | None = None,
    cache: Path = DEFAULT_CACHE,
    run: Runner = _run_pip,
    refresh: bool = False,
) -> BuiltPackage:
    """Build the function's zip at ``output``; ``PackageError`` when it cannot be built or is too large."""
    root = source_root or Path(__file__).resolve().parents[2]
    entries: dict[str, bytes] = {"index.py": INDEX_PY}
    vendored = vendor_dependencies(target, pinned_requirements(), cache, run=run, refresh=refresh)
    for name, path in _vendored_files(vendored):
        entries[name] = path.read_bytes()
    for name, path in runtime_sources(root):
        if name in entries:
            msg = f"{name} is both a project file and a vendored one"
            raise PackageError(msg)
        entries[name] = path.read_bytes()
    write_zip(entries, output)
    data = output.read_bytes()
    built = BuiltPackage(output, len(data), hashlib.sha256(data).hexdigest(), len(entries), target)
    if built.size > MAX_ZIP_BYTES or built.base64_size >= MAX_INLINE_BASE64_BYTES:
        msg = (
            f"{output} is {built.size:,} bytes ({built.base64_size:,} as base64): the limit is "
            f"{MAX_ZIP_BYTES:,} bytes, and {MAX_INLINE_BASE64_BYTES:,} as base64 for an inline upload. "
            "Remove a dependency, or upload through TOS (SourceType tos) instead"
        )
        raise PackageError(msg)
    return built


def zip_base64(path: Path) -> str:
    """The zip as CreateFunction/UpdateFunction carry it inline (``SourceType: zip``)."""
    return base64.b64encode(path.read_bytes()).decode("ascii")


def main(argv: Sequence[str]) -> int:
    """``package [--output FILE] [--for-local-python] [--refresh]``: 0 built, 1 build failed, 2 usage."""
    parser = argparse.ArgumentParser(
        prog="exporter-tools package",
        description="Build the function's zip, reproducibly (dist/function.zip; prints its size and digest).",
    )
    parser.add_argument("--output", type=Path, help="where to write the zip (default dist/function.zip)")
    parser.add_argument(
        "--for-local-python",
        action="store_true",
        help="vendor wheels for the Python running this command, not veFaaS's cp312 (to try the zip here)",
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=DEFAULT_CACHE, help="where installed wheels are kept"
    )
    parser.add_argument(
        "--refresh", action="store_true", help="install the dependencies again, ignoring the cache"
    )
    args = parser.parse_args(tool_arguments(argv))
    target = local_target() if args.for_local_python else FUNCTION_TARGET
    output = args.output or (DEFAULT_LOCAL_OUTPUT if args.for_local_python else DEFAULT_OUTPUT)
    try:
        built = build_package(output, target=target, cache=args.cache_dir, refresh=args.refresh)
    except PackageError as exc:
        sys.stderr.write(f"package: {exc.message}\n")
        return 1
    sys.stdout.write(built.summary())
    return 0
