"""The one place that knows how Ultralytics' internals differ between releases.

Everything is decided by probing behaviour (the shape of ``preds``, whether loss items are a dict, whether the total
is a vector, which attributes a criterion has), not by comparing version strings; the version is read only to refuse
releases outside the supported range. See ``ultralytics-internals`` notes in the README for the history.
"""

from __future__ import annotations

import functools
import inspect
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

MIN_VERSION = (8, 1, 47)
MAX_MAJOR_MINOR = (8, 4)
SUPPORTED = "8.1.47 to 8.4.x"


OFFLINE_VALUE = "True"  # YOLO_OFFLINE: 8.1 to 8.4.0 accept only the string "true" (any case)


def font_dirs(config_dir: Path) -> tuple[Path, Path]:
    """Where releases look for the font they would download: the config dir (up to 8.3.100), or a subfolder."""
    return config_dir, config_dir / "Ultralytics"


def ultralytics_version() -> str:
    import ultralytics

    return ultralytics.__version__


def check_supported() -> None:
    """Raise ``RuntimeError`` naming the installed and supported releases if this Ultralytics is out of range."""
    version = ultralytics_version()
    parts = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
    if parts < MIN_VERSION or parts[:2] > MAX_MAJOR_MINOR:
        raise RuntimeError(f"pairhook supports Ultralytics {SUPPORTED}; ultralytics {version} is installed")


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
    """Refuse models whose loss does not use the task-aligned assigner (classification, RT-DETR, ...)."""
    from ultralytics.nn.modules import RTDETRDecoder

    if isinstance(getattr(model, "model", [None])[-1], RTDETRDecoder):
        loss = "an RT-DETR matching loss"
    else:
        try:
            crit = model.init_criterion()
        except (AttributeError, TypeError, KeyError):
            return  # cannot build it outside a trainer on this release; the callbacks will find out
        if any(True for _ in assigner_slots(crit)):
            return
        loss = type(crit).__name__
    raise ValueError(f"pairhook needs a loss built on the task-aligned assigner; {type(model).__name__} uses {loss}, "
                     "which has none (classification and RT-DETR are not supported)")


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

    Handles the eval-mode ``(decoded, raw)`` tuple (``decoded`` is ``(boxes, proto)`` for segmentation), the end-to-end ``{"one2many", "one2one"}`` dict, the 8.4
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


def shared_scores(preds: Any, logits: torch.Tensor) -> torch.Tensor | None:
    """The tensor of ``preds`` of which ``logits`` (from :func:`class_logits`) is the ``transpose(1, 2)`` view: the
    head's ``(B, nc, A)`` output that Ultralytics' loss itself differentiates (8.4 dict outputs). ``None`` where
    :func:`class_logits` concatenated its own copy (per-level maps)."""
    base = logits._base
    if base is None or base.dim() != 3 or not any(t is base for t in _tensors(preds)):
        return None
    return base if base.transpose(1, 2).stride() == logits.stride() and base.data_ptr() == logits.data_ptr() else None


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
    values = torch.stack([t.to(loss.dtype) for t in terms.values()])
    loss = torch.cat([loss, values * batch_size]) if loss.dim() else loss + values.sum() * batch_size
    if isinstance(items, dict):
        items = {**items, **{k: v.detach() for k, v in terms.items()}}
    else:
        items = torch.cat([items, values.detach().to(items.dtype)])
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
    loader.collate_fn = collate_fn
    if getattr(loader, "iterator", None) is not None and hasattr(loader, "reset"):
        loader.reset()  # releases before 8.4.158 start workers when the loader is built


@functools.cache
def callbacks_reach_workers() -> bool:
    """True if a multi-GPU launch hands the trainer's callbacks to its worker processes (8.4.140 on)."""
    from ultralytics.utils import dist

    return "callbacks" in inspect.getsource(dist.generate_ddp_file)


def launches_workers(trainer: Any) -> bool:
    """True in the process that will start multi-GPU workers (several devices asked for, not a worker itself)."""
    if "LOCAL_RANK" in os.environ:
        return False
    device = trainer.args.device
    if isinstance(device, str):
        return len([d for d in device.split(",") if d.strip()]) > 1
    return isinstance(device, (list, tuple)) and len(device) > 1


class TrainerRoute:
    """Set as a model's ``_smart_load``: the trainer class it loads is passed through ``factory``."""

    def __init__(self, model: Any, factory: Callable[[type], type]) -> None:
        self.model, self.factory = model, factory

    def __call__(self, key: str) -> Any:
        loaded = type(self.model)._smart_load(self.model, key)
        return self.factory(loaded) if key == "trainer" else loaded


def route_trainer(model: Any, factory: Callable[[type], type]) -> None:
    """Make ``model.train()`` build its trainer from ``factory(default trainer class)``."""
    model._smart_load = TrainerRoute(model, factory)


def unroute_trainer(model: Any) -> None:
    if isinstance(model.__dict__.get("_smart_load"), TrainerRoute):
        del model.__dict__["_smart_load"]


# Validation metrics (used by pairhook.validation) -------------------------------------------------------------------
def val_predictions(preds: Any) -> list[Any]:
    """A validator's post-NMS predictions as one entry per image (segmentation before 8.4 adds the mask protos)."""
    if isinstance(preds, tuple) and len(preds) == 2 and isinstance(preds[0], list):
        return preds[0]
    return preds


def detections(pred: Any, rotated: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(boxes xyxy, conf, cls)`` of one image's post-NMS predictions, in input-image pixels.

    8.4 validators post-process to a dict with ``bboxes``, ``conf``, ``cls``; older ones to an ``(N, 6+)`` tensor,
    ``[x1, y1, x2, y2, conf, cls, ...]``, or for oriented boxes ``[x, y, w, h, conf, cls, angle]``. Oriented boxes
    are replaced by their axis-aligned envelopes.
    """
    if isinstance(pred, dict):
        boxes, conf, cls = pred["bboxes"], pred["conf"], pred["cls"]
    elif rotated:
        boxes, conf, cls = torch.cat([pred[:, :4], pred[:, 6:7]], 1), pred[:, 4], pred[:, 5]
    else:
        boxes, conf, cls = pred[:, :4], pred[:, 4], pred[:, 5]
    return (_envelope(boxes) if rotated else boxes), conf, cls


def _envelope(xywhr: torch.Tensor) -> torch.Tensor:
    from ultralytics.utils.ops import xywhr2xyxyxyxy

    corners = xywhr2xyxyxyxy(xywhr).view(-1, 4, 2)
    return torch.cat([corners.amin(1), corners.amax(1)], 1)


def val_targets(batch: dict[str, Any], si: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``(boxes xyxy, cls, rotated)`` of image ``si``'s labels in a validation batch, in input-image pixels, in batch
    order; ``rotated`` says the task has oriented boxes (their envelopes are returned)."""
    from ultralytics.utils.ops import xywh2xyxy

    idx = batch["batch_idx"] == si
    boxes = batch["bboxes"][idx]
    h, w = batch["img"].shape[2:]
    scale = torch.tensor([w, h, w, h], device=boxes.device, dtype=boxes.dtype)
    rotated = boxes.shape[-1] == 5
    xywh = boxes[:, :4] * scale
    xyxy = _envelope(torch.cat([xywh, boxes[:, 4:]], 1)) if rotated else xywh2xyxy(xywh)
    return xyxy, batch["cls"][idx].view(-1), rotated


def hook_validator(validator: Any, on_update: Any, on_stats: Any) -> None:
    """Have ``validator`` call ``on_update(preds, batch)`` after NMS and merge ``on_stats()`` into its stats dict.

    Sets instance attributes over ``update_metrics`` and ``get_stats`` (the class is untouched); ``unhook_validator``
    removes them.
    """
    update, stats = validator.update_metrics, validator.get_stats

    def update_metrics(preds: Any, batch: dict[str, Any]) -> None:
        on_update(preds, batch)
        update(preds, batch)

    def get_stats() -> dict[str, Any]:
        return {**stats(), **on_stats()}

    validator.update_metrics, validator.get_stats = update_metrics, get_stats


def unhook_validator(validator: Any) -> None:
    for name in ("update_metrics", "get_stats"):
        validator.__dict__.pop(name, None)


def default_validator(model: Any) -> Any:
    """The validator class ``model.val()`` would use for this ``YOLO``'s task."""
    return model.task_map[model.task]["validator"]


def val_results(metrics: Any) -> dict[str, float]:
    """``model.val()``'s return value as the ``{column: value}`` it writes to ``results.csv`` (no fitness)."""
    return {k: float(v) for k, v in metrics.results_dict.items() if k != "fitness"}


def add_metric_keys(trainer: Any, defaults: dict[str, float]) -> None:
    """Give the trainer's metrics dict these keys before the first validation, so every ``results.csv`` row has them
    (Ultralytics fills it with zeros for its own keys at set-up and keeps it while validation is skipped)."""
    metrics = getattr(trainer, "metrics", None)
    if isinstance(metrics, dict):
        for k, v in defaults.items():
            metrics.setdefault(k, v)
