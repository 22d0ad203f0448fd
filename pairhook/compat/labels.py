"""Label rows as Ultralytics keeps them: which dataset row each row of a label file became.

Ultralytics normalises a label file before training (``verify_image_label``, ``update_labels``): rows are the
non-blank lines parsed to float32; polygon rows (segment, OBB files) become the polygon's box; exact duplicates are
removed, and only then are the surviving rows sorted (by value, or on 8.4.190 for polygon files by class and polygon
bytes); ``classes=`` keeps the matching rows in order; ``single_cls`` sets every class to 0. Pose files read for
another task are cut to their box on 8.4.190. :func:`label_row_map` reproduces each variant and accepts one only if
it gives exactly the dataset's rows, so a release that normalises differently cannot make it return a wrong row.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

DROPPED = -1


def label_file_of(label: dict[str, Any]) -> str:
    """The label file of one ``dataset.labels[i]`` (``dataset.label_files`` can be misaligned with ``labels``)."""
    from ultralytics.data.utils import img2label_paths

    return img2label_paths([os.fspath(label["im_file"])])[0]


def read_label_rows(label_file: str | Path, pose: bool = False, cut: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(rows, polygons)`` of a label file before duplicate removal: float32 ``(N, 5+)`` rows ``cls x y w h``
    (boxes of polygons for segment/OBB files), and the polygons (``[]`` for box files). Rows of exactly ``cut``
    columns are cut to their box first. ``ValueError`` where Ultralytics would find the file corrupt."""
    from ultralytics.utils.ops import segments2boxes

    p = Path(label_file)
    lines = p.read_text(encoding="utf-8-sig").strip().splitlines() if p.is_file() else []
    rows = [x.split() for x in lines if x.strip()]
    if cut:
        rows = [r[:5] if len(r) == cut else r for r in rows]
    if any(len(r) > 6 for r in rows) and not pose:
        polygons = [np.array(r[1:], dtype=np.float32).reshape(-1, 2) for r in rows]
        cls = np.array([r[0] for r in rows], dtype=np.float32).reshape(-1, 1)
        return np.concatenate((cls, segments2boxes(polygons)), 1), polygons
    return np.array(rows, dtype=np.float32).reshape(len(rows), -1) if rows else np.zeros((0, 5), np.float32), []


def _survivors(rows: np.ndarray, polygons: list[np.ndarray], by_polygon: bool) -> np.ndarray:
    """Label-file rows that survive duplicate removal, in the dataset's order."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    _, keep = np.unique(rows, axis=0, return_index=True)
    if by_polygon and polygons and len(keep) < len(rows):
        _, keep = np.unique(np.array([c.tobytes() + s.tobytes() for c, s in zip(rows[:, 0], polygons)], dtype=object),
                            return_index=True)
    return keep if len(keep) < len(rows) else np.arange(len(rows))


def label_row_map(label: dict[str, Any], single_cls: bool = False, classes: Optional[Sequence[int]] = None,
                  pose: bool = False, kpt_shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """For each row of the image's label file as written, its index in ``label["cls"]``/``label["bboxes"]``, or
    :data:`DROPPED` where Ultralytics dropped it (a ``classes=`` filter, an unreadable file). A duplicate row maps
    to its surviving copy: the same box.

    Every index returned is verified: that dataset row has the file row's box and class (0 with ``single_cls``).
    Where no variant of the normalisation reproduces the dataset's rows, only rows whose class and box are unique on
    both sides are mapped.
    """
    cls = np.asarray(label["cls"], dtype=np.float32).reshape(-1)
    boxes = np.asarray(label["bboxes"], dtype=np.float32).reshape(-1, 4)
    cuts = (0, 5 + int(np.prod(kpt_shape))) if kpt_shape and not pose else (0,)
    parsed = []
    for cut in cuts:
        try:
            parsed.append(read_label_rows(label_file_of(label), pose, cut))
        except ValueError:
            continue
    for rows, polygons in parsed:
        for by_polygon in (False, True) if polygons else (False,):
            kept = _survivors(rows, polygons, by_polygon)
            if classes is not None:
                kept = kept[np.isin(rows[kept, 0], np.asarray(classes, dtype=np.float32))]
            want = np.zeros(len(kept), np.float32) if single_cls else rows[kept, 0]
            if len(kept) == len(cls) and np.array_equal(want, cls) and np.array_equal(rows[kept, 1:5], boxes):
                out = np.full(len(rows), DROPPED, dtype=np.int64)
                out[kept] = np.arange(len(kept))
                _to_survivors(out, rows)
                return out
    if not parsed:
        return np.zeros(0, dtype=np.int64)
    return _unique_matches(parsed[0][0], cls, boxes, single_cls)


def _to_survivors(out: np.ndarray, rows: np.ndarray) -> None:
    """Point each removed duplicate at the dataset row of an identical surviving row."""
    for r in np.nonzero(out == DROPPED)[0]:
        twin = np.nonzero((rows[:, :5] == rows[r, :5]).all(1) & (out >= 0))[0]
        if len(twin):
            out[r] = out[twin[0]]


def _unique_matches(rows: np.ndarray, cls: np.ndarray, boxes: np.ndarray, single_cls: bool) -> np.ndarray:
    """File row -> dataset row where the class and box are unique in the file and in the dataset."""
    out = np.full(len(rows), DROPPED, dtype=np.int64)
    file_cls = np.zeros(len(rows), np.float32) if single_cls else rows[:, 0]
    same = (rows[:, None, 1:5] == boxes[None]).all(-1) & (file_cls[:, None] == cls[None])
    twins = (rows[:, None, :5] == rows[None, :, :5]).all(-1).sum(1) > 1
    for r in np.nonzero((same.sum(1) == 1) & ~twins)[0]:
        d = int(same[r].argmax())
        if same[:, d].sum() == 1:
            out[r] = d
    return out


def collapses_classes(dataset: Any) -> bool:
    """True where Ultralytics set every class of ``dataset`` to 0 (``single_cls``)."""
    return bool(getattr(dataset, "single_cls", False))


def row_mapper(dataset: Any, classes: Optional[Sequence[int]]) -> Callable[[dict[str, Any]], np.ndarray]:
    """:func:`label_row_map` with ``dataset``'s settings; ``classes`` is the ``classes=`` argument of the run (the
    dataset does not keep it)."""
    data = getattr(dataset, "data", None) or {}
    return functools.partial(label_row_map, single_cls=collapses_classes(dataset), classes=classes,
                             pose=bool(getattr(dataset, "use_keypoints", False)), kpt_shape=data.get("kpt_shape"))
