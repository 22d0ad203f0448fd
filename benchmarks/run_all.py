"""Run the three benchmarks in one process and print one table with the machine it ran on.

    python benchmarks/run_all.py [--repeats-criterion 10] [--repeats-loop 15] [--repeats-training 3] [--threads N]

``--threads`` applies to benchmarks 1 and 2; Ultralytics picks the threads of the training in 3 itself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import criterion  # noqa: E402
import training  # noqa: E402
import vectorized_vs_loop  # noqa: E402
from _common import add_threads_option, apply_threads, machine, median, table  # noqa: E402  (sets up offline mode first)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats-criterion", type=int, default=10)
    ap.add_argument("--repeats-loop", type=int, default=15)
    ap.add_argument("--repeats-training", type=int, default=3)
    add_threads_option(ap)
    a = ap.parse_args()
    apply_threads(a.threads)
    before = machine()
    rows = []
    crit = criterion.run(a.repeats_criterion)
    base = crit["ultralytics"]
    rows.append(["(1) criterion fwd+bwd, B16 640px, 10 GT + 4 pairs/img: wrapper only",
                 f"{crit['wrapper'] / base:.3f}x",
                 "", f"{base * 1e3:.0f} (Ultralytics) / {crit['wrapper'] * 1e3:.0f} ms"])
    rows.append(["(1) same, with `pair_consistency`", f"{crit['pair_consistency'] / base:.3f}x", "<= 1.03x",
                 f"{base * 1e3:.0f} (Ultralytics) / {crit['pair_consistency'] * 1e3:.0f} ms"])
    for n, t in vectorized_vs_loop.run(a.repeats_loop):
        for w in ("fwd", "fwd+bwd"):
            loop, vec = t[f"loop {w}"], t[f"vectorized {w}"]
            rows.append([f"(2) vectorized `pair_consistency` vs per-pair loop, {n} pairs, {w}",
                         f"{loop / vec:.1f}x faster",
                         ">= 5x at 64" if n == 64 else "", f"{loop * 1e3:.2f} (loop) / {vec * 1e3:.2f} ms"])
    steps = training.run(a.repeats_training)
    plain, hooked = median(steps["ultralytics"]), median(steps["pairhook"])
    rows.append(["(3) CPU training yolov8n 160px B16, time per step with pairhook", f"{hooked / plain:.3f}x",
                 "<= 1.03x",
                 f"{1 / plain:.2f} (Ultralytics) / {1 / hooked:.2f} steps/s"])
    print(f"\nmachine at start: {before}\nmachine at end:   {machine()}\n")
    print(table(["benchmark", "result", "target", "medians"], rows))


if __name__ == "__main__":
    main()
