"""Pairs end to end: pair file parsing and matching, the cls carrier, and pair identity through real training."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from ultralytics import YOLO

import pairhook
from pairhook import compat
from pairhook.criterion import PairhookCriterion
from pairhook.pairs import PairsError, load_pair_file, match_dataset, pairs_from_tags


def write(tmp_path: Path, obj, name="pairs.json") -> Path:
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


A = [0, 0.3, 0.2, 0.1, 0.1]
B = [0, 0.3, 0.6, 0.1, 0.1]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty"),
        ("{not json", "not valid JSON"),
        ([1, 2], "top level must be a JSON object"),
        ({"img": {"a": 1}}, "'img': expected a list of pairs"),
        ({"img": [[A]]}, "'img' pair 0: a pair must have exactly 2 members, got 1"),
        ({"img": [[A, B, A]]}, "exactly 2 members, got 3"),
        ({"img": [[A, [0, 0.3, 0.6, 0.1]]]}, "member b: a member must be"),
        ({"img": [[A, [0, "x", 0.6, 0.1, 0.1]]]}, "must be numbers"),
        ({"img": [[A, [0, 0.3, 0.6, 0.0, 0.1]]]}, "width and height must be > 0"),
        ({"img": [[A, [0, 0.3, 0.6, 0.1, -0.1]]]}, "width and height must be > 0"),
        ('{"img": [[[0, 0.3, 0.2, 0.1, 0.1], [0, 0.3, Infinity, 0.1, 0.1]]]}', "NaN or infinite"),
        ('{"img": [[[0, 0.3, 0.2, 0.1, 0.1], [0, -Infinity, 0.6, 0.1, 0.1]]]}', "NaN or infinite"),
        ({"img": [[A, [0, 0.3, 0.6, 1.2, 0.1]]]}, "normalized"),
        ({"img": [[A, [0.5, 0.3, 0.6, 0.1, 0.1]]]}, "non-negative integer"),
        ({"img": [[A, [True, 0.3, 0.6, 0.1, 0.1]]]}, "must be numbers"),
        ({"img": [[A, A]]}, "'img' pair 0: both members are the same box"),
        ({"img": [A, B]}, r"'img' pair 0: expected a pair \[\[c,x,y,w,h\], \[c,x,y,w,h\]\], got one box"),
        ({"img": [[A, B]], "other": "x"}, "'other': expected a list of pairs"),
        ({"format": "pairhook-index", "pairs": [[0, 1]]}, "must be an object keyed by image name"),
        ({"format": "pairhook-index", "pairs": {"img": [[1, 1]]}}, "same row twice"),
        ({"img": [[A, [0, 1.3, 0.6, 0.1, 0.1]]]}, "normalized"),
        ({"img": [[A, [-1, 0.3, 0.6, 0.1, 0.1]]]}, "non-negative integer"),
        ({"img": [[A, [1, 0.3, 0.6, 0.1, 0.1]]]}, "different classes"),
        ('{"img": [], "img": []}', "appears more than once"),
        ({"format": "pairhook-index", "pairs": {"img": [[0, "1"]]}}, "non-negative integers"),
    ],
)
def test_bad_pair_files_name_file_entry_and_problem(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(PairsError, match=message) as e:
        load_pair_file(path)
    assert str(path) in str(e.value)
    assert isinstance(e.value, ValueError)


def test_out_of_range_class_is_named_once_the_dataset_is_known(tmp_path):
    c3 = [[3, 0.5, 0.2, 0.1, 0.1], [3, 0.5, 0.6, 0.1, 0.1]]
    pf = load_pair_file(write(tmp_path, {"img": [[A, B]], "img2": [[A, B], c3]}))
    pf.check_classes({0: "a", 1: "b", 2: "c", 3: "d"})
    with pytest.raises(PairsError, match=r"pairs.json: 'img2' pair 1: class 3 but the data YAML has 3 classes, 0 to 2 "
                                         r"\(0: a, 1: b, 2: c\)"):
        pf.check_classes({0: "a", 1: "b", 2: "c"})


def test_nan_member_rejected(tmp_path):
    path = write(tmp_path, '{"img": [[[0, NaN, 0.2, 0.1, 0.1], [0, 0.3, 0.6, 0.1, 0.1]]]}')
    with pytest.raises(PairsError, match="NaN or infinite"):
        load_pair_file(path)


def test_bad_pair_file_fails_at_install_before_training(tmp_path):
    path = write(tmp_path, {"img": [[A, [1, 0.3, 0.6, 0.1, 0.1]]]})
    model = YOLO("yolov8n.yaml")
    with pytest.raises(pairhook.PairsError, match="img"):
        pairhook.install(model, pairs=path)
    assert getattr(model, "trainer", None) is None


def labels(stem, rows):
    rows = np.asarray(rows, dtype=np.float32).reshape(-1, 5)
    return {"im_file": f"/x/{stem}.png", "cls": rows[:, :1], "bboxes": rows[:, 1:]}


def test_match_is_by_class_and_iou_one_to_one_not_by_column(tmp_path):
    # row 0: pair member a; row 1: same-class distractor in the same column; row 2: member b; row 3: other class
    lb = labels("img", [[0, 0.3, 0.2, 0.1, 0.1], [0, 0.3, 0.45, 0.1, 0.1], [0, 0.3, 0.6, 0.1, 0.1],
                        [1, 0.3, 0.6, 0.1, 0.1]])
    pf = load_pair_file(write(tmp_path, {"img": [[A, [0, 0.302, 0.601, 0.1, 0.1]]], "absent": [[A, B]]}))
    rows, report = match_dataset(pf, [lb], 0.5, "train")
    assert rows == [[(0, 2)]]
    assert (report.images, report.pairs, report.matched, report.unmatched) == (1, 1, 1, 0)


def test_unmatched_member_is_skipped_with_reason(tmp_path):
    lb = labels("img", [[0, 0.3, 0.2, 0.1, 0.1], [0, 0.8, 0.8, 0.1, 0.1]])
    pf = load_pair_file(write(tmp_path, {"img": [[A, B], [A, [0, 0.8, 0.8, 0.1, 0.1]]]}))
    rows, report = match_dataset(pf, [lb], 0.5, "train")
    assert rows == [[]]  # pair 0: b unmatched; pair 1: a already taken (one-to-one) by pair 0's a
    assert report.unmatched == 2 and "pair 0 member b" in report.reasons[0]


def test_images_without_pairs_or_labels(tmp_path):
    pf = load_pair_file(write(tmp_path, {"none": [], "unlabelled": [[A, B]]}))
    rows, report = match_dataset(pf, [labels("none", [A, B]), labels("unlabelled", [])], 0.5, "train")
    assert rows == [[], []] and (report.images, report.pairs, report.unmatched) == (2, 1, 1)
    assert "no label row of that class" in report.reasons[0]


def test_index_form(tmp_path):
    rows = [[0, 0.3, 0.2, 0.1, 0.1], [0, 0.3, 0.6, 0.1, 0.1], [1, 0.5, 0.5, 0.1, 0.1]]
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "img.txt").write_text("".join(" ".join(map(str, r)) + "\n" for r in rows))
    lb = {**labels("img", rows), "im_file": str(tmp_path / "images" / "img.png")}
    pf = load_pair_file(write(tmp_path, {"format": "pairhook-index", "pairs": {"img": [[0, 1], [1, 2], [0, 9]]}}))
    rows, report = match_dataset(pf, [lb], 0.5, "train")
    assert rows == [[(0, 1)]] and report.unmatched == 2
    assert "have different classes" in report.reasons[0] and "row 9 but its label file has 3 rows" in report.reasons[1]


def test_pairs_from_tags_drops_duplicated_or_lonely_members():
    tag = torch.tensor([0, 1, 2, 3, 0, 2, 1, 1, 1, 2, 4])
    image = torch.tensor([0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 3])
    assert pairs_from_tags(tag, image).tolist() == [[0, 1, 2], [1, 1, 0]]
    assert pairs_from_tags(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)).shape == (0, 3)


def original_pairs(ds):
    """(class, w/h aspect in pixels, dy/h) of every pair in the original labels, by class."""
    import yaml

    out = defaultdict(list)
    root = ds.root
    pairs = json.loads(ds.pairs_json.read_text())
    h0, w0 = 96, 128
    for plist in pairs.values():
        for a, b in plist:
            out[int(a[0])].append(((a[3] * w0) / (a[4] * h0), (b[2] - a[2]) / a[4]))
    assert yaml.safe_load(ds.data_yaml.read_text())["path"] == str(root)
    return out


class PairChecker:
    """A test regularizer: every pair it is handed must be one of the original pairs, geometrically."""

    def __init__(self, ds, nc):
        self.truth = original_pairs(ds)
        self.nc = nc
        self.batches = self.with_pairs = self.intact = self.total = 0
        self.val_pairs = 0

    @pairhook.hookimpl
    def pairhook_register_regularizers(self, register):
        register("check_pairs", self.check)

    def check(self, ctx):
        assert bool((ctx.batch["cls"] < self.nc).all()), "Ultralytics must see original classes"
        assert bool((ctx.gt_labels < self.nc).all())
        p = ctx.pairs.cpu()
        if ctx.training:
            self.batches += 1
            self.with_pairs += int(len(p) > 0)
        else:
            self.val_pairs += len(p)
        for b, ga, gb in p.tolist():
            la, lb_ = int(ctx.gt_labels[b, ga]), int(ctx.gt_labels[b, gb])
            assert la == lb_, "pair members with different classes"
            xa1, ya1, xa2, ya2 = ctx.gt_bboxes[b, ga].tolist()
            xb1, yb1, xb2, yb2 = ctx.gt_bboxes[b, gb].tolist()
            wa, ha, wb, hb = xa2 - xa1, ya2 - ya1, xb2 - xb1, yb2 - yb1
            self.total += 1
            if abs(wa - wb) > 0.05 or abs(ha - hb) > 0.05:
                # a member clipped by the mosaic seam or the image border: must still share its column
                assert min(xa2, xb2) > max(xa1, xb1), "clipped pair members do not even share a column"
                assert ctx.training, "validation never clips boxes"
                continue
            self.intact += 1
            assert abs((xa1 + xa2) - (xb1 + xb2)) / 2 < 0.05, "x centres differ"
            aspect, ratio = wa / ha, ((yb1 + yb2) - (ya1 + ya2)) / 2 / ha
            # a column clipped by a vertical mosaic seam narrows both members alike, so the aspect can only shrink
            assert any(aspect < a * 1.02 + 0.01 and abs(ratio - r) < 0.01 for a, r in self.truth[la]), (
                f"pair (class {la}, aspect {aspect:.3f}, dy/h {ratio:.3f}) is not an original pair"
            )
        return ctx.zero()


@pytest.mark.parametrize("aug", [dict(), dict(mixup=1.0, fliplr=0.5, copy_paste=0.5, scale=0.3)],
                         ids=["default", "mixup-flip-copypaste"])
def test_pair_identity_survives_training_augmentation(dataset, tmp_path, aug):
    checker = PairChecker(dataset, nc=3)
    with pairhook.registered(checker):
        model = YOLO("yolov8n.yaml")
        pairhook.install(model, pairs=dataset.pairs_json, regularizers=["check_pairs", "pair_consistency"])

        def use_workers(trainer):  # CPU training forces workers=0; the carrier must survive worker processes
            trainer.args.workers = 2

        model.add_callback("on_pretrain_routine_start", use_workers)
        model.train(data=str(dataset.data_yaml), project=str(tmp_path), name="run", epochs=2, imgsz=128, batch=4,
                    mosaic=1.0, close_mosaic=1, plots=True, verbose=False, exist_ok=True, seed=0, **aug)
        assert model.trainer.train_loader.num_workers == 2
    assert checker.batches >= 8
    assert checker.with_pairs >= 0.8 * checker.batches, "most batches must carry pairs"
    assert checker.intact >= 0.6 * checker.total > 0
    assert checker.val_pairs > 0, "rect validation carries pairs too"
    assert (tmp_path / "run" / "train_batch0.jpg").exists()


class PairCounter:
    def __init__(self):
        self.pairs = 0

    @pairhook.hookimpl
    def pairhook_register_regularizers(self, register):
        def count(ctx):
            self.pairs += ctx.num_pairs
            return ctx.zero()

        register("count_pairs", count)


@pytest.mark.parametrize("route", ["data-yaml", "config"])
def test_pairs_from_data_yaml_or_config(dataset, tmp_path, route):
    import yaml

    data = yaml.safe_load(dataset.data_yaml.read_text())
    kwargs = {}
    if route == "data-yaml":
        data["pairs"] = "pairs.json"  # relative to the dataset's path
    else:
        cfg = tmp_path / "pairhook.yaml"
        cfg.write_text(yaml.safe_dump({"pairs": str(dataset.pairs_json), "regularizers": ["count_pairs"]}))
        kwargs["config"] = cfg
    data_yaml = tmp_path / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data))
    counter = PairCounter()
    with pairhook.registered(counter):
        model = YOLO("yolov8n.yaml")
        pairhook.install(model, regularizers="count_pairs", **kwargs)
        model.train(data=str(data_yaml), project=str(tmp_path), name="run", epochs=1, imgsz=64, batch=8, workers=0,
                    plots=False, verbose=False)
    assert counter.pairs > 0


def test_training_ends_with_trainer_and_datasets_restored(dataset, tmp_path):
    """``teardown`` (which every multi-GPU rank runs, unlike ``on_train_end``) puts the trainer's dataset builder,
    its datasets and the criterion back; the callbacks stay for the next ``train()``."""
    model = YOLO("yolov8n.yaml")
    handle = pairhook.install(model, pairs=dataset.pairs_json)
    during = {}

    def look(trainer):
        during.update(builder="build_dataset" in vars(trainer),
                      carrier="collate_fn" in vars(trainer.train_loader.dataset))

    model.add_callback("on_train_epoch_end", look)
    model.train(data=str(dataset.data_yaml), project=str(tmp_path), name="run", epochs=1, imgsz=64, batch=8,
                workers=0, plots=False, verbose=False)
    trainer = model.trainer
    assert during == {"builder": True, "carrier": True}
    assert "build_dataset" not in vars(trainer)
    for loader in (trainer.train_loader, trainer.test_loader):
        assert "collate_fn" not in vars(loader.dataset) and "get_image_and_label" not in vars(loader.dataset)
    assert not isinstance(compat.unwrap(trainer.model).criterion, PairhookCriterion)
    assert handle.teardown in model.callbacks["teardown"]


def test_uninstall_restores_trainer_and_datasets(dataset, tmp_path):
    """A training that ended without ``teardown`` (interrupted on releases that skip it then) is restored by
    ``uninstall()``."""
    model = YOLO("yolov8n.yaml")
    handle = pairhook.install(model, pairs=dataset.pairs_json)
    model.callbacks["teardown"].remove(handle.teardown)
    model.train(data=str(dataset.data_yaml), project=str(tmp_path), name="run", epochs=1, imgsz=64, batch=8,
                workers=0, plots=False, verbose=False)
    trainer = model.trainer
    ds = trainer.train_loader.dataset
    assert "build_dataset" in vars(trainer) and "collate_fn" in vars(ds)
    handle.uninstall()
    assert "build_dataset" not in vars(trainer)
    for loader in (trainer.train_loader, trainer.test_loader):
        assert "collate_fn" not in vars(loader.dataset) and "get_image_and_label" not in vars(loader.dataset)
    assert not any(isinstance(getattr(f, "__self__", None), pairhook.Installation)
                   for fns in model.callbacks.values() for f in fns)


def test_batched_matching_equals_greedy_matching_image_by_image():
    """Random images with same-class near-duplicates, other classes, misses and shared boxes: the batched matcher
    gives exactly the rows and skip count of :func:`match_image`'s greedy one-to-one matching."""
    from pairhook.pairs import MatchReport, PairFile, match_image

    rng = np.random.default_rng(0)
    boxes, labels = {}, []
    for n in range(300):
        rows = np.concatenate([rng.integers(0, 3, (6, 1)), rng.uniform(0.2, 0.8, (6, 2)),
                               rng.uniform(0.05, 0.2, (6, 2))], 1)
        rows[3, 1:] = rows[0, 1:] + rng.normal(0, 0.01, 4)  # a same-or-other-class near-duplicate of row 0
        pairs = []
        for _ in range(int(rng.integers(1, 4))):
            a, b = rng.choice(6, 2, replace=False)
            m = [rows[a].copy(), rows[b].copy()]
            m[1][0] = m[0][0]
            m[int(rng.integers(2))][1:3] += rng.normal(0, 0.03, 2)  # some members drift below match_iou
            pairs.append(tuple(tuple(map(float, x)) for x in m))
        boxes[f"im{n}"] = pairs
        labels.append({"im_file": f"/d/im{n}.png", "cls": rows[:, :1].astype(np.float32),
                       "bboxes": rows[:, 1:].astype(np.float32)})
    pf = PairFile(Path("p.json"), boxes=boxes)
    batched, report = match_dataset(pf, labels, 0.5, "train")
    greedy_report = MatchReport("train")
    greedy = []
    for n, lb in enumerate(labels):
        rows = match_image(f"im{n}", boxes[f"im{n}"], lb["cls"].reshape(-1), lb["bboxes"], 0.5, greedy_report)
        used, kept = set(), []
        for ra, rb in rows:
            if ra in used or rb in used:
                greedy_report.skip("shared")
                continue
            used.update((ra, rb))
            kept.append((ra, rb))
        greedy.append(kept)
    assert batched == greedy
    assert report.unmatched == greedy_report.unmatched and 0 < report.matched < report.pairs
