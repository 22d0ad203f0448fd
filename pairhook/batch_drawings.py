"""``pairhook inspect``: draw augmented training batches as the loss sees them, to check the pair mapping.

A short training run (one epoch at most, stopped as soon as enough batches are seen, in a temporary folder that is
removed afterwards) goes through the real Ultralytics pipeline with pairhook installed. A recording regularizer,
registered in-process for the duration of the call, keeps what each batch's :class:`~pairhook.PairContext` holds:
the augmented images, the ground truths in the assigner's order, the pair rows and, per pair member, the anchors
that supervise it. Each batch becomes one PNG:

* every ground-truth box thin light grey, with its class name;
* the two members of each pair in a shared colour, boxes labelled ``<k>a`` / ``<k>b`` and linked centre to centre;
* dots at the anchor centres the task-aligned assigner gave each member (the anchors the pair terms act on);
  a member with no anchor makes its pair inactive for the batch (drawn dashed, counted in the title).

The assignment depends on the model's predictions: with a model YAML (random weights) it shows where a fresh
training starts; pass trained weights (``model=best.pt``) to see what a fine-tuning run would pick.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

import pairhook

SCALE = 3  # upscaling of each image in the PNG
TITLE_H = 22  # px of the title bar above each image
HEADER_H = 40  # px of the header above the grid
PAD = 6  # px between tiles
GT_COLOUR = (200, 200, 200)  # BGR
FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX
PAIR_PALETTE = (6, 8, 1, 5, 7, 9, 18, 0, 12)  # Ultralytics palette entries that stand apart (no greys, no navy)


@dataclass
class InspectResult:
    """What :func:`inspect_batches` wrote and drew.

    Attributes:
        paths: the PNGs, ``out/batch0.png``, ``out/batch1.png``, ... (one per batch).
        images: batch images drawn, over all PNGs.
        boxes: ground-truth boxes drawn.
        pairs: pairs drawn (pairs that survived augmentation whole in those images).
        active_pairs: pairs whose two members both have at least one supervising anchor.
        records: what was drawn, one :class:`BatchRecord` per PNG.
    """

    paths: list[Path] = field(default_factory=list)
    images: int = 0
    boxes: int = 0
    pairs: int = 0
    active_pairs: int = 0
    records: list[BatchRecord] = field(default_factory=list, repr=False)


@dataclass
class BatchRecord:
    """One training batch as the recording regularizer saw it (CPU tensors, network-input pixels)."""

    img: torch.Tensor  # (B, 3, H, W) float 0-1 RGB
    gt_bboxes: torch.Tensor  # (B, G, 4) xyxy px
    gt_labels: torch.Tensor  # (B, G)
    counts: list[int]  # real GTs per image
    pairs: torch.Tensor  # (P, 3) image, gt_a, gt_b
    anchors_a: list[torch.Tensor]  # per pair: (n, 2) px anchor centres supervising member a
    anchors_b: list[torch.Tensor]


class _Enough(Exception):
    """Raised from a training callback to end the recording run early."""


class _Recorder:
    """The in-process plugin: a regularizer that records training contexts and returns an attached zero."""

    name = "pairhook_inspect_record"

    def __init__(self, batches: int) -> None:
        self.batches = batches
        self.seen: list[BatchRecord] = []
        self.names: dict[int, str] = {}

    @property
    def done(self) -> bool:
        return len(self.seen) >= self.batches

    @pairhook.hookimpl
    def pairhook_register_regularizers(self, register):
        register(self.name, self.record, loss_name="inspect")

    def record(self, ctx: pairhook.PairContext) -> torch.Tensor:
        if ctx.training and not self.done:
            with torch.no_grad():
                self.seen.append(_snapshot(ctx))
        return ctx.zero()

    # Callbacks on the YOLO model
    def on_train_start(self, trainer: Any) -> None:
        self.names = dict(trainer.data["names"])

    def on_train_batch_end(self, trainer: Any) -> None:
        if self.done:
            raise _Enough

    def on_train_epoch_end(self, trainer: Any) -> None:
        raise _Enough  # fewer batches than asked for: stop before validation and saving


def _snapshot(ctx: pairhook.PairContext) -> BatchRecord:
    B = ctx.gt_labels.shape[0]
    counts = torch.bincount(ctx.batch["batch_idx"].long().view(-1).cpu(), minlength=B)[:B].tolist()
    pairs = ctx.pairs.long().cpu()
    anchors: dict[str, list[torch.Tensor]] = {"a": [], "b": []}
    if pairs.numel() and ctx.anchor_points is not None:
        points = ctx.anchor_points.detach().float().cpu()
        image = pairs[:, 0].to(ctx.fg_mask.device)
        for col, key in ((1, "a"), (2, "b")):
            mask = ctx.anchor_mask(image, pairs[:, col].to(ctx.fg_mask.device)).cpu()
            anchors[key] = [points[m] for m in mask]
    else:
        anchors = {key: [torch.zeros(0, 2)] * len(pairs) for key in anchors}
    return BatchRecord(ctx.batch["img"].detach().float().cpu(), ctx.gt_bboxes.detach().float().cpu(),
                       ctx.gt_labels.detach().cpu(), counts, pairs, anchors["a"], anchors["b"])


def inspect_batches(data: str | Path, pairs: Optional[str | Path] = None, out: str | Path = "inspect",
                    batches: int = 2, imgsz: int = 128, batch: int = 8, model: str = "yolov8n.yaml") -> InspectResult:
    """Render ``batches`` augmented training batches of ``data`` with GT boxes, pairs and their anchors to PNGs.

    Args:
        data: the Ultralytics data YAML.
        pairs: the pair file; None uses the data YAML's ``pairs:`` key (no pairs at all: only GTs are drawn).
        out: output folder for ``batch0.png``, ``batch1.png``, ...
        batches: how many training batches to draw (fewer if one epoch has fewer).
        imgsz, batch: training image size and batch size.
        model: model YAML or weights used for the forward pass the assigner works from.

    Returns:
        An :class:`InspectResult` with the PNG paths and what was drawn.
    """
    from ultralytics import YOLO

    if batches < 1 or batch < 1:
        raise ValueError(f"batches and batch must be >= 1, got batches={batches}, batch={batch}")
    recorder = _Recorder(batches)
    yolo = YOLO(model)
    with pairhook.registered(recorder):
        handle = pairhook.install(yolo, pairs=pairs, regularizers=[recorder.name])
        try:
            for event in ("on_train_start", "on_train_batch_end", "on_train_epoch_end"):
                yolo.add_callback(event, getattr(recorder, event))
            with tempfile.TemporaryDirectory(prefix="pairhook-inspect-") as tmp:
                try:
                    yolo.train(data=str(data), epochs=1, imgsz=imgsz, batch=batch, workers=0, plots=False, val=False,
                               close_mosaic=0, amp=False, project=tmp, name="run", exist_ok=True)
                except _Enough:
                    pass
        finally:
            handle.uninstall()
    if not recorder.seen:
        raise RuntimeError("pairhook inspect: training produced no batch to draw")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = InspectResult(records=recorder.seen)
    for i, b in enumerate(recorder.seen):
        path = out / f"batch{i}.png"
        canvas, stats = _draw_batch(b, recorder.names, f"pairhook inspect  |  {Path(str(data)).name}  |  "
                                                       f"batch {i + 1}/{len(recorder.seen)}")
        _imwrite(path, canvas)
        result.paths.append(path)
        for key, value in stats.items():
            setattr(result, key, getattr(result, key) + value)
    return result


# Drawing ------------------------------------------------------------------------------------------------------------
def _imwrite(path: Path, img: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), img):
        raise OSError(f"cannot write {path}")


def _text(img: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int], scale: float = 0.4,
          box: bool = True) -> None:
    """Text with its baseline-left corner at ``org``, on a dark box (``box``) so it reads on any background."""
    import cv2

    if box:
        (w, h), base = cv2.getTextSize(text, FONT, scale, 1)
        x, y = org
        cv2.rectangle(img, (x - 1, y - h - 2), (x + w + 1, y + base - 1), (24, 24, 24), -1)
    cv2.putText(img, text, org, FONT, scale, colour, 1, cv2.LINE_AA)


def _dashed_line(img: np.ndarray, p0: tuple[int, int], p1: tuple[int, int], colour: tuple[int, int, int],
                 thickness: int, dash: int = 8) -> None:
    import cv2

    n = max(1, int(math.hypot(p1[0] - p0[0], p1[1] - p0[1]) // dash))
    for k in range(0, n, 2):
        a = (round(p0[0] + (p1[0] - p0[0]) * k / n), round(p0[1] + (p1[1] - p0[1]) * k / n))
        b = (round(p0[0] + (p1[0] - p0[0]) * (k + 1) / n), round(p0[1] + (p1[1] - p0[1]) * (k + 1) / n))
        cv2.line(img, a, b, colour, thickness, cv2.LINE_AA)


def _draw_image(b: BatchRecord, k: int, names: dict[int, str]) -> tuple[np.ndarray, dict[str, int]]:
    """One batch image, upscaled, with its GTs, pairs and anchors, plus a title bar."""
    import cv2
    from ultralytics.utils.plotting import colors

    img = (b.img[k].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)[..., ::-1]
    h, w = img.shape[:2]
    img = np.ascontiguousarray(cv2.resize(img, (w * SCALE, h * SCALE), interpolation=cv2.INTER_LINEAR))
    n = b.counts[k]
    boxes = (b.gt_bboxes[k, :n] * SCALE).round().int().tolist()
    for (x0, y0, x1, y1), c in zip(boxes, b.gt_labels[k, :n].tolist()):
        cv2.rectangle(img, (x0, y0), (x1, y1), GT_COLOUR, 1, cv2.LINE_AA)
        _text(img, names.get(c, str(c)), (x0 + 2, max(y0 - 3, 10)), GT_COLOUR, 0.35)

    rows = [j for j in range(len(b.pairs)) if int(b.pairs[j, 0]) == k]
    active = 0
    for p, j in enumerate(rows):
        colour = colors(PAIR_PALETTE[p % len(PAIR_PALETTE)], bgr=True)
        _, ga, gb = b.pairs[j].tolist()
        pts_a, pts_b = b.anchors_a[j], b.anchors_b[j]
        is_active = len(pts_a) > 0 and len(pts_b) > 0
        active += is_active
        centres = []
        for g, tag, pts in ((ga, "a", pts_a), (gb, "b", pts_b)):
            x0, y0, x1, y1 = boxes[g]
            cv2.rectangle(img, (x0, y0), (x1, y1), colour, 2, cv2.LINE_AA)
            label = f"{p + 1}{tag}"
            tw = cv2.getTextSize(label, FONT, 0.45, 1)[0][0]
            x = x1 + 4 if x1 + tw + 6 < img.shape[1] else max(x0 - tw - 4, 1)  # beside the box, off the dots
            _text(img, label, (x, min(max((y0 + y1) // 2 + 5, 12), img.shape[0] - 3)), colour, 0.45)
            centres.append(((x0 + x1) // 2, (y0 + y1) // 2))
            for x, y in (pts * SCALE).round().int().tolist():
                cv2.circle(img, (x, y), 4, (0, 0, 0), -1, cv2.LINE_AA)
                cv2.circle(img, (x, y), 3, colour, -1, cv2.LINE_AA)
        if is_active:
            cv2.line(img, *centres, colour, 2, cv2.LINE_AA)
        else:
            _dashed_line(img, *centres, colour, 2)

    bar = np.full((TITLE_H, img.shape[1], 3), 32, np.uint8)
    title = f"image {k}: {n} GT, {len(rows)} pair{'s' * (len(rows) != 1)}"
    if len(rows) != active:
        title += f" ({len(rows) - active} without anchors)"
    _text(bar, title, (4, TITLE_H - 7), (255, 255, 255), 0.45, box=False)
    return np.vstack([bar, img]), {"images": 1, "boxes": n, "pairs": len(rows), "active_pairs": active}


def _draw_batch(b: BatchRecord, names: dict[int, str], header: str) -> tuple[np.ndarray, dict[str, int]]:
    """All images of one batch in a grid under a header with the legend."""
    tiles, stats = [], {"images": 0, "boxes": 0, "pairs": 0, "active_pairs": 0}
    for k in range(b.img.shape[0]):
        tile, s = _draw_image(b, k, names)
        tiles.append(tile)
        for key in stats:
            stats[key] += s[key]
    th, tw = tiles[0].shape[:2]
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    width = max(cols * (tw + PAD) + PAD, 720)
    canvas = np.full((HEADER_H + rows * (th + PAD) + PAD, width, 3), 16, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = HEADER_H + PAD + r * (th + PAD), PAD + c * (tw + PAD)
        canvas[y:y + th, x:x + tw] = tile
    header += f"  |  {stats['pairs']} pairs, {stats['boxes']} GT boxes"
    _text(canvas, header, (PAD, 16), (255, 255, 255), 0.5, box=False)
    _text(canvas, "grey: GT box + class   colour: pair members ka / kb, linked (dashed: a member has no anchor)   "
                  "dots: anchors supervising each member", (PAD, 34), (200, 200, 200), 0.4, box=False)
    return canvas, stats
