"""Index-form pairs name rows of the label file as written: `compat.label_row_map` against real Ultralytics datasets
whose rows were deduplicated (and so sorted), filtered by `classes=`, collapsed by `single_cls`, or made from
polygons and keypoints. Every mapped row must be the file row's box and class; only filtered rows may be lost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from ultralytics.cfg import get_cfg
from ultralytics.data.build import build_yolo_dataset
from ultralytics.data.utils import check_det_dataset

from pairhook import compat
from pairhook.synthetic import make_dataset


def fmt(values) -> str:
    return " ".join([str(int(values[0]))] + [f"{v:.6f}" for v in values[1:]])


def with_duplicates(rows, rng):
    lines = [fmt(r) for r in rows]
    for _ in range(int(rng.integers(1, 3))):
        lines.insert(int(rng.integers(0, len(lines) + 1)), lines[int(rng.integers(0, len(rows)))])
    return lines


def as_polygons(rows, rng):
    lines = []
    for c, x, y, w, h in rows:
        x0, y0, x1, y1 = x - w / 2, y - h / 2, x + w / 2, y + h / 2
        lines.append(fmt([c, x0, y0, x1, y0, x1, y1, x0, y1]))
        if rng.random() < 0.3:  # another polygon with the same box
            lines.append(fmt([c, x, y0, x1, y, x, y1, x0, y]))
    lines.insert(0, lines[-1])  # an exact duplicate
    return lines


def as_pose(rows, rng):
    lines = [fmt(r) + " " + " ".join(f"{v:.6f}" for v in (r[1], r[2], 2.0, r[1], r[2], 1.0)) for r in rows]
    lines.append(lines[0])
    return lines


def dataset(root: Path, rewrite, task="detect", single_cls=False, classes=None, seed=0, extra=None):
    ds = make_dataset(root, n_train=10, n_val=2, distractors=(1, 3), seed=seed)
    rng = np.random.default_rng(seed)
    for label in sorted((ds.root / "labels").rglob("*.txt")):
        rows = [[float(v) for v in line.split()] for line in label.read_text().splitlines()]
        label.write_text("\n".join(rewrite(rows, rng)) + "\n")
    if extra:
        ds.data_yaml.write_text(yaml.safe_dump({**yaml.safe_load(ds.data_yaml.read_text()), **extra}))
    cfg = get_cfg(overrides={"task": task, "single_cls": single_cls, "classes": classes, "imgsz": 64})
    data = check_det_dataset(str(ds.data_yaml), autodownload=False)
    return build_yolo_dataset(cfg, data["train"], 4, data, mode="train")


def file_rows(path: str, task: str) -> np.ndarray:
    rows, _ = compat.labels.read_label_rows(path, pose=task == "pose")
    return rows


def check(built, task, classes):
    mapper = compat.row_mapper(built, classes)
    lost = moved = 0
    for label in built.labels:
        rows = file_rows(compat.label_file_of(label), task)
        m = mapper(label)
        cls, boxes = label["cls"].reshape(-1), label["bboxes"].reshape(-1, 4)
        assert len(m) == len(rows)
        ok = m >= 0
        assert np.array_equal(boxes[m[ok]], rows[ok, 1:5])  # the file row's box, always
        assert np.array_equal(cls[m[ok]], np.zeros(ok.sum()) if built.single_cls else rows[ok, 0])
        assert set(m[ok].tolist()) == set(range(len(cls)))  # every dataset row is some file row
        assert all(classes is not None and int(rows[r, 0]) not in classes for r in np.nonzero(~ok)[0])
        lost += int((~ok).sum())
        moved += int(not np.array_equal(m[ok], np.arange(ok.sum())))
    return lost, moved


@pytest.mark.parametrize("single_cls, classes", [(False, None), (False, [1, 2]), (True, None), (True, [1, 2])])
def test_duplicated_rows(tmp_path, single_cls, classes):
    built = dataset(tmp_path, with_duplicates, single_cls=single_cls, classes=classes, seed=1)
    lost, moved = check(built, "detect", classes)
    assert moved > 0  # Ultralytics sorted the rows: the map is not the identity
    assert (lost > 0) == (classes is not None)


@pytest.mark.parametrize("task", ["segment", "detect"])
def test_polygon_rows(tmp_path, task):
    check(dataset(tmp_path, as_polygons, task=task, seed=3), task, None)


def test_pose_rows(tmp_path):
    check(dataset(tmp_path, as_pose, task="pose", seed=5, extra={"kpt_shape": [2, 3]}), "pose", None)


def test_a_stale_or_edited_label_file_maps_nothing_wrong(tmp_path):
    built = dataset(tmp_path, with_duplicates, seed=7)
    label = built.labels[0]
    path = Path(compat.label_file_of(label))
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[-1], "0 0.5 0.5 0.1 0.1", *lines[:-1]]) + "\n")  # edited after the cache
    m = compat.label_row_map(label)
    rows = file_rows(str(path), "detect")
    ok = m >= 0
    assert not ok[1] and np.array_equal(label["bboxes"][m[ok]], rows[ok, 1:5])
