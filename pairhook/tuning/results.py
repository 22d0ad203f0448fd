"""A search's results: the trials, the best one, and the files written for it.

* ``best.yaml``: the best trial's pairhook config (regularizers with their options, pairs, every install setting),
  which ``pairhook train config=...`` and ``pairhook.install(model, config=...)`` take;
* ``best_hyperparameters.yaml``: the best trial's Ultralytics training arguments, the searched ones and those fixed
  for every trial (``data`` aside), in the form of Ultralytics' tuner's file of that name, which ``cfg=...`` takes
  (``pairhook train``, ``yolo train``): with ``config=best.yaml`` it trains what the best trial trained;
* ``trials.csv``: one row per trial: parameters, the last epoch's metrics, the objective.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from pairhook.tables import format_table
from pairhook.tuning import space
from pairhook.tuning.fitness import rank_key

CONFIG, HYPERPARAMETERS, TRIALS = "best.yaml", "best_hyperparameters.yaml", "trials.csv"


@dataclass
class TrialRecord:
    """One trial: its number, parameters, last epoch's metrics, objective, run directory and status."""

    number: int
    params: dict[str, Any]
    metrics: dict[str, float]
    run_dir: str = ""
    status: str = "done"

    @property
    def objective(self) -> float:
        return float(self.metrics.get("objective", math.nan))

    @property
    def epochs(self) -> int:
        return int(self.metrics.get("epoch", 0) or 0)


@dataclass
class TuneResult:
    """What :func:`pairhook.tune` returns: the trials, the best, and where its files are."""

    dir: Path
    engine: str
    fitness: str
    trials: list[TrialRecord]
    best: Optional[TrialRecord] = None
    config: Optional[Path] = None
    hyperparameters: Optional[Path] = None
    loss_names: Sequence[str] = ()
    seconds: float = 0.0
    grid: Any = field(default=None, repr=False)  # Ray Tune's ResultGrid (engine="ray")

    def table(self, markdown: bool = False) -> str:
        """The trials as a table (pairhook.tables.format_table): parameters, epochs, key metrics, objective."""
        keys = list(self.trials[0].params) if self.trials else []
        metrics = [*dict.fromkeys(["pairs/both_detected", *(f"train/{n}" for n in self.loss_names), "fitness"])]
        header = ["trial", *keys, "epochs", *metrics, "objective", "status"]
        rows = [[str(t.number), *(_fmt(t.params.get(k)) for k in keys), str(t.epochs),
                 *(_fmt(t.metrics.get(m)) for m in metrics), _fmt(t.objective),
                 t.status + (" (best)" if t is self.best else "")] for t in self.trials]
        return format_table(header, rows, align="<" + ">" * (len(header) - 2) + "<", markdown=markdown)

    def summary(self) -> str:
        """The report ``pairhook tune`` prints: the table, the best trial and the files."""
        lines = [f"pairhook tune: {len(self.trials)} trials, engine {self.engine}, {self.seconds:.0f} s; "
                 f"objective = {self.fitness}", "", self.table(), ""]
        if self.best is None:
            lines.append("no trial finished with a finite objective; nothing written")
        else:
            lines += [f"best: trial {self.best.number}, objective {_fmt(self.best.objective)}, run {self.best.run_dir}",
                      f"wrote {self.config} (pairhook config) and {self.hyperparameters} (training arguments)"]
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return "-" if value is None else str(value)


def _plain(value: Any) -> Any:
    """YAML-safe copy: tuples become lists, numpy scalars numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def best_of(trials: list[TrialRecord]) -> Optional[TrialRecord]:
    """The trial with the highest finite objective (the first of equals), ``None`` if none has one."""
    finite = [t for t in trials if math.isfinite(t.objective)]
    return max(finite, key=lambda t: rank_key(t.objective)) if finite else None


def write_results(out: Path, trials: list[TrialRecord], settings: dict[str, Any], fitness: str, engine: str,
                  fixed: Optional[dict[str, Any]] = None) -> TuneResult:
    """Write ``trials.csv``, and for the best trial ``best.yaml`` and ``best_hyperparameters.yaml`` (``fixed``: the
    training arguments of every trial), under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    result = TuneResult(out, engine, fitness, trials)
    keys = list(dict.fromkeys(k for t in trials for k in t.params))
    metrics = list(dict.fromkeys(k for t in trials for k in t.metrics))
    with open(out / TRIALS, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", "status", "run_dir", *keys, *metrics])
        for t in trials:
            writer.writerow([t.number, t.status, t.run_dir, *(t.params.get(k, "") for k in keys),
                             *(t.metrics.get(m, "") for m in metrics)])
    result.best = best_of(trials)
    if result.best is None:
        return result
    train, options = space.split(result.best.params)
    head = (f"# pairhook tune: best of {len(trials)} trials (engine {engine}), trial {result.best.number}, "
            f"objective {result.best.objective:.6g} = {fitness}\n")
    result.config = out / CONFIG
    config = _plain(space.with_options(settings, options))
    result.config.write_text(head + "# use: pairhook train config=best.yaml ... (or pairhook.install(model, "
                             "config=...))\n" + yaml.safe_dump(config, sort_keys=False))
    result.hyperparameters = out / HYPERPARAMETERS
    hyperparameters = {k: v for k, v in {**(fixed or {}), **train}.items() if k != "data"}
    result.hyperparameters.write_text(head + "# use: cfg=best_hyperparameters.yaml (pairhook train, yolo train)\n"
                                      + yaml.safe_dump(_plain(hyperparameters), sort_keys=False))
    return result
