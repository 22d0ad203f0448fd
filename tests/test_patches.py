"""What pairhook replaces on Ultralytics is declared in one list (``pairhook.compat.patches.PATCHES``), shown to the
user (``pairhook.replaced()``, ``repr(handle)``), and put back by ``uninstall()``."""

from __future__ import annotations

import inspect
import subprocess
from typing import Any

import pytest
from ultralytics import YOLO

import pairhook
from pairhook import compat

TRAIN = dict(epochs=1, imgsz=64, batch=8, workers=0, plots=False, verbose=False, exist_ok=True, seed=0, val=True)
DECLARED = {str(p) for p in compat.PATCHES}


def from_pairhook(value: Any) -> bool:
    """A pairhook object: an instance of a pairhook class, a pairhook function, or a method of either."""
    if inspect.ismethod(value):
        value = value.__self__
    module = value.__module__ if inspect.isfunction(value) else type(value).__module__
    return (module or "").split(".")[0] == "pairhook"


def own_attributes(obj: Any) -> dict[str, Any]:
    """What ``obj`` holds itself: its instance dict and, for an ``nn.Module``, its submodules."""
    d = dict(vars(obj))
    d.update(d.pop("_modules", {}) or {})
    return d


def pairhook_values(objects: list[tuple[str, Any]]) -> set[str]:
    """``kind.attribute`` of every attribute of the objects that holds a pairhook object. ``YOLO.trainer`` is left
    out: Ultralytics builds it through the replaced ``_smart_load``, from pairhook's subclass (``pairhook.ranks``)."""
    return {f"{kind}.{name}" for kind, obj in objects for name, value in own_attributes(obj).items()
            if from_pairhook(value) and f"{kind}.{name}" != "YOLO.trainer"}


def ultralytics_modules() -> list[tuple[str, Any]]:
    from ultralytics.data import utils as data_utils
    from ultralytics.engine import trainer, tuner
    from ultralytics.utils import checks, plotting

    return [(m.__name__, m) for m in (checks, plotting, data_utils, tuner, trainer)]


def criteria(model: Any) -> list[tuple[str, Any]]:
    """The model's criterion and every (sub-)criterion that holds an assigner, under the wrapper if there is one."""
    crit = getattr(model, "criterion", None)
    if crit is None:
        return []
    inner = getattr(crit, "inner", crit)
    return [("criterion", owner) for _, owner in compat.assigner_slots(inner)]


def training_objects(trainer: Any) -> list[tuple[str, Any]]:
    model, ema = compat.unwrap(trainer.model), compat.ema_model(trainer)
    found = [("trainer", trainer), ("model", model), *criteria(model)]
    if ema is not None:
        found += [("model", ema), *criteria(ema)]
    for loader, _ in compat.loaders(trainer):
        found += [("loader", loader), ("dataset", loader.dataset)]
    if getattr(trainer, "validator", None) is not None:
        found.append(("validator", trainer.validator))
    return found


def test_every_replacement_is_declared_and_uninstall_puts_everything_back(dataset, tmp_path):
    model = YOLO("yolov8n.yaml")
    modules_before = {name: dict(vars(m)) for name, m in ultralytics_modules()}
    yolo_before = dict(vars(model))
    seen: dict[str, Any] = {}

    def during(trainer: Any) -> None:  # after the epoch's validation: every hook is in place
        seen["trainer"] = trainer
        seen["replaced"] = pairhook.replaced()
        seen["repr"] = repr(handle)
        seen["values"] = pairhook_values([("YOLO", model), *training_objects(trainer), *ultralytics_modules()])

    model.add_callback("on_fit_epoch_end", during)
    handle = pairhook.install(model, pairs=dataset.pairs_json, regularizers=["pair_consistency", "symmetric_kl"])
    model.train(data=str(dataset.data_yaml), project=str(tmp_path), name="run", **TRAIN)

    undeclared = seen["values"] - DECLARED
    assert not undeclared, f"pairhook replaced attributes that PATCHES does not declare: {undeclared}"
    assert {"YOLO._smart_load", "YOLO.tune", "trainer.build_dataset", "trainer.validate", "model.criterion",
            "criterion.assigner", "dataset.get_image_and_label", "dataset.collate_fn", "validator.update_metrics",
            "validator.get_stats", "validator.print_results"} <= seen["values"]
    shown = {entry.split(" on ")[0] for entry in seen["replaced"]}
    # Ultralytics builds the loaders from the carried datasets, so it gives them the carrier's collate_fn itself
    assert seen["values"] - {"loader.collate_fn"} <= shown, "pairhook.replaced() does not show everything replaced"
    assert "replaces" in seen["repr"] and "model.criterion" in seen["repr"]

    trainer = seen["trainer"]
    handle.uninstall()
    left = pairhook_values([("YOLO", model), *training_objects(trainer), *ultralytics_modules()])
    assert not left, f"still replaced after uninstall: {left}"
    for patch in compat.PATCHES:  # every declared attribute is the original object again
        if patch.owner == "YOLO":
            assert vars(model).get(patch.attribute, "absent") is yolo_before.get(patch.attribute, "absent"), patch
        elif "." in patch.owner:
            now = vars(ultralytics_modules_by_name()[patch.owner]).get(patch.attribute, "absent")
            assert now is modules_before[patch.owner].get(patch.attribute, "absent"), patch
        else:
            for kind, obj in training_objects(trainer):
                if kind == patch.owner:
                    assert patch.attribute not in vars(obj) or not from_pairhook(vars(obj)[patch.attribute]), patch
    assert not pairhook.replaced(model, *(obj for _, obj in training_objects(trainer)))


def ultralytics_modules_by_name() -> dict[str, Any]:
    return dict(ultralytics_modules())


def test_an_undeclared_attribute_cannot_be_replaced():
    class Thing:
        pass

    with pytest.raises(AssertionError, match="not declared"):
        compat.replace("trainer", Thing(), "save_model", None)


def test_module_names_are_replaced_for_one_call_only():
    """``model.tune()``'s trial redirect and the offline font lookup replace module names within a block."""
    from ultralytics.engine import trainer, tuner

    with compat.redirect_trials(lambda args: args, {}):  # the modules of this release that launch trials
        assert {"ultralytics.engine.tuner.subprocess", "ultralytics.engine.trainer.subprocess"} & set(
            pairhook.replaced())
    assert all(getattr(m, "subprocess", subprocess) is subprocess for m in (tuner, trainer))
    assert not [e for e in pairhook.replaced() if e.endswith(".subprocess")]
    with compat.local_fonts():
        assert "ultralytics.utils.checks.check_font" in pairhook.replaced()
    assert not [e for e in pairhook.replaced() if e.endswith(".check_font")]
