"""Numeric encoding of a table for the multivariate checks (MMD, PCA reconstruction, outliers). Pure numpy.

:class:`TabularEncoder` (fitted on the reference sample): numeric and boolean features are imputed
with the reference median and standardised with the reference mean/sd (sd 0 -> 1), each followed by
a 0/1 missing indicator; categorical features are one-hot encoded over the reference categories (at
most ``max_categories`` most frequent), plus a "null" and an "other/unseen" column.
:class:`PCA`: principal components by SVD.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ._util import coerce_column, level_counts, table_rows
from .types import FeatureKind, FeatureSpec

WINSOR_QUANTILES = (0.01, 0.99)


def winsorized_sd(finite: np.ndarray) -> float:
    """The sd of the values clipped to their :data:`WINSOR_QUANTILES` (0 when constant)."""
    lo, hi = np.quantile(finite, WINSOR_QUANTILES)
    return float(np.clip(finite, lo, hi).std())


# --------------------------------------------------------------------------------------------
class TabularEncoder:
    """``complete_rows=True``: the encoding of the outlier and PCA checks, for rows without nulls
    (:meth:`complete_mask`): no missing-indicator or null columns, so a missing value never
    counts as an extreme point, and numeric columns centred on the median and scaled by the sd of
    their values winsorized at the reference's 1st and 99th percentiles (:func:`winsorized_sd`), so
    that one extreme reference row does not set the scale. Not the IQR: a feature whose middle half
    is nearly constant (hours worked: mostly 40) would get a tiny IQR, a scaled variance hundreds of
    times the others', and the PCA's retained components would then be that one column, blind to a
    change of the other columns' correlation."""

    def __init__(self, features: Sequence[FeatureSpec], max_categories: int = 50, complete_rows: bool = False) -> None:
        self.features = tuple(features)
        self.max_categories = max_categories
        self.complete_rows = complete_rows
        self.numeric_params: dict[str, tuple[float, float, float]] = {}  # median, mean, scale
        self.categories: dict[str, list[str]] = {}
        self.column_names: list[str] = []

    def fit(self, table: Mapping[str, np.ndarray]) -> TabularEncoder:
        names: list[str] = []
        for spec in self.features:
            values, _null, _wrong = coerce_column(spec, table[spec.name])
            if spec.kind == FeatureKind.CATEGORICAL:
                cats = list(level_counts(values))[: self.max_categories]
                self.categories[spec.name] = cats
                null_name = [] if self.complete_rows else [f"{spec.name}:null"]
                names += [f"{spec.name}={c}" for c in cats] + null_name + [f"{spec.name}:other"]
            else:
                finite = values[np.isfinite(values)]
                if finite.size:
                    median, mean = float(np.median(finite)), float(finite.mean())
                    sd = float(finite.std())
                    if self.complete_rows:
                        mean, sd = median, (winsorized_sd(finite) or sd)
                else:
                    median, mean, sd = 0.0, 0.0, 0.0
                self.numeric_params[spec.name] = (median, mean, sd if sd > 0 else 1.0)
                names += [spec.name] if self.complete_rows else [spec.name, f"{spec.name}:missing"]
        self.column_names = names
        return self

    def complete_mask(self, table: Mapping[str, np.ndarray]) -> np.ndarray:
        """Rows with a valid value in every feature (no null, no wrong type)."""
        present = {f.name: table[f.name] for f in self.features if f.name in table}
        n = table_rows(present)
        mask = np.ones(n, dtype=bool)
        for spec in self.features:
            col = present.get(spec.name)
            if col is None:
                return np.zeros(n, dtype=bool)
            _values, null, wrong = coerce_column(spec, col)
            mask &= ~null & ~wrong
        return mask

    @property
    def n_columns(self) -> int:
        return len(self.column_names)

    def transform(self, table: Mapping[str, np.ndarray]) -> np.ndarray:
        present = {f.name: table[f.name] for f in self.features if f.name in table}
        n = table_rows(present)
        blocks: list[np.ndarray] = []
        for spec in self.features:
            col = present.get(spec.name)
            if col is None:
                col = np.full(n, None, dtype=object) if spec.kind == FeatureKind.CATEGORICAL else np.full(n, np.nan)
            values, null, wrong = coerce_column(spec, col)
            if spec.kind == FeatureKind.CATEGORICAL:
                cats = self.categories[spec.name]
                index = {c: i for i, c in enumerate(cats)}
                extra = 1 if self.complete_rows else 2
                block = np.zeros((n, len(cats) + extra))
                k_null, k_other = len(cats), len(cats) + extra - 1
                for i, v in enumerate(values):
                    if v is None:
                        if not self.complete_rows:
                            block[i, k_null] = 1.0
                    else:
                        block[i, index.get(v, k_other)] = 1.0
                blocks.append(block)
            else:
                median, mean, scale = self.numeric_params[spec.name]
                missing = ~np.isfinite(values)
                x = np.where(missing, median, values)
                if self.complete_rows:
                    blocks.append(((x - mean) / scale).reshape(-1, 1))
                else:
                    blocks.append(np.column_stack([(x - mean) / scale, missing.astype(np.float64)]))
        return np.hstack(blocks) if blocks else np.zeros((n, 0))


class PCA:
    """Principal components by SVD of the centred data. ``n_components``: an int, or a float
    in (0, 1] = keep the fewest components explaining that share of the variance."""

    def __init__(self, n_components: int | float | None = None, max_components: int | None = None) -> None:
        self.n_components = n_components
        self.max_components = max_components

    def fit(self, x: np.ndarray) -> PCA:
        x = np.asarray(x, dtype=np.float64)
        self.mean_ = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
        _, s, vt = np.linalg.svd(x - self.mean_, full_matrices=False)
        var = s**2 / max(len(x) - 1, 1)
        total = var.sum()
        k = len(var)
        if isinstance(self.n_components, float) and 0 < self.n_components <= 1:
            if total > 0:
                k = int(np.searchsorted(np.cumsum(var) / total, self.n_components - 1e-12) + 1)
        elif self.n_components is not None:
            k = int(self.n_components)
        if self.max_components is not None:
            k = min(k, self.max_components)
        k = max(0, min(k, len(var)))
        self.components_ = vt[:k]
        self.explained_variance_ = var[:k]
        self.explained_variance_ratio_ = var[:k] / total if total > 0 else np.zeros(k)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean_) @ self.components_.T

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        return z @ self.components_ + self.mean_

    def reconstruction_errors(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return ((x - self.inverse_transform(self.transform(x))) ** 2).sum(axis=1)
