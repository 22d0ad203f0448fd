"""Test-only patches: Ultralytics' multi-GPU (DDP) training path on the CPU with the gloo backend.

Ultralytics' DDP code assumes CUDA devices; these four patches are the least that lets its ranks run on the CPU of a
machine without GPUs, so that the ranks' own code paths (DDP wrap, gradient all-reduce, sharded validation and its
gather step, rank-0-only callbacks) run for real. They live in the tests only, never in pairhook. Written against
the base environment's Ultralytics (8.4.x); :func:`apply` refuses other releases.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def supported() -> bool:
    import ultralytics

    return ultralytics.__version__.startswith("8.4.")


def apply() -> None:
    from ultralytics.engine import trainer as T
    from ultralytics.engine import validator as V

    if not supported():
        raise RuntimeError("tests/ddp/cpu_gloo.py is written for Ultralytics 8.4.x")
    init = T.BaseTrainer.__init__

    def __init__(self, *args, **kwargs):  # (1) device=cpu gives world_size 0, and every DDP path keys on world_size > 1
        init(self, *args, **kwargs)
        self.world_size = int(os.environ["WORLD_SIZE"])

    T.BaseTrainer.__init__ = __init__

    def _setup_ddp(self):  # (2) Ultralytics forces cuda:<LOCAL_RANK> and nccl whenever the torch build has it
        self.device = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group("gloo", rank=int(os.environ["RANK"]), world_size=self.world_size)

    T.BaseTrainer._setup_ddp = _setup_ddp
    ddp = torch.nn.parallel.DistributedDataParallel

    class CpuDDP(ddp):  # (3) the trainer passes device_ids=[device.index], [None] on the CPU
        def __init__(self, module, device_ids=None, **kwargs):
            super().__init__(module, device_ids=None, **kwargs)

    torch.nn.parallel.DistributedDataParallel = CpuDDP

    class Cpu:  # (4) the final validation on a DDP rank builds AutoBackend on cuda:current_device()
        @staticmethod
        def current_device():
            return 0

    V.get_torch_device_backend = lambda _type: Cpu
    backend = V.AutoBackend
    V.AutoBackend = lambda *args, device=None, **kwargs: backend(*args, device=torch.device("cpu"), **kwargs)


def launch_as_ddp_parent() -> None:
    """In the launching process only: make ``model.train(device="cpu")`` take Ultralytics' multi-GPU launch branch
    (it writes its worker script and runs it under ``torch.distributed.run`` with 2 processes)."""
    from ultralytics.engine import trainer as T
    from ultralytics.utils import LOCAL_RANK

    init = T.BaseTrainer.__init__

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.world_size, self.ddp = 2, LOCAL_RANK == -1

    T.BaseTrainer.__init__ = __init__
