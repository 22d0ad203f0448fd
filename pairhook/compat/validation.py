"""Validation internals by release: post-NMS predictions, targets, and hooking a validator's metrics."""

from __future__ import annotations

from typing import Any

import torch

from pairhook.compat.patches import replace, restore


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


def hook_validator(validator: Any, on_update: Any, on_stats: Any, on_gather: Any = None,
                   on_printed: Any = None) -> None:
    """Have ``validator`` call ``on_update(preds, batch)`` after NMS, merge ``on_stats()`` into its stats dict and
    call ``on_printed()`` once it has printed its results table (so a line logged there comes after the table).

    Releases that validate in a distributed way (each multi-GPU rank a shard of the validation set, 8.3.x on) call
    ``gather_stats()`` on every rank before rank 0 computes the stats; there ``on_gather()`` runs right after it, so
    per-rank counts can be summed first. Sets instance attributes over ``update_metrics``, ``get_stats``,
    ``print_results`` and ``gather_stats`` (the class is untouched); ``unhook_validator`` removes them.
    """
    update, stats, print_results = validator.update_metrics, validator.get_stats, validator.print_results

    def printed() -> None:
        print_results()
        if on_printed is not None:
            on_printed()

    replace("validator", validator, "print_results", printed)

    def update_metrics(preds: Any, batch: dict[str, Any]) -> None:
        on_update(preds, batch)
        update(preds, batch)

    def get_stats() -> dict[str, Any]:
        return {**stats(), **on_stats()}

    replace("validator", validator, "update_metrics", update_metrics)
    replace("validator", validator, "get_stats", get_stats)
    gather = getattr(validator, "gather_stats", None)
    if on_gather is not None and gather is not None:

        def gather_stats() -> None:
            gather()
            on_gather()

        replace("validator", validator, "gather_stats", gather_stats)


def unhook_validator(validator: Any) -> None:
    for name in ("update_metrics", "get_stats", "print_results", "gather_stats"):
        if name in validator.__dict__:
            restore("validator", validator, name)


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


#: IoU thresholds of mAP50-95, as Ultralytics' detection validator uses them.
IOU_THRESHOLDS = torch.linspace(0.5, 0.95, 10)


def match_predictions(pred_cls: torch.Tensor, gt_cls: torch.Tensor, iou: torch.Tensor) -> torch.Tensor:
    """``(N, 10)`` bool: prediction ``n`` is a true positive at each mAP IoU threshold, matched as Ultralytics'
    validator matches for mAP (class-aware; ``iou`` is ``(G, N)``, predictions in descending confidence, which
    releases that match greedily by confidence rely on)."""
    from types import SimpleNamespace

    from ultralytics.engine.validator import BaseValidator

    out = BaseValidator.match_predictions(SimpleNamespace(iouv=IOU_THRESHOLDS), pred_cls, gt_cls, iou)
    return torch.as_tensor(out, dtype=torch.bool)


def average_precision(recall: Any, precision: Any) -> float:
    """Ultralytics' AP of one precision-recall curve (COCO's 101-point interpolation of the precision envelope)."""
    from ultralytics.utils.metrics import compute_ap

    return float(compute_ap(recall, precision)[0])
