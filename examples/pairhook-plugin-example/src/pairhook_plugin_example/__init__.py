"""pair_js: the Jensen-Shannon divergence between the two members of each pair, as a pairhook regularizer.

Each member is represented by its class logits ``z`` (``PairContext.member_logits``); per class ``c`` its
prediction is the Bernoulli distribution ``p_c = sigmoid(z_c / T)``. Per pair the term is
``sum_c JS(p_c, q_c) = sum_c [H(m_c) - (H(p_c) + H(q_c)) / 2]`` with ``m = (p + q) / 2`` and ``H`` the binary
entropy; the batch value is the mean over active pairs (both members have an anchor). Unlike KL it is bounded
(``C * ln 2``) and both members move towards each other. Everything is computed from logits, so saturated
predictions stay finite, and vectorised over pairs without host synchronisation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import pairhook

__version__ = "0.1.0"
ANCHORS = ("best", "mean")


def _entropy_from_logits(z: torch.Tensor) -> torch.Tensor:
    """Binary entropy of ``sigmoid(z)``: ``softplus(z) - z * sigmoid(z)``."""
    return F.softplus(z) - z * z.sigmoid()


def _entropy_of_mixture(za: torch.Tensor, zb: torch.Tensor) -> torch.Tensor:
    """Binary entropy of ``m = (sigmoid(za) + sigmoid(zb)) / 2``, with ``log m`` and ``log(1 - m)`` from logits."""
    log_m = torch.logaddexp(-F.softplus(-za), -F.softplus(-zb)) - math.log(2)
    log_1m = torch.logaddexp(-F.softplus(za), -F.softplus(zb)) - math.log(2)
    return -(log_m.exp() * log_m + log_1m.exp() * log_1m)


def pair_js(ctx: pairhook.PairContext, *, anchor: str = "best", T: float = 1.0) -> torch.Tensor:
    """Mean over active pairs of ``sum_c JS(sigmoid(z_a,c / T), sigmoid(z_b,c / T))``; a 0-d fp32 tensor.

    Options: ``anchor`` ("best" or "mean", see ``PairContext.member_logits``), ``T`` temperature (> 0).
    """
    if anchor not in ANCHORS:
        raise ValueError(f"pair_js: anchor must be one of {ANCHORS}, got {anchor!r}")
    if not (isinstance(T, (int, float)) and T > 0):  # also rejects NaN
        raise ValueError(f"pair_js: T must be a number > 0, got {T!r}")
    image, gt_a, gt_b = ctx.pairs.to(ctx.logits.device).unbind(-1)
    za, has_a = ctx.member_logits(image, gt_a, anchor)  # (P, C) fp32, (P,) bool
    zb, has_b = ctx.member_logits(image, gt_b, anchor)
    za, zb = za / T, zb / T
    js = _entropy_of_mixture(za, zb) - (_entropy_from_logits(za) + _entropy_from_logits(zb)) / 2
    values = js.clamp_min(0).sum(-1)  # rounding can leave -1e-8 where p == q
    return ctx.pair_mean(values, has_a & has_b)  # also counts the pairs it acted on (train/js_acted)


@pairhook.hookimpl
def pairhook_register_regularizers(register):
    """Called by pairhook when it builds its registry: offer ``pair_js``, logged as ``js_loss``; it acts on pairs."""
    register("pair_js", pair_js, loss_name="js_loss", needs_pairs=True)
