"""The `pairhook` command line, `pairhook inspect` and `pairhook demo` (tiny real runs, offline)."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
import tempfile

import cv2
import pytest
import torch
import yaml

import pairhook
from pairhook import batch_drawings, cli, demo
from pairhook.config import UNSET
from pairhook.results import read_results
from pairhook.tables import format_table


# Command line --------------------------------------------------------------------------------------------------
def test_values_are_typed_and_defaults_filled():
    kw = cli.COMMANDS["demo"].parse("demo", ["epochs=3", "out=runs/x", "model", "=", "yolov8s.yaml", "seed=", "010"])
    assert kw == {"out": "runs/x", "images": 64, "epochs": 3, "imgsz": 128, "model": "yolov8s.yaml", "seed": 10,
                  "regularizers": "pair_consistency", "seeds": 1, "jobs": 2}
    assert cli.COMMANDS["demo"].parse("demo", ["out=007"])["out"] == "007"  # a str key keeps the text
    kw = cli.COMMANDS["inspect"].parse("inspect", ["--data", "d.yaml", "pairs=null"])
    assert kw["data"] == "d.yaml" and kw["pairs"] is None and kw["batches"] == 2


def test_cli_keys_come_from_the_functions():
    assert list(cli.COMMANDS["demo"].keys) == ["out", "images", "epochs", "imgsz", "model", "seed", "regularizers",
                                               "seeds", "jobs"]
    assert cli.COMMANDS["demo"].keys["epochs"] == (int, 60)
    assert cli.COMMANDS["inspect"].keys["data"] == (str, cli.REQUIRED)
    assert cli.COMMANDS["inspect"].keys["pairs"] == (str, None)


@pytest.mark.parametrize("args, message", [
    (["foo=1"], "unknown key 'foo'"),
    (["epoch=3"], "unknown key 'epoch'; did you mean epochs?"),
    (["epochs=three"], "epochs must be an integer"),
    (["epochs=true"], "epochs must be an integer"),
    (["epochs"], "'epochs' needs a value"),
    (["out="], "out needs a value"),
])
def test_bad_arguments_exit_2_with_usage(args, message, capsys, monkeypatch):
    monkeypatch.setattr(demo, "run_demo", lambda **kw: pytest.fail("must not run"))
    assert cli.main(["demo", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "usage: pairhook demo" in err and "'pairhook demo help' lists the keys" in err


def test_inspect_needs_data(capsys):
    assert cli.main(["inspect", "pairs=p.json"]) == 2
    assert "missing data=" in capsys.readouterr().err


def test_help_and_unknown_command(capsys):
    for args in (["help"], [], ["--help"], ["-h"]):
        assert cli.main(args) == 0
        out = capsys.readouterr().out
        assert "usage: pairhook" in out and "demo" in out and "inspect" in out and "settings" in out
    for args in (["demo", "help"], ["demo", "--help"], ["help", "demo"]):
        assert cli.main(args) == 0
        assert "usage: pairhook demo" in capsys.readouterr().out
    assert cli.main(["fit"]) == 2
    assert "unknown command 'fit'" in capsys.readouterr().err
    assert cli.main(["trian"]) == 2
    assert "unknown command 'trian'; did you mean train?" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_command_help_explains_every_own_key(name, capsys):
    """`pairhook <command> help` lists each of pairhook's keys with its default and what it means."""
    assert cli.main([name, "help"]) == 0
    out = capsys.readouterr().out
    cmd = cli.COMMANDS[name]
    assert cmd.help in out
    for key in cmd.keys:
        line = next(line for line in out.splitlines() if line.strip().startswith(f"{key}="))
        assert len(line.split(None, 1)) == 2, f"{name}: no description of {key}=: {line!r}"
    if cmd.mode:  # the rest is Ultralytics': point to its own help
        assert f"'yolo {cmd.mode}' key" in out and "'yolo help'" in out and "'yolo cfg'" in out


def test_train_help_shows_meanings_and_defaults(capsys):
    assert cli.main(["train", "--help"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert "the pair file" in lines["pairs=None"]
    assert "comma-separated names" in lines["regularizers=pair_consistency"]  # unset: the config's, else this
    assert "model YAML" in lines["model=<required>"]


def test_version(capsys):
    from importlib.metadata import version

    for args in (["version"], ["--version"], ["-v"]):
        assert cli.main(args) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"pairhook {pairhook.__version__} (ultralytics {version('ultralytics')}, Python ")
    assert version("pairhook") == pairhook.__version__  # the installed metadata says the same (one source)


def test_main_passes_typed_values(monkeypatch):
    seen = {}
    monkeypatch.setattr(demo, "run_demo", lambda **kw: seen.update(kw))
    assert cli.main(["demo", "epochs=3", "images=16", "regularizers=symmetric_kl"]) == 0
    assert seen["epochs"] == 3 and seen["images"] == 16 and seen["regularizers"] == "symmetric_kl"
    assert seen["out"] == "pairhook-demo"


def test_demo_regularizer_is_the_deprecated_name_of_regularizers(monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr(demo, "run_demo", lambda **kw: seen.update(kw))
    assert cli.main(["demo", "regularizer=symmetric_kl"]) == 0
    assert seen["regularizers"] == "symmetric_kl" and "regularizer" not in seen
    assert "regularizer= is deprecated, use regularizers=" in capsys.readouterr().err


def test_errors_exit_1(capsys, tmp_path):
    assert cli.main(["demo", f"out={tmp_path}", "regularizers=nope"]) == 1
    assert "unknown regularizer 'nope'" in capsys.readouterr().err
    with pytest.warns(DeprecationWarning, match="use regularizers="), pytest.raises(ValueError, match="'nope'"):
        demo.run_demo(tmp_path, regularizer="nope")


def test_one_regularizers_form_everywhere():
    """The comma-separated form the command line takes is what install() takes too."""
    from ultralytics import YOLO

    model = YOLO("yolov8n.yaml")
    handle = pairhook.install(model, regularizers="pair_consistency, symmetric_kl")
    assert [r.name for r in handle.active] == ["pair_consistency", "symmetric_kl"]
    handle.uninstall()


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "pairhook.cli", "help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "pairhook inspect" in out.stdout, out.stderr


def test_plugins_lists_regularizers_with_source_and_options(capsys):
    class Plugin:
        @pairhook.hookimpl
        def pairhook_register_regularizers(self, register):
            register("cli_term", lambda ctx, scale, *, mode="sum", eps=1e-6: ctx.zero(), loss_name="cli_loss")

    plugin = Plugin()
    with pairhook.registered(plugin):
        assert cli.main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "loss", "item", "source", "options"]
    rows = {line.split()[0]: line.split(None, 3)[1:] for line in lines[2:]}
    assert rows["cli_term"] == ["cli_loss", "in-process", "weight=1.0 scale=<required> mode='sum' eps=1e-06"]
    assert rows["pair_consistency"][:2] == ["pair_loss", "built-in"]
    assert "tau_high=0.5" in rows["pair_consistency"][2] and "detach=None" in rows["symmetric_kl"][2]
    assert cli.main(["plugins"]) == 0 and "cli_term" not in capsys.readouterr().out  # gone once unregistered


# inspect ------------------------------------------------------------------------------------------------------
def test_inspect_draws_pairs_and_cleans_up(dataset, tmp_path, monkeypatch):
    plugins_before = set(pairhook.registry())
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the training run goes
    (tmp_path / "tmp").mkdir()
    result = batch_drawings.inspect_batches(dataset.data_yaml, dataset.pairs_json, out=tmp_path / "insp", batches=2,
                                     imgsz=64, batch=4)
    assert [p.name for p in result.paths] == ["batch0.png", "batch1.png"]
    for path in result.paths:
        img = cv2.imread(str(path))
        assert img is not None and min(img.shape[:2]) >= 2 * 64 * batch_drawings.SCALE
    assert result.images == 8 and result.boxes > 0
    assert result.pairs > 0 and 0 < result.active_pairs <= result.pairs
    assert set(pairhook.registry()) == plugins_before  # the recording plugin is gone
    assert len(result.records) == 2
    assert not list((tmp_path / "tmp").glob("pairhook-inspect-*"))  # the temporary training run is removed


def test_inspect_pairs_are_true_pairs(dataset, tmp_path):
    """Synthetic pair members are copies of one defect: same class and box size, same column, b below a.

    Checked on the augmented batches the regularizers see (mosaic, scale, flips), for members clear of the border.
    """
    result = batch_drawings.inspect_batches(dataset.data_yaml, dataset.pairs_json, out=tmp_path, batches=2, imgsz=128,
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
    result = batch_drawings.inspect_batches(dataset.data_yaml, None, out=tmp_path, batches=1, imgsz=64, batch=4)
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
    timing = next(line for line in out.splitlines() if line.startswith("pairhook demo: 2 trainings in "))
    assert " cores (" in timing and "load avg" in timing and "ultralytics " in timing  # the figure names its machine
    assert "pairhook demo: baseline: recall of the upper view" in out  # the story follows the table
    assert "pairhook demo: pair_consistency: in the last epoch it reached" in out
    assert "pairhook demo: pair_consistency - baseline, pairs on one view only" in out
    assert set(res["activity"]["pair_consistency"]) == {"reached", "acted"}


def test_table_is_aligned_and_skips_missing_rows():
    table = format_table(*demo.comparison_rows({"a": {"mAP50": 0.5, "x": None}, "b": {"mAP50": 0.25, "x": None}}))
    lines = table.splitlines()
    assert len(lines) == 3 and "x" not in table and "-0.2500" in lines[2]
    assert len({len(line) for line in lines}) == 1


# train / evaluate ---------------------------------------------------------------------------------------------
def test_train_and_evaluate_parse_like_yolo(capsys):
    train = cli.COMMANDS["train"]
    kw = train.parse("train", ["detect", "model=m.yaml", "--data", "d.yaml", "epochs", "=", "3", "lr0=", "0.01",
                               "cos_lr", "device=None", "pairs=null", "name=007", "batch=8,"])
    assert kw == {"model": "m.yaml", "data": "d.yaml", "pairs": None, "regularizers": UNSET, "config": None,
                  "strict_pairs": None, "task": "detect", "epochs": 3, "lr0": 0.01, "cos_lr": True, "device": None,
                  "name": "007", "batch": 8}
    assert train.parse("train", ["model=m", "regularizers={symmetric_kl: {T: 2}}"])["regularizers"] == {
        "symmetric_kl": {"T": 2}}  # a mapping as install() takes it; "a,b" and null as before
    assert "[regularizers=pair_consistency]" in train.usage("train")  # unset: the config's or this
    for args, message in [
        (["model=m.yaml", "data=d.yaml", "epoch=3"], "unknown key 'epoch'; did you mean epochs=100?"),
        (["model=m.yaml", "pair=p.json"], "unknown key 'pair'; did you mean pairs"),
        (["model=m.yaml", "trian"], "did you mean train?"),
        (["model=m.yaml", "val"], "'val' is another mode"),
        (["model=m.yaml", "epochs=three"], "'epochs' must be an int"),  # Ultralytics' own check and message
        (["model=m.yaml", "epochs"], "'epochs' needs a value, e.g. epochs=100"),
        (["model=m.yaml", "task=dance"], "invalid task 'dance'"),
        (["data=d.yaml"], "missing model="),
        (["model=m.yaml", "cfg=absent.yaml"], "cfg=absent.yaml: "),
    ]:
        assert cli.main(["train", *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and "usage: pairhook [task] train" in err, (args, err)
    assert cli.COMMANDS["evaluate"].keys["pair_iou"] == (float, 0.5)
    assert cli.main(["evaluate", "model=m.pt", "data=d.yaml", "pair_iou=high"]) == 2
    assert "pair_iou must be a number" in capsys.readouterr().err
    assert cli.main(["segment", "evaluate", "model=m.pt", "data=d.yaml", "conf=2"]) == 2  # task word first too
    assert "'conf=2' is an invalid value" in capsys.readouterr().err


def test_cfg_file_keys_are_checked(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model: m.yaml\nepoch: 3\n")
    assert cli.main(["train", f"cfg={cfg}"]) == 2
    assert "unknown key 'epoch'; did you mean epochs=100?" in capsys.readouterr().err
    cfg.write_text("model: m.yaml\ndata: d.yaml\npairs: [1, 2]\nmode: val\nepochs: 4\nimgsz: null\n")
    assert cli.main(["train", f"cfg={cfg}"]) == 2
    assert "pairs must be a string" in capsys.readouterr().err
    cfg.write_text("model: m.yaml\ndata: null\npairs: p.json\nmode: val\nepochs: 4\n")  # as `yolo copy-cfg`'s
    kw = cli.COMMANDS["train"].parse("train", [f"cfg={cfg}", "data=d.yaml"])
    assert kw["data"] == "d.yaml" and kw["pairs"] == "p.json" and kw["epochs"] == 4 and "mode" not in kw


def test_train_without_data_is_a_usage_error(capsys):
    assert cli.main(["train", "model=yolov8n.yaml", "epochs=1"]) == 2
    assert "missing data=... (only resume=True goes without)" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    """A 2-epoch run through ``pairhook detect train cfg=run.yaml`` with both built-in regularizers: the file holds
    model, data and the other keys, the command line overrides some (with spaces around ``=``)."""
    project = tmp_path_factory.mktemp("runs")
    cfg = project / "run.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": "yolov8n.yaml", "data": str(dataset.data_yaml), "pairs": str(dataset.pairs_json),
        "regularizers": ["pair_consistency", "symmetric_kl"], "epochs": 5, "imgsz": 64, "batch": 8, "workers": 0,
        "project": str(project), "name": "run", "plots": False, "seed": 0}))
    code = cli.main(["detect", "train", f"cfg={cfg}", "epochs", "=", "2"])
    assert code == 0
    return project / "run"


def val_pairs(dataset):
    return sum(len(rows) for stem, rows in dataset.truth.items() if stem.startswith("val"))


def test_train_writes_pair_metrics_per_validation(trained, dataset):
    rows = read_results(trained)
    assert len(rows) == 2
    for row in rows:
        assert row["train/pair_loss"] >= 0 and row["train/skl_loss"] >= 0  # both regularizers installed
        assert row["pairs/n"] == val_pairs(dataset)  # every val pair reached the validator, every epoch
        for key in ("pairs/both_detected", "pairs/one_detected", "pairs/recall_upper", "pairs/recall_lower",
                    "pairs/class_agree", "pairs/conf_gap"):
            assert math.isnan(row[key]) or 0 <= row[key] <= 1
        assert row["metrics/mAP50(B)"] >= 0  # Ultralytics' own columns still there
    assert not (trained / "pairs.png").exists()  # plots=False: no pairs.png either (plotted: test_reliability.py)


def test_evaluate_a_trained_model(trained, dataset, tmp_path, capsys):
    best = trained / "weights" / "best.pt"
    result = pairhook.evaluate(best, dataset.data_yaml, dataset.pairs_json, imgsz=64, batch=4, project=tmp_path,
                               name="val", plots=False)
    assert result["pairs/n"] == val_pairs(dataset)
    assert {"metrics/mAP50(B)", "metrics/mAP50-95(B)", "pairs/both_detected", "pairs/one_detected",
            "pairs/recall_upper", "pairs/recall_lower", "pairs/class_agree", "pairs/conf_gap"} <= set(result)
    assert 0 <= result["pairs/both_detected"] <= 1
    assert 0 <= result["pairs/both_detected"] + result["pairs/one_detected"] <= 1
    code = cli.main(["evaluate", f"model={best}", f"data={dataset.data_yaml}", f"pairs={dataset.pairs_json}",
                     "imgsz=64", "batch=4", f"project={tmp_path}", "name=val2", "plots=False"])
    out = capsys.readouterr().out
    assert code == 0 and "pairs/both_detected" in out and "metrics/mAP50(B)" in out
    assert "pairs/one_detected" in out and "pairs/recall_upper" in out and "pairs/recall_lower" in out
    assert f"{val_pairs(dataset)}.0000" in out  # pairs/n in the table


def test_evaluate_needs_pairs(trained, dataset, capsys):
    best = trained / "weights" / "best.pt"
    assert cli.main(["evaluate", f"model={best}", f"data={dataset.data_yaml}"]) == 1
    assert "no pairs for" in capsys.readouterr().err


def test_evaluate_keeps_an_installation(trained, dataset, tmp_path):
    from ultralytics import YOLO

    def pairhook_callbacks(model):  # Ultralytics adds its logger integrations at val(): leave those out
        return [(event, fn) for event, funcs in model.callbacks.items() for fn in funcs
                if isinstance(getattr(fn, "__self__", None), pairhook.Installation)]

    model = YOLO(trained / "weights" / "best.pt")
    handle = pairhook.install(model, pairs=dataset.pairs_json)
    before = pairhook_callbacks(model)
    result = pairhook.evaluate(model, dataset.data_yaml, dataset.pairs_json, imgsz=64, batch=4, project=tmp_path,
                               name="val", plots=False)
    assert result["pairs/n"] == val_pairs(dataset)  # counted once although the installation watches val too
    assert pairhook_callbacks(model) == before and before
    handle.uninstall()


def test_pair_columns_stay_aligned_when_validation_is_skipped(dataset, tmp_path):
    """val=False: Ultralytics validates only the last epoch; earlier rows carry NaN in the pair columns."""
    from ultralytics import YOLO

    model = YOLO("yolov8n.yaml")
    pairhook.install(model, pairs=dataset.pairs_json)
    model.train(data=str(dataset.data_yaml), epochs=2, imgsz=64, batch=8, workers=0, project=str(tmp_path),
                name="run", plots=False, val=False)
    with open(tmp_path / "run" / "results.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    assert all(len(row) == len(header) for row in rows) and len(rows) == 2
    first, last = ({k.strip(): float(v) for k, v in zip(header, row)} for row in rows)
    assert math.isnan(first["pairs/n"]) and last["pairs/n"] == val_pairs(dataset)
    assert "_pairhook_metrics" not in vars(model.trainer.validator)  # the validator is left as Ultralytics made it


def test_demo_differences_pair_runs_of_the_same_seed():
    per_seed = {"baseline": [{"a": 0.5, "b": None}, {"a": 0.7, "b": 0.1}, {"a": 0.6, "b": float("nan")}],
                "reg": [{"a": 0.6, "b": 0.2}, {"a": 0.9, "b": 0.3}, {"a": 0.6, "b": 0.4}]}
    diffs = demo.paired(per_seed, "baseline", "reg")
    assert diffs["a"] == (pytest.approx(0.1), pytest.approx(0.1))  # +0.1, +0.2, 0.0: mean 0.1, std 0.1
    assert diffs["b"] == (pytest.approx(0.2), None)  # only seed 1 has both values
    rows = demo.comparison_rows({"baseline": {"a": 0.6, "b": 0.1}, "reg": {"a": 0.7, "b": 0.3}}, None, diffs)
    table = format_table(*rows)
    assert "+0.1000 ± 0.1000" in table and "+0.2000" in table.splitlines()[-1]


def test_demo_story_names_the_bias_the_activity_and_the_uncertainty():
    metrics = {"baseline": {"recall upper view": 0.8, "recall lower view": 0.55, "pairs one detected": 0.3}}
    lines = demo.story(metrics, {"pair_consistency": {"reached": 0.9, "acted": 0.0}},
                       {"pair_consistency": {"pairs one detected": (-0.05, None)}}, seeds=1)
    assert "lower view found 0.25 less often" in lines[0] and "30% of the pairs found on one view only" in lines[0]
    assert "reached 90%" in lines[1] and "acted on 0%" in lines[1] and "no member confident enough" in lines[1]
    assert "-0.050 from one seed, which cannot tell it from seed-to-seed noise" in lines[2] and "seeds=3" in lines[2]
    lines = demo.story(metrics, {"pair_consistency": {"reached": 0.9, "acted": 0.4}},
                       {"pair_consistency": {"pairs one detected": (-0.05, 0.02)}}, seeds=4)
    assert "acted on 40%" in lines[1] and "confident" not in lines[1]
    assert "-0.050 ± 0.020 (std over 4 paired seeds; a mean difference within ±0.020, about two standard errors" \
        in lines[2]
