"""How ``model.train()`` launches: the trainer class it builds, and multi-GPU worker processes."""

from __future__ import annotations

import functools
import inspect
import os
from typing import Any, Callable

from pairhook.compat.patches import replace, restore


@functools.cache
def callbacks_reach_workers() -> bool:
    """True if a multi-GPU launch hands the trainer's callbacks to its worker processes (8.4.140 on)."""
    from ultralytics.utils import dist

    return "callbacks" in inspect.getsource(dist.generate_ddp_file)


def launches_workers(trainer: Any) -> bool:
    """True in the process that will start multi-GPU workers (several devices asked for, not a worker itself)."""
    if "LOCAL_RANK" in os.environ:
        return False
    if isinstance(getattr(trainer, "ddp", None), bool):  # the trainer recorded its own decision to spawn workers
        return trainer.ddp
    device = trainer.args.device
    if isinstance(device, str):
        return len([d for d in device.split(",") if d.strip()]) > 1
    return isinstance(device, (list, tuple)) and len(device) > 1


class TrainerRoute:
    """Set as a model's ``_smart_load``: the trainer class it loads is passed through ``factory``."""

    def __init__(self, model: Any, factory: Callable[[type], type]) -> None:
        self.model, self.factory = model, factory

    def __call__(self, key: str) -> Any:
        loaded = type(self.model)._smart_load(self.model, key)
        return self.factory(loaded) if key == "trainer" else loaded


def route_trainer(model: Any, factory: Callable[[type], type]) -> None:
    """Make ``model.train()`` build its trainer from ``factory(default trainer class)``."""
    replace("YOLO", model, "_smart_load", TrainerRoute(model, factory))


def unroute_trainer(model: Any) -> None:
    if isinstance(model.__dict__.get("_smart_load"), TrainerRoute):
        restore("YOLO", model, "_smart_load")
