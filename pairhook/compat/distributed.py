"""Multi-GPU (DDP) helpers: sums across ranks, and where Ultralytics' ranks differ in what they run.

Ultralytics runs ``on_train_end`` on rank 0 only, while ``on_train_epoch_end`` and ``teardown`` run on every rank on
every supported release; a collective operation must therefore only be issued from callbacks every rank runs.
"""

from __future__ import annotations

import torch


def world_size() -> int:
    """The number of ranks of the initialised default process group; 1 without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks, in place, and return it; a no-op without an initialised process group.

    Every rank must call it with a tensor of the same shape and dtype (e.g. a ``(3,)`` long tensor of counters), on
    the device the backend expects (the rank's GPU for NCCL). It is a collective: call it from a place every rank
    reaches the same number of times (see the module docstring), never per batch in the loss path.
    """
    if world_size() > 1:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
