"""``make_dataset``: write the images, labels, ``data.yaml`` and ``pairs.json`` of a generated dataset."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from pairhook.synthetic import basic
from pairhook.synthetic.layout import BORDER, BOX_FRAC, GAP, label_rows, layout

BASE_NAMES = ("scratch", "dent", "stain")
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
        nc: number of classes. Each class has its own shape/colour, see ``basic.SHAPES`` and ``basic.PALETTE``.
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
            paired, singles = layout(rng, height, width, nc, dy, h_range, pairs_per_image, distractors,
                                     basic.colour)
            rows, idx = label_rows(rng, paired, singles, height, width, shift)  # before rendering: see basic.render
            cv2.imwrite(str(img_dir / f"{name}.png"),
                        basic.render(rng, height, width, [b for p in paired for b in p] + singles, hard_band))
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


