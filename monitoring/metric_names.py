"""CloudWatch metric names published by the drift check (one place: the publisher, the
drift Lambda and the CDK alarms import these constants).

Per-feature metrics carry a ``Feature`` dimension (:data:`FEATURE_DIMENSION`); the others are
published without it. ``DriftReport.metrics()`` yields ``(name, value, feature_or_None)``.
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

ALL_METRICS: tuple[str, ...] = (
    DATASET_DRIFT,
    DRIFT_SHARE,
    MMD_P_VALUE,
    PCA_RECONSTRUCTION_RATIO,
    PREDICTION_DRIFT,
    OUTLIER_RATE,
    MISSING_RATE,
    OUT_OF_RANGE_RATE,
    UNSEEN_CATEGORY_RATE,
    DATA_QUALITY_FAILURES,
    WINDOW_ROWS,
    FEATURE_P_VALUE,
    FEATURE_EFFECT_SIZE,
    LABELED_ROWS,
    ACCURACY,
    F1,
    AUC,
    MAE,
    RMSE,
)
PER_FEATURE_METRICS: frozenset[str] = frozenset({FEATURE_P_VALUE, FEATURE_EFFECT_SIZE})
