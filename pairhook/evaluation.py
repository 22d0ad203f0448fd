"""``pairhook.evaluate``: Ultralytics' validation of a trained model, plus the pair metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from pairhook import compat
from pairhook.metrics import CONF, IOU
from pairhook.pairs.attach import DatasetBuilder, PairAttacher
from pairhook.pairs.carrier import PairCarrier
from pairhook.pairs.file import load_pair_file
from pairhook.val_metrics import PairValidation, attach


@dataclass(frozen=True)
class Evaluation:
    """What :func:`run_evaluation` returns: the metrics of :func:`evaluate` and the folder the validator saved to (where
    ``model.val()`` saves: ``project``/``name``, else Ultralytics' ``runs_dir``/task/val)."""

    metrics: dict[str, float]
    save_dir: Path


def evaluate(model: Any, data: Union[str, Path], pairs: Optional[Union[str, Path]] = None, *, match_iou: float = 0.5,
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
        val_kwargs: passed to ``model.val()`` (``imgsz``, ``batch``, ``conf``, ``device``, ``project``, ...); plots
            and files are saved where ``model.val()`` saves them.

    Returns:
        ``{results.csv column: value}`` of the validation (``metrics/mAP50(B)``, ``metrics/mAP50-95(B)``, ...) and
        the ``pairs/*`` metrics (:data:`pairhook.metrics.KEYS`: ``pairs/both_detected``, ``pairs/one_detected``,
        ``pairs/recall_upper``, ``pairs/recall_lower``, ``pairs/class_agree``, ``pairs/conf_gap``, ``pairs/n``).

    Raises:
        ValueError: no pair file given or named by the data YAML; PairsError: a malformed pair file.
    """
    return run_evaluation(model, data, pairs, match_iou=match_iou, pair_iou=pair_iou, pair_conf=pair_conf,
                      **val_kwargs).metrics


def run_evaluation(model: Any, data: Union[str, Path], pairs: Optional[Union[str, Path]] = None, *,
               match_iou: float = 0.5, pair_iou: float = IOU, pair_conf: float = CONF, **val_kwargs: Any
               ) -> Evaluation:
    """:func:`evaluate`, also returning where the validator saved its files (``pairhook evaluate`` prints it).
    ``task=`` (a ``yolo`` key) goes to ``YOLO()`` when ``model`` is a path."""
    from ultralytics import YOLO

    task = val_kwargs.pop("task", None)
    yolo = model if hasattr(model, "val") else YOLO(str(model), task=task)
    pair_file = None
    if pairs is not None:
        pairs = Path(pairs).resolve()
        pair_file = load_pair_file(pairs)  # fail before the model runs
    elif Path(data).is_file() and not (yaml.safe_load(Path(data).read_text()) or {}).get("pairs"):
        raise ValueError(f"no pairs for {data}: pass pairs=... or add a 'pairs:' key to the data YAML")
    attacher = PairAttacher(str(pairs) if pairs is not None else None, match_iou, pair_file=pair_file)
    made: list[tuple[Any, PairValidation]] = []

    def make_validator(**kwargs: Any) -> Any:
        validator = compat.default_validator(yolo)(**kwargs)
        compat.replace("validator", validator, "build_dataset", DatasetBuilder(validator.build_dataset, attacher,
                                                                               validator))
        made.append((validator, attach(validator, pair_iou, pair_conf)))
        return validator

    results = compat.val_results(yolo.val(validator=make_validator, data=str(data), **val_kwargs))
    validator, collector = made[0]
    if not PairCarrier.attached(getattr(validator.dataloader, "dataset", None)) or collector.last is None:
        raise ValueError(f"no pairs for {data}: pass pairs=... or add a 'pairs:' key to the data YAML")
    return Evaluation({**results, **collector.last}, Path(validator.save_dir))
