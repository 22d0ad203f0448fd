"""``pairhook demo``: the same YOLO trained twice on generated paired defects, without and with a pair regularizer.

Everything runs offline and from scratch (the model is built from its YAML, no weights are downloaded). Both runs
use identical settings and seed, so the only difference is the regularizer. The defaults (64 images, 60 epochs at
imgsz 128) take about two minutes on two CPU cores and reach mAP50 around 0.6; with much shorter runs a model trained
from scratch detects nothing yet (mAP 0) and the pair term stays 0, because no member is confident enough to teach.
On a run this short the gap between the two runs is mostly noise: read the demo as a tour of what pairhook adds
(a loss column, plots, the comparison), not as a benchmark.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Optional, Sequence

#: Fixed training settings shared by both runs (``data``, ``epochs``, ``imgsz``, ``seed``, ``project`` and ``name``
#: are added per call).
TRAIN = dict(batch=8, workers=0, plots=True, deterministic=True, exist_ok=True)

#: Rows of the comparison table: (label, results.csv column). ``{loss}`` is the regularizer's loss name. Rows whose
#: column neither run has are left out; add entries here to show more columns.
TABLE: list[tuple[str, str]] = [
    ("mAP50", "metrics/mAP50(B)"),
    ("mAP50-95", "metrics/mAP50-95(B)"),
    ("train/{loss}", "train/{loss}"),
    ("val/{loss}", "val/{loss}"),
]

BASELINE = "baseline"


def read_results(run_dir: str | Path) -> dict[str, float]:
    """The last row of ``run_dir/results.csv`` as ``{column: value}`` (names and values stripped)."""
    with open(Path(run_dir) / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{run_dir}/results.csv has no rows")
    out = {}
    for key, value in rows[-1].items():
        try:
            out[key.strip()] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def table_rows(loss_name: str, entries: Sequence[tuple[str, str]] = TABLE) -> list[tuple[str, str]]:
    """``TABLE`` with ``{loss}`` filled in."""
    return [(label.format(loss=loss_name), column.format(loss=loss_name)) for label, column in entries]


def pick(results: dict[str, float], rows: Sequence[tuple[str, str]]) -> dict[str, Optional[float]]:
    """``{label: value or None}`` for each table row."""
    return {label: results.get(column) for label, column in rows}


def _fmt(value: Optional[float]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.2e}"


def format_table(metrics: dict[str, dict[str, Optional[float]]]) -> str:
    """Plain-text table: one row per label, one column per run, plus the difference of the last run to the first.

    ``metrics`` is ``{run name: {label: value or None}}``, every run with the same labels in the same order. Labels
    no run has a value for are left out.
    """
    runs = list(metrics)
    labels = [lb for lb in metrics[runs[0]] if any(metrics[r].get(lb) is not None for r in runs)]
    header = ["", *runs] + (["difference"] if len(runs) > 1 else [])
    body = []
    for label in labels:
        values = [metrics[r].get(label) for r in runs]
        row = [label, *map(_fmt, values)]
        if len(runs) > 1:
            first, last = values[0], values[-1]
            row.append("-" if first is None or last is None else f"{last - first:+.4f}")
        body.append(row)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _plots(run_dir: Path) -> list[str]:
    """Plot file names of a run, the most telling first."""
    first = ("results.png", "val_batch0_pred.jpg", "confusion_matrix.png")
    names = sorted(p.name for p in run_dir.iterdir() if p.suffix in (".png", ".jpg"))
    return [n for n in first if n in names] + [n for n in names if n not in first]


def run_demo(out: str | Path = "pairhook-demo", images: int = 64, epochs: int = 60, imgsz: int = 128,
             model: str = "yolov8n.yaml", seed: int = 0, regularizer: str = "pair_consistency", seeds: int = 1,
             ) -> dict[str, Any]:
    """Generate a paired-defect dataset, train ``model`` without and with ``regularizer``, print a comparison.

    Args:
        out: output folder: the dataset goes to ``out/data``, the runs to ``out/runs/baseline`` and
            ``out/runs/<regularizer>`` (overwritten if they exist).
        images: training images (validation: ``max(8, images // 4)``).
        epochs, imgsz, seed: training settings, identical for both runs.
        model: a model YAML (trained from scratch) or weights file.
        regularizer: name of a registered regularizer, installed with its default options.
        seeds: trainings per variant, with seeds ``seed, seed + 1, ...`` (run folders get a ``-seed<k>`` suffix when
            more than one); the table shows their mean. The dataset is the same for all.

    Returns:
        ``{"metrics": {run: {label: value or None}}, "runs": {run: Path}, "seed_runs": {run: [Path, ...]},
        "data": Path, "table": str}`` with runs ``"baseline"`` and ``regularizer``, labels as in :data:`TABLE`
        (``mAP50``, ``mAP50-95``, ``train/<loss>``, ``val/<loss>``; a value is None where the run has no such
        column; the mean over seeds), ``runs`` the first seed's folder.
    """
    from ultralytics import YOLO

    import pairhook
    from pairhook.synthetic import make_dataset

    if images < 1 or epochs < 1 or seeds < 1:
        raise ValueError(f"images, epochs and seeds must be >= 1, got {images=}, {epochs=}, {seeds=}")
    registry = pairhook.registry()
    if regularizer not in registry:
        raise ValueError(f"unknown regularizer {regularizer!r}; available: {', '.join(sorted(registry))}")
    if regularizer == BASELINE:
        raise ValueError(f"the regularizer cannot be named {BASELINE!r}")
    out = Path(out).resolve()  # Ultralytics puts a relative project under its runs_dir
    ds = make_dataset(out / "data", n_train=images, n_val=max(8, images // 4), seed=seed)
    print(f"pairhook demo: {images} train / {max(8, images // 4)} val images in {ds.root}, pairs in "
          f"{ds.pairs_json.name}")

    names = [BASELINE, regularizer]
    seed_runs: dict[str, list[Path]] = {name: [] for name in names}
    jobs = [(s, name) for s in range(seed, seed + seeds) for name in names]
    for i, (s, name) in enumerate(jobs, 1):
        what = "no regularizer" if name == BASELINE else f"pairhook.install(regularizers={name!r})"
        print(f"\n[{i}/{len(jobs)}] {name}: {model}, {epochs} epochs, imgsz={imgsz}, seed={s}, {what}", flush=True)
        yolo = YOLO(model)
        if name != BASELINE:
            pairhook.install(yolo, pairs=ds.pairs_json, regularizers=name)
        yolo.train(data=str(ds.data_yaml), epochs=epochs, imgsz=imgsz, seed=s, project=str(out / "runs"),
                   name=name if seeds == 1 else f"{name}-seed{s}", **TRAIN)
        seed_runs[name].append(Path(yolo.trainer.save_dir))

    rows = table_rows(registry[regularizer].loss_name)
    metrics = {name: _mean([pick(read_results(d), rows) for d in seed_runs[name]]) for name in names}
    runs = {name: dirs[0] for name, dirs in seed_runs.items()}
    table = format_table(metrics)
    of = "each run" if seeds == 1 else f"each variant, mean of {seeds} seeds"
    print(f"\npairhook demo: last epoch of {of} (results.csv)\n\n{table}\n")
    for name in names:
        plots = _plots(runs[name])
        print(f"{name:>{max(map(len, names))}}: {runs[name]}  ({len(plots)} plots: {', '.join(plots[:3])}"
              f"{', ...' if len(plots) > 3 else ''})")
    return {"metrics": metrics, "runs": runs, "seed_runs": seed_runs, "data": ds.root, "table": table}


def _mean(per_seed: list[dict[str, Optional[float]]]) -> dict[str, Optional[float]]:
    """Label-wise mean over seeds of the values that exist (None where no seed has one)."""
    out = {}
    for label in per_seed[0]:
        values = [m[label] for m in per_seed if m[label] is not None]
        out[label] = sum(values) / len(values) if values else None
    return out
