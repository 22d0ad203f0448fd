"""Multi-GPU ranks: the installation reaches every worker process through the one hand-over
(:mod:`pairhook.handover`).

Ultralytics trains on several GPUs by writing a script that builds a fresh trainer, of a class it imports *by module
and name*, in every rank. ``install()`` (through the route this module registers) makes the model build its trainer
from a subclass defined here, named after the class it extends (``PairhookTrainer__ultralytics__models__...``), which
the script imports like any other. The subclass changes nothing except:

* in the process that is about to launch the ranks, it writes the description of the installations found among its
  callbacks to the ``PAIRHOOK_INSTALLATIONS`` environment variable, which the ranks inherit, and gives the trainer a
  copy of its callbacks in which each installation callback is a :class:`HandedOver` stand-in (releases from 8.4.140
  pickle the callbacks for the ranks; the stand-ins keep their order and carry no pairhook state);
* in a rank (``LOCAL_RANK`` set) whose callbacks hold no stand-in (releases before 8.4.140 give the ranks only the
  default callbacks), it registers the described installations' callbacks.

Regularizers registered in this process only must therefore be importable by name in the ranks (module level).
"""

from __future__ import annotations

import functools
import importlib
import os
from typing import Any

from pairhook import compat, handover
from pairhook.installation import Installation, add_route, installations_in

ENV = handover.ENV
PREFIX = "PairhookTrainer__"


def trainer_for(base: type) -> type:
    """The pairhook subclass of an Ultralytics trainer class (created once, then cached in this module)."""
    return _subclass(f"{base.__module__}.{base.__qualname__}")


def __getattr__(name: str) -> type:
    # The worker script does ``from pairhook.ranks import PairhookTrainer__<module>__<class>``.
    if name.startswith(PREFIX):
        return _subclass(name[len(PREFIX):].replace("__", "."))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _subclass(path: str) -> type:
    name = PREFIX + path.replace(".", "__")
    cls = globals().get(name)
    if cls is not None:
        return cls
    module, _, qualname = path.rpartition(".")
    if not module.startswith("ultralytics."):
        raise AttributeError(f"pairhook only extends Ultralytics' own trainers, not {path}")
    base = getattr(importlib.import_module(module), qualname)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        base.__init__(self, *args, **kwargs)
        if "LOCAL_RANK" in os.environ and os.environ.get(ENV):
            if not any(isinstance(fn, HandedOver) or isinstance(getattr(fn, "__self__", None), Installation)
                       for fns in self.callbacks.values() for fn in fns):  # a rank that installed it itself
                for installation in adopted():
                    installation.register_on(self.callbacks)
        elif compat.launches_workers(self):
            hand_over(self)

    cls = type(name, (base,), {"__init__": __init__, "__module__": __name__, "__qualname__": name})
    globals()[name] = cls
    return cls


def hand_over(trainer: Any) -> str:
    """In the launching process: describe the trainer's installations for its ranks (also put in ``$ENV``) and
    replace their callbacks on this trainer by :class:`HandedOver` stand-ins; return the description."""
    found = installations_in(trainer.callbacks)
    try:
        text = handover.encode_all(found)
    except handover.Unnameable as e:
        raise RuntimeError(f"pairhook: the multi-GPU ranks cannot load the installed regularizers ({e}: not "
                           "importable by name); define them in an importable module or register them through an "
                           "entry point") from e
    os.environ[ENV] = text
    trainer.callbacks = {event: [_stand_in(fn, found, event) for fn in fns] for event, fns in trainer.callbacks.items()}
    return text


def _stand_in(fn: Any, found: list[Installation], event: str) -> Any:
    owner = getattr(fn, "__self__", None)
    return HandedOver(found.index(owner), event) if isinstance(owner, Installation) else fn


@functools.cache
def adopted() -> list[Installation]:
    """In a rank: the installations described in ``$ENV``, built once."""
    return [handover.build(d) for d in handover.decode(os.environ[ENV])]


class HandedOver:
    """A rank's stand-in for one installation callback: calls ``event`` of the ``index``-th adopted installation."""

    def __init__(self, index: int, event: str) -> None:
        self.index, self.event = index, event

    @property
    def __self__(self) -> Installation:
        """The installation it calls (so :func:`~pairhook.installation.installations_in` finds it)."""
        return adopted()[self.index]

    def __call__(self, trainer: Any) -> None:
        getattr(adopted()[self.index], self.event)(trainer)


add_route("multi-GPU ranks", lambda model: compat.route_trainer(model, trainer_for), compat.unroute_trainer)
