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
defaults (64 training images, 60 epochs at imgsz 128, an optimizer step every batch: :data:`TRAIN`) take about 4
minutes on two CPU cores, the two trainings side by side (``jobs=2``). With much shorter runs a model trained from
scratch detects nothing yet (mAP 0) and the pair term stays 0, because no member is confident enough to teach. On
a run this short the gap between two runs is mostly noise: read one seed as a tour of what pairhook adds (a loss
column, the per-view metrics, plots, the comparison), not as a benchmark; ``benchmarks/study.py`` is the study.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from pairhook.comparison import (
    BASELINE,
    TABLE,
    comparison_rows,
    mean_over_seeds,
    paired,
    pick,
    spread_over_seeds,
    story,
    table_rows,
)
from pairhook.config import split_names
from pairhook.machine import load_average, machine, spawn_pool
from pairhook.plugins import lookup
from pairhook.results import last_results
from pairhook.tables import format_table

__all__ = ["BASELINE", "DATASET", "TABLE", "TRAIN", "comparison_rows", "paired", "pick", "run_demo", "story",
           "table_rows"]

#: Fixed training settings shared by both runs (``data``, ``epochs``, ``imgsz``, ``seed``, ``project`` and ``name``
#: are added per call). ``nbs=8``: an optimizer step every batch of 8 (Ultralytics' default ``nbs=64`` accumulates 8
#: batches, so 60 epochs of 64 images would be 60 steps, too few to learn the inspection classes from scratch).
TRAIN = dict(batch=8, nbs=8, workers=0, plots=True, deterministic=True, exist_ok=True)

NONE = "none"  # regularizers=none: the baseline alone

#: The generated dataset (besides its sizes and seed): the inspection benchmark, whose lower view is harder
#: (:func:`pairhook.synthetic.make_dataset`).
DATASET: dict[str, Any] = dict(preset="inspection", shift=0.5, pairs_per_image=(2, 3))


def _plots(run_dir: Path) -> list[str]:
    """Plot file names of a run, the most telling first."""
    first = ("results.png", "val_batch0_pred.jpg", "confusion_matrix.png")
    names = sorted(p.name for p in run_dir.iterdir() if p.suffix in (".png", ".jpg"))
    return [n for n in first if n in names] + [n for n in names if n not in first]


def run_demo(out: str | Path = "pairhook-demo", images: int = 64, epochs: int = 60, imgsz: int = 128,
             model: str = "yolov8n.yaml", seed: int = 0, regularizers: str | Sequence[str] = "pair_consistency",
             seeds: int = 1, jobs: int = 2, **deprecated: Any) -> dict[str, Any]:
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
        jobs: trainings at once, each in its own process (Ultralytics trains on one thread on a 2-core machine, so
            two use both cores); 1 trains them one after another in this process, as a regularizer registered in
            this process (not importable by a worker) requires.

    Returns:
        ``{"metrics": {run: {label: value or None}}, "spread": {run: {label: std or None}}, "differences":
        {regularizer: {label: (mean, std)}}, "activity": {regularizer: {"reached": f, "acted": f}}, "runs":
        {run: Path}, "seed_runs": {run: [Path, ...]}, "data": Path, "table": str}`` with runs ``"baseline"`` and
        each regularizer, labels as in :data:`TABLE` (values from the last epoch's row of ``results.csv``, mean over
        seeds; None where a run has no such column), ``differences`` each regularizer minus the baseline seed by
        seed (:func:`paired`), ``activity`` the fractions of the carried pairs each term reached and acted on in the
        last epoch, ``runs`` the first seed's folder. The table is followed by :func:`story`'s sentences.
    """
    from pairhook.synthetic import make_dataset

    if "regularizer" in deprecated:
        warnings.warn("run_demo(regularizer=...) is deprecated: use regularizers=...", DeprecationWarning,
                      stacklevel=2)
        regularizers = deprecated.pop("regularizer")
    if deprecated:
        raise TypeError(f"run_demo() got unexpected keyword arguments {sorted(deprecated)}")
    if images < 1 or epochs < 1 or seeds < 1 or jobs < 1:
        raise ValueError(f"images, epochs, seeds and jobs must be >= 1, got {images=}, {epochs=}, {seeds=}, {jobs=}")
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
    todo = [(s, name) for s in range(seed, seed + seeds) for name in names]
    if jobs > 1 and any(lookup(v).source == "in-process" for v in variants):
        print("pairhook demo: a regularizer registered in this process cannot reach worker processes: jobs=1")
        jobs = 1
    project, data = str(out / "runs"), str(ds.data_yaml)
    tasks = [(model, str(ds.pairs_json), None if name == BASELINE else name, data, epochs, imgsz, s, project,
              name if seeds == 1 else f"{name}-seed{s}") for s, name in todo]
    for i, ((s, name), task) in enumerate(zip(todo, tasks), 1):
        what = "pairs, no regularizer" if name == BASELINE else f"pairhook.install(regularizers={name!r})"
        print(f"{'' if jobs > 1 else chr(10)}[{i}/{len(todo)}] {name}: {model}, {epochs} epochs, imgsz={imgsz}, "
              f"seed={s}, {what} -> {project}/{task[-1]}", flush=True)
    if jobs > 1:
        print(f"pairhook demo: {min(jobs, len(tasks))} trainings at once, each in its own process (their progress "
              "bars interleave)\n", flush=True)
        with spawn_pool(jobs) as pool:
            dirs = list(pool.map(train_variant, *zip(*tasks)))
    else:
        dirs = [train_variant(*task) for task in tasks]
    seed_runs: dict[str, list[Path]] = {name: [] for name in names}
    for (_, name), d in zip(todo, dirs):
        seed_runs[name].append(Path(d))

    rows = table_rows([lookup(v).loss_name for v in variants])
    per_seed = {name: [pick(last_results(d), rows) for d in seed_runs[name]] for name in names}
    metrics = {name: mean_over_seeds(per_seed[name]) for name in names}
    spread = {name: spread_over_seeds(per_seed[name]) for name in names} if seeds > 1 else None
    differences = {v: paired(per_seed, BASELINE, v) for v in variants}
    activity = {v: _activity(seed_runs[v], lookup(v).loss_name) for v in variants}
    runs = {name: dirs[0] for name, dirs in seed_runs.items()}
    diffs = differences[variants[0]] if len(variants) == 1 and seeds > 1 else None
    table = format_table(*comparison_rows(metrics, spread, diffs))
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
    print(f"\npairhook demo: {len(todo)} trainings in {minutes} min {seconds} s on {machine()} "
          f"(load avg at the start {load_before})")
    return {"metrics": metrics, "spread": spread, "differences": differences, "activity": activity, "runs": runs,
            "seed_runs": seed_runs, "data": ds.root, "table": table}


def _activity(dirs: list[Path], loss_name: str) -> dict[str, Optional[float]]:
    """Mean over seeds of the last epoch's ``reached`` and ``acted`` fractions of a term."""
    from pairhook.terms import activity_columns

    reached, acted = activity_columns(loss_name)
    rows = [last_results(d) for d in dirs]
    return {key: mean_over_seeds([{key: r.get(col)} for r in rows])[key]
            for key, col in (("reached", reached), ("acted", acted))}


def train_variant(model: str, pairs: str, regularizers: Optional[str], data: str, epochs: int, imgsz: int, seed: int,
                  project: str, name: str) -> str:
    """One demo training (in this process or a worker); returns its run folder. A worker of an offline demo
    answers Ultralytics' font lookup locally, as the ``pairhook`` command does."""
    from ultralytics import YOLO

    import pairhook
    from pairhook import compat, offline

    with compat.local_fonts() if offline.offline_requested() else contextlib.nullcontext():
        yolo = YOLO(model)
        pairhook.install(yolo, pairs=pairs, regularizers=regularizers)
        yolo.train(data=data, epochs=epochs, imgsz=imgsz, seed=seed, project=project, name=name, **TRAIN)
        return str(yolo.trainer.save_dir)
