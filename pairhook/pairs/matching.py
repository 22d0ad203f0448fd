"""Matching a pair file to the label rows of one dataset split: which two rows of an image are a pair.

Members in the users' format are matched to the image's label rows in the normalized original coordinates both
files share: same class (any class where Ultralytics collapsed them, ``single_cls``), best IoU, one-to-one,
IoU >= ``match_iou``. Index-form pairs name rows of the label file as written; they are resolved to the dataset's
rows through :func:`pairhook.compat.label_row_map`, so Ultralytics' duplicate removal, sorting and class filtering
cannot shift them onto other boxes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from pairhook import compat
from pairhook.pairs.file import PairFile, image_stem

KeyOf = Callable[[str], tuple[Optional[str], Optional[str]]]  # image file -> (key, why none)
RowMap = Callable[[dict[str, Any]], np.ndarray]  # dataset label -> dataset row of each label-file row, or -1


@dataclass
class MatchReport:
    """What matching a pair file against one dataset split found."""

    split: str
    images: int = 0
    pairs: int = 0
    matched: int = 0
    reasons: list[str] = field(default_factory=list)
    unmatched: int = 0

    def skip(self, reason: str) -> None:
        self.unmatched += 1
        if len(self.reasons) < 5:
            self.reasons.append(reason)

    def summary(self) -> str:
        text = f"{self.split}: {self.matched}/{self.pairs} pairs matched on {self.images} images"
        if self.unmatched:
            text += f"; {self.unmatched} skipped, e.g. " + "; ".join(self.reasons)
        return text


def _xyxy(xywh: np.ndarray) -> np.ndarray:
    from ultralytics.utils.ops import xywh2xyxy

    return xywh2xyxy(np.asarray(xywh, dtype=np.float64).reshape(-1, 4))


def match_image(
    stem: str, pairs: Sequence[tuple[Sequence[float], Sequence[float]]], cls: np.ndarray, xywh: np.ndarray,
    match_iou: float, report: MatchReport, ignore_class: bool = False,
) -> list[tuple[int, int]]:
    """Rows of one image's labels for each pair: same class, best IoU, one-to-one, IoU >= ``match_iou``."""
    from ultralytics.utils.metrics import bbox_ioa

    members = np.asarray([m for pair in pairs for m in pair], dtype=np.float64).reshape(-1, 5)
    iou = bbox_ioa(_xyxy(members[:, 1:]), _xyxy(xywh), iou=True) if len(xywh) else np.zeros((len(members), 0))
    if not ignore_class:
        iou = np.where(members[:, :1] == np.asarray(cls, dtype=np.float64).reshape(1, -1), iou, -1.0)
    row_of = np.full(len(members), -1)
    taken = np.zeros(iou.shape[1], dtype=bool)
    for flat in np.argsort(-iou, axis=None, kind="stable"):  # greedy one-to-one, best IoU first
        m, r = divmod(int(flat), iou.shape[1])
        if iou[m, r] < match_iou:
            break
        if row_of[m] < 0 and not taken[r]:
            row_of[m], taken[r] = r, True
    rows = []
    for i in range(len(pairs)):
        ra, rb = row_of[2 * i], row_of[2 * i + 1]
        if ra >= 0 and rb >= 0:
            rows.append((int(ra), int(rb)))
            continue
        m = 2 * i + (ra >= 0)
        best = iou[m].max(initial=-1.0)
        why = "no label row of that class" if best < 0 else f"best IoU {best:.2f} < {match_iou}"
        if best >= match_iou:
            why = "its label row is already a member of another pair (the same box in two pairs)"
        report.skip(f"{stem} pair {i} member {'ab'[m % 2]}: {why}")
    return rows


def match_dataset(pair_file: PairFile, labels: Sequence[dict[str, Any]], match_iou: float, split: str, *,
                  key_of: Optional[KeyOf] = None, row_map: Optional[RowMap] = None, ignore_class: bool = False,
                  ) -> tuple[list[list[tuple[int, int]]], MatchReport]:
    """Pair rows for every image of a dataset (its ``labels`` list, in order), and the match report.

    Args:
        key_of: the pair-file key naming an image file, or why none does (default: its file name).
        row_map: where each row of an image's label file went in the dataset, for index-form pairs (default:
            :func:`pairhook.compat.label_row_map` with no ``classes=`` filter and no ``single_cls``).
        ignore_class: match boxes by geometry alone (Ultralytics' ``single_cls`` set every class to 0).

    Images in the users' format are matched in batches of images with the same number of members and label rows
    (linear in the file, a few seconds for 100k images); an image where two members want the same row falls back
    to :func:`match_image`'s greedy one-to-one matching.
    """
    key_of = key_of or (lambda f: (image_stem(f), None))
    row_map = row_map or compat.label_row_map
    report = MatchReport(split)
    out: list[list[tuple[int, int]]] = [[] for _ in labels]
    groups: dict[tuple[int, int], list[tuple[int, str]]] = {}
    for n, lb in enumerate(labels):
        key, ambiguous = key_of(lb["im_file"])
        if ambiguous:
            stem = image_stem(lb["im_file"])
            report.images += 1
            report.pairs += pair_file.pairs_of(stem)
            for i in range(pair_file.pairs_of(stem)):
                report.skip(f"{stem} pair {i}: {ambiguous}; key it by its path relative to the dataset's path")
        elif key in pair_file.boxes:
            report.images += 1
            report.pairs += len(pair_file.boxes[key])
            groups.setdefault((2 * len(pair_file.boxes[key]), len(lb["cls"])), []).append((n, key))
        elif key in pair_file.rows:
            report.images += 1
            report.pairs += len(pair_file.rows[key])
            out[n] = _index_rows(key, pair_file.rows[key], row_map(lb), lb["cls"].reshape(-1), report)
    for (members, rows), images in groups.items():
        if members:
            _match_group(pair_file, labels, images, members, rows, match_iou, report, out, ignore_class)
    for n, rows in enumerate(out):
        used: set[int] = set()
        kept = []
        for ra, rb in rows:
            if ra in used or rb in used:
                report.skip(f"{image_stem(labels[n]['im_file'])}: a box is in more than one pair; later pair skipped")
                continue
            used.update((ra, rb))
            kept.append((ra, rb))
        report.matched += len(kept)
        out[n] = kept
    return out, report


def _index_rows(key: str, pairs: list[tuple[int, int]], row_map: np.ndarray, cls: np.ndarray, report: MatchReport
                ) -> list[tuple[int, int]]:
    """Dataset rows of index-form pairs, through the label file's ``row_map``; what cannot be resolved is skipped."""
    out = []
    for i, (ra, rb) in enumerate(pairs):
        if max(ra, rb) >= len(row_map):
            report.skip(f"{key} pair {i}: row {max(ra, rb)} but its label file has {len(row_map)} rows")
        elif min(row_map[ra], row_map[rb]) < 0:
            row = ra if row_map[ra] < 0 else rb
            report.skip(f"{key} pair {i}: label row {row} is not in the dataset (Ultralytics dropped it: a classes= "
                        "filter or an invalid row)")
        elif row_map[ra] == row_map[rb]:
            report.skip(f"{key} pair {i}: label rows {ra} and {rb} are the same box (a duplicated row)")
        elif cls[row_map[ra]] != cls[row_map[rb]]:
            report.skip(f"{key} pair {i}: label rows {ra} and {rb} have different classes")
        else:
            out.append((int(row_map[ra]), int(row_map[rb])))
    return out


def _match_group(pair_file: PairFile, labels: Sequence[dict[str, Any]], images: list[tuple[int, str]], m: int, r: int,
                 match_iou: float, report: MatchReport, out: list[list[tuple[int, int]]], ignore_class: bool) -> None:
    """Match ``images`` that all have ``m`` members and ``r`` label rows: each member takes its best row."""
    members = np.asarray([[b for pair in pair_file.boxes[stem] for b in pair] for _, stem in images], np.float64
                         ).reshape(len(images), m, 5)
    gts = np.stack([np.concatenate([labels[n]["cls"].reshape(-1, 1), labels[n]["bboxes"].reshape(-1, 4)], 1)
                    for n, _ in images]).astype(np.float64).reshape(len(images), r, 5)
    iou = _batched_iou(members[..., 1:], gts[..., 1:])
    if not ignore_class:
        iou = np.where(members[..., :1] == gts[:, None, :, 0], iou, -1.0)  # (k, m, r), -1: another class
    best = iou.argmax(-1) if r else np.zeros(members.shape[:2], dtype=np.int64)
    best_iou = np.take_along_axis(iou, best[..., None], -1)[..., 0] if r else np.full(members.shape[:2], -1.0)
    ok = best_iou >= match_iou
    wanted = np.sort(np.where(ok, best, -1 - np.arange(m)), -1)  # members without a row never collide
    conflict = (wanted[:, 1:] == wanted[:, :-1]).any(-1).tolist()
    all_ok, best, ok, best_iou = ok.all(-1).tolist(), best.tolist(), ok.tolist(), best_iou.tolist()
    for j, (n, stem) in enumerate(images):
        if conflict[j]:
            out[n] = match_image(stem, pair_file.boxes[stem], gts[j, :, 0], gts[j, :, 1:], match_iou, report,
                                 ignore_class)
        elif all_ok[j]:
            out[n] = list(zip(best[j][0::2], best[j][1::2]))
        else:
            for i in range(m // 2):
                if ok[j][2 * i] and ok[j][2 * i + 1]:
                    out[n].append((best[j][2 * i], best[j][2 * i + 1]))
                    continue
                k = 2 * i + ok[j][2 * i]
                got = best_iou[j][k]
                why = "no label row of that class" if got < 0 else f"best IoU {got:.2f} < {match_iou}"
                report.skip(f"{stem} pair {i} member {'ab'[k % 2]}: {why}")


def _batched_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(k, m, r) IoU between xywh boxes ``a`` (k, m, 4) and ``b`` (k, r, 4), image by image."""
    a, b = a[:, :, None], b[:, None]
    inter = (np.minimum(a[..., :2] + a[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2)
             - np.maximum(a[..., :2] - a[..., 2:] / 2, b[..., :2] - b[..., 2:] / 2)).clip(0).prod(-1)
    return inter / (a[..., 2:].prod(-1) + b[..., 2:].prod(-1) - inter + 1e-7)
