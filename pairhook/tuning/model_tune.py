"""``model.tune()`` with pairhook installed: Ultralytics' own tuner, every trial trained with the installation.

``install()`` sets a :class:`TuneWithInstallation` as the ``tune`` attribute of that one ``YOLO`` instance (the class
is untouched; ``uninstall()`` removes it). A call with an installation on the model:

* ``use_ray=False`` (Ultralytics' ``Tuner``): each trial is a ``yolo train`` subprocess, which never sees the
  instance's callbacks. The installations' description (:mod:`pairhook.handover`) is put in the trials' environment
  (``PAIRHOOK_INSTALLATIONS``) and read once in a fresh process before the first trial, so a regularizer the trials
  could not import fails here, saying what to do. During the call each trial runs ``python -m
  pairhook.tuning.child key=value ...`` instead (:func:`pairhook.compat.redirect_trials`): ``yolo train key=value
  ...`` with them.
* ``use_ray=True`` (Ultralytics' ``run_ray_tune``): every Ray trial unpickles the instance and calls its
  ``reset_callbacks()``. During the call that is a :class:`ReapplyAfterReset` holding the description, which resets
  the callbacks and installs it again, and has the epoch's training term values (``train/<loss item>``) reported to
  Ray Tune next to the validation losses and pair metrics Ultralytics reports; the installations' own callbacks are
  off the instance while Ray pickles it. Releases whose Ray integration cannot run with the installed Ray are
  refused before the first trial.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from pairhook import compat, handover
from pairhook.installation import add_route, installations_in

CHILD = "pairhook.tuning.child"


def route(model: Any) -> None:
    """Make ``model.tune()`` train every trial with the model's pairhook installations."""
    compat.replace("YOLO", model, "tune", TuneWithInstallation(model))


def unroute(model: Any) -> None:
    if isinstance(vars(model).get("tune"), TuneWithInstallation):
        compat.restore("YOLO", model, "tune")


class TuneWithInstallation:
    """Stands in for ``model.tune`` on one instance (see the module docstring); same arguments, same result."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        model = self.model
        tune = type(model).tune
        found = installations_in(model.callbacks)
        if not found:
            return tune(model, *args, **kwargs)
        state = hand_over(found)
        if kwargs.get("use_ray", args[0] if args else False):
            return self._with_ray(tune, found, state, args, kwargs)
        env = {**handover.importable_env(), handover.ENV: state}
        with compat.redirect_trials(lambda train: [sys.executable, "-m", CHILD, *train], env):
            return tune(model, *args, **kwargs)

    def _with_ray(self, tune: Any, found: list[Any], state: str, args: tuple, kwargs: dict[str, Any]) -> Any:
        problem = compat.run_ray_tune_problem()
        if problem:
            raise RuntimeError(f"pairhook: model.tune(use_ray=True) cannot train its trials here: {problem}. Use "
                               "pairhook.tune(model, engine='ray', ...), which runs Ray Tune with pairhook in every "
                               "trial")
        model = self.model
        kept = {event: list(fns) for event, fns in model.callbacks.items()}
        for fns in model.callbacks.values():  # Ray pickles the instance: no installation goes with it
            fns[:] = [fn for fn in fns if getattr(fn, "__self__", None) not in found]
        compat.replace("YOLO", model, "reset_callbacks", ReapplyAfterReset(model, state))  # goes into Ray's store
        try:
            return tune(model, *args, **kwargs)
        finally:
            compat.restore("YOLO", model, "reset_callbacks")
            for event, fns in kept.items():
                model.callbacks[event] = fns


def hand_over(found: list[Any]) -> str:
    """Describe the installations for ``model.tune()``'s trial processes and check that a fresh process reads them;
    return the description. Raises ``RuntimeError`` naming the regularizers and what to use instead."""
    labels = ", ".join(r.label for inst in found for r in inst.active if not r.builtin) or "none"
    advice = (f"(regularizers not built in: {labels}). Define them at module level in an importable module or "
              "register them through an entry point; or use pairhook.tune(model, ...), whose local engine trains "
              "in this process")
    try:
        state = handover.encode_all(found)
    except (handover.Unnameable, TypeError, ValueError) as e:
        raise RuntimeError(f"pairhook: model.tune() trains each trial in a new process, which cannot receive this "
                           f"installation: {e} {advice}") from e
    env = {**os.environ, **handover.importable_env(), handover.ENV: state}
    out = subprocess.run([sys.executable, "-m", CHILD, "--check"], env=env, capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"pairhook: model.tune() trains each trial in a new process, which cannot load this "
                           f"installation: {last} {advice}")
    return state


class ReapplyAfterReset:
    """Set as a model's ``reset_callbacks`` for a ``model.tune(use_ray=True)`` call: resets, then installs the
    described installations again (with :class:`TrainTermsReport`). Module-level, so it travels with the pickled
    model; it holds the description (plain data), no installation."""

    def __init__(self, model: Any, state: str) -> None:
        self.model, self.state = model, state

    def __call__(self) -> None:
        model = self.model
        type(model).reset_callbacks(model)
        installations = [handover.install_on(model, d) for d in handover.decode(self.state)]
        report = TrainTermsReport([n for inst in installations for n in inst.loss_names])
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


add_route("model.tune()", route, unroute)
