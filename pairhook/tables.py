"""Text tables: the one formatter behind ``pairhook plugins``, the demo's comparison and the benchmarks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, align: Optional[str] = None,
                 markdown: bool = False) -> str:
    """A table with ``header`` over ``rows`` of strings.

    ``align`` has one character per column, ``<`` (left) or ``>`` (right); by default the first column is left
    aligned and the others right. Plain text pads the columns and rules the header with dashes (the last
    left-aligned column is not padded); ``markdown=True`` gives a GitHub table.
    """
    align = align or "<" + ">" * (len(header) - 1)
    if markdown:
        rule = "|".join("---" if a == "<" else "---:" for a in align)
        return "\n".join(["| " + " | ".join(header) + " |", f"|{rule}|", *("| " + " | ".join(r) + " |" for r in rows)])
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        out = [str(c).ljust(w) if a == "<" else str(c).rjust(w) for c, w, a in zip(cells, widths, align)]
        if align[-1] == "<":
            out[-1] = str(cells[-1])
        return "  ".join(out)

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])
