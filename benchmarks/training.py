"""Benchmark 3: a short real training, steps per second with and without pairhook.

Trains ``yolov8n.yaml`` from scratch on a generated paired-defect dataset, alternating plain runs and runs with
``pairhook.install(regularizers="pair_consistency")``. A step's time is the gap between two consecutive
``on_train_batch_end`` callbacks; the first ``--skip`` steps of each run are dropped (warm-up, first loader
batches). The ratio is of the medians over all kept steps of all runs of a variant. Ultralytics trains on
``cores - 1`` CPU threads (one thread on a 2-core machine). On a GPU (``--device 0``) a step's time includes
waiting for the loader, as a user's training does; ``--workers`` and ``--amp`` are passed to Ultralytics.

    python benchmarks/training.py [--repeats 3] [--images 160] [--imgsz 160] [--batch 16] [--epochs 1]
    python benchmarks/training.py --device 0 --amp --workers 8 --images 256 --imgsz 640 --batch 32 --epochs 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median, table  # noqa: E402  (sets up offline mode first)

import pairhook  # noqa: E402
from pairhook.synthetic import make_dataset  # noqa: E402

TRAIN = dict(val=False, plots=False, verbose=False, exist_ok=True, seed=0, deterministic=False, mosaic=0.0)


def train_steps(data: Path, pairs: Path | None, out: Path, name: str, model: str, imgsz: int, batch: int,
                epochs: int, **train: object) -> list[float]:
    """Seconds between consecutive training batches of one run."""
    from ultralytics import YOLO

    yolo = YOLO(model)
    if pairs is not None:
        pairhook.install(yolo, pairs=pairs, regularizers="pair_consistency")
    stamps: list[float] = []
    yolo.add_callback("on_train_batch_end", lambda trainer: stamps.append(time.perf_counter()))
    yolo.train(data=str(data), epochs=epochs, imgsz=imgsz, batch=batch, project=str(out), name=name, **TRAIN, **train)
    return [b - a for a, b in zip(stamps, stamps[1:])]


def run(repeats: int = 3, images: int = 160, imgsz: int = 160, batch: int = 16, epochs: int = 1, skip: int = 2,
        model: str = "yolov8n.yaml", device: str = "cpu", amp: bool = False, workers: int = 0
        ) -> dict[str, list[float]]:
    """Kept step times per variant (``"ultralytics"``, ``"pairhook"``)."""
    steps: dict[str, list[float]] = {"ultralytics": [], "pairhook": []}
    with tempfile.TemporaryDirectory(prefix="pairhook-bench-") as tmp:
        ds = make_dataset(Path(tmp) / "data", n_train=images, n_val=8, pairs_per_image=(2, 4), seed=0)
        for r in range(repeats):
            order = ("ultralytics", "pairhook") if r % 2 == 0 else ("pairhook", "ultralytics")
            for variant in order:
                pairs = ds.pairs_json if variant == "pairhook" else None
                dt = train_steps(ds.data_yaml, pairs, Path(tmp) / "runs", f"{variant}{r}", model, imgsz, batch, epochs,
                                 device=device, amp=amp, workers=workers)
                steps[variant] += dt[skip:]
                print(f"  run {r + 1}/{repeats} {variant}: {len(dt)} steps, median {median(dt[skip:]) * 1e3:.0f} ms",
                      flush=True)
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="runs per variant, alternating")
    ap.add_argument("--images", type=int, default=160)
    ap.add_argument("--imgsz", type=int, default=160)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--skip", type=int, default=2, help="steps dropped at the start of each run")
    ap.add_argument("--model", default="yolov8n.yaml")
    ap.add_argument("--device", default="cpu", help="Ultralytics' device argument, e.g. 0 for the first GPU")
    ap.add_argument("--amp", action="store_true", help="mixed precision (Ultralytics' amp=True; GPU only)")
    ap.add_argument("--workers", type=int, default=0, help="data loader workers")
    a = ap.parse_args()
    steps = run(a.repeats, a.images, a.imgsz, a.batch, a.epochs, a.skip, a.model, a.device, a.amp, a.workers)
    med = {k: median(v) for k, v in steps.items()}
    print(machine())
    print(table(["training", "steps", "median s/step", "steps/s", "ratio (time)"],
                [[k, str(len(steps[k])), f"{v:.3f}", f"{1 / v:.2f}", f"{v / med['ultralytics']:.3f}x"]
                 for k, v in med.items()]))


if __name__ == "__main__":
    main()
