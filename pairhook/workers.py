"""Multi-GPU worker processes on releases whose launch does not give them the trainer's callbacks.

Ultralytics trains on several GPUs by writing a script that imports the trainer class *by module and name* and
builds a fresh trainer in every worker process. Where that trainer gets only the default callbacks
(``compat.callbacks_reach_workers()`` is false), a runtime install would silently vanish, so ``install()`` makes the
model build its trainer from a subclass defined here, named after the class it extends
(``PairhookTrainer__ultralytics__models__...``), which the worker script can import like any other. The subclass
changes nothing except:

* in the process that is about to launch workers, it pickles the installations found among its callbacks to a file
  and names the file in the ``PAIRHOOK_WORKER_STATE`` environment variable, which the workers inherit;
* in a worker (``LOCAL_RANK`` set), it loads that file and registers the installations' callbacks.

Regularizers must therefore be importable by the workers (built-ins, entry points, module-level functions).
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from pairhook import compat

ENV = "PAIRHOOK_WORKER_STATE"
PREFIX = "PairhookTrainer__"


def trainer_for(base: type) -> type:
    """The pairhook subclass of an Ultralytics trainer class (created once, then cached in this module)."""
    return _subclass(f"{base.__module__}.{base.__qualname__}")


def __getattr__(name: str) -> type:
    # The worker script does ``from pairhook.workers import PairhookTrainer__<module>__<class>``.
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
            adopt(self, os.environ[ENV])
        elif compat.launches_workers(self):
            hand_over(self)

    cls = type(name, (base,), {"__init__": __init__, "__module__": __name__, "__qualname__": name})
    globals()[name] = cls
    return cls


def installations_in(callbacks: dict[str, list]) -> list[Any]:
    """The distinct pairhook installations whose callbacks are in ``callbacks``, in order of appearance.

    An installation is recognised by its class attribute ``pairhook_installation`` (so this module need not import
    :mod:`pairhook.installation`, which imports it).
    """
    found = {id(fn.__self__): fn.__self__ for funcs in callbacks.values() for fn in funcs
             if getattr(getattr(fn, "__self__", None), "pairhook_installation", False)}
    return list(found.values())


def write_installations(found: list[Any], prefix: str = "pairhook-workers-") -> str:
    """Pickle installations to a new temporary file and return its path (``pickle`` errors propagate)."""
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=".pkl")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(found, f)
    except BaseException:
        os.unlink(path)
        raise
    return path


def read_installations(path: str) -> list[Any]:
    """The installations pickled in ``path``; a ``RuntimeError`` saying what to do when a regularizer cannot be
    imported in this process."""
    with open(path, "rb") as f:
        try:
            return pickle.load(f)
        except (AttributeError, ImportError) as e:
            raise RuntimeError(f"pairhook: this process cannot load the installed regularizers ({e}); define "
                               "them in an importable module or register them through an entry point") from e


def hand_over(trainer: Any) -> str:
    """Pickle the trainer's pairhook installations for its workers; return the file (also put in ``$ENV``).

    The file is removed when this process exits (the workers have read it by then)."""
    path = write_installations(installations_in(trainer.callbacks))
    atexit.register(Path(path).unlink, missing_ok=True)
    os.environ[ENV] = path
    return path


def adopt(trainer: Any, path: str) -> None:
    """In a worker: register the callbacks of the installations handed over in ``path``."""
    for installation in read_installations(path):
        installation.register_on(trainer.callbacks)
