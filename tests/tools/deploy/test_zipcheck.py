"""deploy's zip check: what the python3.12/v1 runtime (Linux x86_64) could not start is refused before upload."""

from __future__ import annotations

import io
import zipfile

import pytest

from exporter_tools.deploy.zipcheck import check_zip, zip_problems
from handler.errors import ConfigurationError

INDEX = "from handler import handler\n"
PYDANTIC_CORE_WHEEL = "Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64\n"


def build(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


GOOD = {
    "index.py": INDEX,
    "handler/__init__.py": "",
    "pydantic_core/_pydantic_core.cpython-312-x86_64-linux-gnu.so": "\x7fELF",
    "pydantic_core-2.27.2.dist-info/WHEEL": PYDANTIC_CORE_WHEEL,
    "httpx-0.28.1.dist-info/WHEEL": "Wheel-Version: 1.0\nTag: py3-none-any\n",
    "some_abi3/_speedups.abi3.so": "\x7fELF",
    "cryptography-44.dist-info/WHEEL": "Tag: cp39-abi3-manylinux_2_28_x86_64\n",
}


def test_a_zip_built_for_the_runtime_passes() -> None:
    """cp312 manylinux extension modules, pure wheels and abi3 wheels: nothing to refuse."""
    assert zip_problems(build(GOOD)) == []
    check_zip(build(GOOD), source="dist/function.zip")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({**GOOD, "index.py": None}, "no index.py at the zip's root (the runtime calls index.handler)"),
        (
            {
                **GOOD,
                "pydantic_core/_pydantic_core.cpython-312-x86_64-linux-gnu.so": None,
                "pydantic_core/_pydantic_core.cpython-311-x86_64-linux-gnu.so": "\x7fELF",
            },
            "pydantic_core/_pydantic_core.cpython-311-x86_64-linux-gnu.so is built for CPython 3.11, the runtime is 3.12",
        ),
        (
            {**GOOD, "pydantic_core/_pydantic_core.cpython-312-darwin.so": "x"},
            "pydantic_core/_pydantic_core.cpython-312-darwin.so is built for darwin, the runtime is x86_64-linux-gnu",
        ),
        (
            {**GOOD, "pydantic_core-2.27.2.dist-info/WHEEL": "Tag: cp311-cp311-manylinux_2_17_x86_64\n"},
            "pydantic_core-2.27.2.dist-info is a wheel for cp311-cp311-manylinux_2_17_x86_64, not cp312 manylinux x86_64",
        ),
        (
            {**GOOD, "pydantic_core-2.27.2.dist-info/WHEEL": "Tag: cp312-cp312-macosx_11_0_arm64\n"},
            "is a wheel for cp312-cp312-macosx_11_0_arm64",
        ),
        ({**GOOD, "native/_ext.pyd": "MZ"}, "native/_ext.pyd is a Windows extension module"),
    ],
)
def test_what_the_runtime_cannot_load_is_named(files: dict[str, str | None], expected: str) -> None:
    """Each file the runtime could not use is named with the reason."""
    data = build({name: text for name, text in files.items() if text is not None})
    problems = zip_problems(data)
    assert len(problems) == 1
    assert expected in problems[0]


def test_a_text_file_is_not_a_zip() -> None:
    """A text file given as --zip is refused as such, naming the file."""
    with pytest.raises(ConfigurationError) as refused:
        check_zip(b"def handler(event, context):\n    return {}\n", source="index.py")
    assert str(refused.value).startswith(
        "index.py: not deployable to python3.12/v1: not a zip file (it is text)"
    )
    assert "exporter-tools package" in str(refused.value)


def test_many_problems_are_counted_after_the_first_five() -> None:
    """A zip built for another Python lists five files and counts the rest."""
    files = {f"pkg{n}/_m.cpython-311-x86_64-linux-gnu.so": "x" for n in range(8)}
    with pytest.raises(ConfigurationError, match=r"; and 4 more\. Build the zip"):
        check_zip(build(files), source="f.zip")
