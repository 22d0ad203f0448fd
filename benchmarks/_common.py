"""Shared helpers for the benchmarks: offline setup, the machine description and interleaved timing."""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable

from pairhook.offline import setup_offline
from pairhook.tables import format_table

setup_offline()  # before anything imports ultralytics

import torch  # noqa: E402


def machine() -> str:
    """CPU model, cores, load and library versions: what a timing table has to name."""
    import ultralytics

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    gpu = f"; GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{cpu}{gpu}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), load avg {load}; "
            f"Python {platform.python_version()}, torch {torch.__version__}, ultralytics {ultralytics.__version__}")


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
