"""Per-view metrics that a score shift cannot fake: each view's AP, its recall at a fixed precision, wrong-class boxes.

The pair metrics of :mod:`pairhook.metrics` count detections at a confidence threshold, so raising every score of
the lower view raises its recall without a better detector. These do not move under any monotone change of a view's
scores:

* **Views.** Only images with a vertically shifted pair have views. Every box of such an image, ground truth or
  prediction, belongs to the view of the pair member whose centre is nearest to its own centre (members belong to
  their own view, :func:`pairhook.metrics.view_members`): so unpaired ground truths and false positives are assigned
  to the view they lie in.
* ``pairs/ap50_<view>``, ``pairs/ap_<view>``: AP50 and AP50-95 of the view's predictions against the view's ground
  truths, matched as Ultralytics matches for mAP (class-aware, :func:`pairhook.compat.match_predictions`) and
  integrated as it integrates (:func:`pairhook.compat.average_precision`), with one precision-recall curve over all
  classes of the view (micro-averaged), from every prediction the validator keeps (``conf`` down to 0.001).
* ``pairs/recall_p80_<view>``: the view's recall at the lowest confidence threshold whose precision is still at
  least :data:`PRECISION` (IoU 0.5): recall at matched precision, so two detectors are compared at the same
  false-positive rate, not at the same threshold.
* ``pairs/wrong_class_<view>``: the fraction of the view's pair members covered (IoU >= 0.5) by a box of another
  class with confidence >= 0.25: the wrong-class boxes no recall sees but mAP pays for.

Confidences are accumulated in :data:`BINS` equal bins, so the counts of several GPUs sum (one collective) and the
curves are exact whenever no two predictions of a view share a bin.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from pairhook import compat

VIEWS = ("upper", "lower")
KEYS = tuple(f"pairs/{m}_{v}" for m in ("ap50", "ap", "recall_p80", "wrong_class") for v in VIEWS)
PRECISION = 0.8
BINS = 1000
_T = len(compat.IOU_THRESHOLDS)


def box_views(gt_boxes: torch.Tensor, upper: torch.Tensor, lower: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """``(N,)`` long: 0 (upper) or 1 (lower), the view of each box, by the pair member nearest to its centre.

    ``upper``, ``lower``: ``(V,)`` GT indices of the vertically shifted pairs' members (V >= 1).
    """
    members = torch.cat([upper, lower])
    view = torch.cat([torch.zeros_like(upper), torch.ones_like(lower)])
    centre = (gt_boxes[members, :2] + gt_boxes[members, 2:]) / 2
    d = torch.cdist(((boxes[:, :2] + boxes[:, 2:]) / 2).float(), centre.float())  # (N, 2V)
    return view[d.argmin(1)]


class ViewMetrics:
    """Accumulates each view's histograms over images; :meth:`compute` gives the :data:`KEYS` dict."""

    def __init__(self, iou: float = 0.5, conf: float = 0.25) -> None:
        self.iou, self.conf = iou, conf
        self.reset()

    def reset(self) -> None:
        # per view: predictions per confidence bin, then true positives per bin at each IoU threshold
        self.hist: torch.Tensor | None = None  # (2, 1 + T, BINS)
        self.counts: torch.Tensor | None = None  # (2, 3): ground truths, pair members, members with a wrong class

    def _zeros(self, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.zeros(2, 1 + _T, BINS, dtype=torch.float64, device=device),
                torch.zeros(2, 3, dtype=torch.float64, device=device))

    def update(self, gt_boxes: torch.Tensor, gt_cls: torch.Tensor, upper: torch.Tensor, lower: torch.Tensor,
               vertical: torch.Tensor, boxes: torch.Tensor, conf: torch.Tensor, cls: torch.Tensor) -> None:
        """Add one image: GT, the pairs' upper and lower members and which pairs are vertical, all predictions."""
        from torchvision.ops import box_iou

        upper, lower = upper[vertical], lower[vertical]
        if upper.numel() == 0:
            return
        if self.hist is None:
            self.hist, self.counts = self._zeros(gt_boxes.device)
        gt_view = box_views(gt_boxes, upper, lower, gt_boxes)
        order = conf.argsort(descending=True)
        boxes, conf, cls = boxes[order], conf[order], cls[order]
        pred_view = box_views(gt_boxes, upper, lower, boxes) if boxes.shape[0] else gt_view[:0]
        iou = box_iou(gt_boxes.float(), boxes.float())  # (G, N)
        bins = (conf.float() * BINS).long().clamp(0, BINS - 1)
        for v in range(2):
            g, n = gt_view == v, pred_view == v
            self.counts[v, 0] += g.sum()
            if n.any():
                tp = compat.match_predictions(cls[n], gt_cls[g], iou[g][:, n]).to(self.hist.device)  # (n, T)
                hits = torch.cat([torch.ones_like(tp[:, :1]), tp], 1).double().T  # (1 + T, n)
                self.hist[v].index_add_(1, bins[n], hits)
        wrong = (iou >= self.iou) & (conf >= self.conf)[None] & (cls.long()[None] != gt_cls.long()[:, None])
        for v, members in enumerate((upper, lower)):
            self.counts[v, 1] += members.numel()
            self.counts[v, 2] += wrong[members].any(1).sum()

    def reduce(self, reduce: Callable[[torch.Tensor], torch.Tensor], device: torch.device | str) -> None:
        """Replace the histograms by ``reduce`` of them (their sum over multi-GPU ranks; one collective)."""
        hist, counts = (self.hist, self.counts) if self.hist is not None else self._zeros(device)
        flat = reduce(torch.cat([hist.flatten(), counts.flatten()]))
        self.hist, self.counts = flat[:hist.numel()].view_as(hist), flat[hist.numel():].view_as(counts)
        if not self.counts[:, 1].any():
            self.hist = self.counts = None

    def compute(self) -> dict[str, float]:
        """The :data:`KEYS` dict; NaN for a view with no ground truth (or, for AP, no prediction either)."""
        out = dict.fromkeys(KEYS, math.nan)
        if self.hist is None:
            return out
        hist, counts = self.hist.cpu(), self.counts.cpu()
        for v, view in enumerate(VIEWS):
            n_gt, members, wrong = counts[v].tolist()
            if members:
                out[f"pairs/wrong_class_{view}"] = wrong / members
            if not n_gt:
                continue
            kept = hist[v, 0].flip(0) > 0  # bins from the most confident down, empty ones left out
            predicted = hist[v, 0].flip(0)[kept].cumsum(0)
            tp = hist[v, 1:].flip(1)[:, kept].cumsum(1)  # (T, bins)
            recall, precision = tp / n_gt, tp / predicted.clamp_min(1)
            aps = [compat.average_precision(r.numpy(), p.numpy()) if r.numel() else 0.0  # no prediction: AP 0
                   for r, p in zip(recall, precision)]
            out[f"pairs/ap50_{view}"], out[f"pairs/ap_{view}"] = aps[0], sum(aps) / len(aps)
            at = recall[0][precision[0] >= PRECISION]
            out[f"pairs/recall_p80_{view}"] = float(at.max()) if at.numel() else 0.0
        return out
