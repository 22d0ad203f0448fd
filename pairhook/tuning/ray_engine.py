"""The Ray Tune engine (``pip install "pairhook[tune]"``): the same trials, on one machine or a Ray cluster.

Each trial is a Ray Tune function trainable (:func:`pairhook.tuning.run.ray_trial`) that installs pairhook in its
worker and reports every epoch's row (training terms, validation losses, pair metrics, Ultralytics' ``fitness``,
``objective``) with ``ray.tune.report``; the scheduler (ASHA by default, ``time_attr="epoch"``) stops trials on
``objective``. The first trial is the current arguments and options, as with the local engine; the others are
sampled by Ray's search algorithm (random by default, or any Ray Tune searcher).

Ray is started here unless it is already running in this process: ``address=None`` starts a local Ray,
``address="auto"`` or ``"ray://head:10001"`` joins a cluster. On a cluster, the model, data and pair files and the
output directory must be reachable under the same paths on every node, and pairhook and any plugin installed there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from pairhook import handover, log
from pairhook.tuning import space
from pairhook.tuning.results import TrialRecord
from pairhook.tuning.run import TrialJob, ray_trial

#: Environment the trials need on every node: Ultralytics' offline switches and config dir, pairhook's path.
FORWARD_ENV = ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_CONFIG_DIR", "ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS",
               "PAIRHOOK_DISABLE_ENTRYPOINTS")


def run_ray(job: TrialJob, dims: list[space.Dim], base: dict[str, Any], iterations: int, *,
            address: Optional[str] = None, grace_period: int = 10, cpus_per_trial: float = 1.0,
            gpus_per_trial: float = 0.0, max_concurrent: Optional[int] = None, search_alg: Any = None,
            scheduler: Any = "asha", ray_init: Optional[dict[str, Any]] = None, seed: int = 0
            ) -> tuple[list[TrialRecord], Any]:
    """Run the search with Ray Tune; return the trials and Ray's ``ResultGrid``.

    ``scheduler``: ``"asha"`` (ASHA on the epochs, ``grace_period`` epochs before a trial can be stopped), ``None``
    (every trial runs all epochs) or a Ray Tune scheduler. ``search_alg``: ``None`` (random, starting from ``base``)
    or a Ray Tune searcher. ``ray_init``: extra ``ray.init`` arguments when Ray is started here.
    """
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    started = not ray.is_initialized()
    if started:
        env = {k: os.environ[k] for k in FORWARD_ENV if k in os.environ}
        env.update(handover.importable_env())
        ray.init(**{"address": address, "include_dashboard": False, "runtime_env": {"env_vars": env},
                    **(ray_init or {})})
    try:
        epochs = int(job.train_args["epochs"])
        if scheduler == "asha":
            scheduler = ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=max(1, min(grace_period, epochs)),
                                      reduction_factor=3)
        if search_alg is None:
            search_alg = BasicVariantGenerator(points_to_evaluate=[base], random_state=seed)
        trainable = tune.with_resources(tune.with_parameters(ray_trial, job=job),
                                        {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
        tuner = tune.Tuner(
            trainable,
            param_space=space.to_ray(dims),
            tune_config=tune.TuneConfig(metric="objective", mode="max", num_samples=iterations, scheduler=scheduler,
                                        search_alg=search_alg, max_concurrent_trials=max_concurrent or None),
            run_config=tune.RunConfig(name="ray", storage_path=str(Path(job.project).resolve()), verbose=1),
        )
        grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    trials = []
    for i, result in enumerate(sorted(grid, key=lambda r: r.path or ""), 1):
        metrics = {k: v for k, v in (result.metrics or {}).items() if isinstance(v, (int, float))}
        params = {d.key: result.config.get(d.key) for d in dims}
        status = "error" if result.error else "stopped" if metrics.get("epoch", 0) < epochs else "done"
        run_dir = str(Path(job.project) / result.metrics.get("trial_id", "")) if result.metrics else ""
        trials.append(TrialRecord(i, params, metrics, run_dir, status))
        if result.error:
            log.warning(f"tune: Ray trial {i} failed: {result.error}")
    errors = [r.error for r in grid if r.error]
    if errors and len(errors) == len(trials):
        raise RuntimeError(f"pairhook tune: every Ray trial failed; the first: {errors[0]}") from errors[0]
    return trials, grid
