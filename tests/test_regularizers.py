"""Tests for pairhook.regularizers, on hand-built PairContexts checked against plain-Python references."""

from __future__ import annotations

import math

import pluggy
import pytest
import torch

from pairhook import hookspecs
from pairhook import regularizers as builtin
from pairhook.context import PairContext
from pairhook.regularizers import pair_consistency, symmetric_kl
from pairhook.testing import make_pair_context  # what the pair_context_factory fixture returns

REGULARIZERS = (pair_consistency, symmetric_kl)


def make_ctx(logits, assign, labels, pairs, scores=None) -> PairContext:
    """Context for (B, A, C) ``logits``; ``assign`` (B, A) is each anchor's GT index or -1 for background."""
    return make_pair_context(logits=logits, assign=assign, labels=labels, pairs=pairs,
                             scores=torch.ones(torch.as_tensor(assign).shape) if scores is None else scores)


RANDOM = dict(B=3, A=12, C=4, G=6, pairs=8, inactive=2)  # for pair_context_factory: 6 active pairs, 2 inactive


# --- reference: a loop over pairs, plain math in float64 ---------------------------------------------------------


def ref_member_logits(ctx: PairContext, b: int, gt: int, anchor: str):
    """The member's representative logits (list of floats), or None when it has no anchor."""
    cls = int(ctx.gt_labels[b, gt])
    anchors = [a for a in range(ctx.fg_mask.shape[1]) if ctx.fg_mask[b, a] and int(ctx.target_gt_idx[b, a]) == gt]
    if not anchors:
        return None
    z = ctx.logits[b].detach().double()
    score = [float(ctx.target_scores[b, a, cls]) for a in range(z.shape[0])]
    if anchor == "best":
        best = anchors[0]
        for a in anchors[1:]:
            if score[a] > score[best]:
                best = a
        return z[best].tolist()
    total = sum(score[a] for a in anchors)
    probs = [sum(score[a] * sigmoid(float(z[a, c])) for a in anchors) / total for c in range(z.shape[1])]
    return [math.log(p / (1 - p)) for p in probs]


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def ref_pairs(ctx: PairContext, anchor: str):
    """(p_a, p_b, z_a, z_b) for each active pair, as float lists."""
    for b, i, j in ctx.pairs.tolist():
        za, zb = ref_member_logits(ctx, b, i, anchor), ref_member_logits(ctx, b, j, anchor)
        if za is not None and zb is not None:
            yield [sigmoid(v) for v in za], [sigmoid(v) for v in zb], za, zb


def ref_pair_consistency(ctx, anchor="best", tau_high=0.5, margin=0.05, delta=0.1, mismatch_weight=1.0, branches=None):
    values = []
    for pa, pb, _, _ in ref_pairs(ctx, anchor):
        t, s = (pa, pb) if max(pa) >= max(pb) else (pb, pa)
        conf_t, conf_s = max(t), max(s)
        cls_t, cls_s = t.index(conf_t), s.index(conf_s)
        if conf_t < tau_high:
            branch, v = "low", 0.0
        elif cls_t == cls_s:
            x = max(0.0, conf_t - conf_s - margin)
            branch, v = "same", (0.5 * x * x if x < delta else delta * (x - 0.5 * delta))
        else:
            branch, v = "mismatch", mismatch_weight * max(0.0, conf_t - s[cls_t]) ** 2
        if branches is not None:
            branches.add(branch)
        values.append(v)
    return sum(values) / len(values) if values else 0.0


def bernoulli_kl(p: float, q: float) -> float:
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def ref_symmetric_kl(ctx, anchor="best", T=1.0):
    values = []
    for _, _, za, zb in ref_pairs(ctx, anchor):
        p, q = [sigmoid(v / T) for v in za], [sigmoid(v / T) for v in zb]
        values.append(0.5 * sum(bernoulli_kl(pc, qc) + bernoulli_kl(qc, pc) for pc, qc in zip(p, q)))
    return sum(values) / len(values) if values else 0.0


def assert_value(actual: torch.Tensor, expected: float) -> None:
    assert actual.dtype == torch.float32 and actual.ndim == 0
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float32), rtol=1e-4, atol=1e-6)


# --- against the reference ----------------------------------------------------------------------------------------

SEEDS = range(8)


@pytest.mark.parametrize("anchor", ["best", "mean"])
def test_pair_consistency_matches_reference(pair_context_factory, anchor):
    opts = dict(anchor=anchor, tau_high=0.9, margin=0.05, delta=0.1, mismatch_weight=2.0)
    branches, inactive = set(), 0
    for seed in SEEDS:
        ctx = pair_context_factory(**RANDOM, seed=seed)
        assert_value(pair_consistency(ctx, **opts), ref_pair_consistency(ctx, **opts, branches=branches))
        inactive += ctx.num_pairs - len(list(ref_pairs(ctx, anchor)))
    assert branches == {"low", "same", "mismatch"} and inactive > 0  # the seeds exercise every case


@pytest.mark.parametrize("anchor", ["best", "mean"])
@pytest.mark.parametrize("T", [1.0, 2.5])
def test_symmetric_kl_matches_reference(pair_context_factory, anchor, T):
    for seed in SEEDS:
        ctx = pair_context_factory(**RANDOM, seed=seed)
        assert_value(symmetric_kl(ctx, anchor=anchor, T=T), ref_symmetric_kl(ctx, anchor=anchor, T=T))


def test_huber_linear_and_quadratic_regions():
    # teacher 0.95 on class 0; students at decreasing confidence cross from the quadratic into the linear region
    for student in (2.5, 2.0, 1.0, 0.0):
        ctx = make_ctx([[[3.0, -2, -2], [student, -2, -2]]], [[0, 1]], [[0, 0]], [[0, 0, 1]])
        assert_value(pair_consistency(ctx, delta=0.1), ref_pair_consistency(ctx, delta=0.1))


@pytest.mark.parametrize("T", [0.5, 1.0, 3.0])
def test_symmetric_kl_is_symmetric_bernoulli_kl(T):
    za, zb = [1.5, -0.5, 0.2, -3.0], [-1.0, 0.7, 0.2, 2.0]
    ctx = make_ctx([[za, zb]], [[0, 1]], [[0, 1]], [[0, 0, 1]])
    p, q = [sigmoid(v / T) for v in za], [sigmoid(v / T) for v in zb]
    expected = 0.5 * sum(bernoulli_kl(pc, qc) + bernoulli_kl(qc, pc) for pc, qc in zip(p, q))
    assert_value(symmetric_kl(ctx, T=T), expected)
    ctx_swapped = make_ctx([[za, zb]], [[0, 1]], [[0, 1]], [[0, 1, 0]])
    assert_value(symmetric_kl(ctx_swapped, T=T), expected)


# --- gradients ----------------------------------------------------------------------------------------------------

# Image 0 has 4 anchors: GT 0 owns anchors 0, 1 (best: 1), GT 1 owns anchors 2, 3 (best: 2).
ASSIGN, SCORES, LABELS = [[0, 0, 1, 1]], [[0.2, 0.9, 0.8, 0.3]], [[0, 0]]


def grads(fn, rows: dict[int, list[float]], pairs, **opts) -> torch.Tensor:
    logits = torch.tensor([[[0.3, -0.4, 0.1]] * 4])
    for a, row in rows.items():
        logits[0, a] = torch.tensor(row)
    logits.requires_grad_()
    value = fn(make_ctx(logits, ASSIGN, LABELS, pairs, SCORES), **opts)
    assert value > 0
    value.backward()
    return logits.grad[0]


@pytest.mark.parametrize("pairs", [[[0, 0, 1]], [[0, 1, 0]]])
def test_pair_consistency_same_class_teacher_detached(pairs):
    g = grads(pair_consistency, {1: [3.0, -2, -2], 2: [0.5, -1, -1]}, pairs)  # teacher at anchor 1
    assert torch.all(g[[0, 1, 3]] == 0)
    assert g[2, 0] < 0 and torch.all(g[2, 1:] == 0)  # descent raises the student's top-1 logit only


def test_pair_consistency_mismatch_pulls_student_to_teacher_class():
    g = grads(pair_consistency, {1: [3.0, -2, -2], 2: [-1.0, 1, -1.5]}, [[0, 0, 1]])  # teacher class 0, student 1
    assert torch.all(g[[0, 1, 3]] == 0)
    assert g[2, 0] < 0 and torch.all(g[2, 1:] == 0)


def test_symmetric_kl_both_members_get_gradient():
    g = grads(symmetric_kl, {1: [3.0, -2, -2], 2: [-1.0, 1, -1.5]}, [[0, 0, 1]])
    assert torch.all(g[[0, 3]] == 0)
    assert torch.all(g[1] != 0) and torch.all(g[2] != 0)


@pytest.mark.parametrize("pairs", [[[0, 0, 1]], [[0, 1, 0]]])
def test_symmetric_kl_detach_teacher(pairs):
    g = grads(symmetric_kl, {1: [3.0, -2, -2], 2: [-1.0, 1, -1.5]}, pairs, detach="teacher")
    assert torch.all(g[[0, 1, 3]] == 0)
    assert torch.all(g[2] != 0)


# --- ties ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn, opts", [(pair_consistency, {}), (symmetric_kl, {"detach": "teacher"})])
@pytest.mark.parametrize("pairs, student", [([[0, 0, 1]], 2), ([[0, 1, 0]], 1)])
def test_equal_confidence_member_a_teaches(fn, opts, pairs, student):
    # same max probability sigmoid(2) on different classes: the pair's first member is the teacher
    g = grads(fn, {1: [2.0, 0, -1], 2: [0.0, 2, -1]}, pairs, **opts)
    teacher = 3 - student
    assert torch.all(g[teacher] == 0) and torch.any(g[student] != 0)


@pytest.mark.parametrize("fn", REGULARIZERS)
def test_best_anchor_tie_takes_lowest_index(fn):
    # GT 0 owns anchors 0 and 1 with equal target scores and is the student of GT 1 (anchor 2)
    logits = torch.tensor([[[1.0, -1, 0], [-1.0, 2, 0], [3.0, 0, 0]]], requires_grad=True)
    ctx = make_ctx(logits, [[0, 0, 1]], [[0, 0]], [[0, 1, 0]], scores=[[0.5, 0.5, 0.9]])
    fn(ctx).backward()
    assert torch.any(logits.grad[0, 0] != 0) and torch.all(logits.grad[0, 1] == 0)


# --- activity -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", REGULARIZERS)
@pytest.mark.parametrize("anchor", ["best", "mean"])
@pytest.mark.parametrize("pairs", [torch.zeros(0, 3, dtype=torch.long), [[0, 0, 2], [0, 2, 1]]])
def test_no_active_pairs_is_attached_zero(fn, anchor, pairs):
    logits = torch.randn(1, 4, 3, requires_grad=True)
    ctx = make_ctx(logits, ASSIGN, [[0, 0, 1]], pairs, SCORES)  # GT 2 has no anchor
    value = fn(ctx, anchor=anchor)
    assert value.dtype == torch.float32 and value.ndim == 0
    assert value.item() == 0.0 and value.requires_grad
    value.backward()
    assert torch.all(logits.grad == 0)


@pytest.mark.parametrize("fn", REGULARIZERS)
@pytest.mark.parametrize("anchor", ["best", "mean"])
def test_member_without_anchor_makes_pair_inactive(fn, anchor):
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(2, 6, 3, generator=g) * 2).requires_grad_()
    assign = [[0, 0, 1, 1, 2, -1], [1, 0, 0, 1, -1, -1]]  # GT 2 of image 1 has no anchor
    labels = [[0, 1, 2], [2, 2, 0]]
    active = [[0, 0, 1], [0, 2, 1], [1, 0, 1]]
    value = fn(make_ctx(logits, assign, labels, active + [[1, 2, 0], [1, 1, 2]]), anchor=anchor)
    expected = fn(make_ctx(logits, assign, labels, active), anchor=anchor)
    torch.testing.assert_close(value, expected)
    (grad,) = torch.autograd.grad(value, logits)
    torch.testing.assert_close(grad, torch.autograd.grad(expected, logits)[0])


@pytest.mark.parametrize("fn", REGULARIZERS)
def test_half_logits_give_fp32_scalar(pair_context_factory, fn):
    value = fn(pair_context_factory(**RANDOM, dtype=torch.half))
    assert value.dtype == torch.float32 and value.ndim == 0 and torch.isfinite(value)


# --- options and registration -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn, opts",
    [
        (pair_consistency, {"anchor": "max"}),
        (pair_consistency, {"tau_high": 1.5}),
        (pair_consistency, {"margin": -0.1}),
        (pair_consistency, {"delta": 0.0}),
        (pair_consistency, {"delta": float("nan")}),
        (pair_consistency, {"mismatch_weight": -1.0}),
        (symmetric_kl, {"anchor": "first"}),
        (symmetric_kl, {"T": 0.0}),
        (symmetric_kl, {"T": -1.0}),
        (symmetric_kl, {"detach": "student"}),
        (symmetric_kl, {"detach": True}),
    ],
)
def test_bad_options_raise(pair_context_factory, fn, opts):
    with pytest.raises(ValueError, match=next(iter(opts))):
        fn(pair_context_factory(), **opts)


def test_plugin_registers_both_regularizers():
    pm = pluggy.PluginManager("pairhook")
    pm.add_hookspecs(hookspecs)
    pm.register(builtin)
    calls = []
    pm.hook.pairhook_register_regularizers(
        register=lambda name, fn, loss_name=None, **flags: calls.append((name, fn, loss_name, flags)))
    assert calls == [("pair_consistency", pair_consistency, "pair_loss", {"needs_pairs": True, "gate": "tau_high"}),
                     ("symmetric_kl", symmetric_kl, "skl_loss", {"needs_pairs": True})]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("fn", REGULARIZERS)
@pytest.mark.parametrize("anchor", ["best", "mean"])
def test_no_host_sync_on_cuda(pair_context_factory, fn, anchor):
    ctx = pair_context_factory(**RANDOM, seed=1, device="cuda")
    logits = ctx.logits
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        fn(ctx, anchor=anchor).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert logits.grad is not None
