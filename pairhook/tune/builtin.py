"""``model.tune()`` with pairhook installed: Ultralytics' own tuner, every trial trained with the installation.

``install()`` sets a :class:`TuneWithInstallation` as the ``tune`` attribute of that one ``YOLO`` instance (the class
is untouched; ``uninstall()`` removes it). A call with an installation on the model:

* ``use_ray=False`` (Ultralytics' ``Tuner``): each trial is a ``yolo train`` subprocess, which never sees the
  instance's callbacks. The installations (regularizers with weights and options, pairs, every install setting) are
  pickled to a file and loaded once in a fresh process before the first trial, so a regularizer the trials could not
  import fails here, saying what to do. During the call each trial runs ``python -m pairhook.tune.child FILE
  key=value ...`` instead (:func:`pairhook.compat.redirect_trials`): ``yolo train key=value ...`` with them.
* ``use_ray=True`` (Ultralytics' ``run_ray_tune``): every Ray trial unpickles the instance and calls its
  ``reset_callbacks()``. During the call that is a :class:`ReapplyAfterReset`, which resets the callbacks and puts
  the installations back, and has the epoch's training term values (``train/<loss item>``) reported to Ray Tune
  next to the validation losses and pair metrics Ultralytics reports. Releases whose Ray integration cannot run
  with the installed Ray are refused before the first trial.
"""

from __future__ import annotations

import os
import pickle
import site
import subprocess
import sys
from pathlib import Path
from typing import Any

from pairhook import compat, workers

CHILD = "pairhook.tune.child"


def route(model: Any) -> None:
    """Make ``model.tune()`` train every trial with the model's pairhook installations."""
    vars(model)["tune"] = TuneWithInstallation(model)


def unroute(model: Any) -> None:
    if isinstance(vars(model).get("tune"), TuneWithInstallation):
        del vars(model)["tune"]


def importable_env() -> dict[str, str]:
    """Environment additions that let a fresh Python process import this pairhook (e.g. from a source checkout)."""
    root = str(Path(__file__).resolve().parents[2])
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    installed = {str(Path(p).resolve()) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if root in installed or root in paths:
        return {}
    return {"PYTHONPATH": os.pathsep.join([root, *paths])}


class TuneWithInstallation:
    """Stands in for ``model.tune`` on one instance (see the module docstring); same arguments, same result."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        model = self.model
        tune = type(model).tune
        found = workers.installations_in(model.callbacks)
        if not found:
            return tune(model, *args, **kwargs)
        if kwargs.get("use_ray", args[0] if args else False):
            return self._with_ray(tune, found, args, kwargs)
        state = hand_over(found)
        try:
            with compat.redirect_trials(lambda train: [sys.executable, "-m", CHILD, state, *train], importable_env()):
                return tune(model, *args, **kwargs)
        finally:
            os.unlink(state)

    def _with_ray(self, tune: Any, found: list[Any], args: tuple, kwargs: dict[str, Any]) -> Any:
        problem = compat.run_ray_tune_problem()
        if problem:
            raise RuntimeError(f"pairhook: model.tune(use_ray=True) cannot train its trials here: {problem}. Use "
                               "pairhook.tune(model, engine='ray', ...), which runs Ray Tune with pairhook in every "
                               "trial")
        model = self.model
        vars(model)["reset_callbacks"] = ReapplyAfterReset(model, found)  # travels with the model into Ray's store
        try:
            return tune(model, *args, **kwargs)
        finally:
            vars(model).pop("reset_callbacks", None)


def hand_over(found: list[Any]) -> str:
    """Pickle the installations for ``model.tune()``'s trial processes and check that a fresh process loads them;
    return the file. Raises ``RuntimeError`` naming the regularizers and what to use instead."""
    labels = ", ".join(r.label for inst in found for r in inst.active if not r.builtin) or "none"
    advice = (f"(regularizers not built in: {labels}). Define them at module level in an importable module or "
              "register them through an entry point; or use pairhook.tune(model, ...), whose local engine trains "
              "in this process")
    try:
        state = workers.write_installations(found, prefix="pairhook-tune-")
    except (pickle.PicklingError, AttributeError, TypeError) as e:
        raise RuntimeError(f"pairhook: model.tune() trains each trial in a new process, which cannot receive this "
                           f"installation: {e} {advice}") from e
    env = {**os.environ, **importable_env()}
    out = subprocess.run([sys.executable, "-m", CHILD, "--check", state], env=env, capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        os.unlink(state)
        last = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"pairhook: model.tune() trains each trial in a new process, which cannot load this "
                           f"installation: {last} {advice}")
    return state


class ReapplyAfterReset:
    """Set as a model's ``reset_callbacks`` for a ``model.tune(use_ray=True)`` call: resets, then puts the
    installations back (with :class:`TrainTermsReport`). Module-level, so it travels with the pickled model."""

    def __init__(self, model: Any, installations: list[Any]) -> None:
        self.model, self.installations = model, installations

    def __call__(self) -> None:
        model = self.model
        type(model).reset_callbacks(model)
        for installation in self.installations:
            installation.attach_to(model)
        report = TrainTermsReport([n for inst in self.installations for n in inst.loss_names])
        model.add_callback("on_fit_epoch_end", report.on_fit_epoch_end)
        model.add_callback("on_train_epoch_start", report.on_train_epoch_start)


class TrainTermsReport:
    """In a Ray trial: put the epoch's training term values (``train/<loss item>``) into ``trainer.metrics``, which
    Ultralytics' Ray Tune callback (registered after the model's callbacks) reports each epoch; take them out
    before the next epoch, whose ``results.csv`` row is written from the training losses and ``trainer.metrics``."""

    def __init__(self, loss_names: list[str]) -> None:
        self.keys = [f"train/{n}" for n in loss_names]

    def on_fit_epoch_end(self, trainer: Any) -> None:
        items = trainer.label_loss_items(trainer.tloss, prefix="train")
        if isinstance(trainer.metrics, dict) and isinstance(items, dict):
            trainer.metrics.update({k: v for k, v in items.items() if k in self.keys})

    def on_train_epoch_start(self, trainer: Any) -> None:
        if isinstance(trainer.metrics, dict):
            for key in self.keys:
                trainer.metrics.pop(key, None)
