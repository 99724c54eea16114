"""The monitoring library's metric keys: the names ``DriftReport.metrics()`` and
``ComparisonReport.metrics()`` yield their values under.

The library imports nothing of the project, so it names its own outputs here. What the template
publishes under these names (unit, dimensions, cause family, whether an alarm pages) is described
once, in the metric catalogue ``modelserve/metric_catalogue.py``, which the emitters, the CDK alarms
and the dashboard read; ``tests/unit/test_metric_catalogue.py`` checks that every key below is
catalogued under the same name.

Per-feature metrics carry a ``Feature`` dimension (:data:`FEATURE_DIMENSION`); the others are
published without it. ``DriftReport.metrics()`` yields ``(name, value, feature_or_None)``. Which
names a drift check publishes follows from its checks: ``monitoring.checker.published_metric_names``
and ``feature_metric_names``.
"""

from __future__ import annotations

FEATURE_DIMENSION = "Feature"

# dataset-level verdicts and aggregates
DATASET_DRIFT = "DatasetDrift"  # 0/1
DRIFT_SHARE = "DriftShare"  # drifted features / tested features
MMD_P_VALUE = "MMDPValue"
PCA_RECONSTRUCTION_RATIO = "PCAReconstructionRatio"  # target error / reference error
PREDICTION_DRIFT = "PredictionDrift"  # 0/1
OUTLIER_RATE = "OutlierRate"
MISSING_RATE = "MissingRate"  # max over features of the rise of the missing share over the reference
OUT_OF_RANGE_RATE = "OutOfRangeRate"  # max over numeric features of the share outside the reference range
UNSEEN_CATEGORY_RATE = "UnseenCategoryRate"  # max over categorical features of the unseen share
DATA_QUALITY_FAILURES = "DataQualityFailures"  # number of failed expectations (alarm on > 0)
WINDOW_ROWS = "WindowRows"
# requests validation refused (counted by the caller from the captured rejects; monitoring.expectations.RejectCounts)
REJECT_RATE = "RejectRate"  # rejected / all requests of the window; 0 on windows under reject_min_requests
REJECTED_REQUESTS = "RejectedRequests"

# per-feature (Feature dimension)
FEATURE_P_VALUE = "FeaturePValue"  # multiplicity-corrected p-value
FEATURE_EFFECT_SIZE = "FeatureEffectSize"

# performance (only when labels exist)
LABELED_ROWS = "LabeledRows"
ACCURACY = "Accuracy"
F1 = "F1"  # macro F1
AUC = "AUC"  # macro one-vs-rest ROC AUC
MAE = "MAE"
RMSE = "RMSE"

# performance against the reference (only with at least performance_min_labels labels)
ACCURACY_DROP = "AccuracyDrop"  # reference accuracy - window accuracy
F1_DROP = "F1Drop"
AUC_DROP = "AUCDrop"
MAE_INCREASE = "MAEIncrease"  # window MAE - reference MAE
RMSE_INCREASE = "RMSEIncrease"
PERFORMANCE_DEGRADED = "PerformanceDegraded"  # 0/1: a significant drop of any metric
# estimated performance before labels (CBPE, classifiers; every check)
ESTIMATED_ACCURACY = "EstimatedAccuracy"
ESTIMATED_F1 = "EstimatedF1"
ESTIMATED_AUC = "EstimatedAUC"
ESTIMATED_ACCURACY_DROP = "EstimatedAccuracyDrop"  # estimate on the reference - estimate on the window
# estimated error before labels (direct loss estimation, regressors with a loss model; every check)
ESTIMATED_MAE = "EstimatedMAE"
ESTIMATED_RMSE = "EstimatedRMSE"
# 0/1: an estimate (accuracy, F1, AUC; MAE, RMSE rising) left its band from its own noise at the window's size
ESTIMATED_PERFORMANCE_DEGRADED = "EstimatedPerformanceDegraded"
# target drift (labels that came back vs the reference targets)
TARGET_DRIFT = "TargetDrift"  # 0/1
TARGET_DRIFT_P_VALUE = "TargetDriftPValue"

# champion vs challenger (monitoring.comparison; ModelVersion: the version the value is about)
SHADOW_AGREEMENT = "ShadowAgreement"  # share of paired rows with the same answer (classifiers)
VARIANT_ACCURACY = "VariantAccuracy"
VARIANT_F1 = "VariantF1"
VARIANT_MAE = "VariantMAE"
VARIANT_RMSE = "VariantRMSE"
VARIANT_LABELED_ROWS = "VariantLabeledRows"
CHALLENGER_WORSE = "ChallengerWorse"  # 0/1: significantly worse at alpha (the alarm's metric)
# 0/1: the challenger's own drift check found dataset or prediction drift in a window where the
# champion's found neither (``comparison.challenger_only_drift``; the ChallengerDrift alarm's metric)
CHALLENGER_DRIFT = "ChallengerDrift"
COMPARISON_METRIC_NAMES = (
    SHADOW_AGREEMENT,
    VARIANT_ACCURACY,
    VARIANT_F1,
    VARIANT_MAE,
    VARIANT_RMSE,
    VARIANT_LABELED_ROWS,
    CHALLENGER_WORSE,
    CHALLENGER_DRIFT,
)
