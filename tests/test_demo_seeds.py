"""`pairhook demo seeds=N`: N trainings per variant, table of their means (tiny real runs, offline)."""

from __future__ import annotations

import pytest

from pairhook import demo


def test_demo_with_two_seeds_averages_both(tmp_path, capsys):
    res = demo.run_demo(tmp_path / "demo", images=8, epochs=1, imgsz=64, seed=3, seeds=2)
    out = capsys.readouterr().out
    assert "[4/4]" in out and "seed=4" in out and "mean of 2 seeds" in out
    rows = demo.table_rows("pair_loss")
    for name in ("baseline", "pair_consistency"):
        dirs = res["seed_runs"][name]
        assert [d.name for d in dirs] == [f"{name}-seed3", f"{name}-seed4"] and res["runs"][name] == dirs[0]
        per_seed = [demo.pick(demo.read_results(d), rows) for d in dirs]
        for label, value in res["metrics"][name].items():
            values = [m[label] for m in per_seed if m[label] is not None]
            assert value == (pytest.approx(sum(values) / len(values)) if values else None)
    assert res["metrics"]["pair_consistency"]["train/pair_loss"] is not None


def test_demo_rejects_zero_seeds(tmp_path):
    with pytest.raises(ValueError, match="seeds"):
        demo.run_demo(tmp_path / "demo", seeds=0)
