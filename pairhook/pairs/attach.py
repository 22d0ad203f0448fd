"""Putting pairs on the datasets Ultralytics builds: pair file -> keys -> matching -> carrier, per dataset instance.

Used by an installation's training (every dataset the trainer builds) and by :func:`pairhook.evaluate` (the
validator's dataset) alike, so both match and carry pairs the same way, and say the same things: the match summary
of every split, keys that name no image (with the likely cause), file names shared by different images, and a split
where nothing matched. With ``strict`` the last two, and a split with more than :data:`STRICT_MAX_SKIPPED` of its
pairs skipped, are errors before training.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from pairhook import compat, log
from pairhook.pairs.carrier import PairCarrier
from pairhook.pairs.file import PairFile, PairsError, load_pair_file, resolve_pairs_path
from pairhook.pairs.keys import ImageKeys, split_images
from pairhook.pairs.matching import KeyOf, MatchReport, match_dataset

STRICT_MAX_SKIPPED = 0.1
EXAMPLES = 3


def attach_pairs(dataset: Any, pair_file: PairFile, nc: int, match_iou: float, split: str, *,
                 key_of: Optional[KeyOf] = None, classes: Optional[list[int]] = None) -> MatchReport:
    """Match ``pair_file`` against a freshly built ``dataset`` and put the carrier on it; return the match report.

    ``classes`` is the run's ``classes=`` filter (the dataset does not keep it), needed to resolve index-form rows.
    """
    rows, report = match_dataset(pair_file, dataset.labels, match_iou, split, key_of=key_of,
                                 row_map=compat.row_mapper(dataset, classes),
                                 ignore_class=compat.collapses_classes(dataset))
    PairCarrier(dataset, rows, nc=nc).attach(dataset)
    return report


class PairAttacher:
    """Attaches the run's pairs to each dataset built for it and reports on them.

    Args:
        pairs: the pair file given to ``install()``/``evaluate()``; ``None`` uses the data YAML's ``pairs:`` key.
        match_iou: least IoU between a pair member and its label row.
        expects_pairs: warn (when the training set is built) if there is no pair file at all.
        strict: raise :class:`PairsError` where pairs would silently be lost (see the module docstring).
    """

    def __init__(self, pairs: Optional[str], match_iou: float, expects_pairs: bool = False,
                 strict: bool = False, pair_file: Optional[PairFile] = None) -> None:
        self.pairs, self.match_iou, self.expects_pairs, self.strict = pairs, match_iou, expects_pairs, strict
        self.pair_file = pair_file  # the file ``pairs`` names, if the caller has already read it
        self.keys: Optional[ImageKeys] = None
        self.reports: dict[str, MatchReport] = {}

    def load(self, path: Path, data: dict[str, Any]) -> PairFile:
        if self.pair_file is None or Path(self.pair_file.path) != path:
            self.pair_file, self.keys = load_pair_file(path), None
        if self.keys is None:
            log.info(f"read {self.pair_file.num_pairs} pairs on {len(self.pair_file.images)} images from {path}")
            self.keys = ImageKeys(self.pair_file.images, data.get("path"), split_images(data))
            self._report_keys()
        return self.pair_file

    def __call__(self, dataset: Any, mode: str, owner: Any) -> None:
        """Attach to ``dataset``, built for ``mode`` by ``owner`` (a trainer or validator: its ``data``, ``args``)."""
        data = owner.data
        path = resolve_pairs_path(self.pairs, data)
        if path is None:
            if mode == "train" and self.expects_pairs:
                log.warning("no pair file (install(pairs=...) or 'pairs:' in the data YAML): pair terms will be 0")
            return
        pair_file = self.load(path, data)
        if not compat.collapses_classes(dataset):
            pair_file.check_classes(data["names"])
        report = attach_pairs(dataset, pair_file, len(data["names"]), self.match_iou, mode,
                              key_of=self.keys.key_of, classes=getattr(owner.args, "classes", None))
        self.reports[mode] = report
        log.info(report.summary())
        self._check(report)

    def _check(self, report: MatchReport) -> None:
        """Say, or with ``strict`` raise, when a split with listed pairs matched none or skipped too many."""
        if not report.pairs:
            return
        if report.matched == 0:
            message = (f"{report.split}: none of the {report.pairs} pairs listed for its {report.images} images "
                       f"matched (see the reasons above): the pair terms and metrics get no pair from this split")
        elif report.unmatched > STRICT_MAX_SKIPPED * report.pairs and self.strict:
            message = f"{report.split}: {report.unmatched} of {report.pairs} pairs were skipped (see the reasons above)"
        else:
            return
        if self.strict:
            raise PairsError(f"{message}; strict_pairs=True stops here, before training")
        log.warning(message)

    def _report_keys(self) -> None:
        """Warn about keys that name no image, and about file names that name several."""
        keys, name = self.keys, self.pair_file.path.name
        unused = keys.unused()
        if unused:
            shown = "; ".join(f"{k!r}: {keys.hint(k)}" for k in unused[:EXAMPLES])
            log.warning(f"{len(unused)} key(s) of {name} name no image of the dataset's splits, e.g. {shown}. Keys are "
                        f"file names (with or without extension) or paths relative to {keys.root}")
        bare = sorted(set(keys.shared) & keys.keys)
        if bare:
            shown = "; ".join(f"{s!r}: {', '.join(keys.shared[s][:2])}" for s in bare[:EXAMPLES])
            message = (f"{len(bare)} key(s) of {name} are file names shared by different images, so pairhook cannot "
                       f"tell which image they mean and skips their pairs: {shown}. Key them by their path relative "
                       f"to {keys.root} (e.g. 'images/train/a/img_001')")
            if self.strict:
                raise PairsError(f"{message}; strict_pairs=True stops here, before training")
            log.warning(message)
        elif keys.shared:
            log.info(f"{len(keys.shared)} file name(s) are shared by different images (e.g. "
                     f"{', '.join(list(keys.shared)[:EXAMPLES])}); the pair file keys them by path, which is fine")


class DatasetBuilder:
    """Stands in for a trainer's or validator's ``build_dataset``: builds as before, then calls ``on_built``."""

    def __init__(self, inner: Callable[..., Any], on_built: Callable[[Any, str, Any], None], owner: Any) -> None:
        self.inner, self.on_built, self.owner = inner, on_built, owner

    def __call__(self, img_path: str, mode: str = "train", batch: Optional[int] = None) -> Any:
        dataset = self.inner(img_path, mode, batch)
        self.on_built(dataset, mode, self.owner)
        return dataset
