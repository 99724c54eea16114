"""Drift statistics for the model-serving template (pure numpy + scipy; no AWS, no I/O).

Typical use (the drift Lambda fits the checker once per process and checks each window)::

    from monitoring import DriftChecker, DriftConfig, PredictionColumns, ReferenceProfile
    from monitoring.html_report import render_html

    profile = ReferenceProfile.fit(feature_specs, reference_table, reference_predictions, outputs=outputs)
    checker = DriftChecker(profile, DriftConfig())
    report = checker.check(window_table, PredictionColumns(labels=..., probabilities=...))
    for name, value, feature in report.metrics(): ...   # keys in monitoring.metric_names
    html = render_html(report, profile)

Modules: ``types`` (feature kind, column spec, task), ``profile`` (reference profile),
``check_protocol`` (what a check is, how to add one), the checks -- ``univariate`` (KS /
chi-squared detectors, effect sizes, multiple testing), ``multivariate`` (MMD, PCA reconstruction,
on the ``encoding``), ``prediction_drift``, ``outliers`` (Mahalanobis), ``expectations`` (data
quality), ``performance`` --, ``config`` (``CheckConfig``, the registry of the checks' configs,
``DriftConfig``), ``checker`` (``DriftChecker``, the default checks), ``report`` (``DriftReport``),
``comparison`` (champion vs challenger statistics), ``window_histograms`` and ``html_report`` (the
HTML pages of a drift report and of a comparison), ``metric_names`` (the keys of the published
values; what is published under them, with units and alarm families, is the project's metric
catalogue, ``modelserve/metric_catalogue.py``). The synthetic test-data generator lives in
``devtools/synthetic.py`` (never shipped).
"""

from .checker import DriftChecker, MissingColumnsError, run_drift_check
from .config import DriftConfig
from .performance import LabeledPredictions
from .profile import PredictionColumns, ReferenceProfile
from .report import DriftReport
from .types import RejectCounts

__all__ = [
    "DriftChecker",
    "DriftConfig",
    "DriftReport",
    "LabeledPredictions",
    "MissingColumnsError",
    "PredictionColumns",
    "ReferenceProfile",
    "RejectCounts",
    "run_drift_check",
]
