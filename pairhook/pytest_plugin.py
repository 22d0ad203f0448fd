"""pytest fixtures for regularizer authors, active wherever pairhook is installed (entry point ``pytest11``).

* ``pair_context_factory``: :func:`pairhook.testing.make_pair_context`, a ``PairContext`` with known pairs from
  a seed, e.g. ``pair_context_factory(B=2, A=32, C=3, G=4, pairs=2, inactive=1)``.
* ``tiny_training``: ``tiny_training(regularizers, plugins=(), epochs=1, imgsz=64, ...)`` trains a YOLO from its
  yaml on generated data in the test's ``tmp_path``, offline, and returns the ``results.csv`` rows as dicts.
* ``pairhook_register``: ``pairhook_register(plugin)`` registers a throwaway plugin for the test only.

pytest imports this module in every project of an environment that has pairhook, so it imports no Ultralytics
(importing ``pairhook`` brings torch) and changes nothing until a fixture is used. The entry point's name is this
module's name, so a conftest that also lists it in ``pytest_plugins`` (or ``-p pairhook.pytest_plugin``) loads it
once.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest


@pytest.fixture
def pair_context_factory() -> Callable[..., Any]:
    """Build a :class:`pairhook.PairContext` from shapes and a seed; see :func:`pairhook.testing.make_pair_context`."""
    from pairhook.testing import make_pair_context

    return make_pair_context


@pytest.fixture
def tiny_training(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., list]:
    """Run a tiny offline training with given regularizers; returns results.csv rows (``{column: float}``).

    Each call trains in a fresh temporary directory. See :func:`pairhook.testing.tiny_training` for the arguments.
    """
    from pairhook import testing

    def run(regularizers: Any = "pair_consistency", **kwargs: Any) -> list:
        return testing.tiny_training(tmp_path_factory.mktemp("pairhook-tiny"), regularizers, **kwargs)

    return run


@pytest.fixture
def pairhook_register() -> Any:
    """Register plugins for this test only: ``pairhook_register(plugin)`` returns its name; all are unregistered at
    teardown (see :func:`pairhook.plugins.registered`)."""
    import contextlib

    from pairhook.plugins import registered

    with contextlib.ExitStack() as stack:
        yield lambda plugin, name=None: stack.enter_context(registered(plugin, name))
