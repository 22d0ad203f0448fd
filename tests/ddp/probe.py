"""Test-only callbacks that record, per process and rank, what pairhook did: importable by DDP workers (this
directory is on their PYTHONPATH), so cloudpickle sends them by reference. Each writes ``rank<R>.json`` under
``$PAIRHOOK_TEST_OUT``."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

import pairhook

RECORD: dict = {"batches": []}


def rank() -> int:
    return int(os.environ.get("RANK", -1))


def nan_on_rank1(ctx):
    """A third-party term that is NaN in every training batch of rank 1 and 0 elsewhere (skip-counter check)."""
    return ctx.zero() + (float("nan") if ctx.training and rank() == 1 else 0.0)


class NanPlugin:
    @pairhook.hookimpl
    def pairhook_register_regularizers(self, register):
        register("nan_on_rank1", nan_on_rank1, loss_name="nan_loss")


def params_sha(trainer) -> str:
    from pairhook import compat

    model = compat.unwrap(trainer.model)
    return hashlib.sha256(b"".join(p.detach().cpu().numpy().tobytes() for p in model.parameters())).hexdigest()


def on_train_start(trainer):
    RECORD["sha_start"] = params_sha(trainer)


def on_train_batch_end(trainer):
    items = trainer.label_loss_items(trainer.loss_items, prefix="train")
    RECORD["batches"].append({k: float(v) for k, v in items.items()})


def on_fit_epoch_end(trainer):
    if trainer.metrics:
        RECORD["metrics"] = {k: float(v) for k, v in trainer.metrics.items() if k.startswith("pairs/")}


def teardown(trainer):
    from pairhook import compat
    from pairhook.ranks import installations_in

    model = compat.unwrap(trainer.model)
    RECORD.update(rank=rank(), world_size=trainer.world_size, criterion=type(model.criterion).__name__,
                  sha=params_sha(trainer), carrier="collate_fn" in vars(trainer.train_loader.dataset),
                  skipped={k: v for inst in installations_in(trainer.callbacks) for k, v in inst.skipped.items()},
                  backend=torch.distributed.get_backend() if torch.distributed.is_initialized() else None)
    out = Path(os.environ["PAIRHOOK_TEST_OUT"])
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{rank()}.json").write_text(json.dumps(RECORD))


def add_to(model) -> None:
    for event, fn in (("on_train_start", on_train_start), ("on_train_batch_end", on_train_batch_end),
                      ("on_fit_epoch_end", on_fit_epoch_end), ("teardown", teardown)):
        model.add_callback(event, fn)
