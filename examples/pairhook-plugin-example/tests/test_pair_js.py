"""Tests for pair_js, with the fixtures pairhook ships for plugin authors (no conftest needed).

``pair_context_factory`` and ``tiny_training`` come from pairhook's pytest plugin, active wherever pairhook is
installed.
"""

from __future__ import annotations

import math

import pytest
import torch
from pairhook_plugin_example import pair_js

import pairhook


def reference(ctx: pairhook.PairContext, anchor: str = "best", T: float = 1.0) -> float:
    """Plain-Python float64 JS, pair by pair, on the members' logits as pairhook picks them."""
    values = []
    for image, a, b in ctx.pairs.tolist():
        za, has_a = ctx.member_logits(torch.tensor([image]), torch.tensor([a]), anchor)
        zb, has_b = ctx.member_logits(torch.tensor([image]), torch.tensor([b]), anchor)
        if not (has_a and has_b):
            continue
        total = 0.0
        for x, y in zip(za[0].tolist(), zb[0].tolist()):
            p, q = 1 / (1 + math.exp(-x / T)), 1 / (1 + math.exp(-y / T))
            m = (p + q) / 2
            kl = lambda u, v: u * math.log(u / v) + (1 - u) * math.log((1 - u) / (1 - v))  # noqa: E731
            total += 0.5 * kl(p, m) + 0.5 * kl(q, m)
        values.append(total)
    return sum(values) / len(values) if values else 0.0


@pytest.mark.parametrize("anchor", ["best", "mean"])
@pytest.mark.parametrize("T", [1.0, 2.5])
def test_matches_reference(pair_context_factory, anchor, T):
    for seed in range(4):
        ctx = pair_context_factory(B=3, A=24, C=4, G=4, pairs=5, inactive=1, seed=seed)
        value = pair_js(ctx, anchor=anchor, T=T)
        assert value.dtype == torch.float32 and value.ndim == 0
        assert value.item() == pytest.approx(reference(ctx, anchor, T), rel=1e-4, abs=1e-7)


def test_zero_for_equal_members_symmetric_and_bounded(pair_context_factory):
    same = pair_context_factory(logits=[[[1.0, -2, 0.5], [1.0, -2, 0.5]]], assign=[[0, 1]], labels=[[0, 0]],
                                pairs=[[0, 0, 1]])
    assert pair_js(same).item() == pytest.approx(0, abs=1e-6)  # fp32 rounding of entropies ~ 1 each
    swapped = pair_context_factory(B=3, A=24, C=4, G=4, pairs=5, seed=1)
    forward = pair_js(swapped)
    backward = pair_js(pair_context_factory(B=3, A=24, C=4, G=4, pairs=swapped.pairs[:, [0, 2, 1]], seed=1))
    torch.testing.assert_close(forward, backward)
    extreme = pair_context_factory(logits=torch.tensor([[[40.0, -40, 40], [-40.0, 40, -40]]]), assign=[[0, 1]],
                                   labels=[[0, 0]], pairs=[[0, 0, 1]])
    assert pair_js(extreme).item() == pytest.approx(3 * math.log(2), rel=1e-5)  # the bound, without NaN


def test_inactive_pairs_are_left_out(pair_context_factory):
    ctx = pair_context_factory(B=2, A=32, C=3, G=4, pairs=4, inactive=2, seed=3)
    active_only = pair_context_factory(B=2, A=32, C=3, G=4, pairs=ctx.pairs[:2], inactive=0, seed=3)
    torch.testing.assert_close(pair_js(ctx), pair_js(active_only))
    none_active = pair_context_factory(B=2, A=32, C=3, G=4, pairs=2, inactive=2, seed=3)
    value = pair_js(none_active)
    assert value.item() == 0.0 and value.requires_grad  # an attached zero: backward still works


def test_gradient_reaches_only_the_members_and_is_finite(pair_context_factory):
    ctx = pair_context_factory(B=1, A=6, C=3, G=2, pairs=1, fg=0.0, seed=0)  # GT g owns anchor g only
    logits = ctx.logits
    with torch.no_grad():
        logits[0, 0] = torch.tensor([30.0, -30.0, 1.0])  # saturated member a
    pair_js(ctx).backward()
    grad = logits.grad[0]
    assert torch.isfinite(grad).all()
    assert grad[0].abs().sum() > 0 and grad[1].abs().sum() > 0 and torch.all(grad[2:] == 0)


@pytest.mark.parametrize("opts", [{"anchor": "first"}, {"T": 0.0}, {"T": float("nan")}, {"T": "2"}])
def test_bad_options_raise(pair_context_factory, opts):
    with pytest.raises(ValueError, match=next(iter(opts))):
        pair_js(pair_context_factory(), **opts)


def test_registered_through_the_entry_point():
    reg = pairhook.registry()["pair_js"]
    assert reg.fn is pair_js and reg.loss_name == "js_loss" and reg.needs_pairs
    assert reg.source.startswith("entry point pair_js (pairhook-plugin-example ")  # found, not imported by us
    assert reg.options == {"anchor": "best", "T": 1.0}


def test_trains_and_logs_js_loss(tiny_training):
    rows = tiny_training({"pair_consistency": {}, "pair_js": {"weight": 0.5, "T": 2.0}}, epochs=1, imgsz=64)
    assert len(rows) == 1
    for column in ("train/js_loss", "val/js_loss", "train/pair_loss"):
        assert math.isfinite(rows[0][column]) and rows[0][column] >= 0
    assert rows[0]["train/js_loss"] > 0  # some pair was active and its members disagreed
    assert 0 < rows[0]["train/js_acted"] <= rows[0]["train/js_reached"] <= 1  # counted through ctx.pair_mean
