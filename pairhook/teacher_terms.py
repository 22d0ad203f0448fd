"""Pair terms built on what the assigner knows: the better view of each pair teaches the worse one, and Ultralytics'
own targets are never overridden.

Both terms

* take the pair's class from the ground truth (``ctx.gt_labels``), never from a prediction: nothing is pushed
  towards another class;
* choose the teacher of each pair as the member whose best anchor gives that class the higher probability
  (detached; ties: member a), and act on a pair only when the teacher's probability reaches ``tau`` and exceeds the
  student's;
* are scaled as Ultralytics' class loss is: summed, divided by the sum of the assigner's targets
  (:attr:`~pairhook.context.PairContext.target_scores_sum`) and multiplied by the class gain, so ``weight=1`` is in
  the class loss's own units at any batch size and box count;
* ramp up over the first ``rampup`` share of the epochs, as Mean Teacher and CSD do
  (:meth:`~pairhook.context.PairContext.ramp`).

``pair_quality`` acts on class scores, with the assigner's own quality-aware targets: so its targets never exceed
them. ``pair_feature`` acts on the neck's features, before any head.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from pairhook.context import PairContext
from pairhook.hookspecs import hookimpl

FEATURE_GRID = 3  # points per side sampled in each member's box


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _check_common(tau: float, rampup: float) -> None:
    _check(0.0 <= tau <= 1.0, f"tau must be in [0, 1], got {tau!r}")
    _check(0.0 <= rampup <= 1.0, f"rampup must be in [0, 1] (a share of the epochs), got {rampup!r}")


def teacher(ctx: PairContext, tau: float) -> tuple[torch.Tensor, ...]:
    """Per pair, all (P,) and detached: ``(image, gt_t, gt_s, acts, reached, gap)``: the teacher's and the student's
    GT index, whether the term acts (both members have an anchor, the teacher's GT-class probability is at least
    ``tau`` and above the student's), whether the pair was reached (both have an anchor), and the teacher's
    probability minus the student's."""
    image, gt_a, gt_b = ctx.pairs.to(ctx.logits.device).unbind(-1)
    images, gts = torch.cat([image, image]), torch.cat([gt_a, gt_b])
    anchor, has = ctx.best_anchor(images, gts)
    cls = ctx.gt_labels[images, gts]
    p = ctx.logits.detach()[images, anchor, cls].float().sigmoid()  # the GT class's probability at the best anchor
    (p_a, p_b), (has_a, has_b) = p.chunk(2), has.chunk(2)
    a_teaches = p_a >= p_b
    p_t, p_s = torch.where(a_teaches, p_a, p_b), torch.where(a_teaches, p_b, p_a)
    reached = has_a & has_b
    acts = reached & (p_t >= tau) & (p_t > p_s)
    gt_t, gt_s = torch.where(a_teaches, gt_a, gt_b), torch.where(a_teaches, gt_b, gt_a)
    return image, gt_t, gt_s, acts, reached, p_t - p_s


def _per_gt(ctx: PairContext, image: torch.Tensor, gt: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """(B, A): ``values[n]`` at every anchor the assigner gave to GT ``gt[n]`` of image ``image[n]`` (summed where a
    GT appears twice), 0 elsewhere. One scatter and one gather, whatever the number of pairs."""
    B, G = ctx.gt_labels.shape
    table = torch.zeros(B * G, device=values.device).index_add_(0, image * G + gt, values.float())
    return table.view(B, G).gather(1, ctx.target_gt_idx) * ctx.fg_mask


def _gt_mass(ctx: PairContext, image: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(N,) the sum of the assigner's targets over the anchors of GT ``gt[n]``: its share of the class loss."""
    B, G = ctx.gt_labels.shape
    per_anchor = ctx.target_scores.sum(-1) * ctx.fg_mask  # one-hot class targets: the anchor's target score
    table = torch.zeros(B * G, device=per_anchor.device).index_add_(
        0, (torch.arange(B, device=per_anchor.device)[:, None] * G + ctx.target_gt_idx).flatten(),
        per_anchor.flatten().float())
    return table[image * G + gt]


def pair_quality(ctx: PairContext, *, tau: float = 0.25, rampup: float = 0.3) -> torch.Tensor:
    """Spend more of the class loss on the weaker member of each pair, with Ultralytics' own targets.

    Ultralytics' binary cross-entropy, with the assigner's quality-aware targets (the GT class at about the box's
    IoU, every other class at 0), is added again over every anchor assigned to the student, weighted by the pair's
    detached probability gap ``p_t - p_s``. The optimum is the plain loss's: targets are never raised above the
    assigner's and wrong classes are pushed down; only the effort moves towards the view the detector finds hard.
    """
    _check_common(tau, rampup)
    if ctx.num_pairs == 0 or ctx.gt_labels.shape[1] == 0:
        return ctx.zero()
    image, _, gt_s, acts, reached, gap = teacher(ctx, tau)
    ctx.count(reached, acts)
    weight = _per_gt(ctx, image, gt_s, gap * acts)  # (B, A)
    bce = F.binary_cross_entropy_with_logits(ctx.logits, ctx.target_scores, reduction="none").sum(-1)
    weighted = torch.where(weight > 0, weight * bce, 0.0)  # an infinite logit elsewhere stays out (0 * inf)
    return ctx.ramp(rampup) * ctx.cls_gain * weighted.sum() / ctx.target_scores_sum


def pair_feature(ctx: PairContext, *, tau: float = 0.25, rampup: float = 0.3) -> torch.Tensor:
    """Pull the student's neck features inside its box towards the teacher's, at corresponding points.

    Both members of a pair have boxes of the same size, so a ``3 x 3`` grid of points over each box
    (``torchvision.ops.roi_align``, every level of the neck) samples the same parts of the defect. The loss per pair
    is ``1 - cos`` between the student's and the detached teacher's feature vectors, averaged over points and
    levels, and counts as much as the teacher's own targets count in the class loss. The gradient reaches the
    backbone and neck only through the student's features; the heads keep Ultralytics' supervision alone.
    Needs the neck's features in the loss (:attr:`~pairhook.context.PairContext.features`, Ultralytics 8.4 on).
    """
    from torchvision.ops import roi_align

    _check_common(tau, rampup)
    if ctx.num_pairs == 0 or ctx.gt_labels.shape[1] == 0:
        return ctx.zero()
    if ctx.features is None or ctx.strides is None:
        raise ValueError("needs the neck's feature maps in the loss, which Ultralytics passes from 8.4.0 on: "
                         "upgrade Ultralytics (pip install -U 'ultralytics>=8.4') or use pair_quality")
    image, gt_t, gt_s, acts, reached, _ = teacher(ctx, tau)
    ctx.count(reached, acts)
    images = torch.cat([image, image])
    boxes = ctx.gt_bboxes[images, torch.cat([gt_t, gt_s])].float()
    rois = torch.cat([images.unsqueeze(-1).float(), boxes], -1)
    per_pair = torch.zeros(image.shape[0], device=boxes.device)
    for feats, stride in zip(ctx.features, ctx.strides):
        grid = roi_align(feats.float(), rois, FEATURE_GRID, spatial_scale=1.0 / stride, sampling_ratio=2,
                         aligned=True)
        f_t, f_s = grid.chunk(2)
        per_pair = per_pair + (1 - F.cosine_similarity(f_s, f_t.detach(), dim=1)).mean((1, 2))
    mass = _gt_mass(ctx, image, gt_t) * acts
    value = (mass * per_pair).sum() / len(ctx.features)
    return ctx.ramp(rampup) * ctx.cls_gain * value / ctx.target_scores_sum


@hookimpl
def pairhook_register_regularizers(register: Callable[..., None]) -> None:
    """Register the assigner-aware pair terms."""
    register("pair_quality", pair_quality, loss_name="pairq_loss", needs_pairs=True, gate="tau")
    register("pair_feature", pair_feature, loss_name="pairf_loss", needs_pairs=True, gate="tau")
