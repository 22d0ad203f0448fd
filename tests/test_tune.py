"""Tuning with pairhook: ``model.tune()``'s refusals (its real trials are in test_compat.py, on every release),
``pairhook.tune`` with both engines, the search space and fitness forms, and ``pairhook tune``."""

from __future__ import annotations

import pytest
import torch
from ultralytics import YOLO

import pairhook


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
