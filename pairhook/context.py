"""`PairContext`: everything a regularizer sees for one criterion call, in pairhook's own terms."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from pairhook._autograd import GatherRows, RowGrads
from pairhook.fused import select


def _no_pairs() -> torch.Tensor:
    return torch.zeros(0, 3, dtype=torch.long)


class PairActivity:
    """Device-side counts, over one epoch, of what one term did: ``(carried, reached, acted, skipped)`` = pairs in
    the batches, pairs active (both members have an anchor), pairs on which its per-pair value was non-zero, and
    batches whose term was NaN or infinite and so replaced by 0. Filled without a host sync, in one tensor update
    per call for the built-in terms; read once per epoch."""

    def __init__(self) -> None:
        self.counts: Optional[torch.Tensor] = None
        self.reported = False  # the term counted reached/acted (pair_mean, count or a fused core) this epoch

    def on(self, device: torch.device) -> PairActivity:
        """Make sure the counts live on ``device`` (a new device starts them at 0); returns self."""
        if self.counts is None or self.counts.device != device:
            with torch.inference_mode(False):  # made during validation, still updated and read outside it
                self.counts = torch.zeros(4, dtype=torch.long, device=device)
        return self

    def add(self, counts: torch.Tensor) -> None:
        """Add a (4,) long ``(carried, reached, acted, skipped)``, as a fused core returns it."""
        self.reported = True
        self.counts.add_(counts)

    def count(self, active: torch.Tensor, acted: torch.Tensor) -> None:
        self.reported = True
        self.counts[1:3] += torch.stack([active.sum(), acted.sum()]).to(self.counts.device)

    def finish(self, pairs: int, finite: torch.Tensor) -> None:
        """A call of a third-party term is over: ``pairs`` were carried, its value was ``finite`` (0-d bool)."""
        self.counts[0] += pairs
        self.counts[3] += ~finite

    def read(self, part: slice) -> list[int]:
        """``counts[part]`` since their last read (the one host read), then reset to 0."""
        if self.counts is None:
            return [0] * len(range(4)[part])
        values = self.counts[part].tolist()
        self.counts[part] = 0
        return values


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
        row_grads: set by pairhook's criterion when ``logits`` is a view of a head output that Ultralytics' loss also
            differentiates; gathered rows then send their gradient through it (see :class:`RowGrads`).
        activity: set by pairhook's criterion for every term: the counts of its pairs and skipped batches;
            :meth:`pair_mean` and :meth:`count` count into it (the ``train/<name>_reached`` and ``_acted`` columns
            of a regularizer registered with ``needs_pairs=True``).
        features: the neck's feature maps feeding the head, ``(B, C_l, H_l, W_l)`` per level, with their graph, where
            the release passes them to the loss (Ultralytics 8.4 and newer, :func:`pairhook.compat.neck_features`);
            else None. They are the model's own tensors: reading them costs nothing.
        strides: px per feature cell of each level of ``features`` (None without them).
        cls_gain: the class loss's gain (Ultralytics' ``cls`` argument, 0.5 by default): a term divided by
            :attr:`target_scores_sum` and multiplied by it is scaled exactly as Ultralytics' class loss.
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
    row_grads: Optional[RowGrads] = field(default=None, repr=False, compare=False)
    activity: Optional[PairActivity] = field(default=None, repr=False, compare=False)
    features: Optional[tuple[torch.Tensor, ...]] = field(default=None, repr=False, compare=False)
    strides: Optional[tuple[float, ...]] = None
    cls_gain: float = 0.5

    @property
    def target_scores_sum(self) -> torch.Tensor:
        """0-d: the sum of the assigner's targets, at least 1: what Ultralytics divides its class loss by, so a term
        divided by it is independent of the batch size and of the number of boxes, as that loss is."""
        return self.target_scores.sum().clamp_min(1)

    def ramp(self, fraction: float) -> float:
        """The consistency ramp-up of Mean Teacher and CSD: ``exp(-5 (1 - t)^2)`` with ``t`` the share of the first
        ``fraction`` of the epochs done (1 from then on; 1 always when ``fraction`` is 0 or outside training)."""
        if fraction <= 0 or not self.training:
            return 1.0
        t = min(1.0, (self.epoch + 1) / max(fraction * self.epochs, 1.0))
        return math.exp(-5.0 * (1.0 - t) ** 2)

    def count(self, active: torch.Tensor, acted: torch.Tensor) -> None:
        """Count the pairs a term reached (``active``) and acted on (``acted``), both (P,) bool, for the activity
        columns; what :meth:`pair_mean` does for a mean."""
        if self.activity is not None:
            self.activity.count(active, acted)

    def record(self, counts: torch.Tensor) -> None:
        """Add a fused core's (4,) ``(carried, reached, acted, skipped)`` to the term's counters, in one update."""
        if self.activity is not None:
            self.activity.add(counts)

    @property
    def num_pairs(self) -> int:
        """P, the number of pair rows (a shape, so no host sync)."""
        return self.pairs.shape[0]

    def anchor_mask(self, image: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """(N, A) bool: the anchors that supervise GT ``gt[n]`` of image ``image[n]``, straight from the assigner."""
        return select.anchor_mask(self.fg_mask, self.target_gt_idx, image, gt)

    def best_anchor(self, image: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per member, the supervising anchor with the largest target score for the GT's class.

        Ties go to the lowest anchor index. Returns ``(anchor (N,) long, has_anchor (N,) bool)``; where a member has
        no anchor, its index is 0 and ``has_anchor`` is False. One max-reduction for all ground truths at once, so
        its cost does not grow with the number of members.
        """
        return select.best_anchor(self.target_scores, self.fg_mask, self.target_gt_idx, self.gt_labels, image, gt)

    def member_target_scores(self, image: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """(N, A) the assigner's target score for the class of GT ``gt[n]`` at every anchor of image ``image[n]``."""
        return select.member_target_scores(self.target_scores, self.gt_labels, image, gt)

    def member_logits(self, image: torch.Tensor, gt: torch.Tensor,
                      anchor: str = "best") -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits representing each member, in fp32, and whether the member has any anchor.

        ``anchor="best"`` takes the anchor picked by :meth:`best_anchor`. ``anchor="mean"`` averages the member's
        per-class probabilities over all its anchors, weighted by their target score, and returns their logit.
        Returns ``(logits (N, C), has_anchor (N,) bool)``.
        """
        return select.member_logits(self.logits, self.target_scores, self.fg_mask, self.target_gt_idx,
                                    self.gt_labels, image, gt, anchor, self.rows)

    def rows(self, image: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
        """(N, C) fp32 ``logits[image, anchor]``, with a backward that costs O(N*C) when ``row_grads`` is set."""
        if self.row_grads is None or not self.row_grads.serves(self.logits):
            return self.logits[image, anchor].float()
        return GatherRows.apply(self.logits, image, anchor, self.row_grads).float()

    def pair_mean(self, values: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """The mean of per-pair ``values`` (P,) over the ``active`` pairs (P,) bool; an exact 0, still on the graph,
        when none is active. Counts the active pairs and those with a non-zero value for the activity columns."""
        self.count(active, active & (values.detach() != 0))
        return torch.where(active, values, torch.zeros_like(values)).sum() / active.sum().clamp_min(1)

    def zero(self) -> torch.Tensor:
        """A 0-d fp32 zero attached to the logits' graph: the value of a term with nothing to act on."""
        none = torch.zeros(0, dtype=torch.long, device=self.logits.device)
        return self.rows(none, none).sum()  # exact 0 even when some logit is inf or NaN
