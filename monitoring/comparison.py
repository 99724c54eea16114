"""Comparing a challenger with the champion on the same traffic (numpy/scipy only). See docs/versions.md.

Two designs, two sets of tests:

- shadow: both versions scored the SAME rows (paired). Agreement is the share of rows with the same
  predicted class, with a Wilson score interval; disagreements are broken down by the champion's
  predicted class and by the champion's confidence (its top probability). On labelled rows the
  accuracy difference (challenger - champion) = (c - b) / n, where b = rows only the champion got
  right and c = rows only the challenger got right, is tested with the exact McNemar test
  (a binomial test of c against b + c at 1/2) and given a paired Wald interval
  (se = sqrt(b + c - (c - b)^2 / n) / n). Regression: the MAE difference is the mean of
  |e_challenger| - |e_champion| per row, with a paired t-test and its t interval.
- ab: each version answered DIFFERENT rows. Accuracy difference: two-proportion z-test (pooled
  standard error for the p-value, unpooled for the interval). Regression: Welch's t-test on the
  absolute errors, Welch-Satterthwaite interval.

Macro F1 and AUC (regression: MAE and RMSE) differences get a percentile bootstrap interval
(``bootstrap_differences``; shadow: the row pairs resampled, A/B: each version's rows on their own).

The challenger is "significantly worse" when the difference is in the bad direction (lower accuracy,
higher MAE) and its p-value is below ``alpha``. The prediction distributions are compared too:
classes by a chi-square test of homogeneity and the total variation distance, regression values
by the two-sample Kolmogorov-Smirnov test.

Computation only: the HTML page of a comparison is rendered by ``monitoring.html_report.render_comparison_html``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from ._util import json_clean

# ChallengerDrift is re-exported: the comparison's verdict keys are read from here too
from .metric_names import CHALLENGER_DRIFT as CHALLENGER_DRIFT
from .metric_names import (
    CHALLENGER_WORSE,
    DATASET_DRIFT,
    PREDICTION_DRIFT,
    SHADOW_AGREEMENT,
    VARIANT_ACCURACY,
    VARIANT_F1,
    VARIANT_LABELED_ROWS,
    VARIANT_MAE,
    VARIANT_RMSE,
)
from .performance import PerformanceResult, classification_metrics, regression_metrics

CHAMPION = "champion"
CHALLENGER = "challenger"
SHADOW = "shadow"
AB = "ab"
# champion's top probability: [0.0, 0.5), [0.5, 0.6), ..., [0.9, 1.0]
CONFIDENCE_EDGES = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# the bootstrap intervals of the F1 / AUC (MAE / RMSE) differences (``bootstrap_differences``)
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 20_261_127
BOOTSTRAP_BATCH = 250  # resamples held in memory at once: 250 x rows weights
BOOTSTRAP_MIN_ROWS = 10  # fewer labelled rows (per version): no interval
HIGHER_IS_BETTER = frozenset({"accuracy", "f1_macro", "auc"})


@dataclass(frozen=True, eq=False)
class VariantOutputs:
    """One version's answers on its rows and the rows' labels (None where no label came).

    Classifiers: ``labels`` (predicted classes) and optionally ``probabilities`` [n, K] in the
    order of ``classes``; regression: ``values``.
    """

    version: str
    y_true: np.ndarray
    labels: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    values: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "y_true", np.asarray(self.y_true, dtype=object).reshape(-1))
        if self.labels is not None:
            object.__setattr__(self, "labels", np.array([str(v) for v in np.asarray(self.labels, dtype=object).reshape(-1)], dtype=object))
        if self.values is not None:
            object.__setattr__(self, "values", np.asarray(self.values, dtype=np.float64).reshape(-1))
        if self.probabilities is not None:
            object.__setattr__(self, "probabilities", np.asarray(self.probabilities, dtype=np.float64).reshape(len(self.y_true), -1))
        answers = self.labels if self.labels is not None else self.values
        if answers is None or len(answers) != len(self.y_true):
            raise ValueError(
                f"version {self.version}: {len(self.y_true)} label slots but {None if answers is None else len(answers)} answers"
            )

    @property
    def n(self) -> int:
        return len(self.y_true)

    @property
    def labelled(self) -> np.ndarray:
        return np.array([v is not None for v in self.y_true], dtype=bool)


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Wilson score interval of a proportion k / n (None, None for n = 0)."""
    if n == 0:
        return None, None
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Agreement:
    """How often the two versions answer the same on the same rows (shadow, classifiers)."""

    rows: int
    agreeing: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    by_champion_class: list[dict[str, Any]]  # class, rows, disagreeing, rate, challenger_said {class: n}
    by_confidence: list[dict[str, Any]]  # low, high, rows, disagreeing, rate
    mean_abs_difference: float | None = None  # regression: mean |challenger - champion|


@dataclass(frozen=True)
class Difference:
    """challenger - champion of ``metric`` on labelled rows, with its test."""

    metric: str  # "accuracy" | "mae"
    test: str  # "mcnemar_exact" | "two_proportion_z" | "paired_t" | "welch_t"
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n_champion: int
    n_challenger: int
    detail: dict[str, Any] = field(default_factory=dict)  # the test's counts (b, c; k1, k2)

    @property
    def challenger_better(self) -> bool | None:
        if self.estimate is None:
            return None
        return self.estimate > 0 if self.metric in HIGHER_IS_BETTER else self.estimate < 0


@dataclass(frozen=True)
class ComparisonReport:
    mode: str  # "shadow" | "ab"
    task: str  # "classification" | "regression"
    alpha: float
    versions: dict[str, str]  # variant -> version
    rows: dict[str, int]  # variant -> rows compared
    performance: dict[str, PerformanceResult]
    difference: Difference | None
    prediction_distribution: dict[str, Any]
    agreement: Agreement | None = None
    # F1 / AUC (MAE / RMSE) differences with bootstrap intervals (``bootstrap_differences``)
    metric_differences: tuple[Difference, ...] = ()

    @property
    def challenger_worse(self) -> bool:
        d = self.difference
        return bool(d is not None and d.p_value is not None and d.p_value < self.alpha and d.challenger_better is False)

    def to_dict(self) -> dict[str, Any]:
        return json_clean(
            {
                "mode": self.mode,
                "task": self.task,
                "alpha": self.alpha,
                "versions": self.versions,
                "rows": self.rows,
                "agreement": None if self.agreement is None else self.agreement.__dict__,
                "performance": {v: p.to_dict() for v, p in self.performance.items()},
                "difference": None
                if self.difference is None
                else {**self.difference.__dict__, "challenger_better": self.difference.challenger_better},
                "metric_differences": [{**d.__dict__, "challenger_better": d.challenger_better} for d in self.metric_differences],
                "challenger_worse": self.challenger_worse,
                "prediction_distribution": self.prediction_distribution,
            }
        )

    def metrics(self) -> list[tuple[str, float, str]]:
        """(name, value, variant): the service publishes each under the variant's ModelVersion."""
        out: list[tuple[str, float, str]] = []
        if self.agreement is not None and self.agreement.rate is not None:
            out.append((SHADOW_AGREEMENT, self.agreement.rate, CHALLENGER))
        for variant, p in self.performance.items():
            if p.n_labels == 0:
                continue
            out.append((VARIANT_LABELED_ROWS, float(p.n_labels), variant))
            for name, value in ((VARIANT_ACCURACY, p.accuracy), (VARIANT_F1, p.f1_macro), (VARIANT_MAE, p.mae), (VARIANT_RMSE, p.rmse)):
                if value is not None and math.isfinite(value):
                    out.append((name, float(value), variant))
        if self.difference is not None and self.difference.p_value is not None:
            out.append((CHALLENGER_WORSE, 1.0 if self.challenger_worse else 0.0, CHALLENGER))
        return out


def challenger_only_drift(
    champion: Sequence[tuple[str, float, str | None]], challenger: Sequence[tuple[str, float, str | None]]
) -> float | None:
    """1.0 when the challenger's drift check of a window found dataset or prediction drift and the
    champion's check of the same window found neither, else 0.0; None when the challenger's check
    published neither verdict (an empty window). Arguments: each check's published metrics.

    Both versions see the same traffic (shadow: the same rows; A/B: a hash split of the same clients),
    so drift in the inputs is the champion's alarms' to page; what is left is drift only the challenger
    sees: traffic unlike its own training data, or outputs that moved on inputs that did not."""

    def drifted(metrics: Sequence[tuple[str, float, str | None]]) -> bool | None:
        verdicts = [
            v
            for name, v, feature in metrics
            if feature is None and name in (DATASET_DRIFT, PREDICTION_DRIFT) and v is not None and math.isfinite(v)
        ]
        return None if not verdicts else any(v >= 1 for v in verdicts)

    mine = drifted(challenger)
    if mine is None:
        return None
    return 1.0 if mine and not drifted(champion) else 0.0


# ---------------------------------------------------------------- the tests


def mcnemar_exact(champion_correct: np.ndarray, challenger_correct: np.ndarray, confidence: float = 0.95) -> Difference:
    """Paired accuracy difference (see the module docstring)."""
    a, b_ = np.asarray(champion_correct, dtype=bool), np.asarray(challenger_correct, dtype=bool)
    n = len(a)
    b = int(np.sum(a & ~b_))  # only the champion right
    c = int(np.sum(~a & b_))  # only the challenger right
    if n == 0:
        return Difference("accuracy", "mcnemar_exact", None, None, None, None, 0, 0, {"b": 0, "c": 0})
    estimate = (c - b) / n
    p = float(stats.binomtest(c, b + c, 0.5).pvalue) if b + c else 1.0
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    se = math.sqrt(max(0.0, b + c - (c - b) ** 2 / n)) / n
    return Difference("accuracy", "mcnemar_exact", estimate, estimate - z * se, estimate + z * se, p, n, n, {"b": b, "c": c})


def two_proportion_z(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> Difference:
    """Accuracy k2/n2 (challenger) - k1/n1 (champion) on independent rows."""
    detail = {"champion_correct": k1, "challenger_correct": k2}
    if n1 == 0 or n2 == 0:
        return Difference("accuracy", "two_proportion_z", None, None, None, None, n1, n2, detail)
    p1, p2 = k1 / n1, k2 / n2
    estimate = p2 - p1
    pooled = (k1 + k2) / (n1 + n2)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p = 1.0 if se_pooled == 0 else float(2 * stats.norm.sf(abs(estimate) / se_pooled))
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return Difference("accuracy", "two_proportion_z", estimate, estimate - z * se, estimate + z * se, p, n1, n2, detail)


def paired_abs_error_t(champion_err: np.ndarray, challenger_err: np.ndarray, confidence: float = 0.95) -> Difference:
    """MAE difference on the same rows: mean of |e_challenger| - |e_champion|, paired t-test."""
    d = np.abs(np.asarray(challenger_err, dtype=np.float64)) - np.abs(np.asarray(champion_err, dtype=np.float64))
    n = len(d)
    if n < 2:
        return Difference("mae", "paired_t", float(d.mean()) if n else None, None, None, None, n, n)
    estimate = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0:
        return Difference("mae", "paired_t", estimate, estimate, estimate, 1.0 if estimate == 0 else 0.0, n, n)
    p = float(stats.ttest_rel(np.abs(challenger_err), np.abs(champion_err)).pvalue)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return Difference("mae", "paired_t", estimate, estimate - half, estimate + half, p, n, n)


def welch_abs_error_t(champion_err: np.ndarray, challenger_err: np.ndarray, confidence: float = 0.95) -> Difference:
    """MAE difference on different rows: Welch's t-test on the absolute errors."""
    a = np.abs(np.asarray(champion_err, dtype=np.float64))
    b = np.abs(np.asarray(challenger_err, dtype=np.float64))
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        return Difference("mae", "welch_t", None, None, None, None, n1, n2)
    estimate = float(b.mean() - a.mean())
    v1, v2 = a.var(ddof=1) / n1, b.var(ddof=1) / n2
    se = math.sqrt(v1 + v2)
    if se == 0:
        return Difference("mae", "welch_t", estimate, estimate, estimate, 1.0 if estimate == 0 else 0.0, n1, n2)
    df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    p = float(stats.ttest_ind(b, a, equal_var=False).pvalue)
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return Difference("mae", "welch_t", estimate, estimate - half, estimate + half, p, n1, n2, {"df": df})


# ---------------------------------------------------------------- the pieces of a report


def agreement(champion: VariantOutputs, challenger: VariantOutputs, classes: Sequence[str], confidence: float = 0.95) -> Agreement:
    """Paired rows: how often the challenger answers as the champion did, and where it does not."""
    if champion.n != challenger.n:
        raise ValueError(f"shadow rows must be paired: {champion.n} champion rows, {challenger.n} challenger rows")
    n = champion.n
    if champion.values is not None and challenger.values is not None:  # regression
        diff = np.abs(challenger.values - champion.values)
        return Agreement(n, 0, None, None, None, [], [], mean_abs_difference=float(diff.mean()) if n else None)
    assert champion.labels is not None and challenger.labels is not None
    same = champion.labels == challenger.labels
    k = int(same.sum())
    lo, hi = wilson_interval(k, n, confidence)
    by_class = []
    for cls in list(classes) + sorted(set(champion.labels) - set(classes)):
        rows = champion.labels == cls
        m = int(rows.sum())
        if not m:
            continue
        off = rows & ~same
        said = {str(v): int(c) for v, c in zip(*np.unique(challenger.labels[off], return_counts=True))} if off.any() else {}
        by_class.append({"class": cls, "rows": m, "disagreeing": int(off.sum()), "rate": float(off.sum() / m), "challenger_said": said})
    by_conf = []
    if champion.probabilities is not None and champion.probabilities.size:
        top = np.nanmax(champion.probabilities, axis=1)
        for i, (low, high) in enumerate(zip(CONFIDENCE_EDGES[:-1], CONFIDENCE_EDGES[1:])):
            last = i == len(CONFIDENCE_EDGES) - 2
            rows = (top >= low) & ((top <= high) if last else (top < high))
            m = int(rows.sum())
            off = int((rows & ~same).sum())
            by_conf.append({"low": low, "high": high, "rows": m, "disagreeing": off, "rate": off / m if m else None})
    return Agreement(n, k, k / n if n else None, lo, hi, by_class, by_conf)


def prediction_distribution(champion: VariantOutputs, challenger: VariantOutputs, classes: Sequence[str]) -> dict[str, Any]:
    if champion.values is not None and challenger.values is not None:
        a, b = champion.values[np.isfinite(champion.values)], challenger.values[np.isfinite(challenger.values)]
        if len(a) == 0 or len(b) == 0:
            return {"test": "ks_2samp", "p_value": None}
        ks = stats.ks_2samp(a, b)
        return {
            "test": "ks_2samp",
            "statistic": float(ks.statistic),
            "p_value": float(ks.pvalue),
            "champion_mean": float(a.mean()),
            "challenger_mean": float(b.mean()),
        }
    assert champion.labels is not None and challenger.labels is not None
    names = list(classes) + sorted((set(champion.labels) | set(challenger.labels)) - set(classes))
    counts = np.array([[int(np.sum(o.labels == c)) for c in names] for o in (champion, challenger)], dtype=np.float64)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    out: dict[str, Any] = {
        "test": "chi2_homogeneity",
        "classes": names,
        "champion_share": shares[0].tolist(),
        "challenger_share": shares[1].tolist(),
        "total_variation": float(0.5 * np.abs(shares[0] - shares[1]).sum()),
        "p_value": None,
    }
    used = counts.sum(axis=0) > 0
    if counts[0].sum() and counts[1].sum() and used.sum() >= 2:
        chi = stats.chi2_contingency(counts[:, used], correction=False)
        out.update(statistic=float(chi.statistic), p_value=float(chi.pvalue))
    return out


def _performance(o: VariantOutputs, classes: Sequence[str]) -> PerformanceResult:
    if o.values is not None:
        return regression_metrics(o.y_true, o.values)
    return classification_metrics(o.y_true, o.labels, o.probabilities, classes)


def _correct(o: VariantOutputs, rows: np.ndarray) -> np.ndarray:
    assert o.labels is not None
    return np.array([str(o.y_true[i]) == o.labels[i] for i in np.flatnonzero(rows)], dtype=bool)


def _errors(o: VariantOutputs, rows: np.ndarray) -> np.ndarray:
    assert o.values is not None
    idx = np.flatnonzero(rows)
    return o.values[idx] - np.array([float(o.y_true[i]) for i in idx], dtype=np.float64)


def compare_shadow(
    champion: VariantOutputs,
    challenger: VariantOutputs,
    classes: Sequence[str] = (),
    alpha: float = 0.05,
    confidence: float = 0.95,
    bootstrap_resamples: int = BOOTSTRAP_RESAMPLES,
) -> ComparisonReport:
    """Both versions on the same rows (row i of one is row i of the other; the labels are the champion's)."""
    agree = agreement(champion, challenger, classes, confidence)
    regression = champion.values is not None
    rows = champion.labelled
    if regression:
        difference = paired_abs_error_t(_errors(champion, rows), _errors(challenger, rows), confidence)
    else:
        difference = mcnemar_exact(_correct(champion, rows), _correct(challenger, rows), confidence)
    return ComparisonReport(
        SHADOW,
        "regression" if regression else "classification",
        alpha,
        {CHAMPION: champion.version, CHALLENGER: challenger.version},
        {CHAMPION: champion.n, CHALLENGER: challenger.n},
        {CHAMPION: _performance(champion, classes), CHALLENGER: _performance(challenger, classes)},
        difference,
        prediction_distribution(champion, challenger, classes),
        agree,
        tuple(bootstrap_differences(champion, challenger, classes, paired=True, confidence=confidence, n_resamples=bootstrap_resamples)),
    )


def compare_ab(
    champion: VariantOutputs,
    challenger: VariantOutputs,
    classes: Sequence[str] = (),
    alpha: float = 0.05,
    confidence: float = 0.95,
    bootstrap_resamples: int = BOOTSTRAP_RESAMPLES,
) -> ComparisonReport:
    """Each version on the rows it answered."""
    regression = champion.values is not None
    a, b = champion.labelled, challenger.labelled
    if regression:
        difference = welch_abs_error_t(_errors(champion, a), _errors(challenger, b), confidence)
    else:
        ca, cb = _correct(champion, a), _correct(challenger, b)
        difference = two_proportion_z(int(ca.sum()), len(ca), int(cb.sum()), len(cb), confidence)
    return ComparisonReport(
        AB,
        "regression" if regression else "classification",
        alpha,
        {CHAMPION: champion.version, CHALLENGER: challenger.version},
        {CHAMPION: champion.n, CHALLENGER: challenger.n},
        {CHAMPION: _performance(champion, classes), CHALLENGER: _performance(challenger, classes)},
        difference,
        prediction_distribution(champion, challenger, classes),
        metric_differences=tuple(
            bootstrap_differences(champion, challenger, classes, paired=False, confidence=confidence, n_resamples=bootstrap_resamples)
        ),
    )


# ---------------------------------------------------------------- bootstrap intervals of metric differences
#
# Macro F1 and AUC (and MAE / RMSE) have no simple standard error, so their differences get a
# percentile bootstrap (scipy.stats.bootstrap, method="percentile", a fixed seed: the same window gives
# the same interval). Shadow: the rows are resampled as pairs (paired=True: a resample keeps each
# row's champion and challenger answers together); A/B: each version's rows are resampled on their
# own. A resample is a vector of row weights (how often each row was drawn), so each metric of a
# resample is a weighted sum over the original rows: no per-resample sort, O(rows) per resample.


@dataclass(frozen=True, eq=False)
class _Scored:
    """One version's labelled rows, coded for weighted metrics: classes as integer codes, or errors."""

    y: np.ndarray | None = None  # [n] int codes of the labels
    pred: np.ndarray | None = None  # [n] int codes of the predictions
    n_codes: int = 0
    probabilities: np.ndarray | None = None  # [n, K] in ``classes`` order
    errors: np.ndarray | None = None  # [n] prediction - label (regression)

    @property
    def n(self) -> int:
        return len(self.errors if self.errors is not None else self.y)  # type: ignore[arg-type]


def _scored(
    o: VariantOutputs, rows: np.ndarray, classes: Sequence[str], codes: dict[str, int], y_true: np.ndarray | None = None
) -> _Scored:
    """``y_true``: the labels to score against (shadow: the champion's), else ``o``'s own."""
    idx = np.flatnonzero(rows)
    truth = o.y_true if y_true is None else y_true
    if o.values is not None:
        return _Scored(errors=o.values[idx] - np.array([float(truth[i]) for i in idx], dtype=np.float64))
    assert o.labels is not None
    y = np.array([codes[str(truth[i])] for i in idx], dtype=np.int64)
    pred = np.array([codes[o.labels[i]] for i in idx], dtype=np.int64)
    probabilities = None
    if o.probabilities is not None and classes and o.probabilities.shape[1] >= len(classes):
        p = o.probabilities[idx, : len(classes)]
        probabilities = p if np.isfinite(p).all() else None
    return _Scored(y=y, pred=pred, n_codes=len(codes), probabilities=probabilities)


def _weighted_f1_macro(w: np.ndarray, s: _Scored) -> np.ndarray:
    """Macro F1 under row weights ``w`` [B, n], over the classes present (in labels or predictions):
    ``monitoring.performance.f1_macro`` of each resample."""
    assert s.y is not None and s.pred is not None
    codes = np.arange(s.n_codes)
    t, p = s.y[:, None] == codes, s.pred[:, None] == codes  # [n, classes]
    counts = w @ np.hstack([t & p, p, t]).astype(np.float64)  # one product: [B, 3 x classes]
    tp, predicted, actual = np.split(counts, 3, axis=1)
    denom = predicted + actual  # 2 TP + FP + FN
    here = denom > 0  # the class is in the resample's labels or predictions
    f1 = np.where(here, 2 * tp / np.where(here, denom, 1.0), 0.0)
    present = here.sum(axis=1)
    return np.where(present > 0, f1.sum(axis=1) / np.maximum(present, 1), np.nan)


def _weighted_auc_ovr(w: np.ndarray, s: _Scored, n_classes: int) -> np.ndarray:
    """Macro one-vs-rest AUC under row weights (ties count one half), over the classes with positives
    and negatives in the resample: ``monitoring.performance.roc_auc_ovr_macro`` of each resample."""
    assert s.y is not None and s.probabilities is not None
    aucs = []
    total = w.sum(axis=1)
    for k in range(n_classes):
        score = s.probabilities[:, k]
        order = np.argsort(score, kind="stable")
        positive = (s.y == k)[order].astype(np.float64)
        ranked = w[:, order]
        n_pos = ranked @ positive
        n_neg = total - n_pos
        starts = np.flatnonzero(np.r_[True, np.diff(score[order]) != 0])  # groups of tied scores
        if len(starts) == len(order):  # no ties (the usual case): each row is its own group
            neg = ranked * (1.0 - positive)
            wins = ((np.cumsum(neg, axis=1) - neg) * ranked) @ positive
        else:
            pos = np.add.reduceat(ranked * positive, starts, axis=1)  # [B, groups]
            neg = np.add.reduceat(ranked * (1.0 - positive), starts, axis=1)
            wins = (pos * (np.cumsum(neg, axis=1) - 0.5 * neg)).sum(axis=1)  # negatives below, ties count one half
        ok = (n_pos > 0) & (n_neg > 0)
        aucs.append(np.where(ok, wins / np.where(ok, n_pos * n_neg, 1.0), np.nan))
    stacked = np.stack(aucs)
    counted = np.isfinite(stacked).sum(axis=0)
    return np.where(counted > 0, np.nansum(stacked, axis=0) / np.maximum(counted, 1), np.nan)


def _weighted_metrics(w: np.ndarray, s: _Scored, names: Sequence[str], n_classes: int) -> np.ndarray:
    """[len(names), B]: each metric of each resample (``w``: [B, n] row weights)."""
    out = []
    for name in names:
        if name == "f1_macro":
            out.append(_weighted_f1_macro(w, s))
        elif name == "auc":
            out.append(_weighted_auc_ovr(w, s, n_classes))
        else:
            assert s.errors is not None
            total = w.sum(axis=1)
            moment = w @ (np.abs(s.errors) if name == "mae" else s.errors**2) / total
            out.append(moment if name == "mae" else np.sqrt(moment))
    return np.stack(out)


def _weights(i: np.ndarray, n: int) -> np.ndarray:
    """Resampled row indices [..., n] -> how often each row was drawn [B, n]."""
    i = np.asarray(i).reshape(-1, n)
    b = i.shape[0]
    return np.bincount((i + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def bootstrap_differences(
    champion: VariantOutputs,
    challenger: VariantOutputs,
    classes: Sequence[str] = (),
    paired: bool = True,
    confidence: float = 0.95,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> list[Difference]:
    """challenger - champion of macro F1 and AUC (classifiers; AUC when both give probabilities) or of MAE
    and RMSE (regression) on the labelled rows, each with a percentile bootstrap interval.

    ``paired``: the same rows (shadow; the labels are the champion's), resampled as pairs; else each
    version's own labelled rows, resampled independently (A/B)."""
    regression = champion.values is not None
    if paired:
        rows_a = rows_b = champion.labelled
    else:
        rows_a, rows_b = champion.labelled, challenger.labelled
    codes: dict[str, int] = {}
    if not regression:
        assert champion.labels is not None and challenger.labels is not None
        truth_b = champion.y_true if paired else challenger.y_true
        seen = [str(v) for v in champion.y_true[rows_a]] + [str(v) for v in truth_b[rows_b]]
        extra = set(seen) | set(champion.labels[rows_a]) | set(challenger.labels[rows_b])
        for name in list(classes) + sorted(extra - set(classes)):
            codes.setdefault(name, len(codes))
    a = _scored(champion, rows_a, classes, codes)
    b = _scored(challenger, rows_b, classes, codes, y_true=champion.y_true if paired else None)
    if regression:
        names: list[str] = ["mae", "rmse"]
    else:
        names = ["f1_macro"] + (["auc"] if a.probabilities is not None and b.probabilities is not None else [])
    test = "paired_bootstrap" if paired else "bootstrap"
    detail = {"method": "percentile", "resamples": n_resamples, "seed": seed, "confidence": confidence}

    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        if paired:
            w = _weights(samples[0], a.n)
            return _weighted_metrics(w, b, names, len(classes)) - _weighted_metrics(w, a, names, len(classes))
        wa, wb = _weights(samples[0], a.n), _weights(samples[1], b.n)
        return _weighted_metrics(wb, b, names, len(classes)) - _weighted_metrics(wa, a, names, len(classes))

    estimate = statistic(*([np.arange(a.n)] if paired else [np.arange(a.n), np.arange(b.n)]))[:, 0]
    low: list[float | None] = [None] * len(names)
    high: list[float | None] = [None] * len(names)
    if min(a.n, b.n) >= BOOTSTRAP_MIN_ROWS:
        data = (np.arange(a.n),) if paired else (np.arange(a.n), np.arange(b.n))
        with warnings.catch_warnings():
            # every resample giving the same difference (say, two versions answering alike) is a
            # legitimate zero-width percentile interval; scipy warns about it for BCa's sake
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            result = stats.bootstrap(
                data,
                statistic,
                n_resamples=n_resamples,
                batch=BOOTSTRAP_BATCH,
                vectorized=True,
                paired=paired,
                confidence_level=confidence,
                method="percentile",
                rng=np.random.default_rng(seed),
            )
        interval = result.confidence_interval
        low, high = [_finite(v) for v in np.atleast_1d(interval.low)], [_finite(v) for v in np.atleast_1d(interval.high)]
    return [Difference(name, test, _finite(estimate[k]), low[k], high[k], None, a.n, b.n, dict(detail)) for k, name in enumerate(names)]


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None
