"""pairhook's built-in terms, fused: each one a pure tensor function (:mod:`pairhook.fused.cores`) over the
assigner's outputs, run compiled where kernel launches cost (:mod:`pairhook.fused.compiler`), with the counters of
what it did folded into one tensor update per call.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from pairhook.fused.compiler import call, constant

__all__ = ["constant", "run"]


def run(ctx: Any, core: Callable[..., tuple[torch.Tensor, torch.Tensor]], *extra: torch.Tensor,
        gather: bool = False, **options: Any) -> torch.Tensor:
    """The value of ``core`` on a :class:`~pairhook.context.PairContext` ``ctx`` (its logits, the assigner's
    tensors, the pairs, then ``extra``), with its counts added to the context's term counters.

    ``gather``: the core takes the context's cheap-backward row gather when it runs eagerly. With no pair the
    value is the context's attached zero and nothing is counted.
    """
    if ctx.num_pairs == 0 or ctx.gt_labels.shape[1] == 0:
        return ctx.zero()
    value, counts = call(core, ctx.logits.device, ctx.logits, ctx.target_scores, ctx.fg_mask, ctx.target_gt_idx,
                         ctx.gt_labels, ctx.pairs, *extra, eager_kwargs={"rows": ctx.rows} if gather else None,
                         **options)
    ctx.record(counts)
    return value
