"""The comparison of runs the demo prints: a table of the last epoch's metrics per run (mean ± std over seeds),
the seed-by-seed differences from the baseline, and what they say in sentences (:func:`story`)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Optional

BASELINE = "baseline"

#: Rows of the comparison table: (label, results.csv column). ``{loss}`` is the regularizer's loss name. Rows whose
#: column neither run has are left out; add entries here to show more columns.
TABLE: list[tuple[str, str]] = [
    ("mAP50", "metrics/mAP50(B)"),
    ("mAP50-95", "metrics/mAP50-95(B)"),
    ("pairs both detected", "pairs/both_detected"),
    ("pairs one detected", "pairs/one_detected"),
    ("recall upper view", "pairs/recall_upper"),
    ("recall lower view", "pairs/recall_lower"),
    ("AP50-95 upper view", "pairs/ap_upper"),
    ("AP50-95 lower view", "pairs/ap_lower"),
    ("recall at precision 0.8, lower view", "pairs/recall_p80_lower"),
    ("wrong-class boxes, lower view", "pairs/wrong_class_lower"),
    ("pairs class agree", "pairs/class_agree"),
    ("pairs conf gap", "pairs/conf_gap"),
    ("train/{loss}", "train/{loss}"),
    ("val/{loss}", "val/{loss}"),
]

def table_rows(loss_names: str | Sequence[str], entries: Sequence[tuple[str, str]] = TABLE) -> list[tuple[str, str]]:
    """``TABLE`` with ``{loss}`` filled in (rows with ``{loss}`` repeated for each loss name)."""
    names = [loss_names] if isinstance(loss_names, str) else list(loss_names)
    out: list[tuple[str, str]] = []
    for label, column in entries:
        for name in names if "{loss}" in column else [None]:
            row = (label.format(loss=name), column.format(loss=name)) if name else (label, column)
            if row not in out:
                out.append(row)
    return out


def pick(results: dict[str, float], rows: Sequence[tuple[str, str]]) -> dict[str, Optional[float]]:
    """``{label: value or None}`` for each table row."""
    return {label: results.get(column) for label, column in rows}


def _fmt(value: Optional[float], spread: Optional[float] = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.2e}"
    return text if spread is None or math.isnan(spread) else f"{text} ± {spread:.4f}"


def comparison_rows(metrics: dict[str, dict[str, Optional[float]]],
                    spread: Optional[dict[str, dict[str, Optional[float]]]] = None,
                    differences: Optional[dict[str, tuple[float, Optional[float]]]] = None
                    ) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of the comparison for :func:`pairhook.tables.format_table`: one row per label, one column
    per run, plus (for two runs) the difference of the second to the first.

    ``metrics`` is ``{run name: {label: value or None}}``, every run with the same labels in the same order;
    ``spread``, in the same shape, adds ``± value`` (standard deviations over seeds); ``differences``, ``{label:
    (mean, std or None)}`` of the seed-by-seed differences (:func:`paired`), fills the difference column instead of
    the difference of the means. Labels no run has a value for are left out.
    """
    runs = list(metrics)
    labels = [lb for lb in metrics[runs[0]] if any(metrics[r].get(lb) is not None for r in runs)]
    header = ["", *runs] + (["difference"] if len(runs) == 2 else [])
    body = []
    for label in labels:
        values = [metrics[r].get(label) for r in runs]
        row = [label, *(_fmt(v, (spread or {}).get(r, {}).get(label)) for r, v in zip(runs, values))]
        if len(runs) == 2:
            first, last = values[0], values[-1]
            if differences is not None and label in differences:
                mean, std = differences[label]
                row.append(f"{mean:+.4f}" + ("" if std is None else f" ± {std:.4f}"))
            else:
                row.append("-" if first is None or last is None else f"{last - first:+.4f}")
        body.append(row)
    return header, body


def paired(per_seed: dict[str, list[dict[str, Optional[float]]]], base: str, other: str
           ) -> dict[str, tuple[float, Optional[float]]]:
    """``{label: (mean, std)}`` of ``other - base`` seed by seed (the same seed's runs paired; std None for one
    pair); labels without a value in both runs of at least one seed are left out."""
    out: dict[str, tuple[float, Optional[float]]] = {}
    for label in per_seed[base][0]:
        d = [o[label] - b[label] for b, o in zip(per_seed[base], per_seed[other])
             if b[label] is not None and o[label] is not None and not (math.isnan(b[label]) or math.isnan(o[label]))]
        if d:
            out[label] = (statistics.fmean(d), statistics.stdev(d) if len(d) > 1 else None)
    return out


def story(metrics: dict[str, dict[str, Optional[float]]], activity: dict[str, dict[str, Optional[float]]],
          differences: dict[str, dict[str, tuple[float, Optional[float]]]], seeds: int) -> list[str]:
    """What the table says, in sentences: the baseline's bias, whether each term acted, the difference and how
    far it can be trusted."""
    def num(value: Optional[float], fmt: str = ".2f") -> str:
        return "n/a" if value is None or math.isnan(value) else format(value, fmt)

    base = metrics[BASELINE]
    upper, lower, one = base.get("recall upper view"), base.get("recall lower view"), base.get("pairs one detected")
    lines = [f"baseline: recall of the upper view {num(upper)}, of the lower view {num(lower)}"
             + ("" if upper is None or lower is None else f" ({'lower' if lower < upper else 'upper'} view found "
                f"{abs(upper - lower):.2f} less often)") + f"; {num(one and 100 * one, '.0f')}% of the pairs found "
             "on one view only"]
    for name, act in activity.items():
        reached, acted = act.get("reached"), act.get("acted")
        lines.append(f"{name}: in the last epoch it reached {num(reached and 100 * reached, '.0f')}% of the carried "
                     f"pairs and acted on {num(acted and 100 * acted, '.0f')}%" + (
                         " (0: no member confident enough to teach yet; the loss column is 0 for that reason)"
                         if acted == 0 else ""))
        diff = differences.get(name, {}).get("pairs one detected")
        if diff is not None:
            mean, std = diff
            lines.append(f"{name} - baseline, pairs on one view only: {mean:+.3f}" + (
                f" ± {std:.3f} (std over {seeds} paired seeds; a mean difference within "
                f"±{2 * std / math.sqrt(seeds):.3f}, about two standard errors, is not established)"
                if std is not None else
                " from one seed, which cannot tell it from seed-to-seed noise; seeds=3 or more gives mean ± std over "
                "paired seeds, benchmarks/study.py the full study"))
    return lines


def _values(per_seed: list[dict[str, Optional[float]]], label: str) -> list[float]:
    return [m[label] for m in per_seed if m[label] is not None and not math.isnan(m[label])]


def mean_over_seeds(per_seed: list[dict[str, Optional[float]]]) -> dict[str, Optional[float]]:
    """Label-wise mean over seeds of the values that exist (None where no seed has one)."""
    return {label: statistics.fmean(v) if (v := _values(per_seed, label)) else None for label in per_seed[0]}


def spread_over_seeds(per_seed: list[dict[str, Optional[float]]]) -> dict[str, Optional[float]]:
    """Label-wise sample standard deviation over seeds (None with fewer than two values)."""
    return {label: statistics.stdev(v) if len(v := _values(per_seed, label)) > 1 else None for label in per_seed[0]}
