"""exporter-tools package: what the zip holds, that it is byte-for-byte reproducible, and that it runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from exporter_tools.deploy import package
from exporter_tools.deploy.package import (
    BUILD_JSON,
    FUNCTION_TARGET,
    INDEX_PY,
    BuiltPackage,
    PackageError,
    Target,
    build_package,
    build_record,
    find_python,
    local_target,
    main,
    pinned_requirements,
    runtime_sources,
    source_digest,
)
from handler.version import __version__

ROOT = Path(__file__).resolve().parents[3]
CACHE = ROOT / "dist" / ".vendor"  # shared with `exporter-tools package`: repeated runs reuse the wheels
IMAGE_ID = "image-new0000"


@pytest.fixture(scope="module")
def function_zip(tmp_path_factory: pytest.TempPathFactory) -> BuiltPackage:
    """The real zip, for veFaaS (cp312, manylinux2014_x86_64)."""
    return build_package(tmp_path_factory.mktemp("cp312") / "function.zip", cache=CACHE)


@pytest.fixture(scope="module")
def local_zip(tmp_path_factory: pytest.TempPathFactory) -> BuiltPackage:
    """The same zip with wheels for the Python running the tests, so that it can be imported here."""
    return build_package(
        tmp_path_factory.mktemp("local") / "function.zip", target=local_target(), cache=CACHE
    )


def names_in(built: BuiltPackage) -> list[str]:
    with zipfile.ZipFile(built.path) as archive:
        return archive.namelist()


def test_index_py_is_at_the_root_and_calls_the_package(function_zip: BuiltPackage) -> None:
    """The runtime's fixed entry, index.handler, is at the zip's root and hands over to handler.handler."""
    with zipfile.ZipFile(function_zip.path) as archive:
        assert archive.read("index.py") == INDEX_PY
    assert b"from handler import handler" in INDEX_PY


@pytest.mark.parametrize(
    "expected",
    [
        "handler/__init__.py",
        "handler/entry.py",
        "handler/errors.py",
        "handler/adapters/openapi.py",
        "handler/adapters/signing.py",
        "handler/models/settings.py",
        "httpx/__init__.py",
        "pydantic/__init__.py",
        "structlog/__init__.py",
        "pydantic_core/_pydantic_core.cpython-312-x86_64-linux-gnu.so",
    ],
)
def test_the_zip_holds_the_runtime_and_its_cp312_dependencies(
    function_zip: BuiltPackage, expected: str
) -> None:
    """The function's package and its dependencies, built for veFaaS's CPython 3.12 on Linux x86_64."""
    assert expected in names_in(function_zip)


def test_the_zip_holds_the_entry_the_function_package_and_dependencies_only(
    function_zip: BuiltPackage,
) -> None:
    """Top level: ``index.py``, ``handler/`` whole (and its build record), and the vendored dependencies; no
    tools, no pip scripts."""
    tops = {name.split("/")[0] for name in names_in(function_zip)}
    assert "index.py" in tops
    assert "handler" in tops
    assert not {"exporter_tools", "tests", "bin", "events", "docs"} & tops
    ours = sorted(
        name for name in names_in(function_zip) if name.startswith("handler/") and not name.endswith(".pyc")
    )
    assert ours == sorted([BUILD_JSON, *(name for name, _ in runtime_sources(ROOT))])


def test_the_zip_records_the_version_and_the_digest_of_its_sources(function_zip: BuiltPackage) -> None:
    """handler/build.json holds the version of handler/version.py, the digest of the package's files as
    shipped, and no build time unless SOURCE_DATE_EPOCH gives one (the zip stays reproducible)."""
    with zipfile.ZipFile(function_zip.path) as archive:
        record = json.loads(archive.read(BUILD_JSON))
        shipped = {
            name: archive.read(name)
            for name in archive.namelist()
            if name.startswith("handler/") and name.endswith((".py", ".typed"))
        }
    assert record == {
        "version": __version__,
        "source_sha256": source_digest(shipped.items()),
        "built_at": "unrecorded",
    }
    assert shipped == {name: path.read_bytes() for name, path in runtime_sources(ROOT)}


def test_the_source_digest_is_what_sha256sum_prints_hashed_again() -> None:
    """The digest can be checked with coreutils: ``sha256sum`` over the files sorted by name, piped into
    ``sha256sum``; the order the files come in does not matter."""
    import hashlib

    files = {"handler/b.py": b"b = 2\n", "handler/a.py": b"a = 1\n"}
    lines = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in sorted(files))
    assert source_digest(files.items()) == hashlib.sha256(lines.encode()).hexdigest()
    assert source_digest(reversed(list(files.items()))) == source_digest(files.items())
    assert source_digest({**files, "handler/a.py": b"a = 3\n"}.items()) != source_digest(files.items())


def test_source_date_epoch_gives_the_build_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """SOURCE_DATE_EPOCH (the reproducible-builds convention) is the recorded build time, in UTC; a value that
    is not whole seconds is refused by name."""
    sources = {"handler/version.py": b'__version__ = "9.8.7"\n'}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764288000")
    record = json.loads(build_record(sources))
    assert record == {
        "version": "9.8.7",
        "source_sha256": source_digest(sources.items()),
        "built_at": "2025-11-28T00:00:00Z",
    }
    assert build_record(sources) == build_record(sources)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(
        PackageError, match=r"SOURCE_DATE_EPOCH: expected whole seconds since 1970, got 'yesterday'"
    ):
        build_record(sources)


def test_sources_without_a_version_are_refused() -> None:
    """The version comes from the sources being packaged; without its line there is no zip."""
    with pytest.raises(PackageError, match=r'no __version__ = "\.\.\." line in handler/version\.py'):
        build_record({"handler/version.py": b"VERSION = 1\n"})


def test_every_module_ships_with_its_unchecked_hash_bytecode_for_3_12(function_zip: BuiltPackage) -> None:
    """Each .py has its CPython 3.12 .pyc beside it (and no other), hash-based and unchecked (PEP 552 flags
    0b01): valid whatever the zip's timestamps. No pip RECORD/INSTALLER files either."""
    names = names_in(function_zip)
    sources = {n for n in names if n.endswith(".py")}
    compiled = {n for n in names if n.endswith(".pyc")}
    expected = {f"{s.rpartition('/')[0]}/__pycache__/{s.rpartition('/')[2][:-3]}.cpython-312.pyc".lstrip("/")
                for s in sources}  # fmt: skip
    assert compiled == expected
    assert not [n for n in names if "__pycache__" in n and not n.endswith(".cpython-312.pyc")]
    magic = subprocess.run(
        [find_python("3.12").python, "-c", "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    with zipfile.ZipFile(function_zip.path) as archive:
        headers = {archive.read(name)[:8] for name in compiled}
    assert headers == {bytes.fromhex(magic) + (1).to_bytes(4, "little")}
    assert not [n for n in names if n.endswith(("/RECORD", "/INSTALLER", "/REQUESTED", "/direct_url.json"))]


def test_entries_are_sorted_with_fixed_times_and_permissions(function_zip: BuiltPackage) -> None:
    """Every entry has the same timestamp and rw-r--r--, in name order: nothing depends on the build machine."""
    with zipfile.ZipFile(function_zip.path) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}
    assert {i.compress_type for i in infos} == {zipfile.ZIP_DEFLATED}


def test_the_zip_fits_the_inline_upload_limits(function_zip: BuiltPackage) -> None:
    """The zip is at most 10 MB and its base64 form under the 15 MB inline limit."""
    assert function_zip.size == function_zip.path.stat().st_size <= 10_000_000
    assert function_zip.base64_size < 15_000_000
    assert function_zip.files == len(names_in(function_zip))


def test_building_again_gives_the_same_bytes(function_zip: BuiltPackage, tmp_path: Path) -> None:
    """The same sources give a byte-identical zip, from the wheel cache or from a fresh pip install."""
    again = build_package(tmp_path / "again.zip", cache=CACHE)
    fresh = build_package(tmp_path / "fresh.zip", cache=tmp_path / "fresh-cache")
    assert again.path.read_bytes() == function_zip.path.read_bytes()
    assert fresh.path.read_bytes() == function_zip.path.read_bytes()
    assert again.sha256 == fresh.sha256 == function_zip.sha256


def test_timestamps_and_modes_of_the_sources_do_not_matter(tmp_path: Path) -> None:
    """Touching or chmod-ing a source file gives the same zip; changing its content does not."""
    source = tmp_path / "src"
    shutil.copytree(ROOT / "handler", source / "handler", ignore=shutil.ignore_patterns("__pycache__"))
    first = build_package(tmp_path / "1.zip", source_root=source, cache=CACHE)
    errors = source / "handler" / "errors.py"
    os.utime(errors, (1_000_000_000, 1_000_000_000))
    errors.chmod(0o600)
    (source / "handler" / "__pycache__").mkdir(exist_ok=True)
    (source / "handler" / "__pycache__" / "errors.cpython-311.pyc").write_bytes(b"stale")
    second = build_package(tmp_path / "2.zip", source_root=source, cache=CACHE)
    assert second.sha256 == first.sha256
    errors.write_text(errors.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    third = build_package(tmp_path / "3.zip", source_root=source, cache=CACHE)
    assert third.sha256 != first.sha256


def fake_python(path: Path, cache_tag: str, version: str) -> Path:
    """An executable that answers the interpreter probe like a CPython of ``version`` would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho {cache_tag} {version}\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def without_python312(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("PATH", str(home / "bin"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("PYENV_ROOT", raising=False)


def test_without_a_python_3_12_the_build_fails_and_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No python3.12 on PATH and none under pyenv: no zip (rather than a slower one), and the way out."""
    without_python312(monkeypatch, tmp_path)
    with pytest.raises(PackageError, match=r"no CPython 3\.12 found.*pyenv install 3\.12.*--python PATH"):
        build_package(tmp_path / "f.zip", cache=CACHE)
    assert not (tmp_path / "f.zip").exists()


def test_pyenvs_newest_3_12_is_found_when_none_is_on_the_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without python3.12 on PATH, the newest 3.12.* under ~/.pyenv/versions compiles the bytecode."""
    without_python312(monkeypatch, tmp_path)
    for version in ("3.12.2", "3.12.10", "3.11.9"):
        tag = "cpython-" + "".join(version.split(".")[:2])
        fake_python(tmp_path / f".pyenv/versions/{version}/bin/python{version[:4]}", tag, version)
    found = find_python("3.12")
    assert found.version == "3.12.10"
    assert found.python == str(tmp_path / ".pyenv/versions/3.12.10/bin/python3.12")


def test_a_python_of_another_version_is_refused_by_name(tmp_path: Path) -> None:
    """--python naming a 3.11 fails and says which version it is: its bytecode would not load on 3.12."""
    other = fake_python(tmp_path / "python3.11", "cpython-311", "3.11.7")
    with pytest.raises(PackageError, match=r"python3\.11 is CPython 3\.11\.7: .*compiled by CPython 3\.12"):
        build_package(tmp_path / "f.zip", cache=CACHE, python=str(other))


def test_runtime_sources_are_the_whole_function_package() -> None:
    """The file walk takes the whole function package (its sources and py.typed), never a cached .pyc."""
    names = [name for name, _ in runtime_sources(ROOT)]
    on_disk = sorted(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "handler").rglob("*")
        if p.suffix in (".py", ".typed") and "__pycache__" not in p.parts
    )
    assert names == on_disk
    assert "handler/entry.py" in names


def test_dependencies_are_pinned_to_the_installed_versions() -> None:
    """The vendored versions are the ones installed here, dependencies of dependencies included."""
    from importlib.metadata import version

    pins = pinned_requirements()
    for name in ("httpx", "pydantic", "pydantic-core", "structlog", "httpcore", "anyio", "idna"):
        assert pins[name] == version(name)
    assert "pytest" not in pins


def test_a_zip_that_is_too_large_is_refused_with_the_limits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Above 10 MB the build fails and says what the limits are and what to do."""
    monkeypatch.setattr(package, "MAX_ZIP_BYTES", 1000)
    with pytest.raises(PackageError, match=r"the limit is 1,000 bytes.*Remove a dependency"):
        build_package(tmp_path / "big.zip", cache=CACHE)


def test_a_pip_failure_is_reported_with_pips_words(tmp_path: Path) -> None:
    """When pip cannot install the wheels, the error carries the end of pip's message and no cache is left."""

    def failing_pip(command: list[str]) -> subprocess.CompletedProcess[str]:
        assert "--only-binary=:all:" in command
        assert command[command.index("--platform") + 1] == "manylinux2014_x86_64"
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found for httpx")

    with pytest.raises(PackageError, match="No matching distribution found for httpx"):
        build_package(tmp_path / "f.zip", cache=tmp_path / "cache", run=failing_pip)
    assert not list((tmp_path / "cache").iterdir())


@pytest.mark.parametrize(
    ("target", "options"),
    [
        (
            FUNCTION_TARGET,
            ["--platform", "manylinux2014_x86_64", "--python-version", "3.12", "--implementation", "cp"],
        ),
        (Target("3.11"), []),
    ],
)
def test_pip_is_asked_for_the_target_platform(target: Target, options: list[str]) -> None:
    """The function's target asks pip for cp312 manylinux2014 wheels; a local target for this Python's."""
    assert target.pip_options() == options


def test_cli_prints_size_and_digest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """package prints the zip's size and SHA-256."""
    assert main(["--output", str(tmp_path / "f.zip"), "--cache-dir", str(CACHE)]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'f.zip'}: " in out
    assert "bytes" in out
    assert "sha256 " in out


def run_in_clean_python(python: str, directory: Path, endpoint: str, region: str) -> dict[str, Any]:
    """Import index from ``directory`` alone (no site-packages, no project, no bytecode written) and handle
    one direct event; reports which of the directory's files were compiled, and imported modules whose
    bytecode is missing."""
    script = f"""
import json, os, sys
root = {str(directory)!r}
compiled = []
def by_the_import_system(event, args):
    # A module compiled from its source because no usable .pyc was found (not a library parsing a file).
    if event == "compile" and any(f.f_code.co_name == "source_to_code" for f in frames(sys._getframe())):
        compiled.append(args[1])
def frames(frame):
    while frame is not None:
        yield frame
        frame = frame.f_back
sys.addaudithook(by_the_import_system)
sys.path.insert(0, root)
import index
result = index.handler({{"ImageId": {IMAGE_ID!r}}}, None)
import httpx, pydantic_core
import handler.version
build = handler.version.build_info()
origins = [m.__file__ for m in (index, httpx, pydantic_core, sys.modules["handler"], handler.version)]
ours = [m for m in list(sys.modules.values()) if (getattr(m, "__file__", None) or "").startswith(root)]
uncached = [m.__name__ for m in ours if m.__file__.endswith(".py") and not os.path.isfile(m.__cached__)]
print(json.dumps({{"result": result, "origins": origins, "compiled": compiled, "uncached": uncached,
                  "modules": len(ours), "build": build}}))
"""
    env = {
        "VOLCENGINE_ENDPOINT": endpoint,
        "VOLCENGINE_REGION": region,
        "VOLCENGINE_ACCESS_KEY": "AKLTpackagetest0001",
        "VOLCENGINE_SECRET_KEY": "package-test-secret-0001",
        "EXPORT_TOS_BUCKET": "demo-exports",
        "LOG_LEVEL": "WARNING",
    }
    completed = subprocess.run(
        [python, "-I", "-B", "-S", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=directory,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    output: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    for origin in output["origins"]:
        assert origin.startswith(str(directory)), origin
    return output


def exported_in_clean_python(built: BuiltPackage, python: str, tmp_path: Path) -> None:
    from exporter_tools.emulator.ecs import EcsEmulator
    from exporter_tools.emulator.fleet import new_images_fleet
    from handler.adapters.signing import Credentials

    directory = tmp_path / "unzipped"
    with zipfile.ZipFile(built.path) as archive:
        archive.extractall(directory)
    read_only = [directory, *directory.rglob("*")]
    for path in read_only:
        path.chmod(0o555 if path.is_dir() else 0o444)
    credentials = Credentials("AKLTpackagetest0001", "package-test-secret-0001")
    try:
        with EcsEmulator(new_images_fleet(1), credentials=credentials) as emulator:
            output = run_in_clean_python(python, directory, emulator.endpoint, emulator.region)
            assert emulator.export_tasks_by_image() == {IMAGE_ID: 1}
    finally:
        for path in read_only:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert output["compiled"] == []
    assert output["uncached"] == []
    assert output["build"] == json.loads((directory / BUILD_JSON).read_text(encoding="utf-8"))
    assert output["modules"] > 100  # handler, httpx, pydantic, structlog and the rest, all from the zip
    (outcome,) = output["result"]["results"]
    assert output["result"]["ok"] is True
    assert outcome["status"] == "started"
    assert outcome["task_id"]


def test_the_unzipped_package_alone_exports_an_image(local_zip: BuiltPackage, tmp_path: Path) -> None:
    """A fresh Python with only the read-only unzipped package on its path imports index and exports via
    the emulator, compiling nothing."""
    exported_in_clean_python(local_zip, sys.executable, tmp_path)


def test_the_real_cp312_zip_runs_on_python_3_12_without_compiling(
    function_zip: BuiltPackage, tmp_path: Path
) -> None:
    """The zip built for veFaaS, unzipped read-only, exports under `python3.12 -I -B` (its runtime's
    interpreter, writing no bytecode) and compiles none of its modules: all come from the shipped .pyc."""
    exported_in_clean_python(function_zip, find_python("3.12").python, tmp_path)
