"""The carrier: a per-instance tag that survives Ultralytics' augmentation, decoded into pair rows per batch.

The carrier is the ``(N, 1)`` float ``cls`` array, the one per-instance field every transform keeps aligned with
its box (mosaic, random perspective, flips, mixup, copy-paste; docs/augmentation.md). When a paired image is loaded, its
paired rows get ``cls + nc * tag``; the collate step splits ``cls`` back into the original class and the tag, and
turns tags into ``(image, gt_a, gt_b)`` rows. Ultralytics' loss, metrics and plots only ever see original classes.

A tag names the load (``draw``, so two copies of one image in a mosaic differ), the pair within its image and the
member. A pair is kept for a batch image only if exactly one member a and one member b with its tag are there, so a
pair cropped away or duplicated by augmentation is dropped, never paired with a wrong box.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pairhook import compat
from pairhook.pairs.file import PairsError

#: Batch key of the ``(P, 3)`` long pair rows added by :class:`PairCarrier`.
PAIRS_KEY = "pairhook_pairs"
DRAWS = 64  # distinct load ids in flight within one sample (mosaic9 + mixup draw far fewer)
FLOAT32_EXACT = 2**24


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
        compat.replace("dataset", dataset, "get_image_and_label", self.get_image_and_label)
        compat.replace("dataset", dataset, "collate_fn", self.collate_fn)

    @staticmethod
    def attached(dataset: Any) -> bool:
        return isinstance(getattr(getattr(dataset, "collate_fn", None), "__self__", None), PairCarrier)

    @staticmethod
    def detach(dataset: Any) -> None:
        """Give a dataset its class's own ``get_image_and_label`` and ``collate_fn`` back."""
        for name in ("get_image_and_label", "collate_fn"):
            if isinstance(getattr(getattr(dataset, name, None), "__self__", None), PairCarrier):
                compat.restore("dataset", dataset, name)

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
