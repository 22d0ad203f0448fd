"""`pairhook demo seeds=N`: N trainings per variant, table of their means (tiny real runs, offline)."""

from __future__ import annotations

import statistics

import pytest

from pairhook import demo
from pairhook.results import last_results


def test_demo_with_two_seeds_and_two_regularizers(tmp_path, capsys):
    """The effect study's shape: every variant (baseline included) twice, mean ± std, pair metrics for all."""
    res = demo.run_demo(tmp_path / "demo", images=8, epochs=1, imgsz=64, seed=3, seeds=2,
                        regularizers="pair_consistency,symmetric_kl")
    out = capsys.readouterr().out
    assert "[6/6]" in out and "seed=4" in out and "mean ± std of 2 seeds" in out
    rows = demo.table_rows(["pair_loss", "skl_loss"])
    for name in ("baseline", "pair_consistency", "symmetric_kl"):
        dirs = res["seed_runs"][name]
        assert [d.name for d in dirs] == [f"{name}-seed3", f"{name}-seed4"] and res["runs"][name] == dirs[0]
        per_seed = [demo.pick(last_results(d), rows) for d in dirs]
        for label, value in res["metrics"][name].items():
            values = [m[label] for m in per_seed if m[label] is not None and m[label] == m[label]]
            assert value == (pytest.approx(statistics.fmean(values)) if values else None), label
            spread = res["spread"][name][label]
            assert spread == (pytest.approx(statistics.stdev(values)) if len(values) > 1 else None), label
        assert res["metrics"][name]["pairs both detected"] is not None  # measured for the baseline too
    assert res["metrics"]["baseline"]["train/pair_loss"] is None
    assert res["metrics"]["symmetric_kl"]["train/skl_loss"] is not None
    assert " ± " in res["table"] and "difference" not in res["table"]


def test_demo_rejects_zero_seeds(tmp_path):
    with pytest.raises(ValueError, match="seeds"):
        demo.run_demo(tmp_path / "demo", seeds=0)


def test_demo_baseline_alone_on_the_inspection_benchmark(tmp_path, capsys):
    """regularizer=none trains the baseline only; the data is the inspection preset with a held-out test split."""
    import yaml

    res = demo.run_demo(tmp_path / "demo", images=8, epochs=1, imgsz=64, regularizers="none")
    out = capsys.readouterr().out
    assert list(res["metrics"]) == ["baseline"] and "[1/1] baseline" in out and "inspection dataset" in out
    for label in ("pairs one detected", "recall upper view", "recall lower view"):
        assert label in res["metrics"]["baseline"] and label in res["table"]
    data = yaml.safe_load((res["data"] / "data.yaml").read_text())
    assert data["test"] == "images/test" and len(list((res["data"] / "images" / "test").glob("*.png"))) == 8
    assert (res["runs"]["baseline"] / "args.yaml").read_text().count("nbs: 8") == 1  # one step per batch


def test_demo_trainings_side_by_side_train_what_one_after_another_trains(tmp_path, capsys):
    """jobs=2 (worker processes) changes the wall time, never what trains: the same rows as jobs=1."""
    from pairhook.results import read_results

    kw = dict(images=8, epochs=2, imgsz=64, seed=1)
    side = demo.run_demo(tmp_path / "side", jobs=2, **kw)
    assert "2 trainings at once, each in its own process" in capsys.readouterr().out
    alone = demo.run_demo(tmp_path / "alone", jobs=1, **kw)
    for name in ("baseline", "pair_consistency"):
        a, b = (read_results(r["runs"][name] / "results.csv") for r in (side, alone))
        assert len(a) == len(b) == 2
        for row_a, row_b in zip(a, b):
            assert {k: v for k, v in row_a.items() if k != "time"} == pytest.approx(
                {k: v for k, v in row_b.items() if k != "time"}, nan_ok=True)
    assert side["table"] == alone["table"]


def test_demo_with_a_regularizer_of_this_process_trains_here(tmp_path, capsys, pairhook_register):
    """A worker process cannot import an in-process plugin: the demo says so and trains in this process."""
    import pairhook

    class Plugin:
        @pairhook.hookimpl
        def pairhook_register_regularizers(self, register):
            register("local_term", lambda ctx: ctx.zero(), loss_name="local_loss")

    pairhook_register(Plugin())
    res = demo.run_demo(tmp_path / "demo", images=8, epochs=1, imgsz=64, regularizers="local_term", jobs=2)
    out = capsys.readouterr().out
    assert "cannot reach worker processes: jobs=1" in out and "trainings at once" not in out
    assert res["metrics"]["local_term"]["train/local_loss"] == 0.0
