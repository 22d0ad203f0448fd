"""One trial of a pairhook search: a fresh model, pairhook installed with the trial's options, Ultralytics'
training with the trial's arguments, and one row of metrics per epoch (what Ray Tune's schedulers are fed).

An epoch's row has the training losses (pairhook's terms included, ``train/<loss item>``), the validation metrics
and losses (``val/<loss item>``), the pair metrics (``pairs/*``), Ultralytics' ``fitness``, the search's
``objective`` and ``epoch``; the final re-validation of ``best.pt`` that some releases report as one more epoch
is left out.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from pairhook import compat, handover
from pairhook.results import number
from pairhook.tuning import space
from pairhook.tuning.fitness import Fitness


@dataclass(frozen=True)
class TrialJob:
    """What every trial of one search shares; picklable, so Ray sends it to its workers.

    Attributes:
        model: the model file or name each trial starts from (``YOLO(model)``), absolute if it is a file.
        task: the model's task.
        train_args: fixed training arguments (``data`` included, absolute if a file).
        description: the base installation as :func:`pairhook.handover.describe` writes it.
        fitness: the objective.
        project: the directory the trials' runs go to.
    """

    model: str
    task: Optional[str]
    train_args: dict[str, Any]
    description: dict[str, Any]
    fitness: Fitness
    project: str
    loss_names: tuple[str, ...] = ()


@dataclass
class TrialOutcome:
    """A finished trial: its parameters, its rows (one per epoch), the run directory."""

    params: dict[str, Any]
    rows: list[dict[str, float]] = field(default_factory=list)
    run_dir: str = ""

    @property
    def last(self) -> dict[str, float]:
        return self.rows[-1] if self.rows else {}


class EpochRows:
    """``on_fit_epoch_end`` callback: builds each epoch's row, computes the objective, hands the row to ``report``."""

    def __init__(self, fitness: Fitness, report: Optional[Callable[[dict[str, float]], None]] = None) -> None:
        self.fitness, self.report = fitness, report
        self.rows: list[dict[str, float]] = []

    def __call__(self, trainer: Any) -> None:
        epoch = trainer.epoch + 1
        if epoch > trainer.epochs or (self.rows and epoch <= self.rows[-1]["epoch"]):
            return  # the final validation of best.pt, reported again as an epoch by some releases
        row = {k: number(v) for k, v in trainer.label_loss_items(trainer.tloss, prefix="train").items()}
        row.update({k: number(v) for k, v in (trainer.metrics or {}).items()})
        row["fitness"] = number(trainer.fitness)
        row["objective"] = self.fitness(row)
        row["epoch"] = epoch
        self.rows.append(row)
        if self.report is not None:
            self.report(dict(row))


def run_trial(job: TrialJob, params: dict[str, Any], name: str,
              report: Optional[Callable[[dict[str, float]], None]] = None) -> TrialOutcome:
    """Train one trial in this process: ``YOLO(job.model)`` with pairhook installed as ``job.description`` says,
    with the trial's regularizer options, trained with ``job.train_args`` and the trial's training arguments into
    ``job.project/name``. With ``report``, Ultralytics' own Ray Tune reporting is left out (each row is reported)."""
    from ultralytics import YOLO

    train, options = space.split(params)
    model = YOLO(job.model, task=job.task)
    handover.install_on(model, space.with_options(job.description, options))
    rows = EpochRows(job.fitness, report)
    if report is not None:
        model.add_callback("on_pretrain_routine_end", compat.drop_ray_callback)
    model.add_callback("on_fit_epoch_end", rows)
    model.train(**{**job.train_args, **train, "project": job.project, "name": name, "exist_ok": True})
    return TrialOutcome(dict(params), rows.rows, str(model.trainer.save_dir))


def ray_trial(config: dict[str, Any], job: TrialJob) -> None:
    """Ray Tune function trainable: one trial, every epoch's row reported with ``ray.tune.report``."""
    from ray import tune

    if os.environ.get("YOLO_OFFLINE") and "ultralytics" not in sys.modules:
        from pairhook.offline import setup_offline

        setup_offline(os.environ.get("YOLO_CONFIG_DIR"))  # a node of a cluster: seed the font there too
    run_trial(job, dict(config), tune.get_context().get_trial_id(), report=tune.report)
