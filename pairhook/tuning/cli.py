"""``pairhook tune``: :func:`pairhook.tune` from the command line, in ``yolo tune``'s ``key=value`` style.

    pairhook tune model=yolov8n.yaml data=data.yaml pairs=pairs.json regularizers=pair_consistency \\
        space="{lr0: [0.001, 0.02], pair_consistency.weight: [0.1, 4.0], pair_consistency.tau_high: [0.2, 0.8]}" \\
        fitness="fitness + 0.5*pairs/both_detected" iterations=6 epochs=5 imgsz=128

``space`` is inline YAML or a YAML file; every key that is not pairhook's is a fixed ``yolo train`` argument of
every trial. Kept apart from :mod:`pairhook.cli`, which only registers the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import yaml

from pairhook.config import UNSET


def read_space(space: Union[str, dict]) -> dict:
    """The search space: a mapping as given, or the YAML file or inline YAML mapping a string holds."""
    if isinstance(space, str):
        text = Path(space).read_text() if Path(space).is_file() else space
        try:
            space = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"space: not a YAML mapping or file: {e}") from e
    if not isinstance(space, dict):
        raise ValueError(f"space must be a YAML mapping (inline or a file), got {space!r}")
    return space


def cmd_tune(model: str, data: str, space: Union[str, dict], pairs: Optional[str] = None,
             regularizers: Optional[str] = UNSET, config: Optional[str] = None, engine: str = "local",
             iterations: int = 10, fitness: Union[str, dict] = "fitness", out: Optional[str] = None,
             search_seed: int = 0, address: Optional[str] = None, grace_period: int = 10,
             cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0, max_concurrent: int = 0,
             **train_kwargs: Any) -> int:
    """Search training arguments and regularizer options (``space``), every trial with pairhook installed.

    Args:
        model: the model of every trial: a model YAML (from scratch) or weights.
        data: the data YAML.
        space: the search space, inline YAML or a YAML file: {key: [low, high], key: {choice: [...]}, key: value};
            keys are yolo train arguments (lr0) or regularizer options (pair_consistency.weight).
        pairs: the pair file; None uses the data YAML's pairs: key.
        regularizers: the regularizers every trial installs (a name, comma-separated names, a list or a mapping);
            unset: the config's, else pair_consistency.
        config: a pairhook config YAML (regularizers, pairs, match_iou, strict_pairs).
        engine: local (Ultralytics' tuner's evolution, in this process) or ray (Ray Tune).
        iterations: number of trials.
        fitness: what to maximise on each trial's last epoch: fitness (Ultralytics'), a metric such as
            pairs/both_detected, or a weighted sum such as "fitness + 0.5*pairs/both_detected".
        out: directory of the search (default runs/tune, numbered if it exists).
        search_seed: seed of the search itself (the trials' training seed is seed=).
        address: Ray engine: the Ray cluster to join (default: a local Ray).
        grace_period: Ray engine: epochs before ASHA may stop a trial.
        cpus_per_trial, gpus_per_trial: Ray engine: resources of each trial.
        max_concurrent: Ray engine: trials at once (0: as many as the resources allow).
    """
    from ultralytics import YOLO

    from pairhook.installation import install
    from pairhook.tuning.api import tune

    yolo = YOLO(model)
    install(yolo, pairs=pairs, regularizers=regularizers, config=config)
    result = tune(yolo, data=data, space=read_space(space), engine=engine, iterations=iterations, fitness=fitness,
                  out=out, search_seed=search_seed, address=address, grace_period=grace_period,
                  cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                  max_concurrent=max_concurrent or None, **train_kwargs)
    print(result.summary())
    if result.config is not None:
        print(f"train with it: pairhook train model={model} data={data} config={result.config} "
              f"cfg={result.hyperparameters}")
    return 0 if result.best is not None else 1
