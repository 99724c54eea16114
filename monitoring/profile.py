"""Reference profile: everything the drift check needs to know about the reference data.

Fitted in memory with :meth:`ReferenceProfile.fit` from the reference table and the model's
predictions on it: the drift-check function does it once per process from the bundle's reference
rows (the profile is not persisted).

Statistics (missing rate, category frequencies, quantiles, mean/sd, histogram counts) are
computed on the *full* reference table. The tests that need raw values (KS, Wasserstein, MMD,
PCA, Mahalanobis, prediction KS) use a joint row sample of at most ``max_sample_rows`` rows
(all columns of a row are kept together, so the multivariate methods see real rows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np

from ._util import (
    BOOLEAN_LEVELS,
    categorical_levels,
    coerce_column,
    finite_or_none,
    label_text,
    label_texts,
    level_counts,
    null_mask,
    table_rows,
)
from .histograms import HistogramBins, categorical_bins, numeric_bins
from .types import MAX_SAMPLE_ROWS, ColumnSpec, FeatureKind, FeatureSpec, OutputsSpec, Table, Task, feature_specs, task_of

DEFAULT_QUANTILES: tuple[float, ...] = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)


# --------------------------------------------------------------------------------------------
# model outputs
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PredictionColumns:
    """Model outputs for a table's rows (any field may be None).

    labels: the classifiers' predicted class (any type; normalised by :func:`monitoring._util.label_text`);
    probabilities: float array [N, K] in ``OutputsSpec.classes`` order; a 1-D array (or one column)
    for a binary model is the positive class's (the second class) probability;
    values: float array (regression predictions).
    """

    labels: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    values: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.labels is not None:
            # labels compared after normalising their type: 1.0 and "1" are the same class
            object.__setattr__(self, "labels", label_texts(self.labels))
        if self.probabilities is not None:
            p = np.asarray(self.probabilities, dtype=np.float64)
            if p.ndim == 1:
                p = p.reshape(-1, 1)
            object.__setattr__(self, "probabilities", p)
        if self.values is not None:
            object.__setattr__(self, "values", np.asarray(self.values, dtype=np.float64).reshape(-1))
        lengths = {len(a) for a in (self.labels, self.probabilities, self.values) if a is not None}
        if len(lengths) > 1:
            raise ValueError(f"prediction columns have different lengths: {sorted(lengths)}")

    @property
    def n_rows(self) -> int:
        for a in (self.labels, self.probabilities, self.values):
            if a is not None:
                return len(a)
        return 0

    @property
    def is_empty(self) -> bool:
        return self.labels is None and self.probabilities is None and self.values is None

    def take(self, idx: np.ndarray) -> PredictionColumns:
        return PredictionColumns(
            labels=None if self.labels is None else self.labels[idx],
            probabilities=None if self.probabilities is None else self.probabilities[idx],
            values=None if self.values is None else self.values[idx],
        )


# --------------------------------------------------------------------------------------------
# per-feature profile
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureProfile:
    spec: FeatureSpec
    n_rows: int
    n_missing: int
    n_wrong_type: int = 0
    # numeric (and boolean: mean = share of 1s)
    n_valid: int = 0
    mean: float = float("nan")
    sd: float = float("nan")
    min: float = float("nan")
    max: float = float("nan")
    quantile_levels: tuple[float, ...] = ()
    quantiles: tuple[float, ...] = ()  # NaN when there are no values
    # categorical / boolean: level -> count (most frequent first); booleans use "0"/"1"
    category_counts: dict[str, int] = field(default_factory=dict)
    known_categories: tuple[str, ...] = ()  # schema categories + observed (the "seen" set)
    histogram: HistogramBins = field(default_factory=lambda: HistogramBins(kind="numeric"))
    histogram_counts: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> FeatureKind:
        return self.spec.kind

    @property
    def missing_rate(self) -> float:
        return self.n_missing / self.n_rows if self.n_rows else float("nan")

    @property
    def category_frequencies(self) -> dict[str, float]:
        total = sum(self.category_counts.values())
        return {k: v / total for k, v in self.category_counts.items()} if total else {}

    def quantile(self, q: float) -> float:
        for lvl, val in zip(self.quantile_levels, self.quantiles):
            if abs(lvl - q) < 1e-12:
                return val
        raise KeyError(q)

    @property
    def iqr(self) -> float:
        try:
            return self.quantile(0.75) - self.quantile(0.25)
        except KeyError:
            return float("nan")

    @property
    def scale(self) -> float:
        """Robust spread used to normalise numeric effect sizes: sd, else IQR/1.349, else 1."""
        for s in (self.sd, self.iqr / 1.349):
            if np.isfinite(s) and s > 0:
                return float(s)
        return 1.0

    @property
    def range(self) -> tuple[float | None, float | None]:
        """Reference range for out-of-range checks: the wider of schema and observed range."""
        lo = [x for x in (self.spec.min, finite_or_none(self.min)) if x is not None]
        hi = [x for x in (self.spec.max, finite_or_none(self.max)) if x is not None]
        return (min(lo) if lo else None, max(hi) if hi else None)


def profile_feature(
    spec: FeatureSpec,
    column: Any,
    quantile_levels: tuple[float, ...] = DEFAULT_QUANTILES,
    histogram_bins: int = 20,
) -> FeatureProfile:
    values, null, wrong = coerce_column(spec, column)
    n, n_missing, n_wrong = len(values), int(null.sum()), int(wrong.sum())
    if spec.kind == FeatureKind.CATEGORICAL or spec.kind == FeatureKind.BOOLEAN:
        levels = categorical_levels(spec, values)
        counts = level_counts(levels)
        known: tuple[str, ...]
        stats: NumericStats = {}
        if spec.kind == FeatureKind.BOOLEAN:
            known = BOOLEAN_LEVELS
            stats = _numeric_stats(values[~np.isnan(values)], quantile_levels)
        else:
            known = tuple(sorted(set(spec.categories) | set(counts)))
        bins = categorical_bins(counts, known)
        return FeatureProfile(
            spec,
            n,
            n_missing,
            n_wrong,
            **stats,
            category_counts=counts,
            known_categories=known,
            histogram=bins,
            histogram_counts=tuple(int(c) for c in bins.count(levels, null)),
        )
    finite = values[~np.isnan(values)]
    bins = numeric_bins(finite, histogram_bins)
    return FeatureProfile(
        spec,
        n,
        n_missing,
        n_wrong,
        **_numeric_stats(finite, quantile_levels),
        histogram=bins,
        histogram_counts=tuple(int(c) for c in bins.count(values, null)),
    )


class NumericStats(TypedDict, total=False):
    """The numeric fields of a :class:`FeatureProfile` (absent: left at their NaN defaults)."""

    n_valid: int
    mean: float
    sd: float
    min: float
    max: float
    quantile_levels: tuple[float, ...]
    quantiles: tuple[float, ...]


def _numeric_stats(finite: np.ndarray, quantile_levels: tuple[float, ...]) -> NumericStats:
    levels = tuple(float(q) for q in quantile_levels)
    if finite.size == 0:
        return NumericStats(n_valid=0, quantile_levels=levels, quantiles=tuple(float("nan") for _ in levels))
    return NumericStats(
        n_valid=int(finite.size),
        mean=float(finite.mean()),
        sd=float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
        min=float(finite.min()),
        max=float(finite.max()),
        quantile_levels=levels,
        quantiles=tuple(float(x) for x in np.quantile(finite, quantile_levels)),
    )


# --------------------------------------------------------------------------------------------
# output profile
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutputProfile:
    task: Task | None
    classes: tuple[str, ...] = ()
    n_rows: int = 0
    label_counts: dict[str, int] = field(default_factory=dict)
    n_missing_labels: int = 0


def infer_task(predictions: PredictionColumns | None, outputs: OutputsSpec | None = None) -> Task | None:
    if outputs is not None:
        return task_of(outputs.task)
    if predictions is None or predictions.is_empty:
        return None
    if predictions.values is not None:
        return Task.REGRESSION
    return Task.CLASSIFICATION


def profile_outputs(predictions: PredictionColumns | None, outputs: OutputsSpec | None = None) -> OutputProfile:
    task = infer_task(predictions, outputs)
    if predictions is None or predictions.is_empty:
        return OutputProfile(task=task, classes=tuple(str(label_text(c)) for c in outputs.classes) if outputs else ())
    classes: tuple[str, ...] = tuple(str(label_text(c)) for c in outputs.classes) if outputs is not None else ()
    label_counts: dict[str, int] = {}
    n_missing = 0
    if predictions.labels is not None:
        label_counts = level_counts(predictions.labels)
        n_missing = int(null_mask(predictions.labels).sum())
        if not classes:
            classes = tuple(sorted(label_counts))
    if not classes and predictions.probabilities is not None:
        classes = tuple(str(i) for i in range(predictions.probabilities.shape[1]))
    return OutputProfile(task=task, classes=classes, n_rows=predictions.n_rows, label_counts=label_counts, n_missing_labels=n_missing)


# --------------------------------------------------------------------------------------------
# reference profile
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    features: tuple[FeatureSpec, ...]
    feature_profiles: dict[str, FeatureProfile]
    outputs: OutputProfile
    n_rows: int
    sample: Table  # joint row sample (<= max_sample_rows rows), coerced column representation
    sample_predictions: PredictionColumns  # predictions for the sampled rows
    # ground truth of the sampled rows (object array of class names, or floats), when the reference has it
    sample_targets: np.ndarray | None = None
    # the model's held-out performance measured at export (manifest export_metrics["reference_performance"])
    reference_performance: Mapping[str, Any] | None = None
    # each feature's Shapley contributions in the reference's explained rows (NaN where a row lacks the
    # feature); None when the reference holds no explanations (monitoring.attribution)
    contributions: Table | None = None

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def sample_rows(self) -> int:
        return table_rows(self.sample)

    def __getitem__(self, name: str) -> FeatureProfile:
        return self.feature_profiles[name]

    @classmethod
    def fit(
        cls,
        features: Sequence[ColumnSpec],
        table: Mapping[str, np.ndarray],
        predictions: PredictionColumns | None = None,
        *,
        outputs: OutputsSpec | None = None,
        max_sample_rows: int = MAX_SAMPLE_ROWS,
        quantile_levels: tuple[float, ...] = DEFAULT_QUANTILES,
        histogram_bins: int = 20,
        seed: int = 0,
        targets: Sequence[Any] | None = None,
        reference_performance: Mapping[str, Any] | None = None,
        contributions: Mapping[str, np.ndarray] | None = None,
    ) -> ReferenceProfile:
        features = feature_specs(features)
        missing = [f.name for f in features if f.name not in table]
        if missing:
            raise KeyError(f"reference table lacks features {missing}")
        sub = {f.name: table[f.name] for f in features}
        n = table_rows(sub)
        predictions = predictions if predictions is not None else PredictionColumns()
        if not predictions.is_empty and predictions.n_rows != n:
            raise ValueError(f"predictions have {predictions.n_rows} rows, table has {n}")
        profiles = {
            f.name: profile_feature(f, sub[f.name], quantile_levels=quantile_levels, histogram_bins=histogram_bins) for f in features
        }
        if n > max_sample_rows:
            idx = np.sort(np.random.default_rng(seed).choice(n, size=max_sample_rows, replace=False))
        else:
            idx = np.arange(n)
        sample: Table = {}
        for f in features:
            values, _, _ = coerce_column(f, sub[f.name])
            sample[f.name] = values[idx]
        sample_pred = predictions.take(idx) if not predictions.is_empty else PredictionColumns()
        sample_targets = None
        if targets is not None:
            if len(targets) != n:
                raise ValueError(f"{len(targets)} targets, table has {n} rows")
            task = infer_task(predictions, outputs)
            t = np.asarray(list(targets), dtype=object)[idx]
            sample_targets = (
                np.array([np.nan if v is None else float(v) for v in t], dtype=np.float64)
                if task is Task.REGRESSION
                else np.array([None if v is None else str(v) for v in t], dtype=object)
            )
        return cls(
            features=features,
            feature_profiles=profiles,
            outputs=profile_outputs(predictions, outputs),
            n_rows=n,
            sample=sample,
            sample_predictions=sample_pred,
            sample_targets=sample_targets,
            reference_performance=reference_performance,
            contributions=None if contributions is None else {k: np.asarray(v, dtype=np.float64) for k, v in contributions.items()},
        )


@dataclass(frozen=True, eq=False)
class LabeledPredictions:
    """Ground truth aligned row by row with the model outputs for the same requests."""

    y_true: np.ndarray
    predictions: PredictionColumns

    def __post_init__(self) -> None:
        y = np.asarray(self.y_true).reshape(-1)
        object.__setattr__(self, "y_true", y)
        if not self.predictions.is_empty and self.predictions.n_rows != len(y):
            raise ValueError(f"{len(y)} labels but {self.predictions.n_rows} prediction rows")
