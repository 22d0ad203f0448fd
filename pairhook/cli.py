"""The ``pairhook`` command: Ultralytics-style ``key=value`` arguments, e.g. ``pairhook demo epochs=3``.

Values are read with ``yaml.safe_load`` (``3`` -> 3, ``true`` -> True, ``null`` -> None) and checked against the
key's type. Ultralytics runs offline (see :mod:`pairhook.offline`) unless ``PAIRHOOK_ONLINE=1``.
Exit codes: 0 success, 1 the command failed (bad data, pair file, ...; ``PAIRHOOK_DEBUG=1`` shows the traceback),
2 bad command line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from pairhook.config import DEFAULTS, UNSET

REQUIRED = object()  # default of a key that must be given


@dataclass(frozen=True)
class Command:
    """A subcommand: its function, its keys with defaults and types, and one line of help."""

    run: Callable[..., int]
    keys: dict[str, tuple[type, Any]]  # key -> (type, default or REQUIRED)
    help: str
    passthrough: str = ""  # names what takes every other key=value, e.g. "yolo train" (Ultralytics' parsing)

    def usage(self, name: str) -> str:
        keys = " ".join(f"{k}=<{t.__name__}>" if d is REQUIRED else f"[{k}={DEFAULTS.get(k) if d is UNSET else d}]"
                        for k, (t, d) in self.keys.items())
        more = f" [any {self.passthrough} key=value ...]" if self.passthrough else ""
        return f"usage: pairhook {name} {keys}{more}"


class UsageError(ValueError):
    """A bad command line (exit code 2)."""


def _value(text: str) -> Any:
    if text.strip().lstrip("+-").isdigit():
        return int(text)  # decimal: YAML 1.1 would read "010" as octal 8
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_args(args: Sequence[str], keys: dict[str, tuple[type, Any]]) -> dict[str, Any]:
    """``["epochs=3", "out=x"]`` -> ``{"epochs": 3, "out": "x", <other keys: defaults>}``; raises UsageError."""
    out = {k: d for k, (_, d) in keys.items()}
    for arg in args:
        key, sep, text = arg.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key:
            raise UsageError(f"expected key=value, got {arg!r}")
        if key not in keys:
            raise UsageError(f"unknown key {key!r}; valid keys: {', '.join(keys)}")
        typ, default = keys[key]
        value = _value(text)
        if value is None:
            if default is not None and default is not UNSET:
                raise UsageError(f"{key} needs a value, got {arg!r}")
        elif typ is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise UsageError(f"{key} must be an integer, got {text!r}")
        elif typ is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UsageError(f"{key} must be a number, got {text!r}")
            value = float(value)
        elif typ is str:
            if isinstance(value, (dict, list)):
                raise UsageError(f"{key} must be a string, got {text!r}")
            value = text.strip()  # keep what was typed: "out=007" stays "007", "model=1.0" stays "1.0"
        out[key] = value
    missing = [k for k, v in out.items() if v is REQUIRED]
    if missing:
        raise UsageError(f"missing {', '.join(f'{k}=...' for k in missing)}")
    return out


def cmd_demo(**kw: Any) -> int:
    from pairhook import demo

    demo.run_demo(**kw)
    return 0


def cmd_inspect(**kw: Any) -> int:
    from pairhook import inspection

    result = inspection.inspect_batches(**kw)
    print(f"pairhook inspect: {result.images} images, {result.boxes} GT boxes, {result.pairs} pairs "
          f"({result.active_pairs} with anchors on both members)")
    for path in result.paths:
        print(path)
    return 0


def plugins_table() -> str:
    """The registered regularizers, one row each: name, loss item, where it comes from, options with defaults."""
    import inspect

    from pairhook.plugins import registry
    from pairhook.tables import format_table

    def option(name: str, default: Any) -> str:
        return f"{name}=<required>" if default is inspect.Parameter.empty else f"{name}={default!r}"

    rows = [(r.name, r.loss_name, r.source, " ".join(option(k, d) for k, d in {"weight": 1.0, **r.options}.items()))
            for r in sorted(registry().values(), key=lambda r: r.name)]
    return format_table(("name", "loss item", "source", "options"), rows, align="<<<<")


def cmd_plugins() -> int:
    print(plugins_table())
    return 0


def cmd_evaluate(**kw: Any) -> int:
    from pairhook.demo import format_table
    from pairhook.evaluate import evaluate

    result = evaluate(**kw)
    print(format_table({str(kw["model"]): result}))
    return 0


def cmd_discover(**kw: Any) -> int:
    from pairhook.pairs.discover import discover_to_file

    result = discover_to_file(**kw)
    print(f"pairhook discover: {result.summary()}\nwrote {kw['out']}")
    return 0


def cmd_train(model: str, data: str, pairs: str | None = None, regularizers: str | None = UNSET,
              config: str | None = None, **train_kwargs: Any) -> int:
    """``yolo train`` with pairhook installed; ``regularizers``: a name or comma-separated names (null: none)."""
    from ultralytics import YOLO

    from pairhook.installation import install

    yolo = YOLO(model)
    install(yolo, pairs=pairs, regularizers=regularizers, config=config)
    yolo.train(data=data, **train_kwargs)
    print(f"pairhook train: results in {yolo.trainer.save_dir}")
    return 0


def keys_of(fn: Callable[..., Any]) -> dict[str, tuple[type, Any]]:
    """The command-line keys of a function: its named parameters, typed by their defaults (int, float, else str;
    float also when the annotation names it, for ``x: float | None = None``)."""
    import inspect

    keys = {}
    for name, p in inspect.signature(fn).parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = REQUIRED if p.default is p.empty else p.default
        is_int = isinstance(default, int) and not isinstance(default, bool)
        is_float = isinstance(default, float) or "float" in str(p.annotation)
        is_map = "dict" in str(p.annotation)  # e.g. ``space: str | dict``: inline YAML mappings pass as they are
        typ = float if is_float else int if is_int else dict if is_map else str
        keys[name] = (typ, str(default) if isinstance(default, Path) else default)
    return keys


def join_flags(args: Sequence[str]) -> list[str]:
    """``["--data", "d.yaml", "epochs=3"]`` -> ``["data=d.yaml", "epochs=3"]`` (``--key value`` also accepted)."""
    out, rest = [], iter(args)
    for arg in rest:
        if arg.startswith("--") and "=" not in arg:
            value = next(rest, None)
            if value is None or value.startswith("--"):
                raise UsageError(f"{arg} needs a value")
            arg = f"{arg[2:]}={value}"
        out.append(arg)
    return out


def parse_passthrough(args: Sequence[str], keys: dict[str, tuple[type, Any]]) -> dict[str, Any]:
    """pairhook's own ``keys`` as :func:`parse_args` reads them, every other key checked against and read like
    Ultralytics' ``yolo`` command (``ultralytics.cfg.smart_value``; ``null`` is None too)."""
    from difflib import get_close_matches

    from ultralytics.cfg import smart_value
    from ultralytics.utils import DEFAULT_CFG_DICT

    own, other = [], {}
    for arg in args:
        key, sep, text = arg.partition("=")
        key = key.strip().lstrip("-")
        if key in keys or not sep:
            own.append(arg)
        elif key not in DEFAULT_CFG_DICT:
            similar = get_close_matches(key, [*keys, *DEFAULT_CFG_DICT])
            raise UsageError(f"unknown key {key!r}" + (f"; did you mean {', '.join(similar)}?" if similar else ""))
        else:
            other[key] = None if text.strip().lower() == "null" else smart_value(text.strip())
    return {**parse_args(own, keys), **other}


def _commands() -> dict[str, Command]:
    from pairhook.demo import run_demo
    from pairhook.evaluate import evaluate
    from pairhook.inspection import inspect_batches
    from pairhook.pairs.discover import discover_to_file
    from pairhook.tune.cli import cmd_tune

    return {
        "demo": Command(cmd_demo, keys_of(run_demo),
                        "train a YOLO on generated paired defects without and with a pair regularizer, compare them"),
        "inspect": Command(cmd_inspect, keys_of(inspect_batches),
                           "draw augmented training batches with GT boxes, pairs and each member's anchors to PNG"),
        "plugins": Command(cmd_plugins, {}, "list registered regularizers: loss item, source, options with defaults"),
        "train": Command(cmd_train, keys_of(cmd_train),
                         "yolo train with pairhook installed: pairs, regularizers (comma-separated), config",
                         passthrough="yolo train"),
        "evaluate": Command(cmd_evaluate, keys_of(evaluate),
                            "validate a trained model: mAP and pair metrics (both detected, class agree, conf gap)",
                            passthrough="yolo val"),
        "discover": Command(cmd_discover, keys_of(discover_to_file),
                            "propose a pair file from the labels alone (same class/size/column, one vertical shift)"),
        "tune": Command(cmd_tune, keys_of(cmd_tune),
                        "search yolo train arguments and regularizer options, pairhook in every trial (local or Ray)",
                        passthrough="yolo train"),
    }


COMMANDS: dict[str, Command] = _commands()


def usage() -> str:
    lines = ["usage: pairhook <command> [key=value ...]", "", "commands:"]
    for name, cmd in COMMANDS.items():
        lines += [f"  {name:<8} {cmd.help}", f"           {cmd.usage(name)[len('usage: '):]}"]
    lines += ["  help     show this message (also: pairhook <command> help)", "",
              "examples:", "  pairhook demo epochs=3", "  pairhook inspect data=data.yaml pairs=pairs.json batches=1",
              "  pairhook discover data=data.yaml out=pairs.json",
              "  pairhook train model=yolov8n.yaml data=data.yaml pairs=pairs.json epochs=50 imgsz=640",
              "  pairhook evaluate model=runs/detect/train/weights/best.pt data=data.yaml pairs=pairs.json",
              "  pairhook tune model=yolov8n.yaml data=data.yaml pairs=pairs.json iterations=4 epochs=3 "
              "space=\"{lr0: [0.001, 0.02], pair_consistency.weight: [0.1, 4.0]}\"",
              "", "Ultralytics runs offline unless PAIRHOOK_ONLINE=1; PAIRHOOK_DEBUG=1 shows tracebacks."]
    return "\n".join(lines)


def _offline() -> None:
    """Ultralytics' offline switches, before it is imported (an embedding process that imported it decides)."""
    if os.environ.get("PAIRHOOK_ONLINE", "").strip().lower() in ("1", "true", "yes") or "ultralytics" in sys.modules:
        return
    from pairhook.offline import setup_offline

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pairhook" / "ultralytics"
    setup_offline(os.environ.get("YOLO_CONFIG_DIR") or cache)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``pairhook`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("help", "-h", "--help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    cmd = COMMANDS.get(name)
    if cmd is None:
        print(f"pairhook: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    if any(a in ("help", "-h", "--help") for a in rest):
        print(f"{cmd.help}\n{cmd.usage(name)}")
        return 0
    _offline()  # before parsing: a passthrough command reads Ultralytics' own keys
    try:
        rest = join_flags(rest)
        kwargs = parse_passthrough(rest, cmd.keys) if cmd.passthrough else parse_args(rest, cmd.keys)
    except UsageError as e:
        print(f"pairhook {name}: {e}\n{cmd.usage(name)}", file=sys.stderr)
        return 2
    try:
        return cmd.run(**kwargs)
    except (ValueError, OSError, RuntimeError) as e:  # bad data YAML, pair file, regularizer name, ...
        if os.environ.get("PAIRHOOK_DEBUG", "").strip() not in ("", "0"):
            raise
        print(f"pairhook {name}: error: {e}\n(PAIRHOOK_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
