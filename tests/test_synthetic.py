"""Tests for `pairhook.synthetic`: files, labels, pairs and ground truth agree, and Ultralytics accepts the data."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pairhook.synthetic import SyntheticDataset, make_dataset

SIZE = (96, 128)
SHIFT = 0.4


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return make_dataset(tmp_path_factory.mktemp("synth"), n_train=32, n_val=8, size=SIZE, shift=SHIFT, seed=0)


def read_labels(ds: SyntheticDataset) -> dict[str, list[list[float]]]:
    """basename -> rows ``[cls, x, y, w, h]`` (cls as int), for both splits."""
    out = {}
    for f in sorted((ds.root / "labels").glob("*/*.txt")):
        out[f.stem] = [[int(r[0]), *map(float, r[1:])] for r in (line.split() for line in f.read_text().splitlines())]
    return out


def pair_like(a: list[float], b: list[float], shift: float, tol: float = 1e-3) -> bool:
    return a[0] == b[0] and a[1] == b[1] and a[3:] == b[3:] and abs(abs(b[2] - a[2]) - shift) < tol


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_per_seed(tmp_path: Path) -> None:
    kw = dict(n_train=6, n_val=2)
    a, b, c = (make_dataset(tmp_path / name, seed=s, **kw) for name, s in (("a", 7), ("b", 7), ("c", 8)))
    fa, fb, fc = tree_bytes(a.root), tree_bytes(b.root), tree_bytes(c.root)
    assert fa.keys() == fb.keys() == fc.keys()
    differing = {k for k in fa if fa[k] != fb[k]}
    assert differing == {"data.yaml"}  # only the absolute path differs
    assert yaml.safe_load(fa["data.yaml"]) | {"path": ""} == yaml.safe_load(fb["data.yaml"]) | {"path": ""}
    assert a.truth == b.truth
    assert all(fa[k] != fc[k] for k in fa if k.endswith((".png", ".txt")) or k == "pairs.json")


def test_regenerating_replaces_old_output(tmp_path: Path) -> None:
    make_dataset(tmp_path, n_train=5, n_val=2)
    (tmp_path / "labels" / "train.cache").write_text("stale")
    ds = make_dataset(tmp_path, n_train=3, n_val=2)
    assert sorted(p.stem for p in (tmp_path / "images" / "train").iterdir()) == ["train_0000", "train_0001",
                                                                                 "train_0002"]
    assert not (tmp_path / "labels" / "train.cache").exists()
    assert len(ds.truth) == 5


def test_pairs_json_matches_labels_and_truth(ds: SyntheticDataset) -> None:
    labels = read_labels(ds)
    pairs = json.loads(ds.pairs_json.read_text())
    assert ds.truth.keys() == labels.keys()
    assert pairs.keys() == {k for k, v in ds.truth.items() if v}
    assert any(k.startswith("train_") for k in pairs) and any(k.startswith("val_") for k in pairs)
    n_pairs = 0
    for name, plist in pairs.items():
        rows = labels[name]
        assert len(plist) == len(ds.truth[name])
        for (a, b), (ia, ib) in zip(plist, ds.truth[name]):
            assert isinstance(a[0], int) and isinstance(b[0], int)
            assert rows[ia] == a and rows[ib] == b  # truth indices point at exactly these label rows
            assert a[0] == b[0] and a[1] == b[1] and a[3:] == b[3:]  # same class, x centre, size
            assert b[2] - a[2] == pytest.approx(SHIFT, abs=1e-4)  # a is the upper member, b the lower
            n_pairs += 1
        members = [i for p in ds.truth[name] for i in p]
        assert len(set(members)) == len(members)
    assert 40 <= n_pairs <= 80  # (1, 2) pairs per image over 40 images


def test_label_format(ds: SyntheticDataset) -> None:
    for f in (ds.root / "labels").glob("*/*.txt"):
        for line in f.read_text().splitlines():
            c, *xywh = line.split(" ")
            assert c.isdigit() and int(c) < len(ds.names)
            assert all(len(v.split(".")[1]) == 6 for v in xywh)


def test_distractors_confuse_but_are_not_pairs(ds: SyntheticDataset) -> None:
    confusing = 0
    for name, rows in read_labels(ds).items():
        paired = {i for p in ds.truth[name] for i in p}
        singles = [i for i in range(len(rows)) if i not in paired]
        assert 1 <= len(singles) <= 2
        for i in singles:
            # no other box forms a pair with a distractor
            assert not any(pair_like(rows[i], rows[j], SHIFT, tol=0.03) for j in range(len(rows)) if j != i)
            r = rows[i]
            confusing += any(r[0] == rows[a][0] and r[1] == rows[a][1] and r[3:] == rows[a][3:]
                             for a, _ in ds.truth[name])
        # nor do two boxes that belong to different pairs
        for ia, ib in ds.truth[name]:
            others = [j for j in range(len(rows)) if j not in (ia, ib)]
            assert not any(pair_like(rows[k], rows[j], SHIFT, tol=0.03) for k in (ia, ib) for j in others)
    assert confusing >= 20  # the first distractor of every image with a pair sits in that pair's column


def test_boxes_inside_and_disjoint(ds: SyntheticDataset) -> None:
    for name, rows in read_labels(ds).items():
        xyxy = np.array([[x - w / 2, y - h / 2, x + w / 2, y + h / 2] for _, x, y, w, h in rows])
        assert (xyxy >= 0).all() and (xyxy <= 1).all(), name
        wh = xyxy[:, 2:] - xyxy[:, :2]
        assert ((wh >= 0.05) & (wh <= 0.21)).all(), name
        lt = np.maximum(xyxy[:, None, :2], xyxy[None, :, :2])
        rb = np.minimum(xyxy[:, None, 2:], xyxy[None, :, 2:])
        inter = np.clip(rb - lt, 0, None).prod(-1)
        np.fill_diagonal(inter, 0)
        assert (inter == 0).all(), name


def test_data_yaml_and_images(ds: SyntheticDataset) -> None:
    data = yaml.safe_load(ds.data_yaml.read_text())
    assert Path(data["path"]).is_absolute() and Path(data["path"]) == ds.root
    assert data["names"] == ds.names == {0: "scratch", 1: "dent", 2: "stain"}
    for split, n in (("train", 32), ("val", 8)):
        assert data[split] == f"images/{split}"
        images = sorted((ds.root / data[split]).glob("*.png"))
        assert len(images) == n == len(list((ds.root / "labels" / split).glob("*.txt")))
        for p in images:
            im = cv2.imread(str(p))
            assert im.shape == (*SIZE, 3) and im.dtype == np.uint8


def test_many_classes_get_generic_names_and_distinct_looks(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path, n_train=4, n_val=1, nc=5, size=(80, 80))
    assert ds.names == {0: "scratch", 1: "dent", 2: "stain", 3: "defect3", 4: "defect4"}
    assert yaml.safe_load(ds.data_yaml.read_text())["names"] == ds.names
    assert {r[0] for rows in read_labels(ds).values() for r in rows} <= set(range(5))
    assert cv2.imread(str(ds.root / "images" / "val" / "val_0000.png")).shape == (80, 80, 3)


def test_defects_are_drawn_where_labelled(ds: SyntheticDataset) -> None:
    """Inside a box the image departs from its surroundings far more than background does; copies look alike."""
    h, w = SIZE
    for name, rows in list(read_labels(ds).items())[:10]:
        split = name.split("_")[0]
        im = cv2.imread(str(ds.root / "images" / split / f"{name}.png")).astype(np.float32)
        smooth = cv2.blur(im, (31, 31))
        for c, x, y, bw, bh in rows:
            x0, y0, x1, y1 = round((x - bw / 2) * w), round((y - bh / 2) * h), round((x + bw / 2) * w), round(
                (y + bh / 2) * h)
            inside = np.abs(im[y0:y1, x0:x1] - smooth[y0:y1, x0:x1]).max(-1)
            assert np.percentile(inside, 90) > 25, (name, c)


def test_hard_band_only_degrades_lower_half(tmp_path: Path) -> None:
    hard = make_dataset(tmp_path / "hard", n_train=8, n_val=1, hard_band=True)
    easy = make_dataset(tmp_path / "easy", n_train=8, n_val=1, hard_band=False)
    half = SIZE[0] // 2
    contrast = {"hard": 0.0, "easy": 0.0}
    for i in range(8):
        ims = {k: cv2.imread(str(d.root / "images" / "train" / f"train_{i:04d}.png")).astype(np.float32)
               for k, d in (("hard", hard), ("easy", easy))}
        assert np.array_equal(ims["hard"][:half], ims["easy"][:half])
        for k, im in ims.items():
            contrast[k] += cv2.GaussianBlur(im[half:], (7, 7), 0).std()
    assert contrast["hard"] < 0.8 * contrast["easy"]
    assert hard.truth == easy.truth and read_labels(hard) == read_labels(easy)


def test_lower_member_of_a_pair_has_less_contrast(ds: SyntheticDataset) -> None:
    """The positional bias users see: the same defect is fainter in the lower view (defaults, ``hard_band=True``)."""
    h, w = SIZE
    labels = read_labels(ds)
    spread = {"upper": [], "lower": []}
    for name, idx in ds.truth.items():
        im = cv2.GaussianBlur(cv2.imread(str(ds.root / "images" / name.split("_")[0] / f"{name}.png")), (3, 3), 0)
        for member, row in (m for a, b in idx for m in (("upper", a), ("lower", b))):
            _, x, y, bw, bh = labels[name][row]
            crop = im[round((y - bh / 2) * h):round((y + bh / 2) * h), round((x - bw / 2) * w):round((x + bw / 2) * w)]
            spread[member].append(float(crop.astype(np.float32).std(axis=(0, 1)).mean()))
    assert len(spread["lower"]) > 20
    assert np.mean(spread["lower"]) < 0.8 * np.mean(spread["upper"])


def test_invalid_arguments(tmp_path: Path) -> None:
    root = tmp_path / "unused"
    with pytest.raises(ValueError, match="shift"):
        make_dataset(root, shift=0.95)  # lower copy would leave the image
    with pytest.raises(ValueError, match="shift"):
        make_dataset(root, shift=0.05)  # copies would overlap
    with pytest.raises(ValueError):
        make_dataset(root, pairs_per_image=(2, 1))
    assert not root.exists()  # validated before anything is written


def test_ultralytics_accepts_dataset(ds: SyntheticDataset, monkeypatch: pytest.MonkeyPatch) -> None:
    """``check_det_dataset`` parses data.yaml and finds the splits, with the network blocked.

    The env vars matter only if this test is the first to import Ultralytics (tests/conftest.py normally is).
    """
    monkeypatch.setenv("YOLO_OFFLINE", "True")
    monkeypatch.setenv("YOLO_AUTOINSTALL", "False")

    attempts = []

    def no_network(*args, **kwargs):  # record: Ultralytics swallows some network errors
        attempts.append(args)
        raise OSError("network blocked in tests")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    import ultralytics.data.utils as du

    # check_det_dataset ends with check_font(), which HEADs a URL when Arial.ttf is not cached: not our concern here
    monkeypatch.setattr(du, "check_font", lambda *a, **k: None)
    data = du.check_det_dataset(str(ds.data_yaml))
    assert data["nc"] == 3 and data["names"] == ds.names
    assert os.path.samefile(data["train"], ds.root / "images" / "train")
    assert os.path.samefile(data["val"], ds.root / "images" / "val")
    assert not attempts
