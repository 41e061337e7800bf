"""The documents agree with the code they describe: the error codes, the configuration table, the links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exporter_tools.deploy.checks import known_variables
from exporter_tools.docs import BEGIN, END, error_code_lines, main, with_error_codes
from handler.errors import ERROR_CODES, ErrorCode, InvalidEvent
from handler.models.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
TROUBLESHOOTING = DOCS / "troubleshooting.md"
# Read by the function beside what deploy's check knows (its settings and its credentials): the older SDK's
# credential names (no prefix that check looks at), the CA bundle (httpx) and pydantic's switch.
READ_BESIDE_SETTINGS = {"VOLC_ACCESSKEY", "VOLC_SECRETKEY", "SSL_CERT_FILE", "PYDANTIC_DISABLE_PLUGINS"}


def test_troubleshooting_lists_exactly_the_error_table() -> None:
    """docs/troubleshooting.md's generated part is what ERROR_CODES gives today."""
    committed = TROUBLESHOOTING.read_text(encoding="utf-8")
    assert committed == with_error_codes(committed), (
        "docs/troubleshooting.md differs from handler.errors.ERROR_CODES: run "
        "`python -m exporter_tools.docs troubleshooting` and commit the file"
    )


def test_every_code_of_the_table_has_a_line() -> None:
    """Each code appears in the generated list, with its fix."""
    text = "\n".join(error_code_lines())
    flat = " ".join(text.split())
    for code, row in ERROR_CODES.items():
        assert f"`{code}`" in text, code
        assert " ".join(row.fix.split()) in flat, code


def test_codes_that_share_a_class_and_a_fix_share_a_line() -> None:
    """Neighbouring codes with one class and one fix are one item; the others stay apart."""
    fix = "fix the event: the message names the field"
    codes = {
        "A": ErrorCode(InvalidEvent, fix, "exporter"),
        "B": ErrorCode(InvalidEvent, fix, "exporter"),
        "C": ErrorCode(InvalidEvent, "something else", "exporter"),
    }
    items = [line for line in error_code_lines(codes) if line.startswith("- ")]
    assert items == [
        f"- `A`, `B` (`InvalidEvent`, not retryable): {fix}",
        "- `C` (`InvalidEvent`, not retryable): something else",
    ]


def test_a_source_the_document_does_not_know_is_refused() -> None:
    """A new ErrorCode.source needs a heading before the document can list it."""
    codes = {"A": ErrorCode(InvalidEvent, "fix", "elsewhere")}
    with pytest.raises(ValueError, match="elsewhere"):
        error_code_lines(codes)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("no markers at all\n", "found it 0 times"),
        (f"{END}\n{BEGIN}\n", "comes before"),
        (f"{BEGIN}\n{BEGIN}\n{END}\n", "found it 2 times"),
    ],
)
def test_the_markers_must_be_there_once_and_in_order(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        with_error_codes(text)


def test_the_command_rewrites_a_stale_file_and_check_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--check`` changes nothing and exits 1 on a stale file; without it the file is rewritten, then current."""
    path = tmp_path / "troubleshooting.md"
    path.write_text(f"# Title\n\n{BEGIN}\nstale\n{END}\n\nkept\n", encoding="utf-8")
    assert main(["troubleshooting", "--file", str(path), "--check"]) == 1
    assert "stale" in path.read_text(encoding="utf-8")
    assert "python -m exporter_tools.docs troubleshooting" in capsys.readouterr().err
    assert main(["troubleshooting", "--file", str(path)]) == 0
    text = path.read_text(encoding="utf-8")
    assert "stale" not in text
    assert text.startswith(f"# Title\n\n{BEGIN}\n")
    assert text.endswith(f"{END}\n\nkept\n")
    assert main(["troubleshooting", "--file", str(path), "--check"]) == 0


def test_the_command_names_a_file_it_cannot_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["troubleshooting", "--file", str(tmp_path / "missing.md")]) == 2
    assert "missing.md" in capsys.readouterr().err


def configuration_table_variables() -> set[str]:
    """The variables named in the first column of docs/configuration.md's table."""
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    table = text.split("## The table", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}


def test_the_configuration_table_is_every_variable_the_function_reads() -> None:
    """Every alias of the settings model (and every credential variable) is a row, and every row is one of
    them: a variable added to the code without a row, or a row left behind, fails here."""
    aliases = {field.alias for field in Settings.model_fields.values() if field.alias}
    documented = configuration_table_variables()
    assert aliases <= documented, f"not in docs/configuration.md: {sorted(aliases - documented)}"
    read = known_variables() | READ_BESIDE_SETTINGS
    assert documented == read, (
        f"missing: {sorted(read - documented)}; not read by the function: {sorted(documented - read)}"
    )


def test_the_contract_links_to_the_whole_table() -> None:
    """docs/contract.md keeps the shared contract's table and points at the project's full one."""
    contract = (DOCS / "contract.md").read_text(encoding="utf-8")
    preamble = contract.split("\n## ", 1)[0]
    assert "(configuration.md)" in preamble
    assert "## Configuration (environment)" in contract


PENDING = {DOCS / "doctor.md"}  # written with the doctor (issue 23), in its own branch; linked ahead of it
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def unfenced(text: str) -> str:
    """The text outside fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def prose(text: str) -> str:
    """The text outside code blocks and inline code, where a link is a link."""
    return re.sub(r"`[^`\n]*`", "", unfenced(text))


def anchors(path: Path) -> set[str]:
    """The ids GitHub gives the headings of a Markdown file (lowercased, punctuation dropped, spaces to dashes;
    a repeated heading gets -1, -2, …)."""
    seen: dict[str, int] = {}
    ids = set()
    for line in unfenced(path.read_text(encoding="utf-8")).splitlines():
        if not line.startswith("#"):
            continue
        slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        ids.add(slug if count == 0 else f"{slug}-{count}")
    return ids


def test_the_anchor_reader_spells_headings_as_github_does(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# A `code`: title (optional)\n## 2. Step §1\n## Same\n## Same\n```\n# not a heading\n```\n"
    )
    assert anchors(page) == {"a-code-title-optional", "2-step-1", "same", "same-1"}


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: path.name)
def test_every_relative_link_reaches_its_file_and_heading(path: Path) -> None:
    """A link between the documents (and its #anchor) points at something that exists."""
    broken = []
    for target in LINK.findall(prose(path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if linked in PENDING and not linked.exists():
            continue
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no such heading")
    assert not broken, f"{path.relative_to(ROOT)}: {broken}"


def test_the_readme_is_a_guide_that_starts_with_the_two_commands() -> None:
    """At most 250 lines; its first code block is `make demo` and `make test` (CI runs the README's test
    command); every page of docs/ is one link away."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    first_block = readme.split("```", 2)[1]
    assert [line.split()[:2] for line in first_block.splitlines()[1:] if line] == [
        ["make", "demo"],
        ["make", "test"],
    ]
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in LINK.findall(prose(readme))}
    unlinked = [page.name for page in DOCS.glob("*.md") if page.resolve() not in linked]
    assert not unlinked, f"not linked from the README: {unlinked}"
