"""pairhook's built-in regularizers, registered through the same hook as third-party plugins.

Both act on the pairs of a :class:`~pairhook.context.PairContext`: each member of a pair is represented by its
class logits (see :meth:`PairContext.member_logits`), a pair is active when both members have an anchor, and the
term is the mean of the per-pair values over active pairs (an attached 0 when there are none). The functions here
check the options and say what each term computes; the computation itself is one fused core
(:mod:`pairhook.fused.cores`), vectorised over pairs with no host synchronisation, compiled where kernel launches
cost, and counting the pairs each term acted on for the ``train/*_reached`` and ``train/*_acted`` columns.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from pairhook import fused
from pairhook.context import PairContext
from pairhook.fused import cores
from pairhook.hookspecs import hookimpl

_ANCHORS = ("best", "mean")
_DETACH = (None, "teacher")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


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

    return fused.run(ctx, cores.pair_consistency, gather=True, anchor=anchor, tau_high=tau_high, margin=margin,
                     delta=delta, mismatch_weight=mismatch_weight)


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

    return fused.run(ctx, cores.symmetric_kl, gather=True, anchor=anchor, T=T, detach=detach)


@hookimpl
def pairhook_register_regularizers(register: Callable[..., None]) -> None:
    """Register pairhook's built-in regularizers."""
    register("pair_consistency", pair_consistency, loss_name="pair_loss", needs_pairs=True, gate="tau_high")
    register("symmetric_kl", symmetric_kl, loss_name="skl_loss", needs_pairs=True)
