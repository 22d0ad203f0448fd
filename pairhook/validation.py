"""Pair metrics at validation: training-time columns in ``results.csv``, ``pairs.png``, and :func:`evaluate`.

When pairhook is installed and the validation dataset carries pairs (the pair carrier is attached to every dataset
the trainer builds), each validation feeds its post-NMS predictions and the batch's pair rows to
:class:`pairhook.metrics.PairMetrics`. The result is logged, merged into the validator's stats (so it lands in
``results.csv`` and every logger Ultralytics feeds, as ``pairs/*`` columns), and plotted per epoch to ``pairs.png``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import yaml

from pairhook import compat
from pairhook.metrics import CONF, IOU, KEYS, PairMetrics, format_metrics
from pairhook.pairs import PAIRS_KEY, PairCarrier, log

ATTR = "_pairhook_metrics"  # validator instance attribute holding its PairValidation
PLOT = "pairs.png"


class PairValidation:
    """Collects pair metrics from one validator's post-NMS predictions; the last result is in :attr:`last`."""

    def __init__(self, iou: float = IOU, conf: float = CONF) -> None:
        self.metrics = PairMetrics(iou, conf)
        self.last: dict[str, float] | None = None

    def update(self, preds: Any, batch: dict[str, Any]) -> None:
        rows = batch.get(PAIRS_KEY)
        if rows is None or rows.shape[0] == 0:
            return
        images = rows[:, 0]
        preds = compat.val_predictions(preds)
        for si in images.unique().tolist():  # only images with pairs
            gt_boxes, gt_cls, rotated = compat.val_targets(batch, si)
            boxes, conf, cls = compat.detections(preds[si], rotated)
            pairs = rows[images == si, 1:].to(gt_boxes.device)
            self.metrics.update(gt_boxes, gt_cls, pairs, boxes.to(gt_boxes.device), conf.to(gt_boxes.device),
                                cls.to(gt_boxes.device))

    def stats(self) -> dict[str, float]:
        self.last = self.metrics.compute()
        self.metrics.reset()
        log(f"pairs: {format_metrics(self.last)}")
        return self.last


def attach(validator: Any, iou: float = IOU, conf: float = CONF) -> PairValidation:
    """Collect pair metrics in ``validator`` (idempotent: a second call resets and returns the same collector)."""
    existing = validator.__dict__.get(ATTR)
    if existing is not None:
        existing.metrics.reset()
        return existing
    collector = PairValidation(iou, conf)
    compat.hook_validator(validator, collector.update, collector.stats)
    setattr(validator, ATTR, collector)
    return collector


def detach(validator: Any) -> None:
    if validator is not None and validator.__dict__.get(ATTR) is not None:
        compat.unhook_validator(validator)
        del validator.__dict__[ATTR]


# Callbacks of an installation ----------------------------------------------------------------------------------------
def on_pretrain_routine_end(trainer: Any) -> None:
    """Reserve the ``pairs/*`` columns, so ``results.csv`` rows written before the first validation have them, and
    collect the metrics in the trainer's validator."""
    if PairCarrier.attached(getattr(getattr(trainer, "test_loader", None), "dataset", None)):
        compat.add_metric_keys(trainer, dict.fromkeys(KEYS, math.nan))
        if getattr(trainer, "validator", None) is not None:
            attach(trainer.validator)  # some validators never see the model's callbacks (8.1 oriented boxes)


def on_val_start(validator: Any) -> None:
    if PairCarrier.attached(getattr(validator.dataloader, "dataset", None)):
        attach(validator)


def on_fit_epoch_end(trainer: Any) -> None:
    csv_path = Path(trainer.save_dir) / "results.csv"
    if KEYS[0] in (getattr(trainer, "metrics", None) or {}) and csv_path.exists():
        try:
            plot_pairs(csv_path)
        except Exception as e:  # a plot must never stop training
            log(f"could not plot {PLOT}: {e}")


def on_train_end(trainer: Any) -> None:
    detach(getattr(trainer, "validator", None))


# Plot ------------------------------------------------------------------------------------------------------------
def read_columns(csv_path: str | Path, keys: tuple[str, ...] = ("epoch", *KEYS)) -> dict[str, list[float]]:
    """Columns of ``results.csv`` (names stripped) as float lists; missing columns are left out."""
    with open(csv_path, newline="") as f:
        rows = [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(f)]
    return {k: [float(r[k]) for r in rows] for k in keys if rows and k in rows[0]}


def plot_pairs(csv_path: str | Path, out: str | Path | None = None) -> Path:
    """Plot the ``pairs/*`` columns of ``results.csv`` per epoch to ``pairs.png`` beside it."""
    from matplotlib.figure import Figure

    cols = read_columns(csv_path)
    out = Path(out) if out is not None else Path(csv_path).parent / PLOT
    fig = Figure(figsize=(12, 3.5), tight_layout=True)
    for i, key in enumerate(KEYS[:3]):
        ax = fig.add_subplot(1, 3, i + 1)
        ax.plot(cols.get("epoch", []), cols.get(key, []), marker=".", linewidth=2, markersize=8)
        ax.set_title(key, fontsize=12)
        ax.set_xlabel("epoch")
        if key != "pairs/conf_gap":
            ax.set_ylim(-0.02, 1.02)
    fig.savefig(out, dpi=120)
    return out


# Standalone evaluation -------------------------------------------------------------------------------------------
def evaluate(model: Any, data: str | Path, pairs: str | Path | None = None, *, match_iou: float = 0.5,
             pair_iou: float = IOU, pair_conf: float = CONF, **val_kwargs: Any) -> dict[str, float]:
    """Validate ``model`` on ``data`` and return Ultralytics' metrics plus the pair metrics.

    Args:
        model: a ``YOLO`` or the path of a checkpoint (``best.pt``).
        data: the data YAML; its ``val`` split (or ``split=...``) is evaluated.
        pairs: the pair file; without it, the data YAML's ``pairs:`` key.
        match_iou: least IoU between a pair member and its label row, as in ``install()``.
        pair_iou: least IoU between a GT member and a prediction that detects it (not NMS's ``iou``).
        pair_conf: least confidence of a prediction that counts for the pair metrics (not the validator's ``conf``,
            which also sets mAP's operating range).
        val_kwargs: passed to ``model.val()`` (``imgsz``, ``batch``, ``conf``, ``device``, ...).

    Returns:
        ``{results.csv column: value}`` of the validation (``metrics/mAP50(B)``, ``metrics/mAP50-95(B)``, ...) and
        ``pairs/both_detected``, ``pairs/class_agree``, ``pairs/conf_gap``, ``pairs/n`` (see :mod:`pairhook.metrics`).

    Raises:
        ValueError: no pair file given or named by the data YAML; PairsError: a malformed pair file.
    """
    from ultralytics import YOLO

    from pairhook.installation import DatasetBuilder, Installation
    from pairhook.pairs import load_pair_file

    yolo = model if hasattr(model, "val") else YOLO(str(model))
    if pairs is not None:
        load_pair_file(pairs)  # fail before the model runs
    elif Path(data).is_file() and not (yaml.safe_load(Path(data).read_text()) or {}).get("pairs"):
        raise ValueError(f"no pairs for {data}: pass pairs=... or add a 'pairs:' key to the data YAML")
    holder = Installation(yolo, [], str(pairs) if pairs is not None else None, match_iou)  # registers nothing
    made: list[tuple[Any, PairValidation]] = []

    def make_validator(**kwargs: Any) -> Any:
        validator = compat.default_validator(yolo)(**kwargs)
        validator.build_dataset = DatasetBuilder(validator.build_dataset, holder, validator)
        made.append((validator, attach(validator, pair_iou, pair_conf)))
        return validator

    results = compat.val_results(yolo.val(validator=make_validator, data=str(data), **val_kwargs))
    validator, collector = made[0]
    if not PairCarrier.attached(getattr(validator.dataloader, "dataset", None)) or collector.last is None:
        raise ValueError(f"no pairs for {data}: pass pairs=... or add a 'pairs:' key to the data YAML")
    return {**results, **collector.last}
