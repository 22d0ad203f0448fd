"""pairhook's autograd machinery, private: cheap row gathers and a gradient gate.

* :class:`RowGrads` and :class:`GatherRows` let :meth:`PairContext.rows` send the gradient of a few gathered rows
  straight into the head output's own gradient instead of a dense ``(B, A, C)`` one.
* :class:`GradientGate` lets the criterion zero a third-party term's gradient when the term turned out non-finite,
  without a host sync.
"""

from __future__ import annotations

import weakref
from typing import Any, Optional

import torch


class RowGrads:
    """Adds the gradient of rows gathered from the logits straight into the head output's own gradient.

    Autograd's backward of ``logits[image, anchor]`` fills a zero ``(B, A, C)`` tensor, scatters the rows into it
    and adds it to the gradient that Ultralytics' loss sends to the same head output: three passes over ``B*A*C``
    values for a few hundred rows. Instead, the gather's backward only records its rows, and a hook on the head
    output adds them in place when autograd delivers that output's gradient (cost proportional to the rows).
    Autograd runs every gather's backward before the hook, as the gathers depend on the head output. It serves only
    the exact ``logits`` tensor it was made for: a context whose logits were replaced (e.g. behind a gradient gate)
    gathers the plain way, so whatever stands between sees the gradient.
    """

    def __init__(self, scores: torch.Tensor, logits: torch.Tensor) -> None:
        self._rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._logits = weakref.ref(logits)
        scores.register_hook(self._add)

    @classmethod
    def attach(cls, scores: Optional[torch.Tensor], logits: torch.Tensor) -> Optional[RowGrads]:
        """For ``scores`` ``(B, C, A)``, which Ultralytics' loss also differentiates, and ``logits``, its
        ``transpose(1, 2)`` view (possibly cast to fp32) as the context holds it; ``None`` when there is no such
        tensor or no gradient is taken."""
        if scores is None or not (torch.is_grad_enabled() and scores.requires_grad):
            return None
        return cls(scores, logits)

    def serves(self, logits: torch.Tensor) -> bool:
        return self._logits() is logits

    def record(self, image: torch.Tensor, anchor: torch.Tensor, grad: torch.Tensor) -> None:
        self._rows.append((image, anchor, grad))

    def _add(self, grad: torch.Tensor) -> torch.Tensor:
        if not self._rows:
            return grad
        image, anchor, values = (torch.cat(t) for t in zip(*self._rows))
        self._rows.clear()
        rows = grad.transpose(1, 2)
        if not (rows.is_contiguous() or grad.is_contiguous()):  # e.g. an expanded gradient: no in-place update
            rows = rows.contiguous()
        rows.index_put_((image, anchor), values.to(rows.dtype), accumulate=True)
        return rows.transpose(1, 2)


class GatherRows(torch.autograd.Function):
    """``logits[image, anchor]`` whose backward hands the row gradients to a :class:`RowGrads`."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, image: torch.Tensor, anchor: torch.Tensor,
                sink: RowGrads) -> torch.Tensor:
        ctx.sink = sink
        ctx.save_for_backward(image, anchor)
        c = logits.shape[2]
        flat = ((image * logits.shape[1] + anchor) * c).unsqueeze(-1) + torch.arange(c, device=logits.device)
        return torch.take(logits, flat)  # reads N*C values; advanced indexing of the strided view is much slower

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, None, None, None]:
        image, anchor = ctx.saved_tensors
        ctx.sink.record(image, anchor, grad)
        return None, None, None, None


class GradientGate(torch.autograd.Function):
    """Identity forward; backward passes the gradient only if ``keep``, a 0-d bool filled in after the forward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        ctx.keep = keep  # not save_for_backward: it is written after this forward, before backward
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return torch.where(ctx.keep, grad, torch.zeros((), dtype=grad.dtype, device=grad.device)), None
