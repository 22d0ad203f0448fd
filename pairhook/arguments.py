"""The ``pairhook`` command line's keys and values: ``key=value`` and ``yolo``-style parsing.

pairhook's own keys are a function's parameters (:func:`keys_of`), typed by their defaults. A command that runs an
Ultralytics mode (``train``, ``evaluate`` = ``val``, and any later one such as ``tune``) also takes every key that
``yolo`` takes, parsed the way ``yolo`` parses them (:func:`parse_mode_args`); the others take only their own keys
(:func:`parse_args`). :mod:`pairhook.command` describes a command and its help.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from pairhook import compat
from pairhook.config import UNSET

REQUIRED = object()  # default of a key that must be given
Keys = dict[str, tuple[type, Any]]  # key -> (type, default or REQUIRED); type object: any YAML value


class UsageError(ValueError):
    """A bad command line (exit code 2)."""


def keys_of(fn: Callable[..., Any]) -> Keys:
    """The command-line keys of a function: its named parameters, typed by their defaults (int, float, else str;
    float also when the annotation names it, for ``x: float | None = None``; any YAML value when the annotation
    names ``dict``, as for ``regularizers``)."""
    keys = {}
    for name, p in inspect.signature(fn).parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = REQUIRED if p.default is p.empty else p.default
        is_int = isinstance(default, int) and not isinstance(default, bool)
        is_float = isinstance(default, float) or "float" in str(p.annotation)
        is_bool = isinstance(default, bool) or "bool" in str(p.annotation)
        typ = (object if "dict" in str(p.annotation) else bool if is_bool else float if is_float else int if is_int
               else str)
        keys[name] = (typ, str(default) if isinstance(default, Path) else default)
    return keys


def _value(text: str) -> Any:
    if text.strip().lstrip("+-").isdigit():
        return int(text)  # decimal: YAML 1.1 would read "010" as octal 8
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def typed(key: str, value: Any, keys: Keys, text: Optional[str] = None) -> Any:
    """``value`` (read from ``text`` as typed, or from a cfg file) checked against the type of own key ``key``."""
    typ, default = keys[key]
    shown = repr(text if text is not None else value)
    if value is None:
        if default is not None and default is not UNSET:
            raise UsageError(f"{key} needs a value, got {key}={'' if text is None else text}")
    elif typ is bool and not isinstance(value, bool):
        raise UsageError(f"{key} must be true or false, got {shown}")
    elif typ is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise UsageError(f"{key} must be an integer, got {shown}")
    elif typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{key} must be a number, got {shown}")
        value = float(value)
    elif typ is str:
        if isinstance(value, (dict, list)):
            raise UsageError(f"{key} must be a string, got {shown}")
        value = text.strip() if text is not None else str(value)  # "out=007" stays "007", "model=1.0" "1.0"
    return value


def _missing(out: dict[str, Any]) -> None:
    missing = [k for k, v in out.items() if v is REQUIRED]
    if missing:
        raise UsageError(f"missing {', '.join(f'{k}=...' for k in missing)}")


def unknown(key: str, candidates: Iterable[str], defaults: Optional[dict[str, Any]] = None) -> UsageError:
    """``unknown key 'epoch'; did you mean epochs?`` (``difflib``; Ultralytics keys shown with their default)."""
    similar = get_close_matches(key, sorted(set(candidates)))
    shown = [f"{k}={defaults[k]}" if defaults and k in defaults else k for k in similar]
    return UsageError(f"unknown key {key!r}" + (f"; did you mean {', '.join(shown)}?" if similar else ""))


def join_flags(args: Sequence[str]) -> list[str]:
    """``--key value`` -> ``key=value`` and ``--key=value`` -> ``key=value`` (``yolo`` takes plain ``key=value``;
    a ``--word`` followed by another ``key=value`` or flag stays a bare word, e.g. ``--cos_lr``)."""
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--") and "=" not in arg and i + 1 < len(args) and "=" not in args[i + 1] \
                and not args[i + 1].startswith("-"):
            out.append(f"{arg[2:]}={args[i + 1]}")
            i += 2
            continue
        out.append(arg[2:] if arg.startswith("--") else arg)
        i += 1
    return out


def _split(arg: str) -> tuple[str, str]:
    """``key=value`` -> ``(key, value)`` (spaces stripped, a trailing comma dropped as ``yolo`` does)."""
    key, _, text = arg.partition("=")
    key, text = key.strip(), text.strip()
    if text.endswith(",") and len(text) > 1 and not text.startswith("["):
        text = text[:-1]
    if not key:
        raise UsageError(f"expected key=value, got {arg!r}")
    return key, text


def parse_args(args: Sequence[str], keys: Keys) -> dict[str, Any]:
    """A command with its own keys only: ``["epochs=3", "out = x"]`` -> ``{"epochs": 3, "out": "x", <other keys:
    defaults>}``; raises UsageError."""
    out = {k: d for k, (_, d) in keys.items()}
    for arg in compat.merge_equals(join_flags(args)) if args else []:
        if "=" not in arg:
            raise UsageError(f"{arg!r} needs a value, e.g. {arg}=..." if arg in keys else
                             f"expected key=value, got {arg!r}")
        key, text = _split(arg)
        if key not in keys:
            raise unknown(key, keys)
        out[key] = typed(key, _value(text), keys, text)
    _missing(out)
    return out


def parse_mode_args(args: Sequence[str], keys: Keys, mode: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``yolo <task> <mode> ...``'s arguments as a pairhook command for that mode reads them: ``(own, ultralytics)``.

    * pairhook's ``keys`` as :func:`parse_args` types them; every other key must be one ``yolo`` takes, and is read
      like ``yolo`` reads it (``smart_value``; ``name``/``project`` verbatim; ``null`` is None too) and checked with
      Ultralytics' own type and range checks;
    * ``key = value`` with spaces, ``--key value``, a trailing comma; a bare ``yolo`` bool key means True;
    * an optional task word (``detect``, ``segment``, ...) or ``task=``, returned in ``ultralytics["task"]``; the
      mode word ``mode`` itself is accepted (``pairhook train train``), another mode is an error;
    * ``cfg=file.yaml``: keys from a YAML file, pairhook's and Ultralytics' alike (its ``mode``, if any, is
      ignored: the command decides); the command line wins wherever ``cfg=`` stands.
    """
    defaults = compat.cfg_defaults()
    tasks, modes = compat.tasks(), compat.modes()
    known = [*keys, *defaults, "cfg"]
    try:
        merged = compat.merge_equals(join_flags(args))
    except ValueError as e:
        raise UsageError(str(e)) from None
    own: dict[str, Any] = {}
    ultra: dict[str, Any] = {}
    from_file: dict[str, Any] = {}
    for arg in merged:
        if "=" in arg:
            key, text = _split(arg)
            if not text:
                raise UsageError(f"missing {key!r} value")
            if key == "cfg":
                from_file.update(_cfg_file(text, keys, defaults))
            elif key in keys:
                own[key] = typed(key, _value(text), keys, text)
            elif key in defaults:
                verbatim = key in ("name", "project") and text.lower() not in ("none", "null")
                ultra[key] = text if verbatim else None if text.lower() == "null" else compat.smart_value(text)
            else:
                raise unknown(key, known, defaults)
        elif arg in tasks:
            ultra["task"] = arg
        elif arg == mode:
            continue
        elif arg in modes:
            raise UsageError(f"{arg!r} is another mode: this command runs {mode!r}")
        elif arg in defaults and (isinstance(defaults[arg], bool) or arg in compat.BARE_FLAGS):
            ultra[arg] = True  # yolo: a bare bool key sets it, e.g. `cos_lr`
        elif arg in defaults or arg in keys:
            example = defaults[arg] if arg in defaults else "..."
            raise UsageError(f"{arg!r} needs a value, e.g. {arg}={example}")
        else:
            raise unknown(arg, [*known, *tasks, mode], defaults)
    merged_own = {k: d for k, (_, d) in keys.items()}
    merged_own.update({k: v for k, v in from_file.items() if k in keys})
    merged_own.update(own)
    merged_ultra = {**{k: v for k, v in from_file.items() if k not in keys}, **ultra}
    _missing(merged_own)
    if merged_ultra.get("task") not in (None, *tasks):
        raise UsageError(f"invalid task {merged_ultra['task']!r}; valid tasks: {', '.join(tasks)}")
    try:
        compat.check_values(merged_ultra)
    except (TypeError, ValueError) as e:
        raise UsageError(str(e)) from None
    return merged_own, merged_ultra


def _cfg_file(text: str, keys: Keys, defaults: dict[str, Any]) -> dict[str, Any]:
    """The keys of a ``cfg=`` file (own keys type-checked; None means "not given", as in ``yolo copy-cfg``
    output)."""
    try:
        path, data = compat.read_cfg_file(text)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise UsageError(f"cfg={text}: {e}") from None
    out: dict[str, Any] = {}
    for key, value in data.items():
        key = str(key)
        if key in ("cfg", "mode"):
            continue
        if key in keys:
            if value is not None:
                out[key] = typed(key, value, keys)
        elif key in defaults:
            out[key] = value
        else:
            raise UsageError(f"cfg={path}: {unknown(key, [*keys, *defaults], defaults)}")
    return out
