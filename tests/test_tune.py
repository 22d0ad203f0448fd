"""Tuning with pairhook: ``model.tune()``'s refusals (its real trials are in test_compat.py, on every release),
``pairhook.tune`` with both engines, the search space and fitness forms, and ``pairhook tune``."""

from __future__ import annotations

import pytest
import torch
from ultralytics import YOLO

import pairhook
from pairhook.results import last_results


class LocalPlugin:
    """A regularizer defined inside a function: it cannot be sent to another process."""

    @pairhook.hookimpl
    def pairhook_register_regularizers(self, register):
        def local_term(ctx: pairhook.PairContext) -> torch.Tensor:
            return ctx.zero()

        register("local_term", local_term)


def test_model_tune_refuses_a_regularizer_its_trials_cannot_load(dataset, tmp_path):
    """Every trial of ``model.tune()`` is a new process: an in-process regularizer that cannot travel there fails
    before the first trial, saying what to use instead."""
    with pairhook.registered(LocalPlugin()):
        model = YOLO("yolov8n.yaml")
        pairhook.install(model, pairs=dataset.pairs_json, regularizers="local_term")
        with pytest.raises(RuntimeError, match=r"cannot receive this installation.*local_term.*pairhook\.tune"):
            model.tune(data=str(dataset.data_yaml), iterations=1, epochs=1, imgsz=64, project=str(tmp_path))
    assert not list(tmp_path.rglob("results.csv")), "a trial ran"


def test_trial_commands_of_every_release_are_recognised(monkeypatch):
    import subprocess
    import sys

    from pairhook import compat
    from pairhook.compat import tuner

    assert tuner.training_args(["yolo", "train", "epochs=1"]) == ["epochs=1"]  # 8.1, 8.2
    assert tuner.training_args([sys.executable, "-m", "ultralytics.cfg.__init__", "train", "a=1"]) == ["a=1"]  # 8.3 on
    assert tuner.training_args([sys.executable, "-m", "torch.distributed.run", "x.py"]) is None  # a DDP launch
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, *a, **k: calls.append((cmd, k.get("env", {}).get("X"))))
    shim = compat.TrialSubprocess(lambda args: ["child", *args], {"X": "1"})
    shim.run(["yolo", "train", "epochs=1"], check=True)
    shim.run(["torchrun", "x.py"])
    assert calls == [(["child", "epochs=1"], "1"), (["torchrun", "x.py"], None)] and shim.launched == 1
    with pytest.raises(RuntimeError, match="unrecognised tuner trial command"):
        shim.run(["ultralytics-new", "train", "epochs=1"])
    # 8.3.85 runs the joined words through a shell: the same trial, launched as words without the shell
    assert tuner.training_args("yolo train epochs=1 lr0=0.01") == ["epochs=1", "lr0=0.01"]
    seen = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, *a, **k: seen.append((cmd, k.get("shell"))))
    shim.run("yolo train epochs=1", check=True, shell=True)
    assert seen == [(["child", "epochs=1"], None)] and shim.launched == 2
    with pytest.raises(RuntimeError, match="unrecognised tuner trial command"):
        shim.run("ultralytics-new train epochs=1", shell=True)


def test_trial_arguments_are_read_like_yolo_train():
    from pairhook import compat

    model, task, kwargs = compat.trial_train_args(["model=/w/m.pt", "task=detect", "mode=train", "epochs=2",
                                                   "lr0=0.01", "plots=False", "save_dir=/runs/tune/train3"])
    assert (model, task) == ("/w/m.pt", "detect")
    assert kwargs == {"epochs": 2, "lr0": 0.01, "plots": False, "project": "/runs/tune", "name": "train3",
                      "exist_ok": True}


def test_model_tune_is_routed_on_the_instance_only(dataset):
    model, other = YOLO("yolov8n.yaml"), YOLO("yolov8n.yaml")
    handle = pairhook.install(model, pairs=dataset.pairs_json)
    assert "tune" in vars(model) and "tune" not in vars(other)
    handle.uninstall()
    assert "tune" not in vars(model)


def main_term(ctx: pairhook.PairContext) -> torch.Tensor:
    return ctx.zero()


class MainPlugin:
    @pairhook.hookimpl
    def pairhook_register_regularizers(self, register):
        register("main_term", main_term)


def test_model_tune_refuses_a_regularizer_defined_in_main(dataset, tmp_path, monkeypatch):
    """A regularizer of the script being run (``__main__``) pickles by name but a trial process cannot import it:
    a fresh process tries to load the installation before the first trial."""
    import sys

    monkeypatch.setattr(main_term, "__module__", "__main__")
    monkeypatch.setattr(sys.modules["__main__"], "main_term", main_term, raising=False)
    with pairhook.registered(MainPlugin()):
        model = YOLO("yolov8n.yaml")
        pairhook.install(model, pairs=dataset.pairs_json, regularizers="main_term")
        with pytest.raises(RuntimeError, match=r"cannot load this installation.*main_term.*entry point"):
            model.tune(data=str(dataset.data_yaml), iterations=1, epochs=1, imgsz=64, project=str(tmp_path))
    assert not list(tmp_path.rglob("results.csv")), "a trial ran"


# The search space and the fitness ---------------------------------------------------------------------------------
def test_space_forms():
    from pairhook.tuning.space import parse_space

    dims = {d.key: d for d in parse_space({
        "lr0": (0.001, 0.02), "momentum": [0.6, 0.98, 0.3], "close_mosaic": (0, 10),
        "pair_consistency.tau_high": {"choice": [0.3, 0.5]}, "symmetric_kl.T": {"loguniform": [0.5, 4]},
        "batch": 8}, frozenset({"close_mosaic", "batch"}))}
    assert (dims["lr0"].kind, dims["lr0"].values, dims["lr0"].gain) == ("range", (0.001, 0.02), 1.0)
    assert dims["momentum"].gain == 0.3 and dims["close_mosaic"].integer
    assert dims["pair_consistency.tau_high"].option == ("pair_consistency", "tau_high")
    assert dims["pair_consistency.tau_high"].corners() == [0.3, 0.5]
    assert dims["symmetric_kl.T"].kind == "loguniform" and dims["batch"].kind == "fixed"
    for bad in ({}, {"lr0": (0.1, 0.01)}, {"lr0": (1, 2, 3, 4)}, {"lr0": {"choice": []}},
                {"lr0": {"loguniform": [0, 1]}}, {"lr0": ("a", "b")}):
        with pytest.raises(ValueError, match="search space"):
            parse_space(bad)


def test_space_accepts_ray_tune_domains():
    tune = pytest.importorskip("ray.tune")
    from pairhook.tuning.space import parse_space, to_ray

    dims = parse_space({"a": tune.choice([1, 2]), "b": tune.loguniform(1e-4, 1e-1), "c": tune.uniform(0, 1),
                        "d": tune.randint(0, 5), "e": tune.quniform(0, 1, 0.5)})
    assert [d.kind for d in dims] == ["choice", "loguniform", "uniform", "randint", "ray"]
    space = to_ray(dims)
    assert space["a"].categories == [1, 2] and (space["d"].lower, space["d"].upper) == (0, 5)
    assert type(space["b"].get_sampler()).__name__.lstrip("_") == "LogUniform"


def test_mutation_stays_inside_the_space_and_moves():
    import random

    from pairhook.tuning.space import base_point, mutate, parse_space

    dims = parse_space({"lr0": (0.001, 0.02), "close_mosaic": (0, 10), "symmetric_kl.T": {"loguniform": [0.5, 4]},
                        "pair_consistency.tau_high": {"choice": [0.3, 0.5, 0.7]}}, frozenset({"close_mosaic"}))
    base = base_point(dims, {"lr0": 0.01, "close_mosaic": 12, "symmetric_kl.T": 1.0,
                             "pair_consistency.tau_high": 0.9})
    assert base == {"lr0": 0.01, "close_mosaic": 10, "symmetric_kl.T": 1.0, "pair_consistency.tau_high": 0.3}
    rng, history = random.Random(0), [(0.5, base)]
    for _ in range(50):
        point = mutate(dims, history, rng)
        assert point not in [h[1] for h in history]
        assert 0.001 <= point["lr0"] <= 0.02 and 0.5 <= point["symmetric_kl.T"] <= 4
        assert isinstance(point["close_mosaic"], int) and 0 <= point["close_mosaic"] <= 10
        assert point["pair_consistency.tau_high"] in (0.3, 0.5, 0.7)
        history.append((rng.random(), point))


def test_fitness_forms():
    import math

    from pairhook.tuning.fitness import Fitness

    row = {"fitness": 0.4, "pairs/both_detected": 0.5, "val/pair_loss": 2.0, "metrics/mAP50-95(B)": 0.3}
    assert Fitness.parse("fitness")(row) == 0.4
    f = Fitness.parse("fitness + 0.5*pairs/both_detected + -0.1*val/pair_loss")
    assert f(row) == pytest.approx(0.4 + 0.25 - 0.2)
    assert str(f) == "fitness + 0.5*pairs/both_detected + -0.1*val/pair_loss"
    assert Fitness.parse({"metrics/mAP50-95(B)": 2})(row) == pytest.approx(0.6)
    assert math.isnan(Fitness.parse("pairs/both_detected")({"pairs/both_detected": math.nan}))
    for bad in ("", "mAP", "0.5*", "fitness + x*pairs/n", {"fitness": "1"}):
        with pytest.raises(ValueError):
            Fitness.parse(bad)
    with pytest.raises(ValueError, match="pairs/both_detected.*need pairs on the validation split"):
        Fitness.parse("pairs/both_detected")({"fitness": 0.1})


def test_tune_refuses_before_any_trial(dataset, tmp_path):
    model = YOLO("yolov8n.yaml")
    args = dict(data=str(dataset.data_yaml), out=str(tmp_path), epochs=1, optimizer="SGD")
    with pytest.raises(ValueError, match="pairhook.install"):
        pairhook.tune(model, space={"lr0": (0.001, 0.01)}, **args)
    pairhook.install(model, pairs=dataset.pairs_json, regularizers="pair_consistency")
    for space, message in [({"lr00": (0.001, 0.01)}, "did you mean lr0"),
                           ({"symmetric_kl.T": (0.5, 2.0)}, "'symmetric_kl' is not installed"),
                           ({"pair_consistency.tau_high": (0.2, 1.5)}, "tau_high must be in"),
                           ({"pair_consistency.tau": (0.2, 0.5)}, "has no option 'tau'"),
                           ({"epochs": (1, 3)}, "cannot be searched")]:
        with pytest.raises(ValueError, match=message):
            pairhook.tune(model, space=space, **args)
    with pytest.raises(ValueError, match="ignores 'lr0'.*optimizer='auto'"):
        pairhook.tune(model, space={"lr0": (0.001, 0.01)}, **{**args, "optimizer": "auto"})
    with pytest.raises(ValueError, match="engine"):
        pairhook.tune(model, space={"lr0": (0.001, 0.01)}, engine="optuna", **args)
    with pytest.raises(ValueError, match="out="):
        pairhook.tune(model, space={"lr0": (0.001, 0.01)}, project="x", **args)
    with pairhook.registered(LocalPlugin()):
        pairhook.install(model, pairs=dataset.pairs_json, regularizers="local_term")
        pytest.importorskip("ray.tune")
        with pytest.raises(RuntimeError, match="local_term.*registered in this process only.*entry point"):
            pairhook.tune(model, space={"lr0": (0.001, 0.01)}, engine="ray", **args)
    assert not list(tmp_path.rglob("results.csv")), "a trial ran"


# Real searches -----------------------------------------------------------------------------------------------------
SPACE = {"lr0": (0.001, 0.02), "pair_consistency.weight": (0.5, 4.0), "symmetric_kl.T": {"choice": [0.5, 2.0]}}
TERMS = {"pair_consistency": {"tau_high": 0.3}, "symmetric_kl": {"weight": 1000.0}}
TRAIN = dict(imgsz=64, batch=8, workers=0, plots=False, seed=0, optimizer="SGD")


def check_result(result, n: int) -> None:
    assert len(result.trials) == n and result.best is not None
    for trial in result.trials:
        assert trial.metrics["train/skl_loss"] > 0, "the term is missing from a trial"
        assert trial.metrics["pairs/n"] > 0 and {"val/skl_loss", "pairs/both_detected"} <= set(trial.metrics)
        assert trial.objective == pytest.approx(trial.metrics["fitness"] + 0.5 * trial.metrics["pairs/both_detected"])
    assert result.trials[0].params == {"lr0": 0.01, "pair_consistency.weight": 1.0, "symmetric_kl.T": 0.5}
    assert "trial" in result.table() and "objective" in result.table()


def trains_with_the_best_config(result, dataset, tmp_path) -> None:
    """best.yaml is a pairhook config: installed from it, the model has the best trial's options."""
    import yaml

    from pairhook.tuning import space

    model = YOLO("yolov8n.yaml")
    handle = pairhook.install(model, config=result.config)
    _, options = space.split(result.best.params)
    got = handle.settings()["regularizers"]
    assert got["pair_consistency"]["weight"] == options["pair_consistency"]["weight"]
    assert got["symmetric_kl"] == {**TERMS["symmetric_kl"], **options["symmetric_kl"]}
    hyperparameters = yaml.safe_load(result.hyperparameters.read_text())
    assert hyperparameters == {**TRAIN, "epochs": hyperparameters["epochs"], "lr0": result.best.params["lr0"]}
    model.train(data=str(dataset.data_yaml), cfg=str(result.hyperparameters), epochs=1, project=str(tmp_path),
                name="best", **TRAIN)
    assert model.trainer.args.lr0 == result.best.params["lr0"]
    assert last_results(tmp_path / "best")["train/skl_loss"] > 0


@pytest.mark.slow
def test_local_search(dataset, tmp_path):
    model = YOLO("yolov8n.yaml")
    pairhook.install(model, pairs=dataset.pairs_json, regularizers=TERMS)
    result = pairhook.tune(model, data=dataset.data_yaml, space=SPACE, iterations=2, epochs=1, out=tmp_path / "tune",
                           fitness="fitness + 0.5*pairs/both_detected", **TRAIN)
    check_result(result, 2)
    assert result.trials[1].params != result.trials[0].params
    assert (tmp_path / "tune" / "trials.csv").read_text().count("\n") == 3
    assert [(tmp_path / "tune" / f"trial{i}" / "weights").exists() for i in (1, 2)].count(True) == 1
    trains_with_the_best_config(result, dataset, tmp_path)


@pytest.mark.slow
def test_ray_search(dataset, tmp_path):
    """Ray Tune on this machine (local Ray, CPU trials): every epoch of every trial reports the term, the
    validation losses and the pair metrics, and ASHA reads the objective from those reports."""
    pytest.importorskip("ray.tune")
    model = YOLO("yolov8n.yaml")
    pairhook.install(model, pairs=dataset.pairs_json, regularizers=TERMS)
    result = pairhook.tune(model, data=dataset.data_yaml, space=SPACE, engine="ray", iterations=2, epochs=2,
                           out=tmp_path / "tune", fitness="fitness + 0.5*pairs/both_detected", grace_period=1,
                           ray_init={"num_cpus": 2, "_node_ip_address": "127.0.0.1", "log_to_driver": False},
                           **TRAIN)
    check_result(result, 2)
    for r in result.grid:
        epochs = r.metrics_dataframe
        assert list(epochs["epoch"]) == [1, 2][: len(epochs)]
        assert (epochs["train/skl_loss"] > 0).all() and (epochs["pairs/n"] > 0).all()
        assert {"train/pair_loss", "val/pair_loss", "pairs/both_detected", "fitness", "objective"} <= set(epochs)
    trains_with_the_best_config(result, dataset, tmp_path)


# pairhook tune ------------------------------------------------------------------------------------------------------
def test_cli_tune_reads_keys_like_yolo(monkeypatch, tmp_path):
    import importlib

    from pairhook.cli import main

    api, seen = importlib.import_module("pairhook.tuning.api"), {}

    def fake(model, **kwargs):
        seen.update(kwargs, regularizers=model.callbacks and pairhook.ranks.installations_in(model.callbacks)[0])
        raise RuntimeError("stop here")

    monkeypatch.setattr(api, "tune", fake)
    space = tmp_path / "space.yaml"
    space.write_text("lr0: [0.001, 0.02]\npair_consistency.weight: {choice: [0.5, 2]}\n")
    rc = main(["tune", "model=yolov8n.yaml", "data=d.yaml", f"space={space}", "engine=ray", "iterations=3",
               "fitness=fitness + 0.5*pairs/both_detected", "epochs=2", "imgsz=64", "address=auto", "optimizer=SGD"])
    assert rc == 1
    assert seen["space"] == {"lr0": [0.001, 0.02], "pair_consistency.weight": {"choice": [0.5, 2]}}
    assert (seen["engine"], seen["iterations"], seen["epochs"], seen["imgsz"], seen["address"]) == ("ray", 3, 2, 64,
                                                                                                   "auto")
    assert seen["fitness"] == "fitness + 0.5*pairs/both_detected" and seen["optimizer"] == "SGD"
    assert [r.name for r in seen["regularizers"].active] == ["pair_consistency"]
    seen.clear()
    main(["tune", "model=yolov8n.yaml", "data=d.yaml", "space={lr0: [0.001, 0.02]}", "fitness={fitness: 1}"])
    assert seen["space"] == {"lr0": [0.001, 0.02]} and seen["fitness"] == {"fitness": 1}
    assert main(["tune", "model=yolov8n.yaml", "data=d.yaml", "space=[1, 2]"]) == 1


@pytest.mark.slow
def test_cli_tune_then_train_with_its_config(dataset, tmp_path, capsys):
    """The documented round trip: ``pairhook tune`` writes a config that ``pairhook train`` takes."""
    from pairhook.cli import main

    out = tmp_path / "tune"
    rc = main(["tune", "model=yolov8n.yaml", f"data={dataset.data_yaml}", f"pairs={dataset.pairs_json}",
               "regularizers=pair_consistency,symmetric_kl", "iterations=2", "epochs=1", "imgsz=64", "batch=8",
               "workers=0", "plots=False", "optimizer=SGD", f"out={out}",
               "space={lr0: [0.001, 0.02], pair_consistency.weight: [0.5, 4.0]}"])
    printed = capsys.readouterr().out
    assert rc == 0 and "pair_consistency.weight" in printed and "train with it: pairhook train" in printed
    rc = main(["train", "model=yolov8n.yaml", f"data={dataset.data_yaml}", f"config={out / 'best.yaml'}",
               f"cfg={out / 'best_hyperparameters.yaml'}", "epochs=1", "imgsz=64", "batch=8", "workers=0",
               "plots=False", f"project={tmp_path}", "name=best"])
    row = last_results(tmp_path / "best")
    assert rc == 0 and row["train/skl_loss"] >= 0 and row["pairs/n"] > 0 and "train/pair_loss" in row


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["local", "ray"])
def test_a_fitness_no_epoch_reports_stops_the_search(dataset, tmp_path, engine):
    """A fitness naming a metric the trials do not report fails the search (local: at the first trial; Ray: every
    trial errors), with the metrics the epochs do report, instead of ranking trials on nothing."""
    if engine == "ray":
        pytest.importorskip("ray.tune")
    model = YOLO("yolov8n.yaml")
    pairhook.install(model, pairs=dataset.pairs_json, regularizers=TERMS)
    ray = {"ray_init": {"num_cpus": 2, "_node_ip_address": "127.0.0.1", "log_to_driver": False}} if engine == "ray" \
        else {}
    with pytest.raises(RuntimeError, match=r"(?s)(trial 1 failed|every Ray trial failed).*val/no_such_loss"):
        pairhook.tune(model, data=dataset.data_yaml, space={"pair_consistency.weight": (0.5, 2.0)}, engine=engine,
                      iterations=2, epochs=1, out=tmp_path / "tune", fitness="val/no_such_loss", **TRAIN, **ray)
