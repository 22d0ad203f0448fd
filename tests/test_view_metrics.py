"""Per-view metrics on hand-made predictions with known answers: each view's AP, recall at matched precision,
wrong-class boxes; a score shift moves the thresholded recall but none of them."""

from __future__ import annotations

import math

import pytest
import torch

from pairhook.metrics import PairMetrics, pair_metrics
from pairhook.view_metrics import KEYS

# One pair of class 0: member 0 in the upper view (y 10-20), member 1 in the lower view (y 70-80); an unpaired GT of
# class 1 in the lower view (member 2). Predictions, most confident first in the lower view:
GT = torch.tensor([[10., 10, 20, 20], [10, 70, 20, 80], [60, 70, 70, 80]])
GT_CLS = torch.tensor([0, 0, 1])
PAIRS = torch.tensor([[0, 1]])
PRED = torch.tensor([
    # x1, y1, x2, y2, conf, cls
    [10, 10, 20, 20, 0.9, 0],   # upper member found
    [60, 70, 70, 80, 0.8, 1],   # the lower view's unpaired GT found: a true positive of the lower view
    [10, 70, 20, 80, 0.6, 1],   # a wrong-class box on the lower member: a false positive of the lower view
    [40, 75, 50, 85, 0.5, 0],   # a false positive near the lower view: nearest member is member 1
    [10, 70, 20, 80, 0.3, 0],   # the lower member found, last
])


def image(pred=PRED, gt=GT, pairs=PAIRS):
    return dict(gt_boxes=gt, gt_cls=GT_CLS, pairs=pairs, boxes=pred[:, :4], conf=pred[:, 4], cls=pred[:, 5])


def test_known_answers():
    m = pair_metrics([image()])
    # upper view: one GT, one exact TP: Ultralytics' 101-point AP of a perfect curve is 0.995 at every IoU
    assert m["pairs/ap50_upper"] == pytest.approx(0.995)
    assert m["pairs/ap_upper"] == pytest.approx(0.995)
    # lower view: TP, FP, FP, TP over 2 GT -> precision 1 up to recall 0.5, then 0.5 up to recall 1:
    # 101-point interpolation of that envelope = 0.5 * 1 + 0.5 * 0.5 minus the trapezoid at the step (0.005)
    assert m["pairs/ap50_lower"] == pytest.approx(0.745)
    assert m["pairs/ap_lower"] == pytest.approx(0.745)  # every box is exact, so every IoU threshold agrees
    # recall at precision >= 0.8: upper 1.0; lower only the first operating point (recall 0.5) keeps it
    assert m["pairs/recall_p80_upper"] == 1.0
    assert m["pairs/recall_p80_lower"] == 0.5
    # the lower member has a class-1 box at 0.6 on it; the upper member has none
    assert m["pairs/wrong_class_upper"] == 0.0
    assert m["pairs/wrong_class_lower"] == 1.0


def test_false_positives_count_against_the_view_they_lie_in():
    clean = pair_metrics([image(PRED[[0, 1, 4]])])
    assert clean["pairs/ap50_lower"] == pytest.approx(0.995)
    near_lower = torch.cat([PRED[[0, 1, 4]], torch.tensor([[40., 75, 50, 85, 0.95, 0]])])  # a confident FP below
    m = pair_metrics([image(near_lower)])
    assert m["pairs/ap50_upper"] == pytest.approx(clean["pairs/ap50_upper"])
    assert m["pairs/ap50_lower"] < clean["pairs/ap50_lower"] - 0.1
    near_upper = torch.cat([PRED[[0, 1, 4]], torch.tensor([[40., 5, 50, 15, 0.95, 0]])])
    m = pair_metrics([image(near_upper)])
    assert m["pairs/ap50_lower"] == pytest.approx(clean["pairs/ap50_lower"])
    assert m["pairs/ap50_upper"] < clean["pairs/ap50_upper"] - 0.1


def test_ap50_95_sees_localisation():
    loose = PRED.clone()
    loose[4, :4] = torch.tensor([10., 71, 20, 81])  # IoU 9/11 = 0.82 with the lower member
    m = pair_metrics([image(loose)])
    assert m["pairs/ap50_lower"] == pytest.approx(0.745)
    assert m["pairs/ap_lower"] < m["pairs/ap50_lower"]  # missed at IoU 0.85 and above
    assert m["pairs/ap_upper"] == pytest.approx(0.995)


def test_a_score_shift_moves_thresholded_recall_but_not_these():
    """Raising every lower-view score (a monotone map) finds the lower member at conf 0.25 more often, and leaves
    each view's AP, recall at precision and ranking untouched."""
    low = PRED.clone()
    low[4, 4] = 0.2  # the lower member's only right box is below 0.25
    lifted = low.clone()
    lower_rows = torch.tensor([1, 2, 3, 4])
    lifted[lower_rows, 4] = low[lower_rows, 4].sqrt()  # 0.2 -> 0.45, order kept
    before, after = pair_metrics([image(low)]), pair_metrics([image(lifted)])
    assert before["pairs/recall_lower"] == 0.0 and after["pairs/recall_lower"] == 1.0
    for key in KEYS:
        if "wrong_class" not in key:
            assert after[key] == pytest.approx(before[key]), key
    assert after["pairs/wrong_class_lower"] >= before["pairs/wrong_class_lower"]  # lifting can only add those


def test_no_vertical_pair_no_views():
    side = torch.tensor([[10., 10, 20, 20], [70, 10, 80, 20], [60, 70, 70, 80]])
    m = pair_metrics([image(gt=side)])
    assert all(math.isnan(m[k]) for k in KEYS)


def test_no_prediction_in_a_view_is_ap_zero():
    m = pair_metrics([image(PRED[:1])])
    assert m["pairs/ap50_lower"] == 0.0 and m["pairs/recall_p80_lower"] == 0.0
    assert m["pairs/ap50_upper"] == pytest.approx(0.995)


def test_counts_of_several_ranks_sum_to_one_evaluation():
    """Multi-GPU validation: each rank counts its shard, the counts are summed (one collective), rank 0 computes."""
    images = [image(), image(PRED[[0, 4]]), image(PRED[[1, 2, 3]])]
    whole = pair_metrics(images)
    ranks = [PairMetrics(), PairMetrics(), PairMetrics()]  # the third rank sees no pair
    for rank, im in zip((0, 1, 0), images):
        ranks[rank].update(im["gt_boxes"], im["gt_cls"], im["pairs"], im["boxes"], im["conf"], im["cls"])
    shards: list[torch.Tensor] = []
    for r in ranks:  # what each rank contributes to the collective, in the order the ranks call it
        r.reduce(lambda t: shards.append(t.clone()) or t, "cpu")
    n_count = 9
    for r in ranks:
        r.reduce(lambda t: sum(s for s in shards if s.numel() == t.numel()), "cpu")
    assert len(shards) == 6 and {s.numel() for s in shards} == {n_count, shards[1].numel()}
    for key, value in whole.items():
        assert ranks[2].compute()[key] == pytest.approx(value, nan_ok=True), key
