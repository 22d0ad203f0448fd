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


def test_study_paired_interval_is_the_t_interval_of_the_seedwise_differences():
    import study

    # differences 1, 2, 3: mean 2, sd 1, t(0.975, df 2) = 4.3027 -> half-width 4.3027 / sqrt(3) = 2.4842
    mean, low, high = study.paired([11.0, 22.0, 33.0], [10.0, 20.0, 30.0])
    assert mean == pytest.approx(2.0)
    assert (low, high) == pytest.approx((2.0 - 2.4842, 2.0 + 2.4842), abs=1e-4)
    # a seed whose metric is NaN (no pair measured) drops out of the comparison instead of poisoning it
    assert study.paired([1.0, float("nan"), 3.0, 4.0], [0.0, 0.0, 1.0, 1.0])[0] == pytest.approx(2.0)


@pytest.mark.slow
def test_study_runs_every_stage_reports_each_variant_against_the_baseline_and_resumes(tmp_path):
    import csv

    import study

    args = ["--out", str(tmp_path / "study"), "--images", "8", "--epochs", "1", "--seeds", "2", "--trials", "1",
            "--jobs", "1", "--imgsz", "64"]
    res = study.main(args)
    out = res["out"]
    variants = [*study.FIXED, *(f"{name} tuned" for name in study.SPACES)]
    with open(out / "study.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["variant"], r["seed"]) for r in rows) == sorted((v, str(s)) for v in variants for s in (0, 1))
    assert all(r["pairs/recall_lower"] != "" for r in rows)  # every run was evaluated on the test split
    means, diffs = res["table"].split("\n\n")
    assert means.splitlines()[0] == "| test split, last epoch | " + " | ".join(variants) + " |"
    assert diffs.splitlines()[0] == "| minus the baseline, same seed | " + " | ".join(variants[1:]) + " |"
    for label, _ in study.ROWS:
        assert f"| {label} |" in means and f"| {label} |" in diffs
    assert f"| {study.ACTED} |" in means and study.ACTED not in diffs  # training activity: not a test metric
    for name in study.SPACES:  # each search ran with its regularizer and chose options of its space
        assert set(res["tuned"][name]["options"]) == {k.split(".", 1)[1] for k in study.SPACES[name]}
        assert (Path(res["tuned"][name]["dir"]) / "best.yaml").is_file()
    assert (out / "study-recall.png").stat().st_size > 10_000
    before = (out / "study.csv").read_text()
    again = study.main([*args, "--resume"])  # nothing left to do: every run and search is read back
    assert again["table"] == res["table"] and (out / "study.csv").read_text() == before
    assert "0 trainings in" in (out / "study.md").read_text()
