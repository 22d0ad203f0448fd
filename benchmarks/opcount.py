"""Benchmark 4: dispatched top-level ops per criterion call, forward and backward: the CPU's exact, noise-free
proxy for the kernels a GPU launches.

The case of benchmark 1 (``criterion.py``) at 320 px: batch 16, 80 classes, 10 ground truths and 4 pairs per image,
with the neck's feature maps as leaves too (``pair_feature`` reads them). Ops are counted with ``torch.profiler`` on
every thread (autograd may run the backward on a thread of its own): an op counts when it is a dispatched operator
(``aten::``, ``torchvision::``) that no other operator encloses, or a kernel that ``torch.compile`` generated.
Variants: Ultralytics' criterion, pairhook's wrapper with no regularizer, and the wrapper with each built-in
regularizer, run eagerly (``PAIRHOOK_COMPILE=never``, the CPU's default) and compiled (``always``, the default on
CUDA); "added" is the count minus Ultralytics'.

    python benchmarks/opcount.py [--imgsz 320] [--batch 16] [--model yolov8n.yaml]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from _common import machine, table  # noqa: E402  (sets up offline mode first)
from criterion import make_case  # noqa: E402

from pairhook.criterion import PairhookCriterion  # noqa: E402
from pairhook.fused.compiler import ENV  # noqa: E402
from pairhook.terms import LossTerms, parse_regularizers  # noqa: E402

BUILT_INS = ("pair_consistency", "symmetric_kl", "pair_quality", "pair_feature")


KERNEL = re.compile(r"cpp_(fused|kernel)|^triton_")  # a kernel that torch.compile generated


def launches(name: str) -> bool:
    """Whether a profiler event is a launch: a dispatched operator (``aten::``, ``torchvision::``...) or a kernel
    that ``torch.compile`` generated (visible with ``torch._inductor.config.cpp.enable_kernel_profile``)."""
    return "::" in name and not name.startswith(("autograd::", "torch::")) or bool(KERNEL.search(name))


def count_ops(fn: Callable[[], Any]) -> int:
    """Top-level ops dispatched by one call of ``fn``, on every thread: operators no other operator encloses, and
    compiled kernels."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = [e for e in prof.events() if launches(e.name)]

    def enclosed(e: Any) -> bool:
        parent = e.cpu_parent
        while parent is not None:
            if "::" in parent.name and launches(parent.name):
                return True
            parent = parent.cpu_parent
        return False

    return sum(not enclosed(e) for e in events)


def variants(model: str, batch: int, imgsz: int) -> dict[str, Callable[[], Any]]:
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
    return {k: call(c) for k, c in crits.items()}


def run(model: str = "yolov8n.yaml", batch: int = 16, imgsz: int = 320,
        modes: tuple[str, ...] = ("never", "always")) -> dict[str, dict[str, int]]:
    """``{variant: {mode: ops}}`` for each ``PAIRHOOK_COMPILE`` mode (``never``: eager, ``always``: compiled);
    Ultralytics and the wrapper alone compile nothing, so they are counted once."""
    import torch._inductor.config as inductor

    inductor.cpp.enable_kernel_profile = True  # compiled kernels show in the profile, so they count
    calls = variants(model, batch, imgsz)
    counts: dict[str, dict[str, int]] = {}
    before = os.environ.get(ENV)
    try:
        for name, fn in calls.items():
            for mode in modes if name in BUILT_INS else modes[:1]:
                os.environ[ENV] = mode
                fn()  # warm-up: lazy state (anchors, assigners) and any compile happen outside the count
                counts.setdefault(name, {})[mode] = count_ops(fn)
    finally:
        os.environ.pop(ENV) if before is None else os.environ.update({ENV: before})
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="yolov8n.yaml")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--imgsz", type=int, default=320)
    a = ap.parse_args()
    counts = run(a.model, a.batch, a.imgsz)
    print(machine())
    base = counts["ultralytics"]["never"]

    def cell(name: str, mode: str) -> str:
        n = counts[name].get(mode)
        return "-" if n is None or name == "ultralytics" else f"+{n - base}"

    rows = [[k, str(v["never"]), cell(k, "never"), cell(k, "always")] for k, v in counts.items()]
    print(table(["criterion fwd+bwd", "ops (eager)", "added, eager", "added, compiled"], rows))


if __name__ == "__main__":
    main()
