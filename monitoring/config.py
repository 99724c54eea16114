"""The thresholds of the drift check, in one frozen config (``driftcheck.drift_service.drift_config``
builds it from the deploy settings)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
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
    seed: int = 0
    # performance against the reference, estimated performance and target drift (issue 11)
    performance_min_labels: int = 200  # no performance / target-drift verdict on fewer labelled rows
    performance_bootstrap: int = 500  # bootstrap resamples for the F1 / AUC / MAE / RMSE standard errors
    estimated_accuracy_drop_threshold: float = 0.05  # CBPE: page when the estimated accuracy falls this far
    estimated_min_rows: int = 200  # no CBPE verdict on smaller windows

    def __post_init__(self) -> None:
        if self.correction not in (BONFERRONI, FDR):
            raise ValueError(f"correction must be {BONFERRONI!r} or {FDR!r}, got {self.correction!r}")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        if self.mmd_max_rows < 2:
            raise ValueError("mmd_max_rows must be >= 2")

    def to_dict(self) -> dict[str, Any]:
        return json_clean(asdict(self))
