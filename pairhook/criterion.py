"""The criterion wrapper: runs Ultralytics' loss, captures the assigner, adds the regularizer terms.

Both wrappers pickle and deep-copy as the object they wrap, so a checkpoint never references pairhook even on
releases that save the criterion with the model.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any

import torch
from torch import nn

from pairhook import compat
from pairhook._autograd import GradientGate, RowGrads
from pairhook.context import PairContext
from pairhook.pairs.carrier import PAIRS_KEY
from pairhook.terms import ConfiguredRegularizer, LossTerms


def _as(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` in ``dtype``; ``t`` itself, with no op dispatched, when it is already."""
    return t if t.dtype == dtype else t.to(dtype)


class AssignerCapture(nn.Module):
    """Calls the wrapped task-aligned assigner and records its inputs and outputs for the current loss call."""

    def __init__(self, inner: nn.Module, branch: str, sink: dict[str, tuple]) -> None:
        super().__init__()
        self.inner = inner
        self.branch = branch
        self.sink = sink

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.inner(*args, **kwargs)
        self.sink[self.branch] = (args[2], args[3], args[4], out)  # anchors (A,2) px, labels (B,G,1), boxes (B,G,4)
        return out

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("inner"), name)

    def __reduce_ex__(self, protocol: int) -> tuple:
        return operator.itemgetter(0), ((self.inner,),)


class PairhookCriterion:
    """Stands in for a model's ``criterion``: same call contract, plus one loss item per active regularizer."""

    _own = frozenset({"inner", "terms", "training", "branch", "_captured", "_owner", "_strides"})

    def __init__(self, inner: Any, terms: LossTerms, training: bool) -> None:
        self.inner = inner
        self.terms = terms
        self.training = training
        self._captured: dict[str, tuple] = {}
        branches = []
        for branch, owner in compat.assigner_slots(inner):
            if isinstance(owner.assigner, AssignerCapture):
                owner.assigner.sink = self._captured
            else:
                compat.replace("criterion", owner, "assigner", AssignerCapture(owner.assigner, branch, self._captured))
            branches.append(branch)
        self.branch = "one2many" if "one2many" in branches else branches[0]
        owner = dict(compat.assigner_slots(inner))[self.branch]  # the (sub-)criterion of that branch
        self._owner = owner
        self._strides = tuple(compat.head_strides(owner).tolist())  # plain floats: no device copy per call

    def restore(self) -> Any:
        """Put the original assigners back and return the wrapped criterion."""
        for _, owner in compat.assigner_slots(self.inner):
            if isinstance(owner.assigner, AssignerCapture):
                compat.restore("criterion", owner, "assigner", owner.assigner.inner)
        return self.inner

    def __call__(self, preds: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, Any]:
        if not self.terms.active:  # nothing to add: Ultralytics' own call, not one extra op
            try:
                return self.inner(preds, batch)
            finally:
                self._captured.clear()
        pairs = batch.get(PAIRS_KEY)
        try:
            loss, items = self.inner(preds, batch)
            logits = compat.class_logits(preds, self.branch, compat.num_classes(self.inner))
            terms = self._terms(logits, batch, pairs, compat.shared_scores(preds, logits),
                                compat.neck_features(preds, self.branch))
        finally:
            self._captured.clear()  # never keep a past batch's tensors alive
        return compat.add_terms(loss, items, terms, logits.shape[0])

    def _terms(self, logits: torch.Tensor, batch: dict[str, Any], pairs: torch.Tensor | None,
               scores: torch.Tensor | None = None, features: tuple[torch.Tensor, ...] | None = None
               ) -> dict[str, torch.Tensor]:
        anchor_points, gt_labels, gt_bboxes, assigned = self._captured[self.branch]
        _, target_bboxes, target_scores, fg_mask, target_gt_idx = assigned
        pairs = torch.zeros(0, 3, dtype=torch.long, device=logits.device) if pairs is None else pairs
        if pairs.device != logits.device:
            pairs = pairs.to(logits.device, non_blocking=True)
        with torch.autocast(logits.device.type, enabled=False):
            logits = _as(logits, torch.float32)
            ctx = PairContext(
                logits=logits,
                target_scores=_as(target_scores, torch.float32),
                target_bboxes=_as(target_bboxes, torch.float32),
                fg_mask=_as(fg_mask, torch.bool),
                target_gt_idx=_as(target_gt_idx, torch.long),
                gt_labels=_as(gt_labels.squeeze(-1), torch.long),
                gt_bboxes=_as(gt_bboxes, torch.float32),
                pairs=pairs,
                batch=batch,
                anchor_points=anchor_points,
                epoch=self.terms.epoch,
                epochs=self.terms.epochs,
                training=self.training,
                row_grads=RowGrads.attach(scores, logits),
                features=features,
                strides=None if features is None else self._strides,
                cls_gain=compat.class_gain(self._owner),
            )
            return {reg.loss_name: self._term(reg, ctx) for reg in self.terms.active}

    def _term(self, reg: ConfiguredRegularizer, ctx: PairContext) -> torch.Tensor:
        """One regularizer's term, or an exact 0 (counted, no host sync) where it is NaN or infinite.

        Built-ins are fused: they replace a non-finite value and count it themselves, in the same tensor update as
        their pair counts. Third-party terms see logits behind a gate that zeroes their gradient when the term was
        skipped (a masked NaN still sends ``0 * inf = NaN`` backward otherwise).
        """
        counts = self.terms.counter(reg.loss_name, self.training, ctx.logits.device)
        ctx = dataclasses.replace(ctx, activity=counts)
        if reg.builtin:
            return reg(ctx)
        keep = torch.ones((), dtype=torch.bool, device=ctx.logits.device)
        if ctx.logits.requires_grad:
            ctx = dataclasses.replace(ctx, logits=GradientGate.apply(ctx.logits, keep))
        value = reg(ctx)
        keep.copy_(torch.isfinite(value))
        counts.finish(ctx.num_pairs, keep)
        return torch.where(keep, value, torch.zeros_like(value))

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # Ultralytics sets attributes on its criterion (e.g. ``updates`` on resume); they belong to the inner one.
        if name in self._own:
            object.__setattr__(self, name, value)
        else:
            setattr(self.inner, name, value)

    def __reduce_ex__(self, protocol: int) -> tuple:
        return operator.itemgetter(0), ((self.inner,),)
