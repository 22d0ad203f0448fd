"""`PairContext`: everything a regularizer sees for one criterion call, in pairhook's own terms."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch


def _no_pairs() -> torch.Tensor:
    return torch.zeros(0, 3, dtype=torch.long)


@dataclass(frozen=True)
class PairContext:
    """What the task-aligned assigner decided for one batch, plus the logits that carry gradient.

    B images, A anchors, C classes, G ground-truth slots per image (padded), P pairs.

    Attributes:
        logits: (B, A, C) raw class logits of the branch the regularizer is attached to; carry gradient in training.
        target_scores: (B, A, C) the assigner's soft class targets (one-hot x normalised alignment).
        target_bboxes: (B, A, 4) xyxy target box of each anchor, network-input pixels.
        fg_mask: (B, A) bool, anchors assigned to some ground truth.
        target_gt_idx: (B, A) long, index of the ground truth each anchor was assigned to (valid where `fg_mask`).
        gt_labels: (B, G) long ground-truth classes (padding rows are 0 with an all-zero box).
        gt_bboxes: (B, G, 4) xyxy ground-truth boxes in network-input pixels.
        pairs: (P, 3) long rows ``(image, gt_a, gt_b)``: image index in the batch and the two members' GT indices in
            the assigner's per-image order. Empty (0, 3) when no pairs are known for the batch.
        batch: the Ultralytics batch dict, as the criterion received it (classes decoded).
        epoch: current epoch (0-based); epochs: total epochs of the run.
        training: False when called from validation (no gradient is taken then).
        anchor_points: (A, 2) anchor centres in network-input pixels, when pairhook built the context.
    """

    logits: torch.Tensor
    target_scores: torch.Tensor
    target_bboxes: torch.Tensor
    fg_mask: torch.Tensor
    target_gt_idx: torch.Tensor
    gt_labels: torch.Tensor
    gt_bboxes: torch.Tensor
    pairs: torch.Tensor = field(default_factory=_no_pairs)
    batch: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    epochs: int = 1
    training: bool = True
    anchor_points: Optional[torch.Tensor] = None

    @property
    def num_pairs(self) -> int:
        """P, the number of pair rows (a shape, so no host sync)."""
        return self.pairs.shape[0]

    def anchor_mask(self, image: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """(N, A) bool: the anchors that supervise GT ``gt[n]`` of image ``image[n]``, straight from the assigner."""
        return self.fg_mask[image] & (self.target_gt_idx[image] == gt.unsqueeze(-1))

    def best_anchor(self, image: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per member, the supervising anchor with the largest target score for the GT's class.

        Ties go to the lowest anchor index. Returns ``(anchor (N,) long, has_anchor (N,) bool)``; where a member has
        no anchor, its index is 0 and ``has_anchor`` is False.
        """
        scores = self.member_target_scores(image, gt)
        mask = self.anchor_mask(image, gt)
        anchor = torch.where(mask, scores, torch.full_like(scores, -1.0)).argmax(-1)
        return anchor, mask.any(-1)

    def member_target_scores(self, image: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """(N, A) the assigner's target score for the class of GT ``gt[n]`` at every anchor of image ``image[n]``."""
        cls = self.gt_labels[image, gt]
        anchors = torch.arange(self.target_scores.shape[1], device=image.device)
        return self.target_scores[image.unsqueeze(-1), anchors, cls.unsqueeze(-1)]  # never materialises (N, A, C)

    def member_logits(self, image: torch.Tensor, gt: torch.Tensor, anchor: str = "best") -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits representing each member, in fp32, and whether the member has any anchor.

        ``anchor="best"`` takes the anchor picked by :meth:`best_anchor`. ``anchor="mean"`` averages the member's
        per-class probabilities over all its anchors, weighted by their target score, and returns their logit.
        Returns ``(logits (N, C), has_anchor (N,) bool)``.
        """
        if anchor == "best":
            idx, valid = self.best_anchor(image, gt)
            return self.logits[image, idx].float(), valid
        if anchor == "mean":
            mask = self.anchor_mask(image, gt)
            w = self.member_target_scores(image, gt).float() * mask
            w = torch.where(w.sum(-1, keepdim=True) > 0, w, mask.float())  # all scores 0: equal weights
            w = w / w.sum(-1, keepdim=True).clamp_min(1e-12)
            per_image = w * (image == torch.arange(self.logits.shape[0], device=image.device).unsqueeze(-1)).unsqueeze(-1)
            probs = torch.einsum("bna,bac->nc", per_image, self.logits.float().sigmoid())  # (B, N, A) x (B, A, C)
            eps = torch.finfo(torch.float32).eps
            return torch.logit(probs.clamp(eps, 1 - eps)), mask.any(-1)
        raise ValueError(f"anchor must be 'best' or 'mean', got {anchor!r}")

    def zero(self) -> torch.Tensor:
        """A 0-d fp32 zero attached to the logits' graph: the value of a term with nothing to act on."""
        return self.logits.float().flatten()[:0].sum()  # exact 0 even when some logit is inf or NaN
