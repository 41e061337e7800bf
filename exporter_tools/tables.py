"""Plain-text tables, as the tools print them: a header, then one row a line, columns two spaces apart; and the
way a cell shows a moment and a size."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from handler.clock import as_utc

__all__ = ["moment_text", "size_text", "text_table"]


def moment_text(moment: datetime | None) -> str:
    """``2026-12-01T03:20Z`` (UTC, to the minute), ``-`` for none."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%MZ") if moment is not None else "-"


def size_text(size_bytes: int) -> str:
    """``9.4 GiB``, ``512.0 KiB``, ``17 B``: binary units, one decimal."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{size_bytes} B"


def text_table(
    header: tuple[str, ...], rows: Sequence[tuple[str, ...]], *, right: tuple[int, ...] = ()
) -> list[str]:
    """The header and the rows as lines, each column as wide as its widest cell; the columns in ``right``
    are aligned right (numbers), trailing spaces dropped."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return [line(header), *(line(row) for row in rows)]
