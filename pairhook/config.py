"""The install config file (YAML) and how its keys combine with ``install()``'s arguments.

An argument given to ``install()`` wins over the config's key, which wins over the default. Whether an argument
was given is told by the :data:`UNSET` sentinel, never by comparing with the default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import yaml

CONFIG_KEYS = ("regularizers", "pairs", "match_iou", "strict_pairs")
DEFAULTS: dict[str, Any] = {"regularizers": "pair_consistency", "pairs": None, "match_iou": 0.5, "strict_pairs": False}


class _Unset:
    """The type of :data:`UNSET`."""

    def __repr__(self) -> str:
        return "UNSET"


#: An ``install()`` argument the caller did not give.
UNSET: Any = _Unset()


def split_names(text: str) -> list[str]:
    """``"a, b"`` -> ``["a", "b"]``: the comma-separated form of a list of names (regularizers, splits)."""
    return [name.strip() for name in text.split(",") if name.strip()]


def read_config(path: Union[str, Path]) -> dict[str, Any]:
    """Read an install config YAML (keys: :data:`CONFIG_KEYS`) with ``yaml.safe_load``.

    A relative ``pairs`` path is relative to the config file.
    """
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"cannot read pairhook config {path}: {e}") from e
    if not isinstance(cfg, dict):
        raise ValueError(f"pairhook config {path}: expected a mapping at the top level, got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"pairhook config {path}: unknown keys {unknown}; expected some of {sorted(CONFIG_KEYS)}")
    if cfg.get("pairs") is not None and not isinstance(cfg["pairs"], str):
        raise ValueError(f"pairhook config {path}: 'pairs' must be a path, got {cfg['pairs']!r}")
    if cfg.get("pairs") is not None:
        cfg["pairs"] = str((path.parent / cfg["pairs"]).resolve())
    return cfg


def resolve(config: Optional[Union[str, Path]], **given: Any) -> dict[str, Any]:
    """The value of each of :data:`CONFIG_KEYS`: given (not :data:`UNSET`), else the config's, else the default."""
    cfg = read_config(config) if config is not None else {}
    return {key: given[key] if given.get(key, UNSET) is not UNSET else cfg.get(key, DEFAULTS[key])
            for key in CONFIG_KEYS}
