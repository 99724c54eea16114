"""Estimated regression error before labels: direct loss estimation (NannyML's DLE), numpy only.

At export, on the held-out rows the reference performance is measured on (``devtools/export/performance.py``),
:meth:`LossModel.fit` regresses each row's absolute error, and its squared error, on the row's features and
the model's prediction (ridge, closed form); the encoding and coefficients travel in the manifest with the
reference performance (``export_metrics["reference_performance"]["loss_model"]``). At check time the
window's estimated MAE is the mean of its rows' predicted absolute errors (clipped at 0), its estimated RMSE
the root of the mean predicted squared error.

The band, as for the classifier's estimate (:mod:`monitoring.estimated_performance`): each estimate is
compared with the same estimate on the reference sample, and its noise at the window's size is the sd over
``ESTIMATE_RESAMPLES`` Poissonised bootstrap resamples of the reference sample of that size, times
``sqrt(1 + n/N)``. A metric breaches when it rises more than ``estimated_band_sd`` of those above the
reference's estimate and by at least ``estimated_loss_min_increase`` of it (relative: an error has its
target's unit). ``EstimatedPerformanceDegraded`` (0/1) is the verdict the alarm reads.

What it can see: rows moving to where the model errs more (a covariate shift into sparse or extreme
regions, a feature going missing). What it cannot: a change of P(y|X) (concept drift), nor errors the
held-out rows never showed; only labels show those (:mod:`monitoring.performance_drop`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import metric_names as M
from ._util import json_clean
from .check_protocol import Check, Metric, Reference, Window, finite_metrics
from .config import CheckConfig, register_config, threshold
from .estimate_bands import BandedEstimates
from .types import ColumnSpec, FeatureKind, Table, Task
from .univariate import size_bucket

ESTIMATE_RESAMPLES = 200
MAX_CATEGORIES = 20  # most frequent categories of a feature one-hot encoded; the rest share the zero row
Z_CLIP = 5.0  # standardised values beyond it are clipped: a far outlier must not dominate a linear loss model
RIDGE = 1.0
LOSS_METRICS = ("mae", "rmse")
METRIC_TEXT = {"mae": "MAE", "rmse": "RMSE"}
PUBLISHED = {"mae": M.ESTIMATED_MAE, "rmse": M.ESTIMATED_RMSE}


@dataclass(frozen=True)
class LossModel:
    """A ridge model of a regressor's per-row absolute and squared error, with its own encoding."""

    numeric: tuple[tuple[str, float, float], ...]  # (feature, mean, sd) of numeric and boolean features
    categorical: tuple[tuple[str, tuple[str, ...]], ...]  # (feature, categories one-hot encoded)
    prediction: tuple[float, float]  # mean, sd of the prediction
    abs_coef: tuple[float, ...]
    sq_coef: tuple[float, ...]
    rows: int

    @staticmethod
    def _encoding(table: Table, features: Sequence[ColumnSpec], predictions: np.ndarray) -> dict[str, Any]:
        numeric, categorical = [], []
        for f in features:
            col = table[f.name]
            if FeatureKind(f.kind) is FeatureKind.CATEGORICAL:
                values, counts = np.unique(np.array([v for v in col if v is not None], dtype=object).astype(str), return_counts=True)
                top = tuple(str(v) for v in values[np.argsort(-counts, kind="stable")][:MAX_CATEGORIES])
                categorical.append((f.name, top))
            else:
                x = np.asarray(col, dtype=np.float64)
                finite = x[np.isfinite(x)]
                mean = float(finite.mean()) if finite.size else 0.0
                sd = float(finite.std()) if finite.size > 1 else 0.0
                numeric.append((f.name, mean, sd if sd > 0 else 1.0))
        p = np.asarray(predictions, dtype=np.float64)
        sd = float(np.nanstd(p))
        return {"numeric": tuple(numeric), "categorical": tuple(categorical), "prediction": (float(np.nanmean(p)), sd if sd > 0 else 1.0)}

    @classmethod
    def fit(cls, table: Table, features: Sequence[ColumnSpec], predictions: Any, targets: Any) -> LossModel | None:
        """The loss model of held-out rows (``table`` in the library's column representation); None when
        fewer rows than columns remain with a finite prediction and target."""
        p = np.asarray(predictions, dtype=np.float64)
        y = np.asarray(targets, dtype=np.float64)
        ok = np.isfinite(p) & np.isfinite(y)
        enc = cls._encoding({k: np.asarray(v)[ok] for k, v in table.items()}, features, p[ok])
        shell = cls(enc["numeric"], enc["categorical"], enc["prediction"], (), (), int(ok.sum()))
        x = shell.design({k: np.asarray(v)[ok] for k, v in table.items()}, p[ok])
        if len(x) <= x.shape[1]:
            return None
        err = p[ok] - y[ok]
        penalty = RIDGE * np.eye(x.shape[1])
        penalty[0, 0] = 0.0  # the intercept is not shrunk
        gram = x.T @ x + penalty
        abs_coef = np.linalg.solve(gram, x.T @ np.abs(err))
        sq_coef = np.linalg.solve(gram, x.T @ err**2)
        return cls(enc["numeric"], enc["categorical"], enc["prediction"], tuple(abs_coef.tolist()), tuple(sq_coef.tolist()), shell.rows)

    def design(self, table: Mapping[str, np.ndarray], predictions: np.ndarray) -> np.ndarray:
        """The rows' design matrix: intercept, standardised numeric values (clipped), their absolute values and
        missing indicators, one-hot categories, the standardised prediction, its absolute value and square."""
        n = len(predictions)
        columns = [np.ones(n)]
        for name, mean, sd in self.numeric:
            x = np.asarray(table[name], dtype=np.float64)
            missing = ~np.isfinite(x)
            z = np.clip(np.where(missing, 0.0, (np.where(missing, mean, x) - mean) / sd), -Z_CLIP, Z_CLIP)
            columns += [z, np.abs(z), missing.astype(float)]  # |z|: errors often grow towards both tails
        for name, categories in self.categorical:
            values = np.asarray(table[name], dtype=object)
            columns += [(values == c).astype(float) for c in categories]
        mean, sd = self.prediction
        z = np.clip((np.nan_to_num(np.asarray(predictions, dtype=np.float64), nan=mean) - mean) / sd, -Z_CLIP, Z_CLIP)
        columns += [z, np.abs(z), z**2]
        return np.column_stack(columns)

    def row_losses(self, table: Mapping[str, np.ndarray], predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's predicted absolute and squared error (never below 0)."""
        x = self.design(table, predictions)
        return np.maximum(x @ np.asarray(self.abs_coef), 0.0), np.maximum(x @ np.asarray(self.sq_coef), 0.0)

    def estimate(self, table: Mapping[str, np.ndarray], predictions: np.ndarray) -> dict[str, float]:
        """Estimated MAE and RMSE of the rows."""
        abs_loss, sq_loss = self.row_losses(table, predictions)
        if not len(abs_loss):
            return {"mae": float("nan"), "rmse": float("nan")}
        return {"mae": float(abs_loss.mean()), "rmse": math.sqrt(float(sq_loss.mean()))}

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "direct_loss_estimation",
            "numeric": [list(v) for v in self.numeric],
            "categorical": [[name, list(cats)] for name, cats in self.categorical],
            "prediction": list(self.prediction),
            "abs_coef": list(self.abs_coef),
            "sq_coef": list(self.sq_coef),
            "rows": self.rows,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LossModel:
        return cls(
            tuple((str(n), float(m), float(s)) for n, m, s in d["numeric"]),
            tuple((str(n), tuple(str(c) for c in cats)) for n, cats in d["categorical"]),
            (float(d["prediction"][0]), float(d["prediction"][1])),
            tuple(float(v) for v in d["abs_coef"]),
            tuple(float(v) for v in d["sq_coef"]),
            int(d.get("rows", 0)),
        )


@dataclass(frozen=True)
class EstimatedLoss:
    """One estimated error metric against its band (a rise is the drop)."""

    metric: str
    estimate: float
    reference: float
    se: float
    allowed_rise: float

    @property
    def rise(self) -> float:
        return self.estimate - self.reference

    @property
    def breached(self) -> bool:
        return bool(math.isfinite(self.rise) and self.rise > self.allowed_rise)

    @property
    def worsening(self) -> float:
        return self.rise

    @property
    def allowed_worsening(self) -> float:
        return self.allowed_rise

    def text(self, band_sd: float) -> str:
        """``estimated MAE 0.712 vs reference 0.601 (+0.111); upper band edge 0.640 (3 sd = 0.039 at this window's size)``."""
        return (
            f"estimated {METRIC_TEXT[self.metric]} {self.estimate:.4g} vs reference {self.reference:.4g} ({self.rise:+.3g}); "
            f"upper band edge {self.reference + self.allowed_rise:.4g} ({band_sd:g} sd = {band_sd * self.se:.2g} at this window's size)"
        )

    def to_dict(self) -> dict[str, Any]:
        return json_clean({**self.__dict__, "rise": self.rise, "breached": self.breached})


@dataclass(frozen=True)
class EstimatedLossResult(BandedEstimates[EstimatedLoss]):
    n_rows: int
    min_rows: int
    estimates: tuple[EstimatedLoss, ...]
    band_sd: float
    model_rows: int

    def rows_text(self) -> str:
        return f" on {self.n_rows} unlabelled rows (loss model of {self.model_rows} held-out rows)"

    def to_dict(self) -> dict[str, Any]:
        return json_clean(
            {
                "method": "direct_loss_estimation",
                "n_rows": self.n_rows,
                "min_rows": self.min_rows,
                "loss_model_rows": self.model_rows,
                "band_sd": self.band_sd,
                "estimates": [e.to_dict() for e in self.estimates],
                "degraded": self.degraded,
            }
        )

    def metrics(self) -> list[Metric]:
        """The estimated MAE and RMSE on every window (figures for the dashboard, next to the real ones on labels),
        the verdict only on a window large enough to judge."""
        return finite_metrics(
            [(PUBLISHED[e.metric], e.estimate, None) for e in self.estimates]
            + [(M.ESTIMATED_PERFORMANCE_DEGRADED, float(bool(self.degraded)) if self.degraded is not None else None, None)]
        )


@register_config
@dataclass(frozen=True)
class EstimatedLossConfig(CheckConfig):
    estimated_loss_min_increase: float = threshold(
        0.05,
        gt=0,
        setting=True,
        help="The smallest estimated rise of a regressor's MAE or RMSE (before labels), relative to the reference's, that breaches",
    )


class EstimatedLossCheck(Check):
    """DLE: a regressor's MAE and RMSE estimated from its inputs and predictions, each against a band from
    its own noise at the window's size. Fitted by :class:`~monitoring.estimated_performance.EstimatedPerformanceCheck`
    for a regressor whose reference performance carries a loss model; publishes the same verdict metric and
    the estimates themselves."""

    name = "estimated_performance"
    metric_names = (M.ESTIMATED_MAE, M.ESTIMATED_RMSE, M.ESTIMATED_PERFORMANCE_DEGRADED)

    def __init__(self, reference: Reference, model: LossModel) -> None:
        cfg = reference.config
        self.band_sd = float(cfg.estimated_band_sd)
        self.min_rows = int(cfg.estimated_min_rows)
        self.min_increase = reference.config.section(EstimatedLossConfig).estimated_loss_min_increase
        self.seed = cfg.seed
        self.model = model
        profile = reference.profile
        values = profile.sample_predictions.values
        assert values is not None
        ok = np.isfinite(values)
        sample = {k: np.asarray(v)[ok] for k, v in profile.sample.items()}
        self.ref_abs, self.ref_sq = model.row_losses(sample, values[ok])
        self.baseline = {"mae": float(self.ref_abs.mean()), "rmse": math.sqrt(float(self.ref_sq.mean()))}
        self._se: dict[int, dict[str, float]] = {}

    @classmethod
    def fit(cls, reference: Reference) -> EstimatedLossCheck | None:
        profile = reference.profile
        stored = (profile.reference_performance or {}).get("loss_model")
        values = profile.sample_predictions.values
        if profile.outputs.task is not Task.REGRESSION or values is None or not np.isfinite(values).any():
            return None
        if not isinstance(stored, Mapping):
            reference.note("estimated performance: the bundle carries no loss model (export it again): MAE / RMSE not estimated")
            return None
        return cls(reference, LossModel.from_dict(stored))

    def standard_errors(self, n: int) -> dict[str, float]:
        """The sd of each estimate over bootstrap resamples of ``n`` reference rows (its size bucket),
        widened by ``sqrt(1 + n/N)``; cached per bucket."""
        m = size_bucket(n)
        if m not in self._se:
            n_ref = len(self.ref_abs)
            rng = np.random.default_rng([self.seed, m, 29])
            w = rng.poisson(m / n_ref, size=(ESTIMATE_RESAMPLES, n_ref)).astype(np.float64)
            total = np.maximum(w.sum(axis=1), 1.0)
            mae = w @ self.ref_abs / total
            rmse = np.sqrt(w @ self.ref_sq / total)
            widen = math.sqrt(1.0 + m / n_ref)
            self._se[m] = {"mae": float(np.std(mae, ddof=1)) * widen, "rmse": float(np.std(rmse, ddof=1)) * widen}
        return self._se[m]

    def run(self, window: Window) -> EstimatedLossResult | None:
        pred = window.predictions
        if pred is None or pred.values is None:
            return None
        ok = np.isfinite(pred.values)
        n = int(ok.sum())
        if n == 0:
            return None
        est = self.model.estimate({k: np.asarray(v)[ok] for k, v in window.table.items()}, pred.values[ok])
        se = self.standard_errors(n) if n >= self.min_rows else {}
        estimates = []
        for metric in LOSS_METRICS:
            s = se.get(metric, float("nan"))
            ref = self.baseline[metric]
            allowed = max(self.band_sd * s, self.min_increase * ref) if math.isfinite(s) else float("inf")
            estimates.append(EstimatedLoss(metric, est[metric], ref, s, allowed))
        return EstimatedLossResult(n, self.min_rows, tuple(estimates), self.band_sd, self.model.rows)
