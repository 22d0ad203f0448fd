"""The plugin manager: hookspecs, default plugins, entry-point discovery, and the regularizer registry.

Set ``PAIRHOOK_DISABLE_ENTRYPOINTS=1`` to skip loading plugins from installed distributions
(entry-point group ``pairhook``); in-process :func:`register` still works.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable

import pluggy

from pairhook import hookspecs

LOGGER = logging.getLogger("pairhook")
ENTRYPOINT_GROUP = "pairhook"
DISABLE_ENV = "PAIRHOOK_DISABLE_ENTRYPOINTS"
DEFAULT_PLUGINS = ("pairhook.regularizers",)

pm = pluggy.PluginManager("pairhook")
pm.add_hookspecs(hookspecs)
_SOURCES: dict[str, str] = {}  # plugin name -> where it came from, for `pairhook plugins`


@dataclass(frozen=True)
class Regularizer:
    """A registered regularizer: ``fn(ctx, **options) -> 0-d tensor`` logged as ``loss_name``."""

    name: str
    fn: Callable[..., Any]
    loss_name: str
    source: str

    @property
    def options(self) -> dict[str, Any]:
        """The options ``fn`` accepts, with their defaults (``inspect.Parameter.empty`` if required)."""
        params = list(inspect.signature(self.fn).parameters.values())[1:]
        return {p.name: p.default for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def entrypoints_disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _load_entrypoints() -> None:
    """Register every ``pairhook`` entry point; a plugin that fails to import is reported, not fatal."""
    for ep in metadata.entry_points(group=ENTRYPOINT_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as e:  # noqa: BLE001 - a third party's import error must not stop training
            LOGGER.warning(f"pairhook: plugin entry point '{ep.name}' ({ep.value}) failed to load: {e!r}")
            continue
        dist = getattr(ep, "dist", None)
        pm.register(plugin, name=ep.name)
        _SOURCES[ep.name] = f"entry point {ep.name} ({dist.name} {dist.version})" if dist else ep.name


for _mod in DEFAULT_PLUGINS:
    pm.register(importlib.import_module(_mod), name=_mod)
    _SOURCES[_mod] = "built-in"
if not entrypoints_disabled():
    _load_entrypoints()


def register(plugin: object, name: str | None = None) -> str:
    """Register a plugin (a module or object with ``@hookimpl`` functions) for this process."""
    name = pm.register(plugin, name=name)
    _SOURCES[name] = "in-process"
    return name


def unregister(plugin: object) -> None:
    """Remove a plugin registered with :func:`register` (or by entry point)."""
    name = pm.get_name(plugin)
    pm.unregister(plugin)
    _SOURCES.pop(name, None)


def registry() -> dict[str, Regularizer]:
    """All regularizers the registered plugins provide, by name. Two plugins claiming one name is an error."""
    found: dict[str, Regularizer] = {}
    for impl in reversed(pm.hook.pairhook_register_regularizers.get_hookimpls()):
        source = _SOURCES.get(impl.plugin_name, impl.plugin_name)

        def _register(name: str, fn: Callable[..., Any], loss_name: str | None = None, _src: str = source) -> None:
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"pairhook: plugin {_src!r} registered an invalid regularizer name {name!r}")
            if not callable(fn):
                raise TypeError(f"pairhook: regularizer {name!r} from {_src!r} is not callable")
            if name in found:
                raise ValueError(
                    f"pairhook: regularizer {name!r} is registered twice: by {found[name].source!r} and {_src!r}"
                )
            found[name] = Regularizer(name, fn, loss_name or f"{name}_loss", _src)

        impl.function(register=_register)
    return found


def get_regularizer(name: str) -> Callable[..., Any]:
    """The callable registered under ``name``; ``KeyError`` naming the available ones otherwise."""
    regs = registry()
    if name not in regs:
        raise KeyError(f"unknown regularizer {name!r}; available: {', '.join(sorted(regs)) or 'none'}")
    return regs[name].fn
