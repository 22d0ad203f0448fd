"""The compat suite: what must hold on every Ultralytics release in the matrix (``.ci/matrix.yaml``).

``scripts/compat_matrix.py`` runs this file once per pinned release; the full suite runs it on the newest. Each
task and head the installed release has trains once with the real ``pair_consistency`` term on generated data
with pairs; the tests then check the term's columns, checkpoints without pairhook, resume, and the multi-GPU
worker path that the release uses.
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import ultralytics
import yaml
from ultralytics import YOLO

import pairhook
from pairhook import compat
from pairhook.results import read_results

TERMS = {"pair_consistency": {}, "symmetric_kl": {}, "const": {}}
TRAIN = dict(epochs=1, imgsz=64, batch=8, workers=0, plots=False, verbose=False, exist_ok=True, seed=0)
CFG_DIR = Path(ultralytics.__file__).parent / "cfg" / "models"
# task -> (model yaml, file that must exist in this release for it to be tested)
MODELS = {
    "detect": ("yolov8n.yaml", "v8/yolov8.yaml"),
    "segment": ("yolov8n-seg.yaml", "v8/yolov8-seg.yaml"),
    "pose": ("yolov8n-pose.yaml", "v8/yolov8-pose.yaml"),
    "obb": ("yolov8n-obb.yaml", "v8/yolov8-obb.yaml"),
    "yolov10": ("yolov10n.yaml", "v10/yolov10n.yaml"),
    "yolo26": ("yolo26n.yaml", "26/yolo26.yaml"),
}
AVAILABLE = [k for k, (_, f) in MODELS.items() if (CFG_DIR / f).exists()]
BLOCK_PAIRHOOK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "pairhook":
            raise ImportError("pairhook is not importable here")
sys.meta_path.insert(0, Block())
"""


def test_release_under_test():
    """The matrix runner says which releases it installed (Ultralytics, and torch on a torch row); make sure those
    are the ones imported."""
    assert ultralytics.__version__ == os.environ.get("PAIRHOOK_EXPECT_ULTRALYTICS", ultralytics.__version__)
    expected_torch = os.environ.get("PAIRHOOK_EXPECT_TORCH")
    if expected_torch:
        import torch

        assert torch.__version__.split("+")[0] == expected_torch, (torch.__version__, torch.__file__)


def task_dataset(det: Path, task: str, root: Path) -> Path:
    """Copy a generated detection dataset as a segment / pose / obb one (same boxes, same pairs file)."""
    if task not in ("segment", "pose", "obb"):
        return det / "data.yaml"
    shutil.copytree(det / "images", root / "images")
    for src in (det / "labels").rglob("*.txt"):
        rows = np.loadtxt(src, ndmin=2)
        c, x, y, w, h = rows.T
        x0, y0, x1, y1 = x - w / 2, y - h / 2, x + w / 2, y + h / 2
        if task == "pose":  # one keypoint, visible, at the box centre
            cols = [c, x, y, w, h, x, y, np.full_like(x, 2)]
        else:  # box corners as a polygon (segment) or an oriented box with no rotation (obb)
            cols = [c, x0, y0, x1, y0, x1, y1, x0, y1]
        dst = root / "labels" / src.relative_to(det / "labels")
        dst.parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(dst, np.stack(cols, 1), fmt=["%d"] + ["%.6f"] * (len(cols) - 1))
    data = yaml.safe_load((det / "data.yaml").read_text())
    data["path"] = str(root)
    data["pairs"] = str(det / "pairs.json")
    if task == "pose":
        data.update(kpt_shape=[1, 3], flip_idx=[0])
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "data.yaml"


class Recorder:
    """A plugin adding a constant 0.25 (exact bookkeeping check) and counting the pairs its contexts carried."""

    def __init__(self) -> None:
        self.pairs: list[torch.Tensor] = []

    @pairhook.hookimpl
    def pairhook_register_regularizers(self, register):
        def const(ctx: pairhook.PairContext) -> torch.Tensor:
            if ctx.training:
                n = ctx.num_pairs
                self.pairs.append(n.detach() if torch.is_tensor(n) else torch.tensor(n))
            return ctx.zero() + 0.25

        register("const", const, loss_name="const_loss")


@pytest.fixture(scope="module")
def runs(dataset, tmp_path_factory):
    """One tiny training per available task/head, with ``pair_consistency`` and the recorder: task -> (run, pairs)."""
    out = {}
    for task in AVAILABLE:
        root = tmp_path_factory.mktemp(task)
        data = task_dataset(dataset.root, task, root / "data")
        recorder = Recorder()
        with pairhook.registered(recorder):
            model = YOLO(MODELS[task][0])
            pairhook.install(model, pairs=dataset.pairs_json, regularizers=TERMS)
            model.train(data=str(data), project=str(root), name="run", **TRAIN)
        out[task] = (root / "run", int(sum(p.sum() for p in recorder.pairs)))
    return out


@pytest.mark.parametrize("task", AVAILABLE)
def test_pair_term_in_results_csv(runs, task):
    run, pairs_seen = runs[task]
    (row,) = read_results(run)
    assert pairs_seen > 0, "no pair reached the loss"
    for split in ("train", "val"):
        assert row[f"{split}/const_loss"] == pytest.approx(0.25), f"{split} items are misaligned"
        for term in ("pair_loss", "skl_loss"):
            assert math.isfinite(row[f"{split}/{term}"]) and row[f"{split}/{term}"] >= 0
    assert row["train/skl_loss"] > 0  # pair_loss of an untrained model rounds to 0 in the CSV
    assert row["pairs/n"] > 0, "validation counted no pairs"  # the pair metrics ran on the post-NMS predictions
    for key in ("pairs/both_detected", "pairs/one_detected", "pairs/recall_upper", "pairs/recall_lower"):
        assert math.isnan(row[key]) or 0 <= row[key] <= 1, key  # every pair column, on every release


def test_checkpoints_load_without_pairhook(runs):
    weights = [str(run / "weights" / n) for run, _ in runs.values() for n in ("last.pt", "best.pt")]
    script = BLOCK_PAIRHOOK + f"""
import numpy as np
from ultralytics import YOLO
for w in {weights!r}:
    YOLO(w).predict(np.zeros((64, 96, 3), np.uint8), imgsz=64, verbose=False)
print("loaded", len({weights!r}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert f"loaded {len(weights)}" in out.stdout, out.stderr[-3000:]


def test_resume_continues_the_term(dataset, tmp_path):
    recorder = Recorder()
    with pairhook.registered(recorder):
        model = YOLO("yolov8n.yaml")
        pairhook.install(model, pairs=dataset.pairs_json, regularizers=TERMS)

        def interrupt(trainer):
            raise KeyboardInterrupt("simulated interruption after the first epoch")

        model.add_callback("on_fit_epoch_end", interrupt)
        with pytest.raises(KeyboardInterrupt):
            model.train(data=str(dataset.data_yaml), project=str(tmp_path), name="run", **{**TRAIN, "epochs": 2})
        resumed = YOLO(str(tmp_path / "run" / "weights" / "last.pt"))
        pairhook.install(resumed, pairs=dataset.pairs_json, regularizers=TERMS)
        resumed.train(resume=True)
    rows = read_results(tmp_path / "run")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(r["train/const_loss"] == pytest.approx(0.25) and r["train/skl_loss"] > 0 for r in rows)


def test_pairs_reach_ranks_without_pretrain_routine_start(dataset, tmp_path):
    """Multi-GPU ranks other than 0 never run ``on_pretrain_routine_start``: their loaders get the carrier late."""
    recorder = Recorder()
    with pairhook.registered(recorder):
        model = YOLO("yolov8n.yaml")
        handle = pairhook.install(model, pairs=dataset.pairs_json, regularizers=TERMS)
        model.callbacks["on_pretrain_routine_start"].remove(handle.on_pretrain_routine_start)
        model.train(data=str(dataset.data_yaml), project=str(tmp_path), name="run", **TRAIN)
    assert int(sum(p.sum() for p in recorder.pairs)) > 0
    assert read_results(tmp_path / "run")[0]["train/skl_loss"] > 0


def test_multi_gpu_worker_trains_with_the_term(dataset, tmp_path, monkeypatch):
    """Run the worker script Ultralytics generates for a multi-GPU launch, as a worker, in a fresh process.

    From 8.4.140 the script unpickles the trainer's callbacks, in which pairhook's are stand-ins that carry no
    installation; before that it builds a fresh trainer from the class it imports by name, which ``install()`` made
    pairhook's subclass. Either way the worker rebuilds the installation from the description in its environment.
    Here the launch is on the CPU (no process group), but the code path inside the worker is the one real GPUs take.
    """
    import types

    from ultralytics.utils.dist import generate_ddp_file

    from pairhook import handover, ranks

    model = YOLO("yolov8n.yaml")
    pairhook.install(model, pairs=dataset.pairs_json, regularizers=["pair_consistency", "symmetric_kl"])
    monkeypatch.setattr(compat, "launches_workers", lambda trainer: True)  # as if device="0,1"
    monkeypatch.setenv(ranks.ENV, "")  # none yet; the hand-over's value is removed after the test
    scripts = []

    def launch(trainer):  # stands in for BaseTrainer.train() deciding to start workers
        trainer.callbacks["on_train_start"].remove(launch)
        del compat.unwrap(trainer.model).criterion  # a launching parent never built one (it runs no batch)
        pickled = [fn for fns in trainer.callbacks.values() for fn in fns]
        assert not [fn for fn in pickled if isinstance(fn, types.MethodType)
                    and isinstance(fn.__self__, pairhook.Installation)]
        assert sum(isinstance(fn, ranks.HandedOver) for fn in pickled) == len(pairhook.Installation.EVENTS)
        scripts.append(generate_ddp_file(trainer))
        raise KeyboardInterrupt("the parent stops here; the worker trains")

    model.add_callback("on_train_start", launch)
    with pytest.raises(KeyboardInterrupt):
        model.train(data=str(dataset.data_yaml), project=str(tmp_path), name="run", **TRAIN)
    source = Path(scripts[0]).read_text()
    if not compat.callbacks_reach_workers():
        assert "from pairhook.ranks import PairhookTrainer__" in source
    (description,) = handover.decode(os.environ[ranks.ENV])
    assert set(description["regularizers"]) == {"pair_consistency", "symmetric_kl"} and description["plugins"] == {}
    # LOCAL_RANK marks a worker; RANK stays unset, because with it Ultralytics puts the worker on cuda:RANK
    env = {**os.environ, "LOCAL_RANK": "0",
           "PYTHONPATH": os.pathsep.join([str(Path(pairhook.__file__).parent.parent),
                                          os.environ.get("PYTHONPATH", "")])}
    env.pop("RANK", None)
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(29500 + os.getpid() % 1000))
    # a one-process gloo group, as torchrun would set up (some releases' data samplers need one)
    worker = ("import runpy, sys, torch.distributed as dist; dist.init_process_group('gloo', rank=0, world_size=1); "
              "runpy.run_path(sys.argv[1], run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", worker, scripts[0]], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    (row,) = read_results(tmp_path / "run")
    assert row["train/skl_loss"] > 0 and math.isfinite(row["train/pair_loss"])


def test_multi_gpu_hand_over_leaves_no_file(tmp_path):
    """A multi-GPU launch hands the installations over in the ranks' environment (plain data), so no file is left
    behind, one per training, in the temporary folder."""
    code = ("import types; from pairhook import ranks; print('DESC', ranks.hand_over(types.SimpleNamespace("
            "callbacks={})))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TMPDIR": str(tmp_path)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("DESC ", 1)[1].strip() == "[]" and not list(tmp_path.iterdir())


def trial_rows(root: Path, monkeypatch) -> list[dict[str, float]]:
    """Record the last results.csv row of every ``model.tune()`` trial as it finishes (the tuner deletes the runs
    of all trials but the best): the list fills while the tuner runs."""
    rows: list[dict[str, float]] = []
    run = compat.TrialSubprocess.run

    def record(self, cmd, *args, **kwargs):
        out = run(self, cmd, *args, **kwargs)
        if compat.tuner.training_args(cmd) is not None:
            rows.append(read_results(max(root.rglob("results.csv"), key=os.path.getmtime).parent)[-1])
        return out

    monkeypatch.setattr(compat.TrialSubprocess, "run", record)
    return rows


@pytest.mark.slow
def test_model_tune_trains_every_trial_with_the_term(dataset, tmp_path, monkeypatch):
    """Ultralytics' tuner runs every trial as a ``yolo train`` process; with pairhook installed, each trial trains with
    the installation (its terms in the trial's results.csv, the pair metrics measured)."""
    rows = trial_rows(tmp_path, monkeypatch)
    model = YOLO("yolov8n.yaml")
    pairhook.install(model, pairs=dataset.pairs_json, regularizers={"pair_consistency": {"tau_high": 0.3},
                                                                   "symmetric_kl": {"weight": 1000.0}})
    model.tune(data=str(dataset.data_yaml), iterations=2, project=str(tmp_path), val=True, **TRAIN)
    assert len(rows) == 2, "not every trial ran through pairhook's trial process"
    for row in rows:
        assert row["train/skl_loss"] > 0 and math.isfinite(row["train/pair_loss"]), row
        assert row["pairs/n"] > 0 and "val/skl_loss" in row


@pytest.mark.slow
def test_model_tune_with_ray_trains_every_trial_with_the_term(dataset, tmp_path):
    """``model.tune(use_ray=True)``: each Ray trial re-applies the installation after Ultralytics resets the
    callbacks, and every epoch's report carries the training term and the pair metrics; a release whose Ray
    integration cannot run with the installed Ray is refused before any trial, saying what to use instead."""
    ray = pytest.importorskip("ray")
    tune = pytest.importorskip("ray.tune")
    model = YOLO("yolov8n.yaml")
    pairhook.install(model, pairs=dataset.pairs_json, regularizers={"symmetric_kl": {"weight": 1000.0}})
    args = dict(data=str(dataset.data_yaml), iterations=2, project=str(tmp_path), grace_period=1,
                space={"lr0": tune.uniform(1e-3, 1e-2)}, **TRAIN)
    if "search_alg" in inspect.signature(importlib.import_module("ultralytics.utils.tuner").run_ray_tune).parameters:
        args["search_alg"] = "random"  # the default, optuna, is an extra of Ultralytics' own
    from ultralytics.utils import SETTINGS
    from ultralytics.utils.callbacks import raytune as raytune_callbacks

    raytune = SETTINGS["raytune"]
    # Ultralytics' own Ray callback, as a user has it (conftest turns it off). The module decides at import whether
    # its callback exists, and an earlier test may have imported it with the setting off: import it again.
    SETTINGS.update({"raytune": True})
    importlib.reload(raytune_callbacks)
    try:
        if compat.run_ray_tune_problem():
            refused = r"use_ray=True\) cannot train .* pairhook.tune\(model, engine='ray'"
            with pytest.raises(RuntimeError, match=refused):
                model.tune(use_ray=True, **args)
            assert not list(tmp_path.rglob("results.csv"))
            return
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
        try:
            grid = model.tune(use_ray=True, **args)
        finally:
            ray.shutdown()
    finally:
        SETTINGS.update({"raytune": raytune})
        importlib.reload(raytune_callbacks)
    assert len(grid) == 2
    for result in grid:
        assert result.error is None, result.error
        epochs = result.metrics_dataframe
        assert (epochs["train/skl_loss"] > 0).all() and (epochs["pairs/n"] > 0).all(), epochs.to_dict()


@pytest.mark.parametrize("version", ["8.0.239", "8.1.46", "8.5.0", "9.0.0"])
def test_release_outside_the_range_is_refused(monkeypatch, version):
    monkeypatch.setattr(ultralytics, "__version__", version)
    supported = r"supports Ultralytics 8\.1\.47 to 8\.4\.x"
    with pytest.raises(RuntimeError, match=rf"{supported}; ultralytics {version} is installed"):
        pairhook.install(YOLO("yolov8n.yaml"))


def test_losses_without_the_task_aligned_assigner_are_refused():
    from ultralytics import RTDETR

    for model in (YOLO("yolov8n-cls.yaml"), RTDETR("rtdetr-l.yaml")):
        with pytest.raises(ValueError, match="not supported"):
            pairhook.install(model)


def test_command_line_reads_like_this_releases_yolo(tmp_path, capsys):
    """pairhook's command line on this release's own cfg helpers: key = value, task word, cfg= file, values read as
    literals (8.1/8.2 `eval()` them), Ultralytics' checks, its settings, and the download-free font lookup."""
    from ultralytics.data import utils as data_utils
    from ultralytics.utils import checks, plotting

    from pairhook import cli

    cfg = tmp_path / "run.yaml"
    cfg.write_text("model: yolov8n.yaml\ndata: d.yaml\nepochs: 5\nimgsz: 320\n")
    kw = cli.COMMANDS["train"].parse("train", ["detect", f"cfg={cfg}", "epochs", "=", "2", "name=exit", "cos_lr"])
    assert kw["model"] == "yolov8n.yaml" and kw["data"] == "d.yaml" and kw["task"] == "detect"
    assert (kw["epochs"], kw["imgsz"], kw["name"], kw["cos_lr"]) == (2, 320, "exit", True)
    assert compat.smart_value("exit") == "exit" and compat.smart_value("[1, 2]") == [1, 2]
    assert cli.main(["train", "model=m.yaml", "data=d.yaml", "lr0=high"]) == 2
    assert "'lr0=high' is of invalid type str" in capsys.readouterr().err
    assert cli.main(["settings"]) == 0  # printed by Ultralytics' logger, as `yolo settings`
    with compat.local_fonts():
        assert Path(plotting.check_font("Arial.ttf")).is_file() and data_utils.check_font is checks.check_font
    assert plotting.check_font is checks.check_font  # put back
