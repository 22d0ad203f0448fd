"""The pair file: its two formats, their validation, and which file a run uses.

Users' format: ``{"img_001": [[[c,x,y,w,h], [c,x,y,w,h]], ...], ...}``, normalized xywh of the original image.
Index form: ``{"format": "pairhook-index", "pairs": {"img_001": [[row_a, row_b], ...]}}``. Anything malformed is a
:class:`PairsError` naming the file, the entry and the problem, before training starts.

A key names an image by its file name, with or without its extension (``img_001``, ``img_001.jpg``), or by its path
relative to the dataset's ``path`` (``images/train/a/img_001``), which tells apart images that share a file name.
Keys are kept in :func:`normalize_key` form.
"""

from __future__ import annotations

import gc
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


class PairsError(ValueError):
    """A pair file that cannot be used: names the file, the entry and what is wrong."""


@dataclass(frozen=True)
class PairFile:
    """A parsed pair file: per image basename, pairs as boxes ``((c,x,y,w,h), (c,x,y,w,h))`` or label rows."""

    path: Path
    boxes: dict[str, list[tuple[tuple[float, ...], tuple[float, ...]]]] = field(default_factory=dict)
    rows: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    @property
    def num_pairs(self) -> int:
        return sum(map(len, self.boxes.values())) + sum(map(len, self.rows.values()))

    @property
    def images(self) -> set[str]:
        return set(self.boxes) | set(self.rows)

    def pairs_of(self, key: str) -> int:
        """How many pairs the file lists for ``key``."""
        return len(self.boxes.get(key, ())) + len(self.rows.get(key, ()))

    def check_classes(self, names: dict[int, str]) -> None:
        """Raise :class:`PairsError` naming the first pair whose class is not one of the data YAML's ``names``."""
        nc = len(names)
        for stem, pairs in self.boxes.items():
            for i, (a, _) in enumerate(pairs):
                if a[0] >= nc:
                    shown = ", ".join(f"{k}: {v}" for k, v in list(names.items())[:10]) + (", ..." if nc > 10 else "")
                    raise PairsError(f"{self.path}: {stem!r} pair {i}: class {int(a[0])} but the data YAML has {nc} "
                                     f"classes, 0 to {nc - 1} ({shown})")


def normalize_key(key: str, suffixes: frozenset[str] = frozenset()) -> str:
    """A key as pairhook looks it up: ``/`` separators, no leading ``./``, and no extension in ``suffixes`` (image
    formats, lower case, no dot)."""
    key = key.strip().replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    root, ext = os.path.splitext(key)
    return root if ext[1:].lower() in suffixes else key


def image_suffixes() -> frozenset[str]:
    """The image file extensions Ultralytics reads (lower case, no dot)."""
    from ultralytics.data.utils import IMG_FORMATS

    return frozenset(s.lower() for s in IMG_FORMATS)


def _no_duplicates(path: Path) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def hook(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                raise PairsError(f"{path}: key {k!r} appears more than once")
            out[k] = v
        return out

    return hook


def _normalized(path: Path, entries: dict[str, Any]) -> dict[str, Any]:
    """``entries`` keyed by :func:`normalize_key`; two keys naming one image (``a`` and ``a.png``) are an error."""
    suffixes = image_suffixes()
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    for key, value in entries.items():
        norm = normalize_key(key, suffixes)
        if norm in out:
            raise PairsError(f"{path}: keys {given[norm]!r} and {key!r} name the same image")
        out[norm], given[norm] = value, key
    return out


_NUMBER = (int, float)  # exact types: a JSON true/false is not a number here


def _member(path: Path, stem: str, i: int, side: str, m: Any) -> tuple[float, ...]:
    """``m`` as ``(c, x, y, w, h)`` floats; the common, valid case takes one chained test (files can be huge)."""
    if type(m) is list and len(m) == 5:
        c, x, y, w, h = m
        if (type(c) in _NUMBER and type(x) in _NUMBER and type(y) in _NUMBER and type(w) in _NUMBER
                and type(h) in _NUMBER and 0 <= x <= 1 and 0 <= y <= 1 and 0 < w <= 1 and 0 < h <= 1
                and c >= 0 and c % 1 == 0):
            return (float(c), float(x), float(y), float(w), float(h))
    where = f"{stem!r} pair {i} member {side}"
    if not isinstance(m, (list, tuple)) or len(m) != 5:
        raise PairsError(f"{path}: {where}: a member must be [class, x, y, w, h], got {m!r}")
    if not all(type(v) in _NUMBER for v in m):
        raise PairsError(f"{path}: {where}: member values must be numbers, got {m!r}")
    c, x, y, w, h = m
    if not all(math.isfinite(v) for v in m):
        raise PairsError(f"{path}: {where}: member has a NaN or infinite value: {m!r}")
    if c < 0 or c != int(c):
        raise PairsError(f"{path}: {where}: class must be a non-negative integer, got {c!r}")
    if w <= 0 or h <= 0:
        raise PairsError(f"{path}: {where}: width and height must be > 0, got w={w}, h={h}")
    raise PairsError(f"{path}: {where}: coordinates must be normalized to [0, 1], got {m!r}")


def load_pair_file(path: str | Path) -> PairFile:
    """Parse and validate a pair file in the users' format or the ``pairhook-index`` form.

    Users' format: ``{"img_001": [[[c,x,y,w,h], [c,x,y,w,h]], ...], ...}``, normalized xywh of the original image.
    Index form: ``{"format": "pairhook-index", "pairs": {"img_001": [[row_a, row_b], ...]}}``.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise PairsError(f"{path}: cannot read the pair file: {e}") from e
    if not text.strip():
        raise PairsError(f"{path}: the pair file is empty")
    collect = gc.isenabled()
    gc.disable()  # millions of small lists: the cyclic collector would rescan them all, again and again
    try:
        return _parse(path, text)
    finally:
        if collect:
            gc.enable()


def _parse(path: Path, text: str) -> PairFile:
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates(path))
    except json.JSONDecodeError as e:
        raise PairsError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise PairsError(f"{path}: the top level must be a JSON object keyed by image name, got {type(data).__name__}")
    if data.get("format") == "pairhook-index":
        return _load_index(path, data.get("pairs"))
    out = PairFile(path)
    for stem, pairs in _normalized(path, data).items():
        if not isinstance(pairs, list):
            raise PairsError(f"{path}: {stem!r}: expected a list of pairs, got {type(pairs).__name__}")
        parsed = []
        for i, pair in enumerate(pairs):
            where = f"{stem!r} pair {i}"
            if type(pair) is list and len(pair) == 2 and type(pair[0]) is list:
                pass  # the common case, checked member by member below
            elif isinstance(pair, list) and pair and all(isinstance(v, (int, float)) for v in pair):
                raise PairsError(f"{path}: {where}: expected a pair [[c,x,y,w,h], [c,x,y,w,h]], got one box "
                                 f"{pair!r} (the value must be a list of pairs)")
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                n = len(pair) if isinstance(pair, (list, tuple)) else type(pair).__name__
                raise PairsError(f"{path}: {where}: a pair must have exactly 2 members, got {n}")
            a, b = _member(path, stem, i, "a", pair[0]), _member(path, stem, i, "b", pair[1])
            if a[0] != b[0]:
                raise PairsError(f"{path}: {where}: members have different classes ({int(a[0])} and {int(b[0])})")
            if a == b:
                raise PairsError(f"{path}: {where}: both members are the same box {list(a)}")
            parsed.append((a, b))
        out.boxes[stem] = parsed
    return out


def _load_index(path: Path, pairs: Any) -> PairFile:
    if not isinstance(pairs, dict):
        raise PairsError(f"{path}: 'pairs' must be an object keyed by image name in the pairhook-index format")
    out = PairFile(path)
    for stem, rows in _normalized(path, pairs).items():
        ok = isinstance(rows, list) and all(
            isinstance(r, (list, tuple)) and len(r) == 2 and all(isinstance(v, int) and v >= 0 for v in r) for r in rows
        )
        if not ok:
            raise PairsError(f"{path}: {stem!r}: expected a list of [row_a, row_b] non-negative integers, got {rows!r}")
        bad = [r for r in rows if r[0] == r[1]]
        if bad:
            raise PairsError(f"{path}: {stem!r}: a pair names the same row twice: {bad[0]}")
        out.rows[stem] = [tuple(r) for r in rows]
    return out


def image_stem(im_file: str) -> str:
    """The basename without extension, the pair file's key (``os.path``: ``Path`` is slow for 100k names)."""
    return os.path.splitext(os.path.basename(im_file))[0]


def resolve_pairs_path(explicit: str | None, data: dict[str, Any] | None) -> Path | None:
    """The pair file to use: ``install(pairs=...)`` first, else the data YAML's ``pairs:`` (relative to ``path``)."""
    if explicit:
        return Path(explicit)
    if data and data.get("pairs"):
        p = Path(data["pairs"])
        return p if p.is_absolute() else Path(data.get("path", ".")) / p
    return None
