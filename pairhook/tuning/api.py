"""``pairhook.tune(model, ...)``: training arguments and regularizer options searched together, pairhook in every
trial."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

from pairhook import compat, handover, log
from pairhook.installation import installations_in
from pairhook.terms import parse_regularizers
from pairhook.tuning import space as spaces
from pairhook.tuning.fitness import Fitness, FitnessSpec
from pairhook.tuning.results import TrialRecord, TuneResult, write_results
from pairhook.tuning.run import TrialJob

ENGINES = ("local", "ray")


def tune(
    model: Any,
    *,
    data: Union[str, Path],
    space: Mapping[str, Any],
    engine: str = "local",
    iterations: int = 10,
    fitness: FitnessSpec = "fitness",
    out: Optional[Union[str, Path]] = None,
    search_seed: int = 0,
    keep_weights: bool = False,
    address: Optional[str] = None,
    grace_period: int = 10,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    max_concurrent: Optional[int] = None,
    search_alg: Any = None,
    scheduler: Any = "asha",
    ray_init: Optional[dict[str, Any]] = None,
    **train_args: Any,
) -> TuneResult:
    """Search Ultralytics training arguments and regularizer options; every trial trains with pairhook installed.

    Args:
        model: a ``YOLO`` with pairhook installed; each trial starts from the same weights or model YAML and installs
            the same regularizers, pairs and settings, with the trial's options.
        data: the dataset YAML.
        space: ``{key: range, choices or value}``; keys are training arguments (``lr0``) or regularizer options
            (``pair_consistency.weight``); see :mod:`pairhook.tuning.space` for the forms.
        engine: ``"local"`` (Ultralytics' tuner's evolution, in this process) or ``"ray"`` (Ray Tune).
        iterations: number of trials.
        fitness: what to maximise: ``"fitness"`` (Ultralytics'), a metric such as ``"pairs/both_detected"``, or a
            weighted sum (:mod:`pairhook.tuning.fitness`), on the last epoch of each trial.
        out: directory for the trials and results (default ``runs/tune``, numbered if it exists).
        search_seed: seed of the search (``seed=`` is Ultralytics' training seed, like every training argument).
        keep_weights: local engine: keep every trial's weights (default: only the best trial's).
        address: Ray engine: the cluster to join (default: a local one).
        grace_period: Ray engine: epochs before the scheduler may stop a trial.
        cpus_per_trial: Ray engine: CPUs per trial.
        gpus_per_trial: Ray engine: GPUs per trial.
        max_concurrent: Ray engine: trials at once.
        search_alg: Ray engine: a Ray Tune search algorithm (default: random search).
        scheduler: Ray engine: "asha" (the default), None (every trial runs all epochs) or a Ray Tune scheduler.
        ray_init: Ray engine: keyword arguments of ``ray.init`` (see :func:`pairhook.tuning.ray_engine.run_ray`).
        **train_args: fixed training arguments for every trial (``epochs``, ``imgsz``, ...).

    Returns:
        The :class:`~pairhook.tuning.results.TuneResult`; its ``config`` (``best.yaml``) is a pairhook config that
        ``pairhook train config=...`` takes, its ``hyperparameters`` a ``cfg=`` file with the best arguments.

    Raises:
        ValueError: no installation on ``model``, an unknown engine, key, option or fitness, a bad space.
        RuntimeError: the Ray engine with a regularizer its workers cannot import; a trial that failed (local).
    """
    installation = _installation(model)
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    for key in ("project", "name"):
        if key in train_args:
            raise ValueError(f"{key}= is set per trial by pairhook.tune; use out= for the search's directory")
    objective = Fitness.parse(fitness)
    defaults = {**compat.cfg_defaults(), **train_args}
    dims = spaces.parse_space(space, compat.int_keys())
    settings = installation.settings()
    _check(dims, defaults, settings)
    if engine == "ray":
        _check_ray(train_args)
    description = _describe(installation, engine)
    out = _out_dir(out)
    job = TrialJob(_source(model), getattr(model, "task", None), {**train_args, "data": _absolute(data),
                   "epochs": int(defaults["epochs"])}, description, objective, str(out),
                   tuple(installation.loss_names))
    base = spaces.base_point(dims, {**defaults, **_options(settings, installation)})
    log.info(f"tune: {iterations} trials, engine {engine}, objective {objective}, results in {out}")
    start = time.monotonic()
    grid = None
    if engine == "local":
        from pairhook.tuning.local import run_local

        def progress(trials: list[TrialRecord]) -> None:
            write_results(out, trials, settings, str(objective), engine, job.train_args)

        trials = run_local(job, dims, base, iterations, seed=search_seed, keep_weights=keep_weights, on_trial=progress)
    else:
        from pairhook.tuning.ray_engine import run_ray

        trials, grid = run_ray(job, dims, base, iterations, address=address, grace_period=grace_period,
                               cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                               max_concurrent=max_concurrent, search_alg=search_alg, scheduler=scheduler,
                               ray_init=ray_init, seed=search_seed)
    result = write_results(out, trials, settings, str(objective), engine, job.train_args)
    result.loss_names, result.seconds, result.grid = installation.loss_names, time.monotonic() - start, grid
    return result


def _installation(model: Any) -> Any:
    found = installations_in(getattr(model, "callbacks", {}))
    if not found:
        raise ValueError("pairhook.tune needs a YOLO model with pairhook installed: call pairhook.install(model, ...) "
                         "first; every trial installs the same regularizers, pairs and settings")
    return found[-1]


def _source(model: Any) -> str:
    """What each trial builds its model from: the checkpoint the model was loaded from, else its YAML."""
    src = getattr(model, "ckpt_path", None) or getattr(model, "cfg", None)
    if not src:
        raise ValueError("pairhook.tune: the model was not loaded from a file (YOLO('x.pt') or YOLO('x.yaml')), so "
                         "the trials cannot rebuild it")
    return _absolute(src)


def _absolute(path: Union[str, Path]) -> str:
    """A path that exists, made absolute (Ray trials run in other directories); a name such as ``yolov8n.yaml``
    that Ultralytics resolves itself, as given."""
    return str(Path(path).resolve()) if Path(path).exists() else str(path)


def _options(settings: dict[str, Any], installation: Any) -> dict[str, Any]:
    """Current value of every regularizer option (``name.option``): the installation's, else the default."""
    from pairhook.plugins import registry

    out = {}
    for name, opts in settings["regularizers"].items():
        out.update({f"{name}.{k}": v for k, v in registry()[name].options.items()})
        out.update({f"{name}.{k}": v for k, v in opts.items()})
    return out


def _check(dims: list[spaces.Dim], defaults: dict[str, Any], settings: dict[str, Any]) -> None:
    """Every key known, every regularizer installed, every option value at the space's edges accepted."""
    from difflib import get_close_matches

    ignored = compat.ignored_arguments(defaults) if "optimizer" not in {d.key for d in dims} else {}
    for d in dims:
        if d.option is None:
            if d.key not in defaults:
                similar = get_close_matches(d.key, list(defaults))
                raise ValueError(f"search space: {d.key!r} is not an Ultralytics training argument"
                                 + (f"; did you mean {', '.join(similar)}?" if similar else ""))
            if d.key in ("data", "model", "project", "name", "epochs"):
                raise ValueError(f"search space: {d.key!r} cannot be searched (it is the same for every trial)")
            if d.key in ignored:
                raise ValueError(f"search space: Ultralytics ignores {d.key!r} here ({ignored[d.key]}); pass an "
                                 "optimizer (e.g. optimizer=SGD) so that the trials train what the search sets")
        elif d.option[0] not in settings["regularizers"]:
            raise ValueError(f"search space: {d.key!r}: regularizer {d.option[0]!r} is not installed on the model; "
                             f"installed: {', '.join(settings['regularizers']) or 'none'}")
        for value in d.corners():
            if d.option is not None:
                name, option = d.option
                parse_regularizers({**settings["regularizers"],
                                    name: {**settings["regularizers"][name], option: value}})


def _describe(installation: Any, engine: str) -> dict[str, Any]:
    """The installation each trial installs (:mod:`pairhook.handover`). Ray workers install it in other processes:
    every regularizer registered in this process only must be importable there by name."""
    try:
        return handover.describe(installation, strict=engine == "ray")
    except handover.Unnameable as e:
        raise RuntimeError(f"pairhook.tune(engine='ray'): {e} is registered in this process only, so Ray workers "
                           "cannot install it; define it at module level in an importable module, publish it through "
                           "an entry point (see docs/writing-a-regularizer.md) or use engine='local'") from e


def _check_ray(train_args: dict[str, Any]) -> None:
    """Ray Tune is installed, and the trials validate every epoch (the scheduler's input)."""
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError as e:
        raise RuntimeError(f'pairhook.tune(engine="ray") needs Ray Tune: pip install "pairhook[tune]" ({e})') from e
    if train_args.get("val") is False:
        raise ValueError("pairhook.tune(engine='ray') feeds the scheduler every epoch's validation; drop val=False")


def _out_dir(out: Optional[Union[str, Path]]) -> Path:
    if out is not None:
        path = Path(out).resolve()
    else:
        path, n = Path("runs/tune").resolve(), 2
        while path.exists():
            path, n = Path(f"runs/tune{n}").resolve(), n + 1
    path.mkdir(parents=True, exist_ok=True)
    return path
