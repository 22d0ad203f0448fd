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

from pairhook import fused
from pairhook.context import PairContext
from pairhook.fused import cores
from pairhook.fused.cores import FEATURE_GRID
from pairhook.hookspecs import hookimpl

__all__ = ["FEATURE_GRID", "pair_feature", "pair_quality"]


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _check_common(tau: float, rampup: float) -> None:
    _check(0.0 <= tau <= 1.0, f"tau must be in [0, 1], got {tau!r}")
    _check(0.0 <= rampup <= 1.0, f"rampup must be in [0, 1] (a share of the epochs), got {rampup!r}")


def pair_quality(ctx: PairContext, *, tau: float = 0.25, rampup: float = 0.3) -> torch.Tensor:
    """Spend more of the class loss on the weaker member of each pair, with Ultralytics' own targets.

    Ultralytics' binary cross-entropy, with the assigner's quality-aware targets (the GT class at about the box's
    IoU, every other class at 0), is added again over every anchor assigned to the student, weighted by the pair's
    detached probability gap ``p_t - p_s``. The optimum is the plain loss's: targets are never raised above the
    assigner's and wrong classes are pushed down; only the effort moves towards the view the detector finds hard.
    """
    _check_common(tau, rampup)
    return fused.run(ctx, cores.pair_quality, fused.constant(ctx.ramp(rampup) * ctx.cls_gain, ctx.logits.device),
                     tau=tau)


def pair_feature(ctx: PairContext, *, tau: float = 0.25, rampup: float = 0.3) -> torch.Tensor:
    """Pull the student's neck features inside its box towards the teacher's, at corresponding points.

    Both members of a pair have boxes of the same size, so a ``3 x 3`` grid of points over each box
    (``torchvision.ops.roi_align``, every level of the neck) samples the same parts of the defect. The loss per pair
    is ``1 - cos`` between the student's and the detached teacher's feature vectors, averaged over points and
    levels, and counts as much as the teacher's own targets count in the class loss. The gradient reaches the
    backbone and neck only through the student's features; the heads keep Ultralytics' supervision alone.
    Needs the neck's features in the loss (:attr:`~pairhook.context.PairContext.features`, Ultralytics 8.4 on).
    """
    _check_common(tau, rampup)
    if ctx.num_pairs == 0 or ctx.gt_labels.shape[1] == 0:
        return ctx.zero()
    if ctx.features is None or ctx.strides is None:
        raise ValueError("needs the neck's feature maps in the loss, which Ultralytics passes from 8.4.0 on: "
                         "upgrade Ultralytics (pip install -U 'ultralytics>=8.4') or use pair_quality")
    scale = fused.constant(ctx.ramp(rampup) * ctx.cls_gain, ctx.logits.device)
    return fused.run(ctx, cores.pair_feature, scale, ctx.gt_bboxes, ctx.features, strides=ctx.strides, tau=tau)


@hookimpl
def pairhook_register_regularizers(register: Callable[..., None]) -> None:
    """Register the assigner-aware pair terms."""
    register("pair_quality", pair_quality, loss_name="pairq_loss", needs_pairs=True, gate="tau")
    register("pair_feature", pair_feature, loss_name="pairf_loss", needs_pairs=True, gate="tau")
