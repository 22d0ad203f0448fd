"""Small synthetic YOLO detection datasets with *paired defects*, for tests and demos.

The images mimic the users' inspection setup: the same physical defect is seen twice, once in the upper part of
the image and once ``shift * height`` pixels lower (a second view of the part). Besides the standard YOLO files the
generator writes the users' ``pairs.json``, which says which two boxes of an image are the same defect, and returns
the same information as row indices (:attr:`SyntheticDataset.truth`) for tests of pair matching and discovery.

Unpaired *distractors* are added, some of them deliberately confusing: same class, same size and same x centre as
a pair but at a vertical offset other than ``shift``, so a matcher that only looks at class and column fails.

Everything is drawn with numpy and OpenCV and is fully determined by ``seed``; 40 images take a few tens of ms.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

__all__ = ["SyntheticDataset", "make_dataset", "class_names"]

BASE_NAMES = ("scratch", "dent", "stain")
#: Shape of class ``c`` is ``SHAPES[c % 6]`` and its colour ``PALETTE[c % 7]`` (BGR): 42 distinct looks.
SHAPES = ("line", "disc", "rect", "ring", "cross", "triangle")
PALETTE = ((25, 25, 25), (240, 240, 240), (30, 110, 220), (200, 70, 40), (40, 170, 40), (180, 40, 180), (30, 200, 220))
BOX_FRAC = (0.08, 0.20)  # box side as a fraction of the image side: survives resizing to imgsz 64 and augmentation
BORDER = 1.0  # px kept free at the image edge
GAP = 2.0  # px kept free between boxes, so anti-aliased edges never touch
_SUB = 4  # fractional bits for cv2 drawing: the lower copy lands at the exact sub-pixel offset
_SPLITS = ("train", "val")


@dataclass(frozen=True)
class SyntheticDataset:
    """What :func:`make_dataset` wrote.

    Attributes:
        root: dataset directory (absolute).
        data_yaml: the Ultralytics data file, ``root/data.yaml``.
        pairs_json: the users' pairs file, ``root/pairs.json``.
        names: class index -> name, as in ``data.yaml``.
        shift: vertical offset between the members of every pair, as a fraction of image height.
        truth: image basename (no extension) -> ``(row of member a, row of member b)`` per pair, rows indexing that
            image's label file; member a is the upper copy. Every image is present (empty list when it has no pair).
    """

    root: Path
    data_yaml: Path
    pairs_json: Path
    names: dict[int, str]
    shift: float
    truth: dict[str, list[tuple[int, int]]]


@dataclass(frozen=True)
class _Box:
    """One drawn defect in pixels (top-left ``x0, y0``, size ``w, h``) plus the look shared by its copies."""

    cls: int
    x0: float
    y0: float
    w: float
    h: float
    flip: bool
    colour: tuple[int, int, int]

    def moved(self, dy: float) -> _Box:
        return _Box(self.cls, self.x0, self.y0 + dy, self.w, self.h, self.flip, self.colour)

    def clashes(self, other: _Box) -> bool:
        """True if the two boxes, each grown by ``GAP / 2``, intersect."""
        return (self.x0 < other.x0 + other.w + GAP and other.x0 < self.x0 + self.w + GAP
                and self.y0 < other.y0 + other.h + GAP and other.y0 < self.y0 + self.h + GAP)


def class_names(nc: int) -> dict[int, str]:
    """``{0: 'scratch', 1: 'dent', 2: 'stain', 3: 'defect3', ...}`` truncated or extended to ``nc`` classes."""
    return {i: BASE_NAMES[i] if i < len(BASE_NAMES) else f"defect{i}" for i in range(nc)}


def make_dataset(root: str | Path, *, n_train: int = 32, n_val: int = 8, size: tuple[int, int] = (96, 128),
                 nc: int = 3, pairs_per_image: tuple[int, int] = (1, 2), distractors: tuple[int, int] = (1, 2),
                 shift: float = 0.4, hard_band: bool = True, seed: int = 0) -> SyntheticDataset:
    """Write a paired-defect detection dataset under ``root`` and return where everything is.

    Layout: ``images/{train,val}/<split>_NNNN.png``, ``labels/{train,val}/<split>_NNNN.txt`` (YOLO ``cls xc yc w h``,
    normalised, 6 decimals, rows in random order), ``data.yaml`` and ``pairs.json`` (both splits; basename ->
    ``[[[c, x, y, w, h], [c, x, y, w, h]], ...]``, numbers identical to the label rows; images without pairs absent).
    Basenames carry the split so they are unique across the one JSON file. Regenerating into the same ``root``
    replaces this function's earlier images, labels and Ultralytics label caches.

    Args:
        root: output directory, created if needed.
        n_train, n_val: number of images per split.
        size: ``(height, width)`` in pixels; non-square by default so letterboxing is exercised.
        nc: number of classes. Each class has its own shape/colour, see ``SHAPES`` and ``PALETTE``.
        pairs_per_image, distractors: inclusive ``(min, max)`` counts per image. They are targets: an object that
            cannot be placed without overlap after a few dozen tries is skipped (only in very crowded settings).
        shift: offset from member a (upper) to member b (lower) as a fraction of image height. Box heights shrink
            when needed so both copies fit without overlapping.
        hard_band: degrade the lower half of every image (less contrast, more noise) so the lower view is harder.
        seed: everything derives from it; each image has its own stream, so changing ``n_train`` keeps val images.

    Raises:
        ValueError: on counts, sizes or a ``shift`` that leave no room for a pair.
    """
    height, width = size
    if nc < 1 or n_train < 0 or n_val < 0 or min(height, width) < 32:
        raise ValueError(f"need nc >= 1, n_train/n_val >= 0 and both sides >= 32 px, got {nc=}, {n_train=}, "
                         f"{n_val=}, {size=}")
    if not (0 <= pairs_per_image[0] <= pairs_per_image[1] and 0 <= distractors[0] <= distractors[1]):
        raise ValueError(f"counts must be (min, max) with 0 <= min <= max: {pairs_per_image=}, {distractors=}")
    dy = shift * height
    h_hi = min(BOX_FRAC[1] * height, dy - GAP, height - 2 * BORDER - dy)
    if h_hi < 4:
        raise ValueError(f"shift={shift} leaves no room for two non-overlapping copies in {height} px")
    h_range = (min(BOX_FRAC[0] * height, h_hi), h_hi)

    root = Path(root).resolve()
    names = class_names(nc)
    pairs: dict[str, list] = {}
    truth: dict[str, list[tuple[int, int]]] = {}
    for split_id, (split, n) in enumerate(zip(_SPLITS, (n_train, n_val))):
        img_dir, lbl_dir = root / "images" / split, root / "labels" / split
        for d in (img_dir, lbl_dir):
            d.mkdir(parents=True, exist_ok=True)
        for stale in [*img_dir.glob(f"{split}_*.png"), *lbl_dir.glob(f"{split}_*.txt"), lbl_dir.with_suffix(".cache")]:
            stale.unlink(missing_ok=True)
        for i in range(n):
            rng = np.random.default_rng([seed, split_id, i])
            name = f"{split}_{i:04d}"
            paired, singles = _layout(rng, height, width, nc, dy, h_range, pairs_per_image, distractors)
            rows, idx = _label_rows(rng, paired, singles, height, width, shift)  # before rendering: see _render
            cv2.imwrite(str(img_dir / f"{name}.png"),
                        _render(rng, height, width, [b for p in paired for b in p] + singles, hard_band))
            (lbl_dir / f"{name}.txt").write_text("".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n"
                                                         for c, x, y, w, h in rows))
            truth[name] = idx
            if idx:
                pairs[name] = [[list(rows[a]), list(rows[b])] for a, b in idx]

    data_yaml, pairs_json = root / "data.yaml", root / "pairs.json"
    data_yaml.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val",
                                         "names": names}, sort_keys=False))
    pairs_json.write_text(json.dumps(pairs, indent=1))
    return SyntheticDataset(root, data_yaml, pairs_json, names, shift, truth)


def _layout(rng: np.random.Generator, height: int, width: int, nc: int, dy: float, h_range: tuple[float, float],
            n_pairs: tuple[int, int], n_singles: tuple[int, int], tries: int = 50,
            ) -> tuple[list[tuple[_Box, _Box]], list[_Box]]:
    """Place pairs, then distractors, by rejection sampling: no overlaps and no accidental pair.

    The first distractor (and each later one with probability 1/2) copies a random pair's class, size, look and
    column but sits at another height, the case a class-and-x matcher gets wrong; if no pair's column has room
    it becomes an ordinary random distractor.
    """
    placed: list[_Box] = []
    tol = 0.05 * height  # a distractor's offset to a look-alike must miss ``dy`` by at least this much

    def ok(box: _Box) -> bool:
        inside = BORDER <= box.y0 and box.y0 + box.h <= height - BORDER
        return inside and not any(box.clashes(o) or _pair_like(box, o, dy, tol) for o in placed)

    def random_box(room: float) -> _Box:
        """A fresh defect with ``room`` px left free below it (for the lower copy of a pair)."""
        c = int(rng.integers(nc))
        w, h = rng.uniform(*BOX_FRAC) * width, rng.uniform(*h_range)
        jitter = rng.integers(-15, 16, 3)
        colour = tuple(int(v) for v in np.clip(np.add(PALETTE[c % len(PALETTE)], jitter), 0, 255))
        x0 = rng.uniform(BORDER, width - BORDER - w)
        return _Box(c, x0, rng.uniform(BORDER, height - BORDER - h - room), w, h, bool(rng.integers(2)), colour)

    paired: list[tuple[_Box, _Box]] = []
    for _ in range(rng.integers(n_pairs[0], n_pairs[1] + 1)):
        for _ in range(tries):
            a = random_box(dy)
            b = a.moved(dy)
            if ok(a) and ok(b):
                placed += [a, b]
                paired.append((a, b))
                break

    singles: list[_Box] = []
    for k in range(rng.integers(n_singles[0], n_singles[1] + 1)):
        confusing = bool(paired) and (k == 0 or rng.random() < 0.5)
        for t in range(tries):
            if confusing and t < tries // 2:  # then fall back to a free box: a tall pair may fill its column
                a = paired[rng.integers(len(paired))][0]
                box = a.moved(rng.uniform(BORDER, height - BORDER - a.h) - a.y0)
            else:
                box = random_box(0.0)
            if ok(box):
                placed.append(box)
                singles.append(box)
                break
    return paired, singles


def _pair_like(a: _Box, b: _Box, dy: float, tol: float) -> bool:
    """Would ``a`` and ``b`` pass for a pair: same class, column and size, vertical offset within ``tol`` of ``dy``?"""
    return (a.cls == b.cls and abs(a.x0 - b.x0) < 1 and abs(a.w - b.w) < 1 and abs(a.h - b.h) < 1
            and abs(abs(a.y0 - b.y0) - dy) < tol)


def _render(rng: np.random.Generator, height: int, width: int, boxes: list[_Box], hard_band: bool) -> np.ndarray:
    """Grey textured background (smooth blotches + fine noise), the defects, then the degraded lower band.

    The band noise is drawn last from ``rng``, so layout, labels and the upper half do not depend on ``hard_band``.
    """
    blotches = cv2.resize(rng.normal(0, 18, (4, 5)), (width, height), interpolation=cv2.INTER_CUBIC)
    base = rng.uniform(90, 160) + rng.normal(0, 6, 3)  # per-image grey level with a slight colour tint
    img = np.clip(blotches[..., None] + base, 0, 255).astype(np.uint8)
    for box in boxes:
        _draw(img, box)
    out = img.astype(np.float32) + rng.normal(0, 4, img.shape)
    if hard_band:
        band = out[height // 2:]
        mean = band.mean(axis=(0, 1))
        out[height // 2:] = mean + 0.55 * (band - mean) + rng.normal(0, 9, band.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def _draw(img: np.ndarray, box: _Box) -> None:
    """Draw one defect so that it fills its box exactly (strokes are inset by half their thickness)."""

    def p(x: float, y: float) -> tuple[int, int]:  # sub-pixel point for cv2's ``shift`` argument
        return round(x * (1 << _SUB)), round(y * (1 << _SUB))

    x0, y0, x1, y1 = box.x0, box.y0, box.x0 + box.w, box.y0 + box.h
    cx, cy, t, aa = (x0 + x1) / 2, (y0 + y1) / 2, 2, cv2.LINE_AA
    i0, j0, i1, j1 = x0 + t / 2, y0 + t / 2, x1 - t / 2, y1 - t / 2  # stroke centre-line bounds
    if box.flip:
        j0, j1 = j1, j0
    shape = SHAPES[box.cls % len(SHAPES)]
    if shape == "line":
        cv2.line(img, p(i0, j0), p(i1, j1), box.colour, t, aa, _SUB)
    elif shape == "cross":
        cv2.line(img, p(i0, j0), p(i1, j1), box.colour, t, aa, _SUB)
        cv2.line(img, p(i0, j1), p(i1, j0), box.colour, t, aa, _SUB)
    elif shape == "disc":
        cv2.ellipse(img, p(cx, cy), p(box.w / 2, box.h / 2), 0, 0, 360, box.colour, -1, aa, _SUB)
    elif shape == "ring":
        cv2.ellipse(img, p(cx, cy), p((box.w - t) / 2, (box.h - t) / 2), 0, 0, 360, box.colour, t, aa, _SUB)
    elif shape == "rect":
        cv2.rectangle(img, p(x0, y0), p(x1, y1), box.colour, -1, aa, _SUB)
    else:  # triangle, apex up or down
        apex, base = (y0, y1) if box.flip else (y1, y0)
        pts = np.array([p(x0, base), p(x1, base), p(cx, apex)], np.int32)
        cv2.fillPoly(img, [pts], box.colour, aa, _SUB)


def _label_rows(rng: np.random.Generator, paired: list[tuple[_Box, _Box]], singles: list[_Box], height: int,
                width: int, shift: float) -> tuple[list[tuple[int, float, float, float, float]], list[tuple[int, int]]]:
    """Normalised, 6-decimal label rows in random order, plus the ``(row a, row b)`` index of each pair.

    Member b's y is member a's plus ``shift`` in normalised units (not re-derived from pixels), so both rows share
    x, w, h exactly and their offset is ``shift`` to within rounding.
    """

    def row(box: _Box, dy: float = 0.0) -> tuple[int, float, float, float, float]:
        return (box.cls, round((box.x0 + box.w / 2) / width, 6), round((box.y0 + box.h / 2) / height + dy, 6),
                round(box.w / width, 6), round(box.h / height, 6))

    rows = [r for a, _ in paired for r in (row(a), row(a, shift))] + [row(s) for s in singles]
    order = rng.permutation(len(rows))
    where = np.argsort(order)  # where[k] = new index of old row k
    return [rows[k] for k in order], [(int(where[2 * j]), int(where[2 * j + 1])) for j in range(len(paired))]
