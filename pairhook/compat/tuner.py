"""Ultralytics' hyperparameter tuners by release: how ``model.tune()`` launches a trial, what its Ray Tune
integration needs, and the training defaults a search starts from.

Every release 8.1.47..8.4.x runs each ``model.tune()`` trial as a ``subprocess.run`` of the ``yolo train`` command:

* 8.1.x, 8.2.x: ``["yolo", "train", k=v, ...]`` from ``ultralytics.engine.tuner``;
* 8.3.x: ``[python, "-m", "ultralytics.cfg.__init__", "train", k=v, ...]`` from ``ultralytics.engine.tuner``;
* 8.4.x: the same command from ``ultralytics.engine.trainer`` (``MultiTrainer`` built without a trainer class).

Such a process never sees the callbacks of the ``YOLO`` instance. :func:`redirect_trials` makes those two modules,
for the duration of one call, run a given command instead of each training command, and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import types
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Optional

from pairhook.compat.patches import replace, restore

TRIAL_MODULES = ("ultralytics.engine.tuner", "ultralytics.engine.trainer")


def _words(cmd: Any) -> Any:
    """A command as a list of words: 8.3.85 runs ``" ".join(["yolo", "train", ...])`` with ``shell=True``."""
    return shlex.split(cmd) if isinstance(cmd, str) else cmd


def training_args(cmd: Any) -> Optional[list[str]]:
    """The ``key=value`` arguments of an Ultralytics command-line training command (a list of words, or the shell
    string some releases run); ``None`` for any other command."""
    cmd = _words(cmd)
    if not isinstance(cmd, (list, tuple)) or "train" not in cmd:
        return None
    i = list(cmd).index("train")
    head = [os.path.basename(str(c)) for c in cmd[:i]]
    if head == ["yolo"] or (len(head) == 3 and head[1] == "-m" and head[2].startswith("ultralytics")):
        return [str(c) for c in cmd[i + 1:]]
    return None


class TrialSubprocess(types.ModuleType):
    """Stands in for the ``subprocess`` module inside the tuner's modules: ``run`` replaces a training command by
    ``launch(args)`` with ``env`` added; every other command, and every other name, is the real ``subprocess``."""

    def __init__(self, launch: Callable[[list[str]], list[str]], env: dict[str, str]) -> None:
        super().__init__("subprocess")
        self.launch, self.env, self.launched = launch, env, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    def run(self, cmd: Any, *args: Any, **kwargs: Any) -> subprocess.CompletedProcess:
        train, words = training_args(cmd), _words(cmd)
        if train is None and isinstance(words, (list, tuple)) and "train" in words:
            raise RuntimeError(f"pairhook: unrecognised tuner trial command {list(words)[:4]}...; refusing to run a "
                               "trial without pairhook's installation. Use pairhook.tune(model, ...) instead")
        if train is not None:
            cmd = self.launch(train)
            kwargs.pop("shell", None)  # the launch is a list of words
            kwargs["env"] = {**(kwargs.get("env") or os.environ), **self.env}
            self.launched += 1
        return subprocess.run(cmd, *args, **kwargs)


@contextlib.contextmanager
def redirect_trials(launch: Callable[[list[str]], list[str]], env: dict[str, str]) -> Iterator[TrialSubprocess]:
    """Within the block, the tuner's training subprocesses run ``launch(key=value args)`` (see the module docstring).

    Raises ``RuntimeError`` (before any trial) if no tuner module of this release runs trials through ``subprocess``.
    """
    from ultralytics.engine import trainer, tuner

    shim = TrialSubprocess(launch, env)
    patched = []
    try:
        for module in (tuner, trainer):  # TRIAL_MODULES
            if getattr(module, "subprocess", None) is subprocess:
                replace(module.__name__, module, "subprocess", shim)
                patched.append(module)
        if not patched:
            raise RuntimeError("pairhook: this Ultralytics release's tuner does not launch trials the way pairhook "
                               "knows, so they would train without the term; use pairhook.tune(model, ...) instead")
        yield shim
    finally:
        for module in patched:
            restore(module.__name__, module, "subprocess", subprocess)


def trial_train_args(args: Sequence[str]) -> tuple[str, Optional[str], dict[str, Any]]:
    """``(model, task, train kwargs)`` of a tuner trial's ``key=value`` arguments, read like ``yolo train`` reads
    them, so that ``YOLO(model, task=task).train(**kwargs)`` trains what ``yolo train`` would.

    The run directory the tuner reads the trial from (``save_dir=``, 8.3 on) is pinned through ``project``/``name``:
    ``get_cfg`` drops a ``save_dir`` override on releases whose default config lacks the key (8.3.x).
    """
    from ultralytics.cfg import smart_value

    kwargs: dict[str, Any] = {}
    for arg in args:
        key, _, text = arg.partition("=")
        kwargs[key] = smart_value(text)
    kwargs.pop("mode", None)
    save_dir = kwargs.pop("save_dir", None)
    if save_dir:
        kwargs.update(project=os.path.dirname(str(save_dir)), name=os.path.basename(str(save_dir)), exist_ok=True)
    return str(kwargs.pop("model")), kwargs.pop("task", None), kwargs


def ignored_arguments(train_args: dict[str, Any]) -> dict[str, str]:
    """Training arguments Ultralytics ignores under these arguments, with the reason: with ``optimizer="auto"`` (the
    default) it picks the optimizer, ``lr0`` and ``momentum`` itself."""
    if str(train_args.get("optimizer", "auto")).lower() == "auto":
        return dict.fromkeys(("lr0", "momentum"), "optimizer='auto' chooses it itself")
    return {}


def int_keys() -> frozenset[str]:
    """Training arguments that are integers (a search rounds them)."""
    from ultralytics.cfg import CFG_INT_KEYS

    return frozenset(CFG_INT_KEYS)


def ray_callback_problem() -> Optional[str]:
    """Why Ultralytics' Ray Tune callback cannot run with the installed Ray, or ``None``.

    8.1.x and 8.2.x call ``ray.train._internal.session._get_session``, which newer Ray releases no longer have:
    with such a Ray installed, every training (not only tuning) would fail at its first epoch end.
    """
    try:
        from ultralytics.utils.callbacks import raytune
    except ImportError:
        return None
    fn = getattr(raytune, "callbacks", {}).get("on_fit_epoch_end")
    if fn is None:  # Ray not installed, or Ultralytics' raytune setting off
        return None
    called = [name for name in ("_get_session", "get_session") if name in fn.__code__.co_names]
    if not called:  # 8.4: the public ray.tune API
        return None
    import ray

    try:
        from ray.train._internal import session
    except ImportError:
        session = None
    for name in called:
        if not hasattr(session, name):
            return (f"Ultralytics' Ray Tune callback calls ray.train._internal.session.{name}, which Ray "
                    f"{ray.__version__} does not have")
    return None


def drop_broken_ray_callback(trainer: Any) -> Optional[str]:
    """Remove Ultralytics' Ray Tune callback from ``trainer`` when :func:`ray_callback_problem` says it would fail;
    it only reports to a Ray Tune session. Returns the problem, or ``None`` when nothing was removed."""
    problem = ray_callback_problem()
    funcs = getattr(trainer, "callbacks", {}).get("on_fit_epoch_end", [])
    broken = [fn for fn in funcs if getattr(fn, "__module__", "") == "ultralytics.utils.callbacks.raytune"]
    if problem is None or not broken:
        return None
    funcs[:] = [fn for fn in funcs if fn not in broken]
    return problem


def drop_ray_callback(trainer: Any) -> None:
    """Remove Ultralytics' Ray Tune reporting from ``trainer`` (pairhook's Ray trials report themselves)."""
    funcs = getattr(trainer, "callbacks", {}).get("on_fit_epoch_end", [])
    funcs[:] = [fn for fn in funcs if getattr(fn, "__module__", "") != "ultralytics.utils.callbacks.raytune"]


def run_ray_tune_problem() -> Optional[str]:
    """Why ``model.tune(use_ray=True)`` of this release cannot run its trials with the installed Ray, or ``None``."""
    return ray_callback_problem()
