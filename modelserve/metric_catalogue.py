"""The metric catalogue: every CloudWatch metric the template publishes in its own namespace
(``settings.metrics_namespace``), with its unit, its dimension sets, its cause family and whether an
alarm on it pages. Standard library only: the inference function, the drift check, the CDK alarms
and dashboard all import it, and importing it loads nothing else.

Who reads it:
- the emitters: ``modelserve/observability.py`` (the inference function's EMF metrics, units from
  here) and ``driftcheck/drift_service.py`` / ``comparison_service.py`` (PutMetricData, units from here);
- the monitoring library (``monitoring/``, which imports nothing of the project) produces its values
  under its own keys (``monitoring/metric_names.py``); ``tests/unit/test_metric_catalogue.py`` checks
  that every key it can produce is catalogued here under the same name;
- ``cdk/alarms.py`` (an alarm's cause family comes from its metric's entry), ``cdk/dashboard.py`` and
  ``tests/infra/test_metrics_match_emitters.py`` (every emitted metric and dimension set is catalogued).

Adding a metric: one ``register(Metric(...))`` line below (docs/development.md, section Extending).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

DIM_MODEL_NAME = "ModelName"
DIM_MODEL_VERSION = "ModelVersion"
# the stack name: two stacks of one model publish apart (the stack sets ENV_DEPLOYMENT on both functions)
DIM_DEPLOYMENT = "Deployment"
ENV_DEPLOYMENT = "MS_DEPLOYMENT"
DIM_FEATURE = "Feature"
DIM_REASON = "Reason"
# the drift check's metrics: which window of captures they describe ("24h", "1h"; window_label)
DIM_WINDOW = "Window"
# the Lambda version that answered (the context's function_version): the canary alarm reads the new version's
DIM_EXECUTED_VERSION = "ExecutedVersion"

# the log message a function writes when its EMF metrics fail; the MetricsErrors metric filter matches its prefix
METRICS_ERROR_MESSAGE = "metrics_error: EMF metrics could not be written"

Unit = Literal["Count", "Milliseconds", "None"]
# who writes it: the inference function (EMF), the drift check (PutMetricData), or a CloudWatch Logs metric filter
Publisher = Literal["inference", "drift_check", "log_filter"]
# the cause family of the metric: one composite alarm per family notifies (cdk/alerting.py)
Family = Literal["input_data", "model_output", "pipeline", "service", "challenger"]
FAMILIES: tuple[Family, ...] = ("input_data", "model_output", "pipeline", "service", "challenger")

# every metric carries the model's dimensions (Deployment in a deployed stack)
MODEL_DIMENSIONS = (DIM_MODEL_NAME, DIM_MODEL_VERSION, DIM_DEPLOYMENT)
WINDOW_DIMENSIONS = (*MODEL_DIMENSIONS, DIM_WINDOW)


@dataclass(frozen=True)
class Metric:
    """One published metric. ``dimension_sets``: each set of dimension names it is published under;
    ``pages``: an alarm on it notifies (through its family's composite alarm); ``family`` is also
    where a graph or a finding about it belongs when nothing pages."""

    name: str
    unit: Unit
    publisher: Publisher
    family: Family
    pages: bool
    description: str
    dimension_sets: tuple[tuple[str, ...], ...] = (MODEL_DIMENSIONS,)


class MetricCatalogue:
    """Metrics by name, in registration order; a name is registered once."""

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}

    def register(self, metric: Metric) -> str:
        """Add ``metric``; returns its name (the constant the emitters and alarms use)."""
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name!r} is already in the catalogue")
        if metric.family not in FAMILIES:
            raise ValueError(f"metric {metric.name!r}: unknown family {metric.family!r} (one of {', '.join(FAMILIES)})")
        self._metrics[metric.name] = metric
        return metric.name

    def unregister(self, name: str) -> None:
        """Remove a metric (tests that register a toy one clean up with this)."""
        del self._metrics[name]

    def __getitem__(self, name: str) -> Metric:
        try:
            return self._metrics[name]
        except KeyError:
            raise KeyError(f"metric {name!r} is not in the catalogue (modelserve/metric_catalogue.py)") from None

    def __contains__(self, name: object) -> bool:
        return name in self._metrics

    def __iter__(self) -> Iterator[Metric]:
        return iter(list(self._metrics.values()))

    def names(self, publisher: Publisher | None = None) -> tuple[str, ...]:
        return tuple(m.name for m in self if publisher is None or m.publisher == publisher)

    def unit(self, name: str) -> Unit:
        """The unit to publish ``name`` with; "None" for a name not catalogued (never fails a publish)."""
        metric = self._metrics.get(name)
        return metric.unit if metric is not None else "None"


CATALOGUE = MetricCatalogue()
register = CATALOGUE.register


def _inference(
    name: str,
    unit: Unit,
    family: Family,
    description: str,
    *,
    pages: bool = False,
    dimension_sets: tuple[tuple[str, ...], ...] = (MODEL_DIMENSIONS,),
) -> str:
    return register(Metric(name, unit, "inference", family, pages, description, dimension_sets))


def _drift(
    name: str,
    family: Family,
    description: str,
    *,
    pages: bool = False,
    unit: Unit = "None",
    dimension_sets: tuple[tuple[str, ...], ...] = (WINDOW_DIMENSIONS,),
) -> str:
    return register(Metric(name, unit, "drift_check", family, pages, description, dimension_sets))


# ---- the inference function (EMF, once per request or capture batch)
ROWS_SCORED = _inference("RowsScored", "Count", "service", "rows scored")
PREDICTION_LATENCY_MS = _inference("PredictionLatencyMs", "Milliseconds", "service", "model run time in the function")
CAPTURE_ERRORS = _inference("CaptureErrors", "Count", "pipeline", "capture writes that failed (the answer was sent)", pages=True)
CAPTURED_ROWS = _inference("CapturedRows", "Count", "pipeline", "rows written to the capture sink")
# also broken down by reason (Reason dimension, its own EMF blob)
VALIDATION_REJECTS = _inference(
    "ValidationRejects",
    "Count",
    "input_data",
    "requests validation refused (4xx)",
    dimension_sets=(MODEL_DIMENSIONS, (*MODEL_DIMENSIONS, DIM_REASON)),
)
# answers of 500 and up the app sent for a server bug (an exception in the model): Lambda counts those invocations
# as successes, not Errors; also by ExecutedVersion, so a canary's failures are told from the previous version's
SERVER_ERRORS = _inference(
    "ServerErrors",
    "Count",
    "service",
    "answers of 500 or more for a server bug (Lambda counts them as successful invocations)",
    dimension_sets=(MODEL_DIMENSIONS, (*MODEL_DIMENSIONS, DIM_EXECUTED_VERSION)),
)
FEEDBACK_ROWS = _inference("FeedbackRows", "Count", "model_output", "labels received on /feedback")
FEEDBACK_ERRORS = _inference("FeedbackErrors", "Count", "pipeline", "feedback writes that failed")
ROWS_EXPLAINED = _inference(
    "RowsExplained", "Count", "service", "rows explained: asked for (explain: true) or sampled for the capture (explain_capture_fraction)"
)
EXPLAIN_LATENCY_MS = _inference(
    "ExplainLatencyMs", "Milliseconds", "service", "explanation time in the function (mixed rows built and scored)"
)
EXPLAIN_CAPTURE_ERRORS = _inference(
    "ExplainCaptureErrors",
    "Count",
    "pipeline",
    "explanations for the capture that failed or did not fit a log line (the rows were captured without)",
)
CAPTURE_DROPPED = _inference(
    "CaptureDropped",
    "Count",
    "pipeline",
    "captures dropped because the after-response queue was full",
    pages=True,
)
METRICS_ERRORS = register(
    Metric(
        "MetricsErrors",
        "Count",
        "log_filter",
        "pipeline",
        True,
        "a function's EMF metrics failed (counted from its log lines by a metric filter)",
    )
)
ACCESS_REFUSALS = register(
    Metric(
        "AccessRefusals",
        "Count",
        "log_filter",
        "service",
        False,
        "API requests the gateway refused for access, counted from its access log: 403 (no or wrong key, WAF), 404 "
        "(no such route), 429 (throttled); what a scanner or a client over its quota causes, subtracted from Api4xxRate",
        dimension_sets=((DIM_DEPLOYMENT,),),
    )
)

# ---- the drift check, once per checked window (Window dimension); the monitoring library's keys
# dataset-level verdicts and aggregates
DATASET_DRIFT = _drift("DatasetDrift", "input_data", "0/1: dataset drift verdict", pages=True)
DRIFT_SHARE = _drift("DriftShare", "input_data", "drifted features / tested features")
MMD_P_VALUE = _drift("MMDPValue", "input_data", "multivariate MMD p-value (diagnostic)")
PCA_RECONSTRUCTION_RATIO = _drift("PCAReconstructionRatio", "input_data", "PCA reconstruction error, window / reference")
PREDICTION_DRIFT = _drift("PredictionDrift", "model_output", "0/1: prediction drift verdict", pages=True)
OUTLIER_RATE = _drift("OutlierRate", "input_data", "share of outlying rows", pages=True)
MISSING_RATE = _drift("MissingRate", "input_data", "max rise of a feature's missing share over the reference", pages=True)
OUT_OF_RANGE_RATE = _drift("OutOfRangeRate", "input_data", "max share of a numeric feature outside the reference range", pages=True)
UNSEEN_CATEGORY_RATE = _drift("UnseenCategoryRate", "input_data", "max share of unseen values of a categorical feature", pages=True)
DATA_QUALITY_FAILURES = _drift("DataQualityFailures", "input_data", "failed data-quality expectations", pages=True, unit="Count")
# also deployment-wide (no ModelVersion): NoTraffic reads it across deploys
WINDOW_ROWS = _drift(
    "WindowRows",
    "pipeline",
    "captured rows in the window (NoTraffic alarms on none)",
    pages=True,
    unit="Count",
    dimension_sets=(WINDOW_DIMENSIONS, (DIM_MODEL_NAME, DIM_DEPLOYMENT, DIM_WINDOW)),
)
REJECT_RATE = _drift("RejectRate", "input_data", "rejected / all requests of the window", pages=True)
REJECTED_REQUESTS = _drift("RejectedRequests", "input_data", "requests refused by validation in the window", unit="Count")
# per feature (Feature dimension)
FEATURE_P_VALUE = _drift(
    "FeaturePValue", "input_data", "multiplicity-corrected p-value of a feature", dimension_sets=((*WINDOW_DIMENSIONS, DIM_FEATURE),)
)
FEATURE_EFFECT_SIZE = _drift(
    "FeatureEffectSize", "input_data", "effect size of a feature's drift", dimension_sets=((*WINDOW_DIMENSIONS, DIM_FEATURE),)
)
# performance on feedback labels
LABELED_ROWS = _drift("LabeledRows", "model_output", "rows of the window with a label", unit="Count")
ACCURACY = _drift("Accuracy", "model_output", "accuracy on the labelled rows")
F1 = _drift("F1", "model_output", "macro F1 on the labelled rows")
AUC = _drift("AUC", "model_output", "macro one-vs-rest ROC AUC on the labelled rows")
MAE = _drift("MAE", "model_output", "mean absolute error on the labelled rows")
RMSE = _drift("RMSE", "model_output", "root mean squared error on the labelled rows")
ACCURACY_DROP = _drift("AccuracyDrop", "model_output", "reference accuracy - window accuracy")
F1_DROP = _drift("F1Drop", "model_output", "reference F1 - window F1")
AUC_DROP = _drift("AUCDrop", "model_output", "reference AUC - window AUC")
MAE_INCREASE = _drift("MAEIncrease", "model_output", "window MAE - reference MAE")
RMSE_INCREASE = _drift("RMSEIncrease", "model_output", "window RMSE - reference RMSE")
PERFORMANCE_DEGRADED = _drift("PerformanceDegraded", "model_output", "0/1: a significant drop of any metric", pages=True)
# estimated performance before labels: figures for the dashboard, next to the real ones; the verdict
# EstimatedPerformanceDegraded is what pages
ESTIMATED_ACCURACY = _drift("EstimatedAccuracy", "model_output", "accuracy estimated from calibrated probabilities (CBPE)")
ESTIMATED_F1 = _drift("EstimatedF1", "model_output", "macro F1 estimated from calibrated probabilities (CBPE)")
ESTIMATED_AUC = _drift("EstimatedAUC", "model_output", "macro one-vs-rest AUC estimated from calibrated probabilities (CBPE)")
ESTIMATED_MAE = _drift("EstimatedMAE", "model_output", "a regressor's MAE estimated by the bundle's loss model (direct loss estimation)")
ESTIMATED_RMSE = _drift("EstimatedRMSE", "model_output", "a regressor's RMSE estimated by the bundle's loss model (direct loss estimation)")
ESTIMATED_ACCURACY_DROP = _drift("EstimatedAccuracyDrop", "model_output", "estimate on the reference - estimate on the window")
ESTIMATED_PERFORMANCE_DEGRADED = _drift(
    "EstimatedPerformanceDegraded",
    "model_output",
    "0/1: an estimated accuracy, F1 or AUC fell below its band, or a regressor's estimated MAE or RMSE rose above it "
    "(the estimate's own noise at the window's size)",
    pages=True,
)
# target drift (labels that came back vs the reference targets)
TARGET_DRIFT = _drift("TargetDrift", "model_output", "0/1: target drift verdict", pages=True)
TARGET_DRIFT_P_VALUE = _drift("TargetDriftPValue", "model_output", "target drift p-value")
# the drift check's own health
CORRUPT_CAPTURE_OBJECTS = _drift(
    "CorruptCaptureObjects", "pipeline", "capture objects read but not decodable (skipped whole)", pages=True, unit="Count"
)
CAPTURE_READ_ERRORS = _drift(
    "CaptureReadErrors", "pipeline", "capture objects whose GET failed (AccessDenied, KMS, throttling)", pages=True, unit="Count"
)
PARTIAL_WINDOW = _drift(
    "PartialWindow",
    "pipeline",
    "1 when the read budget ran out before every capture object of the window was read (oldest hours left out)",
    pages=True,
)
WINDOW_ROWS_ESTIMATED = _drift(
    "WindowRowsEstimated",
    "pipeline",
    "rows of the window, estimated from the objects read when the read was partial (else WindowRows)",
    unit="Count",
)
ATHENA_QUERY_ERRORS = _drift(
    "AthenaQueryErrors",
    "pipeline",
    "drift_athena=auto|on: 1 when a window's Athena query failed or outlived the read budget (the window was read from S3 instead)",
    pages=True,
    unit="Count",
)
VERDICT_EVENT_ERRORS = _drift(
    "VerdictEventErrors", "pipeline", "1 when a run's verdict event was not published", dimension_sets=(MODEL_DIMENSIONS,)
)

# ---- champion vs challenger (docs/versions.md; ModelVersion: the version the value is about)
_COMPARISON_DIMS = (MODEL_DIMENSIONS,)
SHADOW_AGREEMENT = _drift("ShadowAgreement", "challenger", "share of paired rows with the same answer", dimension_sets=_COMPARISON_DIMS)
VARIANT_ACCURACY = _drift("VariantAccuracy", "challenger", "a version's accuracy on its labelled rows", dimension_sets=_COMPARISON_DIMS)
VARIANT_F1 = _drift("VariantF1", "challenger", "a version's macro F1", dimension_sets=_COMPARISON_DIMS)
VARIANT_MAE = _drift("VariantMAE", "challenger", "a version's MAE", dimension_sets=_COMPARISON_DIMS)
VARIANT_RMSE = _drift("VariantRMSE", "challenger", "a version's RMSE", dimension_sets=_COMPARISON_DIMS)
VARIANT_LABELED_ROWS = _drift(
    "VariantLabeledRows", "challenger", "a version's labelled rows", unit="Count", dimension_sets=_COMPARISON_DIMS
)
CHALLENGER_WORSE = _drift(
    "ChallengerWorse", "challenger", "0/1: challenger significantly worse at alpha", pages=True, dimension_sets=_COMPARISON_DIMS
)
CHALLENGER_DRIFT = _drift(
    "ChallengerDrift", "challenger", "0/1: drift only the challenger's own check found", pages=True, dimension_sets=_COMPARISON_DIMS
)


def window_label(hours: float) -> str:
    """The Window dimension's value for a window of this many hours: "24h", "1h"; "90m" when not whole hours."""
    minutes = round(hours * 60)
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def drift_windows(window_hours: int, short_window_hours: int) -> list[tuple[str, int]]:
    """(Window label, hours) of every window the drift check publishes, the main one first; the short
    window only when it is on and shorter than the main one."""
    windows = [(window_label(window_hours), window_hours)]
    if 0 < short_window_hours < window_hours:
        windows.append((window_label(short_window_hours), short_window_hours))
    return windows
