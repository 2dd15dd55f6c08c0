"""Tables as text that keeps each row together: one line per row, each cell after its column header."""

from __future__ import annotations

from collections.abc import Sequence


def table_lines(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Return the header line, then one line per non-empty row with each cell as ``header: value``.

    A row read alone (one chunk, one citation) then still says which column each value belongs to.
    """
    lines = [" | ".join(header)] if any(header) else []
    return lines + [line for line in (row_line(header, row) for row in rows) if line]


def row_line(header: Sequence[str], row: Sequence[str]) -> str:
    """Return ``h1: v1 | h2: v2`` for a row; empty cells are left out, a cell past the header stands alone."""
    labels = list(header) + [""] * max(0, len(row) - len(header))
    return " | ".join(f"{label}: {value}" if label else value for label, value in zip(labels, row) if value)
