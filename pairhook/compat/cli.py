"""Ultralytics' command line by release: the words and keys ``yolo`` accepts, its ``cfg=`` files and its settings.

pairhook's command reuses ``ultralytics.cfg``'s own helpers (the same names from 8.1.47 to 8.4): what differs is
smoothed over here. Every function imports Ultralytics when called, so the offline switches can be set first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

#: Bare words that set a key to True although its default is not a bool (8.4's ``yolo export ... half``).
BARE_FLAGS = ("half", "int8", "end2end", "nms")


def cfg_defaults() -> dict[str, Any]:
    """Every key ``yolo`` accepts, with its default (``ultralytics/cfg/default.yaml``)."""
    from ultralytics.utils import DEFAULT_CFG_DICT

    return dict(DEFAULT_CFG_DICT)


def tasks() -> tuple[str, ...]:
    """The task words (``detect``, ``segment``, ...): a set, frozenset or tuple by release, here in a fixed order."""
    from ultralytics.cfg import TASKS

    return tuple(sorted(TASKS))


def modes() -> tuple[str, ...]:
    from ultralytics.cfg import MODES

    return tuple(sorted(MODES))


def merge_equals(args: Sequence[str]) -> list[str]:
    """``["epochs", "=", "3"]`` -> ``["epochs=3"]`` (and ``epochs= 3``, ``epochs =3``; 8.4 also joins ``[..]``
    fragments). Raises ``ValueError`` for an unmatched bracket (8.4's ``SyntaxError``)."""
    from ultralytics.cfg import merge_equals_args

    try:
        return merge_equals_args(list(args))  # a copy: 8.1 deletes items from its argument
    except SyntaxError as e:
        raise ValueError(str(e)) from None


def _literal(text: str) -> Any:
    import ast

    low = text.lower()
    if low in ("none", "true", "false"):
        return {"none": None, "true": True, "false": False}[low]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def smart_value(text: str) -> Any:
    """A ``yolo`` value: ``3`` -> 3, ``0.01`` -> 0.01, ``True``/``none`` (any case), ``[640, 480]``; else the text.

    Ultralytics' ``smart_value`` where it reads literals only (8.3 on); 8.1 and 8.2 run the text as Python
    (``name=exit`` gave the ``exit`` builtin), so there the same rules are applied without ``eval``.
    """
    from ultralytics.cfg import smart_value as ultralytics_smart_value

    if ultralytics_smart_value("print") != "print":  # a bare name must stay text (8.1, 8.2: a builtin)
        return _literal(text)
    return ultralytics_smart_value(text)


def check_values(args: dict[str, Any]) -> None:
    """Ultralytics' own type and range check of ``yolo`` keys (``TypeError``/``ValueError`` with its message)."""
    from ultralytics.cfg import check_cfg

    check_cfg(dict(args), hard=True)


def read_cfg_file(text: str) -> tuple[Path, dict[str, Any]]:
    """The file of ``cfg=<file>``, found as ``yolo`` finds it (``check_yaml``: ``FileNotFoundError`` if absent),
    read with ``yaml.safe_load``; ``ValueError`` unless it holds a mapping."""
    from ultralytics.utils.checks import check_yaml

    path = Path(check_yaml(text))
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"cfg={text}: expected a mapping of key: value, got {type(data).__name__}")
    return path, data


def settings_command(args: Sequence[str]) -> None:
    """``yolo settings [reset | key=value ...]``: the same function, so the same file, output and checks."""
    from ultralytics.cfg import handle_yolo_settings

    handle_yolo_settings(merge_equals(args))


def print_default_cfg() -> None:
    """``yolo cfg``: print Ultralytics' default arguments (``yaml_print`` up to 8.2, ``YAML.print`` from 8.3)."""
    from ultralytics.utils import DEFAULT_CFG_PATH

    try:
        from ultralytics.utils import YAML

        YAML.print(DEFAULT_CFG_PATH)
    except ImportError:
        from ultralytics.utils import yaml_print

        yaml_print(DEFAULT_CFG_PATH)
