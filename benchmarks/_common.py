"""Shared helpers for the benchmarks: offline setup, the machine description and interleaved timing."""

from __future__ import annotations

import statistics
import sys
import time
from typing import Callable

from pairhook.machine import machine  # noqa: F401  (re-exported for the scripts)
from pairhook.offline import setup_offline
from pairhook.tables import format_table

if "ultralytics" not in sys.modules:  # too late once it is imported (the test suite's conftest prepares it itself)
    setup_offline()

import torch  # noqa: E402


def interleaved(variants: dict[str, Callable[[], object]], repeats: int, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each variant, run in alternating order (ABAB..., BA on odd rounds) so load drifts on a
    shared machine hit every variant alike. The first ``warmup`` rounds are discarded."""
    times: dict[str, list[float]] = {k: [] for k in variants}
    names = list(variants)
    for r in range(warmup + repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            t = time.perf_counter()
            variants[name]()
            if r >= warmup:
                times[name].append(time.perf_counter() - t)
    return times


def add_device_option(ap) -> None:
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cuda (timings then synchronize per call)")


def synced(fn: Callable[[], object], device: str) -> Callable[[], object]:
    """``fn`` followed by a device synchronize, so a timer around it sees the device's work too."""
    if not str(device).startswith("cuda"):
        return fn

    def call() -> object:
        out = fn()
        torch.cuda.synchronize()
        return out

    return call


def add_threads_option(ap) -> None:
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's choice); 1 gives steadier ratios on a busy machine")


def apply_threads(n: int | None) -> None:
    if n:
        torch.set_num_threads(n)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-markdown table (first column left, the others right)."""
    return format_table(header, rows, markdown=True)
