"""The ``pairhook`` command: ``pairhook <command> key=value ...``, read the way ``yolo`` reads its arguments.

``train`` and ``evaluate`` take pairhook's keys and every key of ``yolo train`` / ``yolo val``, ``cfg=`` files and
an optional task word (see :mod:`pairhook.arguments`); ``demo``, ``inspect``, ``discover`` and ``plugins`` take
their own keys; ``version``, ``settings`` (Ultralytics' settings, as ``yolo settings``), ``cfg`` and ``help`` are
words. Ultralytics is used as ``yolo`` uses it: the same settings file and ``runs_dir``, online or offline as it
decides, unless ``PAIRHOOK_OFFLINE=1`` or ``YOLO_OFFLINE`` asks for offline (see :mod:`pairhook.offline`;
``pairhook demo`` defaults to offline, ``PAIRHOOK_OFFLINE=0`` turns that off).
Exit codes: 0 success, 1 the command failed (bad data, pair file, ...; ``PAIRHOOK_DEBUG=1`` shows the traceback),
2 bad command line.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Callable, Optional, Union

from pairhook.arguments import REQUIRED, UsageError, keys_of
from pairhook.command import Command, key_docs
from pairhook.config import UNSET

__all__ = ["COMMANDS", "REQUIRED", "Command", "UsageError", "main", "usage"]

WORDS = ("help", "version", "settings", "cfg")  # commands without keys, as `yolo help|version|settings|cfg`


def cmd_demo(**kw: Any) -> int:
    from pairhook import demo

    demo.run_demo(**kw)
    return 0


def cmd_inspect(**kw: Any) -> int:
    from pairhook import batch_drawings

    result = batch_drawings.inspect_batches(**kw)
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
    from pairhook.comparison import comparison_rows
    from pairhook.evaluation import run_evaluation
    from pairhook.tables import format_table

    result = run_evaluation(**kw)
    print(format_table(*comparison_rows({str(kw["model"]): result.metrics})))
    print(f"pairhook evaluate: results in {result.save_dir.resolve()}")
    return 0


def cmd_discover(**kw: Any) -> int:
    from pairhook.pairs.discover import discover_to_file

    result = discover_to_file(**kw)
    print(f"pairhook discover: {result.summary()}\nwrote {kw['out']}")
    return 0


def cmd_train(model: str, data: Optional[str] = None, pairs: Optional[str] = None,
              regularizers: Union[str, list, dict, None] = UNSET, config: Optional[str] = None,
              strict_pairs: Optional[bool] = None, **train_kwargs: Any) -> int:
    """``yolo train`` with pairhook installed.

    Args:
        model: the model to train: a model YAML (from scratch, e.g. yolov8n.yaml) or weights (yolov8n.pt, last.pt).
        data: the data YAML (only resume=True goes without).
        pairs: the pair file; None uses the data YAML's pairs: key.
        regularizers: a name, comma-separated names, a list, or a mapping {name: {weight: w, option: value}};
            null for none (the pair metrics are still logged). Unset: the config's, else pair_consistency.
        config: a pairhook config YAML with keys regularizers, pairs, match_iou, strict_pairs (the keys above win).
        strict_pairs: true: stop before training where pairs would be lost (a split with no pair matched, more
            than 10% skipped, a key that is a file name shared by different images); unset: the config's, else false.
    """
    from ultralytics import YOLO

    from pairhook.installation import install

    if data is None and not train_kwargs.get("resume"):
        raise UsageError("missing data=... (only resume=True goes without)")
    yolo = YOLO(model, task=train_kwargs.pop("task", None))
    install(yolo, pairs=pairs, regularizers=regularizers, config=config, strict_pairs=strict_pairs)
    yolo.train(**({"data": data} if data is not None else {}), **train_kwargs)
    print(f"pairhook train: results in {Path(yolo.trainer.save_dir).resolve()}")
    return 0


def _commands() -> dict[str, Command]:
    from pairhook.batch_drawings import inspect_batches
    from pairhook.demo import run_demo
    from pairhook.evaluation import evaluate
    from pairhook.pairs.discover import discover_to_file
    from pairhook.tuning.cli import cmd_tune

    def command(run: Callable[..., int], fn: Callable[..., Any], text: str, **kw: Any) -> Command:
        return Command(run, keys_of(fn), text, key_docs(fn), **kw)

    return {
        "demo": command(cmd_demo, run_demo, "train a YOLO on generated paired defects without and with pair "
                        "regularizers, compare them", aliases={"regularizer": "regularizers"}, offline=True),
        "inspect": command(cmd_inspect, inspect_batches, "draw augmented training batches with GT boxes, pairs and "
                           "each member's anchors to PNG"),
        "plugins": command(cmd_plugins, cmd_plugins, "list registered regularizers: loss item, source, options"),
        "train": command(cmd_train, cmd_train, "yolo train with pairhook installed: pairs, regularizers, config",
                         mode="train", examples="epochs=, imgsz=, batch=, device=, project=, name=, resume=, ..."),
        "evaluate": command(cmd_evaluate, evaluate, "validate a trained model: mAP and pair metrics (both "
                            "detected, class agree, conf gap)", mode="val",
                            examples="imgsz=, batch=, split=, conf=, device=, project=, name=, ..."),
        "discover": command(cmd_discover, discover_to_file, "propose a pair file from the labels alone (same "
                            "class/size/column, one vertical shift)"),
        "tune": command(cmd_tune, cmd_tune, "search yolo train arguments and regularizer options together, pairhook "
                        "in every trial (local or Ray Tune)", mode="train",
                        examples="epochs=, imgsz=, batch=, device=, ... (fixed in every trial)"),
    }


COMMANDS: dict[str, Command] = _commands()


def usage() -> str:
    lines = ["usage: pairhook <command> [key=value ...]", "", "commands:"]
    for name, cmd in COMMANDS.items():
        lines += [f"  {name:<9} {cmd.help}"]
    lines += ["  settings  Ultralytics' settings, as 'yolo settings' shows and changes them ([reset | key=value])",
              "  cfg       Ultralytics' default arguments, as 'yolo cfg'",
              "  version   pairhook's and Ultralytics' versions (also --version)",
              "  help      this message; 'pairhook <command> help' lists a command's keys", "",
              "examples:", "  pairhook demo epochs=3", "  pairhook inspect data=data.yaml pairs=pairs.json batches=1",
              "  pairhook discover data=data.yaml out=pairs.json",
              "  pairhook train model=yolov8n.yaml data=data.yaml pairs=pairs.json epochs=50 imgsz=640",
              "  pairhook detect train cfg=run.yaml epochs=3",
              "  pairhook evaluate model=runs/detect/train/weights/best.pt data=data.yaml pairs=pairs.json",
              "  pairhook tune model=yolov8n.yaml data=data.yaml pairs=pairs.json iterations=4 epochs=3 "
              "space=\"{lr0: [0.001, 0.02], pair_consistency.weight: [0.1, 4.0]}\"", "",
              "Ultralytics runs as 'yolo' runs it (your settings, online or not as it decides); PAIRHOOK_OFFLINE=1",
              "keeps it offline. PAIRHOOK_DEBUG=1 shows tracebacks."]
    return "\n".join(lines)


def version() -> str:
    import platform
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    from pairhook import __version__

    try:
        ultralytics = dist_version("ultralytics")
    except PackageNotFoundError:
        ultralytics = "not installed"
    return f"pairhook {__version__} (ultralytics {ultralytics}, Python {platform.python_version()})"


def _word(arg: str) -> Optional[str]:
    """``help``/``-h``/``--help``, ``version``/``-v``/``--version``, ``settings``, ``cfg`` -> the word."""
    word = arg.lower().lstrip("-")
    word = {"h": "help", "v": "version"}.get(word, word) if arg.startswith("-") else word
    return word if word in WORDS else None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``pairhook`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    word = _word(args[0]) if args else "help"
    if word == "help":
        cmd = COMMANDS.get(args[1]) if len(args) > 1 else None
        print(cmd.help_text(args[1]) if cmd else usage())
        return 0
    if word == "version":
        print(version())
        return 0
    name, rest = args[0], args[1:]
    if word is None and name not in COMMANDS and rest and rest[0] in COMMANDS and "=" not in name:
        name, rest = rest[0], [name, *rest[1:]]  # `pairhook detect train ...` as `yolo detect train ...`
    cmd = COMMANDS.get(name)
    if word is None and cmd is None:
        similar = get_close_matches(name, [*COMMANDS, *WORDS])
        hint = f"; did you mean {', '.join(similar)}?" if similar else ""
        print(f"pairhook: unknown command {name!r}{hint}\n\n{usage()}", file=sys.stderr)
        return 2
    if cmd is not None and any(_word(a) == "help" for a in rest):
        print(cmd.help_text(name))
        return 0

    from pairhook import offline

    is_offline = offline.offline_requested(default=cmd.offline if cmd else False)
    if is_offline and "ultralytics" not in sys.modules:
        offline.offline_switches()  # this process only: no settings file is written
    from pairhook import compat

    if word == "settings":
        compat.settings_command(rest)
        return 0
    if word == "cfg":
        compat.print_default_cfg()
        return 0
    assert cmd is not None
    try:
        kwargs = cmd.parse(name, rest)
        with compat.local_fonts() if is_offline else contextlib.nullcontext():
            return cmd.run(**kwargs)
    except UsageError as e:
        print(f"pairhook {name}: {e}\n{cmd.usage(name)}\n('pairhook {name} help' lists the keys)", file=sys.stderr)
        return 2
    except (ValueError, OSError, RuntimeError) as e:  # bad data YAML, pair file, regularizer name, ...
        if os.environ.get("PAIRHOOK_DEBUG", "").strip() not in ("", "0"):
            raise
        print(f"pairhook {name}: error: {e}\n(PAIRHOOK_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
