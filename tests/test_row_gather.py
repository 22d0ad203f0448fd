"""Tests for the logits-row path of `PairContext`: best-anchor choice and in-place row gradients.

The criterion hands the regularizers' row gradients to the head output's own gradient (`RowGrads`) instead of
letting autograd build a dense (B, A, C) one; these tests check that the resulting gradients are those of plain
autograd indexing, on real Ultralytics heads and losses.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from pairhook import compat
from pairhook._autograd import RowGrads
from pairhook.context import PairContext
from pairhook.criterion import PairhookCriterion
from pairhook.pairs import PAIRS_KEY
from pairhook.terms import LossTerms, parse_regularizers


def ctx_with_ties(seed: int, B=3, A=40, C=5, G=6) -> PairContext:
    g = torch.Generator().manual_seed(seed)
    gt_idx = torch.randint(G - 2, (B, A), generator=g)  # the last two GTs have no anchor
    fg = torch.rand(B, A, generator=g) < 0.5
    labels = torch.randint(C, (B, G), generator=g)
    align = torch.randint(0, 3, (B, A), generator=g) / 2 * fg  # few distinct values: many ties, some zeros
    return PairContext(logits=torch.randn(B, A, C, generator=g), target_bboxes=torch.zeros(B, A, 4), fg_mask=fg,
                       target_scores=F.one_hot(labels.gather(1, gt_idx), C) * align.unsqueeze(-1), target_gt_idx=gt_idx,
                       gt_labels=labels, gt_bboxes=torch.zeros(B, G, 4))


@pytest.mark.parametrize("seed", range(5))
def test_best_anchor_is_first_highest_scoring_supervising_anchor(seed):
    ctx = ctx_with_ties(seed)
    B, G = ctx.gt_labels.shape
    image, gt = torch.arange(B).repeat_interleave(G), torch.arange(G).repeat(B)
    anchor, has = ctx.best_anchor(image, gt)
    mask = ctx.anchor_mask(image, gt)
    scores = torch.where(mask, ctx.member_target_scores(image, gt), -1.0)
    torch.testing.assert_close(has, mask.any(-1))
    torch.testing.assert_close(anchor, torch.where(has, scores.argmax(-1), 0))  # argmax: first maximal index
    assert (~has).any() and has.any()


def detection_case(model: str, seed: int = 0):
    """A model in training mode and a batch of 2 images with 4 large boxes each and overlapping pairs."""
    from ultralytics import YOLO
    from ultralytics.cfg import get_cfg

    torch.manual_seed(seed)
    m = YOLO(model).model
    m.args = get_cfg()
    m.train()
    boxes = torch.tensor([[0.25, 0.25, 0.3, 0.3], [0.75, 0.25, 0.3, 0.3], [0.25, 0.75, 0.3, 0.3],
                          [0.75, 0.75, 0.3, 0.3]])
    batch = {"batch_idx": torch.arange(2).repeat_interleave(4).float(),
             "cls": torch.tensor([0, 1, 2, 0] * 2).float().view(-1, 1),
             "bboxes": boxes.repeat(2, 1),
             PAIRS_KEY: torch.tensor([[0, 0, 2], [0, 2, 0], [0, 0, 2], [1, 1, 3], [1, 0, 1]])}  # repeats share anchors
    return m, batch, torch.rand(2, 3, 128, 128)


def grads(m, batch, img, spec, fast: bool, monkeypatch) -> list[torch.Tensor]:
    """Parameter gradients of one criterion call, with the row-gradient path (``fast``) or plain autograd."""
    crit = PairhookCriterion(m.init_criterion(), LossTerms(parse_regularizers(spec)), training=True)
    calls = []
    add = RowGrads._add
    with monkeypatch.context() as mp:
        if not fast:
            mp.setattr(compat, "shared_scores", lambda preds, logits: None)
        mp.setattr(RowGrads, "_add", lambda self, g: calls.append(g.shape) or add(self, g))
        m.zero_grad()
        loss, items = crit(m(img), batch)
        assert float(items["pair_loss"] if isinstance(items, dict) else items[-1]) > 0  # the term is active
        loss.sum().backward()
    assert bool(calls) == fast  # the fast path ran exactly when asked for
    return [p.grad.clone() for p in m.parameters() if p.grad is not None]


PC = {"pair_consistency": {"tau_high": 0.0}}  # an untrained head is never confident


@pytest.mark.parametrize("model", ["yolov8n.yaml", "yolo26n.yaml"])
@pytest.mark.parametrize("spec", [PC, {"symmetric_kl": {"anchor": "mean"}, **PC}])
def test_row_gradients_equal_plain_autograd(model, spec, monkeypatch):
    m, batch, img = detection_case(model)
    fast, plain = (grads(m, batch, img, spec, fast, monkeypatch) for fast in (True, False))
    assert len(fast) == len(plain) > 0
    for a, b in zip(fast, plain):
        torch.testing.assert_close(a, b)


def test_row_gradients_under_autocast(monkeypatch):
    m, batch, img = detection_case("yolov8n.yaml")
    out = {}
    for fast in (True, False):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out[fast] = grads(m, batch, img, PC, fast, monkeypatch)
    for a, b in zip(out[True], out[False]):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=1e-3)


def test_zero_with_row_grads_is_attached_and_gives_no_gradient():
    scores = torch.randn(2, 3, 5, requires_grad=True)
    head = scores * 1  # non-leaf, as a head output
    logits = head.transpose(1, 2)
    ctx = PairContext(logits=logits, target_scores=torch.zeros(2, 5, 3), target_bboxes=torch.zeros(2, 5, 4),
                      fg_mask=torch.zeros(2, 5, dtype=torch.bool), target_gt_idx=torch.zeros(2, 5, dtype=torch.long),
                      gt_labels=torch.zeros(2, 0, dtype=torch.long), gt_bboxes=torch.zeros(2, 0, 4),
                      row_grads=RowGrads.attach(head, logits))
    value = ctx.zero() + head.sum()
    assert ctx.zero().item() == 0.0 and ctx.zero().requires_grad
    value.backward()
    torch.testing.assert_close(scores.grad, torch.ones_like(scores))


class _Block(torch.autograd.Function):
    """Identity that lets no gradient through, as a gate on a skipped term does."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return torch.zeros_like(grad)


def test_replaced_logits_gather_the_plain_way():
    scores = torch.randn(2, 3, 5, requires_grad=True)
    head = scores * 1
    logits = head.transpose(1, 2)
    ctx = PairContext(logits=logits, target_scores=torch.zeros(2, 5, 3), target_bboxes=torch.zeros(2, 5, 4),
                      fg_mask=torch.zeros(2, 5, dtype=torch.bool), target_gt_idx=torch.zeros(2, 5, dtype=torch.long),
                      gt_labels=torch.zeros(2, 1, dtype=torch.long), gt_bboxes=torch.zeros(2, 1, 4),
                      row_grads=RowGrads.attach(head, logits))
    gated = dataclasses.replace(ctx, logits=_Block.apply(ctx.logits))
    (gated.rows(torch.tensor([0, 1]), torch.tensor([2, 4])).sum() + head.sum()).backward()
    torch.testing.assert_close(scores.grad, torch.ones_like(scores))  # the gate held: only head.sum() got through


def test_duplicate_rows_accumulate():
    scores = torch.randn(2, 3, 5, requires_grad=True)
    ref = scores.detach().clone().requires_grad_()
    image, anchor = torch.tensor([1, 1, 0]), torch.tensor([4, 4, 2])
    for s, fast in ((scores, True), (ref, False)):
        head = s * 1
        logits = head.transpose(1, 2)
        ctx = PairContext(logits=logits, target_scores=torch.zeros(2, 5, 3),
                          target_bboxes=torch.zeros(2, 5, 4), fg_mask=torch.zeros(2, 5, dtype=torch.bool),
                          target_gt_idx=torch.zeros(2, 5, dtype=torch.long),
                          gt_labels=torch.zeros(2, 1, dtype=torch.long),
                          gt_bboxes=torch.zeros(2, 1, 4), row_grads=RowGrads.attach(head, logits) if fast else None)
        rows = ctx.rows(image, anchor)
        torch.testing.assert_close(rows, head.transpose(1, 2)[image, anchor], rtol=0, atol=0)
        ((rows * torch.arange(9.0).view(3, 3)).sum() + head.square().sum()).backward()
    torch.testing.assert_close(scores.grad, ref.grad)


def test_shared_scores_only_for_a_head_output_the_loss_uses():
    scores = torch.randn(2, 3, 5, requires_grad=True) * 1
    preds = {"boxes": torch.randn(2, 64, 5), "scores": scores, "feats": [torch.zeros(2, 1, 1, 5)]}
    assert compat.shared_scores(preds, compat.class_logits(preds, "main", 3)) is scores
    e2e = {"one2many": preds, "one2one": {**preds, "scores": scores.detach()}}
    assert compat.shared_scores(e2e, compat.class_logits(e2e, "one2many", 3)) is scores
    levels = [torch.randn(2, 64 + 3, 2, 2, requires_grad=True) * 1,
              torch.randn(2, 64 + 3, 1, 1, requires_grad=True) * 1]
    assert compat.shared_scores(levels, compat.class_logits(levels, "main", 3)) is None  # its own concatenation


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_row_path_has_no_host_sync_on_cuda():
    from pairhook.regularizers import symmetric_kl

    base = ctx_with_ties(0)
    scores = torch.randn(3, 5, 40, device="cuda", requires_grad=True)
    head = scores * 1
    fields = {k: getattr(base, k).cuda() for k in ("target_scores", "target_bboxes", "fg_mask", "target_gt_idx",
                                                   "gt_labels", "gt_bboxes")}
    pairs = torch.tensor([[0, 0, 1], [1, 2, 3], [2, 0, 1]], device="cuda")
    logits = head.transpose(1, 2)
    ctx = PairContext(logits=logits, pairs=pairs, row_grads=RowGrads.attach(head, logits), **fields)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        (symmetric_kl(ctx) + head.sum()).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert scores.grad is not None
