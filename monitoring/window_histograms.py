"""Reference vs window histograms on shared bins, for the HTML report: one per feature (bins fixed in
the profile, :mod:`monitoring.histograms`) and one per model output."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ._util import categorical_levels, coerce_column, json_clean
from .histograms import HistogramBins
from .prediction_drift import LABEL_OUTPUT, VALUE_OUTPUT, probability_columns, probability_output
from .profile import PredictionColumns, ReferenceProfile
from .types import WindowCounts

PROBABILITY_BINS = 10
OTHER_CLASS = "(other)"


@dataclass(frozen=True)
class FeatureHistogram:
    feature: str
    kind: str  # "numeric" | "categorical"
    labels: tuple[str, ...]
    reference_counts: tuple[int, ...]
    target_counts: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return json_clean(asdict(self))


def feature_histograms(
    profile: ReferenceProfile, table: Mapping[str, np.ndarray], counts: WindowCounts | None = None
) -> tuple[FeatureHistogram, ...]:
    """Per feature: the window's counts on the profile's bins (wrong-typed values are not binned). ``counts``:
    exact counts over the whole window when ``table`` is a sample of it; a feature they bin is taken from them."""
    out = []
    for spec in profile.features:
        fp = profile[spec.name]
        bins = fp.histogram
        exact = _exact_bins(bins, spec.name, counts)
        values, null, wrong = coerce_column(spec, table[spec.name])
        if exact is not None:
            binned = exact
        elif bins.kind == "categorical":
            levels = categorical_levels(spec, values)
            if wrong.any():
                levels = levels.copy()
                levels[wrong] = None
            binned = bins.count(levels, null)
        else:
            binned = bins.count(values, null)
        out.append(
            FeatureHistogram(
                feature=spec.name,
                kind=bins.kind,
                labels=tuple(bins.labels()),
                reference_counts=tuple(int(c) for c in fp.histogram_counts),
                target_counts=tuple(int(c) for c in binned),
            )
        )
    return tuple(out)


def _exact_bins(bins: HistogramBins, name: str, counts: WindowCounts | None) -> np.ndarray | None:
    """The feature's bins from exact window counts, when they hold them (categories, or a numeric histogram of as many bins)."""
    if counts is None:
        return None
    nulls = int(counts.nulls.get(name, 0))
    if bins.kind == "categorical" and name in counts.categories:
        return bins.count_levels(counts.categories[name], nulls)
    numeric = counts.histograms.get(name)
    if bins.kind == "numeric" and numeric is not None and len(numeric) == bins.n_bins - 1:
        return np.array([*numeric, nulls], dtype=np.int64)
    return None


def _counts(values: np.ndarray, edges: np.ndarray) -> tuple[int, ...]:
    return tuple(int(x) for x in np.histogram(values, bins=edges)[0])


def output_histograms(profile: ReferenceProfile, target: PredictionColumns | None) -> tuple[FeatureHistogram, ...]:
    """Reference vs window histograms of the model's outputs: predicted-class shares and binned
    class probabilities (classifiers), values on reference-decile bins (regression). Named like
    the prediction-drift tests of the same outputs."""
    ref = profile.sample_predictions
    if target is None or target.is_empty or ref is None or ref.is_empty:
        return ()
    out: list[FeatureHistogram] = []
    classes = list(profile.outputs.classes)
    if ref.labels is not None and target.labels is not None and classes:
        levels = classes + [OTHER_CLASS]

        def class_counts(labels: np.ndarray) -> tuple[int, ...]:
            known = {c: 0 for c in levels}
            for v in labels:
                known[v if v in known else OTHER_CLASS] += 1
            return tuple(known[c] for c in levels)

        out.append(FeatureHistogram(LABEL_OUTPUT, "categorical", tuple(levels), class_counts(ref.labels), class_counts(target.labels)))
    if ref.probabilities is not None and target.probabilities is not None and classes:
        edges = np.linspace(0.0, 1.0, PROBABILITY_BINS + 1)
        labels = tuple(f"[{a:.1f}, {b:.1f})" for a, b in zip(edges[:-1], edges[1:]))
        ref_cols = probability_columns(classes, ref.probabilities)
        win_cols = probability_columns(classes, target.probabilities)
        if ref_cols is not None and win_cols is not None and len(ref_cols) == len(win_cols):
            for (c, ref_col), (_, win_col) in zip(ref_cols, win_cols):
                r = _counts(np.clip(ref_col, 0, 1), edges)
                t = _counts(np.clip(win_col, 0, 1), edges)
                out.append(FeatureHistogram(probability_output(c), "numeric", labels, r, t))
    if ref.values is not None and target.values is not None:
        rv, tv = ref.values[np.isfinite(ref.values)], target.values[np.isfinite(target.values)]
        if rv.size:
            inner = np.unique(np.quantile(rv, np.linspace(0.1, 0.9, 9)))
            edges = np.concatenate(([-np.inf], inner, [np.inf]))
            labels = tuple([f"< {inner[0]:.4g}"] + [f"[{a:.4g}, {b:.4g})" for a, b in zip(inner[:-1], inner[1:])] + [f">= {inner[-1]:.4g}"])
            out.append(FeatureHistogram(VALUE_OUTPUT, "numeric", labels, _counts(rv, edges), _counts(tv, edges)))
    return tuple(out)
