"""The built-in terms as pure tensor functions ("cores"), each traced whole into one compiled graph.

A core takes the assigner's tensors, the pairs and the term's options, and returns ``(value, counts)``: the term
per image (an exact 0 where it is NaN or infinite) and a (4,) long tensor ``(carried, reached, acted, skipped)``,
which the caller adds to the term's counters in one update. Everything a term needs, selection, math, reduction
and counting, sits in one function so that ``torch.compile`` fuses it into a few kernels; run eagerly, a core gives
the same numbers op by op. The math of each term is documented on its public function
(:mod:`pairhook.regularizers`, :mod:`pairhook.teacher_terms`).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from pairhook.fused.select import Rows, best_anchor, member_logits, pair_members

FEATURE_GRID = 3  # points per side sampled in each member's box by pair_feature


def finish(value: torch.Tensor, reached: torch.Tensor, acted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``value`` with NaN or infinity replaced by an exact 0, and the counts ``(carried, reached, acted,
    skipped)`` of (P,) bool ``reached`` and ``acted``."""
    finite = torch.isfinite(value)
    counts = torch.stack([torch.ones_like(reached, dtype=torch.long).sum(), reached.sum(), acted.sum(),
                          (~finite).long()])
    return torch.where(finite, value, torch.zeros_like(value)), counts


def pair_mean(values: torch.Tensor, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean of (P,) ``values`` over (P,) bool ``active`` (0 when none is), and its counts."""
    mean = torch.where(active, values, torch.zeros_like(values)).sum() / active.sum().clamp_min(1)
    return finish(mean, active, active & (values.detach() != 0))


def _members(logits, target_scores, fg_mask, target_gt_idx, gt_labels, pairs, anchor, rows):
    image, gt = pair_members(pairs)
    z, has = member_logits(logits, target_scores, fg_mask, target_gt_idx, gt_labels, image, gt, anchor, rows)
    (za, zb), (has_a, has_b) = z.chunk(2), has.chunk(2)
    return za, zb, has_a & has_b


def pair_consistency(logits: torch.Tensor, target_scores: torch.Tensor, fg_mask: torch.Tensor,
                     target_gt_idx: torch.Tensor, gt_labels: torch.Tensor, pairs: torch.Tensor, *, anchor: str,
                     tau_high: float, margin: float, delta: float, mismatch_weight: float,
                     rows: Optional[Rows] = None) -> tuple[torch.Tensor, torch.Tensor]:
    za, zb, active = _members(logits, target_scores, fg_mask, target_gt_idx, gt_labels, pairs, anchor, rows)
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
    return pair_mean(values, active)


def symmetric_kl(logits: torch.Tensor, target_scores: torch.Tensor, fg_mask: torch.Tensor,
                 target_gt_idx: torch.Tensor, gt_labels: torch.Tensor, pairs: torch.Tensor, *, anchor: str, T: float,
                 detach: Optional[str], rows: Optional[Rows] = None) -> tuple[torch.Tensor, torch.Tensor]:
    za, zb, active = _members(logits, target_scores, fg_mask, target_gt_idx, gt_labels, pairs, anchor, rows)
    if detach == "teacher":
        a_teaches = (za.sigmoid().amax(-1) >= zb.sigmoid().amax(-1)).unsqueeze(-1)
        za = torch.where(a_teaches, za.detach(), za)
        zb = torch.where(a_teaches, zb, zb.detach())
    values = 0.5 * ((za / T).sigmoid() - (zb / T).sigmoid()).mul(za - zb).sum(-1) / T
    return pair_mean(values, active)


def teacher(logits: torch.Tensor, target_scores: torch.Tensor, fg_mask: torch.Tensor, target_gt_idx: torch.Tensor,
            gt_labels: torch.Tensor, pairs: torch.Tensor, tau: float) -> tuple[torch.Tensor, ...]:
    """Per pair, all (P,) and detached: ``(image, gt_t, gt_s, acts, reached, gap)``: the teacher's and the
    student's GT index, whether the term acts (both members have an anchor, the teacher's GT-class probability is
    at least ``tau`` and above the student's), whether the pair was reached (both have an anchor), and the
    teacher's probability minus the student's."""
    images, gts = pair_members(pairs)
    anchor, has = best_anchor(target_scores, fg_mask, target_gt_idx, gt_labels, images, gts)
    cls = gt_labels[images, gts]
    p = logits.detach()[images, anchor, cls].float().sigmoid()  # the GT class's probability at the best anchor
    (p_a, p_b), (has_a, has_b) = p.chunk(2), has.chunk(2)
    a_teaches = p_a >= p_b
    p_t, p_s = torch.where(a_teaches, p_a, p_b), torch.where(a_teaches, p_b, p_a)
    reached = has_a & has_b
    acts = reached & (p_t >= tau) & (p_t > p_s)
    gt_a, gt_b = gts.chunk(2)
    gt_t, gt_s = torch.where(a_teaches, gt_a, gt_b), torch.where(a_teaches, gt_b, gt_a)
    return pairs[:, 0], gt_t, gt_s, acts, reached, p_t - p_s


def _per_gt(gt_labels: torch.Tensor, target_gt_idx: torch.Tensor, fg_mask: torch.Tensor, image: torch.Tensor,
            gt: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """(B, A): ``values[n]`` at every anchor the assigner gave to GT ``gt[n]`` of image ``image[n]`` (summed where a
    GT appears twice), 0 elsewhere."""
    B, G = gt_labels.shape
    table = values.new_zeros(B * G).index_add_(0, image * G + gt, values)
    return table.view(B, G).gather(1, target_gt_idx) * fg_mask


def pair_quality(logits: torch.Tensor, target_scores: torch.Tensor, fg_mask: torch.Tensor,
                 target_gt_idx: torch.Tensor, gt_labels: torch.Tensor, pairs: torch.Tensor, scale: torch.Tensor, *,
                 tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``scale``: 0-d, the ramp-up times the class gain."""
    image, _, gt_s, acts, reached, gap = teacher(logits, target_scores, fg_mask, target_gt_idx, gt_labels, pairs, tau)
    weight = _per_gt(gt_labels, target_gt_idx, fg_mask, image, gt_s, gap * acts)  # (B, A)
    bce = F.binary_cross_entropy_with_logits(logits, target_scores, reduction="none").sum(-1)
    weighted = torch.where(weight > 0, weight * bce, 0.0)  # an infinite logit elsewhere stays out (0 * inf)
    value = scale * weighted.sum() / target_scores.sum().clamp_min(1)
    return finish(value, reached, acts)


def _axis(lo: torch.Tensor, hi: torch.Tensor, scale: float, size: int) -> tuple[torch.Tensor, ...]:
    """roi_align's sample coordinates along one axis (aligned, 2 samples per cell): for (N,) box edges ``lo``,
    ``hi`` in px, the (N, 2 * FEATURE_GRID) lower cell index, upper cell index, weight of the upper one, and
    whether the point lies within a cell of the map (else it samples 0)."""
    steps = (torch.arange(2 * FEATURE_GRID, device=lo.device, dtype=torch.float32) + 0.5) / 2  # 0.25, 0.75, ...
    start = lo.unsqueeze(-1) * scale - 0.5
    point = start + (hi.unsqueeze(-1) * scale - 0.5 - start) / FEATURE_GRID * steps
    inside = (point >= -1) & (point <= size)
    point = point.clamp(0, size - 1)
    low = point.floor()
    return low.long(), (low + 1).clamp_max(size - 1).long(), point - low, inside


def roi_grid(feats: torch.Tensor, images: torch.Tensor, boxes: torch.Tensor, stride: float) -> torch.Tensor:
    """(N, FEATURE_GRID, FEATURE_GRID, C): ``torchvision.ops.roi_align(feats, rois, FEATURE_GRID, 1 / stride,
    sampling_ratio=2, aligned=True)``, channels last, written out as bilinear gathers so that a compiled graph fuses
    it (roi_align is an opaque kernel: two launches per level, forward and backward). Tested against roi_align."""
    _, _, H, W = feats.shape
    y0, y1, wy, in_y = _axis(boxes[:, 1], boxes[:, 3], 1.0 / stride, H)
    x0, x1, wx, in_x = _axis(boxes[:, 0], boxes[:, 2], 1.0 / stride, W)
    feats, b = feats.float(), images.view(-1, 1, 1)

    def at(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return feats[b, :, y.unsqueeze(-1), x.unsqueeze(-2)]  # (N, S, S, C); its gradient keeps feats' layout

    wy, wx = wy.unsqueeze(-1).unsqueeze(-1), wx.unsqueeze(-2).unsqueeze(-1)
    value = ((1 - wy) * ((1 - wx) * at(y0, x0) + wx * at(y0, x1)) + wy * ((1 - wx) * at(y1, x0) + wx * at(y1, x1)))
    value = value * (in_y.unsqueeze(-1) & in_x.unsqueeze(-2)).unsqueeze(-1)
    N, S, _, C = value.shape
    return value.view(N, FEATURE_GRID, 2, FEATURE_GRID, 2, C).mean((2, 4))


def pair_feature(logits: torch.Tensor, target_scores: torch.Tensor, fg_mask: torch.Tensor,
                 target_gt_idx: torch.Tensor, gt_labels: torch.Tensor, pairs: torch.Tensor, scale: torch.Tensor,
                 gt_bboxes: torch.Tensor, features: tuple[torch.Tensor, ...], *, strides: tuple[float, ...],
                 tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``scale``: 0-d, the ramp-up times the class gain."""
    image, gt_t, gt_s, acts, reached, _ = teacher(logits, target_scores, fg_mask, target_gt_idx, gt_labels, pairs,
                                                  tau)
    images = image.repeat(2)
    boxes = gt_bboxes[images, torch.cat([gt_t, gt_s])].float()
    per_pair = boxes.new_zeros(image.shape[0])
    for feats, stride in zip(features, strides):
        f_t, f_s = roi_grid(feats, images, boxes, stride).chunk(2)
        per_pair = per_pair + (1 - F.cosine_similarity(f_s, f_t.detach(), dim=-1)).mean((1, 2))
    # the teacher's share of the class loss: the sum of the assigner's targets over its anchors
    per_anchor = (target_scores.sum(-1) * fg_mask).float()
    B, G = gt_labels.shape
    slot = (torch.arange(B, device=pairs.device).unsqueeze(-1) * G + target_gt_idx).flatten()
    mass = per_anchor.new_zeros(B * G).index_add_(0, slot, per_anchor.flatten())[image * G + gt_t] * acts
    value = scale * ((mass * per_pair).sum() / len(features)) / target_scores.sum().clamp_min(1)
    return finish(value, reached, acts)
