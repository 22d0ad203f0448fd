"""Propose a pair file from YOLO labels alone: same defect, two views, one vertical shift for the whole dataset.

Two label rows of an image are a *candidate* when they have the same class, the same width, height and x centre
within ``tol`` (relative to the larger box), and the second lies lower. The shift is the one offset most candidates
share: the mode of a histogram of all candidates' vertical offsets, refined to the median of the offsets near it
(or the value given). A candidate is *consistent* when its offset is within ``tol`` box heights of the shift; each
image's consistent candidates are taken best-first, each box in at most one pair.

Confidence: ``consistent / candidates`` (how much of the look-alike structure the shift explains), the spread of
the accepted pairs' offsets, and each pair's residual ``|offset - shift| / height``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from pairhook.config import split_names
from pairhook.pairs.keys import ImageKeys, image_files

Rows = dict[str, list[tuple[int, int]]]


@dataclass
class DiscoveryResult:
    """What :func:`discover` found.

    Attributes:
        pairs: the users' pair-file format, image key -> ``[[[c,x,y,w,h], [c,x,y,w,h]], ...]`` (upper member
            first), only images with pairs. The key is the file name without extension, or, for a file name shared
            by different images, the path relative to the dataset's ``path``.
        rows: image key -> ``(row a, row b)`` per pair, rows of its label file (every image scanned, once).
        shift: the vertical offset used (normalized image height), ``None`` if there were no candidates.
        shift_given: whether ``shift`` was given rather than estimated.
        spread: standard deviation of the accepted pairs' offsets (normalized height).
        candidates, consistent: candidate pairs, and those consistent with the shift (before one-to-one).
        runner_up: the most candidates sharing any other offset (a window as wide, away from the shift): a shift
            that stands out has ``consistent`` far above it.
        residuals: per accepted pair, ``|offset - shift| / box height``.
    """

    pairs: dict[str, list[list[list[float]]]] = field(default_factory=dict)
    rows: Rows = field(default_factory=dict)
    shift: Optional[float] = None
    shift_given: bool = False
    spread: float = float("nan")
    candidates: int = 0
    consistent: int = 0
    runner_up: int = 0
    residuals: list[float] = field(default_factory=list)

    @property
    def num_pairs(self) -> int:
        return sum(map(len, self.pairs.values()))

    @property
    def confidence(self) -> float:
        """Fraction of candidates consistent with the shift (NaN without candidates)."""
        return self.consistent / self.candidates if self.candidates else float("nan")

    def write(self, path: str | Path) -> Path:
        """Write :attr:`pairs` as JSON (what :func:`pairhook.load_pair_file` reads)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.pairs, indent=1))
        return path

    def summary(self) -> str:
        if self.shift is None:
            return f"no candidate pairs in {len(self.rows)} images (same class, size and x centre, one above the other)"
        how = "given" if self.shift_given else "estimated"
        res = f"; residual mean {np.mean(self.residuals):.3f}, max {np.max(self.residuals):.3f} box heights" \
            if self.residuals else ""
        return (f"{self.num_pairs} pairs on {len(self.pairs)} of {len(self.rows)} images; shift {self.shift:.4f} "
                f"({how}), spread {self.spread:.4f}; {self.consistent}/{self.candidates} candidates consistent "
                f"with it (confidence {self.confidence:.2f}), the next most common offset {self.runner_up}{res}")


def read_labels(label_file: str | Path) -> np.ndarray:
    """``(N, 5)`` rows ``c, x, y, w, h`` of a YOLO detection label file (empty if it is missing)."""
    p = Path(label_file)
    if not p.is_file():
        return np.zeros((0, 5))
    rows = [line.split()[:5] for line in p.read_text().splitlines() if line.strip()]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def candidates(labels: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Candidate pairs of one image: ``(upper rows, lower rows, offsets, larger heights)``, vectorized over pairs."""
    c, x, y, w, h = labels.T
    same = c[:, None] == c[None]
    wmax, hmax = np.maximum(w[:, None], w[None]), np.maximum(h[:, None], h[None])
    ok = same & (np.abs(x[:, None] - x[None]) <= tol * wmax) & (np.abs(w[:, None] - w[None]) <= tol * wmax)
    ok &= (np.abs(h[:, None] - h[None]) <= tol * hmax) & (y[None] > y[:, None])  # [i, j]: j lower than i
    i, j = np.nonzero(ok)
    return i, j, y[j] - y[i], hmax[i, j]


def estimate_shift(offsets: np.ndarray, heights: np.ndarray, tol: float) -> float:
    """The offset most candidates share: histogram mode (bins ``tol`` median heights wide), refined by a median."""
    width = max(tol * float(np.median(heights)), 1e-4)
    edges = np.arange(0.0, offsets.max() + 2 * width, width)
    counts, edges = np.histogram(offsets, edges)
    k = int(np.argmax(counts))
    near = np.abs(offsets - (edges[k] + edges[k + 1]) / 2) <= width
    return float(np.median(offsets[near]))


def runner_up(offsets: np.ndarray, width: float) -> int:
    """The most offsets falling in one window of ``width`` (windows on a grid of half that step)."""
    if len(offsets) == 0:
        return 0
    width = max(width, 1e-4)
    ordered = np.sort(offsets)
    starts = np.arange(ordered[0] - width, ordered[-1] + width, width / 2)
    return int((np.searchsorted(ordered, starts + width) - np.searchsorted(ordered, starts)).max())


def discover(data: str | Path, shift: Optional[float] = None, tol: float = 0.1, split: str = "train,val"
             ) -> DiscoveryResult:
    """Propose pairs from the labels of a data YAML's splits (see the module docstring).

    Args:
        data: the data YAML (resolved like Ultralytics does, never downloading).
        shift: vertical offset of the lower member (normalized image height); estimated when ``None``.
        tol: relative tolerance on x centre, width and height (of the larger box's size) and on the offset
            (in box heights).
        split: comma-separated splits of the YAML to scan; the pair file covers all of them.
    """
    from ultralytics.data.utils import check_det_dataset, img2label_paths

    if not 0 < tol < 1:
        raise ValueError(f"tol must be in (0, 1), got {tol}")
    if shift is not None and not 0 < shift < 1:
        raise ValueError(f"shift must be in (0, 1) (a fraction of the image height), got {shift}")
    cfg = check_det_dataset(str(data), autodownload=False)
    files: dict[str, None] = {}  # every image once, in split order (a file listed in two splits is one image)
    for s in split_names(split):
        if not cfg.get(s):
            raise ValueError(f"{data} has no split {s!r}")
        files.update(dict.fromkeys(os.path.realpath(f) for f in image_files(cfg[s])))
    index = ImageKeys((), cfg.get("path"), files)
    images: dict[str, np.ndarray] = {}
    for f, lb in zip(files, img2label_paths(list(files))):
        names = index.names(f)  # a file name shared by different images gets its unambiguous path key
        images[names[-1] if names[-1] not in index.shared else names[0]] = read_labels(lb)

    found = {stem: candidates(lb, tol) for stem, lb in images.items()}
    offsets = np.concatenate([c[2] for c in found.values()] or [np.zeros(0)])
    heights = np.concatenate([c[3] for c in found.values()] or [np.zeros(0)])
    result = DiscoveryResult(rows={stem: [] for stem in images}, candidates=len(offsets), shift_given=shift is not None)
    if shift is None and len(offsets) == 0:
        return result
    result.shift = float(shift) if shift is not None else estimate_shift(offsets, heights, tol)
    near = np.abs(offsets - result.shift) <= tol * heights
    result.consistent = int(near.sum())
    result.runner_up = runner_up(offsets[~near], tol * float(np.median(heights)) if len(heights) else tol)
    accepted = []
    for stem, (i, j, dy, hmax) in found.items():
        residual = np.abs(dy - result.shift) / hmax
        used: set[int] = set()
        for k in np.argsort(residual, kind="stable"):  # best first, one-to-one
            if residual[k] > tol:
                break
            a, b = int(i[k]), int(j[k])
            if a in used or b in used:
                continue
            used.update((a, b))
            result.rows[stem].append((a, b))
            result.residuals.append(float(residual[k]))
            accepted.append(float(dy[k]))
        if result.rows[stem]:
            lb = images[stem]
            result.pairs[stem] = [[_member(lb[a]), _member(lb[b])] for a, b in result.rows[stem]]
    result.spread = float(np.std(accepted)) if accepted else float("nan")
    return result


def _member(row: np.ndarray) -> list[float]:
    return [int(row[0]), *(float(v) for v in row[1:])]


def precision_recall(found: Rows, truth: Rows) -> tuple[float, float]:
    """Precision and recall of found pairs against known ones (rows per image; a pair's order does not matter)."""

    def as_set(rows: Rows) -> set[tuple[str, frozenset[int]]]:
        return {(stem, frozenset(p)) for stem, pairs in rows.items() for p in pairs}

    f, t = as_set(found), as_set(truth)
    hit = len(f & t)
    return (hit / len(f) if f else float("nan")), (hit / len(t) if t else float("nan"))


def discover_to_file(data: str, out: str = "pairs.json", shift: Optional[float] = None, tol: float = 0.1,
                     split: str = "train,val") -> DiscoveryResult:
    """:func:`discover` and write the pair file to ``out`` (the ``pairhook discover`` command).

    Args:
        data: the data YAML (resolved like Ultralytics does, never downloading).
        out: the pair file to write (JSON, the users' format).
        shift: vertical offset of the lower member (normalized image height); estimated when None.
        tol: relative tolerance on x centre, width and height and on the offset (in box heights).
        split: comma-separated splits of the YAML to scan; the pair file covers all of them.
    """
    result = discover(data, shift=shift, tol=tol, split=split)
    result.write(out)
    return result

