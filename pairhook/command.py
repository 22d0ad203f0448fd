"""A ``pairhook`` command: its function, keys, help, and how it reads its command line.

The help of pairhook's own keys is the function's ``Args:`` docstring section (:func:`key_docs`), so the command line
and the Python API say the same; the keys of Ultralytics' mode are left to ``yolo help`` and ``yolo cfg``.
"""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from pairhook.arguments import REQUIRED, Keys, parse_args, parse_mode_args
from pairhook.config import DEFAULTS, UNSET

WIDTH = 110  # help text columns
ULTRALYTICS_KEYS = ("Every other key is a 'yolo {mode}' key ({examples}), read and checked as 'yolo' reads it; "
                    "'yolo help' explains the command line, 'yolo cfg' lists every key with its default. "
                    "cfg=file.yaml reads keys of both kinds from a YAML file (the command line wins). "
                    "Runs are saved where 'yolo {mode}' saves them: project=/name=, under the runs_dir of "
                    "'pairhook settings'.")


@dataclass(frozen=True)
class Command:
    """A subcommand: its function, its keys with defaults and types, their help, and one line of help."""

    run: Callable[..., int]
    keys: Keys
    help: str
    docs: dict[str, str] = field(default_factory=dict)  # key -> meaning
    mode: Optional[str] = None  # the Ultralytics mode whose keys it also takes ("train", "val"; e.g. "tune" later)
    aliases: dict[str, str] = field(default_factory=dict)  # deprecated key -> its name now
    offline: bool = False  # offline unless the environment says otherwise
    examples: str = ""  # a few of the mode's keys, for the help

    def usage(self, name: str) -> str:
        def key(k: str, typ: type, d: Any) -> str:
            return f"{k}=<{'value' if typ is object else typ.__name__}>" if d is REQUIRED else \
                f"[{k}={DEFAULTS.get(k) if d is UNSET else d}]"

        keys = " ".join(key(k, t, d) for k, (t, d) in self.keys.items())
        if self.mode:
            return f"usage: pairhook [task] {name} {keys} [cfg=file.yaml] [any 'yolo {self.mode}' key=value ...]"
        return f"usage: pairhook {name} {keys}".rstrip()

    def help_text(self, name: str) -> str:
        usage = textwrap.wrap(self.usage(name), WIDTH, subsequent_indent=" " * 8)
        lines = [f"pairhook {name}: {self.help}", "", *usage]
        if self.keys:
            lines += ["", "pairhook's keys:", *describe_keys(self.keys, self.docs, DEFAULTS)]
        if self.mode:
            lines += ["", *textwrap.wrap(ULTRALYTICS_KEYS.format(mode=self.mode, examples=self.examples), WIDTH),
                      f"The task word (detect, segment, pose, obb, ...) is optional, as in 'yolo <task> {self.mode}'."]
        lines += [""] * bool(self.aliases) + [f"{old}= is the former name of {new}= (deprecated)."
                                               for old, new in self.aliases.items()]
        return "\n".join(lines)

    def parse(self, name: str, args: Sequence[str]) -> dict[str, Any]:
        args = [self._alias(name, a) for a in args]
        if self.mode:
            own, ultralytics = parse_mode_args(args, self.keys, self.mode)
            return {**own, **ultralytics}
        return parse_args(args, self.keys)

    def _alias(self, name: str, arg: str) -> str:
        key, sep, rest = arg.lstrip("-").partition("=")
        if key.strip() in self.aliases:
            new = self.aliases[key.strip()]
            print(f"pairhook {name}: {key.strip()}= is deprecated, use {new}=", file=sys.stderr)
            return f"{new}{sep}{rest}"
        return arg


def key_docs(fn: Callable[..., Any]) -> dict[str, str]:
    """``{parameter: its description}`` from the ``Args:`` section of ``fn``'s docstring (``a, b: text`` documents
    both; continuation lines are joined)."""
    docs: dict[str, str] = {}
    lines = inspect.getdoc(fn).splitlines() if fn.__doc__ else []
    start = next((i + 1 for i, line in enumerate(lines) if line.strip() == "Args:"), len(lines))
    names: list[str] = []
    for line in lines[start:]:
        if line.strip() and not line.startswith(" "):
            break  # the next section (Returns:, Raises:, ...)
        m = re.match(r"^ {2,4}(\w+(?:, \w+)*): (.*)$", line)
        if m:
            names = m.group(1).split(", ")
            for name in names:
                docs[name] = m.group(2).strip()
        elif line.strip():
            for name in names:
                docs[name] += " " + line.strip()
    return {k: v.replace("``", "") for k, v in docs.items()}


def describe_keys(keys: Keys, docs: dict[str, str], shown_defaults: dict[str, Any]) -> list[str]:
    """One help line per own key: ``key=default`` (``<required>``) and its meaning."""
    def default(key: str, d: Any) -> str:
        return "<required>" if d is REQUIRED else str(shown_defaults.get(key) if d is UNSET else d)

    cells = [(f"{k}={default(k, d)}", docs.get(k, "")) for k, (_, d) in keys.items()]
    width = min(max((len(c) for c, _ in cells), default=0), 32)
    lines = []
    for cell, text in cells:
        first, *rest = textwrap.wrap(text, WIDTH - width - 4) or [""]
        lines += [f"  {cell:<{width}}  {first}".rstrip() if len(cell) <= width else f"  {cell}",
                  *([] if len(cell) <= width else [" " * (width + 4) + first]), *(" " * (width + 4) + r for r in rest)]
    return lines
