"""``make_dataset``: write the images, labels, ``data.yaml`` and ``pairs.json`` of a generated dataset."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from pairhook.synthetic import basic, inspection
from pairhook.synthetic.layout import BORDER, BOX_FRAC, GAP, label_rows, layout

BASE_NAMES = ("scratch", "dent", "stain")
_SPLITS = ("train", "val", "test")
#: ``preset`` values of :func:`make_dataset`.
PRESETS = ("basic", "inspection")


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
        preset: the look, one of :data:`PRESETS`.
    """

    root: Path
    data_yaml: Path
    pairs_json: Path
    names: dict[int, str]
    shift: float
    truth: dict[str, list[tuple[int, int]]]
    preset: str = "basic"


def class_names(nc: int) -> dict[int, str]:
    """``{0: 'scratch', 1: 'dent', 2: 'stain', 3: 'defect3', ...}`` truncated or extended to ``nc`` classes."""
    return {i: BASE_NAMES[i] if i < len(BASE_NAMES) else f"defect{i}" for i in range(nc)}


def make_dataset(root: str | Path, *, preset: str = "basic", n_train: int = 32, n_val: int = 8, n_test: int = 0,
                 size: tuple[int, int] = (96, 128), nc: int = 3, pairs_per_image: tuple[int, int] = (1, 2),
                 distractors: tuple[int, int] = (1, 2), shift: float = 0.4, hard_band: bool = True, seed: int = 0,
                 ) -> SyntheticDataset:
    """Write a paired-defect detection dataset under ``root`` and return where everything is.

    Layout: ``images/<split>/<split>_NNNN.png``, ``labels/<split>/<split>_NNNN.txt`` (YOLO ``cls xc yc w h``,
    normalised, 6 decimals, rows in random order) for ``train``, ``val`` and (when ``n_test > 0``) ``test``;
    ``data.yaml`` (with a ``test:`` key when there is a test split) and ``pairs.json`` (every split; basename ->
    ``[[[c, x, y, w, h], [c, x, y, w, h]], ...]``, numbers identical to the label rows; images without pairs absent).
    Basenames carry the split so they are unique across the one JSON file. Regenerating into the same ``root``
    replaces this function's earlier images, labels and Ultralytics label caches.

    Args:
        root: output directory, created if needed.
        preset: the look. ``"basic"``: each class its own shape and colour (``basic.SHAPES``, ``basic.PALETTE``),
            the lower half mildly degraded. ``"inspection"``: two views stacked at ``shift * height``, each pair's
            upper copy in the upper view; classes alike but for a thin inner mark; the lower view with another
            background, blurred, low-contrast and noisy (:mod:`pairhook.synthetic.inspection`).
        n_train, n_val, n_test: number of images per split; the test split is held out (no training run reads it).
        size: ``(height, width)`` in pixels; non-square by default so letterboxing is exercised.
        nc: number of classes.
        pairs_per_image, distractors: inclusive ``(min, max)`` counts per image. They are targets: an object that
            cannot be placed without overlap after a few dozen tries is skipped (only in very crowded settings).
            Distractors are unpaired defects of the same classes.
        shift: offset from member a (upper) to member b (lower) as a fraction of image height. Box heights shrink
            when needed so both copies fit without overlapping.
        hard_band: make the lower view harder (``"basic"``: the lower half gets less contrast and more noise;
            ``"inspection"``: the whole degradation). Layout, labels and the upper view do not depend on it.
        seed: everything derives from it; each image has its own stream, so changing ``n_train`` keeps val and test
            images.

    Raises:
        ValueError: on an unknown preset, or counts, sizes or a ``shift`` that leave no room for a pair.
    """
    height, width = size
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    if nc < 1 or min(n_train, n_val, n_test) < 0 or min(height, width) < 32:
        raise ValueError(f"need nc >= 1, n_train/n_val/n_test >= 0 and both sides >= 32 px, got {nc=}, {n_train=}, "
                         f"{n_val=}, {n_test=}, {size=}")
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
    for split_id, (split, n) in enumerate(zip(_SPLITS, (n_train, n_val, n_test))):
        img_dir, lbl_dir = root / "images" / split, root / "labels" / split
        if n or split != "test":  # no empty test folders
            for d in (img_dir, lbl_dir):
                d.mkdir(parents=True, exist_ok=True)
        for stale in [*img_dir.glob(f"{split}_*.png"), *lbl_dir.glob(f"{split}_*.txt"), lbl_dir.with_suffix(".cache")]:
            stale.unlink(missing_ok=True)
        for i in range(n):
            rng = np.random.default_rng([seed, split_id, i])
            name = f"{split}_{i:04d}"
            truth[name], rows, image = _image(rng, preset, height, width, nc, shift, h_range, pairs_per_image,
                                              distractors, hard_band)
            cv2.imwrite(str(img_dir / f"{name}.png"), image)
            (lbl_dir / f"{name}.txt").write_text("".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n"
                                                         for c, x, y, w, h in rows))
            if truth[name]:
                pairs[name] = [[list(rows[a]), list(rows[b])] for a, b in truth[name]]

    data_yaml, pairs_json = root / "data.yaml", root / "pairs.json"
    splits = {"train": "images/train", "val": "images/val", **({"test": "images/test"} if n_test else {})}
    data_yaml.write_text(yaml.safe_dump({"path": str(root), **splits, "names": names}, sort_keys=False))
    pairs_json.write_text(json.dumps(pairs, indent=1))
    return SyntheticDataset(root, data_yaml, pairs_json, names, shift, truth, preset)


def _image(rng: np.random.Generator, preset: str, height: int, width: int, nc: int, shift: float,
           h_range: tuple[float, float], pairs_per_image: tuple[int, int], distractors: tuple[int, int],
           hard_band: bool) -> tuple[list[tuple[int, int]], list[tuple[int, float, float, float, float]], np.ndarray]:
    """One image of ``preset``: ``(pair rows, label rows, BGR image)``."""
    dy = shift * height
    look, upper_limit = (basic.colour, math.inf) if preset == "basic" else (inspection.colour, dy)
    paired, singles = layout(rng, height, width, nc, dy, h_range, pairs_per_image, distractors, look, upper_limit)
    rows, idx = label_rows(rng, paired, singles, height, width, shift)  # before rendering: see basic.render
    boxes = [b for p in paired for b in p] + singles
    if preset == "basic":
        return idx, rows, basic.render(rng, height, width, boxes, hard_band)
    return idx, rows, inspection.render(rng, height, width, boxes, dy, hard_band)
