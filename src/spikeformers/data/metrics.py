"""Evaluation metrics for text classification and regression (NumPy only, no sklearn/scipy).

Classification (``logits [N, C]``, ``labels [N]`` class ids), with predictions
``argmax(logits)`` and the confusion matrix ``M[true, pred]``:

- ``accuracy`` = trace(M) / N;
- per-class F1 = 2 TP / (2 TP + FP + FN) (0 when the class is never true nor predicted);
  ``macro_f1`` is their mean over the classes that occur in labels or predictions (as
  ``sklearn.metrics.f1_score(average="macro")``); ``f1`` is the F1 of class 1 for binary tasks
  and ``macro_f1`` otherwise;
- ``mcc``: Matthews correlation, Gorodkin's multi-class form
  (c·s − Σ p_k t_k) / sqrt((s² − Σ p_k²)(s² − Σ t_k²)) with c = trace(M), s = N, t_k / p_k the
  true / predicted counts of class k; 0 when undefined. For two classes this is the usual
  (TP·TN − FP·FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)).

Regression (``logits [N]`` or ``[N, 1]``, ``labels [N]`` float): ``pearson``, ``spearman``
(Pearson of average ranks, ties averaged), their mean ``pearson_spearman`` and ``mse``. A
correlation with a constant vector is undefined and reported as 0.0 so that model selection
never compares NaNs.
"""

from __future__ import annotations

import numpy as np
import torch

from spikeformers.data.examples import TaskSpec


def primary_metric(task: TaskSpec) -> str:
    """Name of the metric (a key of :func:`compute_metrics`' result) used for model selection."""
    return task.metric


def _to_numpy(x: torch.Tensor | np.ndarray | list) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64 if x.is_floating_point() else torch.long).numpy()
    return np.asarray(x)


def compute_metrics(
    logits: torch.Tensor, labels: torch.Tensor, *, task: TaskSpec | None = None
) -> dict[str, float]:
    """Compute evaluation metrics from model outputs.

    Args:
        logits: ``[N, C]`` class scores, or ``[N]`` / ``[N, 1]`` predictions for regression.
        labels: ``[N]`` class ids (or float targets for regression).
        task: The task; without it, regression is assumed when ``logits`` has one column.

    Returns:
        Classification: ``accuracy``, ``f1``, ``macro_f1``, ``mcc``. Regression: ``pearson``,
        ``spearman``, ``pearson_spearman``, ``mse``. All plain floats.

    Raises:
        ValueError: Empty input or mismatched sizes.
    """
    scores = _to_numpy(logits)
    targets = _to_numpy(labels).reshape(-1)
    if scores.shape[0] == 0:
        raise ValueError("compute_metrics: no examples")
    if scores.shape[0] != targets.shape[0]:
        raise ValueError(
            f"compute_metrics: {scores.shape[0]} predictions but {targets.shape[0]} labels"
        )
    regression = (
        task.is_regression if task is not None else scores.ndim == 1 or scores.shape[-1] == 1
    )
    if regression:
        return _regression_metrics(
            scores.reshape(-1).astype(np.float64), targets.astype(np.float64)
        )
    if scores.ndim != 2:
        raise ValueError(
            f"compute_metrics: classification logits must be [N, C], got {scores.shape}"
        )
    num_classes = task.num_labels if task is not None else scores.shape[1]
    return _classification_metrics(scores.argmax(axis=1), targets.astype(np.int64), num_classes)


def confusion_matrix(preds: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``M[true, pred]`` counts, shape ``[num_classes, num_classes]``.

    Raises:
        ValueError: A label or prediction outside ``0..num_classes-1``.
    """
    preds, labels = np.asarray(preds, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    for name, values in (("labels", labels), ("predictions", preds)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} outside 0..{num_classes - 1}: {np.unique(values).tolist()}")
    flat = np.bincount(labels * num_classes + preds, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _classification_metrics(
    preds: np.ndarray, labels: np.ndarray, num_classes: int
) -> dict[str, float]:
    m = confusion_matrix(preds, labels, num_classes).astype(np.float64)
    n = m.sum()
    tp = np.diag(m)
    true_counts = m.sum(axis=1)  # t_k
    pred_counts = m.sum(axis=0)  # p_k
    denom = true_counts + pred_counts  # 2 TP + FP + FN
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    present = denom > 0
    macro_f1 = float(f1[present].mean()) if present.any() else 0.0

    c = tp.sum()
    cov_pt = c * n - (pred_counts * true_counts).sum()
    var_p = n * n - (pred_counts**2).sum()
    var_t = n * n - (true_counts**2).sum()
    mcc = float(cov_pt / np.sqrt(var_p * var_t)) if var_p > 0 and var_t > 0 else 0.0
    return {
        "accuracy": float(c / n),
        "f1": float(f1[1]) if num_classes == 2 else macro_f1,
        "macro_f1": macro_f1,
        "mcc": mcc,
    }


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    dx, dy = x - x.mean(), y - y.mean()
    denom = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float((dx * dy).sum() / denom) if denom > 0 else 0.0


def rankdata(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``; ties get the mean of their ranks (as ``scipy.stats.rankdata``)."""
    x = np.asarray(x)
    sorter = np.argsort(x, kind="mergesort")
    inverse = np.empty_like(sorter)
    inverse[sorter] = np.arange(x.size)
    xs = x[sorter]
    new_value = np.r_[True, xs[1:] != xs[:-1]]
    dense = new_value.cumsum()[inverse]  # 1-based id of each value's tie group
    starts = np.r_[np.nonzero(new_value)[0], x.size]  # where each tie group starts in sorted order
    return 0.5 * (starts[dense] + starts[dense - 1] + 1)


def _regression_metrics(preds: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    pearson = _pearson(preds, targets)
    spearman = _pearson(rankdata(preds), rankdata(targets))
    return {
        "pearson": pearson,
        "spearman": spearman,
        "pearson_spearman": (pearson + spearman) / 2,
        "mse": float(((preds - targets) ** 2).mean()),
    }
