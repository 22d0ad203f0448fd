"""The plugin manager: default plugins, entry-point discovery and the regularizer registry.

Plugins are loaded lazily and once, on the first call that needs them (:func:`registry`, :func:`register`, ...), not
when ``pairhook`` is imported: a plugin module may then import from ``pairhook`` at its top like any other module.
The default plugins are listed by module path in :data:`DEFAULT_PLUGINS`; installed distributions are found through
the entry-point group ``pairhook`` unless ``PAIRHOOK_DISABLE_ENTRYPOINTS=1``.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Optional

import pluggy

from pairhook import hookspecs, log
from pairhook.deprecation import renamed

ENTRYPOINT_GROUP = "pairhook"
DISABLE_ENV = "PAIRHOOK_DISABLE_ENTRYPOINTS"
DEFAULT_PLUGINS = ("pairhook.regularizers", "pairhook.teacher_terms")
BUILT_IN = "built-in"

pm = pluggy.PluginManager("pairhook")
pm.add_hookspecs(hookspecs)
_sources: dict[str, str] = {}  # plugin name -> where it came from, for messages and `pairhook plugins`
_loaded = False


@dataclass(frozen=True)
class RegisteredRegularizer:
    """A registered regularizer: ``fn(ctx, **options) -> 0-d tensor``, logged as ``loss_name``.

    Attributes:
        source: where it came from, for messages (``built-in``, ``entry point NAME (dist version)``, ``in-process``).
        builtin: registered by one of pairhook's :data:`DEFAULT_PLUGINS`.
        needs_pairs: it acts on ``ctx.pairs``, so it has nothing to do without a pair file; it gets the activity
            columns (``train/<name>_reached``, ``train/<name>_acted``).
        gate: the option that decides when the term acts at all (``tau_high`` for ``pair_consistency``), named in
            the warning when the term has acted on no pair for several epochs.
    """

    name: str
    fn: Callable[..., Any]
    loss_name: str
    source: str
    builtin: bool = False
    needs_pairs: bool = False
    gate: Optional[str] = None

    @property
    def options(self) -> dict[str, Any]:
        """The options ``fn`` accepts, with their defaults (``inspect.Parameter.empty`` if required)."""
        return signature_options(self.fn)


def signature_options(fn: Callable[..., Any]) -> dict[str, Any]:
    """The options a regularizer function accepts after the context, with their defaults (``inspect.Parameter.empty``
    if required): read from ``fn`` itself, so a process without the registry entry reads them too."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    return {p.name: p.default for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def entrypoints_disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def load_plugins() -> pluggy.PluginManager:
    """Register the default plugins and the entry points, once per process; return the plugin manager."""
    global _loaded
    if _loaded:
        return pm
    _loaded = True  # first: a plugin that asks for the registry while it loads must not load everything again
    for module in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module), name=module)
        _sources[module] = BUILT_IN
    if not entrypoints_disabled():
        _load_entrypoints()
    return pm


def _load_entrypoints() -> None:
    """Register every ``pairhook`` entry point; a plugin that fails to import is reported, not fatal."""
    for ep in metadata.entry_points(group=ENTRYPOINT_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as e:  # noqa: BLE001 - a third party's import error must not stop training
            log.warning(f"plugin entry point '{ep.name}' ({ep.value}) failed to load: {e!r}")
            continue
        dist = getattr(ep, "dist", None)
        pm.register(plugin, name=ep.name)
        _sources[ep.name] = f"entry point {ep.name} ({dist.name} {dist.version})" if dist else ep.name


def register(plugin: object, name: Optional[str] = None) -> str:
    """Register a plugin (a module or object with ``@hookimpl`` functions) for this process."""
    load_plugins()
    name = pm.register(plugin, name=name)
    _sources[name] = "in-process"
    return name


def unregister(plugin: object) -> None:
    """Remove a plugin registered with :func:`register` (or by entry point)."""
    name = pm.get_name(plugin)
    pm.unregister(plugin)
    _sources.pop(name, None)


@contextlib.contextmanager
def registered(plugin: object, name: Optional[str] = None) -> Iterator[str]:
    """Register ``plugin`` for the duration of a ``with`` block (a throwaway plugin); yields its name."""
    name = register(plugin, name)
    try:
        yield name
    finally:
        unregister(plugin)


def registry() -> dict[str, RegisteredRegularizer]:
    """All regularizers the registered plugins provide, by name. Two plugins claiming one name is an error."""
    load_plugins()
    found: dict[str, RegisteredRegularizer] = {}
    for impl in reversed(pm.hook.pairhook_register_regularizers.get_hookimpls()):
        source = _sources.get(impl.plugin_name, impl.plugin_name)
        builtin = impl.plugin_name in DEFAULT_PLUGINS

        def _register(name: str, fn: Callable[..., Any], loss_name: Optional[str] = None, *,
                      needs_pairs: bool = False, gate: Optional[str] = None, _src: str = source,
                      _builtin: bool = builtin) -> None:
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"pairhook: plugin {_src!r} registered an invalid regularizer name {name!r}")
            if not callable(fn):
                raise TypeError(f"pairhook: regularizer {name!r} from {_src!r} is not callable")
            if name in found:
                raise ValueError(
                    f"pairhook: regularizer {name!r} is registered twice: by {found[name].source!r} and {_src!r}"
                )
            found[name] = RegisteredRegularizer(name, fn, loss_name or f"{name}_loss", _src, _builtin,
                                                bool(needs_pairs), gate)

        impl.function(register=_register)
    return found


def unknown_regularizer(name: str, regs: dict[str, RegisteredRegularizer]) -> str:
    """The message for a name that is not registered."""
    return f"unknown regularizer {name!r}; available: {', '.join(sorted(regs)) or 'none'}"


def lookup(name: str) -> RegisteredRegularizer:
    """The registered regularizer ``name``; ``ValueError`` naming the available ones otherwise."""
    regs = registry()
    if name not in regs:
        raise ValueError(unknown_regularizer(name, regs))
    return regs[name]


def get_regularizer(name: str) -> Callable[..., Any]:
    """The callable registered under ``name``; ``KeyError`` naming the available ones otherwise."""
    regs = registry()
    if name not in regs:
        raise KeyError(unknown_regularizer(name, regs))
    return regs[name].fn


__getattr__ = renamed(globals(), {"Regularizer": "RegisteredRegularizer"})
