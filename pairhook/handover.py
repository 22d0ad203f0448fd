"""The one way an installation crosses a process: a plain-data description, written and read here only.

Multi-GPU ranks (:mod:`pairhook.ranks`), ``model.tune()`` trials with or without Ray
(:mod:`pairhook.tuning.model_tune`) and ``pairhook.tune`` trials on either engine (:mod:`pairhook.tuning.run`) all
receive an installation as :func:`describe` writes it and rebuild it with :func:`build` or :func:`install_on`::

    {"handover": 1,
     "regularizers": {"pair_consistency": {"weight": 1.0, "tau_high": 0.5}},
     "pairs": "/abs/pairs.json", "match_iou": 0.5, "strict_pairs": false,
     "plugins": {"my_term": {"fn": "my_package.terms:my_term", "loss_name": "my_term_loss",
                             "needs_pairs": false, "gate": null}}}

``plugins`` names each regularizer registered in this process only (``pairhook.register``) by the importable
``module:qualname`` of its function, with what it was registered with; the receiving process registers those it
lacks. Built-in regularizers and entry points are found by the receiving process itself. No pairhook object is
pickled, so a checkpoint never holds one.
"""

from __future__ import annotations

import importlib
import json
import os
import site
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

from pairhook import hookspecs, plugins
from pairhook.installation import Installation, install
from pairhook.terms import parse_regularizers

VERSION = 1
KEY = "handover"
#: The environment variable that hands descriptions to child processes (multi-GPU ranks, ``model.tune()`` trials).
ENV = "PAIRHOOK_INSTALLATIONS"


class Unnameable(RuntimeError):
    """Regularizers registered in this process whose function another process cannot import by name."""

    def __init__(self, labels: list[str]) -> None:
        super().__init__(", ".join(labels))
        self.labels = labels


def describe(installation: Installation, strict: bool = True) -> dict[str, Any]:
    """The installation as plain data (JSON-serialisable). ``strict``: raise :class:`Unnameable` for in-process
    regularizers whose function has no importable ``module:qualname`` (else they are left out of ``plugins``, for a
    receiver in this very process)."""
    out = {KEY: VERSION, **installation.settings(), "plugins": {}}
    unnamed = []
    for reg in installation.active:
        if reg.source != "in-process":
            continue
        ref = qualified_name(reg.fn)
        if ref is None:
            unnamed.append(reg.label)
            continue
        out["plugins"][reg.name] = {"fn": ref, "loss_name": reg.loss_name, "needs_pairs": reg.needs_pairs,
                                    "gate": reg.gate}
    if unnamed and strict:
        raise Unnameable(unnamed)
    return out


def qualified_name(obj: Any) -> Optional[str]:
    """``module:qualname`` of a module-level function or class that importing by that name gives back, else None."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        return None
    try:
        found = resolve(f"{module}:{qualname}")
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if found is obj else None


def resolve(ref: str) -> Any:
    """The object ``module:qualname`` names."""
    module, _, qualname = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def encode(descriptions: Iterable[dict[str, Any]]) -> str:
    """Descriptions as one JSON text (an environment variable or a file)."""
    return json.dumps(list(descriptions))


def decode(text: str) -> list[dict[str, Any]]:
    return json.loads(text)


def encode_all(installations: Iterable[Installation]) -> str:
    """:func:`encode` of every installation's :func:`describe` (strict)."""
    return encode(describe(i) for i in installations)


class DescribedPlugin:
    """Registers the in-process regularizers of a description (their functions imported by name)."""

    def __init__(self, entries: dict[str, dict[str, Any]]) -> None:
        self.entries = entries

    @hookspecs.hookimpl
    def pairhook_register_regularizers(self, register: Any) -> None:
        for name, e in self.entries.items():
            register(name, self.functions[name], e["loss_name"], needs_pairs=e["needs_pairs"], gate=e["gate"])

    def load(self) -> DescribedPlugin:
        """Import every function now: a ``RuntimeError`` saying what to do when one cannot be imported here."""
        try:
            self.functions = {name: resolve(e["fn"]) for name, e in self.entries.items()}
        except (AttributeError, ImportError) as e:
            raise RuntimeError(f"pairhook: this process cannot load the installed regularizers ({e}); define "
                               "them in an importable module or register them through an entry point") from e
        return self


def _settings(description: dict[str, Any]) -> dict[str, Any]:
    """Register what the description names and this process lacks; return the ``install()`` arguments."""
    if description.get(KEY) != VERSION:
        raise RuntimeError(f"pairhook: not an installation description of this pairhook: {description!r:.200}")
    known = plugins.registry()
    missing = {name: e for name, e in description["plugins"].items() if name not in known}
    if missing:
        plugins.register(DescribedPlugin(missing).load())
    return {k: v for k, v in description.items() if k not in (KEY, "plugins")}


def build(description: dict[str, Any]) -> Installation:
    """An installation on no model (a multi-GPU rank registers its callbacks on the trainer)."""
    s = _settings(description)
    return Installation(None, parse_regularizers(s["regularizers"]), s["pairs"], s["match_iou"], s["strict_pairs"])


def install_on(model: Any, description: dict[str, Any]) -> Installation:
    """``install()`` on ``model`` what the description describes."""
    return install(model, **_settings(description))


def importable_env() -> dict[str, str]:
    """Environment additions that let a fresh Python process import this pairhook (e.g. from a source checkout)."""
    root = str(Path(__file__).resolve().parents[1])
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    installed = {str(Path(p).resolve()) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if root in installed or root in paths:
        return {}
    return {"PYTHONPATH": os.pathsep.join([root, *paths])}
