"""Pair metrics at validation: the ``pairs/*`` columns of ``results.csv`` during training, and ``pairs.png``.

When pairhook is installed and the validation dataset carries pairs (the pair carrier is attached to every dataset
the trainer builds), each validation feeds its post-NMS predictions and the batch's pair rows to
:class:`pairhook.metrics.PairMetrics`. The result is logged, merged into the validator's stats (so it lands in
``results.csv`` and every logger Ultralytics feeds, as ``pairs/*`` columns), and plotted per epoch to ``pairs.png``
(one panel per metric, the upper and lower view's recall on one axis).
An installation calls the ``on_*`` functions here from its own callbacks of the same names;
:func:`pairhook.evaluate` attaches a collector to its validator directly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pairhook import compat, log
from pairhook.metrics import CONF, IOU, KEYS, PairMetrics, format_metrics
from pairhook.pairs.carrier import PAIRS_KEY, PairCarrier
from pairhook.results import columns, read_results

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

    def gather(self, device: Any) -> None:
        """On every multi-GPU rank after its shard of the validation set: sum the pair counts of all ranks."""
        self.metrics.reduce(compat.all_reduce_sum, device)

    def stats(self) -> dict[str, float]:
        self.last = self.metrics.compute()
        self.metrics.reset()
        return self.last

    def printed(self) -> None:
        """Log the result under the validator's own table."""
        if self.last is not None:
            log.info(f"pairs: {format_metrics(self.last)}")


def attach(validator: Any, iou: float = IOU, conf: float = CONF) -> PairValidation:
    """Collect pair metrics in ``validator`` (idempotent: a second call resets and returns the same collector).

    Called at the start of every validation on every rank, so ranks other than 0, whose stats are never computed,
    start each validation from zero too.
    """
    existing = validator.__dict__.get(ATTR)
    if existing is not None:
        existing.metrics.reset()
        return existing
    collector = PairValidation(iou, conf)
    compat.hook_validator(validator, collector.update, collector.stats,
                          lambda: collector.gather(getattr(validator, "device", None) or "cpu"), collector.printed)
    compat.replace("validator", validator, ATTR, collector)
    return collector


def detach(validator: Any) -> None:
    if validator is not None and validator.__dict__.get(ATTR) is not None:
        compat.unhook_validator(validator)
        compat.restore("validator", validator, ATTR)


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
    """Plot ``pairs.png`` when the run makes plots (``plots=True``) and measures pairs."""
    csv_path = Path(trainer.save_dir) / "results.csv"
    plots = getattr(trainer.args, "plots", True)
    if plots and KEYS[0] in (getattr(trainer, "metrics", None) or {}) and csv_path.exists():
        try:
            plot_pairs(csv_path)
        except Exception as e:  # noqa: BLE001 - a plot must never stop training
            log.warning(f"could not plot {PLOT}: {e}")


def on_train_end(trainer: Any) -> None:
    detach(getattr(trainer, "validator", None))


# Plot ------------------------------------------------------------------------------------------------------------
def plot_pairs(csv_path: str | Path, out: str | Path | None = None) -> Path:
    """Plot the ``pairs/*`` columns of ``results.csv`` per epoch to ``pairs.png`` beside it."""
    out = Path(out) if out is not None else Path(csv_path).parent / PLOT
    pairs_figure(csv_path).savefig(out, dpi=120)
    return out


#: ``pairs.png``: one panel per entry, ``(title, ((column, line label), ...))``; the per-view recalls share an axis.
PANELS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("pairs/both_detected", (("pairs/both_detected", ""),)),
    ("pairs/one_detected", (("pairs/one_detected", ""),)),
    ("recall per view", (("pairs/recall_upper", "upper"), ("pairs/recall_lower", "lower"))),
    ("pairs/class_agree", (("pairs/class_agree", ""),)),
    ("pairs/conf_gap", (("pairs/conf_gap", ""),)),
    ("AP50-95 per view", (("pairs/ap_upper", "upper"), ("pairs/ap_lower", "lower"))),
    ("recall at precision 0.8", (("pairs/recall_p80_upper", "upper"), ("pairs/recall_p80_lower", "lower"))),
    ("wrong-class boxes on members", (("pairs/wrong_class_upper", "upper"), ("pairs/wrong_class_lower", "lower"))),
)


def pairs_figure(csv_path: str | Path) -> Any:
    """The ``pairs.png`` figure (:data:`PANELS`); a panel without any value yet says so."""
    from matplotlib.figure import Figure

    cols = columns(read_results(csv_path), ("epoch", *KEYS))
    epochs = cols.get("epoch", [])
    cols_per_row = 4
    rows = -(-len(PANELS) // cols_per_row)
    fig = Figure(figsize=(3.6 * cols_per_row, 3.3 * rows), tight_layout=True)
    for i, (title, lines) in enumerate(PANELS):
        ax = fig.add_subplot(rows, cols_per_row, i + 1)
        ax.set_title(title, fontsize=12)
        ax.set_xlabel("epoch")
        drawn = [(label, cols[key]) for key, label in lines
                 if any(math.isfinite(v) for v in cols.get(key, []))]
        if not drawn:  # NaN: nothing to measure yet (no pair both detected, ...), or a results.csv without it
            ax.set_xticks([])
            ax.set_yticks([])
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes, color="0.4")
            continue
        for label, values in drawn:
            ax.plot(epochs, values, marker=".", linewidth=2, markersize=8, label=label or None)
        if any(label for label, _ in drawn):
            ax.legend(loc="best", fontsize=9)
        if title != "pairs/conf_gap":
            ax.set_ylim(-0.02, 1.02)
    return fig
