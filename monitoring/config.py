"""The thresholds of the drift check, in one frozen config (``driftcheck.drift_service.drift_config``
builds it from the deploy settings)."""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from ._util import json_clean
from .multivariate import (
    DEFAULT_MMD_MAX_ROWS,
    DEFAULT_MMD_PERMUTATIONS,
    DEFAULT_RECONSTRUCTION_RATIO_THRESHOLD,
    DEFAULT_RECONSTRUCTION_VARIANCE,
)
from .outliers import DEFAULT_OUTLIER_RATE_THRESHOLD
from .univariate import (
    BONFERRONI,
    DEFAULT_ALPHA,
    DEFAULT_CATEGORICAL_EFFECT_THRESHOLD,
    DEFAULT_NUMERIC_EFFECT_THRESHOLD,
    FDR,
)


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds of the drift check. Defaults and their evidence: see the module docstrings of
    :mod:`monitoring.univariate` (effect thresholds), :mod:`monitoring.multivariate`,
    :mod:`monitoring.outliers` and :mod:`monitoring.expectations`.

    ``drift_share_threshold``: dataset drift when at least one feature drifted and
    drifted/tested >= this share. The default 0.0 means "any feature drifted": with Bonferroni
    this is a family-wise test whose false-alarm rate is at most ``alpha`` (Evidently's
    convention is 0.5, i.e. "half the features drifted"; raise it for very wide tables).
    """

    alpha: float = DEFAULT_ALPHA
    correction: str = BONFERRONI  # "bonferroni" | "fdr"
    numeric_effect_threshold: float = DEFAULT_NUMERIC_EFFECT_THRESHOLD  # Wasserstein / reference sd
    categorical_effect_threshold: float = DEFAULT_CATEGORICAL_EFFECT_THRESHOLD  # Jensen-Shannon distance
    drift_share_threshold: float = 0.0
    # the effect gate of every univariate test (features and outputs) is the reference's own
    # no-drift effect quantile at the window's size (monitoring.univariate.NoiseGate); the two
    # effect thresholds above are then only its floor. False: the fixed thresholds alone.
    adaptive_effect_thresholds: bool = True
    mmd_enabled: bool = True
    mmd_max_rows: int = DEFAULT_MMD_MAX_ROWS
    mmd_permutations: int = DEFAULT_MMD_PERMUTATIONS
    mmd_pca_components: int | None = None
    reconstruction_variance: float = DEFAULT_RECONSTRUCTION_VARIANCE
    reconstruction_ratio_threshold: float = DEFAULT_RECONSTRUCTION_RATIO_THRESHOLD
    outlier_rate_threshold: float = DEFAULT_OUTLIER_RATE_THRESHOLD
    missing_rate_tolerance: float = 0.05
    missing_rate_z: float = 3.0
    out_of_range_threshold: float = 0.01
    unseen_category_threshold: float = 0.01
    wrong_type_threshold: float = 0.0
    # a value never seen in training flags the unseen-category check once it is in at least this
    # many window rows, whatever its share (a few hundred rows of a large window stay under 1%)
    min_new_value_rows: int = 20
    seed: int = 0
    # performance against the reference, estimated performance and target drift (issue 11)
    performance_min_labels: int = 200  # no performance / target-drift verdict on fewer labelled rows
    performance_bootstrap: int = 500  # bootstrap resamples for the F1 / AUC / MAE / RMSE standard errors
    estimated_accuracy_drop_threshold: float = 0.05  # CBPE: page when the estimated accuracy falls this far
    estimated_min_rows: int = 200  # no CBPE verdict on smaller windows
    # requests refused by validation (the caller passes their counts: monitoring.expectations.RejectCounts):
    # the data-quality check fails when more than this share of the window's requests was refused
    reject_rate_threshold: float = 0.05
    reject_min_requests: int = 100  # no reject-rate verdict (and RejectRate 0) on windows of fewer requests

    def __post_init__(self) -> None:
        if self.correction not in (BONFERRONI, FDR):
            raise ValueError(f"correction must be {BONFERRONI!r} or {FDR!r}, got {self.correction!r}")
        for name, value in asdict(self).items():
            if value is None and name in _OPTIONAL:
                continue
            kind = _KINDS.get(name, numbers.Real)
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
                raise TypeError(f"DriftConfig.{name} must be {kind.__name__}, got {value!r}")
            if name in _RANGES:
                lo, hi, lo_open, hi_open = _RANGES[name]
                f = float(value)  # type: ignore[arg-type]  # a Real, checked above
                if not (lo < f if lo_open else lo <= f) or not (f < hi if hi_open else f <= hi) or math.isnan(f):
                    interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
                    raise ValueError(f"DriftConfig.{name} must be in {interval}, got {value!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DriftConfig:
        """The config from a mapping (e.g. JSON); an unknown key raises naming it (a misspelt
        ``alpah`` must not silently leave the default in place)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown DriftConfig keys {unknown}; known keys: {sorted(known)}")
        return cls(**dict(values))

    def arguments_for(self, fn: Callable[..., Any], **renamed: str) -> dict[str, Any]:
        """The settings ``fn`` takes, as keyword arguments: each of its parameters named like a field of
        this config (``renamed``: parameter -> field, where the names differ). One mapping for every
        detector a check builds from the config, so a new threshold reaches it by its name."""
        names = {f.name for f in fields(self)}
        wanted = {param: renamed.get(param, param) for param in inspect.signature(fn).parameters}
        return {param: getattr(self, field) for param, field in wanted.items() if field in names}

    def to_dict(self) -> dict[str, Any]:
        return json_clean(asdict(self))


_INF = math.inf
# field -> (low, high, low open, high open): every threshold is checked when the config is built
_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "alpha": (0, 1, True, True),
    "numeric_effect_threshold": (0, _INF, False, True),
    "categorical_effect_threshold": (0, 1, False, False),
    "drift_share_threshold": (0, 1, False, False),
    "mmd_max_rows": (2, _INF, False, True),
    "mmd_permutations": (1, _INF, False, True),
    "mmd_pca_components": (1, _INF, False, True),
    "reconstruction_variance": (0, 1, True, False),
    "reconstruction_ratio_threshold": (0, _INF, True, True),
    "outlier_rate_threshold": (0, 1, False, False),
    "missing_rate_tolerance": (0, 1, False, False),
    "missing_rate_z": (0, _INF, False, True),
    "out_of_range_threshold": (0, 1, False, False),
    "unseen_category_threshold": (0, 1, False, False),
    "wrong_type_threshold": (0, 1, False, False),
    "min_new_value_rows": (1, _INF, False, True),
    "reject_rate_threshold": (0, 1, False, True),
    "reject_min_requests": (1, _INF, False, True),
    "seed": (0, _INF, False, True),
}
_OPTIONAL = ("mmd_pca_components",)
_KINDS: dict[str, type] = {
    **{name: numbers.Integral for name in ("mmd_max_rows", "mmd_permutations", "mmd_pca_components", "min_new_value_rows", "reject_min_requests", "seed")},
    "correction": str,
    "mmd_enabled": bool,
    "adaptive_effect_thresholds": bool,
}
