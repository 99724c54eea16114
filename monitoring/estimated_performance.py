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

The expected macro one-vs-rest AUC comes from the same calibrated probabilities: for class k, with
rows ordered by the model's score ``p_k``, a row is an expected positive ``c_ik`` and an expected
negative ``1 - c_ik``, so AUC_k = sum_i c_ik * (negative mass scored below row i + half the mass tied
with it) / (positives * negatives).

The band (NannyML's CBPE thresholds from reference chunks): each estimate is compared with the same
estimate on the reference sample (a calibration bias then cancels), and its noise at the window's
size is measured on the reference itself: ``ESTIMATE_RESAMPLES`` Poissonised bootstrap resamples of
the reference sample's rows, each of the window's size, scored like a window; the sd of the
estimate over them, times ``sqrt(1 + n/N)`` for the reference's own noise, is the estimate's
standard error. A metric breaches when it falls more than ``estimated_band_sd`` of those below the
reference's estimate and by at least ``estimated_accuracy_drop_threshold`` (a floor: a 10,000-row
window's band is a few tenths of a point wide, narrower than any drop worth a page). Computed at
check time from the reference sample (a matrix product per resample, cached per window-size bucket
like the univariate noise gates): the bundle carries nothing more. ``EstimatedPerformanceDegraded``
(0/1) is the verdict the alarm reads; ``EstimatedAccuracyDrop`` stays published as a figure.

What it can see: a covariate shift (P(X) moves, P(y|X) does not) that moves rows to where the
model is less sure. What it cannot: a change of P(y|X) (concept drift): the model's confidence is
the same on the same inputs, so the estimate stays put while real accuracy falls; only labels
show that (:mod:`monitoring.performance_drop`). Calibration on training rows (a bundle whose
reference is the training data) is optimistic; the drop, estimate vs estimate, is less affected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import metric_names as M
from ._util import json_clean
from .check_protocol import Check, Metric, Reference, Window, finite_metrics
from .config import CheckConfig, register_config, threshold
from .estimate_bands import BandedEstimates
from .estimated_loss import EstimatedLossCheck
from .types import Task
from .univariate import size_bucket


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


# bootstrap resamples of the reference sample that measure the estimate's noise at a window's size
ESTIMATE_RESAMPLES = 200
ESTIMATED_METRICS = ("accuracy", "f1_macro", "auc")
METRIC_TEXT = {"accuracy": "accuracy", "f1_macro": "macro F1", "auc": "AUC"}
PUBLISHED = {"accuracy": M.ESTIMATED_ACCURACY, "f1_macro": M.ESTIMATED_F1, "auc": M.ESTIMATED_AUC}


def _expected_f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    present = denom > 1e-12
    f1 = np.where(present, 2 * tp / np.where(present, denom, 1.0), 0.0).sum(axis=1)
    counted = present.sum(axis=1)
    return np.where(counted > 0, f1 / np.maximum(counted, 1), np.nan)


def _expected_auc(calibrated: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Expected macro one-vs-rest AUC per weight row (a binary model: the positive class's only)."""
    columns = [1] if calibrated.shape[1] == 2 else range(calibrated.shape[1])
    per_class = []
    for k in columns:
        order = np.argsort(scores[:, k], kind="stable")
        ranked = scores[order, k]
        starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # groups of tied scores
        c = calibrated[order, k]
        w = weights[:, order]
        pos = np.add.reduceat(w * c, starts, axis=1)
        neg = np.add.reduceat(w * (1 - c), starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg
        den = pos.sum(axis=1) * neg.sum(axis=1)
        num = (pos * (below + 0.5 * neg)).sum(axis=1)
        per_class.append(np.where(den > 1e-12, num / np.where(den > 1e-12, den, 1.0), np.nan))
    stacked = np.vstack(per_class)
    ok = np.isfinite(stacked)
    return np.where(ok.any(axis=0), np.where(ok, stacked, 0.0).sum(axis=0) / np.maximum(ok.sum(axis=0), 1), np.nan)


def weighted_estimates(calibrated: np.ndarray, scores: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Expected accuracy, macro F1 and AUC of rows weighted by each row of ``weights`` [B, N] (a
    window is one row of ones; a bootstrap resample, its counts): one code path for both."""
    n, k = calibrated.shape
    rows = np.arange(n)
    onehot = np.zeros((n, k))
    onehot[rows, predicted] = 1.0
    total = weights.sum(axis=1)
    safe = np.where(total > 0, total, 1.0)
    accuracy = np.where(total > 0, weights @ calibrated[rows, predicted] / safe, np.nan)
    f1 = _expected_f1(weights @ (onehot * calibrated), weights @ (onehot * (1 - calibrated)), weights @ ((1 - onehot) * calibrated))
    return {"accuracy": accuracy, "f1_macro": f1, "auc": _expected_auc(calibrated, scores, weights)}


def expected_metrics(calibrated: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """Expected accuracy and macro F1 given calibrated probabilities [N, K] and predicted class indices."""
    if len(calibrated) == 0:
        return float("nan"), float("nan")
    est = weighted_estimates(calibrated, calibrated, predicted, np.ones((1, len(calibrated))))
    return float(est["accuracy"][0]), float(est["f1_macro"][0])


@dataclass(frozen=True)
class EstimatedMetric:
    """One estimated metric against its band: the reference's estimate, the window's, the standard
    error of the difference at the window's size and the drop allowed before it breaches."""

    metric: str
    estimate: float
    reference: float
    se: float
    allowed_drop: float

    @property
    def drop(self) -> float:
        return self.reference - self.estimate

    @property
    def breached(self) -> bool:
        return bool(math.isfinite(self.drop) and self.drop > self.allowed_drop)

    @property
    def worsening(self) -> float:
        return self.drop

    @property
    def allowed_worsening(self) -> float:
        return self.allowed_drop

    @property
    def lower(self) -> float:
        """The band's lower edge: an estimate below it breaches."""
        return self.reference - self.allowed_drop

    def text(self, band_sd: float) -> str:
        """``estimated AUC 0.861 vs reference 0.894 (-0.033); band 0.872 (3 sd = 0.0073 at this size)``."""
        return (
            f"estimated {METRIC_TEXT[self.metric]} {self.estimate:.3f} vs reference {self.reference:.3f} ({-self.drop:+.3f}); "
            f"lower band edge {self.lower:.3f} ({band_sd:g} sd = {band_sd * self.se:.2g} at this window's size)"
        )

    def to_dict(self) -> dict[str, Any]:
        return json_clean({**self.__dict__, "drop": self.drop, "lower": self.lower, "breached": self.breached})


@dataclass(frozen=True)
class EstimatedPerformanceResult(BandedEstimates[EstimatedMetric]):
    n_rows: int
    min_rows: int
    calibrated: bool  # False: no reference targets, the model's own probabilities are trusted
    estimates: tuple[EstimatedMetric, ...]
    reference_accuracy: float | None  # realised on the reference rows with targets
    band_sd: float
    min_drop: float

    def _get(self, metric: str) -> EstimatedMetric | None:
        return next((e for e in self.estimates if e.metric == metric), None)

    def _value(self, metric: str, reference: bool = False) -> float:
        e = self._get(metric)
        return float("nan") if e is None else (e.reference if reference else e.estimate)

    @property
    def estimated_accuracy(self) -> float:
        return self._value("accuracy")

    @property
    def estimated_f1(self) -> float:
        return self._value("f1_macro")

    @property
    def estimated_auc(self) -> float:
        return self._value("auc")

    @property
    def reference_estimated_accuracy(self) -> float:
        return self._value("accuracy", reference=True)

    @property
    def accuracy_drop(self) -> float:
        return self.reference_estimated_accuracy - self.estimated_accuracy

    def to_dict(self) -> dict[str, object]:
        return json_clean(
            {
                "n_rows": self.n_rows,
                "min_rows": self.min_rows,
                "calibrated": self.calibrated,
                "estimated_accuracy": self.estimated_accuracy,
                "estimated_f1": self.estimated_f1,
                "estimated_auc": self.estimated_auc,
                "reference_estimated_accuracy": self.reference_estimated_accuracy,
                "reference_estimated_f1": self._value("f1_macro", reference=True),
                "reference_estimated_auc": self._value("auc", reference=True),
                "reference_accuracy": self.reference_accuracy,
                "accuracy_drop": self.accuracy_drop,
                "band_sd": self.band_sd,
                "min_drop": self.min_drop,
                "estimates": [e.to_dict() for e in self.estimates],
                "degraded": self.degraded,
            }
        )

    def rows_text(self) -> str:
        return f" on {self.n_rows} unlabelled rows" + ("" if self.calibrated else "; uncalibrated (no reference targets)")

    def metrics(self) -> list[Metric]:
        judged = self.degraded is not None
        return finite_metrics(
            [(PUBLISHED[e.metric], e.estimate, None) for e in self.estimates]
            + [
                (M.ESTIMATED_ACCURACY_DROP, self.accuracy_drop if judged else None, None),
                (M.ESTIMATED_PERFORMANCE_DEGRADED, float(bool(self.degraded)) if judged else None, None),
            ]
        )


@register_config
@dataclass(frozen=True)
class EstimatedPerformanceConfig(CheckConfig):
    estimated_accuracy_drop_threshold: float = threshold(
        0.01,
        gt=0,
        lt=1,
        setting=True,
        help="The smallest estimated drop (accuracy, F1, AUC; before labels) that breaches; above it the estimate's band decides",
    )
    estimated_band_sd: float = threshold(
        3.0,
        gt=0,
        setting=True,
        help="An estimate breaches this many of its standard errors at the window's size below the reference's",
    )
    estimated_min_rows: int = threshold(200, ge=1, setting=True, help="No estimated-performance verdict on smaller windows")


class EstimatedPerformanceCheck(Check):
    """CBPE: expected accuracy, macro F1 and AUC of a classifier from its calibrated probabilities,
    each against a band from its own noise at the window's size."""

    name = "estimated_performance"
    # a regressor's check is DLE's (``fit``): its estimates are published under this check's keys too
    metric_names = (
        M.ESTIMATED_ACCURACY,
        M.ESTIMATED_F1,
        M.ESTIMATED_AUC,
        M.ESTIMATED_ACCURACY_DROP,
        M.ESTIMATED_MAE,
        M.ESTIMATED_RMSE,
        M.ESTIMATED_PERFORMANCE_DEGRADED,
    )

    def __init__(self, reference: Reference, calibrators: list[IsotonicCalibrator] | None, reference_accuracy: float | None) -> None:
        self.config = reference.config.section(EstimatedPerformanceConfig)
        self.seed = reference.config.seed
        self.classes = reference.profile.outputs.classes
        self.calibrators = calibrators
        self.reference_accuracy = reference_accuracy
        sample = reference.profile.sample_predictions
        assert sample.probabilities is not None
        ok = np.isfinite(sample.probabilities).all(axis=1)
        scores = sample.probabilities[ok]
        labels = sample.labels[ok] if sample.labels is not None else None
        self.ref_scores = np.nan_to_num(scores, nan=0.0)
        self.ref_calibrated = calibrated_probabilities(scores, calibrators)
        self.ref_predicted = self._predicted(labels, scores)
        est = weighted_estimates(self.ref_calibrated, self.ref_scores, self.ref_predicted, np.ones((1, len(scores))))
        self.baseline = {m: float(v[0]) for m, v in est.items()}
        self._se: dict[int, dict[str, float]] = {}

    def standard_errors(self, n: int) -> dict[str, float]:
        """The sd of each estimate over bootstrap resamples of ``n`` reference rows (its size bucket),
        widened by ``sqrt(1 + n/N)`` for the reference's own noise; cached per bucket."""
        m = size_bucket(n)
        if m not in self._se:
            n_ref = len(self.ref_scores)
            rng = np.random.default_rng([self.seed, m, 23])
            weights = rng.poisson(m / n_ref, size=(ESTIMATE_RESAMPLES, n_ref)).astype(np.float64)
            est = weighted_estimates(self.ref_calibrated, self.ref_scores, self.ref_predicted, weights)
            widen = math.sqrt(1.0 + m / n_ref)
            self._se[m] = {k: float(np.nanstd(v, ddof=1)) * widen if np.isfinite(v).sum() > 1 else float("nan") for k, v in est.items()}
        return self._se[m]

    @classmethod  # one check (report key, verdict metric) per estimate, whichever the task: a regressor gets DLE's
    def fit(cls, reference: Reference) -> EstimatedPerformanceCheck | EstimatedLossCheck | None:  # type: ignore[override]
        """CBPE for a classifier; for a regressor, direct loss estimation when its bundle carries a loss model."""
        profile = reference.profile
        if profile.outputs.task is Task.REGRESSION:
            return EstimatedLossCheck.fit(reference)
        probs = profile.sample_predictions.probabilities
        classes = profile.outputs.classes
        if profile.outputs.task is not Task.CLASSIFICATION or probs is None or probs.shape[1] != len(classes) or len(probs) == 0:
            return None
        if not np.isfinite(probs).all(axis=1).any():
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
        n = int(ok.sum())
        est = weighted_estimates(calibrated_probabilities(probs, self.calibrators), probs, self._predicted(labels, probs), np.ones((1, n)))
        cfg = self.config
        se = self.standard_errors(n) if n >= cfg.estimated_min_rows else {}
        estimates = []
        for metric in ESTIMATED_METRICS:
            value, ref = float(est[metric][0]), self.baseline[metric]
            if not (math.isfinite(value) and math.isfinite(ref)):
                continue
            s = se.get(metric, float("nan"))
            allowed = max(cfg.estimated_band_sd * s, cfg.estimated_accuracy_drop_threshold) if math.isfinite(s) else float("inf")
            estimates.append(EstimatedMetric(metric, value, ref, s, allowed))
        return EstimatedPerformanceResult(
            n_rows=n,
            min_rows=cfg.estimated_min_rows,
            calibrated=self.calibrators is not None,
            estimates=tuple(estimates),
            reference_accuracy=self.reference_accuracy,
            band_sd=cfg.estimated_band_sd,
            min_drop=cfg.estimated_accuracy_drop_threshold,
        )
