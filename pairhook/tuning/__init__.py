"""Hyperparameter search with pairhook in every trial.

* :func:`tune` (``pairhook.tune(model, ...)``, ``pairhook tune`` on the command line): Ultralytics training
  arguments and regularizer options searched together, on a fitness you pick, with the local engine
  (:mod:`~pairhook.tuning.local`) or Ray Tune (:mod:`~pairhook.tuning.ray_engine`); the best configuration is written
  as a pairhook config YAML (:mod:`~pairhook.tuning.results`).
* ``model.tune()`` (Ultralytics' own tuner, with or without Ray) on a model with pairhook installed trains every
  trial with the installation (:mod:`~pairhook.tuning.model_tune`, whose route is registered when this package is
  imported, as ``import pairhook`` does).
"""

from pairhook.tuning import model_tune as _model_tune  # noqa: F401 - registers the model.tune() route
from pairhook.tuning.api import tune
from pairhook.tuning.fitness import Fitness
from pairhook.tuning.results import TrialRecord, TuneResult

__all__ = ["Fitness", "TrialRecord", "TuneResult", "tune"]
