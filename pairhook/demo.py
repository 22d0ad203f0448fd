"""``pairhook demo``: the same YOLO trained on generated paired defects without and with pair regularizers.

Nothing is downloaded: the data is generated and the model is built from its YAML (``pairhook demo`` also keeps
Ultralytics offline unless ``PAIRHOOK_OFFLINE=0``). All runs use identical settings and seeds, so the only
difference is the regularizer. The baseline also has pairhook installed, with pairs but no regularizer, so that its
pair metrics are measured the same way (its loss is Ultralytics' own); ``regularizers=none`` trains the baseline
alone. With ``seeds=N`` every variant is trained N times and the table shows mean ± standard deviation; the demo
prints how long it took, with the CPU and its load.

The dataset is the inspection benchmark (:data:`DATASET`, ``preset="inspection"`` of
:func:`pairhook.synthetic.make_dataset`): two stacked views, the lower one blurred, low-contrast and noisy, classes
that differ only by a thin inner mark, so the baseline finds the lower view less often than the upper one. The
defaults (64 training images, 60 epochs at imgsz 128, an optimizer step every batch: :data:`TRAIN`) take a few
minutes on two CPU cores; with much shorter runs a model trained from scratch detects nothing yet (mAP 0) and the
pair term stays 0, because no member is confident enough to teach. On a run this short the gap between two runs is
mostly noise: read one seed as a tour of what pairhook adds (a loss column, the per-view metrics, plots, the
comparison), not as a benchmark; ``benchmarks/study.py`` is the study.
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from pairhook.config import split_names
from pairhook.machine import load_average, machine
from pairhook.plugins import lookup
from pairhook.results import last_results
from pairhook.tables import format_table as _format

#: Fixed training settings shared by both runs (``data``, ``epochs``, ``imgsz``, ``seed``, ``project`` and ``name``
#: are added per call). ``nbs=8``: an optimizer step every batch of 8 (Ultralytics' default ``nbs=64`` accumulates 8
#: batches, so 60 epochs of 64 images would be 60 steps, too few to learn the inspection classes from scratch).
TRAIN = dict(batch=8, nbs=8, workers=0, plots=True, deterministic=True, exist_ok=True)

#: Rows of the comparison table: (label, results.csv column). ``{loss}`` is the regularizer's loss name. Rows whose
#: column neither run has are left out; add entries here to show more columns.
TABLE: list[tuple[str, str]] = [
    ("mAP50", "metrics/mAP50(B)"),
    ("mAP50-95", "metrics/mAP50-95(B)"),
    ("pairs both detected", "pairs/both_detected"),
    ("pairs one detected", "pairs/one_detected"),
    ("recall upper view", "pairs/recall_upper"),
    ("recall lower view", "pairs/recall_lower"),
    ("pairs class agree", "pairs/class_agree"),
    ("pairs conf gap", "pairs/conf_gap"),
    ("train/{loss}", "train/{loss}"),
    ("val/{loss}", "val/{loss}"),
]

BASELINE = "baseline"
NONE = "none"  # regularizers=none: the baseline alone

#: The generated dataset (besides its sizes and seed): the inspection benchmark, whose lower view is harder
#: (:func:`pairhook.synthetic.make_dataset`).
DATASET: dict[str, Any] = dict(preset="inspection", shift=0.5, pairs_per_image=(2, 3))


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


def format_table(metrics: dict[str, dict[str, Optional[float]]],
                 spread: Optional[dict[str, dict[str, Optional[float]]]] = None,
                 differences: Optional[dict[str, tuple[float, Optional[float]]]] = None) -> str:
    """Plain-text table: one row per label, one column per run, plus (for two runs) the difference of the second
    to the first.

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
    return _format(header, body)


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
                f" ± {std:.3f} (std over {seeds} paired seeds; a difference under about {2 / math.sqrt(seeds):.1f}"
                " std is not established)" if std is not None else
                " from one seed: runs this short differ this much between seeds alone, so this says nothing yet; "
                "seeds=3 or more gives mean ± std over paired seeds, benchmarks/study.py the full study"))
    return lines


def _plots(run_dir: Path) -> list[str]:
    """Plot file names of a run, the most telling first."""
    first = ("results.png", "val_batch0_pred.jpg", "confusion_matrix.png")
    names = sorted(p.name for p in run_dir.iterdir() if p.suffix in (".png", ".jpg"))
    return [n for n in first if n in names] + [n for n in names if n not in first]


def run_demo(out: str | Path = "pairhook-demo", images: int = 64, epochs: int = 60, imgsz: int = 128,
             model: str = "yolov8n.yaml", seed: int = 0, regularizers: str | Sequence[str] = "pair_consistency",
             seeds: int = 1, **deprecated: Any) -> dict[str, Any]:
    """Generate a paired-defect dataset, train ``model`` without and with each regularizer, print a comparison.

    Args:
        out: output folder: the dataset goes to ``out/data``, the runs to ``out/runs/baseline`` and
            ``out/runs/<regularizer>`` (overwritten if they exist).
        images: training images (validation and the held-out test split: ``max(8, images // 4)`` each).
        epochs, imgsz, seed: training settings, identical for every run.
        model: a model YAML (trained from scratch) or weights file.
        regularizers: name of a registered regularizer, or several separated by commas (or a list): one variant
            each, installed with default options; ``"none"``: the baseline alone. (``regularizer=``, its former
            name, still works, with a deprecation warning.)
        seeds: trainings per variant, with seeds ``seed, seed + 1, ...`` (run folders get a ``-seed<k>`` suffix when
            more than one); the table shows mean ± standard deviation. The dataset is the same for all.

    Returns:
        ``{"metrics": {run: {label: value or None}}, "spread": {run: {label: std or None}}, "differences":
        {regularizer: {label: (mean, std)}}, "activity": {regularizer: {"reached": f, "acted": f}}, "runs":
        {run: Path}, "seed_runs": {run: [Path, ...]}, "data": Path, "table": str}`` with runs ``"baseline"`` and
        each regularizer, labels as in :data:`TABLE` (values from the last epoch's row of ``results.csv``, mean over
        seeds; None where a run has no such column), ``differences`` each regularizer minus the baseline seed by
        seed (:func:`paired`), ``activity`` the fractions of the carried pairs each term reached and acted on in the
        last epoch, ``runs`` the first seed's folder. The table is followed by :func:`story`'s sentences.
    """
    from ultralytics import YOLO

    import pairhook
    from pairhook.synthetic import make_dataset

    if "regularizer" in deprecated:
        warnings.warn("run_demo(regularizer=...) is deprecated: use regularizers=...", DeprecationWarning,
                      stacklevel=2)
        regularizers = deprecated.pop("regularizer")
    if deprecated:
        raise TypeError(f"run_demo() got unexpected keyword arguments {sorted(deprecated)}")
    if images < 1 or epochs < 1 or seeds < 1:
        raise ValueError(f"images, epochs and seeds must be >= 1, got {images=}, {epochs=}, {seeds=}")
    started, load_before = time.monotonic(), load_average()
    asked = split_names(regularizers) if isinstance(regularizers, str) else [str(r) for r in regularizers]
    variants = [] if [n.lower() for n in asked] == [NONE] else asked
    for name in variants:
        lookup(name)  # ValueError naming the available ones
        if name == BASELINE:
            raise ValueError(f"the regularizer cannot be named {BASELINE!r}")
    out = Path(out).resolve()  # Ultralytics puts a relative project under its runs_dir
    held = max(8, images // 4)
    ds = make_dataset(out / "data", n_train=images, n_val=held, n_test=held, seed=seed, **DATASET)
    print(f"pairhook demo: {DATASET['preset']} dataset, {images} train / {held} val / {held} test images in "
          f"{ds.root}, pairs in {ds.pairs_json.name}")

    names = [BASELINE, *variants]
    seed_runs: dict[str, list[Path]] = {name: [] for name in names}
    jobs = [(s, name) for s in range(seed, seed + seeds) for name in names]
    for i, (s, name) in enumerate(jobs, 1):
        what = "pairs, no regularizer" if name == BASELINE else f"pairhook.install(regularizers={name!r})"
        print(f"\n[{i}/{len(jobs)}] {name}: {model}, {epochs} epochs, imgsz={imgsz}, seed={s}, {what}", flush=True)
        yolo = YOLO(model)
        pairhook.install(yolo, pairs=ds.pairs_json, regularizers=None if name == BASELINE else name)
        yolo.train(data=str(ds.data_yaml), epochs=epochs, imgsz=imgsz, seed=s, project=str(out / "runs"),
                   name=name if seeds == 1 else f"{name}-seed{s}", **TRAIN)
        seed_runs[name].append(Path(yolo.trainer.save_dir))

    rows = table_rows([lookup(v).loss_name for v in variants])
    per_seed = {name: [pick(last_results(d), rows) for d in seed_runs[name]] for name in names}
    metrics = {name: _mean(per_seed[name]) for name in names}
    spread = {name: _std(per_seed[name]) for name in names} if seeds > 1 else None
    differences = {v: paired(per_seed, BASELINE, v) for v in variants}
    activity = {v: _activity(seed_runs[v], lookup(v).loss_name) for v in variants}
    runs = {name: dirs[0] for name, dirs in seed_runs.items()}
    table = format_table(metrics, spread, differences[variants[0]] if len(variants) == 1 and seeds > 1 else None)
    of = "each run" if seeds == 1 else f"each variant, mean ± std of {seeds} seeds"
    print(f"\npairhook demo: last epoch of {of} (results.csv)\n\n{table}\n")
    for line in story(metrics, activity, differences, seeds):
        print(f"pairhook demo: {line}")
    print()
    for name in names:
        plots = _plots(runs[name])
        print(f"{name:>{max(map(len, names))}}: {runs[name]}  ({len(plots)} plots: {', '.join(plots[:3])}"
              f"{', ...' if len(plots) > 3 else ''})")
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    print(f"\npairhook demo: {len(jobs)} trainings in {minutes} min {seconds} s on {machine()} "
          f"(load avg at the start {load_before})")
    return {"metrics": metrics, "spread": spread, "differences": differences, "activity": activity, "runs": runs,
            "seed_runs": seed_runs, "data": ds.root, "table": table}


def _activity(dirs: list[Path], loss_name: str) -> dict[str, Optional[float]]:
    """Mean over seeds of the last epoch's ``reached`` and ``acted`` fractions of a term."""
    from pairhook.terms import activity_columns

    reached, acted = activity_columns(loss_name)
    rows = [last_results(d) for d in dirs]
    return {key: _mean([{key: r.get(col)} for r in rows])[key] for key, col in (("reached", reached), ("acted", acted))}


def _values(per_seed: list[dict[str, Optional[float]]], label: str) -> list[float]:
    return [m[label] for m in per_seed if m[label] is not None and not math.isnan(m[label])]


def _mean(per_seed: list[dict[str, Optional[float]]]) -> dict[str, Optional[float]]:
    """Label-wise mean over seeds of the values that exist (None where no seed has one)."""
    return {label: statistics.fmean(v) if (v := _values(per_seed, label)) else None for label in per_seed[0]}


def _std(per_seed: list[dict[str, Optional[float]]]) -> dict[str, Optional[float]]:
    """Label-wise sample standard deviation over seeds (None with fewer than two values)."""
    return {label: statistics.stdev(v) if len(v := _values(per_seed, label)) > 1 else None for label in per_seed[0]}
