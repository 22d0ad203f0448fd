"""Pair-consistency metrics on hand-made detections with known answers, and the validator glue's input formats."""

from __future__ import annotations

import math

import pytest
import torch

from pairhook.metrics import (
    COUNT_KEYS,
    KEYS,
    PairMetrics,
    format_metrics,
    member_detections,
    pair_metrics,
    view_members,
)
from pairhook.pairs import PAIRS_KEY
from pairhook.val_metrics import PairValidation

# Three pairs, members 50 px apart vertically: pair 0 (class 0) found on both views, confs 0.9 / 0.6; pair 1
# (class 1) missed on the lower view; pair 2 (class 2) found on both views with the right class (0.7 / 0.5) but the
# lower view's most confident box there says class 1. Pair 1 lists its lower member first: upper and lower come from
# the boxes, not from the order of the members.
GT = torch.tensor([[0, 0, 10, 10], [0, 50, 10, 60], [20, 0, 30, 10], [20, 50, 30, 60], [40, 0, 50, 10],
                   [40, 50, 50, 60]], dtype=torch.float32)
GT_CLS = torch.tensor([0, 0, 1, 1, 2, 2])
PAIRS = torch.tensor([[0, 1], [3, 2], [4, 5]])
PRED = torch.tensor([
    # x1, y1, x2, y2, conf, cls
    [0, 0, 10, 10, 0.9, 0],
    [0, 0, 10, 10, 0.1, 1],     # a weaker other-class box on member 0 (and below the default conf of 0.25)
    [0, 51, 10, 61, 0.6, 0],    # IoU 0.82 with member 1
    [0, 50, 10, 60, 0.3, 0],    # a weaker duplicate: member 1's detection stays the 0.6 box
    [20, 0, 30, 10, 0.8, 1],
    [20, 56, 30, 66, 0.95, 1],  # IoU 4/16 = 0.25 with member 3: not a detection of it
    [40, 0, 50, 10, 0.7, 2],
    [40, 50, 50, 60, 0.85, 1],  # member 5 is localized as class 1 ...
    [40, 50, 50, 60, 0.5, 2],   # ... and detected (right class) at 0.5
])


def image(pred=PRED, pairs=PAIRS):
    return dict(gt_boxes=GT, gt_cls=GT_CLS, pairs=pairs, boxes=pred[:, :4], conf=pred[:, 4], cls=pred[:, 5])


def test_known_answers():
    m = pair_metrics([image()])
    assert list(m) == list(KEYS)
    assert m["pairs/n"] == 3
    assert m["pairs/both_detected"] == pytest.approx(2 / 3)  # pairs 0 and 2
    assert m["pairs/class_agree"] == pytest.approx(1 / 2)  # pair 1 not localized on both views: left out
    assert m["pairs/conf_gap"] == pytest.approx((0.3 + 0.2) / 2)
    assert m["pairs/one_detected"] == pytest.approx(1 / 3)  # pair 1: upper view found, lower missed
    assert m["pairs/recall_upper"] == 1
    assert m["pairs/recall_lower"] == pytest.approx(2 / 3)


def test_view_members_go_by_the_boxes_not_the_member_order():
    upper, lower, vertical = view_members(GT, PAIRS)
    assert upper.tolist() == [0, 2, 4] and lower.tolist() == [1, 3, 5] and vertical.all()
    assert pair_metrics([image(pairs=PAIRS.flip(1))]) == pytest.approx(pair_metrics([image()]))
    # side by side (dx 20 px, dy 2 px) is no vertical pair; equal y centres keep member order
    boxes = torch.tensor([[0, 0, 10, 10], [20, 2, 30, 12], [0, 30, 10, 40], [0, 30, 10, 40.0]])
    upper, lower, vertical = view_members(boxes, torch.tensor([[1, 0], [3, 2]]))
    assert upper.tolist() == [0, 3] and lower.tolist() == [1, 2] and vertical.tolist() == [False, False]


def test_sideways_pairs_count_as_inconsistent_but_not_per_view():
    """A pair shifted sideways has no upper view: it counts in one_detected, not in the per-view recalls."""
    gt = torch.cat([GT, torch.tensor([[60, 0, 70, 10], [80, 2, 90, 12.0]])])
    pred = torch.cat([PRED, torch.tensor([[80, 2, 90, 12, 0.9, 0]])])  # only the right-hand member of pair 3 found
    m = pair_metrics([dict(gt_boxes=gt, gt_cls=torch.cat([GT_CLS, torch.tensor([0, 0])]),
                           pairs=torch.cat([PAIRS, torch.tensor([[6, 7]])]), boxes=pred[:, :4], conf=pred[:, 4],
                           cls=pred[:, 5])])
    assert m["pairs/n"] == 4 and m["pairs/one_detected"] == pytest.approx(2 / 4)
    assert m["pairs/recall_upper"] == 1 and m["pairs/recall_lower"] == pytest.approx(2 / 3)  # over the 3 vertical
    sideways = pair_metrics([dict(gt_boxes=gt, gt_cls=torch.cat([GT_CLS, torch.tensor([0, 0])]),
                                  pairs=torch.tensor([[6, 7]]), boxes=pred[:, :4], conf=pred[:, 4], cls=pred[:, 5])])
    assert sideways["pairs/one_detected"] == 1
    assert math.isnan(sideways["pairs/recall_upper"]) and math.isnan(sideways["pairs/recall_lower"])


def test_log_line_names_every_metric():
    line = format_metrics(pair_metrics([image()]))
    m = pair_metrics([image()])
    assert line == ("both detected 0.667, one detected 0.333, recall upper 1.000 lower 0.667, class agree 0.500, "
                    "conf gap 0.250 over 3 pairs; "
                    f"AP50-95 upper {m['pairs/ap_upper']:.3f} lower {m['pairs/ap_lower']:.3f}, recall at precision 0.8 "
                    f"upper {m['pairs/recall_p80_upper']:.3f} lower {m['pairs/recall_p80_lower']:.3f}, wrong-class "
                    "boxes upper 0.000 lower 0.333")  # member 5's class-1 box


def test_member_detections_pick_the_most_confident_box():
    det, loc_cls, loc_conf = member_detections(GT, GT_CLS, PRED[:, :4], PRED[:, 4], PRED[:, 5])
    assert det.tolist() == pytest.approx([0.9, 0.6, 0.8, -math.inf, 0.7, 0.5])
    assert loc_cls.tolist() == [0, 0, 1, -1, 2, 1]
    assert loc_conf.tolist() == pytest.approx([0.9, 0.6, 0.8, -math.inf, 0.7, 0.85])


def test_iou_threshold_is_applied():
    m = pair_metrics([image()], iou=0.9)  # the 0.82-IoU box no longer counts: member 1's detection is the 0.3 one
    assert m["pairs/both_detected"] == pytest.approx(2 / 3)
    assert m["pairs/conf_gap"] == pytest.approx((0.6 + 0.2) / 2)


def test_confidence_threshold_is_applied():
    every, default = pair_metrics([image()], conf=0.0), pair_metrics([image()])
    # no right-class box between 0 and 0.25; member 0's class-1 box at 0.1 is a wrong-class box at conf 0
    assert {k: every[k] for k in COUNT_KEYS} == pytest.approx({k: default[k] for k in COUNT_KEYS})
    assert every["pairs/wrong_class_upper"] == pytest.approx(1 / 3) and default["pairs/wrong_class_upper"] == 0
    assert every["pairs/ap_upper"] == default["pairs/ap_upper"]  # AP uses every box whatever the threshold
    m = pair_metrics([image()], conf=0.55)  # member 5's right-class box (0.5) no longer counts
    assert m["pairs/both_detected"] == pytest.approx(1 / 3)
    assert m["pairs/class_agree"] == pytest.approx(1 / 2)
    assert m["pairs/conf_gap"] == pytest.approx(0.3)
    assert m["pairs/one_detected"] == pytest.approx(2 / 3)
    assert m["pairs/recall_upper"] == 1 and m["pairs/recall_lower"] == pytest.approx(1 / 3)
    assert pair_metrics([image()], conf=0.99)["pairs/both_detected"] == 0


def test_accumulates_over_images():
    acc = PairMetrics()
    acc.update(**image())
    acc.update(**image(pred=PRED[:0]))  # a second image where nothing was predicted
    m = acc.compute()
    assert m["pairs/n"] == 6
    assert m["pairs/both_detected"] == pytest.approx(2 / 6)
    assert m["pairs/class_agree"] == pytest.approx(1 / 2)
    assert m["pairs/conf_gap"] == pytest.approx(0.25)
    assert m["pairs/one_detected"] == pytest.approx(1 / 6)
    assert m["pairs/recall_upper"] == pytest.approx(3 / 6) and m["pairs/recall_lower"] == pytest.approx(2 / 6)
    acc.reset()
    assert acc.compute()["pairs/n"] == 0


def test_empty_denominators_are_nan():
    nothing = pair_metrics([image(pred=PRED[:0])])
    assert nothing["pairs/n"] == 3 and nothing["pairs/both_detected"] == 0
    assert math.isnan(nothing["pairs/class_agree"]) and math.isnan(nothing["pairs/conf_gap"])
    assert nothing["pairs/one_detected"] == nothing["pairs/recall_upper"] == nothing["pairs/recall_lower"] == 0
    no_pairs = pair_metrics([image(pairs=PAIRS[:0])])
    assert no_pairs["pairs/n"] == 0 and all(math.isnan(no_pairs[k]) for k in KEYS if k != "pairs/n")


def _batch(pairs_rows):
    """A validation batch of 2 images (64 x 64 input): image 1 holds the GT above, image 0 one unpaired box."""
    h = w = 64
    xywh = torch.cat([(GT[:, :2] + GT[:, 2:]) / 2, GT[:, 2:] - GT[:, :2]], 1) / torch.tensor([w, h, w, h])
    return {"img": torch.zeros(2, 3, h, w), "batch_idx": torch.tensor([0.0] + [1.0] * 6),
            "cls": torch.cat([torch.tensor([[2.0]]), GT_CLS[:, None].float()]),
            "bboxes": torch.cat([torch.tensor([[0.5, 0.5, 0.2, 0.2]]), xywh]), PAIRS_KEY: pairs_rows}


@pytest.mark.parametrize("fmt", ["dict", "tensor"])
def test_validator_glue_reads_both_prediction_formats(fmt):
    """8.4 post-processes to dicts, older releases to (N, 6) tensors; batch boxes are normalized xywh."""
    preds = [PRED[:0], PRED]
    if fmt == "dict":
        preds = [{"bboxes": p[:, :4], "conf": p[:, 4], "cls": p[:, 5]} for p in preds]
    rows = torch.cat([torch.ones(3, 1, dtype=torch.long), PAIRS], 1)
    collector = PairValidation()
    collector.update(preds, _batch(rows))
    collector.update(preds, _batch(rows[:0]))  # a batch without pairs adds nothing
    m = collector.stats()
    assert m == pytest.approx(pair_metrics([image()]), nan_ok=True)
    assert collector.last is m and collector.metrics.compute()["pairs/n"] == 0  # reset for the next validation


def test_a_rank_without_pairs_reduces_zeros_of_every_count():
    """DDP: a rank whose shard had no pair sums zeros of the full count vector with the others (here: itself)."""
    from pairhook.metrics import N_COUNTS

    m = PairMetrics()
    m.reduce(lambda counts: counts, "cpu")
    assert m.counts.shape == (N_COUNTS,)
    out = m.compute()
    assert out["pairs/n"] == 0.0 and all(math.isnan(v) for k, v in out.items() if k != "pairs/n")
