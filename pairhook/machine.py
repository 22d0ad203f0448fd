"""What a timing has to name: the CPU (and GPU), cores, load and library versions (the demo and benchmarks print
it next to their figures)."""

from __future__ import annotations

import multiprocessing
import os
import platform
from concurrent.futures import ProcessPoolExecutor


def load_average() -> str:
    """``"0.64 / 0.80 / 0.91"`` (1, 5 and 15 minutes), or ``"n/a"`` where the OS has none."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def machine() -> str:
    """CPU model, cores, load and library versions, e.g. ``AMD EPYC 7B13, 2 cores (2 torch threads), load avg
    0.64 / 0.80 / 0.91; Python 3.11.7, torch 2.14.1, ultralytics 8.4.190``."""
    import torch
    import ultralytics

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f"; GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{cpu}{gpu}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), load avg "
            f"{load_average()}; Python {platform.python_version()}, torch {torch.__version__}, "
            f"ultralytics {ultralytics.__version__}")


def spawn_pool(jobs: int) -> ProcessPoolExecutor:
    """Worker processes for trainings side by side (the demo, the study): started fresh (``spawn``: no torch or
    Ultralytics state inherited, the environment is), one task each. Ultralytics trains on ``cores - 1`` threads,
    one on a 2-core machine, so two trainings at once use both cores."""
    return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1)
