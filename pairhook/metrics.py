"""Pair-consistency metrics: does the detector find both views of a defect, call them the same, equally sure?

Computed from post-NMS detections and ground truth, image by image, with no Ultralytics in sight (the validator glue
is :mod:`pairhook.val_metrics`). Only predictions with confidence ``>= conf`` count (default 0.25, Ultralytics'
``predict`` default: what a deployed detector reports; validation itself keeps boxes down to 0.001 for mAP). For
each GT member ``g`` of a pair (box ``B_g``, class ``c_g``):

* its **detection** is the most confident prediction with ``IoU(B_g, pred) >= iou`` and class ``c_g``; the member
  is *detected* when there is one;
* its **localization** is the most confident prediction with ``IoU >= iou`` of *any* class: what a user sees at
  that place (post-NMS boxes of other classes at the same place are less confident alternatives).

Over the GT pairs seen (``pairs/n``):

* ``pairs/both_detected``: fraction of pairs whose two members are both detected;
* ``pairs/one_detected``: fraction of pairs with exactly one member detected: the inconsistent pairs, one view found
  and the other missed (``both_detected + one_detected`` is the fraction of pairs found at least once);
* ``pairs/recall_upper``, ``pairs/recall_lower``: among the *vertically shifted* pairs (members' centres further
  apart vertically than horizontally), the fraction whose upper member, and whose lower member, is detected. Upper
  and lower are told by the GT boxes' y centres (:func:`view_members`), never by the order of the members in the
  pair file; pairs shifted mainly sideways are left out of both;
* ``pairs/class_agree``: among pairs whose two members are both localized, the fraction whose localizations have
  the same class (a pair found only on one view says nothing about agreement and is left out);
* ``pairs/conf_gap``: mean ``|conf_a - conf_b|`` of the two members' detections, over pairs with both detected.

An empty denominator gives NaN (never 0, which would read as perfect agreement or as a total miss).

All of these are counted at ``conf``, so a detector that only raises its scores raises them too. The threshold-free
per-view metrics beside them (each view's AP, its recall at matched precision, wrong-class boxes on the members) are
in :mod:`pairhook.view_metrics`; :class:`PairMetrics` computes both.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from pairhook.view_metrics import KEYS as VIEW_KEYS
from pairhook.view_metrics import ViewMetrics

COUNT_KEYS = ("pairs/both_detected", "pairs/one_detected", "pairs/recall_upper", "pairs/recall_lower",
              "pairs/class_agree", "pairs/conf_gap", "pairs/n")
#: Every pair metric, in ``results.csv``'s order: the thresholded counts, then the per-view metrics.
KEYS = COUNT_KEYS + VIEW_KEYS
IOU = 0.5
CONF = 0.25


def member_detections(gt_boxes: torch.Tensor, gt_cls: torch.Tensor, boxes: torch.Tensor, conf: torch.Tensor,
                      cls: torch.Tensor, iou: float = IOU, conf_min: float = CONF
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per GT box: confidence of its detection (``-inf`` if none), and class and confidence of its localization.

    Args:
        gt_boxes: ``(G, 4)`` xyxy; ``gt_cls``: ``(G,)``.
        boxes, conf, cls: ``(N, 4)`` xyxy in the same coordinates, ``(N,)``, ``(N,)`` post-NMS predictions.
        iou, conf_min: least IoU with the GT box and least confidence of a prediction that counts.

    Returns:
        ``det_conf (G,)``, ``loc_cls (G,)`` (-1 if not localized), ``loc_conf (G,)`` (``-inf`` if not localized).
    """
    from torchvision.ops import box_iou

    g = gt_boxes.shape[0]
    if boxes.shape[0] == 0 or g == 0:
        none = torch.full((g,), -math.inf, device=gt_boxes.device)
        return none, torch.full((g,), -1, dtype=torch.long, device=gt_boxes.device), none.clone()
    near = (box_iou(gt_boxes.float(), boxes.float()) >= iou) & (conf >= conf_min)[None]  # (G, N)
    c = conf.float().expand(g, -1)
    right = near & (cls.long()[None] == gt_cls.long()[:, None])
    det_conf = torch.where(right, c, -math.inf).amax(1)
    loc_conf, best = torch.where(near, c, -math.inf).max(1)
    loc_cls = torch.where(loc_conf > -math.inf, cls.long()[best], -1)
    return det_conf, loc_cls, loc_conf


def view_members(gt_boxes: torch.Tensor, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which member of each pair is the upper view and which the lower, by the GT boxes' y centres.

    Args:
        gt_boxes: ``(G, 4)`` xyxy, image coordinates (y grows downwards); ``pairs``: ``(P, 2)`` GT indices.

    Returns:
        ``upper (P,)``, ``lower (P,)`` GT indices, and ``vertical (P,)`` bool: the members' centres are further apart
        vertically than horizontally (only then do upper and lower mean a view). Equal y centres keep member order.
    """
    centre = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
    a, b = pairs[:, 0].long(), pairs[:, 1].long()
    d = centre[b] - centre[a]  # (P, 2): member b relative to member a
    b_upper = d[:, 1] < 0
    return torch.where(b_upper, b, a), torch.where(b_upper, a, b), d[:, 1].abs() > d[:, 0].abs()


#: Length of :attr:`PairMetrics.counts`: pairs, both found, both localized, classes agree, confidence gap sum, one
#: found, vertical pairs, upper found, lower found.
N_COUNTS = 9


class PairMetrics:
    """Accumulates pair-consistency counts over images; :meth:`compute` gives the :data:`KEYS` dict.

    The counts stay on the tensors' device until :meth:`compute`; the per-view matching (:mod:`pairhook.view_metrics`)
    runs Ultralytics' mAP matching, on the host, as the validator itself does for every image.
    """

    def __init__(self, iou: float = IOU, conf: float = CONF) -> None:
        self.iou, self.conf = iou, conf
        self.reset()

    def reset(self) -> None:
        # pairs, both detected, both localized, class agree, sum of conf gaps, exactly one detected,
        # vertically shifted pairs, their upper members detected, their lower members detected
        self.counts: torch.Tensor | None = None
        self.views = ViewMetrics(self.iou, self.conf)

    def update(self, gt_boxes: torch.Tensor, gt_cls: torch.Tensor, pairs: torch.Tensor, boxes: torch.Tensor,
               conf: torch.Tensor, cls: torch.Tensor) -> None:
        """Add one image: GT ``(G, 4)`` xyxy and ``(G,)`` classes, ``pairs (P, 2)`` GT indices, predictions."""
        if pairs.shape[0] == 0:
            return
        det, loc_cls, _ = member_detections(gt_boxes, gt_cls, boxes, conf, cls, self.iou, self.conf)
        found = det > -math.inf  # (G,)
        a, b = pairs[:, 0].long(), pairs[:, 1].long()
        both = found[a] & found[b]
        localized = (loc_cls[a] >= 0) & (loc_cls[b] >= 0)
        agree = localized & (loc_cls[a] == loc_cls[b])
        gap = torch.where(both, (det[a] - det[b]).abs(), 0.0)
        upper, lower, vertical = view_members(gt_boxes, pairs)
        self.views.update(gt_boxes, gt_cls, upper, lower, vertical, boxes, conf, cls)
        parts = (both, localized, agree, gap, found[a] ^ found[b], vertical, found[upper] & vertical,
                 found[lower] & vertical)
        counts = torch.stack([gap.new_tensor(len(a), dtype=torch.float64), *(x.sum().double() for x in parts)])
        self.counts = counts if self.counts is None else self.counts + counts.to(self.counts.device)

    def reduce(self, reduce: Callable[[torch.Tensor], torch.Tensor], device: torch.device | str) -> None:
        """Replace the raw counts by ``reduce(counts)``, e.g. their sum over multi-GPU ranks (every rank calls it,
        with zeros on ``device`` where it saw no pair), so :meth:`compute` gives the metrics of all images."""
        counts = self.counts if self.counts is not None else torch.zeros(N_COUNTS, dtype=torch.float64, device=device)
        self.counts = reduce(counts)
        self.views.reduce(reduce, device)

    def compute(self) -> dict[str, float]:
        """The :data:`KEYS` dict; NaN where nothing was there to measure (see the module docstring)."""
        n, both, localized, agree, gap, one, vertical, upper, lower = (
            self.counts.tolist() if self.counts is not None else [0.0] * N_COUNTS)

        def ratio(num: float, den: float) -> float:
            return num / den if den else math.nan

        counted = zip(COUNT_KEYS, (ratio(both, n), ratio(one, n), ratio(upper, vertical), ratio(lower, vertical),
                                   ratio(agree, localized), ratio(gap, both), float(n)))
        return {**dict(counted), **self.views.compute()}


def pair_metrics(images: list[dict[str, torch.Tensor]], iou: float = IOU, conf: float = CONF) -> dict[str, float]:
    """The metrics over a list of images, each a dict with ``gt_boxes, gt_cls, pairs, boxes, conf, cls``."""
    acc = PairMetrics(iou, conf)
    for im in images:
        acc.update(im["gt_boxes"], im["gt_cls"], im["pairs"], im["boxes"], im["conf"], im["cls"])
    return acc.compute()


def format_metrics(m: dict[str, float]) -> str:
    """One log line: ``both detected 0.750, one detected 0.250, recall upper 1.000 lower 0.750, class agree 1.000,
    conf gap 0.120 over 4 pairs``."""
    def g(name: str) -> float:
        return m.get(f"pairs/{name}", math.nan)

    return (f"both detected {m['pairs/both_detected']:.3f}, one detected {m['pairs/one_detected']:.3f}, "
            f"recall upper {m['pairs/recall_upper']:.3f} lower {m['pairs/recall_lower']:.3f}, "
            f"class agree {m['pairs/class_agree']:.3f}, conf gap {m['pairs/conf_gap']:.3f} over {int(m['pairs/n'])} "
            f"pairs; AP50-95 upper {g('ap_upper'):.3f} lower {g('ap_lower'):.3f}, recall at precision 0.8 upper "
            f"{g('recall_p80_upper'):.3f} lower {g('recall_p80_lower'):.3f}, wrong-class boxes upper "
            f"{g('wrong_class_upper'):.3f} lower {g('wrong_class_lower'):.3f}")
