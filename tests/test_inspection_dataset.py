"""The ``inspection`` preset of `pairhook.synthetic`: two stacked views, the lower one harder; classes told apart only
by an inner mark; unpaired distractors; a held-out test split that data.yaml and pairs.json cover."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pairhook.synthetic import SyntheticDataset, make_dataset
from pairhook.synthetic.inspection import colour, draw
from pairhook.synthetic.layout import Box

SIZE = (96, 128)
SHIFT = 0.5
KW = dict(preset="inspection", n_train=24, n_val=4, n_test=6, size=SIZE, shift=SHIFT, pairs_per_image=(2, 3))


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return make_dataset(tmp_path_factory.mktemp("inspection"), seed=0, **KW)


def labels(ds: SyntheticDataset) -> dict[str, list[list[float]]]:
    """basename -> rows ``[cls, x, y, w, h]``, every split."""
    return {f.stem: [[int(r[0]), *map(float, r[1:])] for r in (line.split() for line in f.read_text().splitlines())]
            for f in sorted((ds.root / "labels").glob("*/*.txt"))}


def image(ds: SyntheticDataset, name: str) -> np.ndarray:
    return cv2.imread(str(ds.root / "images" / name.split("_")[0] / f"{name}.png")).astype(np.float32)


def crop(im: np.ndarray, row: list[float]) -> np.ndarray:
    h, w = im.shape[:2]
    _, x, y, bw, bh = row
    return im[round((y - bh / 2) * h):round((y + bh / 2) * h), round((x - bw / 2) * w):round((x + bw / 2) * w)]


def test_test_split_is_written_listed_and_paired(ds: SyntheticDataset) -> None:
    data = yaml.safe_load(ds.data_yaml.read_text())
    assert (data["train"], data["val"], data["test"]) == ("images/train", "images/val", "images/test")
    assert len(list((ds.root / "images" / "test").glob("*.png"))) == 6 == len(list((ds.root / "labels" / "test").glob(
        "*.txt")))
    rows, pairs = labels(ds), json.loads(ds.pairs_json.read_text())
    test_pairs = {k: v for k, v in pairs.items() if k.startswith("test_")}
    assert len(test_pairs) == 6  # every test image has 2-3 pairs
    for name, plist in test_pairs.items():
        assert [[rows[name][a], rows[name][b]] for a, b in ds.truth[name]] == plist
    assert ds.preset == "inspection"


def test_evaluate_reads_the_test_split(ds: SyntheticDataset, tmp_path: Path) -> None:
    """The held-out split is usable as is: pairhook.evaluate(split="test") finds every pair of it."""
    from ultralytics import YOLO

    import pairhook

    result = pairhook.evaluate(YOLO("yolov8n.yaml"), ds.data_yaml, ds.pairs_json, split="test", imgsz=64, batch=4,
                               plots=False, project=str(tmp_path), name="val", verbose=False)
    assert result["pairs/n"] == sum(len(v) for k, v in ds.truth.items() if k.startswith("test_"))


def test_pairs_span_the_two_views_and_distractors_are_in_both(ds: SyntheticDataset) -> None:
    singles_upper = singles_lower = 0
    for name, rows in labels(ds).items():
        paired = {i for p in ds.truth[name] for i in p}
        for a, b in ds.truth[name]:
            assert rows[a][2] + rows[a][4] / 2 < SHIFT < rows[b][2] - rows[b][4] / 2  # upper view / lower view
            assert rows[a][0] == rows[b][0] and rows[b][2] - rows[a][2] == pytest.approx(SHIFT, abs=1e-4)
        for i in set(range(len(rows))) - paired:
            singles_upper += rows[i][2] < SHIFT
            singles_lower += rows[i][2] >= SHIFT
    assert singles_upper >= 5 and singles_lower >= 5  # unpaired defects in both views


def test_lower_view_is_harder_and_nothing_else_changes(ds: SyntheticDataset, tmp_path: Path) -> None:
    """Blur, less contrast, more noise and a darker, streaked background below ``shift``; the upper view, the layout
    and the labels do not depend on ``hard_band``."""
    easy = make_dataset(tmp_path, seed=0, hard_band=False, **KW)
    assert labels(easy) == labels(ds) and easy.truth == ds.truth
    b = round(SHIFT * SIZE[0])
    contrast = {"hard": [], "easy": []}
    sharp = {"hard": [], "easy": []}
    darker = []
    for name in [n for n in ds.truth if n.startswith("train_")]:
        ims = {"hard": image(ds, name), "easy": image(easy, name)}
        assert np.array_equal(ims["hard"][:b], ims["easy"][:b])
        darker.append(ims["hard"][:b].mean() - ims["hard"][b:].mean())
        for kind, im in ims.items():
            grey = cv2.cvtColor(im, cv2.COLOR_BGR2GRAY)
            for a, lo in ds.truth[name]:  # lower member relative to the upper member of the same defect
                upper, lower = crop(grey, labels(ds)[name][a]), crop(grey, labels(ds)[name][lo])
                contrast[kind].append(cv2.GaussianBlur(lower, (3, 3), 0).std() / cv2.GaussianBlur(upper, (3, 3),
                                                                                                  0).std())
                sharp[kind].append(cv2.Laplacian(cv2.GaussianBlur(lower, (3, 3), 0), cv2.CV_32F).var()
                                   / cv2.Laplacian(cv2.GaussianBlur(upper, (3, 3), 0), cv2.CV_32F).var())
    assert np.median(contrast["hard"]) < 0.4 < 0.8 < np.median(contrast["easy"]) < 1.25  # about 0.18 and 0.97
    assert np.median(sharp["hard"]) < 0.25 * np.median(sharp["easy"])  # about 0.05 and 0.97
    assert np.mean(darker) > 25


def test_classes_share_the_ring_and_colour_and_differ_by_the_inner_mark() -> None:
    assert colour(np.random.default_rng(1), 0) == colour(np.random.default_rng(1), 2)  # colour never tells the class
    box = dict(x0=10.0, y0=8.0, w=20.0, h=14.0, flip=False, colour=(40, 40, 40))
    canvases = []
    for cls in range(3):
        canvas = np.full((32, 48), 200, np.uint8)
        draw(canvas, Box(cls, **box))
        canvases.append(canvas.astype(int))
    inside = np.zeros((32, 48), np.uint8)
    cv2.ellipse(inside, (20, 15), (6, 3), 0, 0, 360, 1, -1)  # well inside the ring's free interior
    outside = ~cv2.dilate(inside, np.ones((5, 5), np.uint8)).astype(bool)
    for other in canvases[1:]:
        diff = np.abs(other - canvases[0])
        assert diff[outside].max() == 0  # same ring, same place: only the inside differs
        assert diff.sum() > 0 and (diff > 50).sum() < 0.15 * box["w"] * box["h"]  # a small mark
    assert not np.array_equal(canvases[1], canvases[2])


def test_deterministic_and_basic_is_unchanged_by_a_test_split(tmp_path: Path) -> None:
    a, b = (make_dataset(tmp_path / n, seed=3, **{**KW, "n_train": 3}) for n in ("a", "b"))
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*.png"))
    assert files and all((a.root / f).read_bytes() == (b.root / f).read_bytes() for f in files)
    plain = make_dataset(tmp_path / "plain", n_train=3, n_val=2, seed=3)
    tested = make_dataset(tmp_path / "tested", n_train=3, n_val=2, n_test=2, seed=3)
    for f in sorted(p.relative_to(plain.root) for p in plain.root.rglob("*") if p.suffix in (".png", ".txt")):
        assert (plain.root / f).read_bytes() == (tested.root / f).read_bytes()
    assert not (plain.root / "images" / "test").exists() and "test" not in yaml.safe_load(plain.data_yaml.read_text())
    again = make_dataset(tmp_path / "tested", n_train=3, n_val=2, n_test=0, seed=3)  # regenerate without test
    assert not list((again.root / "images" / "test").glob("*.png"))
    assert not any(k.startswith("test_") for k in json.loads(again.pairs_json.read_text()))


def test_unknown_preset(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown preset 'shiny'; expected one of basic, inspection"):
        make_dataset(tmp_path / "unused", preset="shiny")
    with pytest.raises(ValueError, match="n_test"):
        make_dataset(tmp_path / "unused", n_test=-1)
    assert not (tmp_path / "unused").exists()
