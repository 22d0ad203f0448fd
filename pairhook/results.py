"""Reading a run's ``results.csv``: the one copy, for the demo, the pair plot and the test fixtures."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Union


def read_results(path: Union[str, Path]) -> list[dict[str, float]]:
    """The rows of ``results.csv`` (``path`` is the file or the run folder holding it), column names stripped.

    Values are floats; a cell that is not a number reads as NaN.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "results.csv"
    with open(path, newline="") as f:
        return [{k.strip(): number(v) for k, v in row.items() if k is not None} for row in csv.DictReader(f)]


def last_results(path: Union[str, Path]) -> dict[str, float]:
    """The last row of ``results.csv``; ``ValueError`` when it has none."""
    rows = read_results(path)
    if not rows:
        raise ValueError(f"{path}: results.csv has no rows")
    return rows[-1]


def columns(rows: list[dict[str, float]], keys: tuple[str, ...]) -> dict[str, list[float]]:
    """``{key: [value per row]}`` for the ``keys`` the rows have."""
    return {k: [r[k] for r in rows] for k in keys if rows and k in rows[0]}


def number(text: object) -> float:
    """``float(text)``, NaN for anything that is not a number."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan
