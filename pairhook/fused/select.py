"""Which anchors represent each member of a pair: pure tensor functions of the assigner's outputs.

Shared by :class:`~pairhook.context.PairContext` (its public helpers) and the fused built-in terms, which trace them
into one compiled graph. No host synchronisation, and no data-dependent shapes where they run compiled or on an
accelerator, so they compile with a pair count that changes every batch.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

Rows = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _candidates(fg_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat ``(B*A)`` indices of the anchors to look at, and which of them are assigned (``fg_mask``).

    Run eagerly on the CPU, these are the assigned anchors alone (about 1% of them): ``nonzero`` costs one pass over
    a bool map and, with the data on the host, waits for nothing. On an accelerator it would stall the stream until
    the count is known, and a compiled graph cannot have a shape that depends on data, so every anchor is kept and
    masked instead.
    """
    fg = fg_mask.flatten()
    if fg.device.type == "cpu" and not torch.compiler.is_compiling():
        flat = fg.nonzero().squeeze(-1)
        return flat, torch.ones_like(flat, dtype=torch.bool)
    return torch.arange(fg.numel(), device=fg.device), fg


def best_anchor(target_scores: torch.Tensor, fg_mask: torch.Tensor, target_gt_idx: torch.Tensor,
                gt_labels: torch.Tensor, image: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per member ``(image[n], gt[n])``, the supervising anchor with the largest target score for the GT's class.

    Ties go to the lowest anchor index. Returns ``(anchor, has_anchor)`` shaped like ``image``; a member with no
    anchor gets index 0 and ``has_anchor`` False. One max-reduction over the anchors for every ground truth at once,
    so the cost does not grow with the number of members.
    """
    (B, A), G = fg_mask.shape, gt_labels.shape[1]
    if G == 0 or image.numel() == 0:
        return torch.zeros_like(image), torch.zeros_like(image, dtype=torch.bool)
    flat, fg = _candidates(fg_mask)
    b, a = flat.div(A, rounding_mode="floor"), flat.remainder(A)
    g = target_gt_idx[b, a]
    score = target_scores[b, a, gt_labels[b, g]]
    # A 64-bit key per anchor: the fp32 bits of a score >= 0 order like the score (abs turns -0.0 into +0.0), and
    # the low 32 bits make the lower anchor win a tie.
    key = torch.where(fg, (score.float().abs().view(torch.int32).long() << 32) + (A - 1 - a), -1)
    best = key.new_full((B * G,), -1).scatter_reduce_(0, b * G + g, key, "amax")[image * G + gt]
    has = best >= 0
    return torch.where(has, A - 1 - (best & 0xFFFFFFFF), 0), has


def anchor_mask(fg_mask: torch.Tensor, target_gt_idx: torch.Tensor, image: torch.Tensor,
                gt: torch.Tensor) -> torch.Tensor:
    """(N, A) bool: the anchors that supervise GT ``gt[n]`` of image ``image[n]``, straight from the assigner."""
    return fg_mask[image] & (target_gt_idx[image] == gt.unsqueeze(-1))


def member_target_scores(target_scores: torch.Tensor, gt_labels: torch.Tensor, image: torch.Tensor,
                         gt: torch.Tensor) -> torch.Tensor:
    """(N, A) the assigner's target score for the class of GT ``gt[n]`` at every anchor of image ``image[n]``."""
    anchors = torch.arange(target_scores.shape[1], device=image.device)
    cls = gt_labels[image, gt].unsqueeze(-1)
    return target_scores[image.unsqueeze(-1), anchors, cls]  # never materialises (N, A, C)


def mean_probabilities(logits: torch.Tensor, target_scores: torch.Tensor, fg_mask: torch.Tensor,
                       target_gt_idx: torch.Tensor, gt_labels: torch.Tensor, image: torch.Tensor,
                       gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per member (``image``, ``gt`` flat, (N,)), its per-class probabilities averaged over all its anchors,
    weighted by their target score for the GT's class (equal weights where those are all 0): ``(probs (N, C),
    has_anchor (N,))``."""
    mask = anchor_mask(fg_mask, target_gt_idx, image, gt)
    w = member_target_scores(target_scores, gt_labels, image, gt).float() * mask
    w = torch.where(w.sum(-1, keepdim=True) > 0, w, mask.float())
    w = w / w.sum(-1, keepdim=True).clamp_min(1e-12)
    on_image = image == torch.arange(logits.shape[0], device=image.device).unsqueeze(-1)  # (B, N)
    probs = torch.einsum("bna,bac->nc", w * on_image.unsqueeze(-1), logits.float().sigmoid())
    return probs, mask.any(-1)


def member_logits(logits: torch.Tensor, target_scores: torch.Tensor, fg_mask: torch.Tensor,
                  target_gt_idx: torch.Tensor, gt_labels: torch.Tensor, image: torch.Tensor, gt: torch.Tensor,
                  anchor: str = "best", rows: Optional[Rows] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Class logits representing each member (fp32) and whether it has an anchor: ``(logits (N, C), has (N,))``.

    ``anchor="best"``: the logits at :func:`best_anchor`, gathered by ``rows(image, anchor)`` when given (the
    context's cheap-backward gather) or by indexing. ``anchor="mean"``: the logit of :func:`mean_probabilities`.
    """
    if anchor == "best":
        idx, has = best_anchor(target_scores, fg_mask, target_gt_idx, gt_labels, image, gt)
        return (logits[image, idx].float() if rows is None else rows(image, idx)), has
    if anchor == "mean":
        probs, has = mean_probabilities(logits, target_scores, fg_mask, target_gt_idx, gt_labels, image, gt)
        eps = torch.finfo(torch.float32).eps
        return torch.logit(probs.clamp(eps, 1 - eps)), has
    raise ValueError(f"anchor must be 'best' or 'mean', got {anchor!r}")


def pair_members(pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image, gt)``, each (2P,): the members a of every pair, then the members b."""
    return pairs[:, 0].repeat(2), pairs[:, 1:].t().reshape(-1)
