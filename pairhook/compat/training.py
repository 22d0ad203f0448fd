"""Training internals by release: the model under its wrappers, the criterion and its assigners, the head's class
logits, loss items and names, the EMA model and the loaders."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from pairhook.compat.patches import replace, restore


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model under DDP, ``torch.compile`` and distillation wrappers."""
    while True:
        if isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        elif isinstance(getattr(model, "module", None), nn.Module):
            model = model.module
        elif isinstance(getattr(model, "student_model", None), nn.Module):
            model = model.student_model
        else:
            return model


def check_task(model: nn.Module) -> None:
    """Refuse every model whose loss does not use the task-aligned assigner (classification, semantic segmentation,
    depth, RT-DETR, ...), and one whose loss cannot be built to tell."""
    from ultralytics.nn.modules import RTDETRDecoder
    from ultralytics.utils.tal import TaskAlignedAssigner  # the rotated, segment and pose assigners subclass it

    name = type(model).__name__
    if isinstance(getattr(model, "model", [None])[-1], RTDETRDecoder):
        loss = "an RT-DETR matching loss"
    else:
        try:
            crit = _build_criterion(model)
        except NotImplementedError:
            crit = None
        except Exception as e:  # noqa: BLE001 - refuse now rather than fail inside training
            raise ValueError(f"pairhook could not build the loss of {name} to check that it uses the task-aligned "
                             f"assigner: {type(e).__name__}: {e}") from e
        if crit is not None and any(isinstance(o.assigner, TaskAlignedAssigner) for _, o in assigner_slots(crit)):
            return
        loss = type(crit).__name__ if crit is not None else "no loss"
    raise ValueError(f"pairhook needs a loss built on the task-aligned assigner; {name} uses {loss}, which has none "
                     "(classification, semantic segmentation, depth and RT-DETR models are not supported)")


def _build_criterion(model: nn.Module) -> Any:
    """``model.init_criterion()`` with a trainer's hyperparameters: outside a trainer ``model.args`` is a plain dict,
    and several losses read attributes of it (``overlap_mask``, ``dlog``, ...). ``model.args`` is restored."""
    from ultralytics.cfg import get_cfg

    missing = object()
    saved = model.__dict__.get("args", missing)
    try:
        args = getattr(model, "args", None)
        if args is None or isinstance(args, dict):
            try:
                model.args = get_cfg(overrides=dict(args or {}))
            except Exception:  # noqa: BLE001 - a checkpoint's unknown keys: the defaults build the loss too
                model.args = get_cfg()
        return model.init_criterion()
    finally:
        if saved is missing:
            model.__dict__.pop("args", None)
        else:
            model.args = saved


def criterion_of(model: nn.Module, create: bool = True) -> Any:
    """The model's criterion, created the way Ultralytics would create it lazily if it does not exist yet."""
    crit = getattr(model, "criterion", None)
    if crit is None and create:
        crit = model.criterion = model.init_criterion()
    return crit


def assigner_slots(crit: Any) -> Iterator[tuple[str, Any]]:
    """Yield ``(branch, owner)`` for every sub-criterion holding an ``assigner``.

    Plain criteria yield ``("main", crit)``; end-to-end ones (YOLOv10 ``E2EDetectLoss``, YOLO26 ``E2ELoss``) yield
    ``("one2many", ...)`` and ``("one2one", ...)``.
    """
    if isinstance(getattr(crit, "assigner", None), nn.Module):
        yield "main", crit
    for branch in ("one2many", "one2one"):
        sub = getattr(crit, branch, None)
        if sub is not None and isinstance(getattr(sub, "assigner", None), nn.Module):
            yield branch, sub


def class_logits(preds: Any, branch: str, nc: int) -> torch.Tensor:
    """(B, A, nc) class logits, with their graph, for ``branch`` of the model's raw output ``preds``.

    Handles the eval-mode ``(decoded, raw)`` tuple (``decoded`` is ``(boxes, proto)`` for segmentation), the
    end-to-end ``{"one2many", "one2one"}`` dict, the 8.4
    ``{"boxes", "scores", "feats"}`` dict and the older list of per-level ``(B, 4*reg_max + nc, H, W)`` maps
    (with or without extra task outputs such as mask coefficients or angles).
    """
    if isinstance(preds, tuple) and len(preds) == 2 and isinstance(preds[1], (dict, list, tuple)):
        decoded = preds[0][0] if isinstance(preds[0], tuple) else preds[0]  # segment: (decoded, proto)
        if isinstance(decoded, torch.Tensor) and decoded.dim() == 3:
            preds = preds[1]  # eval mode: (decoded predictions, raw outputs)
    if isinstance(preds, dict) and branch in preds:
        preds = preds[branch]
    elif isinstance(preds, dict) and "one2many" in preds:
        preds = preds["one2many"]
    if isinstance(preds, dict):
        return preds["scores"].permute(0, 2, 1)
    feats = preds[0] if not isinstance(preds[0], torch.Tensor) else preds  # seg/pose/obb before 8.4: (feats, extra)
    b = feats[0].shape[0]
    return torch.cat([f.view(b, f.shape[1], -1) for f in feats], 2)[:, -nc:].permute(0, 2, 1)


def neck_features(preds: Any, branch: str) -> tuple[torch.Tensor, ...] | None:
    """The neck's feature maps that feed the detection head, ``(B, C_l, H_l, W_l)`` per level with their graph, where
    the raw output carries them (the 8.4 ``{"boxes", "scores", "feats"}`` dict); ``None`` on older releases, whose
    per-level maps are the head's outputs, not its inputs."""
    if isinstance(preds, tuple) and len(preds) == 2 and isinstance(preds[1], dict):
        preds = preds[1]  # eval mode: (decoded predictions, raw outputs)
    if isinstance(preds, dict) and branch in preds:
        preds = preds[branch]
    elif isinstance(preds, dict) and "one2many" in preds:
        preds = preds["one2many"]
    feats = preds.get("feats") if isinstance(preds, dict) else None
    return tuple(feats) if feats is not None else None


def head_strides(owner: Any) -> torch.Tensor:
    """(L,) the detection head's strides, px per feature cell, as the criterion that owns an assigner holds them."""
    return torch.as_tensor(owner.stride, dtype=torch.float32).flatten()


def class_gain(owner: Any) -> float:
    """The class loss's gain (``cls`` in the training arguments, 0.5 by default) the criterion multiplies by."""
    hyp = owner.hyp
    return float(hyp["cls"] if isinstance(hyp, dict) else hyp.cls)


def shared_scores(preds: Any, logits: torch.Tensor) -> torch.Tensor | None:
    """The tensor of ``preds`` of which ``logits`` (from :func:`class_logits`) is the ``transpose(1, 2)`` view: the
    head's ``(B, nc, A)`` output that Ultralytics' loss itself differentiates (8.4 dict outputs). ``None`` where
    :func:`class_logits` concatenated its own copy (per-level maps)."""
    base = logits._base
    if base is None or base.dim() != 3 or not any(t is base for t in _tensors(preds)):
        return None
    (b, c, a), (sb, sc, sa) = base.shape, base.stride()
    transposed = logits.shape == (b, a, c) and logits.stride() == (sb, sa, sc)  # read off the strides: no op
    return base if transposed and base.data_ptr() == logits.data_ptr() else None


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)


def num_classes(crit: Any) -> int:
    return int(getattr(crit, "nc", None) or crit.one2many.nc)


def add_terms(loss: torch.Tensor, items: Any, terms: dict[str, torch.Tensor], batch_size: int) -> tuple[Any, Any]:
    """Add per-image terms to a criterion's ``(loss, items)`` the way Ultralytics adds its own.

    The total gets ``term * batch_size``: appended to a vector total (>= 8.3.99, summed by the trainer) or added to
    a scalar one. Items get ``term`` detached: a new key in dict items (>= 8.4.104), appended to tensor items.
    """
    if not terms:
        return loss, items
    values = torch.stack(list(terms.values()))  # one op whatever the number of terms, and none that is a no-op
    values = values if values.dtype == loss.dtype else values.to(loss.dtype)
    loss = torch.cat([loss, values * batch_size]) if loss.dim() else loss + values.sum() * batch_size
    if isinstance(items, dict):
        items = {**items, **{k: v.detach() for k, v in terms.items()}}
    else:
        detached = values.detach()
        items = torch.cat([items, detached if detached.dtype == items.dtype else detached.to(items.dtype)])
    return loss, items


def add_loss_names(trainer: Any, names: list[str]) -> None:
    """Make tensor-item releases (< 8.4.104) label the extra items; dict-item releases derive names themselves."""
    if not trainer.loss_names:  # dict items: names come from the first batch's keys
        return
    trainer.loss_names = [*[n for n in trainer.loss_names if n not in names], *names]
    metrics = getattr(trainer, "metrics", None)
    if isinstance(metrics, dict):
        metrics.update({f"val/{n}": 0.0 for n in names})


def align_loss_names(trainer: Any, names: list[str]) -> None:
    """Tensor-item releases: keep the names in step with the items the criterion really returns.

    Some criteria return fewer items than the trainer has names for (8.4.0 ``v8PoseLoss`` has no ``rle_loss``);
    Ultralytics then drops the surplus names, but with pairhook's items appended they would label the wrong values.
    """
    items = getattr(trainer, "loss_items", None)
    if not trainer.loss_names or not isinstance(items, torch.Tensor) or len(trainer.loss_names) == items.numel():
        return
    base = [n for n in trainer.loss_names if n not in names]
    trainer.loss_names = [*base[: items.numel() - len(names)], *names]


def remove_loss_names(trainer: Any, names: list[str]) -> None:
    if trainer.loss_names:
        trainer.loss_names = [n for n in trainer.loss_names if n not in names]


def ema_model(trainer: Any) -> nn.Module | None:
    """The EMA model that training-time validation computes its loss on (``None`` on ranks without one)."""
    ema = getattr(trainer, "ema", None)
    return getattr(ema, "ema", None)


def loaders(trainer: Any) -> list[tuple[Any, str]]:
    """``(loader, mode)`` for the trainer's train and validation loaders that exist on this rank."""
    found = [(getattr(trainer, "train_loader", None), "train"), (getattr(trainer, "test_loader", None), "val")]
    return [(loader, mode) for loader, mode in found if getattr(loader, "dataset", None) is not None]


def refresh_loader(loader: Any, collate_fn: Any) -> None:
    """Give an existing loader a new ``collate_fn`` and, if its workers already started, new workers."""
    replace("loader", loader, "collate_fn", collate_fn)
    if getattr(loader, "iterator", None) is not None and hasattr(loader, "reset"):
        loader.reset()  # releases before 8.4.158 start workers when the loader is built


class _ValidateWithColumns:
    """Stands in for a trainer's ``validate``: the metrics it returns get this epoch's extra columns."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.columns = inner, {}

    def __call__(self) -> Any:
        metrics, fitness = self.inner()
        return ({**metrics, **self.columns} if isinstance(metrics, dict) else metrics), fitness


def add_epoch_columns(trainer: Any, columns: dict[str, float]) -> None:
    """Put ``columns`` in this epoch's ``results.csv`` row, and so in every logger Ultralytics feeds.

    Call at ``on_train_epoch_end``: Ultralytics then validates (a new metrics dict) or, when validation is skipped,
    keeps the last one, and saves ``trainer.metrics`` (every release 8.1 to 8.4). Both get the columns.
    """
    validate = trainer.__dict__.get("validate")
    if not isinstance(validate, _ValidateWithColumns):
        validate = _ValidateWithColumns(trainer.validate)
        replace("trainer", trainer, "validate", validate)
    validate.columns = dict(columns)
    if isinstance(getattr(trainer, "metrics", None), dict):
        trainer.metrics.update(columns)


def remove_epoch_columns(trainer: Any) -> None:
    if isinstance(trainer.__dict__.get("validate"), _ValidateWithColumns):
        restore("trainer", trainer, "validate")
