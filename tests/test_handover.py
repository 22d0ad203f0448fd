"""The one hand-over (``pairhook.handover``): an installation as plain data, rebuilt in another process; and the
deprecated names that still work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ultralytics import YOLO

import pairhook
from pairhook import handover

DDP = Path(__file__).parent / "ddp"


def module_term(ctx: pairhook.PairContext, scale: float = 1.0) -> torch.Tensor:
    return ctx.zero() * scale


class ModulePlugin:
    @pairhook.hookimpl
    def pairhook_register_regularizers(self, register):
        register("module_term", module_term, loss_name="mod_loss", gate="scale")


class NestedPlugin:
    @pairhook.hookimpl
    def pairhook_register_regularizers(self, register):
        def nested_term(ctx: pairhook.PairContext) -> torch.Tensor:
            return ctx.zero()

        register("nested_term", nested_term)


def test_description_is_plain_data_naming_in_process_regularizers_by_import(dataset):
    with pairhook.registered(ModulePlugin()):
        model = YOLO("yolov8n.yaml")
        handle = pairhook.install(model, pairs=dataset.pairs_json, match_iou=0.4,
                                  regularizers={"pair_consistency": {"tau_high": 0.3}, "module_term": {"scale": 2.0}})
        d = handover.describe(handle)
    assert json.loads(json.dumps(d)) == d
    assert d["regularizers"] == {"pair_consistency": {"weight": 1.0, "tau_high": 0.3},
                                 "module_term": {"weight": 1.0, "scale": 2.0}}
    assert (d["pairs"], d["match_iou"], d["strict_pairs"]) == (str(Path(dataset.pairs_json).resolve()), 0.4, False)
    assert d["plugins"] == {"module_term": {"fn": f"{__name__}:module_term", "loss_name": "mod_loss",
                                            "needs_pairs": False, "gate": "scale"}}


def test_a_regularizer_that_cannot_be_named_by_import_is_refused(dataset):
    with pairhook.registered(NestedPlugin()):
        handle = pairhook.install(YOLO("yolov8n.yaml"), pairs=dataset.pairs_json, regularizers="nested_term")
        with pytest.raises(handover.Unnameable, match="nested_term"):
            handover.describe(handle)
        assert handover.describe(handle, strict=False)["plugins"] == {}  # a receiver in this process has it


def test_multi_gpu_ranks_refuse_it_before_any_rank_starts(dataset, monkeypatch):
    import types

    from pairhook import ranks

    monkeypatch.delenv(ranks.ENV, raising=False)
    with pairhook.registered(NestedPlugin()):
        model = YOLO("yolov8n.yaml")
        pairhook.install(model, pairs=dataset.pairs_json, regularizers="nested_term")
        with pytest.raises(RuntimeError, match="multi-GPU ranks cannot load .*nested_term.*importable module"):
            ranks.hand_over(types.SimpleNamespace(callbacks=model.callbacks))
    assert ranks.ENV not in os.environ


def test_a_fresh_process_rebuilds_the_installation_from_the_description(dataset):
    """The receiving process has no registry entry for the in-process regularizer: it registers it from the
    description and installs the same terms, weights and options."""
    sys.path.insert(0, str(DDP))
    try:
        import probe

        with pairhook.registered(probe.NanPlugin()):
            handle = pairhook.install(YOLO("yolov8n.yaml"), pairs=dataset.pairs_json,
                                      regularizers={"symmetric_kl": {"T": 2.0}, "nan_on_rank1": {"weight": 0.5}})
            text = handover.encode_all([handle])
    finally:
        sys.path.remove(str(DDP))
    code = ("import os; from pairhook import handover; "
            "[print('SUMMARY', i.summary()) for i in map(handover.build, handover.decode(os.environ['X']))]")
    env = {**os.environ, "X": text, "PYTHONPATH": os.pathsep.join([str(DDP), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("SUMMARY ", 1)[1].strip() == handle.summary()


def test_a_description_whose_function_the_receiver_cannot_import_says_what_to_do():
    description = {"handover": 1, "regularizers": {"gone": {"weight": 1.0}}, "pairs": None, "match_iou": 0.5,
                   "strict_pairs": False, "plugins": {"gone": {"fn": "no_such_module_here:gone", "loss_name": "g",
                                                               "needs_pairs": False, "gate": None}}}
    with pytest.raises(RuntimeError, match="cannot load the installed regularizers.*importable module"):
        handover.build(description)


def test_installation_has_no_pickle_hooks():
    assert not {"__getstate__", "__setstate__", "__reduce__", "__reduce_ex__"} & set(vars(pairhook.Installation))


def test_renamed_public_names_still_work_and_warn():
    from pairhook import plugins, terms

    for module, old, new in ((pairhook, "ActiveRegularizer", terms.ConfiguredRegularizer),
                             (terms, "ActiveRegularizer", terms.ConfiguredRegularizer),
                             (terms, "Terms", terms.LossTerms),
                             (plugins, "Regularizer", plugins.RegisteredRegularizer)):
        with pytest.warns(DeprecationWarning, match=f"{old} is deprecated; use .*{new.__name__}"):
            assert getattr(module, old) is new
