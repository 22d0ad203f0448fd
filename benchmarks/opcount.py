"""Benchmark 4: dispatched top-level aten ops per criterion call, forward and backward: the CPU's exact,
noise-free proxy for the kernels a GPU launches.

The case of benchmark 1 (``criterion.py``) at 320 px: batch 16, 80 classes, 10 ground truths and 4 pairs per image,
with the neck's feature maps as leaves too (``pair_feature`` reads them). Ops are counted with ``torch.profiler`` on
every thread (autograd may run the backward on a thread of its own): an op counts when it is an ``aten::`` op that
no other ``aten::`` op encloses. Variants: Ultralytics' criterion, pairhook's wrapper with no regularizer, and the
wrapper with each built-in regularizer; "added" is the count minus Ultralytics'.

    python benchmarks/opcount.py [--imgsz 320] [--batch 16] [--model yolov8n.yaml]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from _common import machine, table  # noqa: E402  (sets up offline mode first)
from criterion import make_case  # noqa: E402

from pairhook.criterion import PairhookCriterion  # noqa: E402
from pairhook.terms import LossTerms, parse_regularizers  # noqa: E402

BUILT_INS = ("pair_consistency", "symmetric_kl", "pair_quality", "pair_feature")


def count_ops(fn: Callable[[], Any]) -> int:
    """Top-level ``aten::`` ops dispatched by one call of ``fn``, on every thread."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = [e for e in prof.events() if e.name.startswith("aten::")]

    def enclosed(e: Any) -> bool:
        parent = e.cpu_parent
        while parent is not None:
            if parent.name.startswith("aten::"):
                return True
            parent = parent.cpu_parent
        return False

    return sum(not enclosed(e) for e in events)


def variants(model: str, batch: int, imgsz: int) -> tuple[dict[str, Callable[[], Any]], Any]:
    """One forward + backward criterion call per variant, on fresh leaves each call."""
    m, data, preds = make_case(model, batch, imgsz)
    with torch.no_grad():
        feats = m(torch.rand(batch, 3, imgsz, imgsz))
    feats = [f.detach() for f in feats.get("one2many", feats)["feats"]]

    def with_features() -> tuple[dict, list[torch.Tensor]]:
        out, leaves = preds()
        neck = [f.clone().requires_grad_() for f in feats]
        (out.get("one2many", out))["feats"] = neck
        return out, leaves + neck

    def call(crit: Any) -> Callable[[], Any]:
        def once() -> None:
            p, leaves = with_features()
            loss, _ = crit(p, data)
            loss.sum().backward()
        return once

    crits = {"ultralytics": m.init_criterion(),
             "wrapper alone": PairhookCriterion(m.init_criterion(), LossTerms(parse_regularizers(None)), training=True)}
    for name in BUILT_INS:
        crits[name] = PairhookCriterion(m.init_criterion(), LossTerms(parse_regularizers({name: {}})), training=True)
    return {k: call(c) for k, c in crits.items()}, crits


def run(model: str = "yolov8n.yaml", batch: int = 16, imgsz: int = 320) -> dict[str, int]:
    calls, _ = variants(model, batch, imgsz)
    for fn in calls.values():  # warm-up: lazy state (anchors, assigners) built outside the count
        fn()
    return {k: count_ops(fn) for k, fn in calls.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="yolov8n.yaml")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--imgsz", type=int, default=320)
    a = ap.parse_args()
    counts = run(a.model, a.batch, a.imgsz)
    print(machine())
    base = counts["ultralytics"]
    print(table(["criterion fwd+bwd", "top-level aten ops", "added"],
                [[k, str(v), "-" if k == "ultralytics" else f"+{v - base}"] for k, v in counts.items()]))


if __name__ == "__main__":
    main()
