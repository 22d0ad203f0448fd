"""Reliability: bad inputs fail early and clearly, bad numbers never reach the weights, nothing of the run is lost.

Each test names the "What happens when" row (docs/what-happens-when.md) it backs.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import re
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from plain_terms import PLAIN
from ultralytics import YOLO

import pairhook
from pairhook.context import PairContext
from pairhook.criterion import PairhookCriterion
from pairhook.metrics import KEYS
from pairhook.pairs import PairsError, load_pair_file, match_dataset, resolve_pairs_path
from pairhook.results import read_results
from pairhook.terms import LossTerms, parse_regularizers

TRAIN = {"imgsz": 64, "batch": 8, "workers": 0, "plots": False, "verbose": False, "exist_ok": True, "seed": 0}


# --- helpers ------------------------------------------------------------------------------------------------------


def detection_model():
    from ultralytics.cfg import get_cfg

    model = YOLO("yolov8n.yaml").model
    model.args = get_cfg()
    return model.train()


@pytest.fixture(scope="module")
def det():
    return detection_model()


def paired_batch(images: int = 2, copies: int = 1) -> dict:
    """``images`` 64 px images, each with a vertical pair (GT 0, GT 1) of class 1 and an unpaired box of class 2."""
    boxes = [[0.3, 0.25, 0.35, 0.35], [0.3, 0.75, 0.35, 0.35], [0.75, 0.5, 0.35, 0.35]]
    return {
        "img": torch.rand(images, 3, 64, 64, generator=torch.Generator().manual_seed(0)),
        "batch_idx": torch.arange(images).repeat_interleave(3).float(),
        "cls": torch.tensor([[1.0], [1.0], [2.0]]).repeat(images, 1),
        "bboxes": torch.tensor(boxes).repeat(images, 1),
        "pairhook_pairs": torch.tensor([[b, 0, 1] for b in range(images)] * copies),
    }


def wrapped(model, spec) -> PairhookCriterion:
    return PairhookCriterion(model.init_criterion(), LossTerms(parse_regularizers(spec)), training=True)


def leaf_preds(model, img):
    """Model outputs cut from the model's graph: criterion calls then backpropagate into ``scores`` only (cheap)."""
    preds = model(img)
    return {"boxes": preds["boxes"].detach(), "scores": preds["scores"].detach().requires_grad_(),
            "feats": [f.detach() for f in preds["feats"]]}


def item(items, name):
    return items[name] if isinstance(items, dict) else items[-1]


# --- plugins that misbehave -------------------------------------------------------------------------------------


def raises(ctx):
    raise KeyError("boom")


def vector(ctx):
    return ctx.logits.sum(-1)


def integer(ctx):
    return torch.tensor(3)


def number(ctx):
    return 0.5


def no_grad(ctx):
    return torch.tensor(0.5)


def nan_grad(ctx):
    """inf in value, NaN in gradient: the classic ``sum / count`` with a count of 0."""
    num = ctx.logits.sigmoid().sum()
    return num / (num * 0)


class NanEveryOther:
    """Non-finite (with a NaN gradient) on every other training call, 0.1 otherwise."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, ctx):
        if not ctx.training:
            return ctx.zero() + 0.1
        self.calls += 1
        return nan_grad(ctx) if self.calls % 2 else ctx.zero() + 0.1


class Schedule:
    """A term that follows the run's schedule: ``epoch / epochs``; records what it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def __call__(self, ctx):
        if ctx.training:
            self.seen.append((ctx.epoch, ctx.epochs))
        return ctx.zero() + ctx.epoch / ctx.epochs


class Misbehaving:
    def __init__(self) -> None:
        self.nan_every_other = NanEveryOther()
        self.schedule = Schedule()

    @pairhook.hookimpl
    def pairhook_register_regularizers(self, register):
        for fn in (raises, vector, integer, number, no_grad, nan_grad):
            register(fn.__name__, fn)
        register("nan_every_other", self.nan_every_other)
        register("schedule", self.schedule)


@pytest.fixture
def bad(pairhook_register):
    plugin = Misbehaving()
    pairhook_register(plugin, name="misbehaving")
    return plugin


# --- bad pair files -----------------------------------------------------------------------------------------------


def test_same_box_in_two_pairs_is_skipped_and_counted(tmp_path):
    a, b, c = [0, 0.3, 0.2, 0.1, 0.1], [0, 0.3, 0.6, 0.1, 0.1], [0, 0.3, 0.9, 0.1, 0.1]
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps({"img": [[a, b], [a, c]]}))
    rows = np.asarray([a, b, c], dtype=np.float32)
    labels = [{"im_file": "img.png", "cls": rows[:, :1], "bboxes": rows[:, 1:]}]
    out, report = match_dataset(load_pair_file(path), labels, 0.5, "train")
    assert out == [[(0, 1)]]
    assert (report.pairs, report.matched, report.unmatched) == (2, 1, 1)
    assert "img pair 1 member a: its label row is already a member of another pair" in report.summary()


def test_out_of_range_class_stops_the_run_before_the_first_epoch(dataset, tmp_path):
    pairs = json.loads(dataset.pairs_json.read_text())
    stem = next(iter(pairs))
    pairs[stem][0] = [[7, *m[1:]] for m in pairs[stem][0]]
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(pairs))
    model = YOLO("yolov8n.yaml")
    pairhook.install(model, pairs=path)  # the file is well-formed; the class count comes with the dataset
    message = rf"pairs.json: '{stem}' pair 0: class 7 but the data YAML has 3 classes, 0 to 2 \(0: scratch, 1: dent"
    with pytest.raises(PairsError, match=message):
        model.train(data=str(dataset.data_yaml), project=str(tmp_path), name="run", epochs=1, **TRAIN)
    assert not (tmp_path / "run" / "results.csv").exists() and not (tmp_path / "run" / "weights" / "last.pt").exists()


def _big_pair_file(tmp_path: Path, n: int) -> tuple[Path, list[dict]]:
    data, labels = {}, []
    for i in range(n):
        members = [[k % 3, 0.1 + 0.2 * k, y, 0.05, 0.05] for k in range(4) for y in (0.25, 0.75)]
        data[f"img_{i:06d}"] = [members[2 * k: 2 * k + 2] for k in range(4)]
        rows = np.asarray(members, dtype=np.float32)
        labels.append({"im_file": f"/data/img_{i:06d}.png", "cls": rows[:, :1], "bboxes": rows[:, 1:]})
    path = tmp_path / f"pairs_{n}.json"
    path.write_text(json.dumps(data))
    return path, labels


def _load_and_match(path: Path, labels: list[dict]) -> float:
    start = time.perf_counter()
    rows, report = match_dataset(load_pair_file(path), labels, 0.5, "train")
    elapsed = time.perf_counter() - start
    assert report.matched == report.pairs == 4 * len(labels) and len(rows) == len(labels)
    return elapsed


def test_100k_images_by_4_pairs_load_and_match_in_seconds_and_linearly(tmp_path):
    small = _load_and_match(*_big_pair_file(tmp_path, 10_000))
    large = _load_and_match(*_big_pair_file(tmp_path, 100_000))
    print(f"load + match: 10k images {small:.2f} s, 100k images {large:.2f} s, ratio {large / small:.1f}")
    assert large < 20.0
    assert large / small < 25, "10x the images must cost about 10x the time, not 100x"


# --- bad configuration --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, message",
    [
        (5, "regularizers must be a name, a list of names or a mapping"),
        ({"pair_consistency": 3}, "options must be a mapping"),
        ({"pair_consistency": {"weight": "1.0"}}, "weight must be a finite number >= 0"),
        ({"pair_consistency": {"weight": float("nan")}}, "weight must be a finite number >= 0"),
        ({"pair_consistency": {"tau_high": "high"}}, "option 'tau_high' must be a float"),
        ({"pair_consistency": {"anchor": 1}}, "option 'anchor' must be a str"),
        ({"pair_consistency": {"tau_high": 1.5}}, "regularizer 'pair_consistency': tau_high must be in"),
        ({"symmetric_kl": {"T": 0}}, "regularizer 'symmetric_kl': T must be > 0"),
    ],
)
def test_bad_configuration_is_one_clear_error_at_install(spec, message):
    model = YOLO("yolov8n.yaml")
    with pytest.raises(ValueError, match=message):
        pairhook.install(model, regularizers=spec)
    assert not any(isinstance(getattr(f, "__self__", None), pairhook.Installation)
                   for fns in model.callbacks.values() for f in fns)


@pytest.mark.parametrize(
    "text, message",
    [
        ("regularizers: [pair_consistency\n", "cannot read pairhook config"),
        ("- pair_consistency\n", "expected a mapping at the top level"),
        ("regularizer: pair_consistency\n", r"unknown keys \['regularizer'\]"),
        ("pairs: [1, 2]\n", "'pairs' must be a path"),
        ("match_iou: high\n", "match_iou must be a number"),
        ("regularizers: {pair_consistency: {margin: -1}}\n", "margin must be >= 0"),
    ],
)
def test_bad_config_file_is_one_clear_error_at_install(tmp_path, text, message):
    cfg = tmp_path / "pairhook.yaml"
    cfg.write_text(text)
    with pytest.raises(ValueError, match=message):
        pairhook.install(YOLO("yolov8n.yaml"), config=cfg)


# --- numerics -----------------------------------------------------------------------------------------------------


def member_ctx(value: float, dtype=torch.float32) -> PairContext:
    """One image, 4 anchors, 3 classes; GT 0 and GT 1 (a pair) each own two anchors; member logits set to ``value``."""
    logits = torch.zeros(1, 4, 3, dtype=dtype)
    logits[0, 0] = torch.tensor([value, -value, 0.0], dtype=dtype)
    logits[0, 2] = torch.tensor([value / 2, -value / 2, 1.0], dtype=dtype)
    logits[0, 1, 0] = 1.0
    logits.requires_grad_()
    gt_idx = torch.tensor([[0, 0, 1, 1]])
    labels = torch.tensor([[0, 0]])
    return PairContext(
        logits=logits.float(), target_scores=F.one_hot(labels.gather(1, gt_idx), 3).float() * 0.5,
        target_bboxes=torch.zeros(1, 4, 4), fg_mask=torch.ones(1, 4, dtype=torch.bool), target_gt_idx=gt_idx,
        gt_labels=labels, gt_bboxes=torch.zeros(1, 2, 4), pairs=torch.tensor([[0, 0, 1]]),
    )


@pytest.mark.parametrize("name", ["pair_consistency", "symmetric_kl", "pair_quality"])
@pytest.mark.parametrize("value", [float("inf"), -float("inf"), float("nan"), 3e38, -3e38, 1e4])
def test_non_finite_or_extreme_logits_never_give_a_non_finite_term(det, name, value):
    opts = {"anchor": "mean"} if abs(value) == 3e38 and name != "pair_quality" else {}
    crit = wrapped(det, {name: opts})
    (reg,) = crit.terms.active
    raw, _, _ = PLAIN[name](member_ctx(value), **opts)  # the term before any replacement of a non-finite value
    ctx = member_ctx(value)
    term = crit._term(reg, ctx)
    assert torch.isfinite(term)
    skipped = int(crit.terms.skip_counter(reg.loss_name, term.device))
    if torch.isfinite(raw):
        assert skipped == 0 and torch.allclose(term, raw, rtol=1e-6, atol=0)  # a finite term is untouched
        if math.isfinite(value):
            (grad,) = torch.autograd.grad(term, ctx.logits)
            assert torch.isfinite(grad).all(), "built-ins have a finite gradient for finite logits"
    else:
        assert skipped == 1 and term == 0


def test_skipped_term_sends_no_gradient(det, bad):
    """A plugin term that is inf with a NaN gradient: the batch's term is 0 and the gradient is exactly Ultralytics'."""
    batch = paired_batch()
    preds = leaf_preds(det, batch["img"])
    plain_loss, _ = det.init_criterion()(preds, batch)
    (plain,) = torch.autograd.grad(plain_loss.sum(), preds["scores"])
    crit = wrapped(det, "nan_grad")
    loss, items = crit(preds, batch)
    (guarded,) = torch.autograd.grad(loss.sum(), preds["scores"])
    assert torch.isfinite(loss).all() and items["nan_grad_loss"] == 0
    assert torch.isfinite(guarded).all()
    torch.testing.assert_close(guarded, plain, rtol=0, atol=0)
    assert int(crit.terms.skip_counter("nan_grad_loss", loss.device)) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["pair_consistency", "nan_grad"])
def test_skip_path_has_no_host_sync_on_cuda(det, bad, name):
    crit = wrapped(det, name)
    (reg,) = crit.terms.active
    cpu = member_ctx(float("nan"))
    logits = cpu.logits.detach().cuda().requires_grad_()
    ctx = PairContext(logits=logits, **{k: getattr(cpu, k).cuda() for k in (
        "target_scores", "target_bboxes", "fg_mask", "target_gt_idx", "gt_labels", "gt_bboxes", "pairs")})
    crit.terms.skip_counter(reg.loss_name, logits.device)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        term = crit._term(reg, ctx)
        (term * 2).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    skips = int(crit.terms.skip_counter(reg.loss_name, logits.device))
    # a plugin's NaN term is always skipped; the built-in's NaN handling differs by device (on CUDA its comparisons
    # with NaN already make it an exact 0, on the CPU the NaN reaches the skip): either way the term is 0
    assert term.item() == 0 and (skips == 1 if name == "nan_grad" else skips in (0, 1))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_half_inputs_give_finite_fp32_terms(det, dtype):
    batch = paired_batch()
    crit = wrapped(det, ["pair_consistency", "symmetric_kl", "pair_quality", "pair_feature"])
    with torch.autocast("cpu", dtype=dtype):
        preds = det(batch["img"])
        assert preds["scores"].dtype == dtype
        loss, items = crit(preds, batch)
    for name in ("pair_loss", "skl_loss", "pairq_loss", "pairf_loss"):
        assert items[name].dtype == torch.float32 and torch.isfinite(items[name])
    assert int(crit.terms.skip_counter("pair_loss", loss.device)) == 0
    loss.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in det.parameters() if p.grad is not None)
    det.zero_grad(set_to_none=True)


def test_a_huge_batch_of_pairs_is_the_mean_of_its_pairs(det):
    """20 000 pair rows (copies of 2 pairs): finite, and exactly the mean of the distinct pairs."""
    batch = paired_batch()
    preds = leaf_preds(det, batch["img"])
    crit = wrapped(det, {"symmetric_kl": {"anchor": "mean"}})
    _, few = crit(preds, batch)
    _, many = crit(preds, {**batch, "pairhook_pairs": paired_batch(copies=10_000)["pairhook_pairs"]})
    assert torch.isfinite(many["skl_loss"]) and few["skl_loss"] > 0
    torch.testing.assert_close(many["skl_loss"], few["skl_loss"], rtol=1e-4, atol=0)


@pytest.mark.parametrize("case", ["no labels", "no pairs key", "pairs cropped away"])
def test_batches_without_labels_or_pairs_give_an_exact_attached_zero(det, case):
    batch = paired_batch()
    if case == "no labels":
        batch.update(batch_idx=torch.zeros(0), cls=torch.zeros(0, 1), bboxes=torch.zeros(0, 4),
                     pairhook_pairs=torch.zeros(0, 3, dtype=torch.long))
    elif case == "no pairs key":
        del batch["pairhook_pairs"]
    else:
        batch["pairhook_pairs"] = torch.zeros(0, 3, dtype=torch.long)
    preds = leaf_preds(det, batch["img"])
    loss, items = wrapped(det, ["pair_consistency", "symmetric_kl", "pair_quality", "pair_feature"])(preds, batch)
    assert all(items[k] == 0 for k in ("pair_loss", "skl_loss", "pairq_loss", "pairf_loss"))
    assert torch.isfinite(loss).all()
    assert loss.requires_grad


# --- plugins ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, error, message",
    [
        ("raises", pairhook.RegularizerError, r"regularizer 'raises' \(from in-process\) raised KeyError: 'boom'"),
        ("vector", TypeError, (r"'vector' \(from in-process\) must return a 0-d floating-point tensor, got a "
                               r"torch.float32 tensor of shape \(2, 84\)")),
        ("integer", TypeError,
         r"'integer' \(from in-process\) must return a 0-d floating-point tensor, got a torch.int"),
        ("number", TypeError, r"'number' \(from in-process\) must return a 0-d floating-point tensor, got float"),
    ],
)
def test_plugin_errors_name_the_regularizer_and_the_plugin(det, bad, name, error, message):
    batch = paired_batch()
    with pytest.raises(error, match=message) as e:
        wrapped(det, name)(leaf_preds(det, batch["img"]), batch)
    if error is pairhook.RegularizerError:
        assert isinstance(e.value.__cause__, KeyError)


def test_plugin_source_is_named_for_entry_points(bad):
    (reg,) = parse_regularizers("raises")
    assert reg.label == "regularizer 'raises' (from in-process)"
    (builtin,) = parse_regularizers("pair_consistency")
    assert builtin.label == "regularizer 'pair_consistency' (from built-in)"


def test_term_without_gradient_is_logged_and_warned_once(det, bad, records):
    batch = paired_batch()
    preds = leaf_preds(det, batch["img"])
    crit = wrapped(det, "no_grad")
    for _ in range(3):
        _, items = crit(preds, batch)
        assert items["no_grad_loss"] == 0.5
    assert len(records.matching(r"'no_grad' \(from in-process\) returned a tensor without gradient",
                                logging.WARNING)) == 1


# --- state --------------------------------------------------------------------------------------------------------


def _live_tensors() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if issubclass(type(o), torch.Tensor))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_no_memory_growth_over_hundreds_of_criterion_calls(det, bad):
    batch = paired_batch()
    preds = leaf_preds(det, batch["img"])
    crit = wrapped(det, ["pair_consistency", "symmetric_kl", "nan_every_other"])

    def steps(n):
        for _ in range(n):
            loss, _ = crit(preds, batch)
            loss.sum().backward()
            preds["scores"].grad = None

    steps(30)
    tensors, rss = _live_tensors(), _rss_mb()
    steps(300)
    assert _live_tensors() <= tensors + 2
    assert _rss_mb() - rss < 30, "RSS grew by more than 30 MB over 300 criterion calls"
    assert int(crit.terms.skip_counter("nan_every_other_loss", torch.device("cpu"))) == 165


def test_uninstall_mid_run_restores_criterion_and_callbacks_exactly(bad):
    model = YOLO("yolov8n.yaml")
    before = {event: list(fns) for event, fns in model.callbacks.items()}
    handle = pairhook.install(model, regularizers="schedule")
    det = model.model
    crit = det.criterion = det.init_criterion()
    assigner = crit.assigner
    model.trainer = types.SimpleNamespace(model=det, ema=None, loss_names=["box_loss", "schedule_loss"])
    handle.on_pretrain_routine_end(types.SimpleNamespace(**vars(model.trainer), start_epoch=0, epochs=1))
    assert isinstance(det.criterion, PairhookCriterion) and det.criterion.assigner is not assigner
    handle.uninstall()
    assert det.criterion is crit and crit.assigner is assigner
    assert {event: list(fns) for event, fns in model.callbacks.items()} == before
    assert model.trainer.loss_names == ["box_loss"]


def test_two_models_in_one_process_keep_their_own_installation(bad):
    a, b = YOLO("yolov8n.yaml"), YOLO("yolov8n.yaml")
    ha = pairhook.install(a, regularizers={"schedule": {"weight": 1.0}})
    hb = pairhook.install(b, regularizers={"schedule": {"weight": 3.0}})

    def owners(model):
        return {id(f.__self__) for fns in model.callbacks.values() for f in fns
                if isinstance(getattr(f, "__self__", None), pairhook.Installation)}

    assert owners(a) == {id(ha)} and owners(b) == {id(hb)}
    pairhook.uninstall(a)
    assert owners(a) == set() and owners(b) == {id(hb)} and hb.active[0].weight == 3.0


def test_resume_continues_the_term_and_its_schedule(dataset, tmp_path, bad):
    model = YOLO("yolov8n.yaml")
    pairhook.install(model, regularizers="schedule")

    def interrupt(trainer):
        raise KeyboardInterrupt("simulated interruption after epoch 1")

    model.add_callback("on_fit_epoch_end", interrupt)
    with pytest.raises(KeyboardInterrupt):
        model.train(data=str(dataset.data_yaml), project=str(tmp_path), name="run", epochs=2, **TRAIN)
    assert set(bad.schedule.seen) == {(0, 2)}
    bad.schedule.seen.clear()
    resumed = YOLO(str(tmp_path / "run" / "weights" / "last.pt"))
    pairhook.install(resumed, regularizers="schedule")
    resumed.train(resume=True)
    assert set(bad.schedule.seen) == {(1, 2)}, "the resumed run continues at epoch 1 of 2"
    rows = read_results(tmp_path / "run")
    assert [r["train/schedule_loss"] for r in rows] == pytest.approx([0.0, 0.5])


# --- a whole run: skips reported once per epoch, nothing lost ------------------------------------------------------


def test_non_finite_batches_are_skipped_and_reported_once_per_epoch(dataset, tmp_path, bad, records):
    pairs = json.loads(dataset.pairs_json.read_text())
    pairs["not_in_the_dataset"] = next(iter(pairs.values()))
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(pairs))
    model = YOLO("yolov8n.yaml")
    handle = pairhook.install(model, pairs=path, regularizers=["pair_consistency", "nan_every_other"])
    model.train(data=str(dataset.data_yaml), project=str(tmp_path), name="run", epochs=2, **TRAIN)
    assert bad.nan_every_other.calls == 4  # 2 batches per epoch; the first of each is non-finite
    assert handle.skipped == {"nan_every_other": 2}
    warnings = records.matching(r"'nan_every_other' \(from in-process\) was NaN or infinite in 1 batch\(es\) this "
                                r"epoch", logging.WARNING)
    assert len(warnings) == 2, records.messages
    assert records.matching(r"1 key\(s\) of pairs.json name no image of the dataset's splits, e.g. "
                            r"'not_in_the_dataset': no image has that name or path", logging.WARNING)
    for row in read_results(tmp_path / "run"):
        assert row["train/nan_every_other_loss"] == pytest.approx(0.05)  # mean of 0 (skipped) and 0.1
        assert all(np.isfinite(v) for k, v in row.items() if not k.startswith("pairs/"))  # NaN there: no detections
    ckpt = torch.load(tmp_path / "run" / "weights" / "last.pt", weights_only=False)
    weights = next(ckpt[k] for k in ("ema", "model") if ckpt.get(k) is not None)
    assert all(torch.isfinite(p).all() for p in weights.state_dict().values() if p.is_floating_point())


def test_a_run_with_pairhook_writes_every_file_a_plain_run_writes(dataset, tmp_path):
    """Same files (weights, results.csv, plots), same columns plus pairhook's; checkpoint loading without pairhook
    is tests/test_install.py::test_checkpoints_load_without_pairhook."""
    args = dict(data=str(dataset.data_yaml), project=str(tmp_path), epochs=1, **{**TRAIN, "plots": True})
    YOLO("yolov8n.yaml").train(name="plain", **args)
    model = YOLO("yolov8n.yaml")
    pairhook.install(model, pairs=dataset.pairs_json)
    model.train(name="paired", **args)

    def files(run):
        return {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}

    plain, paired = files(tmp_path / "plain"), files(tmp_path / "paired")
    assert {"weights/last.pt", "weights/best.pt", "results.csv", "results.png", "args.yaml"} <= plain
    assert paired - plain == {"pairs.png"} and plain <= paired  # pairhook's own plot, nothing of Ultralytics' lost
    plain_cols, paired_cols = list(read_results(tmp_path / "plain")[0]), list(read_results(tmp_path / "paired")[0])
    assert set(paired_cols) - set(plain_cols) == {"train/pair_loss", "val/pair_loss", "train/pair_reached",
                                                  "train/pair_acted", *KEYS}
    assert set(plain_cols) <= set(paired_cols)


# --- security -----------------------------------------------------------------------------------------------------


def test_config_yaml_with_python_tags_is_rejected_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    cfg = tmp_path / "pairhook.yaml"
    cfg.write_text(f"regularizers: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ValueError, match="cannot read pairhook config"):
        pairhook.install(YOLO("yolov8n.yaml"), config=cfg)
    assert not marker.exists()


def test_a_data_yaml_pairs_value_is_only_a_path(tmp_path):
    marker = tmp_path / "ran"
    code = f"__import__('os').system('touch {marker}')"
    path = resolve_pairs_path(None, {"pairs": code, "path": str(tmp_path)})
    assert path == tmp_path / code
    with pytest.raises(PairsError, match="cannot read the pair file"):
        load_pair_file(path)
    assert not marker.exists()


def test_no_code_path_evaluates_or_imports_from_data():
    """Config through yaml.safe_load only; nothing eval'd, exec'd or unpickled; imports only of pairhook's own plugins
    and entry points (which PAIRHOOK_DISABLE_ENTRYPOINTS turns off: tests/test_plugins.py)."""
    forbidden = re.compile(r"\byaml\.(load|unsafe_load|full_load)\(|\beval\(|\bexec\(|\bpickle\.loads?\(|__import__\(")
    # The exceptions: a multi-GPU rank imports the Ultralytics trainer module named by the launch script, and a
    # process that receives an installation imports the regularizer functions its launching process named in the
    # description it wrote (pairhook.handover). Neither comes from a data or config file; nothing is unpickled.
    allowed = {("ranks.py", "module"), ("handover.py", "module")}
    for src in (Path(pairhook.__file__).parent).rglob("*.py"):
        text = src.read_text()
        for hit in forbidden.finditer(text):
            assert (src.name, hit.group()) in allowed, f"{src.name}: {hit.group()}"
        for call in re.findall(r"import_module\(([^)]*)\)", text):
            assert (src.name, call) in {("plugins.py", "module"), *allowed}, f"{src.name} imports {call}"
