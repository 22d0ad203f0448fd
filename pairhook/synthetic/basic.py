"""The basic look: each class its own shape and colour, a mildly degraded lower half."""

from __future__ import annotations

import cv2
import numpy as np

from pairhook.synthetic.layout import Box

#: Shape of class ``c`` is ``SHAPES[c % 6]`` and its colour ``PALETTE[c % 7]`` (BGR): 42 distinct looks.
SHAPES = ("line", "disc", "rect", "ring", "cross", "triangle")
PALETTE = ((25, 25, 25), (240, 240, 240), (30, 110, 220), (200, 70, 40), (40, 170, 40), (180, 40, 180), (30, 200, 220))
SUB = 4  # fractional bits for cv2 drawing: the lower copy lands at the exact sub-pixel offset


def colour(rng: np.random.Generator, cls: int) -> tuple[int, int, int]:
    """The class's palette colour, each channel jittered by up to 15."""
    jitter = rng.integers(-15, 16, 3)
    return tuple(int(v) for v in np.clip(np.add(PALETTE[cls % len(PALETTE)], jitter), 0, 255))


def render(rng: np.random.Generator, height: int, width: int, boxes: list[Box], hard_band: bool) -> np.ndarray:
    """Grey textured background (smooth blotches + fine noise), the defects, then the degraded lower band.

    The band noise is drawn last from ``rng``, so layout, labels and the upper half do not depend on ``hard_band``.
    """
    blotches = cv2.resize(rng.normal(0, 18, (4, 5)), (width, height), interpolation=cv2.INTER_CUBIC)
    base = rng.uniform(90, 160) + rng.normal(0, 6, 3)  # per-image grey level with a slight colour tint
    img = np.clip(blotches[..., None] + base, 0, 255).astype(np.uint8)
    for box in boxes:
        draw(img, box)
    out = img.astype(np.float32) + rng.normal(0, 4, img.shape)
    if hard_band:
        band = out[height // 2:]
        mean = band.mean(axis=(0, 1))
        out[height // 2:] = mean + 0.55 * (band - mean) + rng.normal(0, 9, band.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def draw(img: np.ndarray, box: Box) -> None:
    """Draw one defect so that it fills its box exactly (strokes are inset by half their thickness)."""

    def p(x: float, y: float) -> tuple[int, int]:  # sub-pixel point for cv2's ``shift`` argument
        return round(x * (1 << SUB)), round(y * (1 << SUB))

    x0, y0, x1, y1 = box.x0, box.y0, box.x0 + box.w, box.y0 + box.h
    cx, cy, t, aa = (x0 + x1) / 2, (y0 + y1) / 2, 2, cv2.LINE_AA
    i0, j0, i1, j1 = x0 + t / 2, y0 + t / 2, x1 - t / 2, y1 - t / 2  # stroke centre-line bounds
    if box.flip:
        j0, j1 = j1, j0
    shape = SHAPES[box.cls % len(SHAPES)]
    if shape == "line":
        cv2.line(img, p(i0, j0), p(i1, j1), box.colour, t, aa, SUB)
    elif shape == "cross":
        cv2.line(img, p(i0, j0), p(i1, j1), box.colour, t, aa, SUB)
        cv2.line(img, p(i0, j1), p(i1, j0), box.colour, t, aa, SUB)
    elif shape == "disc":
        cv2.ellipse(img, p(cx, cy), p(box.w / 2, box.h / 2), 0, 0, 360, box.colour, -1, aa, SUB)
    elif shape == "ring":
        cv2.ellipse(img, p(cx, cy), p((box.w - t) / 2, (box.h - t) / 2), 0, 0, 360, box.colour, t, aa, SUB)
    elif shape == "rect":
        cv2.rectangle(img, p(x0, y0), p(x1, y1), box.colour, -1, aa, SUB)
    else:  # triangle, apex up or down
        apex, base = (y0, y1) if box.flip else (y1, y0)
        pts = np.array([p(x0, base), p(x1, base), p(cx, apex)], np.int32)
        cv2.fillPoly(img, [pts], box.colour, aa, SUB)


