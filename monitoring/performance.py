"""Model performance on the labelled part of a window (numpy/scipy only, no scikit-learn).

Classifiers: accuracy, macro F1 (over the classes present in ``y_true`` or ``y_pred``, F1 of
a class = 2TP / (2TP + FP + FN), 0 when undefined -- scikit-learn's ``average="macro"`` with
``zero_division=0``) and macro one-vs-rest ROC AUC from the Mann-Whitney rank formula
(ties get mid-ranks; classes with no positives or no negatives among the labels are skipped;
for two classes it equals the binary AUC). Regression: MAE and RMSE. Rows whose label is null
are dropped; every metric is None when no labelled rows remain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata

from . import metric_names as M
from ._util import json_clean
from .check_protocol import Metric, ProfileCheck, Verdict, Window, finite_metrics
from .profile import LabeledPredictions
from .types import Task


@dataclass(frozen=True)
class PerformanceResult:
    task: str
    n_labels: int
    accuracy: float | None = None
    f1_macro: float | None = None
    auc: float | None = None
    mae: float | None = None
    rmse: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return json_clean({k: getattr(self, k) for k in self.__dataclass_fields__})

    def verdicts(self) -> list[Verdict]:
        return []  # figures, not verdicts: what good enough means is the model owner's call

    def metrics(self) -> list[Metric]:
        if self.n_labels == 0:
            return []
        return finite_metrics(
            [
                (M.LABELED_ROWS, self.n_labels, None),
                (M.ACCURACY, self.accuracy, None),
                (M.F1, self.f1_macro, None),
                (M.AUC, self.auc, None),
                (M.MAE, self.mae, None),
                (M.RMSE, self.rmse, None),
            ]
        )


def roc_auc_binary(y: np.ndarray, score: np.ndarray) -> float | None:
    """AUC = (sum of positive ranks - n_pos (n_pos + 1) / 2) / (n_pos n_neg)."""
    y = np.asarray(y, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    ok = np.isfinite(score)
    y, score = y[ok], score[ok]
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_auc_ovr_macro(y_true: np.ndarray, probabilities: np.ndarray, classes: Sequence[str]) -> float | None:
    aucs = []
    y = np.asarray(y_true, dtype=object)
    for k, cls in enumerate(classes):
        if k >= probabilities.shape[1]:
            break
        a = roc_auc_binary(np.array([v == cls for v in y]), probabilities[:, k])
        if a is not None:
            aucs.append(a)
    return float(np.mean(aucs)) if aucs else None


def f1_macro(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    y_true = np.asarray(y_true, dtype=object)
    y_pred = np.asarray(y_pred, dtype=object)
    if len(y_true) == 0:
        return None
    labels = sorted({str(v) for v in y_true} | {str(v) for v in y_pred})
    t = np.array([str(v) for v in y_true], dtype=object)
    p = np.array([str(v) for v in y_pred], dtype=object)
    scores = []
    for c in labels:
        tp = int(np.sum((t == c) & (p == c)))
        fp = int(np.sum((t != c) & (p == c)))
        fn = int(np.sum((t == c) & (p != c)))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores))


def classification_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray | None = None,
    probabilities: np.ndarray | None = None,
    classes: Sequence[str] = (),
) -> PerformanceResult:
    y = np.array([None if v is None else str(v) for v in np.asarray(y_true, dtype=object).reshape(-1)], dtype=object)
    keep = np.array([v is not None for v in y], dtype=bool)
    y = y[keep]
    n = len(y)
    task = Task.CLASSIFICATION.value
    if n == 0:
        return PerformanceResult(task=task, n_labels=0)
    if y_pred is None and probabilities is not None and classes:
        probs = np.asarray(probabilities, dtype=np.float64)
        y_pred = np.array(classes, dtype=object)[np.nanargmax(np.nan_to_num(probs, nan=-1.0), axis=1)]
    accuracy = f1 = auc = None
    if y_pred is not None:
        pred = np.asarray(y_pred, dtype=object).reshape(-1)[keep]
        pred = np.array(["\x00none" if v is None else str(v) for v in pred], dtype=object)
        accuracy = float(np.mean(pred == y))
        f1 = f1_macro(y, pred)
    if probabilities is not None and classes:
        probs = np.asarray(probabilities, dtype=np.float64)
        probs = probs.reshape(len(keep), -1)[keep]
        auc = roc_auc_ovr_macro(y, probs, classes)
    return PerformanceResult(task=task, n_labels=n, accuracy=accuracy, f1_macro=f1, auc=auc)


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> PerformanceResult:
    t = np.array([np.nan if v is None else float(v) for v in np.asarray(y_true, dtype=object).reshape(-1)])
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    ok = np.isfinite(t) & np.isfinite(p)
    task = Task.REGRESSION.value
    n = int(ok.sum())
    if n == 0:
        return PerformanceResult(task=task, n_labels=0)
    err = p[ok] - t[ok]
    return PerformanceResult(task=task, n_labels=n, mae=float(np.mean(np.abs(err))), rmse=float(math.sqrt(np.mean(err**2))))


def evaluate_performance(task: Task | str | None, labels: LabeledPredictions, classes: Sequence[str] = ()) -> PerformanceResult:
    task = Task(task) if task is not None else (Task.REGRESSION if labels.predictions.values is not None else Task.CLASSIFICATION)
    pred = labels.predictions
    if task == Task.REGRESSION:
        if pred.values is None:
            return PerformanceResult(task=task.value, n_labels=0)
        return regression_metrics(labels.y_true, pred.values)
    return classification_metrics(labels.y_true, pred.labels, pred.probabilities, classes)


class PerformanceCheck(ProfileCheck):
    """Performance on the window's labelled rows (labels may arrive for an otherwise empty window)."""

    name = "performance"
    metric_names = (M.LABELED_ROWS, M.ACCURACY, M.F1, M.AUC, M.MAE, M.RMSE)
    needs_rows = False

    def run(self, window: Window) -> PerformanceResult | None:
        if window.labels is None:
            return None
        outputs = self.profile.outputs
        return evaluate_performance(outputs.task, window.labels, outputs.classes)
