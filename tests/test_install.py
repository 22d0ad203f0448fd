"""The framework end to end: real tiny trainings on generated data, offline."""

from __future__ import annotations

import pickletools
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from ultralytics import YOLO

import pairhook
from pairhook.criterion import PairhookCriterion
from pairhook.results import read_results
from pairhook.terms import LossTerms, parse_regularizers

TRAIN = dict(epochs=2, imgsz=64, batch=8, workers=0, plots=False, verbose=False, exist_ok=True, seed=0)


def train(model: YOLO, data: Path, project: Path, name: str, **kw) -> Path:
    model.train(data=str(data), project=str(project), name=name, **{**TRAIN, **kw})
    return project / name


def detection_model():
    """A DetectionModel with the hyperparameters a trainer would give it, ready to build its criterion."""
    from ultralytics.cfg import get_cfg

    model = YOLO("yolov8n.yaml").model
    model.args = get_cfg()
    return model.train()


class ConstantTerm:
    """A plugin whose term is 0.25 plus a zero that keeps it on the graph, and which records what it saw."""

    def __init__(self) -> None:
        self.seen: list[pairhook.PairContext] = []

    @pairhook.hookimpl
    def pairhook_register_regularizers(self, register):
        def const(ctx: pairhook.PairContext, *, value: float = 0.25) -> torch.Tensor:
            self.seen.append(ctx)
            return ctx.zero() + value

        register("const", const, loss_name="const_loss")


@pytest.fixture
def const_plugin(pairhook_register):
    plugin = ConstantTerm()
    pairhook_register(plugin)
    return plugin


def test_term_in_results_csv_and_progress_names(dataset, tmp_path, const_plugin):
    model = YOLO("yolov8n.yaml")
    pairhook.install(model, regularizers={"const": {"weight": 2.0}})
    rows = read_results(train(model, dataset.data_yaml, tmp_path, "run"))
    assert len(rows) == 2
    for row in rows:  # logged per image, as it enters the loss: weight x value
        assert row["train/const_loss"] == pytest.approx(0.5)
        assert row["val/const_loss"] == pytest.approx(0.5)
    assert "const_loss" in model.trainer.loss_names
    assert any(not c.training for c in const_plugin.seen), "validation computed the term on the EMA model"


def test_context_shapes_dtypes_and_gt_order(dataset, tmp_path, const_plugin):
    model = YOLO("yolov8n.yaml")
    pairhook.install(model, regularizers="const")
    train(model, dataset.data_yaml, tmp_path, "run", epochs=1)
    train_ctx = [c for c in const_plugin.seen if c.training]
    assert train_ctx
    for ctx in train_ctx:
        B, A, C = ctx.logits.shape
        G = ctx.gt_labels.shape[1]
        assert C == 3 and ctx.logits.dtype == torch.float32 and ctx.logits.requires_grad
        assert ctx.target_scores.shape == (B, A, C)
        assert ctx.target_bboxes.shape == (B, A, 4)
        assert ctx.fg_mask.shape == (B, A) and ctx.fg_mask.dtype == torch.bool
        assert ctx.target_gt_idx.shape == (B, A) and ctx.target_gt_idx.dtype == torch.long
        assert ctx.gt_labels.shape == (B, G) and ctx.gt_labels.dtype == torch.long
        assert ctx.gt_bboxes.shape == (B, G, 4)
        assert ctx.pairs.shape == (0, 3) and ctx.pairs.dtype == torch.long
        assert ctx.epoch == 0 and ctx.epochs == 1
        # GT index g of image b is the g-th instance of image b in the batch, in batch order
        b_idx = ctx.batch["batch_idx"].long()
        h, w = ctx.batch["img"].shape[2:]
        for b in range(B):
            cls = ctx.batch["cls"][b_idx == b].view(-1).long()
            xywh = ctx.batch["bboxes"][b_idx == b] * torch.tensor([w, h, w, h], device=ctx.batch["bboxes"].device)
            xyxy = torch.cat([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
            n = len(cls)
            assert torch.equal(ctx.gt_labels[b, :n], cls)
            torch.testing.assert_close(ctx.gt_bboxes[b, :n], xyxy, atol=1e-3, rtol=0)
            # every foreground anchor points at a real GT of its image
            assert bool((ctx.target_gt_idx[b][ctx.fg_mask[b]] < n).all())


def test_gradient_reaches_logits_times_batch_size():
    """The term enters backward, weighted and multiplied by batch size like Ultralytics' own terms."""
    model = detection_model()
    batch = {
        "img": torch.rand(2, 3, 64, 64),
        "batch_idx": torch.tensor([0.0, 0.0, 1.0]),
        "cls": torch.tensor([[0.0], [1.0], [2.0]]),
        "bboxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.2], [0.5, 0.5, 0.4, 0.4]]),
    }
    preds = model(batch["img"])

    def total(spec):
        crit = model.init_criterion()
        if spec:
            crit = PairhookCriterion(crit, LossTerms(parse_regularizers(spec)), training=True)
        loss, items = crit(preds, batch)
        return loss.sum(), items

    def mean_sigmoid(ctx, *, scale: float = 1.0):
        return ctx.logits.sigmoid().mean() * scale

    class Plugin:
        @pairhook.hookimpl
        def pairhook_register_regularizers(self, register):
            register("mean_sigmoid", mean_sigmoid)

    plugin = Plugin()
    with pairhook.registered(plugin):
        plain, _ = total(None)
        extra, items = total({"mean_sigmoid": {"weight": 3.0, "scale": 2.0}})
    scores = preds["scores"] if isinstance(preds, dict) else None
    (g_plain,) = torch.autograd.grad(plain, scores, retain_graph=True)
    (g_extra,) = torch.autograd.grad(extra, scores)
    expected = 3.0 * 2.0 * 2 * (scores.sigmoid() * (1 - scores.sigmoid())) / scores.numel()  # weight*scale*bs*d/dz
    torch.testing.assert_close(g_extra - g_plain, expected, rtol=1e-4, atol=1e-9)
    logged = items["mean_sigmoid_loss"] if isinstance(items, dict) else items[-1]
    torch.testing.assert_close(logged, 3.0 * 2.0 * scores.sigmoid().mean().detach())
    torch.testing.assert_close(extra - plain, 2 * logged, rtol=1e-4, atol=1e-6)


def pickled_modules(checkpoint: Path) -> set[str]:
    """Modules whose classes or functions a ``torch.save`` checkpoint references (its pickle's GLOBAL opcodes).

    Text inside the checkpoint (Ultralytics stores the git commit message) does not count, only references."""
    with zipfile.ZipFile(checkpoint) as z:
        data = next(z.read(n) for n in z.namelist() if n.endswith("data.pkl"))
    ops = list(pickletools.genops(data))
    assert not any(op.name == "STACK_GLOBAL" for op, _, _ in ops), "protocol >= 4: extend this scan"
    return {arg.split(" ")[0] for op, arg, _ in ops if op.name in ("GLOBAL", "INST")}


def test_checkpoints_load_without_pairhook(dataset, tmp_path, const_plugin):
    model = YOLO("yolov8n.yaml")
    pairhook.install(model, regularizers="const")
    run = train(model, dataset.data_yaml, tmp_path, "run", epochs=1)
    for name in ("last.pt", "best.pt"):
        modules = pickled_modules(run / "weights" / name)
        assert "ultralytics.nn.tasks" in modules
        assert not any(m.split(".")[0] == "pairhook" for m in modules), f"{name} references pairhook: {modules}"
    image = next((dataset.root / "images" / "val").glob("*.png"))
    script = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "pairhook":
            raise ImportError("pairhook is not importable here")
sys.meta_path.insert(0, Block())
from ultralytics import YOLO
for name in ("last.pt", "best.pt"):
    m = YOLO({str(run / "weights")!r} + "/" + name)
    r = m.predict({str(image)!r}, imgsz=64, verbose=False)
    assert len(r) == 1
print("loaded-ok")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "loaded-ok" in out.stdout, out.stderr[-3000:]


def test_uninstall_trains_exactly_like_plain(dataset, tmp_path, const_plugin):
    plain = read_results(train(YOLO("yolov8n.yaml"), dataset.data_yaml, tmp_path, "plain"))
    model = YOLO("yolov8n.yaml")
    handle = pairhook.install(model, regularizers="const")
    handle.uninstall()
    after = read_results(train(model, dataset.data_yaml, tmp_path, "after"))
    assert not const_plugin.seen
    keys = [k for k in plain[0] if k.startswith(("train/", "val/", "metrics/"))]
    assert keys == [k for k in after[0] if k.startswith(("train/", "val/", "metrics/"))]
    for a, b in zip(plain, after):
        assert [a[k] for k in keys] == [b[k] for k in keys]


def test_install_twice_replaces(dataset, tmp_path, const_plugin):
    model = YOLO("yolov8n.yaml")
    pairhook.install(model, regularizers={"const": {"weight": 1.0}})
    pairhook.install(model, regularizers={"const": {"weight": 3.0}})
    owners = [fn.__self__ for fns in model.callbacks.values() for fn in fns if hasattr(fn, "__self__")]
    assert len({id(o) for o in owners if isinstance(o, pairhook.Installation)}) == 1
    rows = read_results(train(model, dataset.data_yaml, tmp_path, "run", epochs=1))
    assert rows[0]["train/const_loss"] == pytest.approx(0.75)
    assert rows[0]["val/const_loss"] == pytest.approx(0.75)


def test_two_models_are_independent(dataset, tmp_path, const_plugin):
    a, b = YOLO("yolov8n.yaml"), YOLO("yolov8n.yaml")
    pairhook.install(a, regularizers="const")
    rows = read_results(train(b, dataset.data_yaml, tmp_path, "b", epochs=1))
    assert "train/const_loss" not in rows[0] and not const_plugin.seen


def test_resume_keeps_logging_the_term(dataset, tmp_path, const_plugin):
    model = YOLO("yolov8n.yaml")
    pairhook.install(model, regularizers="const")

    def interrupt(trainer):
        if trainer.epoch == 0:
            raise KeyboardInterrupt("simulated interruption after epoch 1")

    model.add_callback("on_fit_epoch_end", interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(model, dataset.data_yaml, tmp_path, "run", epochs=3)
    last = tmp_path / "run" / "weights" / "last.pt"
    resumed = YOLO(str(last))
    pairhook.install(resumed, regularizers="const")
    resumed.train(resume=True)
    rows = read_results(tmp_path / "run")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(r["train/const_loss"] == pytest.approx(0.25) for r in rows)
    assert all(r["val/const_loss"] == pytest.approx(0.25) for r in rows)


def test_unknown_regularizer_fails_at_install():
    model = YOLO("yolov8n.yaml")
    with pytest.raises(ValueError, match=r"unknown regularizer 'nope'.*pair_consistency"):
        pairhook.install(model, regularizers="nope")
    with pytest.raises(ValueError, match=r"no option 'bogus'"):
        pairhook.install(model, regularizers={"pair_consistency": {"bogus": 1}})
    with pytest.raises(ValueError, match="weight"):
        pairhook.install(model, regularizers={"pair_consistency": {"weight": -1}})
    assert not any(isinstance(getattr(f, "__self__", None), pairhook.Installation)
                   for fns in model.callbacks.values() for f in fns)


def test_config_yaml(tmp_path, const_plugin):
    cfg = tmp_path / "pairhook.yaml"
    cfg.write_text("regularizers:\n  const: {weight: 4.0, value: 0.5}\n")
    handle = pairhook.install(YOLO("yolov8n.yaml"), config=cfg)
    (reg,) = handle.active
    assert (reg.name, reg.weight, dict(reg.options)) == ("const", 4.0, {"value": 0.5})
    cfg.write_text("regularizers: [\n")
    with pytest.raises(ValueError, match="cannot read pairhook config"):
        pairhook.install(YOLO("yolov8n.yaml"), config=cfg)


def test_classification_is_refused():
    with pytest.raises(ValueError, match="not supported"):
        pairhook.install(YOLO("yolov8n-cls.yaml"))


def test_wrapper_keeps_no_batch_tensors():
    model = detection_model()
    crit = PairhookCriterion(model.init_criterion(), LossTerms([]), training=True)
    batch = {"img": torch.rand(1, 3, 64, 64), "batch_idx": torch.zeros(1), "cls": torch.zeros(1, 1),
             "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.3]])}
    crit(model(batch["img"]), batch)
    assert crit._captured == {}


@pytest.mark.parametrize("cfg", ["yolov10n.yaml", "yolo26n.yaml"])
def test_other_heads_and_tasks_carry_the_term(dataset, tmp_path, const_plugin, cfg):
    """End-to-end heads have two assigners (terms use the one-to-many branch); segmentation has its own loss."""
    model = YOLO(cfg)
    pairhook.install(model, regularizers={"const": {"weight": 2.0}})
    branches = set()
    model.add_callback("on_train_batch_end", lambda t: branches.add(t.model.criterion.branch))
    rows = read_results(train(model, dataset.data_yaml, tmp_path, "run", epochs=1))
    assert rows[0]["train/const_loss"] == pytest.approx(0.5)
    assert rows[0]["val/const_loss"] == pytest.approx(0.5)
    crit = model.trainer.model.criterion
    assert not isinstance(crit, PairhookCriterion), "on_train_end restores the plain criterion"
    assert branches == {"one2many"}
    assert all(c.logits.shape[1] == c.fg_mask.shape[1] for c in const_plugin.seen)


@pytest.mark.parametrize("script", ["custom_regularizer.py"])
def test_examples_run(tmp_path, script):
    example = Path(__file__).parent.parent / "examples" / script
    out = subprocess.run([sys.executable, str(example)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "train/fg_entropy_loss" in out.stdout and "train/pair_loss" in out.stdout
