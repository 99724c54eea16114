"""Drift statistics for the model-serving template (pure numpy + scipy; no AWS, no I/O).

Typical use (the drift Lambda)::

    from monitoring import DriftConfig, ReferenceProfile, PredictionColumns, run_drift_check
    from monitoring.html_report import render_html

    profile = ReferenceProfile.from_dict(json.loads(profile_json))
    report = run_drift_check(profile, window_table, PredictionColumns(labels=..., probabilities=...))
    for name, value, feature in report.metrics(): ...   # names in monitoring.metric_names
    html = render_html(report, profile)

Modules: ``profile`` (reference profile), ``expectations`` (data quality), ``univariate``
(KS / chi-squared detectors, effect sizes, multiple testing), ``multivariate`` (MMD, PCA
reconstruction), ``prediction_drift``, ``outliers`` (Mahalanobis), ``performance``, ``check``
(config, report, ``run_drift_check``), ``html_report``, ``metric_names``. The synthetic test-data generator lives in ``devtools/synthetic.py`` (never shipped).
"""

from .check import DriftChecker, DriftConfig, DriftReport, run_drift_check
from .performance import LabeledPredictions
from .profile import PredictionColumns, ReferenceProfile

__all__ = [
    "DriftChecker",
    "DriftConfig",
    "DriftReport",
    "LabeledPredictions",
    "PredictionColumns",
    "ReferenceProfile",
    "run_drift_check",
]
