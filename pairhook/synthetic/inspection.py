"""The inspection look: two views of a part stacked vertically, the lower one systematically harder.

Rows ``[0, boundary)`` are the upper view and rows ``[boundary, height)`` the lower view (``boundary = shift *
height``); every pair has its upper copy in the upper view and its lower copy in the lower view. The lower view is
what a second, worse camera (or an oblique view of the same surface) gives: a different background (darker, with
horizontal streaks), then blur, less contrast and more noise, each drawn per image from :data:`LOWER`'s ranges.

All classes share one shape family and one colour distribution (a dark elliptical ring, any aspect) and differ only
by a thin inner mark (:data:`MARKS`), the kind of detail blur and low contrast erase: on the lower view a defect can
be missed, or found and called the wrong class.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pairhook.synthetic.layout import Box

#: Inner mark of class ``c``: ``MARKS[c % 6]``; classes 6 and up repeat the marks with a ring 1 px thicker per 6.
MARKS = ("plain", "dot", "bar", "double", "slash", "cross")
RING = 2  # ring stroke, px
SUB = 4  # fractional bits for cv2 drawing: the lower copy lands at the exact sub-pixel offset


@dataclass(frozen=True)
class Degradation:
    """Ranges ``(low, high)``, drawn uniformly per image, of what makes the lower view harder."""

    darker: tuple[float, float] = (35.0, 60.0)  #: background darker than the upper view's, grey levels
    streaks: float = 8.0  #: standard deviation of the horizontal streaks of its background, grey levels
    blur: tuple[float, float] = (0.8, 1.8)  #: Gaussian blur sigma, px
    contrast: tuple[float, float] = (0.25, 0.6)  #: contrast kept, towards the view's mean
    noise: tuple[float, float] = (6.0, 14.0)  #: standard deviation of the extra noise, grey levels


#: The degradation of the lower view (``hard_band=True``).
LOWER = Degradation()
NOISE = 4.0  # sensor noise of both views, grey levels


def colour(rng: np.random.Generator, cls: int) -> tuple[int, int, int]:
    """The same for every class: a dark grey with a slight tint (colour never tells the class)."""
    grey = rng.uniform(25, 65)
    return tuple(int(v) for v in np.clip(grey + rng.integers(-8, 9, 3), 0, 255))


def render(rng: np.random.Generator, height: int, width: int, boxes: list[Box], boundary: float,
           hard_band: bool) -> np.ndarray:
    """Background, defects, then the degraded lower view (from row ``round(boundary)``) when ``hard_band``.

    Every random number is drawn whether or not ``hard_band`` is set, and the lower view's extra noise last, so
    the upper view does not depend on ``hard_band``.
    """
    b = int(round(boundary))
    base = rng.uniform(130, 175) + rng.normal(0, 5, 3)  # per-image grey level with a slight colour tint
    blotches = cv2.resize(rng.normal(0, 14, (4, 5)), (width, height), interpolation=cv2.INTER_CUBIC)
    streaks = cv2.resize(rng.normal(0, LOWER.streaks, (height // 2, 1)), (width, height))  # constant along a row
    darker, sigma = rng.uniform(*LOWER.darker), rng.uniform(*LOWER.blur)
    keep, noise = rng.uniform(*LOWER.contrast), rng.uniform(*LOWER.noise)
    background = blotches[..., None] + base
    if hard_band:
        background[b:] += streaks[b:, :, None] - darker
    img = np.clip(background, 0, 255).astype(np.uint8)
    for box in boxes:
        draw(img, box)
    out = img.astype(np.float32)
    if hard_band:
        view = cv2.GaussianBlur(out[b:], (0, 0), sigma)
        mean = view.mean(axis=(0, 1))
        out[b:] = mean + keep * (view - mean)
    out += rng.normal(0, NOISE, out.shape)
    if hard_band:
        out[b:] += rng.normal(0, noise, out[b:].shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def draw(img: np.ndarray, box: Box) -> None:
    """A ring filling the box exactly (the stroke inset by half its width) and the class's inner mark."""

    def p(x: float, y: float) -> tuple[int, int]:  # sub-pixel point for cv2's ``shift`` argument
        return round(x * (1 << SUB)), round(y * (1 << SUB))

    t = RING + box.cls // len(MARKS)
    cx, cy, aa = box.x0 + box.w / 2, box.y0 + box.h / 2, cv2.LINE_AA
    rx, ry = (box.w - t) / 2, (box.h - t) / 2  # stroke centre-line radii
    cv2.ellipse(img, p(cx, cy), p(rx, ry), 0, 0, 360, box.colour, t, aa, SUB)
    ix, iy = max(rx - t, 1.0), max(ry - t, 1.0)  # free inside of the ring; marks have the ring's stroke
    mark = MARKS[box.cls % len(MARKS)]
    if mark == "dot":
        cv2.ellipse(img, p(cx, cy), p(0.4 * ix, 0.4 * iy), 0, 0, 360, box.colour, -1, aa, SUB)
    elif mark == "bar":
        cv2.line(img, p(cx - 0.7 * ix, cy), p(cx + 0.7 * ix, cy), box.colour, t, aa, SUB)
    elif mark == "double":
        cv2.ellipse(img, p(cx, cy), p(0.5 * ix, 0.5 * iy), 0, 0, 360, box.colour, t, aa, SUB)
    elif mark in ("slash", "cross"):
        s = -1 if box.flip else 1
        d = 0.6 / np.sqrt(2)
        cv2.line(img, p(cx - d * ix, cy - s * d * iy), p(cx + d * ix, cy + s * d * iy), box.colour, t, aa, SUB)
        if mark == "cross":
            cv2.line(img, p(cx - d * ix, cy + s * d * iy), p(cx + d * ix, cy - s * d * iy), box.colour, t, aa, SUB)
