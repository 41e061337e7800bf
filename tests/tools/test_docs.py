"""The documents agree with the code they describe: the configuration table."""

from __future__ import annotations

import re
from pathlib import Path

from exporter_tools.deploy.checks import known_variables
from handler.models.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# Read by the function beside what deploy's check knows (its settings and its credentials): the older SDK's
# credential names (no prefix that check looks at), the CA bundle (httpx) and pydantic's switch.
READ_BESIDE_SETTINGS = {"VOLC_ACCESSKEY", "VOLC_SECRETKEY", "SSL_CERT_FILE", "PYDANTIC_DISABLE_PLUGINS"}


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
