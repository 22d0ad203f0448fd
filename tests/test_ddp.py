"""Multi-GPU (DDP) training for real, on the CPU: 2 ranks with the gloo backend under ``torch.distributed.run``.

Ultralytics' DDP code assumes CUDA; ``tests/ddp/cpu_gloo.py`` patches the least that lets its ranks run on the CPU
(test-only). Two ways in, as users take them: a script that every rank runs and that calls ``pairhook.install()``
itself (``tests/ddp/train.py``), and Ultralytics' own launch, which writes a worker script and runs it as 2 ranks
(``tests/ddp/launch.py``; the patches reach the workers through ``tests/ddp/sitecustomize.py``). Each process
records what it saw (``tests/ddp/probe.py``). The reference is the same training in one process.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import pairhook
from pairhook.results import last_results

HERE = Path(__file__).parent / "ddp"
_spec = importlib.util.spec_from_file_location("pairhook_test_cpu_gloo", HERE / "cpu_gloo.py")
cpu_gloo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cpu_gloo)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not cpu_gloo.supported(), reason="the CPU DDP patches are written for 8.4.x")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(script: str, dataset, out: Path, ranks: int = 0, **env: str) -> dict[int, dict]:
    """Run ``tests/ddp/<script>`` (under ``torch.distributed.run`` with ``ranks`` processes if given); return the
    records of every process by rank, and the run's results.csv as key ``"csv"``."""
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}", "--master_addr=127.0.0.1",
                f"--master_port={free_port()}"] if ranks else [sys.executable]
    paths = [str(HERE), str(Path(pairhook.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
    full_env = {**os.environ, **env, "PAIRHOOK_TEST_OUT": str(out / "records"),
                "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        full_env.pop(key, None)
    cmd = [*launcher, str(HERE / script), str(dataset.data_yaml), str(dataset.pairs_json), str(out / "run")]
    proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    records = {json.loads(p.read_text())["rank"]: json.loads(p.read_text()) for p in (out / "records").glob("*.json")}
    records["csv"] = last_results(out / "run")
    return records


@pytest.fixture(scope="module")
def single(dataset, tmp_path_factory):
    """The same training in one process."""
    return run("train.py", dataset, tmp_path_factory.mktemp("single"))


def check_ranks(records: dict, single: dict, skipped: int) -> None:
    ranks = [records[0], records[1]]
    for r in ranks:
        assert r["world_size"] == 2 and r["backend"] == "gloo"
        assert r["batches"] and all(b["train/skl_loss"] > 0 for b in r["batches"]), "the term is missing on a rank"
        assert math.isfinite(r["batches"][-1]["train/pair_loss"])
        assert r["criterion"] == "v8DetectionLoss" and not r["carrier"], "a rank kept pairhook's criterion or datasets"
        assert r["skipped"] == {"nan_on_rank1": skipped}, "skip counts are not summed over the ranks"
    assert ranks[0]["sha"] == ranks[1]["sha"] != ranks[0]["sha_start"], "the ranks' parameters differ or never moved"
    assert records["csv"]["pairs/n"] == single["csv"]["pairs/n"] > 0
    assert records[0]["metrics"]["pairs/n"] == single[-1]["metrics"]["pairs/n"]  # the counts gathered, not a shard
    assert records["csv"]["train/skl_loss"] > 0 and "val/skl_loss" in records["csv"]


def test_every_rank_installs_under_torchrun(dataset, single, tmp_path):
    """``torch.distributed.run --nproc_per_node 2 train.py``: every rank calls ``install()``."""
    records = run("train.py", dataset, tmp_path, ranks=2)
    check_ranks(records, single, skipped=len(records[1]["batches"]))


def test_ultralytics_generated_worker_script_as_two_ranks(dataset, single, tmp_path):
    """``model.train()`` takes Ultralytics' multi-GPU launch: its generated worker script runs as 2 ranks."""
    records = run("launch.py", dataset, tmp_path, PAIRHOOK_TEST_CPU_DDP="1")
    check_ranks(records, single, skipped=len(records[1]["batches"]))
