"""Metrics against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from spikeformers.data import TaskSpec, compute_metrics, primary_metric
from spikeformers.data.metrics import rankdata


def logits_for(preds, num_classes):
    """One-hot logits whose argmax is ``preds``."""
    return torch.nn.functional.one_hot(torch.tensor(preds), num_classes).float()


def test_binary_metrics_from_a_2x2_confusion_matrix():
    labels = [1, 1, 1, 1, 0, 0, 0, 0]
    preds = [1, 1, 0, 0, 0, 0, 0, 1]
    # TP=2 FN=2 TN=3 FP=1
    out = compute_metrics(logits_for(preds, 2), torch.tensor(labels))
    assert out["accuracy"] == pytest.approx(5 / 8)
    f1_pos = 2 * 2 / (2 * 2 + 1 + 2)  # 2TP / (2TP + FP + FN) = 4/7
    f1_neg = 2 * 3 / (2 * 3 + 2 + 1)  # class 0: TP=3, FP=2, FN=1 -> 6/9
    assert out["f1"] == pytest.approx(f1_pos)
    assert out["macro_f1"] == pytest.approx((f1_pos + f1_neg) / 2)
    # (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (6 - 2) / sqrt(3*4*4*5)
    assert out["mcc"] == pytest.approx(4 / math.sqrt(240))
    assert all(isinstance(v, float) for v in out.values())


def test_three_class_metrics_from_a_confusion_matrix():
    labels = [0, 0, 1, 1, 2, 2]
    preds = [0, 1, 1, 1, 2, 0]
    # M[true, pred] = [[1,1,0],[0,2,0],[1,0,1]]; true counts t=[2,2,2], predicted p=[2,3,1]
    task = TaskSpec("t3", 3, ("a", "b", "c"), metric="mcc")
    out = compute_metrics(logits_for(preds, 3), torch.tensor(labels), task=task)
    assert out["accuracy"] == pytest.approx(4 / 6)
    f1s = [2 * 1 / (2 + 2), 2 * 2 / (2 + 3), 2 * 1 / (2 + 1)]  # 2TP / (t_k + p_k)
    assert out["macro_f1"] == pytest.approx(sum(f1s) / 3)
    assert out["f1"] == out["macro_f1"]
    # Gorodkin: (c*s - sum p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2))
    #         = (4*6 - 12) / sqrt((36 - 14)(36 - 12))
    assert out["mcc"] == pytest.approx(12 / math.sqrt(22 * 24))
    assert primary_metric(task) == "mcc" and "mcc" in out


def test_perfect_and_constant_predictions():
    labels = torch.tensor([0, 1, 1, 0])
    perfect = compute_metrics(logits_for([0, 1, 1, 0], 2), labels)
    assert perfect == {"accuracy": 1.0, "f1": 1.0, "macro_f1": 1.0, "mcc": 1.0}
    constant = compute_metrics(logits_for([1, 1, 1, 1], 2), labels)
    assert constant["mcc"] == 0.0  # undefined -> 0
    assert constant["f1"] == pytest.approx(2 * 2 / (4 + 2))  # TP=2, FP=2, FN=0
    assert constant["macro_f1"] == pytest.approx((0.0 + 2 / 3) / 2)


def test_regression_pearson_and_spearman_by_hand():
    preds = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    targets = torch.tensor([2.0, 4.0, 5.0, 4.0])
    # Pearson: dx = [-1.5,-.5,.5,1.5], dy = [-1.75,.25,1.25,.25];
    # sum dx*dy = 3.5, sum dx^2 = 5, sum dy^2 = 4.75
    pearson = 3.5 / math.sqrt(5 * 4.75)
    # Spearman: ranks x = [1,2,3,4], ranks y = [1,2.5,4,2.5] (tie averaged);
    # dy = [-1.5,0,1.5,0]: sum dx*dy = 3, sum dy^2 = 4.5
    spearman = 3 / math.sqrt(5 * 4.5)
    task = TaskSpec("sts", 1, ("score",), metric="pearson_spearman")
    out = compute_metrics(preds, targets, task=task)
    assert out["pearson"] == pytest.approx(pearson)
    assert out["spearman"] == pytest.approx(spearman)
    assert out["pearson_spearman"] == pytest.approx((pearson + spearman) / 2)
    assert out["mse"] == pytest.approx((1 + 4 + 4 + 0) / 4)
    assert compute_metrics(preds, targets) == out  # [N, 1] logits imply regression
    assert primary_metric(task) == "pearson_spearman"


def test_rankdata_averages_ties():
    assert rankdata([10, 20, 10, 30, 20, 20]).tolist() == [1.5, 4.0, 1.5, 6.0, 4.0, 4.0]


def test_constant_regression_prediction_gives_zero_correlation():
    out = compute_metrics(torch.zeros(3), torch.tensor([1.0, 2.0, 3.0]))
    assert out["pearson"] == 0.0 and out["spearman"] == 0.0


def test_size_mismatch_and_empty_input_are_rejected():
    with pytest.raises(ValueError, match="3 predictions but 2 labels"):
        compute_metrics(torch.zeros(3, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="no examples"):
        compute_metrics(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
