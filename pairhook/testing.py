"""Helpers for testing regularizers without a real training run, and with a tiny one.

The pytest plugin :mod:`pairhook.pytest_plugin` hands these out as the fixtures ``pair_context_factory`` and
``tiny_training``; they are importable without pytest too. Ultralytics is imported only inside
:func:`tiny_training`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F

from pairhook.context import PairContext
from pairhook.plugins import registered
from pairhook.results import read_results

TensorLike = Union[torch.Tensor, Sequence[Any]]


def known_pairs(B: int, G: int, P: int) -> torch.Tensor:
    """(P, 3) rows ``(image, gt_a, gt_b)``: pair ``k`` on image ``k % B``, members ``2j, 2j + 1`` (``j = k // B``)."""
    k = torch.arange(P)
    j = k // B
    if P and 2 * int(j.max()) + 1 >= G:
        raise ValueError(f"{P} pairs over {B} images need G >= {2 * ((P + B - 1) // B)} GT slots, got G={G}")
    return torch.stack([k % B, 2 * j, 2 * j + 1], -1)


def make_pair_context(
    B: int = 2,
    A: int = 32,
    C: int = 3,
    G: int = 4,
    pairs: Union[int, TensorLike] = 2,
    *,
    seed: int = 0,
    inactive: int = 0,
    fg: float = 0.5,
    logits: Optional[TensorLike] = None,
    assign: Optional[TensorLike] = None,
    labels: Optional[TensorLike] = None,
    scores: Optional[TensorLike] = None,
    dtype: torch.dtype = torch.float32,
    device: Union[str, torch.device] = "cpu",
    **fields: Any,
) -> PairContext:
    """A self-consistent :class:`PairContext`, as the assigner would have produced it, from a seed.

    Shapes: ``B`` images, ``A`` anchors, ``C`` classes, ``G`` GT slots per image. ``pairs`` is a count ``P`` of known
    pairs (see :func:`known_pairs`; both members share a class) or explicit ``(P, 3)`` rows. Every GT owns at least
    one anchor (anchor ``g`` of each image serves GT ``g``; others are foreground with probability ``fg``, then
    assigned to a random GT), except that the last ``inactive`` pairs' member b owns none, so exactly
    ``P - inactive`` pairs are active. ``target_scores`` is the one-hot GT class times a random alignment in
    (0, 1] on foreground anchors; ``target_bboxes`` is the assigned GT's box.

    Any of ``logits`` (B, A, C), ``assign`` (B, A) GT index or -1 for background, ``labels`` (B, G) and ``scores``
    (B, A) may be given instead; shapes are then taken from them. ``logits`` require grad (a leaf tensor passed in is
    used as is, so its ``.grad`` can be read after ``backward()``). Other keyword arguments set
    :class:`PairContext` fields as they are (``training``, ``epoch``, ``batch``...).
    """
    g = torch.Generator().manual_seed(seed)
    if logits is not None:
        logits = torch.as_tensor(logits, dtype=dtype)
        B, A, C = logits.shape
    if assign is not None:
        assign = torch.as_tensor(assign, dtype=torch.long)
        B, A = assign.shape
    if labels is not None:
        labels = torch.as_tensor(labels, dtype=torch.long)
        B, G = labels.shape
    rows = known_pairs(B, G, pairs) if isinstance(pairs, int) else torch.as_tensor(pairs, dtype=torch.long).view(-1, 3)

    if labels is None:
        labels = torch.randint(C, (B, G), generator=g)
        labels[rows[:, 0], rows[:, 2]] = labels[rows[:, 0], rows[:, 1]]  # members are one defect: one class
    if assign is None:
        if A < G:
            raise ValueError(f"need A >= G so that every GT can own an anchor, got A={A}, G={G}")
        assign = torch.randint(G, (B, A), generator=g)
        assign[torch.rand(B, A, generator=g) >= fg] = -1
        assign[:, :G] = torch.arange(G)
        if inactive:
            image, member_b = rows[-inactive:, 0], rows[-inactive:, 2]
            on_image = torch.arange(B).unsqueeze(-1) == image  # (B, inactive)
            lost = ((assign.unsqueeze(-1) == member_b) & on_image.unsqueeze(1)).any(-1)  # (B, A)
            assign[lost] = -1
    if scores is None:
        scores = torch.rand(B, A, generator=g).clamp_min(1e-3)
    scores = torch.as_tensor(scores, dtype=torch.float32)
    if logits is None:
        logits = torch.randn(B, A, C, generator=g) * 2.5
    logits = torch.as_tensor(logits, dtype=dtype, device=device)  # a tensor already so is kept: its .grad is yours
    if logits.is_leaf and not logits.requires_grad:
        logits.requires_grad_()

    fg_mask = assign >= 0
    gt_idx = assign.clamp_min(0)
    xy = torch.rand(B, G, 2, generator=g) * 48
    gt_bboxes = torch.cat([xy, xy + 4 + torch.rand(B, G, 2, generator=g) * 12], -1)
    ctx = PairContext(
        logits=logits,
        target_scores=(F.one_hot(labels.gather(1, gt_idx), C).float() * (scores * fg_mask).unsqueeze(-1)).to(device),
        target_bboxes=(gt_bboxes.gather(1, gt_idx.unsqueeze(-1).expand(B, A, 4)) * fg_mask.unsqueeze(-1)).to(device),
        fg_mask=fg_mask.to(device),
        target_gt_idx=gt_idx.to(device),
        gt_labels=labels.to(device),
        gt_bboxes=gt_bboxes.to(device),
        pairs=rows.to(device),
        anchor_points=torch.stack([torch.arange(A) % 8, torch.arange(A) // 8], -1).float().mul(8).add(4).to(device),
    )
    return dataclasses.replace(ctx, **fields) if fields else ctx


def tiny_training(
    root: Union[str, Path],
    regularizers: Any = "pair_consistency",
    *,
    plugins: Iterable[object] = (),
    epochs: int = 1,
    imgsz: int = 64,
    images: int = 8,
    batch: int = 4,
    model: str = "yolov8n.yaml",
    seed: int = 0,
    **train_args: Any,
) -> list[dict[str, float]]:
    """Train ``model`` from scratch on generated paired-defect data under ``root`` and return its results.csv rows.

    ``regularizers`` is what :func:`pairhook.install` takes; ``plugins`` are registered in-process for the run only.
    Ultralytics is switched offline first when nothing imported it yet. Any other keyword goes to ``model.train``.
    """
    import pairhook
    from pairhook.synthetic import make_dataset

    root = Path(root)
    if "ultralytics" not in sys.modules:
        from pairhook.offline import setup_offline

        setup_offline()  # reuses YOLO_CONFIG_DIR when a conftest set it up already
    from ultralytics import YOLO

    data = make_dataset(root / "data", n_train=images, n_val=max(2, images // 4), seed=seed)
    with contextlib.ExitStack() as stack:
        for plugin in plugins:
            stack.enter_context(registered(plugin))
        yolo = YOLO(model)
        pairhook.install(yolo, pairs=data.pairs_json, regularizers=regularizers)
        args = dict(epochs=epochs, imgsz=imgsz, batch=batch, workers=0, plots=False, verbose=False, seed=seed,
                    exist_ok=True, project=str(root / "runs"), name="tiny")
        yolo.train(data=str(data.data_yaml), **{**args, **train_args})
        return read_results(yolo.trainer.save_dir)
