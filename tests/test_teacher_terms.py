"""pair_quality and pair_feature against plain per-pair references, and the properties the issue asks of them: the
GT class only, targets never above the assigner's, gradients only where they belong, a scale independent of the
batch size, the ramp-up."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from pairhook.context import PairContext
from pairhook.teacher_terms import FEATURE_GRID, pair_feature, pair_quality
from pairhook.testing import make_pair_context

RANDOM = dict(B=3, A=40, C=4, G=6, pairs=8, inactive=2)
STRIDES = (8.0, 16.0)


def with_features(ctx: PairContext, seed: int = 0, channels: int = 5) -> PairContext:
    """The context plus two levels of random neck features over a 64 px input, leaves that require grad."""
    g = torch.Generator().manual_seed(seed)
    B = ctx.logits.shape[0]
    feats = tuple(torch.randn(B, channels, int(64 // s), int(64 // s), generator=g).requires_grad_() for s in STRIDES)
    return dataclasses.replace(ctx, features=feats, strides=STRIDES)


# --- references: a loop over pairs, float64 -----------------------------------------------------------------------


def ref_teacher(ctx: PairContext, k: int, tau: float):
    """``(image, gt_t, gt_s, gap)`` of pair ``k``, or None when the term does not act on it."""
    b, ga, gb = (int(x) for x in ctx.pairs[k])
    p = {}
    for g in (ga, gb):
        c = int(ctx.gt_labels[b, g])
        anchors = [a for a in range(ctx.fg_mask.shape[1]) if ctx.fg_mask[b, a] and int(ctx.target_gt_idx[b, a]) == g]
        if not anchors:
            return None
        best = max(anchors, key=lambda a: (float(ctx.target_scores[b, a, c]), -a))
        p[g] = 1 / (1 + math.exp(-float(ctx.logits[b, best, c])))
    t, s = (ga, gb) if p[ga] >= p[gb] else (gb, ga)
    if p[t] < tau or p[t] <= p[s]:
        return None
    return b, t, s, p[t] - p[s]


def ref_quality(ctx: PairContext, tau: float = 0.25) -> float:
    z, t = ctx.logits.detach().double(), ctx.target_scores.double()
    bce = F.binary_cross_entropy_with_logits(z, t, reduction="none").sum(-1)
    total = 0.0
    for k in range(ctx.num_pairs):
        picked = ref_teacher(ctx, k, tau)
        if picked is None:
            continue
        b, _, s, gap = picked
        for a in range(z.shape[1]):
            if ctx.fg_mask[b, a] and int(ctx.target_gt_idx[b, a]) == s:
                total += gap * float(bce[b, a])
    return ctx.cls_gain * total / max(float(t.sum()), 1.0)


def ref_feature(ctx: PairContext, tau: float = 0.25) -> float:
    total = 0.0
    for k in range(ctx.num_pairs):
        picked = ref_teacher(ctx, k, tau)
        if picked is None:
            continue
        b, t, s, _ = picked
        mass = sum(float(ctx.target_scores[b, a].sum()) for a in range(ctx.fg_mask.shape[1])
                   if ctx.fg_mask[b, a] and int(ctx.target_gt_idx[b, a]) == t)
        per_level = []
        for f, stride in zip(ctx.features, ctx.strides):
            grid = [roi_align(f.detach().double(), torch.cat([torch.tensor([float(b)]), ctx.gt_bboxes[b, g].float()])
                              [None].double(), FEATURE_GRID, 1 / stride, 2, True)[0] for g in (s, t)]
            cos = F.cosine_similarity(grid[0], grid[1], dim=0)
            per_level.append(float((1 - cos).mean()))
        total += mass * sum(per_level) / len(per_level)
    return ctx.cls_gain * total / max(float(ctx.target_scores.sum()), 1.0)


# --- equivalence ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tau", [0.0, 0.25, 0.6])
def test_pair_quality_matches_reference(seed, tau):
    ctx = make_pair_context(**RANDOM, seed=seed)
    assert float(pair_quality(ctx, tau=tau, rampup=0)) == pytest.approx(ref_quality(ctx, tau), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tau", [0.0, 0.25, 0.6])
def test_pair_feature_matches_reference(seed, tau):
    ctx = with_features(make_pair_context(**RANDOM, seed=seed), seed)
    assert float(pair_feature(ctx, tau=tau, rampup=0)) == pytest.approx(ref_feature(ctx, tau), rel=1e-5, abs=1e-9)


def test_equally_sure_members_have_no_teacher():
    # both members' best anchors have the same logits: neither is surer, so neither teaches
    logits = torch.zeros(1, 2, 2)
    ctx = make_pair_context(logits=logits, assign=[[0, 1]], labels=[[1, 1]], pairs=[[0, 0, 1]], scores=[[1.0, 1.0]])
    assert float(pair_quality(ctx, tau=0.0, rampup=0)) == 0.0


# --- what the terms may and may not do ------------------------------------------------------------------------------


def test_pair_quality_never_pushes_another_class_up_nor_the_gt_class_above_its_target():
    for seed in range(8):
        ctx = make_pair_context(**RANDOM, seed=seed)
        pair_quality(ctx, tau=0.0, rampup=0).backward()
        grad, p, t = ctx.logits.grad, ctx.logits.detach().sigmoid(), ctx.target_scores
        # descent moves every probability towards the assigner's target, never past it: sign(grad) == sign(p - t)
        moved = grad != 0
        assert moved.any()
        assert (torch.sign(grad[moved]) == torch.sign(p - t)[moved]).all()
        non_gt = t == 0
        assert (grad[non_gt] >= 0).all(), "a non-GT class is only ever pushed down"


def test_pair_quality_gradient_only_at_the_students_anchors():
    ctx = make_pair_context(**RANDOM, seed=3)
    pair_quality(ctx, tau=0.0, rampup=0).backward()
    allowed = torch.zeros(ctx.fg_mask.shape, dtype=torch.bool)
    for k in range(ctx.num_pairs):
        picked = ref_teacher(ctx, k, 0.0)
        if picked:
            b, _, s, _ = picked
            allowed[b] |= ctx.fg_mask[b] & (ctx.target_gt_idx[b] == s)
    touched = ctx.logits.grad.abs().sum(-1) > 0
    assert touched.any() and not (touched & ~allowed).any()


def test_pair_quality_at_the_assigner_targets_is_its_optimum():
    ctx = make_pair_context(**RANDOM, seed=4)
    eps = 1e-6
    at_target = torch.logit(ctx.target_scores.clamp(eps, 1 - eps)).requires_grad_()
    # the teacher is picked from these logits too; what matters is that no anchor is pulled away from its target
    ctx = dataclasses.replace(ctx, logits=at_target)
    pair_quality(ctx, tau=0.0, rampup=0).backward()
    assert at_target.grad.abs().max() < 1e-4


def test_pair_feature_gradient_only_to_the_students_features():
    ctx = with_features(make_pair_context(**RANDOM, seed=5), 5)
    pair_feature(ctx, tau=0.0, rampup=0).backward()
    assert ctx.logits.grad is None or not ctx.logits.grad.any(), "the heads keep Ultralytics' supervision alone"
    for k in range(ctx.num_pairs):
        picked = ref_teacher(ctx, k, 0.0)
        if picked is None:
            continue
        b, t, s, _ = picked
        for f, stride in zip(ctx.features, ctx.strides):
            x1, y1, x2, y2 = (ctx.gt_bboxes[b, s] / stride).tolist()
            # roi_align samples bilinearly inside the box (aligned: half a cell shifted): nothing beyond one cell
            outside = torch.ones(f.shape[2:], dtype=torch.bool)
            outside[max(0, int(y1 - 1.5)):int(y2 + 1.5) + 1, max(0, int(x1 - 1.5)):int(x2 + 1.5) + 1] = False
            others = [j for j in range(ctx.num_pairs) if j != k and ref_teacher(ctx, j, 0.0)
                      and ref_teacher(ctx, j, 0.0)[0] == b]
            if not others:
                assert not f.grad[b][:, outside].any()
    images_with_pairs = {int(b) for b in ctx.pairs[:, 0]}
    for f in ctx.features:
        for b in range(f.shape[0]):
            if b not in images_with_pairs:
                assert not f.grad[b].any()


def test_pair_feature_teacher_gets_no_gradient():
    # one pair: member a's GT-class logit is high, so a teaches and its box's features get no gradient
    ctx = make_pair_context(B=1, A=8, C=2, G=2, pairs=[[0, 0, 1]], seed=0)
    logits = torch.full((1, 8, 2), -4.0)
    logits[0, :, int(ctx.gt_labels[0, 0])] = torch.where(ctx.target_gt_idx[0] == 0, 3.0, -1.0)
    ctx = with_features(dataclasses.replace(ctx, logits=logits.requires_grad_(),
                                            gt_bboxes=torch.tensor([[[4., 4, 20, 20], [36, 36, 52, 52]]])))
    value = pair_feature(ctx, tau=0.0, rampup=0)
    assert value > 0
    value.backward()
    f = ctx.features[0]
    assert f.grad[0, :, :3, :3].abs().sum() == 0  # teacher's box (px 4-20 = cells 0-2 at stride 8)
    assert f.grad[0, :, 4:, 4:].abs().sum() > 0  # student's box


@pytest.mark.parametrize("fn", [pair_quality, pair_feature])
def test_scale_does_not_depend_on_the_batch_size(fn):
    """Two copies of a batch give the term of one, as Ultralytics' class loss does (divided by its targets' sum)."""
    ctx = with_features(make_pair_context(**RANDOM, seed=6), 6)
    B = ctx.logits.shape[0]
    twice = dataclasses.replace(
        ctx, **{k: torch.cat([getattr(ctx, k)] * 2) for k in ("logits", "target_scores", "target_bboxes", "fg_mask",
                                                              "target_gt_idx", "gt_labels", "gt_bboxes")},
        pairs=torch.cat([ctx.pairs, ctx.pairs + torch.tensor([B, 0, 0])]),
        features=tuple(torch.cat([f] * 2) for f in ctx.features))
    one = float(fn(ctx, tau=0.0, rampup=0))
    assert one > 0
    assert float(fn(twice, tau=0.0, rampup=0)) == pytest.approx(one, rel=1e-6)


def test_weight_one_is_in_the_class_losss_units():
    """With every pair's gap at 1, pair_quality is exactly Ultralytics' class loss restricted to the students'
    anchors: its BCE summed there, divided by the targets' sum, times the class gain."""
    B, A, C = 1, 6, 2
    assign = torch.tensor([[0, 0, 1, 1, -1, -1]])
    logits = torch.full((B, A, C), -30.0)
    logits[0, :2, 0] = 30.0  # member a (GT 0) certain of its class: p = 1, member b at p = 0: gap 1
    ctx = make_pair_context(logits=logits, assign=assign, labels=[[0, 0]], pairs=[[0, 0, 1]],
                            scores=torch.full((B, A), 0.5), cls_gain=0.5)
    bce = F.binary_cross_entropy_with_logits(ctx.logits, ctx.target_scores, reduction="none").sum(-1)
    expected = 0.5 * float(bce[0, 2:4].sum()) / float(ctx.target_scores.sum())
    assert float(pair_quality(ctx, tau=0.0, rampup=0)) == pytest.approx(expected, rel=1e-6)


def test_ramp_up_follows_mean_teacher():
    ctx = make_pair_context(**RANDOM, seed=7, epochs=10)
    full = float(pair_quality(dataclasses.replace(ctx, epoch=5), tau=0.0, rampup=0.3))
    for epoch, factor in [(0, math.exp(-5 * (1 - 1 / 3) ** 2)), (1, math.exp(-5 * (1 - 2 / 3) ** 2)), (2, 1.0)]:
        value = float(pair_quality(dataclasses.replace(ctx, epoch=epoch), tau=0.0, rampup=0.3))
        assert value == pytest.approx(factor * full, rel=1e-6)
    assert float(pair_quality(dataclasses.replace(ctx, epoch=0, training=False), tau=0.0, rampup=0.3)) == \
        pytest.approx(full, rel=1e-6)  # validation reports the full term


@pytest.mark.parametrize("fn", [pair_quality, pair_feature])
@pytest.mark.parametrize("pairs", [torch.zeros(0, 3, dtype=torch.long), "gated"])
def test_nothing_to_act_on_is_an_attached_zero(fn, pairs):
    ctx = with_features(make_pair_context(**RANDOM, seed=8))
    if isinstance(pairs, torch.Tensor):
        ctx = dataclasses.replace(ctx, pairs=pairs)
        value = fn(ctx)
    else:
        value = fn(ctx, tau=1.0)  # no teacher is that sure
    assert value == 0 and value.requires_grad
    value.backward()


@pytest.mark.parametrize("fn", [pair_quality, pair_feature])
def test_half_inputs_give_an_fp32_scalar(fn):
    ctx = with_features(make_pair_context(**RANDOM, seed=9, dtype=torch.half))
    ctx = dataclasses.replace(ctx, features=tuple(f.detach().half().requires_grad_() for f in ctx.features))
    value = fn(ctx, tau=0.0, rampup=0)
    assert value.dtype == torch.float32 and value.ndim == 0 and torch.isfinite(value)


def test_pair_feature_says_what_it_needs():
    ctx = make_pair_context(**RANDOM, seed=10)  # no features: a release before 8.4
    with pytest.raises(ValueError, match="upgrade Ultralytics"):
        pair_feature(ctx)


@pytest.mark.parametrize("fn", [pair_quality, pair_feature])
@pytest.mark.parametrize("opts", [{"tau": 1.5}, {"tau": -0.1}, {"rampup": 2.0}])
def test_bad_options_raise(fn, opts):
    with pytest.raises(ValueError, match=next(iter(opts))):
        fn(with_features(make_pair_context()), **opts)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("fn", [pair_quality, pair_feature])
def test_no_host_sync_on_cuda(fn):
    ctx = with_features(make_pair_context(**RANDOM, seed=1, device="cuda"))
    ctx = dataclasses.replace(ctx, features=tuple(f.detach().cuda().requires_grad_() for f in ctx.features))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        fn(ctx, tau=0.0).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


# --- on a real model and a real training ------------------------------------------------------------------------------


def test_pair_feature_trains_the_backbone_not_the_heads():
    """Through pairhook's criterion on a real yolov8n: the term reaches the neck's features Ultralytics passes to the
    loss, so its gradient lands in the backbone and neck, and none in the class or box heads."""
    from ultralytics import YOLO
    from ultralytics.cfg import get_cfg

    from pairhook.criterion import PairhookCriterion
    from pairhook.terms import LossTerms, parse_regularizers

    model = YOLO("yolov8n.yaml").model
    model.args = get_cfg()
    model.train()
    boxes = [[0.3, 0.25, 0.35, 0.35], [0.3, 0.75, 0.35, 0.35]]
    batch = {"img": torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)),
             "batch_idx": torch.tensor([0., 0, 1, 1]), "cls": torch.ones(4, 1), "bboxes": torch.tensor(boxes * 2),
             "pairhook_pairs": torch.tensor([[0, 0, 1], [1, 0, 1]])}
    terms = LossTerms(parse_regularizers({"pair_feature": {"tau": 0.0}}))
    crit = PairhookCriterion(model.init_criterion(), terms, True)
    _, items = crit(model(batch["img"]), batch)
    assert items["pairf_loss"] > 0
    model.zero_grad()
    loss, items = crit(model(batch["img"]), batch)
    term = loss[-1]  # the vector total ends with the term times the batch size
    term.backward()
    head = model.model[-1]
    head_grads = [p.grad for p in head.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    body_grads = [p.grad for m in model.model[:-1] for p in m.parameters() if p.grad is not None
                  and p.grad.abs().sum() > 0]
    assert not head_grads and body_grads


def test_a_tiny_training_logs_both_terms(tmp_path):
    from pairhook.testing import tiny_training

    rows = tiny_training(tmp_path, {"pair_quality": {"tau": 0.0, "rampup": 0.0},
                                    "pair_feature": {"tau": 0.0, "rampup": 0.0}}, epochs=2, imgsz=64, images=8)
    last = rows[-1]
    for name in ("pairq", "pairf"):
        assert math.isfinite(last[f"train/{name}_loss"]) and last[f"train/{name}_loss"] >= 0
        assert last[f"train/{name}_reached"] > 0 and last[f"train/{name}_acted"] > 0
    assert all(k in last for k in ("pairs/ap_lower", "pairs/recall_p80_lower", "pairs/wrong_class_lower"))
