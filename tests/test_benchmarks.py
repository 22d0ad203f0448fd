"""The README's benchmark scripts run against the installed Ultralytics, and the per-pair loop they time the
vectorized term against computes the same value and gradient (the scripts assert it) at the benchmark's scale."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import criterion as criterion_bench  # noqa: E402
import vectorized_vs_loop  # noqa: E402


@pytest.mark.parametrize("seed", [0, 1])
def test_loop_reference_matches_vectorized_term(seed):
    ctx = vectorized_vs_loop.make_ctx(48, seed=seed)
    ctx.logits.requires_grad_()
    vec = vectorized_vs_loop.pair_consistency(ctx)
    loop = vectorized_vs_loop.loop_pair_consistency(ctx)
    assert vec.item() > 0  # the random logits make some teachers confident: the comparison is not 0 == 0
    assert vec.item() == pytest.approx(loop.item(), rel=1e-5)


def test_vectorized_vs_loop_reports_every_variant():
    (n, times), = vectorized_vs_loop.run(repeats=1, sizes=(16,), repeats_bwd=1)  # asserts value and gradient equality
    assert n == 16
    assert set(times) == {f"{k} {w}" for k in ("vectorized", "loop") for w in ("fwd", "fwd+bwd")}
    assert all(t > 0 for t in times.values())


def test_criterion_benchmark_runs_all_three_variants():
    times = criterion_bench.run(repeats=1, batch=2, imgsz=128)
    assert set(times) == {"ultralytics", "wrapper", "pair_consistency"} and all(t > 0 for t in times.values())
