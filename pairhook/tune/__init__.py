"""Hyperparameter search with pairhook in every trial.

* :func:`tune` (``pairhook.tune(model, ...)``, ``pairhook tune`` on the command line): Ultralytics training
  arguments and regularizer options searched together, on a fitness you pick, with the local engine
  (:mod:`~pairhook.tune.local`) or Ray Tune (:mod:`~pairhook.tune.ray_engine`); the best configuration is written
  as a pairhook config YAML (:mod:`~pairhook.tune.results`).
* ``model.tune()`` (Ultralytics' own tuner, with or without Ray) on a model with pairhook installed trains every
  trial with the installation (:mod:`~pairhook.tune.builtin`).
"""

from pairhook.tune.api import tune
from pairhook.tune.fitness import Fitness
from pairhook.tune.results import TrialRecord, TuneResult

__all__ = ["Fitness", "TrialRecord", "TuneResult", "tune"]
