"""Where the defects go: boxes placed without overlap, pairs, look-alike distractors, and their label rows."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BOX_FRAC = (0.08, 0.20)  # box side as a fraction of the image side: survives resizing to imgsz 64 and augmentation
BORDER = 1.0  # px kept free at the image edge
GAP = 2.0  # px kept free between boxes, so anti-aliased edges never touch


@dataclass(frozen=True)
class Box:
    """One drawn defect in pixels (top-left ``x0, y0``, size ``w, h``) plus the look shared by its copies."""

    cls: int
    x0: float
    y0: float
    w: float
    h: float
    flip: bool
    colour: tuple[int, int, int]

    def moved(self, dy: float) -> Box:
        return Box(self.cls, self.x0, self.y0 + dy, self.w, self.h, self.flip, self.colour)

    def clashes(self, other: Box) -> bool:
        """True if the two boxes, each grown by ``GAP / 2``, intersect."""
        return (self.x0 < other.x0 + other.w + GAP and other.x0 < self.x0 + self.w + GAP
                and self.y0 < other.y0 + other.h + GAP and other.y0 < self.y0 + self.h + GAP)


#: ``colour(rng, cls)``: the colour of a new defect of class ``cls`` (BGR), drawn from ``rng``.
Colour = Callable[[np.random.Generator, int], tuple[int, int, int]]


def layout(rng: np.random.Generator, height: int, width: int, nc: int, dy: float, h_range: tuple[float, float],
           n_pairs: tuple[int, int], n_singles: tuple[int, int], colour: Colour, upper_limit: float = math.inf,
           tries: int = 50) -> tuple[list[tuple[Box, Box]], list[Box]]:
    """Place pairs, then distractors, by rejection sampling: no overlaps and no accidental pair.

    The upper copy of a pair ends above ``upper_limit`` px (the boundary of two views; the lower copy, ``dy`` px
    lower, then lies below it). The first distractor (and each later one with probability 1/2) copies a random
    pair's class, size, look and column but sits at another height, the case a class-and-x matcher gets wrong; if
    no pair's column has room it becomes an ordinary random distractor.
    """
    placed: list[Box] = []
    tol = 0.05 * height  # a distractor's offset to a look-alike must miss ``dy`` by at least this much

    def ok(box: Box) -> bool:
        inside = BORDER <= box.y0 and box.y0 + box.h <= height - BORDER
        return inside and not any(box.clashes(o) or pair_like(box, o, dy, tol) for o in placed)

    def random_box(room: float) -> Box:
        """A fresh defect with ``room`` px left free below it (for the lower copy of a pair)."""
        c = int(rng.integers(nc))
        w, h = rng.uniform(*BOX_FRAC) * width, rng.uniform(*h_range)
        look = colour(rng, c)
        x0 = rng.uniform(BORDER, width - BORDER - w)
        y_hi = min(height - BORDER - h - room, upper_limit - GAP / 2 - h) if room else height - BORDER - h
        return Box(c, x0, rng.uniform(BORDER, y_hi), w, h, bool(rng.integers(2)), look)

    paired: list[tuple[Box, Box]] = []
    for _ in range(rng.integers(n_pairs[0], n_pairs[1] + 1)):
        for _ in range(tries):
            a = random_box(dy)
            b = a.moved(dy)
            if ok(a) and ok(b):
                placed += [a, b]
                paired.append((a, b))
                break

    singles: list[Box] = []
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


def pair_like(a: Box, b: Box, dy: float, tol: float) -> bool:
    """Would ``a`` and ``b`` pass for a pair: same class, column and size, vertical offset within ``tol`` of ``dy``?"""
    return (a.cls == b.cls and abs(a.x0 - b.x0) < 1 and abs(a.w - b.w) < 1 and abs(a.h - b.h) < 1
            and abs(abs(a.y0 - b.y0) - dy) < tol)


def label_rows(rng: np.random.Generator, paired: list[tuple[Box, Box]], singles: list[Box], height: int,
                width: int, shift: float) -> tuple[list[tuple[int, float, float, float, float]], list[tuple[int, int]]]:
    """Normalised, 6-decimal label rows in random order, plus the ``(row a, row b)`` index of each pair.

    Member b's y is member a's plus ``shift`` in normalised units (not re-derived from pixels), so both rows share
    x, w, h exactly and their offset is ``shift`` to within rounding.
    """

    def row(box: Box, dy: float = 0.0) -> tuple[int, float, float, float, float]:
        return (box.cls, round((box.x0 + box.w / 2) / width, 6), round((box.y0 + box.h / 2) / height + dy, 6),
                round(box.w / width, 6), round(box.h / height, 6))

    rows = [r for a, _ in paired for r in (row(a), row(a, shift))] + [row(s) for s in singles]
    order = rng.permutation(len(rows))
    where = np.argsort(order)  # where[k] = new index of old row k
    return [rows[k] for k in order], [(int(where[2 * j]), int(where[2 * j + 1])) for j in range(len(paired))]
