"""Pair files → label rows → a per-instance tag that survives Ultralytics' augmentation → pair rows per batch.

The carrier is the ``(N, 1)`` float ``cls`` array, the one per-instance field every transform keeps aligned with
its box (mosaic, random perspective, flips, mixup, copy-paste; see the README). When a paired image is loaded, its
paired rows get ``cls + nc * tag``; the collate step splits ``cls`` back into the original class and the tag, and
turns tags into ``(image, gt_a, gt_b)`` rows. Ultralytics' loss, metrics and plots only ever see original classes.

A tag names the load (``draw``, so two copies of one image in a mosaic differ), the pair within its image and the
member. A pair is kept for a batch image only if exactly one member a and one member b with its tag are there, so a
pair cropped away or duplicated by augmentation is dropped, never paired with a wrong box.
"""

from __future__ import annotations

import gc
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

#: Batch key of the ``(P, 3)`` long pair rows added by :class:`PairCarrier`.
PAIRS_KEY = "pairhook_pairs"
DRAWS = 64  # distinct load ids in flight within one sample (mosaic9 + mixup draw far fewer)
FLOAT32_EXACT = 2**24


class PairsError(ValueError):
    """A pair file that cannot be used: names the file, the entry and what is wrong."""


@dataclass(frozen=True)
class PairFile:
    """A parsed pair file: per image basename, pairs as boxes ``((c,x,y,w,h), (c,x,y,w,h))`` or label rows."""

    path: Path
    boxes: dict[str, list[tuple[tuple[float, ...], tuple[float, ...]]]] = field(default_factory=dict)
    rows: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    @property
    def num_pairs(self) -> int:
        return sum(map(len, self.boxes.values())) + sum(map(len, self.rows.values()))

    @property
    def images(self) -> set[str]:
        return set(self.boxes) | set(self.rows)

    def check_classes(self, nc: int) -> None:
        """Raise :class:`PairsError` naming the first pair whose class is not one of the dataset's ``nc``."""
        for stem, pairs in self.boxes.items():
            for i, (a, _) in enumerate(pairs):
                if a[0] >= nc:
                    raise PairsError(f"{self.path}: {stem!r} pair {i}: class {int(a[0])} but the dataset has {nc} "
                                     f"classes (0 to {nc - 1})")


def _no_duplicates(path: Path) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def hook(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                raise PairsError(f"{path}: key {k!r} appears more than once")
            out[k] = v
        return out

    return hook


_NUMBER = (int, float)  # exact types: a JSON true/false is not a number here


def _member(path: Path, stem: str, i: int, side: str, m: Any) -> tuple[float, ...]:
    """``m`` as ``(c, x, y, w, h)`` floats; the common, valid case takes one chained test (files can be huge)."""
    if type(m) is list and len(m) == 5:
        c, x, y, w, h = m
        if (type(c) in _NUMBER and type(x) in _NUMBER and type(y) in _NUMBER and type(w) in _NUMBER
                and type(h) in _NUMBER and 0 <= x <= 1 and 0 <= y <= 1 and 0 < w <= 1 and 0 < h <= 1
                and c >= 0 and c % 1 == 0):
            return (float(c), float(x), float(y), float(w), float(h))
    where = f"{stem!r} pair {i} member {side}"
    if not isinstance(m, (list, tuple)) or len(m) != 5:
        raise PairsError(f"{path}: {where}: a member must be [class, x, y, w, h], got {m!r}")
    if not all(type(v) in _NUMBER for v in m):
        raise PairsError(f"{path}: {where}: member values must be numbers, got {m!r}")
    c, x, y, w, h = m
    if not all(math.isfinite(v) for v in m):
        raise PairsError(f"{path}: {where}: member has a NaN or infinite value: {m!r}")
    if c < 0 or c != int(c):
        raise PairsError(f"{path}: {where}: class must be a non-negative integer, got {c!r}")
    if w <= 0 or h <= 0:
        raise PairsError(f"{path}: {where}: width and height must be > 0, got w={w}, h={h}")
    raise PairsError(f"{path}: {where}: coordinates must be normalized to [0, 1], got {m!r}")


def load_pair_file(path: str | Path) -> PairFile:
    """Parse and validate a pair file in the users' format or the ``pairhook-index`` form.

    Users' format: ``{"img_001": [[[c,x,y,w,h], [c,x,y,w,h]], ...], ...}``, normalized xywh of the original image.
    Index form: ``{"format": "pairhook-index", "pairs": {"img_001": [[row_a, row_b], ...]}}``.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise PairsError(f"{path}: cannot read the pair file: {e}") from e
    if not text.strip():
        raise PairsError(f"{path}: the pair file is empty")
    collect = gc.isenabled()
    gc.disable()  # millions of small lists: the cyclic collector would rescan them all, again and again
    try:
        return _parse(path, text)
    finally:
        if collect:
            gc.enable()


def _parse(path: Path, text: str) -> PairFile:
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates(path))
    except json.JSONDecodeError as e:
        raise PairsError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise PairsError(f"{path}: the top level must be a JSON object keyed by image name, got {type(data).__name__}")
    if data.get("format") == "pairhook-index":
        return _load_index(path, data.get("pairs"))
    out = PairFile(path)
    for stem, pairs in data.items():
        if not isinstance(pairs, list):
            raise PairsError(f"{path}: {stem!r}: expected a list of pairs, got {type(pairs).__name__}")
        parsed = []
        for i, pair in enumerate(pairs):
            where = f"{stem!r} pair {i}"
            if type(pair) is list and len(pair) == 2 and type(pair[0]) is list:
                pass  # the common case, checked member by member below
            elif isinstance(pair, list) and pair and all(isinstance(v, (int, float)) for v in pair):
                raise PairsError(f"{path}: {where}: expected a pair [[c,x,y,w,h], [c,x,y,w,h]], got one box "
                                 f"{pair!r} (the value must be a list of pairs)")
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                n = len(pair) if isinstance(pair, (list, tuple)) else type(pair).__name__
                raise PairsError(f"{path}: {where}: a pair must have exactly 2 members, got {n}")
            a, b = _member(path, stem, i, "a", pair[0]), _member(path, stem, i, "b", pair[1])
            if a[0] != b[0]:
                raise PairsError(f"{path}: {where}: members have different classes ({int(a[0])} and {int(b[0])})")
            if a == b:
                raise PairsError(f"{path}: {where}: both members are the same box {list(a)}")
            parsed.append((a, b))
        out.boxes[stem] = parsed
    return out


def _load_index(path: Path, pairs: Any) -> PairFile:
    if not isinstance(pairs, dict):
        raise PairsError(f"{path}: 'pairs' must be an object keyed by image name in the pairhook-index format")
    out = PairFile(path)
    for stem, rows in pairs.items():
        ok = isinstance(rows, list) and all(
            isinstance(r, (list, tuple)) and len(r) == 2 and all(isinstance(v, int) and v >= 0 for v in r) for r in rows
        )
        if not ok:
            raise PairsError(f"{path}: {stem!r}: expected a list of [row_a, row_b] non-negative integers, got {rows!r}")
        bad = [r for r in rows if r[0] == r[1]]
        if bad:
            raise PairsError(f"{path}: {stem!r}: a pair names the same row twice: {bad[0]}")
        out.rows[stem] = [tuple(r) for r in rows]
    return out


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
    match_iou: float, report: MatchReport,
) -> list[tuple[int, int]]:
    """Rows of one image's labels for each pair: same class, best IoU, one-to-one, IoU >= ``match_iou``."""
    from ultralytics.utils.metrics import bbox_ioa

    members = np.asarray([m for pair in pairs for m in pair], dtype=np.float64).reshape(-1, 5)
    iou = bbox_ioa(_xyxy(members[:, 1:]), _xyxy(xywh), iou=True) if len(xywh) else np.zeros((len(members), 0))
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


def match_dataset(pair_file: PairFile, labels: Sequence[dict[str, Any]], match_iou: float, split: str
                  ) -> tuple[list[list[tuple[int, int]]], MatchReport]:
    """Pair rows for every image of a dataset (its ``labels`` list, in order), and the match report.

    Images in the users' format are matched in batches of images with the same number of members and label rows
    (linear in the file, a few seconds for 100k images); an image where two members want the same row falls back
    to :func:`match_image`'s greedy one-to-one matching.
    """
    report = MatchReport(split)
    out: list[list[tuple[int, int]]] = [[] for _ in labels]
    groups: dict[tuple[int, int], list[tuple[int, str]]] = {}
    for n, lb in enumerate(labels):
        stem = image_stem(lb["im_file"])
        if stem in pair_file.boxes:
            report.images += 1
            report.pairs += len(pair_file.boxes[stem])
            groups.setdefault((2 * len(pair_file.boxes[stem]), len(lb["cls"])), []).append((n, stem))
        elif stem in pair_file.rows:
            report.images += 1
            report.pairs += len(pair_file.rows[stem])
            cls = lb["cls"].reshape(-1)
            for i, (ra, rb) in enumerate(pair_file.rows[stem]):
                if max(ra, rb) >= len(cls):
                    report.skip(f"{stem} pair {i}: row {max(ra, rb)} but the image has {len(cls)} labels")
                elif cls[ra] != cls[rb]:
                    report.skip(f"{stem} pair {i}: rows {ra} and {rb} have different classes")
                else:
                    out[n].append((ra, rb))
    for (members, rows), images in groups.items():
        if members:
            _match_group(pair_file, labels, images, members, rows, match_iou, report, out)
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


def image_stem(im_file: str) -> str:
    """The basename without extension, the pair file's key (``os.path``: ``Path`` is slow for 100k names)."""
    return os.path.splitext(os.path.basename(im_file))[0]


def _match_group(pair_file: PairFile, labels: Sequence[dict[str, Any]], images: list[tuple[int, str]], m: int, r: int,
                 match_iou: float, report: MatchReport, out: list[list[tuple[int, int]]]) -> None:
    """Match ``images`` that all have ``m`` members and ``r`` label rows: each member takes its best row."""
    members = np.asarray([[b for pair in pair_file.boxes[stem] for b in pair] for _, stem in images], np.float64
                         ).reshape(len(images), m, 5)
    gts = np.stack([np.concatenate([labels[n]["cls"].reshape(-1, 1), labels[n]["bboxes"].reshape(-1, 4)], 1)
                    for n, _ in images]).astype(np.float64).reshape(len(images), r, 5)
    iou = _batched_iou(members[..., 1:], gts[..., 1:])
    iou = np.where(members[..., :1] == gts[:, None, :, 0], iou, -1.0)  # (k, m, r), -1: another class
    best = iou.argmax(-1) if r else np.zeros(members.shape[:2], dtype=np.int64)
    best_iou = np.take_along_axis(iou, best[..., None], -1)[..., 0] if r else np.full(members.shape[:2], -1.0)
    ok = best_iou >= match_iou
    wanted = np.sort(np.where(ok, best, -1 - np.arange(m)), -1)  # members without a row never collide
    conflict = (wanted[:, 1:] == wanted[:, :-1]).any(-1).tolist()
    all_ok, best, ok, best_iou = ok.all(-1).tolist(), best.tolist(), ok.tolist(), best_iou.tolist()
    for j, (n, stem) in enumerate(images):
        if conflict[j]:
            out[n] = match_image(stem, pair_file.boxes[stem], gts[j, :, 0], gts[j, :, 1:], match_iou, report)
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


class PairCarrier:
    """Set on one dataset instance: tags paired instances when an image is loaded, decodes them at collate time.

    It replaces the instance's ``get_image_and_label`` and ``collate_fn`` attributes (the class is untouched) and is
    picklable, so dataloader workers, forked or spawned, carry it along.
    """

    def __init__(self, dataset: Any, rows: list[list[tuple[int, int]]], nc: int) -> None:
        self.get = dataset.get_image_and_label
        self.collate = dataset.collate_fn
        self.nc = nc
        self.max_pairs = max((len(r) for r in rows), default=0)
        if nc * (DRAWS * 2 * self.max_pairs + 1) >= FLOAT32_EXACT:
            raise PairsError(f"{self.max_pairs} pairs in one image with {nc} classes exceed the float32 carrier")
        self.tags: list[np.ndarray | None] = []
        for lb, image_rows in zip(dataset.labels, rows):
            if not image_rows:
                self.tags.append(None)
                continue
            tag = np.zeros(len(lb["cls"]), dtype=np.float32)
            for i, (ra, rb) in enumerate(image_rows):
                tag[ra], tag[rb] = 2 * i + 1, 2 * i + 2
            self.tags.append(tag)
        self.draws = 0

    def attach(self, dataset: Any) -> None:
        dataset.get_image_and_label = self.get_image_and_label
        dataset.collate_fn = self.collate_fn

    @staticmethod
    def attached(dataset: Any) -> bool:
        return isinstance(getattr(getattr(dataset, "collate_fn", None), "__self__", None), PairCarrier)

    @staticmethod
    def detach(dataset: Any) -> None:
        """Give a dataset its class's own ``get_image_and_label`` and ``collate_fn`` back."""
        for name in ("get_image_and_label", "collate_fn"):
            if isinstance(getattr(getattr(dataset, name, None), "__self__", None), PairCarrier):
                delattr(dataset, name)

    def get_image_and_label(self, index: int) -> dict[str, Any]:
        label = self.get(index)
        tag = self.tags[index]
        if tag is not None and len(label["cls"]) == len(tag):
            self.draws = (self.draws + 1) % DRAWS
            offset = np.where(tag > 0, tag + self.draws * 2 * self.max_pairs, 0).astype(np.float32)
            label["cls"] = label["cls"] + self.nc * offset.reshape(-1, 1)
        return label

    def collate_fn(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collate(samples)
        cls = batch["cls"]
        tag = torch.div(cls, self.nc, rounding_mode="floor")
        batch["cls"] = cls - self.nc * tag
        batch[PAIRS_KEY] = pairs_from_tags(tag.view(-1).long(), batch["batch_idx"].long())
        return batch


def pairs_from_tags(tag: torch.Tensor, batch_idx: torch.Tensor) -> torch.Tensor:
    """``(P, 3)`` rows ``(image, gt_a, gt_b)`` from per-instance tags (0 = unpaired; odd = member a, +1 = its b).

    GT indices count instances per image in batch order, which is the order the assigner sees them in. A pair is
    returned only when its image holds exactly one instance of each member. Runs in the data loader, on the CPU.
    """
    sel = torch.nonzero(tag > 0).view(-1)
    if sel.numel() == 0:
        return torch.zeros(0, 3, dtype=torch.long)
    gt = torch.arange(tag.numel()) - torch.searchsorted(batch_idx, batch_idx)  # collate sorts batch_idx
    stride = 2 * (int(tag.max()) // 2 + 1)  # even, so a code keeps its tag's parity
    code = batch_idx[sel] * stride + tag[sel]
    uniq, inverse, counts = torch.unique(code, return_inverse=True, return_counts=True)
    gt_of = torch.empty_like(uniq)
    gt_of[inverse] = gt[sel]
    a = torch.nonzero((uniq % 2 == 1) & (counts == 1)).view(-1)
    b = torch.searchsorted(uniq, uniq[a] + 1).clamp(max=len(uniq) - 1)
    ok = (uniq[b] == uniq[a] + 1) & (counts[b] == 1)
    a, b = a[ok], b[ok]
    return torch.stack([uniq[a] // stride, gt_of[a], gt_of[b]], 1)


def log(message: str) -> None:
    from ultralytics.utils import LOGGER

    LOGGER.info(f"pairhook: {message}")


def resolve_pairs_path(explicit: str | None, data: dict[str, Any] | None) -> Path | None:
    """The pair file to use: ``install(pairs=...)`` first, else the data YAML's ``pairs:`` (relative to ``path``)."""
    if explicit:
        return Path(explicit)
    if data and data.get("pairs"):
        p = Path(data["pairs"])
        return p if p.is_absolute() else Path(data.get("path", ".")) / p
    return None
