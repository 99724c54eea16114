"""Shared histogram bins: fixed on the reference (in the profile), applied to any window.

Numeric features: ``bins`` equal-width bins between the reference 1st and 99th percentiles
(falling back to min/max, then to ``value +- 0.5`` for a constant column), plus an underflow
bin, an overflow bin and a null bin. Categorical/boolean features: the reference's most
frequent categories (up to ``max_levels``), then "(other)" for the remaining known categories,
"(unseen)" for categories the reference never had, and "(null)".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ._util import level_counts

OTHER_LABEL = "(other)"
UNSEEN_LABEL = "(unseen)"
NULL_LABEL = "(null)"


@dataclass(frozen=True)
class HistogramBins:
    kind: str  # "numeric" | "categorical"
    edges: tuple[float, ...] = ()  # numeric: interior edges, len = bins + 1
    levels: tuple[str, ...] = ()  # categorical: displayed levels
    known: tuple[str, ...] = ()  # categorical: every category the reference knows

    @property
    def n_bins(self) -> int:
        if self.kind == "numeric":
            return (len(self.edges) - 1 if len(self.edges) > 1 else 0) + 3
        return len(self.levels) + 3

    def labels(self) -> list[str]:
        if self.kind == "numeric":
            e = self.edges
            if len(e) < 2:
                return ["(below)", "(above)", NULL_LABEL]
            inner = [f"[{_fmt(e[i])}, {_fmt(e[i + 1])}{']' if i == len(e) - 2 else ')'}" for i in range(len(e) - 1)]
            return [f"< {_fmt(e[0])}"] + inner + [f"> {_fmt(e[-1])}", NULL_LABEL]
        return list(self.levels) + [OTHER_LABEL, UNSEEN_LABEL, NULL_LABEL]

    def count(self, values: np.ndarray, null_mask: np.ndarray) -> np.ndarray:
        """Counts per bin. ``values``: float array (NaN ignored) for numeric bins, object array
        of str/None for categorical bins. Null rows are counted from ``null_mask``."""
        counts = np.zeros(self.n_bins, dtype=np.int64)
        counts[-1] = int(np.count_nonzero(null_mask))
        if self.kind == "numeric":
            v = np.asarray(values, dtype=np.float64)
            v = v[~np.isnan(v)]
            if len(self.edges) < 2:
                return counts
            lo, hi = self.edges[0], self.edges[-1]
            counts[0] = int(np.count_nonzero(v < lo))
            counts[-2] = int(np.count_nonzero(v > hi))
            inner, _ = np.histogram(v[(v >= lo) & (v <= hi)], bins=np.asarray(self.edges))
            counts[1:-2] = inner
            return counts
        return self.count_levels(level_counts(values), int(counts[-1]))

    def count_levels(self, levels: Mapping[str, int], nulls: int) -> np.ndarray:
        """Counts per bin of a categorical feature from its level -> rows and its null rows (exact counts
        over a window whose rows are only sampled)."""
        counts = np.zeros(self.n_bins, dtype=np.int64)
        counts[-1] = nulls
        index = {lvl: i for i, lvl in enumerate(self.levels)}
        known = set(self.known)
        n_lv = len(self.levels)
        for level, c in levels.items():
            i = index.get(level)
            if i is not None:
                counts[i] += c
            elif level in known:
                counts[n_lv] += c
            else:
                counts[n_lv + 1] += c
        return counts


def numeric_bins(finite_values: np.ndarray, bins: int = 20) -> HistogramBins:
    v = np.asarray(finite_values, dtype=np.float64)
    if v.size == 0:
        return HistogramBins(kind="numeric", edges=())
    lo, hi = np.quantile(v, [0.01, 0.99])
    if not hi > lo:
        lo, hi = float(v.min()), float(v.max())
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return HistogramBins(kind="numeric", edges=tuple(float(x) for x in np.linspace(lo, hi, bins + 1)))


def categorical_bins(counts: Mapping[str, int], known: tuple[str, ...], max_levels: int = 30) -> HistogramBins:
    ordered = list(counts.keys())  # most frequent first
    for k in known:
        if k not in counts:
            ordered.append(k)
    return HistogramBins(kind="categorical", levels=tuple(ordered[:max_levels]), known=tuple(known))


def _fmt(x: float) -> str:
    return f"{x:.4g}"
