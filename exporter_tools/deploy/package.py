"""``exporter-tools package``: the function's zip, built so that the same sources give the same bytes.

The zip holds ``index.py`` (the runtime's fixed entry, ``index.handler``), the runtime part of the ``handler``
package (no emulator, CLI, deployment or benchmark code) and the runtime dependencies, installed by pip from
``cp312`` ``manylinux2014_x86_64`` wheels: the veFaaS Python 3.12 runtime's platform, whatever machine
builds it. Versions are pinned to those installed here, so a build is repeatable; the installed tree is cached
under ``dist/.vendor``. Entries are sorted, with a fixed timestamp and fixed permissions.

Every module ships its bytecode beside it (``__pycache__/NAME.cpython-312.pyc``), compiled by a CPython of the
target's version in unchecked-hash mode (PEP 552): valid whatever the zip's timestamps, so a new instance
imports without compiling anything (about half its cold start otherwise). The compiler is ``python3.12`` on
``PATH`` or pyenv's, or the one named by ``--python``; without one the build fails and says how to get one.

``handler/build.json`` records the build for ``handler.version.build_info``: the version, the SHA-256 of the
package's sources (the zip's own digest cannot be inside it) and the build time, taken from
``SOURCE_DATE_EPOCH`` when it is set and ``unrecorded`` otherwise, so the same sources still give the same bytes.
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
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from exporter_tools.deploy import tool_arguments
from handler.errors import ConfigurationError, ExporterError

__all__ = [
    "BUILD_JSON",
    "FUNCTION_TARGET",
    "INDEX_PY",
    "MAX_INLINE_BASE64_BYTES",
    "MAX_ZIP_BYTES",
    "RUNTIME_REQUIREMENTS",
    "VERSION_PY",
    "BuiltPackage",
    "PackageError",
    "PackageSettingError",
    "Target",
    "build_package",
    "build_record",
    "compile_bytecode",
    "find_python",
    "local_target",
    "main",
    "pinned_requirements",
    "runtime_sources",
    "source_digest",
    "vendor_dependencies",
]

RUNTIME_REQUIREMENTS = ("httpx", "pydantic", "structlog")
# The size rules: the zip itself, and its base64 form, which is what CreateFunction carries inline.
MAX_ZIP_BYTES = 10_000_000
MAX_INLINE_BASE64_BYTES = 15_000_000
DEFAULT_OUTPUT = Path("dist/function.zip")
DEFAULT_LOCAL_OUTPUT = Path("dist/function-local.zip")
DEFAULT_CACHE = Path("dist/.vendor")
BUILD_JSON = "handler/build.json"  # read by handler.version.build_info
VERSION_PY = "handler/version.py"
_VERSION = re.compile(r'^__version__ = "([^"]+)"$', re.MULTILINE)  # as hatchling reads it (pyproject.toml)

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
_BYTECODE_FORMAT = 1  # bump when how the vendored bytecode is compiled changes

# Run by the target's interpreter: compile each name read from stdin (relative to argv[1]) into argv[2] as an
# unchecked-hash .pyc whose recorded file name is the name in the zip (imports replace it with the real path).
_COMPILE_SCRIPT = """
import importlib.util, py_compile, sys
source, output = sys.argv[1], sys.argv[2]
failed = []
for name in sys.stdin.read().splitlines():
    try:
        py_compile.compile(
            source + "/" + name, cfile=output + "/" + importlib.util.cache_from_source(name), dfile=name,
            doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    except py_compile.PyCompileError as exc:
        failed.append(name + ": " + exc.msg.strip().splitlines()[-1])
print("\\n".join(failed))
raise SystemExit(1 if failed else 0)
"""
_PROBE = "import sys; print(sys.implementation.cache_tag, sys.version.split()[0])"


class PackageError(ExporterError):
    """The zip cannot be built, or is too large to deploy inline; the message says what to do."""

    code = "PackageError"


class PackageSettingError(PackageError, ConfigurationError):
    """What the build was told is wrong (``--python``, ``SOURCE_DATE_EPOCH``): a configuration error (exit 2),
    where a ``PackageError`` of its own is the build failing (exit 1)."""


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
class Compiler:
    """An interpreter that compiles the zip's bytecode: its path, cache tag (``cpython-312``) and version."""

    python: str
    cache_tag: str
    version: str


def _probe(python: str) -> Compiler | None:
    try:
        completed = subprocess.run(  # noqa: S603 - an interpreter we are asked to, or found to, use
            [python, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError:
        return None
    tag, _, version = completed.stdout.strip().partition(" ")
    return Compiler(python, tag, version) if completed.returncode == 0 and version else None


def _pyenv_roots() -> list[Path]:
    roots = []
    pyenv = shutil.which("pyenv")
    if pyenv:
        completed = subprocess.run(  # noqa: S603 - pyenv found on PATH
            [pyenv, "root"], capture_output=True, text=True, timeout=60, check=False
        )
        if completed.returncode == 0 and completed.stdout.strip():
            roots.append(Path(completed.stdout.strip()))
    if os.environ.get("PYENV_ROOT"):
        roots.append(Path(os.environ["PYENV_ROOT"]))
    roots.append(Path.home() / ".pyenv")
    return roots


def find_python(version: str, python: str | None = None) -> Compiler:
    """A CPython ``version`` (``"3.12"``) to compile with: ``python`` when given, else ``python3.12`` on
    ``PATH``, else pyenv's newest ``3.12.*``. ``PackageError`` saying how to get one when there is none."""
    tag = "cpython-" + version.replace(".", "")
    if python is not None:
        found = _probe(python)
        if found is None or found.cache_tag != tag:
            what = f"is CPython {found.version}" if found else "does not run"
            msg = f"--python {python} {what}: the zip's bytecode must be compiled by CPython {version}"
            raise PackageSettingError(msg)
        return found
    candidates = [shutil.which(f"python{version}")]
    for root in _pyenv_roots():
        found_here = sorted(root.glob(f"versions/{version}.*/bin/python{version}"), key=_version_key)
        candidates.extend(str(path) for path in reversed(found_here))
    for candidate in dict.fromkeys(c for c in candidates if c):
        compiler = _probe(candidate)
        if compiler is not None and compiler.cache_tag == tag:
            return compiler
    msg = (
        f"no CPython {version} found (python{version} on PATH, or pyenv's versions/{version}.*): the zip ships "
        f"bytecode compiled by the runtime's Python {version}, so that a new instance does not compile every "
        f"module. Install one (`pyenv install {version}`, or your system's python{version} package), or "
        f"name it with --python PATH"
    )
    raise PackageError(msg)


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in path.parts[-3].split("."))


def compile_bytecode(compiler: Compiler, source: Path, names: Sequence[str], output: Path) -> None:
    """Compile each ``.py`` ``names`` (relative to ``source``) into ``output`` as ``__pycache__`` files,
    unchecked-hash, in one process with a fixed hash seed (so the same sources give the same bytes)."""
    env = {"PYTHONHASHSEED": "0", "PATH": os.environ.get("PATH", "")}
    completed = subprocess.run(  # noqa: S603 - the interpreter found above, our own script
        [compiler.python, "-I", "-c", _COMPILE_SCRIPT, str(source), str(output)],
        input="\n".join(names),
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    if completed.returncode != 0:
        detail = "\n".join((completed.stdout.strip() or completed.stderr.strip()).splitlines()[-8:])
        msg = f"CPython {compiler.version} ({compiler.python}) could not compile the zip's modules:\n{detail}"
        raise PackageError(msg)


def _pyc_files(directory: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(directory.rglob("*.pyc")):
        yield path.relative_to(directory).as_posix(), path


def _vendored_bytecode(compiler: Compiler, vendored: Path, names: Sequence[str], *, refresh: bool) -> Path:
    """The vendored modules compiled by ``compiler``, cached beside the vendored tree they come from."""
    key = hashlib.sha256(json.dumps([_BYTECODE_FORMAT, compiler.version, list(names)]).encode()).hexdigest()
    destination = vendored.with_name(f"{vendored.name}.{compiler.cache_tag}-{key[:16]}")
    if (destination / ".complete").is_file() and not refresh:
        return destination
    staging = destination.with_name(f".staging-{destination.name}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        compile_bytecode(compiler, vendored, names, staging)
    except PackageError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    (staging / ".complete").write_text(f"{compiler.python} {compiler.version}\n", encoding="utf-8")
    shutil.rmtree(destination, ignore_errors=True)
    staging.rename(destination)
    return destination


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


def source_digest(sources: Iterable[tuple[str, bytes]]) -> str:
    """The SHA-256 of the lines ``<sha256 of the file>  <name>`` for each file, sorted by name: what
    ``sha256sum`` prints for those files, piped into ``sha256sum`` again."""
    lines = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(sources, key=lambda s: s[0])
    )
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def _built_at() -> str:
    """``SOURCE_DATE_EPOCH`` (seconds) as an ISO 8601 UTC time; ``unrecorded`` when it is unset or empty."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not epoch:
        return "unrecorded"
    if not epoch.isdigit():
        msg = f"SOURCE_DATE_EPOCH: expected whole seconds since 1970, got {epoch[:40]!r}"
        raise PackageSettingError(msg)
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_record(sources: dict[str, bytes]) -> bytes:
    """The content of ``handler/build.json`` for the package files ``sources`` (name in the zip: bytes): the
    version written in their ``handler/version.py``, their digest and the build time."""
    found = _VERSION.search(sources.get(VERSION_PY, b"").decode("utf-8", "replace"))
    if found is None:
        msg = f'no __version__ = "..." line in {VERSION_PY}: the zip records the version it finds there'
        raise PackageError(msg)
    record = {
        "version": found.group(1),
        "source_sha256": source_digest(sources.items()),
        "built_at": _built_at(),
    }
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")


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
    python: str | None = None,
) -> BuiltPackage:
    """Build the function's zip at ``output``, bytecode included; ``PackageError`` when it cannot be built
    or is too large. ``python`` compiles the bytecode (default: found by ``find_python`` for the target; the
    running interpreter for a local target)."""
    root = source_root or Path(__file__).resolve().parents[2]
    if python is None and target.platform is None:
        python = sys.executable
    compiler = find_python(target.python_version, python)
    entries: dict[str, bytes] = {}
    vendored = vendor_dependencies(target, pinned_requirements(), cache, run=run, refresh=refresh)
    vendored_names = []
    for name, path in _vendored_files(vendored):
        entries[name] = path.read_bytes()
        vendored_names.append(name)
    bytecode = _vendored_bytecode(
        compiler, vendored, [n for n in vendored_names if n.endswith(".py")], refresh=refresh
    )
    for name, path in _pyc_files(bytecode):
        entries[name] = path.read_bytes()
    ours = {"index.py": INDEX_PY}
    for name, path in runtime_sources(root):
        if name in entries:
            msg = f"{name} is both a project file and a vendored one"
            raise PackageError(msg)
        ours[name] = path.read_bytes()
    ours[BUILD_JSON] = build_record(
        {name: data for name, data in ours.items() if name.startswith("handler/")}
    )
    entries.update(ours)
    with tempfile.TemporaryDirectory(prefix="package-") as scratch:
        sources, compiled = Path(scratch, "src"), Path(scratch, "pyc")
        for name, data in ours.items():
            (sources / name).parent.mkdir(parents=True, exist_ok=True)
            (sources / name).write_bytes(data)
        compile_bytecode(compiler, sources, sorted(n for n in ours if n.endswith(".py")), compiled)
        entries.update((name, path.read_bytes()) for name, path in _pyc_files(compiled))
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
    """``package [--output FILE] [--for-local-python] [--python PATH] [--refresh]``: 0 built, 1 the build
    failed, 2 a usage or configuration error (``--python``, ``SOURCE_DATE_EPOCH``)."""
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
        "--python",
        metavar="PATH",
        help="the CPython 3.12 that compiles the bytecode (default: python3.12 on PATH, then pyenv's)",
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
        built = build_package(
            output, target=target, cache=args.cache_dir, refresh=args.refresh, python=args.python
        )
    except PackageError as exc:
        sys.stderr.write(f"package: {exc.message}\n")
        return 2 if isinstance(exc, ConfigurationError) else 1
    sys.stdout.write(built.summary())
    return 0
