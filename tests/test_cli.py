"""The `pairhook` command line, `pairhook inspect` and `pairhook demo` (tiny real runs, offline)."""

from __future__ import annotations

import subprocess
import sys
import tempfile

import cv2
import pytest
import torch

import pairhook
from pairhook import cli, demo, inspection


# Command line --------------------------------------------------------------------------------------------------
def test_values_are_typed_and_defaults_filled():
    kw = cli.parse_args(["epochs=3", "out=runs/x", "model=yolov8s.yaml", "seed=010"], cli.COMMANDS["demo"].keys)
    assert kw == {"out": "runs/x", "images": 64, "epochs": 3, "imgsz": 128, "model": "yolov8s.yaml", "seed": 10,
                  "regularizer": "pair_consistency", "seeds": 1}
    assert cli.parse_args(["out=007"], cli.COMMANDS["demo"].keys)["out"] == "007"  # a str key keeps the text
    kw = cli.parse_args(["data=d.yaml", "pairs=null"], cli.COMMANDS["inspect"].keys)
    assert kw["data"] == "d.yaml" and kw["pairs"] is None and kw["batches"] == 2


def test_cli_keys_come_from_the_functions():
    assert list(cli.COMMANDS["demo"].keys) == ["out", "images", "epochs", "imgsz", "model", "seed", "regularizer",
                                               "seeds"]
    assert cli.COMMANDS["demo"].keys["epochs"] == (int, 60)
    assert cli.COMMANDS["inspect"].keys["data"] == (str, cli.REQUIRED)
    assert cli.COMMANDS["inspect"].keys["pairs"] == (str, None)


@pytest.mark.parametrize("args, message", [
    (["foo=1"], "unknown key 'foo'"),
    (["epochs=three"], "epochs must be an integer"),
    (["epochs=true"], "epochs must be an integer"),
    (["epochs"], "expected key=value"),
    (["out="], "out needs a value"),
])
def test_bad_arguments_exit_2_with_usage(args, message, capsys, monkeypatch):
    monkeypatch.setattr(demo, "run_demo", lambda **kw: pytest.fail("must not run"))
    assert cli.main(["demo", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "usage: pairhook demo" in err


def test_inspect_needs_data(capsys):
    assert cli.main(["inspect", "pairs=p.json"]) == 2
    assert "missing data=" in capsys.readouterr().err


def test_help_and_unknown_command(capsys):
    for args in (["help"], [], ["--help"]):
        assert cli.main(args) == 0
        out = capsys.readouterr().out
        assert "usage: pairhook" in out and "demo" in out and "inspect" in out
    assert cli.main(["demo", "help"]) == 0
    assert "usage: pairhook demo" in capsys.readouterr().out
    assert cli.main(["train"]) == 2
    assert "unknown command 'train'" in capsys.readouterr().err


def test_main_passes_typed_values(monkeypatch):
    seen = {}
    monkeypatch.setattr(demo, "run_demo", lambda **kw: seen.update(kw))
    assert cli.main(["demo", "epochs=3", "images=16", "regularizer=symmetric_kl"]) == 0
    assert seen["epochs"] == 3 and seen["images"] == 16 and seen["regularizer"] == "symmetric_kl"
    assert seen["out"] == "pairhook-demo"


def test_errors_exit_1(capsys, tmp_path):
    assert cli.main(["demo", f"out={tmp_path}", "regularizer=nope"]) == 1
    assert "unknown regularizer 'nope'" in capsys.readouterr().err


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "pairhook.cli", "help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "pairhook inspect" in out.stdout, out.stderr


# inspect ------------------------------------------------------------------------------------------------------
def test_inspect_draws_pairs_and_cleans_up(dataset, tmp_path, monkeypatch):
    plugins_before = set(pairhook.registry())
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the training run goes
    (tmp_path / "tmp").mkdir()
    result = inspection.inspect_batches(dataset.data_yaml, dataset.pairs_json, out=tmp_path / "insp", batches=2,
                                     imgsz=64, batch=4)
    assert [p.name for p in result.paths] == ["batch0.png", "batch1.png"]
    for path in result.paths:
        img = cv2.imread(str(path))
        assert img is not None and img.shape[0] >= 2 * 64 * inspection.SCALE and img.shape[1] >= 2 * 64 * inspection.SCALE
    assert result.images == 8 and result.boxes > 0
    assert result.pairs > 0 and 0 < result.active_pairs <= result.pairs
    assert set(pairhook.registry()) == plugins_before  # the recording plugin is gone
    assert len(result.records) == 2
    assert not list((tmp_path / "tmp").glob("pairhook-inspect-*"))  # the temporary training run is removed


def test_inspect_pairs_are_true_pairs(dataset, tmp_path):
    """Synthetic pair members are copies of one defect: same class and box size, same column, b below a.

    Checked on the augmented batches the regularizers see (mosaic, scale, flips), for members clear of the border.
    """
    result = inspection.inspect_batches(dataset.data_yaml, dataset.pairs_json, out=tmp_path, batches=2, imgsz=128,
                                     batch=8)
    checked = 0
    for rec in result.records:
        h, w = rec.img.shape[2:]
        assert rec.pairs.shape[1] == 3 and len(rec.anchors_a) == len(rec.anchors_b) == len(rec.pairs)
        for (k, ga, gb), pts_a, pts_b in zip(rec.pairs.tolist(), rec.anchors_a, rec.anchors_b):
            assert max(ga, gb) < rec.counts[k]
            assert rec.gt_labels[k, ga] == rec.gt_labels[k, gb]
            a, b = rec.gt_bboxes[k, ga], rec.gt_bboxes[k, gb]
            for box, pts in ((a, pts_a), (b, pts_b)):  # anchors sit in (or, for a box under one stride, at) the box
                if len(pts):
                    assert bool(((pts >= box[:2] - 8) & (pts <= box[2:] + 8)).all())
            if min(a[0], a[1], b[0], b[1]) > 1 and max(a[2], b[2]) < w - 1 and max(a[3], b[3]) < h - 1:
                wh_a, wh_b = a[2:] - a[:2], b[2:] - b[:2]
                torch.testing.assert_close(wh_a, wh_b, atol=1.0, rtol=0)
                assert abs(float(a[0] - b[0])) < 1.0  # same column
                assert abs(float(a[1] - b[1])) > float(wh_a[1])  # a different row, clear of each other
                checked += 1
    assert checked >= 3


def test_inspect_without_pairs_draws_only_boxes(dataset, tmp_path):
    result = inspection.inspect_batches(dataset.data_yaml, None, out=tmp_path, batches=1, imgsz=64, batch=4)
    assert len(result.paths) == 1 and result.pairs == 0 and result.boxes > 0


# demo ---------------------------------------------------------------------------------------------------------
def test_demo_trains_both_runs_and_prints_table(tmp_path, capsys):
    res = demo.run_demo(tmp_path / "demo", images=8, epochs=1, imgsz=64)
    out = capsys.readouterr().out
    assert set(res["runs"]) == {"baseline", "pair_consistency"}
    for run in res["runs"].values():
        assert (run / "results.csv").is_file()
        assert run.parent == (tmp_path / "demo" / "runs").resolve()
    base, reg = res["metrics"]["baseline"], res["metrics"]["pair_consistency"]
    assert isinstance(base["mAP50"], float) and isinstance(reg["mAP50-95"], float)
    assert base["train/pair_loss"] is None and isinstance(reg["train/pair_loss"], float)
    assert "[1/2] baseline" in out and "[2/2] pair_consistency" in out
    assert res["table"].splitlines()[0].split() == ["baseline", "pair_consistency", "difference"]
    assert res["table"] in out and "mAP50-95" in res["table"] and "val/pair_loss" in res["table"]


def test_table_is_aligned_and_skips_missing_rows():
    table = demo.format_table({"a": {"mAP50": 0.5, "x": None}, "b": {"mAP50": 0.25, "x": None}})
    lines = table.splitlines()
    assert len(lines) == 3 and "x" not in table and "-0.2500" in lines[2]
    assert len({len(line) for line in lines}) == 1
