"""Performance on the window's labels compared with the model's reference performance.

The reference performance is measured at export on held-out rows (``export_metrics
["reference_performance"]`` of the bundle manifest, built by :func:`measure_performance`), or, for
a bundle without it, on the reference rows that carry targets (training rows: optimistic, noted).

The test, per metric, one-sided (only a drop pages), is against the baseline's own interval: the
reference figure is itself an estimate on a few hundred or thousand held-out rows, and a baseline
that came out optimistic by chance would otherwise page on healthy windows for the bundle's whole
life. So the window is compared with the conservative end of the baseline's 95% bootstrap interval
(``low`` of accuracy, F1 and AUC; ``high`` of MAE and RMSE; value -/+ 1.96 se when the manifest has no
interval), using the window's own standard error:

- accuracy: z = (bound - window) / sqrt(bound (1 - bound) / n), the binomial error at the bound;
- macro F1, AUC, MAE, RMSE: z = (bound - window) / se_window (signs for errors reversed), the window's
  standard error the standard deviation of the metric over bootstrap resamples of its rows.

p-values come from ``scipy.stats.norm``; a metric has dropped when its p-value is below
``performance_alpha / number of tested metrics`` (Bonferroni; 0.01 by default: a verdict that
pages). No verdict below ``performance_min_labels``
labelled rows (a handful of labels says nothing about a few points of accuracy), and none on a
baseline of fewer than ``performance_min_baseline_rows`` rows (its interval is not trustworthy;
the report says so). The published drops (``AccuracyDrop``...) stay reference value - window value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm, rankdata

from . import metric_names as M
from ._util import json_clean
from .check_protocol import PRIORITY_PERFORMANCE, Check, Finding, Metric, Reference, Verdict, Window, finite_metrics, fmt
from .config import CheckConfig, register_config, threshold
from .types import Task
from .univariate import FeatureDriftConfig

Values = Sequence[Any] | np.ndarray  # labels or targets, one per row

CONFIDENCE = 0.95
DEFAULT_BOOTSTRAP = 1000
# metrics where higher is better; for the others (errors) a rise is the drop
HIGHER_IS_BETTER = {"accuracy": True, "f1_macro": True, "auc": True, "mae": False, "rmse": False}
CLASSIFICATION_METRICS = ("accuracy", "f1_macro", "auc")
REGRESSION_METRICS = ("mae", "rmse")
DROP_METRIC_NAMES = {
    "accuracy": M.ACCURACY_DROP,
    "f1_macro": M.F1_DROP,
    "auc": M.AUC_DROP,
    "mae": M.MAE_INCREASE,
    "rmse": M.RMSE_INCREASE,
}


# --------------------------------------------------------------------------------------------
# metrics on integer-coded labels, vectorised over bootstrap resamples
# --------------------------------------------------------------------------------------------
def _confusions(t: np.ndarray, p: np.ndarray, k: int, idx: np.ndarray) -> np.ndarray:
    """Confusion matrices [B, k, k] of the resamples ``idx`` [B, n] (rows true, columns predicted)."""
    b = idx.shape[0]
    codes = t[idx] * k + p[idx] + (np.arange(b)[:, None] * k * k)
    return np.bincount(codes.reshape(-1), minlength=b * k * k).reshape(b, k, k)


def _f1_from_confusions(cm: np.ndarray) -> np.ndarray:
    """Macro F1 over the classes present in the truth or the predictions of each resample."""
    tp = np.diagonal(cm, axis1=1, axis2=2).astype(np.float64)
    fp = cm.sum(axis=1) - tp
    fn = cm.sum(axis=2) - tp
    denom = 2 * tp + fp + fn
    present = denom > 0
    f1 = np.where(present, 2 * tp / np.where(present, denom, 1), 0.0)
    return f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def _codes(y_true: Values, y_pred: Values, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
    names = list(dict.fromkeys([*classes, *(str(v) for v in y_true), *(str(v) for v in y_pred)]))
    index = {c: i for i, c in enumerate(names)}
    t = np.array([index[str(v)] for v in y_true], dtype=np.int64)
    p = np.array([index[str(v)] for v in y_pred], dtype=np.int64)
    return t, p, len(names)


@dataclass(frozen=True)
class MetricEstimate:
    value: float
    se: float  # bootstrap standard deviation
    low: float  # percentile bootstrap interval
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "se": self.se, "low": self.low, "high": self.high}


def _estimate(value: float, boot: np.ndarray, confidence: float) -> MetricEstimate:
    boot = boot[np.isfinite(boot)]
    if boot.size < 2:
        return MetricEstimate(value, float("nan"), float("nan"), float("nan"))
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(boot, [tail, 100 - tail])
    return MetricEstimate(float(value), float(boot.std(ddof=1)), float(lo), float(hi))


def classification_estimates(
    y_true: Values,
    y_pred: Values,
    probabilities: np.ndarray | None,
    classes: Sequence[str],
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    auc_boot: int | None = None,
) -> dict[str, MetricEstimate]:
    """Accuracy, macro F1 (and macro one-vs-rest AUC when probabilities are given) with bootstrap
    standard errors and intervals. ``auc_boot``: fewer resamples for AUC (a rank per class per resample)."""
    t, p, k = _codes(y_true, y_pred, classes)
    n = len(t)
    if n == 0:
        return {}
    rng = np.random.default_rng(seed)
    idx_all = rng.integers(0, n, size=(n_boot, n))
    acc_boot = np.empty(n_boot)
    f1_boot = np.empty(n_boot)
    chunk = max(1, 2_000_000 // max(n, 1))
    for s in range(0, n_boot, chunk):
        cm = _confusions(t, p, k, idx_all[s : s + chunk])
        acc_boot[s : s + chunk] = np.trace(cm, axis1=1, axis2=2) / n
        f1_boot[s : s + chunk] = _f1_from_confusions(cm)
    full = _confusions(t, p, k, np.arange(n)[None, :])
    out = {
        "accuracy": _estimate(float(np.mean(t == p)), acc_boot, confidence),
        "f1_macro": _estimate(float(_f1_from_confusions(full)[0]), f1_boot, confidence),
    }
    if probabilities is not None and len(classes):
        probs = np.asarray(probabilities, dtype=np.float64).reshape(n, -1)[:, : len(classes)]
        auc = _auc_macro(t, probs, np.arange(n))
        if auc == auc:
            b = auc_boot if auc_boot is not None else n_boot
            out["auc"] = _estimate(auc, _auc_macro_resamples(t, probs, idx_all[:b]), confidence)
    return out


def _auc_macro_resamples(t: np.ndarray, probs: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """:func:`_auc_macro` of every resample (each row of ``idx`` [B, n]) at once. A resample is its rows'
    counts, and the rank formula with mid-ranks is the count-weighted Mann-Whitney sum over the scores
    sorted once: the same figure, without a rank per class per resample."""
    b, n = idx.shape
    out = np.empty(b)
    chunk = max(1, 2_000_000 // max(n, 1))
    for s in range(0, b, chunk):
        part = idx[s : s + chunk]
        m = len(part)
        counts = np.bincount((part + np.arange(m)[:, None] * n).reshape(-1), minlength=m * n).reshape(m, n)
        out[s : s + chunk] = _weighted_auc_macro(t, probs, counts.astype(np.float64))
    return out


def _weighted_auc_macro(t: np.ndarray, probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Macro one-vs-rest AUC of each row of ``weights`` [B, n] (row counts); a class is skipped in a resample
    without both positives and negatives, or holding a non-finite score (as :func:`_auc_macro`)."""
    total = np.zeros(len(weights))
    counted = np.zeros(len(weights))
    for k in range(probs.shape[1]):
        finite = np.isfinite(probs[:, k])
        score = np.where(finite, probs[:, k], 0.0)
        usable = weights[:, ~finite].sum(axis=1) == 0
        order = np.argsort(score, kind="stable")
        ranked = score[order]
        starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # groups of tied scores: mid-ranks
        w = weights[:, order]
        positive = t[order] == k
        pos = np.add.reduceat(w * positive, starts, axis=1)
        neg = np.add.reduceat(w * ~positive, starts, axis=1)
        n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
        ok = usable & (n_pos > 0) & (n_neg > 0)
        below = np.cumsum(neg, axis=1) - neg
        auc = (pos * (below + 0.5 * neg)).sum(axis=1) / np.where(ok, n_pos * n_neg, 1.0)
        total += np.where(ok, auc, 0.0)
        counted += ok
    return np.where(counted > 0, total / np.maximum(counted, 1), np.nan)


def _auc_macro(t: np.ndarray, probs: np.ndarray, idx: np.ndarray) -> float:
    """Macro one-vs-rest AUC of the rows ``idx`` (class k = column k = code k), as
    :func:`monitoring.performance.roc_auc_ovr_macro` computes it, on integer codes; NaN when no class has both."""
    y = t[idx]
    aucs = []
    for k in range(probs.shape[1]):
        pos = y == k
        n_pos = int(pos.sum())
        n_neg = len(y) - n_pos
        score = probs[idx, k]
        if n_pos == 0 or n_neg == 0 or not np.isfinite(score).all():
            continue
        ranks = rankdata(score)
        aucs.append((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
    return float(np.mean(aucs)) if aucs else float("nan")


def regression_estimates(
    y_true: Values, y_pred: Values, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0, confidence: float = CONFIDENCE
) -> dict[str, MetricEstimate]:
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(p)
    err = p[ok] - t[ok]
    n = len(err)
    if n == 0:
        return {}
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    abs_err, sq_err = np.abs(err), err**2
    return {
        "mae": _estimate(float(abs_err.mean()), abs_err[idx].mean(axis=1), confidence),
        "rmse": _estimate(math.sqrt(float(sq_err.mean())), np.sqrt(sq_err[idx].mean(axis=1)), confidence),
    }


def measure_performance(
    task: Task | str,
    y_true: Values,
    predicted: Values,
    probabilities: np.ndarray | None = None,
    classes: Sequence[str] = (),
    *,
    source: str,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> dict[str, Any]:
    """The reference performance as the manifest stores it (``export_metrics["reference_performance"]``):
    ``{"source", "rows", "confidence", "bootstrap", "metrics": {name: {value, se, low, high}}}``."""
    task = Task(task)
    if task is Task.CLASSIFICATION:
        est = classification_estimates(y_true, predicted, probabilities, classes, n_boot, seed)
    else:
        est = regression_estimates(y_true, predicted, n_boot, seed)
    return json_clean(
        {
            "task": task.value,
            "source": source,
            "rows": len(y_true),
            "confidence": CONFIDENCE,
            "bootstrap": n_boot,
            "metrics": {k: v.to_dict() for k, v in est.items()},
        }
    )


# --------------------------------------------------------------------------------------------
# the test
# --------------------------------------------------------------------------------------------
def two_proportion_p_value(p_ref: float, n_ref: int, p_win: float, n_win: int) -> float:
    """One-sided p-value of H1: the window's proportion is below the reference's (pooled z-test)."""
    pooled = (p_ref * n_ref + p_win * n_win) / (n_ref + n_win)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_win))
    if se == 0:
        return 1.0 if p_win >= p_ref else 0.0
    return float(norm.sf((p_ref - p_win) / se))


def bound_p_value(metric: str, bound: float, window: MetricEstimate, n: int) -> float:
    """One-sided p-value of the window being worse than the baseline's conservative bound."""
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    gap = sign * (bound - window.value)  # positive: worse than the bound
    if metric == "accuracy":
        b = min(max(bound, 0.0), 1.0)
        se = math.sqrt(b * (1 - b) / n) if n else float("nan")
    else:
        se = window.se
    if not math.isfinite(se) or se == 0:
        return 1.0 if gap <= 0 else 0.0
    return float(norm.sf(gap / se))


def difference_p_value(drop: float, se_ref: float, se_win: float) -> float:
    """One-sided p-value of a drop (positive = worse) given both standard errors (normal approximation)."""
    se = math.sqrt(se_ref**2 + se_win**2)
    if not math.isfinite(se) or se == 0:
        return 1.0 if drop <= 0 else 0.0
    return float(norm.sf(drop / se))


METRIC_TEXT = {"accuracy": "accuracy", "f1_macro": "macro F1", "auc": "AUC", "mae": "MAE", "rmse": "RMSE"}


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    reference: float
    window: float
    drop: float  # positive = worse (accuracy lost, error gained)
    p_value: float
    test: str
    bound: float = float("nan")  # the conservative end of the baseline's 95% interval the window is tested against

    def to_dict(self) -> dict[str, Any]:
        return json_clean(self.__dict__)

    def text(self, per_test: float) -> str:
        """What moved, by how much, against what: ``AUC 0.894 vs reference 0.905 (-0.011; 95% lower bound
        0.899), p = 0.004 < 0.0167 corrected``."""
        sign = 1.0 if HIGHER_IS_BETTER[self.metric] else -1.0
        side = "lower" if sign > 0 else "upper"
        below = self.p_value < per_test
        return (
            f"{METRIC_TEXT.get(self.metric, self.metric)} {self.window:.3f} vs reference {self.reference:.3f} "
            f"({self.window - self.reference:+.3f}; 95% {side} bound {self.bound:.3f}), "
            f"p = {fmt(self.p_value)} {'<' if below else '>='} {per_test:.3g} corrected"
        )


@dataclass(frozen=True)
class PerformanceDropResult:
    task: str
    n_labels: int
    min_labels: int
    reference_source: str
    reference_rows: int
    alpha: float
    comparisons: tuple[MetricComparison, ...] = ()
    degraded: bool | None = None  # None: too few labels to say
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return json_clean(
            {
                "task": self.task,
                "n_labels": self.n_labels,
                "min_labels": self.min_labels,
                "reference_source": self.reference_source,
                "reference_rows": self.reference_rows,
                "alpha": self.alpha,
                "degraded": self.degraded,
                "comparisons": [c.to_dict() for c in self.comparisons],
                "notes": list(self.notes),
            }
        )

    @property
    def per_test(self) -> float:
        return self.alpha / max(len(self.comparisons), 1)

    def verdicts(self) -> list[Verdict]:
        if self.degraded is None and not self.comparisons:
            return [Verdict("performance_drop", None, None, None, None, f"{self.n_labels} labelled rows < {self.min_labels}")]
        return [
            Verdict(
                f"performance_drop[{c.metric}]",
                c.drop,
                c.p_value,
                self.per_test,
                None if self.degraded is None else c.p_value < self.per_test,
                f"{c.text(self.per_test)} on {self.n_labels} labels; "
                f"reference {self.reference_source}, {self.reference_rows} rows; {c.test}" + "".join(f"; {note}" for note in self.notes),
            )
            for c in self.comparisons
        ]

    def findings(self) -> list[Finding]:
        if not self.degraded:
            return []
        return [
            Finding(f"{c.text(self.per_test)}, on {self.n_labels} labels", PRIORITY_PERFORMANCE)
            for c in self.comparisons
            if c.p_value < self.per_test
        ]

    def metrics(self) -> list[Metric]:
        if self.degraded is None:
            return []
        return finite_metrics(
            [(DROP_METRIC_NAMES[c.metric], c.drop, None) for c in self.comparisons] + [(M.PERFORMANCE_DEGRADED, float(self.degraded), None)]
        )


@dataclass(frozen=True)
class ReferencePerformance:
    task: Task
    source: str
    rows: int
    metrics: dict[str, MetricEstimate]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], task: Task) -> ReferencePerformance | None:
        metrics = {
            k: MetricEstimate(
                float(v["value"]), float(v.get("se", float("nan"))), float(v.get("low", float("nan"))), float(v.get("high", float("nan")))
            )
            for k, v in (d.get("metrics") or {}).items()
            if k in HIGHER_IS_BETTER and isinstance(v, Mapping) and v.get("value") is not None
        }
        rows = int(d.get("rows") or 0)
        if not metrics or rows == 0:
            return None
        return cls(task, str(d.get("source", "unknown")), rows, metrics)


@register_config
@dataclass(frozen=True)
class PerformanceConfig(CheckConfig):
    """Performance on feedback labels (and target drift, which reads the same labels)."""

    performance_min_labels: int = threshold(
        200, ge=10, setting=True, help="No performance-drop or target-drift verdict on fewer labelled rows in the window"
    )
    performance_bootstrap: int = threshold(500, ge=1, help="Bootstrap resamples of the F1 / AUC / MAE / RMSE standard errors")
    # a page, not a report: at 0.05 a quiet hourly check of overlapping windows pages every few days
    performance_alpha: float = threshold(
        0.01,
        gt=0,
        lt=1,
        setting=True,
        help="Family-wise significance level of the performance-drop test on labels (Bonferroni over the metrics)",
    )
    performance_min_baseline_rows: int = threshold(
        50, ge=1, setting=True, help="No performance-drop verdict against a reference performance measured on fewer held-out rows"
    )


class PerformanceDropCheck(Check):
    """Window performance on its labels vs the reference performance (held-out at export)."""

    name = "performance_drop"
    metric_names = (M.ACCURACY_DROP, M.F1_DROP, M.AUC_DROP, M.MAE_INCREASE, M.RMSE_INCREASE, M.PERFORMANCE_DEGRADED)
    needs_rows = False

    def __init__(self, reference: Reference, baseline: ReferencePerformance) -> None:
        self.config = reference.config
        self.classes = reference.profile.outputs.classes
        self.baseline = baseline

    @classmethod
    def fit(cls, reference: Reference) -> PerformanceDropCheck | None:
        profile = reference.profile
        task = profile.outputs.task
        if task is None:
            return None
        stored = profile.reference_performance
        baseline = ReferencePerformance.from_dict(stored, task) if stored else None
        if baseline is None and profile.sample_targets is not None:
            baseline = _baseline_from_sample(reference, task)
            if baseline is not None:
                reference.note("reference performance measured on the reference rows (training data: optimistic)")
        if baseline is None:
            reference.note("no reference performance (the bundle has no held-out figures and no targets): performance drop not tested")
            return None
        return cls(reference, baseline)

    def run(self, window: Window) -> PerformanceDropResult | None:
        labels = window.labels
        if labels is None:
            return None
        cfg = self.config.section(PerformanceConfig)
        tests = self.config.section(FeatureDriftConfig)  # the family-wise alpha and the seed
        task = self.baseline.task
        common = dict(
            task=task.value,
            min_labels=cfg.performance_min_labels,
            reference_source=self.baseline.source,
            reference_rows=self.baseline.rows,
            alpha=cfg.performance_alpha,
        )
        pred = labels.predictions
        if task is Task.CLASSIFICATION:
            keep = np.array([v is not None for v in labels.y_true], dtype=bool)
            y = labels.y_true[keep]
            if pred.labels is not None:
                yp = pred.labels[keep]
            elif pred.probabilities is not None and len(self.classes):
                yp = np.array(self.classes, dtype=object)[np.nanargmax(np.nan_to_num(pred.probabilities[keep], nan=-1.0), axis=1)]
            else:
                return None
            n = len(y)
            if n < cfg.performance_min_labels:
                return PerformanceDropResult(n_labels=n, **common)  # type: ignore[arg-type]
            probs = pred.probabilities[keep] if pred.probabilities is not None else None
            yp = np.array(["\x00none" if v is None else str(v) for v in yp], dtype=object)
            boot = cfg.performance_bootstrap
            est = classification_estimates(y, yp, probs, self.classes, n_boot=boot, seed=tests.seed, auc_boot=min(200, boot))
        else:
            if pred.values is None:
                return None
            t = np.array([np.nan if v is None else float(v) for v in labels.y_true], dtype=np.float64)
            ok = np.isfinite(t) & np.isfinite(pred.values)
            n = int(ok.sum())
            if n < cfg.performance_min_labels:
                return PerformanceDropResult(n_labels=n, **common)  # type: ignore[arg-type]
            est = regression_estimates(t[ok], pred.values[ok], n_boot=cfg.performance_bootstrap, seed=tests.seed)
        comparisons = tuple(self._compare(metric, ref, est[metric], n) for metric, ref in self.baseline.metrics.items() if metric in est)
        if self.baseline.rows < cfg.performance_min_baseline_rows:
            note = (
                f"baseline too small: the reference performance was measured on {self.baseline.rows} rows "
                f"(< performance_min_baseline_rows {cfg.performance_min_baseline_rows}); no verdict, export with a larger holdout"
            )
            return PerformanceDropResult(n_labels=n, comparisons=comparisons, notes=(note,), **common)  # type: ignore[arg-type]
        per_test = cfg.performance_alpha / max(len(comparisons), 1)
        degraded = any(c.p_value < per_test for c in comparisons)
        return PerformanceDropResult(n_labels=n, comparisons=comparisons, degraded=degraded, **common)  # type: ignore[arg-type]

    @staticmethod
    def _compare(metric: str, ref: MetricEstimate, win: MetricEstimate, n: int) -> MetricComparison:
        """The window's metric against the conservative end of the baseline's 95% interval."""
        sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
        stored = ref.low if sign > 0 else ref.high
        bound = stored if math.isfinite(stored) else ref.value - sign * 1.96 * (ref.se if math.isfinite(ref.se) else 0.0)
        test = "binomial z-test at the bound" if metric == "accuracy" else "z-test on the window's bootstrap standard error"
        p = bound_p_value(metric, bound, win, n)
        return MetricComparison(metric, ref.value, win.value, sign * (ref.value - win.value), p, test, bound)


def _baseline_from_sample(reference: Reference, task: Task) -> ReferencePerformance | None:
    profile = reference.profile
    targets = profile.sample_targets
    pred = profile.sample_predictions
    assert targets is not None
    if task is Task.CLASSIFICATION:
        if pred.labels is None:
            return None
        keep = np.array([v is not None for v in targets], dtype=bool)
        probs = pred.probabilities[keep] if pred.probabilities is not None else None
        d = measure_performance(task, targets[keep], pred.labels[keep], probs, profile.outputs.classes, source="reference_rows", n_boot=200)
    else:
        if pred.values is None:
            return None
        d = measure_performance(task, np.asarray(targets, dtype=np.float64), pred.values, source="reference_rows", n_boot=200)
    return ReferencePerformance.from_dict(d, task)
