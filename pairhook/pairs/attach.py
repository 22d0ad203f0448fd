"""Putting pairs on the datasets Ultralytics builds: pair file -> matching -> carrier, per dataset instance.

Used by an installation's training (every dataset the trainer builds) and by :func:`pairhook.evaluate` (the
validator's dataset) alike, so both match and carry pairs the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from pairhook import log
from pairhook.pairs.carrier import PairCarrier
from pairhook.pairs.file import PairFile, image_stem, load_pair_file, resolve_pairs_path
from pairhook.pairs.matching import MatchReport, match_dataset


def attach_pairs(dataset: Any, pair_file: PairFile, nc: int, match_iou: float, split: str) -> MatchReport:
    """Match ``pair_file`` against a freshly built ``dataset`` and put the carrier on it; return the match report."""
    rows, report = match_dataset(pair_file, dataset.labels, match_iou, split)
    PairCarrier(dataset, rows, nc=nc).attach(dataset)
    return report


class PairAttacher:
    """Attaches the run's pairs to each dataset built for it: the pair file is read once, each split is matched and
    its summary logged, and the images seen are remembered (to tell which listed images are in no split).

    Args:
        pairs: the pair file given to ``install()``/``evaluate()``; ``None`` uses the data YAML's ``pairs:`` key.
        match_iou: least IoU between a pair member and its label row.
        expects_pairs: say so (once, when the training set is built) if there is no pair file at all.
    """

    def __init__(self, pairs: Optional[str], match_iou: float, expects_pairs: bool = False) -> None:
        self.pairs, self.match_iou, self.expects_pairs = pairs, match_iou, expects_pairs
        self.pair_file: Optional[PairFile] = None
        self.seen: set[str] = set()

    def load(self, path: Path) -> PairFile:
        if self.pair_file is None or self.pair_file.path != path:
            self.pair_file = load_pair_file(path)
            log.info(f"read {self.pair_file.num_pairs} pairs on {len(self.pair_file.images)} images from {path}")
        return self.pair_file

    def __call__(self, dataset: Any, mode: str, data: dict[str, Any]) -> None:
        path = resolve_pairs_path(self.pairs, data)
        if path is None:
            if mode == "train" and self.expects_pairs:
                log.info("no pair file (install(pairs=...) or 'pairs:' in the data YAML): pair terms will be 0")
            return
        pair_file = self.load(path)
        nc = len(data["names"])
        pair_file.check_classes(nc)
        log.info(attach_pairs(dataset, pair_file, nc, self.match_iou, mode).summary())
        self.seen.update(image_stem(lb["im_file"]) for lb in dataset.labels)

    def report_unseen(self) -> None:
        """Log how many images of the pair file were in none of the datasets built so far."""
        if self.pair_file is not None:
            missing = len(self.pair_file.images - self.seen)
            if missing:
                log.info(f"{missing} image(s) listed in {self.pair_file.path.name} are in neither train nor val")


class DatasetBuilder:
    """Stands in for a trainer's or validator's ``build_dataset``: builds as before, then calls ``on_built``."""

    def __init__(self, inner: Callable[..., Any], on_built: Callable[[Any, str, dict[str, Any]], None],
                 owner: Any) -> None:
        self.inner, self.on_built, self.owner = inner, on_built, owner

    def __call__(self, img_path: str, mode: str = "train", batch: Optional[int] = None) -> Any:
        dataset = self.inner(img_path, mode, batch)
        self.on_built(dataset, mode, self.owner.data)
        return dataset
