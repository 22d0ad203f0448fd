"""Plain reference implementations of the built-in terms: op by op with autograd, from the public
:class:`~pairhook.context.PairContext` helpers, as pairhook computed them before they were fused. The fused terms
must give the same values and gradients (``tests/test_fused.py``).

The best anchor is found here by a different algorithm than pairhook's (a masked argmax per member instead of one
scatter over the anchors), so the two check each other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from pairhook.context import PairContext

FEATURE_GRID = 3


def best(ctx: PairContext, image: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The best anchor of every member by a masked argmax over its image's anchors."""
    scores = torch.where(ctx.anchor_mask(image, gt), ctx.member_target_scores(image, gt).float(), -1.0)
    top, anchor = scores.max(-1)  # the first of equal maxima: the lowest anchor
    has = top >= 0
    return torch.where(has, anchor, 0), has


def members(ctx: PairContext, anchor: str):
    image, gt_a, gt_b = ctx.pairs.unbind(-1)
    images, gts = torch.cat([image, image]), torch.cat([gt_a, gt_b])
    if anchor == "best":
        idx, has = best(ctx, images, gts)
        z = ctx.logits[images, idx].float()
    else:
        z, has = ctx.member_logits(images, gts, "mean")
    (za, zb), (has_a, has_b) = z.chunk(2), has.chunk(2)
    return za, zb, has_a & has_b


def mean(values: torch.Tensor, active: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """(mean over active, reached, acted)."""
    value = torch.where(active, values, torch.zeros_like(values)).sum() / active.sum().clamp_min(1)
    return value, int(active.sum()), int((active & (values.detach() != 0)).sum())


def pair_consistency(ctx, anchor="best", tau_high=0.5, margin=0.05, delta=0.1, mismatch_weight=1.0):
    za, zb, active = members(ctx, anchor)
    pa, pb = za.sigmoid(), zb.sigmoid()
    a_teaches = (pa.amax(-1) >= pb.amax(-1)).unsqueeze(-1)
    p_t = torch.where(a_teaches, pa, pb).detach()
    p_s = torch.where(a_teaches, pb, pa)
    conf_t, cls_t = p_t.max(-1)
    conf_s, cls_s = p_s.max(-1)
    gap = (conf_t - conf_s - margin).clamp_min(0)
    same = F.huber_loss(gap, torch.zeros_like(gap), reduction="none", delta=delta)
    p_s_at_t = p_s.gather(-1, cls_t.unsqueeze(-1)).squeeze(-1)
    mismatch = mismatch_weight * (conf_t - p_s_at_t).clamp_min(0).square()
    values = torch.where(cls_t == cls_s, same, mismatch)
    values = torch.where(conf_t >= tau_high, values, torch.zeros_like(values))
    return mean(values, active)


def symmetric_kl(ctx, anchor="best", T=1.0, detach=None):
    za, zb, active = members(ctx, anchor)
    if detach == "teacher":
        a_teaches = (za.sigmoid().amax(-1) >= zb.sigmoid().amax(-1)).unsqueeze(-1)
        za = torch.where(a_teaches, za.detach(), za)
        zb = torch.where(a_teaches, zb, zb.detach())
    values = 0.5 * ((za / T).sigmoid() - (zb / T).sigmoid()).mul(za - zb).sum(-1) / T
    return mean(values, active)


def teacher(ctx, tau):
    image, gt_a, gt_b = ctx.pairs.unbind(-1)
    images, gts = torch.cat([image, image]), torch.cat([gt_a, gt_b])
    anchor, has = best(ctx, images, gts)
    p = ctx.logits.detach()[images, anchor, ctx.gt_labels[images, gts]].float().sigmoid()
    (p_a, p_b), (has_a, has_b) = p.chunk(2), has.chunk(2)
    a_teaches = p_a >= p_b
    p_t, p_s = torch.where(a_teaches, p_a, p_b), torch.where(a_teaches, p_b, p_a)
    reached = has_a & has_b
    acts = reached & (p_t >= tau) & (p_t > p_s)
    return image, torch.where(a_teaches, gt_a, gt_b), torch.where(a_teaches, gt_b, gt_a), acts, reached, p_t - p_s


def pair_quality(ctx, tau=0.25, rampup=0.3):
    image, _, gt_s, acts, reached, gap = teacher(ctx, tau)
    B, G = ctx.gt_labels.shape
    table = torch.zeros(B * G).index_add_(0, image * G + gt_s, (gap * acts).float())
    weight = table.view(B, G).gather(1, ctx.target_gt_idx) * ctx.fg_mask
    bce = F.binary_cross_entropy_with_logits(ctx.logits, ctx.target_scores, reduction="none").sum(-1)
    weighted = torch.where(weight > 0, weight * bce, 0.0)
    value = ctx.ramp(rampup) * ctx.cls_gain * weighted.sum() / ctx.target_scores_sum
    return value, int(reached.sum()), int(acts.sum())


def pair_feature(ctx, tau=0.25, rampup=0.3):
    image, gt_t, gt_s, acts, reached, _ = teacher(ctx, tau)
    images = torch.cat([image, image])
    boxes = ctx.gt_bboxes[images, torch.cat([gt_t, gt_s])].float()
    rois = torch.cat([images.unsqueeze(-1).float(), boxes], -1)
    per_pair = torch.zeros(image.shape[0])
    for feats, stride in zip(ctx.features, ctx.strides):
        grid = roi_align(feats.float(), rois, FEATURE_GRID, spatial_scale=1.0 / stride, sampling_ratio=2,
                         aligned=True)
        f_t, f_s = grid.chunk(2)
        per_pair = per_pair + (1 - F.cosine_similarity(f_s, f_t.detach(), dim=1)).mean((1, 2))
    B, G = ctx.gt_labels.shape
    per_anchor = ctx.target_scores.sum(-1) * ctx.fg_mask
    table = torch.zeros(B * G).index_add_(0, (torch.arange(B)[:, None] * G + ctx.target_gt_idx).flatten(),
                                          per_anchor.flatten().float())
    mass = table[image * G + gt_t] * acts
    value = (mass * per_pair).sum() / len(ctx.features)
    return ctx.ramp(rampup) * ctx.cls_gain * value / ctx.target_scores_sum, int(reached.sum()), int(acts.sum())


PLAIN = {"pair_consistency": pair_consistency, "symmetric_kl": symmetric_kl, "pair_quality": pair_quality,
         "pair_feature": pair_feature}
