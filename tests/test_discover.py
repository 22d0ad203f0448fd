"""Pair discovery from labels alone, scored against generated data whose pairs are known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pairhook import cli, load_pair_file
from pairhook.pairs import MatchReport, match_dataset
from pairhook.pairs.discover import discover, precision_recall, read_labels
from pairhook.synthetic import make_dataset


def jitter_labels(root, sigma, seed=0):
    """Hand-labelling noise: every label coordinate moved by N(0, sigma) (normalized units)."""
    rng = np.random.default_rng(seed)
    for f in sorted((root / "labels").rglob("*.txt")):
        rows = read_labels(f)
        rows[:, 1:] += rng.normal(0, sigma, rows[:, 1:].shape)
        f.write_text("".join(f"{int(r[0])} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f}\n" for r in rows))


@pytest.mark.parametrize("seed, shift, sigma", [(0, 0.4, 0.0), (1, 0.3, 0.0), (2, 0.45, 0.0), (3, 0.4, 0.002)])
def test_precision_and_recall_on_generated_data(tmp_path, seed, shift, sigma):
    """Up to 3 distractors per image, most of them same class, size and column as a pair at another height."""
    ds = make_dataset(tmp_path, n_train=32, n_val=8, shift=shift, distractors=(1, 3), pairs_per_image=(0, 2),
                      seed=seed)
    jitter_labels(ds.root, sigma)
    result = discover(ds.data_yaml)
    precision, recall = precision_recall(result.rows, ds.truth)
    print(f"seed {seed} shift {shift} label noise {sigma}: precision {precision:.3f} recall {recall:.3f}; "
          f"{result.summary()}")
    assert precision >= 0.95 and recall >= 0.9
    assert result.shift == pytest.approx(shift, abs=0.005) and not result.shift_given
    assert result.consistent > 3 * result.runner_up  # the shift stands out from every other offset
    assert set(result.rows) == set(ds.truth)  # both splits scanned
    assert all(r <= 0.1 for r in result.residuals)


def test_written_file_round_trips_to_the_same_label_rows(tmp_path):
    ds = make_dataset(tmp_path, n_train=16, n_val=4, distractors=(1, 3), seed=5)
    result = discover(ds.data_yaml)
    pair_file = load_pair_file(result.write(tmp_path / "found.json"))
    assert pair_file.num_pairs == result.num_pairs == sum(map(len, ds.truth.values()))
    labels = []
    for split in ("train", "val"):
        for f in sorted((ds.root / "labels" / split).glob("*.txt")):
            rows = read_labels(f)
            labels.append({"im_file": str(ds.root / "images" / split / f"{f.stem}.png"), "cls": rows[:, :1],
                           "bboxes": rows[:, 1:]})
    matched, report = match_dataset(pair_file, labels, 0.5, "all")
    assert isinstance(report, MatchReport) and report.unmatched == 0
    found = {Path(lb["im_file"]).stem: sorted(map(sorted, rows)) for lb, rows in zip(labels, matched)}
    assert found == {stem: sorted(map(sorted, rows)) for stem, rows in ds.truth.items()}


def test_given_shift_is_used(tmp_path):
    ds = make_dataset(tmp_path, n_train=16, n_val=4, shift=0.4, distractors=(1, 3), seed=6)
    right = discover(ds.data_yaml, shift=0.4)
    assert right.shift_given and right.shift == 0.4
    assert precision_recall(right.rows, ds.truth) == (1.0, 1.0)
    wrong = discover(ds.data_yaml, shift=0.2)  # no pair sits 0.2 apart: the true pairs are not proposed
    assert precision_recall(wrong.rows, ds.truth)[1] == 0 and wrong.consistent < right.consistent


def test_no_candidates(tmp_path):
    ds = make_dataset(tmp_path, n_train=4, n_val=2, pairs_per_image=(0, 0), distractors=(0, 0), seed=7)
    result = discover(ds.data_yaml)
    assert result.shift is None and result.num_pairs == 0 and math.isnan(result.confidence)
    assert "no candidate pairs" in result.summary()
    assert json.loads(result.write(tmp_path / "p.json").read_text()) == {}


def test_bad_arguments(dataset):
    with pytest.raises(ValueError, match="tol"):
        discover(dataset.data_yaml, tol=0)
    with pytest.raises(ValueError, match="no split 'test'"):
        discover(dataset.data_yaml, split="test")


def test_cli_accepts_both_argument_forms(dataset, tmp_path, capsys):
    out = tmp_path / "found.json"
    assert cli.main(["discover", "--data", str(dataset.data_yaml), "--out", str(out), "tol=0.05"]) == 0
    printed = capsys.readouterr().out
    found = load_pair_file(out)
    assert found.num_pairs == sum(map(len, dataset.truth.values()))
    assert f"{found.num_pairs} pairs" in printed and "shift 0.4000 (estimated)" in printed and str(out) in printed
    assert cli.main(["discover", f"data={dataset.data_yaml}", f"out={out}", "shift=0.4"]) == 0
    assert "shift 0.4000 (given)" in capsys.readouterr().out
    assert cli.main(["discover", f"data={dataset.data_yaml}", "shift=high"]) == 2
    assert "shift must be a number" in capsys.readouterr().err
