"""Pairs, from the file to the batch: :mod:`~pairhook.pairs.file` (format and validation) ->
:mod:`~pairhook.pairs.matching` (label rows per image) -> :mod:`~pairhook.pairs.carrier` (identity through
augmentation, pair rows per batch), composed per dataset by :mod:`~pairhook.pairs.attach`.
:mod:`~pairhook.pairs.discover` proposes a pair file from the labels alone.
"""

from pairhook.pairs.attach import DatasetBuilder, PairAttacher, attach_pairs
from pairhook.pairs.carrier import PAIRS_KEY, PairCarrier, pairs_from_tags
from pairhook.pairs.file import PairFile, PairsError, image_stem, load_pair_file, resolve_pairs_path
from pairhook.pairs.matching import MatchReport, match_dataset, match_image

__all__ = [
    "PAIRS_KEY",
    "DatasetBuilder",
    "MatchReport",
    "PairAttacher",
    "PairCarrier",
    "PairFile",
    "PairsError",
    "attach_pairs",
    "image_stem",
    "load_pair_file",
    "match_dataset",
    "match_image",
    "pairs_from_tags",
    "resolve_pairs_path",
]
