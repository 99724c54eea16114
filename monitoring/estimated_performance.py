"""Estimated performance before labels arrive: confidence-based performance estimation (CBPE,
NannyML's method) for classifiers.

At fit, each class's probability is calibrated on the reference rows that carry targets: isotonic
regression (pool-adjacent-violators, numpy only) of ``1[y == k]`` on ``p_k``; calibrated rows are
renormalised to sum to 1. On a window, with ``c_ik`` the calibrated probability of class k on row i
and ``pred_i`` the served class, the expected confusion counts are

    TP_k = sum over rows predicted k of c_ik,   FP_k = sum over rows predicted k of (1 - c_ik),
    FN_k = sum over rows not predicted k of c_ik,

giving the expected accuracy ``mean_i c_{i, pred_i}`` and the expected macro F1 (F1 of a class
= 2TP / (2TP + FP + FN), averaged over classes with a non-zero denominator).

The estimate compares with the same estimate on the reference sample (a calibration bias then
cancels); ``EstimatedAccuracyDrop`` is that difference, and the verdict pages when it exceeds
``estimated_accuracy_drop_threshold`` on a window of at least ``estimated_min_rows`` rows.

What it can see: a covariate shift (P(X) moves, P(y|X) does not) that moves rows to where the
model is less sure. What it cannot: a change of P(y|X) (concept drift): the model's confidence is
the same on the same inputs, so the estimate stays put while real accuracy falls; only labels
show that (:mod:`monitoring.performance_drop`). Calibration on training rows (a bundle whose
reference is the training data) is optimistic; the drop, estimate vs estimate, is less affected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import metric_names as M
from ._util import json_clean
from .check_protocol import Check, Metric, Reference, Verdict, Window, finite_metrics, fmt
from .config import CheckConfig, register_config, threshold
from .types import Task


@dataclass(frozen=True)
class IsotonicCalibrator:
    """A non-decreasing map fitted by pool-adjacent-violators; linear between fitted points, flat outside."""

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def fit(cls, scores: np.ndarray, outcomes: np.ndarray) -> IsotonicCalibrator:
        scores = np.asarray(scores, dtype=np.float64)
        outcomes = np.asarray(outcomes, dtype=np.float64)
        ok = np.isfinite(scores)
        ux, inverse, counts = np.unique(scores[ok], return_inverse=True, return_counts=True)
        means = np.bincount(inverse, weights=outcomes[ok]) / counts
        values: list[float] = []
        weights: list[float] = []
        sizes: list[int] = []
        for v, w in zip(means.tolist(), counts.tolist()):
            values.append(v)
            weights.append(w)
            sizes.append(1)
            while len(values) > 1 and values[-2] > values[-1]:
                w_sum = weights[-2] + weights[-1]
                merged = (values[-2] * weights[-2] + values[-1] * weights[-1]) / w_sum
                size = sizes[-2] + sizes[-1]
                del values[-1], weights[-1], sizes[-1]
                values[-1], weights[-1], sizes[-1] = merged, w_sum, size
        fitted = np.repeat(np.array(values), np.array(sizes, dtype=np.int64))
        return cls(ux, fitted)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        if self.x.size == 0:
            return np.asarray(scores, dtype=np.float64)
        return np.interp(np.asarray(scores, dtype=np.float64), self.x, self.y)


def calibrated_probabilities(probabilities: np.ndarray, calibrators: Sequence[IsotonicCalibrator] | None) -> np.ndarray:
    probs = np.nan_to_num(np.asarray(probabilities, dtype=np.float64), nan=0.0)
    if calibrators is None:
        return probs
    cal = np.column_stack([c(probs[:, k]) for k, c in enumerate(calibrators)])
    total = cal.sum(axis=1, keepdims=True)
    return np.where(total > 0, cal / np.where(total > 0, total, 1.0), probs)


def expected_metrics(calibrated: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """Expected accuracy and macro F1 given calibrated probabilities [N, K] and predicted class indices."""
    n, k = calibrated.shape
    if n == 0:
        return float("nan"), float("nan")
    rows = np.arange(n)
    p_pred = calibrated[rows, predicted]
    accuracy = float(p_pred.mean())
    onehot = np.zeros_like(calibrated)
    onehot[rows, predicted] = 1.0
    tp = (onehot * calibrated).sum(axis=0)
    fp = (onehot * (1 - calibrated)).sum(axis=0)
    fn = ((1 - onehot) * calibrated).sum(axis=0)
    denom = 2 * tp + fp + fn
    present = denom > 1e-12
    f1 = float(np.mean(2 * tp[present] / denom[present])) if present.any() else float("nan")
    return accuracy, f1


@dataclass(frozen=True)
class EstimatedPerformanceResult:
    n_rows: int
    min_rows: int
    calibrated: bool  # False: no reference targets, the model's own probabilities are trusted
    estimated_accuracy: float
    estimated_f1: float
    reference_estimated_accuracy: float
    reference_estimated_f1: float
    reference_accuracy: float | None  # realised on the reference rows with targets
    threshold: float

    @property
    def accuracy_drop(self) -> float:
        return self.reference_estimated_accuracy - self.estimated_accuracy

    @property
    def degraded(self) -> bool | None:
        return None if self.n_rows < self.min_rows else bool(self.accuracy_drop > self.threshold)

    def to_dict(self) -> dict[str, object]:
        return json_clean(
            {**{k: getattr(self, k) for k in self.__dataclass_fields__}, "accuracy_drop": self.accuracy_drop, "degraded": self.degraded}
        )

    def verdicts(self) -> list[Verdict]:
        detail = (
            f"estimated accuracy {fmt(self.estimated_accuracy)} (reference {fmt(self.reference_estimated_accuracy)}), "
            f"estimated F1 {fmt(self.estimated_f1)} on {self.n_rows} unlabelled rows"
            + ("" if self.calibrated else "; uncalibrated (no reference targets)")
        )
        if self.degraded is None:
            detail += f"; < {self.min_rows} rows, no verdict"
        return [Verdict("estimated_performance", self.accuracy_drop, None, self.threshold, self.degraded, detail)]

    def metrics(self) -> list[Metric]:
        return finite_metrics(
            [
                (M.ESTIMATED_ACCURACY, self.estimated_accuracy, None),
                (M.ESTIMATED_F1, self.estimated_f1, None),
                (M.ESTIMATED_ACCURACY_DROP, self.accuracy_drop if self.degraded is not None else None, None),
            ]
        )


@register_config
@dataclass(frozen=True)
class EstimatedPerformanceConfig(CheckConfig):
    estimated_accuracy_drop_threshold: float = threshold(
        0.05, gt=0, lt=1, setting=True,
        help="Alarm when the estimated accuracy (before labels) falls this far below the reference's",
    )
    estimated_min_rows: int = threshold(200, ge=1, help="No estimated-performance verdict on smaller windows")


class EstimatedPerformanceCheck(Check):
    """CBPE: expected accuracy and macro F1 of a classifier from its calibrated probabilities."""

    name = "estimated_performance"
    metric_names = (M.ESTIMATED_ACCURACY, M.ESTIMATED_F1, M.ESTIMATED_ACCURACY_DROP)

    def __init__(self, reference: Reference, calibrators: list[IsotonicCalibrator] | None, reference_accuracy: float | None) -> None:
        self.config = reference.config.section(EstimatedPerformanceConfig)
        self.classes = reference.profile.outputs.classes
        self.calibrators = calibrators
        self.reference_accuracy = reference_accuracy
        sample = reference.profile.sample_predictions
        assert sample.probabilities is not None
        self.baseline = expected_metrics(
            calibrated_probabilities(sample.probabilities, calibrators), self._predicted(sample.labels, sample.probabilities)
        )

    @classmethod
    def fit(cls, reference: Reference) -> EstimatedPerformanceCheck | None:
        profile = reference.profile
        probs = profile.sample_predictions.probabilities
        classes = profile.outputs.classes
        if profile.outputs.task is not Task.CLASSIFICATION or probs is None or probs.shape[1] != len(classes) or len(probs) == 0:
            return None
        targets = profile.sample_targets
        if targets is None:
            reference.note("estimated performance: no reference targets, the model's probabilities are used uncalibrated")
            return cls(reference, None, None)
        keep = np.array([t is not None for t in targets], dtype=bool)
        y = np.asarray(targets, dtype=object)[keep]
        calibrators = [IsotonicCalibrator.fit(probs[keep, k], (y == c).astype(np.float64)) for k, c in enumerate(classes)]
        labels = profile.sample_predictions.labels
        realised = float(np.mean(labels[keep] == y)) if labels is not None and keep.any() else None
        return cls(reference, calibrators, realised)

    def _predicted(self, labels: np.ndarray | None, probabilities: np.ndarray) -> np.ndarray:
        """Index of the served class of each row (the most probable one when the label is absent or unknown)."""
        argmax = np.argmax(np.nan_to_num(probabilities, nan=-1.0), axis=1)
        if labels is None:
            return argmax
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index.get(str(v), a) for v, a in zip(labels, argmax)], dtype=np.int64)

    def run(self, window: Window) -> EstimatedPerformanceResult | None:
        pred = window.predictions
        if pred is None or pred.probabilities is None or pred.probabilities.shape[1] != len(self.classes):
            return None
        ok = np.isfinite(pred.probabilities).all(axis=1)
        if not ok.any():
            return None
        probs = pred.probabilities[ok]
        labels = pred.labels[ok] if pred.labels is not None else None
        accuracy, f1 = expected_metrics(calibrated_probabilities(probs, self.calibrators), self._predicted(labels, probs))
        return EstimatedPerformanceResult(
            n_rows=int(ok.sum()),
            min_rows=self.config.estimated_min_rows,
            calibrated=self.calibrators is not None,
            estimated_accuracy=accuracy,
            estimated_f1=f1,
            reference_estimated_accuracy=self.baseline[0],
            reference_estimated_f1=self.baseline[1],
            reference_accuracy=self.reference_accuracy,
            threshold=self.config.estimated_accuracy_drop_threshold,
        )
