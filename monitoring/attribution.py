"""What moved the predictions: each feature's mean |contribution| to the explained output (its Shapley value,
docs/api.md#explanations) in the window's explained rows, against the reference's explained rows.

A prediction drift says the outputs moved; this says through which features. The reference's contributions
are written into the bundle's reference sample at export, the window's come from captured explanations
(``capture_explanations``); both explain the same model against the same background. The features are ranked
by the growth of their mean |contribution| (window minus reference), the largest first. A feature *moved the
predictions* when that growth is at least ``attribution_shift_threshold`` of the reference's total mean
|contribution| (the sum over the features: the typical size of what the explanations split) **and** a Welch
test of the two means, Bonferroni-corrected over the features, gives p < ``alpha``. Fewer than
``attribution_min_rows`` explained window rows: the ranking is shown, with no verdict.

A diagnostic: it publishes no metric and pages no one; its findings follow the drifted outputs in the
root cause ("model output moved through bill_length_mm: ..."). The check does not apply (its result is
None) when the reference holds no explanations, and has nothing to check when the window holds none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from ._util import json_clean
from .check_protocol import PRIORITY_OUTPUT_DRIFT, Finding, Metric, ProfileCheck, Reference, Verdict, Window, fmt
from .config import CheckConfig, register_config, threshold
from .univariate import FeatureDriftConfig

DEFAULT_ATTRIBUTION_SHIFT_THRESHOLD = 0.1
DEFAULT_ATTRIBUTION_MIN_ROWS = 30
PRIORITY_ATTRIBUTION = PRIORITY_OUTPUT_DRIFT + 1  # right after the drifted outputs it explains


@register_config
@dataclass(frozen=True)
class AttributionConfig(CheckConfig):
    attribution_shift_threshold: float = threshold(
        DEFAULT_ATTRIBUTION_SHIFT_THRESHOLD,
        ge=0,
        help="A feature moved the predictions when its mean |contribution| grew by this share of the reference's total",
    )
    attribution_min_rows: int = threshold(
        DEFAULT_ATTRIBUTION_MIN_ROWS, ge=2, help="Fewest explained window rows for an attribution verdict"
    )


@dataclass(frozen=True)
class FeatureAttribution:
    """One feature's mean |contribution|, reference and window."""

    feature: str
    reference: float
    window: float
    p_value: float | None  # Welch's test of the two means, Bonferroni-corrected; None: not testable
    moved: bool | None  # None: no verdict (too few rows, or the feature not in the window's explanations)
    window_rows: int  # explained window rows holding this feature

    @property
    def change(self) -> float:
        return self.window - self.reference

    def to_dict(self) -> dict[str, Any]:
        return json_clean(
            {
                "feature": self.feature,
                "reference_mean_abs": self.reference,
                "window_mean_abs": self.window,
                "change": self.change,
                "p_value_corrected": self.p_value,
                "moved": self.moved,
                "window_rows": self.window_rows,
            }
        )


@dataclass(frozen=True)
class AttributionResult:
    features: tuple[FeatureAttribution, ...]  # the largest growth of mean |contribution| first
    reference_rows: int  # explained reference rows
    window_rows: int  # explained window rows
    reference_total: float  # sum over the features of the reference's mean |contribution|
    shift_threshold: float  # share of reference_total
    alpha: float
    min_rows: int

    @property
    def moved(self) -> bool | None:
        """A feature moved the predictions; None when no feature could be tested."""
        tested = [f.moved for f in self.features if f.moved is not None]
        return any(tested) if tested else None

    @property
    def moved_features(self) -> list[str]:
        return [f.feature for f in self.features if f.moved]

    def verdicts(self) -> list[Verdict]:
        top = self.features[0] if self.features else None
        share = top.change / self.reference_total if top is not None and self.reference_total > 0 else None
        detail = (
            f"{top.feature}: mean |contribution| {fmt(top.window)}, reference {fmt(top.reference)}; {self.window_rows} explained rows"
            if top is not None
            else ""
        )
        return [Verdict("attribution shift", share, top.p_value if top else None, self.shift_threshold, self.moved, detail)]

    def findings(self) -> list[Finding]:
        return [
            Finding(
                f"model output moved through {f.feature}: mean |contribution| {fmt(f.window)}, reference {fmt(f.reference)} "
                f"(+{fmt(f.change)} >= {self.shift_threshold:g} of the reference's total {fmt(self.reference_total)}, "
                f"p = {fmt(f.p_value)} < {self.alpha:g} corrected; {f.window_rows} explained rows)",
                PRIORITY_ATTRIBUTION,
                f.feature,
            )
            for f in self.features
            if f.moved
        ]

    def metrics(self) -> list[Metric]:
        return []  # a diagnostic: the report's, no alarm's

    def to_dict(self) -> dict[str, Any]:
        return json_clean(
            {
                "moved": self.moved,
                "moved_features": self.moved_features,
                "reference_rows": self.reference_rows,
                "window_rows": self.window_rows,
                "reference_total": self.reference_total,
                "shift_threshold": self.shift_threshold,
                "alpha": self.alpha,
                "min_rows": self.min_rows,
                "features": [f.to_dict() for f in self.features],
            }
        )


def _abs_values(column: np.ndarray | None) -> np.ndarray:
    if column is None:
        return np.zeros(0)
    values = np.abs(np.asarray(column, dtype=np.float64))
    return values[np.isfinite(values)]


def compare_attributions(
    reference: Mapping[str, np.ndarray],
    window: Mapping[str, np.ndarray],
    features: list[str],
    *,
    shift_threshold: float = DEFAULT_ATTRIBUTION_SHIFT_THRESHOLD,
    alpha: float = 0.05,
    min_rows: int = DEFAULT_ATTRIBUTION_MIN_ROWS,
) -> AttributionResult:
    """Each feature's mean |contribution| in ``window`` against ``reference`` (feature -> contributions of the
    explained rows, NaN where a row lacks the feature), ranked by growth (see the module docstring)."""
    ref = {name: _abs_values(reference.get(name)) for name in features}
    win = {name: _abs_values(window.get(name)) for name in features}
    ref_means = {name: float(v.mean()) if len(v) else float("nan") for name, v in ref.items()}
    total = float(np.nansum(list(ref_means.values())))
    testable = [name for name in features if len(ref[name]) >= 2 and len(win[name]) >= max(min_rows, 2)]
    out = []
    for name in features:
        mean = float(win[name].mean()) if len(win[name]) else float("nan")
        p = moved = None
        if name in testable:
            p_raw = float(stats.ttest_ind(win[name], ref[name], equal_var=False, alternative="greater").pvalue)
            p = min(1.0, (p_raw if np.isfinite(p_raw) else 1.0) * len(testable))
            moved = bool(p < alpha and mean - ref_means[name] >= shift_threshold * total)
        out.append(FeatureAttribution(name, ref_means[name], mean, p, moved, len(win[name])))
    ranked = sorted(out, key=lambda f: -f.change if np.isfinite(f.change) else np.inf)
    rows = max((len(v) for v in win.values()), default=0)
    ref_rows = max((len(v) for v in ref.values()), default=0)
    return AttributionResult(tuple(ranked), ref_rows, rows, total, shift_threshold, alpha, min_rows)


class AttributionCheck(ProfileCheck):
    """What moved the predictions (needs explanations in the reference and in the window)."""

    name = "attribution"
    metric_names = ()

    @classmethod
    def fit(cls, reference: Reference) -> AttributionCheck | None:
        return cls(reference) if reference.profile.contributions is not None else None

    def run(self, window: Window) -> AttributionResult | None:
        if window.contributions is None or self.profile.contributions is None:
            return None
        own = self.config.section(AttributionConfig)
        return compare_attributions(
            self.profile.contributions,
            window.contributions,
            self.profile.feature_names,
            shift_threshold=own.attribution_shift_threshold,
            alpha=self.config.section(FeatureDriftConfig).alpha,
            min_rows=own.attribution_min_rows,
        )
