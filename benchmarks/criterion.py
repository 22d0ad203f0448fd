"""Benchmark 1: Ultralytics' detection criterion, forward + backward, alone vs. wrapped by pairhook.

Batch 16 at 640 px, 80 classes, 10 ground truths and 4 pairs per image. The head's per-level output maps are leaf
tensors and the criterion receives the dict the Detect head builds from them, so the backward runs through the
same concatenation as in training. Variants run interleaved; the ratios are of medians.

    python benchmarks/criterion.py [--repeats 10] [--model yolov8n.yaml] [--batch 16] [--imgsz 640] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from _common import add_device_option, add_threads_option, apply_threads, interleaved, machine, median, synced, table  # noqa: E402  (sets up offline mode first)

from pairhook.criterion import PairhookCriterion  # noqa: E402
from pairhook.pairs import PAIRS_KEY  # noqa: E402
from pairhook.terms import LossTerms, parse_regularizers  # noqa: E402


def make_case(model: str = "yolov8n.yaml", batch: int = 16, imgsz: int = 640, gts: int = 10, pairs: int = 4,
              seed: int = 0, device: str = "cpu"):
    """The model, a batch with ``gts`` boxes and ``pairs`` pairs per image, and a function giving fresh head
    outputs (leaves at the per-level maps) for one criterion call."""
    from ultralytics import YOLO
    from ultralytics.cfg import get_cfg

    torch.manual_seed(seed)
    m = YOLO(model).model
    m.args = get_cfg()
    head = m.model[-1]
    with torch.no_grad():
        m.train()
        x = torch.rand(1, 3, imgsz, imgsz)
        feats = m(x)
    feats = feats.get("one2many", feats)["feats"]
    sizes = [f.shape[2:] for f in feats]
    g = torch.Generator().manual_seed(seed)
    n = batch * gts
    xy, wh = torch.rand(n, 2, generator=g) * 0.8 + 0.1, torch.rand(n, 2, generator=g) * 0.1 + 0.02
    data = {"batch_idx": torch.arange(batch).repeat_interleave(gts).float(),
            "cls": torch.randint(0, head.nc, (n, 1), generator=g).float(), "bboxes": torch.cat([xy, wh], 1)}
    data[PAIRS_KEY] = torch.stack([torch.arange(batch).repeat_interleave(pairs), torch.arange(pairs).repeat(batch),
                                   torch.arange(pairs, 2 * pairs).repeat(batch)], 1)
    maps = [(torch.randn(batch, 4 * head.reg_max, *s, generator=g).to(device),
             (torch.randn(batch, head.nc, *s, generator=g) - 4).to(device)) for s in sizes]
    feat_maps = [torch.zeros(batch, 1, *s, device=device) for s in sizes]  # only their shapes are read
    data = {k: v.to(device) for k, v in data.items()}
    m.to(device)

    def preds() -> tuple[dict, list[torch.Tensor]]:
        leaves = [t.clone().requires_grad_() for pair in maps for t in pair]
        boxes = torch.cat([b.view(batch, b.shape[1], -1) for b in leaves[0::2]], -1)
        scores = torch.cat([s.view(batch, s.shape[1], -1) for s in leaves[1::2]], -1)
        out = {"boxes": boxes, "scores": scores, "feats": feat_maps}
        if hasattr(head, "one2one"):  # end-to-end heads: both branches, one2one from detached inputs
            o2o = {"boxes": boxes.detach().requires_grad_(), "scores": scores.detach().requires_grad_(),
                   "feats": feat_maps}
            out = {"one2many": out, "one2one": o2o}
        return out, leaves

    return m, data, preds


def step(crit, data: dict, preds) -> list[torch.Tensor]:
    p, leaves = preds()
    loss, _ = crit(p, data)
    loss.sum().backward()
    return [t.grad for t in leaves]


def run(repeats: int = 10, model: str = "yolov8n.yaml", batch: int = 16, imgsz: int = 640,
        device: str = "cpu") -> dict[str, float]:
    m, data, preds = make_case(model, batch, imgsz, device=device)
    plain = m.init_criterion()
    wrapped = {name: PairhookCriterion(m.init_criterion(), LossTerms(parse_regularizers(spec)), training=True)
               for name, spec in (("wrapper", None), ("pair_consistency", "pair_consistency"))}
    times = interleaved({"ultralytics": synced(lambda: step(plain, data, preds), device),
                         **{k: synced(lambda c=c: step(c, data, preds), device) for k, c in wrapped.items()}}, repeats)
    return {k: median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--model", default="yolov8n.yaml")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--imgsz", type=int, default=640)
    add_threads_option(ap)
    add_device_option(ap)
    a = ap.parse_args()
    apply_threads(a.threads)
    med = run(a.repeats, a.model, a.batch, a.imgsz, a.device)
    print(machine())
    base = med["ultralytics"]
    print(table(["criterion fwd+bwd", "median ms", "ratio"],
                [[k, f"{v * 1e3:.1f}", f"{v / base:.3f}x"] for k, v in med.items()]))


if __name__ == "__main__":
    main()
