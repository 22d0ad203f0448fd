"""pairhook's built-in regularizers, registered through the same hook as third-party plugins.

Both act on the pairs of a :class:`~pairhook.context.PairContext`: each member of a pair is represented by its
class logits (see :meth:`PairContext.member_logits`), a pair is active when both members have an anchor, and the
term is the mean of the per-pair values over active pairs (an attached 0 when there are none). Everything is
vectorised over pairs with no host synchronisation (:meth:`PairContext.pair_mean`, which also counts the pairs each
term acted on for the ``train/*_reached`` and ``train/*_acted`` columns).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

from pairhook.context import PairContext
from pairhook.hookspecs import hookimpl

_ANCHORS = ("best", "mean")
_DETACH = (None, "teacher")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _members(ctx: PairContext, anchor: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Representative fp32 logits of members a and b, (P, C) each, and which pairs are active (P,)."""
    image, gt_a, gt_b = ctx.pairs.to(ctx.logits.device).unbind(-1)
    # one gather for both members: its backward scatters into one (B, A, C) buffer, not two
    z, has = ctx.member_logits(torch.cat([image, image]), torch.cat([gt_a, gt_b]), anchor)
    (za, zb), (has_a, has_b) = z.chunk(2), has.chunk(2)
    return za, zb, has_a & has_b


def _a_teaches(pa: torch.Tensor, pb: torch.Tensor) -> torch.Tensor:
    """(P,) bool: member a is the teacher (higher max probability; ties go to a)."""
    return pa.amax(-1) >= pb.amax(-1)


def pair_consistency(
    ctx: PairContext,
    *,
    anchor: str = "best",
    tau_high: float = 0.5,
    margin: float = 0.05,
    delta: float = 0.1,
    mismatch_weight: float = 1.0,
) -> torch.Tensor:
    """Pull the less confident member of each pair towards the confident one.

    The teacher is the member with the higher top-1 probability (ties: member a); it is detached and only counts
    when its confidence reaches ``tau_high``. If both members agree on the top-1 class, the student's confidence
    shortfall beyond ``margin`` is penalised with a Huber loss (``delta``), so small gaps are tolerated and large
    ones do not dominate. If they disagree, ``mismatch_weight * max(0, conf_t - p_s[cls_t])**2`` raises the
    student's probability for the teacher's class. Returns the mean over active pairs.
    """
    _check(anchor in _ANCHORS, f"anchor must be one of {_ANCHORS}, got {anchor!r}")
    _check(0.0 <= tau_high <= 1.0, f"tau_high must be in [0, 1], got {tau_high!r}")
    _check(margin >= 0.0, f"margin must be >= 0, got {margin!r}")
    _check(delta > 0.0, f"delta must be > 0, got {delta!r}")
    _check(mismatch_weight >= 0.0, f"mismatch_weight must be >= 0, got {mismatch_weight!r}")

    za, zb, active = _members(ctx, anchor)
    pa, pb = za.sigmoid(), zb.sigmoid()
    a_teaches = _a_teaches(pa, pb).unsqueeze(-1)
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
    return ctx.pair_mean(values, active)


def symmetric_kl(ctx: PairContext, *, anchor: str = "best", T: float = 1.0,
                 detach: Optional[str] = None) -> torch.Tensor:
    """Symmetric KL between the members' per-class Bernoulli distributions at temperature ``T``.

    Per pair, ``0.5 * sum_c [KL(p||q) + KL(q||p)]`` with ``p = sigmoid(z_a / T)``, ``q = sigmoid(z_b / T)``,
    computed stably as ``0.5 * sum_c (p_c - q_c) * (z_a,c - z_b,c) / T``. Both members are pulled together unless
    ``detach="teacher"``, which detaches the member with the higher max probability (ties: a), as in
    :func:`pair_consistency`. Returns the mean over active pairs.
    """
    _check(anchor in _ANCHORS, f"anchor must be one of {_ANCHORS}, got {anchor!r}")
    _check(T > 0.0, f"T must be > 0, got {T!r}")
    _check(detach in _DETACH, f"detach must be one of {_DETACH}, got {detach!r}")

    za, zb, active = _members(ctx, anchor)
    if detach == "teacher":
        a_teaches = _a_teaches(za.sigmoid(), zb.sigmoid()).unsqueeze(-1)
        za = torch.where(a_teaches, za.detach(), za)
        zb = torch.where(a_teaches, zb, zb.detach())
    values = 0.5 * ((za / T).sigmoid() - (zb / T).sigmoid()).mul(za - zb).sum(-1) / T
    return ctx.pair_mean(values, active)


@hookimpl
def pairhook_register_regularizers(register: Callable[..., None]) -> None:
    """Register pairhook's built-in regularizers."""
    register("pair_consistency", pair_consistency, loss_name="pair_loss", needs_pairs=True, gate="tau_high")
    register("symmetric_kl", symmetric_kl, loss_name="skl_loss", needs_pairs=True)
