"""Checking a function zip before deploying it: can the veFaaS Python 3.12 runtime (Linux x86_64, glibc >= 2.17)
start it?

A zip built for another Python (``cpython-311`` extension modules, from ``package --for-local-python`` on a
3.11 machine) or platform, a zip without ``index.py`` at its root, or a file that is not a zip at all would be
uploaded and then fail at Release (or at every invocation). ``check_zip`` refuses each before any write:

- it is a zip, with ``index.py`` at its root (the runtime calls ``index.handler``);
- every extension module (``*.so``) is for CPython 3.12 on Linux x86_64 (or the stable ABI, ``abi3``), and
  none is a Windows one (``*.pyd``);
- every vendored wheel (``*.dist-info/WHEEL``) has a tag the runtime accepts: ``py3`` or ``cp312`` (or
  ``abi3`` from an older CPython 3), on ``any`` or ``manylinux*_x86_64``.
"""

from __future__ import annotations

import io
import re
import zipfile

from handler.errors import ConfigurationError

__all__ = ["RUNTIME_PYTHON", "check_zip", "zip_problems"]

RUNTIME_PYTHON = 312  # CPython 3.12: the python3.12/v1 runtime
_EXTENSION = re.compile(r"\.cpython-(?P<version>\d+)[a-z]*-(?P<platform>[^./]+)\.so$")
_SHOWN = 5  # problems listed in the message; the rest are counted


def check_zip(data: bytes, *, source: str) -> None:
    """Refuse (``ConfigurationError`` naming ``source``) a zip the runtime could not start."""
    problems = zip_problems(data)
    if problems:
        more = len(problems) - _SHOWN
        listed = "; ".join(problems[:_SHOWN]) + (f"; and {more} more" if more > 0 else "")
        msg = (
            f"not deployable to python3.12/v1: {listed}. Build the zip with `exporter-tools package` "
            "(cp312 manylinux2014_x86_64 wheels)"
        )
        raise ConfigurationError(msg, source=source)


def zip_problems(data: bytes) -> list[str]:
    """Why the runtime could not start this zip, one reason per entry (empty: it can)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            wheels = {name: archive.read(name) for name in names if name.endswith(".dist-info/WHEEL")}
    except zipfile.BadZipFile:
        return ["not a zip file" + (" (it is text)" if _looks_like_text(data) else "")]
    problems = (
        [] if "index.py" in names else ["no index.py at the zip's root (the runtime calls index.handler)"]
    )
    problems.extend(problem for name in names if (problem := _extension_problem(name)))
    problems.extend(
        problem for name, text in sorted(wheels.items()) if (problem := _wheel_problem(name, text))
    )
    return problems


def _looks_like_text(data: bytes) -> bool:
    head = data[:512]
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(head) and b"\0" not in head


def _extension_problem(name: str) -> str | None:
    if name.endswith((".pyd", ".dll")):
        return f"{name} is a Windows extension module"
    if not name.endswith(".so"):
        return None
    tag = _EXTENSION.search(name)
    if tag is None:
        return None  # abi3 modules and shared libraries carry no interpreter tag
    version, platform = int(tag["version"]), tag["platform"]
    if version != RUNTIME_PYTHON:
        return f"{name} is built for CPython {version // 100}.{version % 100}, the runtime is 3.12"
    if platform != "x86_64-linux-gnu":
        return f"{name} is built for {platform}, the runtime is x86_64-linux-gnu"
    return None


def _wheel_problem(name: str, text: bytes) -> str | None:
    tags = [
        line.partition(":")[2].strip()
        for line in text.decode("utf-8", "replace").splitlines()
        if line.startswith("Tag:")
    ]
    if not tags or any(_runs(tag) for tag in tags):
        return None
    wheel = name.removesuffix("/WHEEL")
    return f"{wheel} is a wheel for {', '.join(tags)}, not cp312 manylinux x86_64"


def _runs(tag: str) -> bool:
    """Whether the runtime can use a wheel with this compatibility tag (``python-abi-platform``)."""
    parts = tag.split("-")
    if len(parts) != 3:
        return False
    pythons, abi, platforms = parts[0].split("."), parts[1], parts[2].split(".")
    python_ok = any(
        python in ("py3", f"cp{RUNTIME_PYTHON}")
        or (
            abi == "abi3"
            and python.startswith("cp3")
            and python[2:].isdigit()
            and int(python[2:]) <= RUNTIME_PYTHON
        )
        for python in pythons
    )
    platform_ok = any(
        platform == "any" or (platform.startswith("manylinux") and platform.endswith("_x86_64"))
        for platform in platforms
    )
    return python_ok and platform_ok
