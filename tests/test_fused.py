"""The fused built-in terms equal the plain references (``plain_terms.py``), values and gradients to 1e-6, run
eagerly and compiled, on random cases with ties, with no active pair and with every pair gated off; compiled, a
pair count that changes does not recompile, and a compiler that fails is said once while the term stays right."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from plain_terms import PLAIN

from pairhook import regularizers, teacher_terms
from pairhook.context import PairActivity, PairContext
from pairhook.fused import compiler
from pairhook.testing import make_pair_context

PUBLIC = {"pair_consistency": regularizers.pair_consistency, "symmetric_kl": regularizers.symmetric_kl,
          "pair_quality": teacher_terms.pair_quality, "pair_feature": teacher_terms.pair_feature}
STRIDES = (8.0, 16.0)


def case(seed: int, kind: str) -> PairContext:
    """A random context; ``ties``: few distinct scores and logits, so best anchors and classes tie; ``inactive``:
    no pair has both members assigned."""
    g = torch.Generator().manual_seed(seed)
    B, A, C, G, P = 3, 48, 4, 6, 8
    scores = logits = None
    if kind == "ties":
        scores = torch.randint(0, 3, (B, A), generator=g) / 2
        logits = torch.randint(-2, 3, (B, A, C), generator=g).float()
    ctx = make_pair_context(B=B, A=A, C=C, G=G, pairs=P, seed=seed, inactive=P if kind == "inactive" else 2,
                            scores=scores, logits=logits, epoch=1, epochs=4)
    boxes = torch.rand(B, G, 2, generator=g) * 40
    feats = tuple(torch.randn(B, 5, int(64 // s), int(64 // s), generator=g).requires_grad_() for s in STRIDES)
    return dataclasses.replace(ctx, gt_bboxes=torch.cat([boxes, boxes + 8 + torch.rand(B, G, 2, generator=g) * 16], -1),
                               features=feats, strides=STRIDES)


def fresh(ctx: PairContext) -> PairContext:
    leaf = lambda t: t.detach().clone().requires_grad_()  # noqa: E731
    return dataclasses.replace(ctx, logits=leaf(ctx.logits), features=tuple(leaf(f) for f in ctx.features),
                               activity=PairActivity().on(torch.device("cpu")))


def grads(value: torch.Tensor, ctx: PairContext) -> list[torch.Tensor]:
    leaves = [ctx.logits, *ctx.features]
    return [torch.zeros_like(t) if g is None else g
            for t, g in zip(leaves, torch.autograd.grad(value, leaves, allow_unused=True))]


def check(name: str, ctx: PairContext, mode: str, monkeypatch, **opts) -> None:
    monkeypatch.setenv(compiler.ENV, mode)
    ours, plain = fresh(ctx), fresh(ctx)
    value = PUBLIC[name](ours, **opts)
    expected, reached, acted = PLAIN[name](plain, **opts)
    torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-6)
    for got, want in zip(grads(value, ours), grads(expected, plain)):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    assert ours.activity.counts.tolist() == [ctx.num_pairs, reached, acted, 0]


GATED = {"pair_consistency": {"tau_high": 1.0}, "symmetric_kl": None, "pair_quality": {"tau": 1.0},
         "pair_feature": {"tau": 1.0}}


@pytest.mark.parametrize("kind", ["random", "ties", "inactive", "gated"])
@pytest.mark.parametrize("name", list(PUBLIC))
def test_fused_equals_the_plain_reference_eagerly(name, kind, monkeypatch):
    opts = GATED[name] if kind == "gated" else {}
    if opts is None:
        pytest.skip("symmetric_kl has no gate")
    for seed in range(3):
        check(name, case(seed, "random" if kind == "gated" else kind), "never", monkeypatch, **opts)


@pytest.mark.slow  # one compile per term and options, about 25 s each on 2 cores (cached on disk after)
@pytest.mark.parametrize("name,opts", [("pair_consistency", {}), ("pair_consistency", {"anchor": "mean"}),
                                       ("symmetric_kl", {"detach": "teacher"}), ("pair_quality", {}),
                                       ("pair_feature", {})])
def test_fused_equals_the_plain_reference_compiled(name, opts, monkeypatch):
    for kind in ("random", "ties", "inactive"):
        check(name, case(3, kind), "always", monkeypatch, **opts)
    gated = GATED[name]
    if gated:
        check(name, case(4, "random"), "always", monkeypatch, **{**opts, **gated})


@pytest.mark.slow
def test_a_pair_count_that_changes_does_not_recompile(monkeypatch):
    from torch._dynamo.utils import counters

    monkeypatch.setenv(compiler.ENV, "always")
    for p in (2, 5):  # the first compile (dynamic) and the one specialisation torch.compile makes early on
        check("symmetric_kl", dataclasses.replace(case(0, "random"), pairs=case(0, "random").pairs[:p]), "always",
              monkeypatch)
    before = counters["stats"]["unique_graphs"]
    for p in (3, 7, 4, 6):
        check("symmetric_kl", dataclasses.replace(case(p, "random"), pairs=case(p, "random").pairs[:p]), "always",
              monkeypatch)
    assert counters["stats"]["unique_graphs"] == before


FAILING_COMPILER = """
import logging, sys, torch
import torch._inductor.config as inductor
inductor.cpp.cxx = ("no-such-compiler",)  # a machine without a C++ compiler
inductor.fx_graph_cache = False  # a cached graph would need none
sys.path.insert(0, {tests!r})
from test_fused import PUBLIC, case, fresh
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
import os
for seed in range(2):
    os.environ["PAIRHOOK_COMPILE"] = "always"
    value = PUBLIC["pair_quality"](fresh(case(seed, "random")))
    os.environ["PAIRHOOK_COMPILE"] = "never"
    assert torch.equal(value, PUBLIC["pair_quality"](fresh(case(seed, "random"))))
print("same values")
"""


@pytest.mark.slow
def test_a_failing_compiler_is_said_once_and_the_term_stays_right():
    import subprocess
    import sys
    from pathlib import Path

    script = FAILING_COMPILER.format(tests=str(Path(__file__).parent))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    warned = [line for line in out.stdout.splitlines() if "torch.compile failed for the fused pair_quality" in line]
    assert len(warned) == 1 and "runs eagerly from now on" in warned[0], out.stdout[-2000:]
    assert "same values" in out.stdout


def test_a_bad_compile_setting_says_what_to_do(monkeypatch):
    monkeypatch.setenv(compiler.ENV, "sometimes")
    with pytest.raises(ValueError, match="PAIRHOOK_COMPILE='sometimes' is not one of auto, always, never"):
        compiler.mode()


def test_by_default_only_cuda_compiles(monkeypatch):
    monkeypatch.delenv(compiler.ENV, raising=False)
    assert compiler.compiles(torch.device("cuda")) and not compiler.compiles(torch.device("cpu"))


@pytest.mark.slow
def test_a_compiled_training_logs_what_an_eager_one_does(tmp_path, monkeypatch):
    """Real tiny trainings and their validations, eager then compiled, with pair counts that change every batch:
    the same loss columns and the same activity."""
    from pairhook.testing import tiny_training

    runs = {}
    for mode in ("never", "always"):
        monkeypatch.setenv(compiler.ENV, mode)
        spec = {"symmetric_kl": {}, "pair_quality": {"tau": 0.0, "rampup": 0.0}}
        rows = tiny_training(tmp_path / mode, spec, epochs=2, imgsz=64, images=8)
        runs[mode] = [{k: v for k, v in row.items() if k.split("/")[-1].startswith(("skl_", "pairq_"))}
                      for row in rows]
    for compiled, eager in zip(runs["always"], runs["never"], strict=True):
        assert compiled == pytest.approx(eager, rel=1e-3, abs=1e-5)
    assert runs["always"][-1]["train/skl_loss"] > 0 and runs["always"][-1]["train/pairq_acted"] > 0
