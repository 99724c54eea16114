"""Outlier rate: Mahalanobis distance in the encoded (robustly scaled + one-hot) reference space.

Computed on complete rows only (a row with a null in any feature is left out on both sides, and
the encoding has no missing-indicator columns): rising nulls are the missing-rate expectation's
finding, and counting them here too paged twice for one cause. The rate is the share of the
window's complete rows; ``n_target`` is their number.

The reference covariance is ridge-regularised (``+ ridge * mean variance`` on the diagonal,
computed through its eigendecomposition) so that one-hot columns (whose covariance is
singular) are handled and so that deviations in directions the reference never varies in --
an unseen category, a missing value in a never-missing feature -- count as large distances
instead of being ignored. The threshold is the reference's own 99th percentile distance, so
about 1% of no-drift rows exceed it; the verdict fires when the window's share of rows above
the threshold exceeds ``max(rate_threshold, 0.01 + 4 * sqrt(0.01 * 0.99 / n))`` -- default
0.05, i.e. 5x the expected 0.01, with a 4-sigma binomial margin that only matters for windows
under ~100 rows. Evaluation (synthetic data, fresh 10k-row reference, 200 no-drift windows per
size): rate median 0.010, max 0.014 (10k-row windows) and 0.021 (1k rows), 0 alarms; a new
category in 10% of rows gives ~0.11 (alarm 200/200).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import metric_names as M
from ._util import json_clean
from .check_protocol import CompleteRowsCheck, Metric, Reference, Verdict, finite_metrics
from .config import CheckConfig, register_config, threshold

DEFAULT_OUTLIER_QUANTILE = 0.99
DEFAULT_OUTLIER_RATE_THRESHOLD = 0.05
DEFAULT_RIDGE = 1e-3
OUTLIER_NOISE_Z = 4.0


@dataclass(frozen=True)
class OutlierResult:
    rate: float  # share of window rows above the distance threshold
    expected_rate: float  # 1 - quantile
    rate_threshold: float
    distance_threshold: float
    is_drift: bool | None
    n_target: int
    n_outliers: int

    def to_dict(self) -> dict[str, Any]:
        return json_clean({k: getattr(self, k) for k in self.__dataclass_fields__})

    def verdicts(self) -> list[Verdict]:
        detail = f"{self.n_outliers}/{self.n_target} complete rows beyond the reference's 99th percentile distance (1% expected)"
        return [Verdict("outlier rate", self.rate, None, self.rate_threshold, self.is_drift, detail)]

    def metrics(self) -> list[Metric]:
        return finite_metrics([(M.OUTLIER_RATE, self.rate, None)])


class MahalanobisOutlierDetector:
    def __init__(
        self,
        x_ref: np.ndarray,
        *,
        quantile: float = DEFAULT_OUTLIER_QUANTILE,
        rate_threshold: float = DEFAULT_OUTLIER_RATE_THRESHOLD,
        ridge: float = DEFAULT_RIDGE,
    ) -> None:
        x_ref = np.asarray(x_ref, dtype=np.float64)
        self.quantile = float(quantile)
        self.rate_threshold = float(rate_threshold)
        d = x_ref.shape[1]
        self.mean_ = x_ref.mean(axis=0) if len(x_ref) else np.zeros(d)
        if len(x_ref) > 1 and d > 0:
            cov = np.cov(x_ref, rowvar=False).reshape(d, d)
            evals, evecs = np.linalg.eigh(cov)
            evals = np.maximum(evals, 0.0)
        else:
            evals, evecs = np.zeros(d), np.eye(d)
        floor = ridge * (evals.mean() if d and evals.mean() > 0 else 1.0)
        self.evecs_ = evecs
        self.inv_evals_ = 1.0 / (evals + floor)
        ref_d = self.distances(x_ref)
        self.distance_threshold = float(np.quantile(ref_d, self.quantile)) if len(ref_d) else float("nan")

    def threshold(self, n: int) -> float:
        """Rate threshold for an n-row window."""
        p = 1.0 - self.quantile
        return max(self.rate_threshold, p + OUTLIER_NOISE_Z * math.sqrt(p * (1 - p) / max(n, 1)))

    def distances(self, x: np.ndarray) -> np.ndarray:
        """Mahalanobis distances (not squared) of the rows of ``x``."""
        x = np.asarray(x, dtype=np.float64)
        if len(x) == 0:
            return np.zeros(0)
        z = (x - self.mean_) @ self.evecs_
        return np.sqrt((z * z * self.inv_evals_).sum(axis=1))

    def predict(self, x: np.ndarray) -> OutlierResult:
        dist = self.distances(x)
        n = len(dist)
        if n == 0 or not np.isfinite(self.distance_threshold):
            return OutlierResult(float("nan"), 1 - self.quantile, self.rate_threshold, self.distance_threshold, None, n, 0)
        k = int(np.count_nonzero(dist > self.distance_threshold))
        rate = k / n
        thr = self.threshold(n)
        return OutlierResult(
            rate=rate,
            expected_rate=1 - self.quantile,
            rate_threshold=thr,
            distance_threshold=self.distance_threshold,
            is_drift=bool(rate > thr),
            n_target=n,
            n_outliers=k,
        )


@register_config
@dataclass(frozen=True)
class OutlierConfig(CheckConfig):
    outlier_rate_threshold: float = threshold(
        DEFAULT_OUTLIER_RATE_THRESHOLD, ge=0, le=1, setting=True, help="Alarm when the outlier rate exceeds this"
    )


class OutlierCheck(CompleteRowsCheck):
    """Share of the window's complete rows beyond the reference's 99th percentile Mahalanobis distance."""

    name = "outliers"
    metric_names = (M.OUTLIER_RATE,)

    @classmethod
    def fit(cls, reference: Reference) -> OutlierCheck | None:
        if not reference.supports_complete_rows():
            return None
        config = reference.config.section(OutlierConfig)
        return cls(MahalanobisOutlierDetector(reference.complete_sample, rate_threshold=config.outlier_rate_threshold))
