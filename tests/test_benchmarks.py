"""The benchmark scripts of docs/benchmarks.md run against the installed Ultralytics, and the per-pair loop they time
the vectorized term against computes the same value and gradient (the scripts assert it) at the benchmark's scale."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

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
    mean, low, high, n = study.paired([11.0, 22.0, 33.0], [10.0, 20.0, 30.0])
    assert mean == pytest.approx(2.0) and n == 3
    assert (low, high) == pytest.approx((2.0 - 2.4842, 2.0 + 2.4842), abs=1e-4)
    # a seed whose metric is NaN (no pair measured) drops out of the comparison instead of poisoning it
    assert study.paired([1.0, float("nan"), 3.0, 4.0], [0.0, 0.0, 1.0, 1.0])[::3] == (pytest.approx(2.0), 3)


def test_study_selection_rejects_trials_below_the_baseline_and_widens_an_edge():
    import study

    trials = [{"options": {"weight": 1.0, "tau": 0.25}, "objective": 0.70, "map50_95": 0.40},
              {"options": {"weight": 8.0, "tau": 0.25}, "objective": 0.90, "map50_95": 0.30},  # best, but costs mAP
              {"options": {"weight": 4.0, "tau": 0.1}, "objective": 0.75, "map50_95": 0.39}]
    assert study.select(trials, floor=0.385)["options"] == {"weight": 4.0, "tau": 0.1}
    fallback = study.select(trials, floor=0.45)  # none passes: the best is confirmed anyway, and marked
    assert fallback["options"]["weight"] == 8.0 and fallback["below_floor"]
    space = {"t.weight": {"choice": [1.0, 4.0, 8.0]}, "t.tau": {"choice": [0.1, 0.25, 0.4]}}
    assert study.widened("t", space, trials[1]) == {"t.tau": 0.25, "t.weight": {"choice": [16.0, 32.0, 64.0]}}
    assert study.widened("t", space, trials[0]) == {"t.tau": 0.25, "t.weight": {"choice": [0.125, 0.25, 0.5]}}
    assert study.widened("t", space, trials[2]) == {"t.weight": 4.0, "t.tau": {"choice": [0.0, 0.05]}}
    assert study.widened("t", space, {"options": {"weight": 4.0, "tau": 0.25}}) is None


def test_study_target_is_checked_point_by_point():
    import study

    good = {"recall_lower": (0.12, 0.05, 0.19, 10), "one_detected": (-0.15, -0.2, -0.1, 10),
            "map50_95": (0.0, -0.015, 0.015, 10), "recall_p80_lower": (0.05, 0.01, 0.09, 10)}
    assert all(study.meets_target(good, base_one=0.28).values())
    bad = {**good, "map50_95": (-0.01, -0.03, 0.01, 10), "recall_p80_lower": (0.05, -0.01, 0.11, 10)}
    checks = study.meets_target(bad, base_one=0.28)
    assert [k for k, ok in checks.items() if not ok] == ["mAP50-95 interval lower bound at least -0.02",
                                                         "lower-view recall at matched precision up, interval above 0"]
    # 0.35 - 0.15 = 0.20 is more than half of 0.35
    assert not study.meets_target(good, base_one=0.35)["pairs on one view only at most half the baseline's"]


@pytest.mark.slow
def test_study_runs_every_stage_writes_the_paired_table_and_reuses_its_runs(tmp_path):
    import csv

    import study

    differences = tmp_path / "differences.csv"
    args = ["--out", str(tmp_path / "study"), "--images", "8", "--val-images", "4", "--test-images", "4",
            "--epochs", "1", "--seeds", "2", "--diagnose-seeds", "2", "--trials", "1", "--jobs", "1", "--imgsz", "64",
            "--differences", str(differences)]
    res = study.main(args)
    out = res["out"]
    variants = [*study.DEFAULT, *(f"{name} tuned" for name in study.SPACES)]
    with open(differences) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["variant", "metric", "mean", "ci_low", "ci_high", "seeds"]
    assert sorted({r["variant"] for r in rows}) == sorted(variants)
    assert {r["metric"] for r in rows} == {m for m, _, _ in study.METRICS}
    assert {"map50", "map50_95", "recall_upper", "recall_lower", "one_detected", "both_detected", "ap_upper",
            "ap_lower"} <= {r["metric"] for r in rows}
    assert all(r["seeds"] == "2" for r in rows if r["metric"] == "map50_95")
    text = (out / "study.md").read_text()
    for section in ("## Diagnosis", "## Tuning", "## Confirmation", "## Target"):
        assert section in text
    for _, label in study.TEACHER:  # the diagnosis reports what pair_consistency's teacher is
        assert f"| {label} |" in text
    assert differences.with_suffix(".png").stat().st_size > 10_000
    for name in study.SPACES:  # each search ran with its regularizer and chose options of its space
        assert set(res["tuning"][name]["best"]["options"]) == {k.split(".", 1)[1] for k in study.SPACES[name]}
    again = study.main(args)  # every run and search is reused: nothing is trained again
    assert not any(r["trained"] for r in again["runs"])
    assert again["table"] == res["table"]


@pytest.mark.slow  # compiles each built-in (about 25 s apiece on 2 cores, cached on disk after)
def test_opcount_holds_every_built_in_to_its_launch_budget():
    import opcount

    counts = opcount.run(batch=2, imgsz=64)
    assert set(counts) == {"ultralytics", "wrapper alone", *opcount.BUILT_INS}
    base = counts["ultralytics"]["never"]
    assert base > 100
    assert counts["wrapper alone"]["never"] == base  # no regularizer: Ultralytics' call and nothing else
    for name in opcount.BUILT_INS:
        eager, compiled = counts[name]["never"], counts[name]["always"]
        assert base < compiled <= base + 20 < eager, (name, counts[name])  # the budget holds compiled only
    assert opcount.count_ops(lambda: torch.ones(3).add(1).sum()) == 3  # ones, add, sum: each dispatched op counts
