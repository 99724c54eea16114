"""The CloudWatch dashboard of one deployed model: API, functions, captures, drift and alarms.

The drift check's metrics are graphed once per window it checks (dimension ``Window``: "24h" and,
when on, the short "1h" window), each line labelled with its window; the per-feature graphs come in
one pair per window."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk.alarms import schedule_period_s
from modelserve import metric_catalogue as imn
from modelserve.records import CAPTURE_ROOT, model_report_prefix
from modelserve.schema import BundleManifest, Task
from modelserve.settings import Settings
from monitoring import metric_names as dmn

from .capture import CaptureStorage
from .common import resource_name

# emitted by serving/post_response.py and driftcheck/verdict_events.py, which cdk may not import (the layer
# contracts); tests/infra/test_dashboard.py checks these are the names those modules emit
CAPTURE_DROPPED = "CaptureDropped"
VERDICT_EVENT_ERRORS = "VerdictEventErrors"
DASHBOARD_MAX_FEATURES = 40  # one line per feature; CloudWatch graphs get unreadable (and capped) beyond this


class Dashboard(Construct):
    """Exposes ``dashboard`` and ``dashboard_name``."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: Settings,
        manifest: BundleManifest,
        capture: CaptureStorage,
        api_metric: Callable[[str, str, int], cloudwatch.Metric],
        inference_function: lambda_.IFunction,
        drift_check_function: lambda_.IFunction,
        alarms: Sequence[cloudwatch.IAlarm],
        challenger_version: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        s, m = settings, manifest
        self.settings, self.manifest, self.api_metric = s, m, api_metric
        self.deployment = cdk.Stack.of(self).stack_name
        self.windows = [label for label, _ in imn.drift_windows(s.window_hours, s.short_window_hours)]
        drift_period = schedule_period_s(s.drift_schedule)
        self.dashboard_name = resource_name(cdk.Stack.of(self).stack_name, max_len=255)
        d = self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard",
            dashboard_name=self.dashboard_name,
            default_interval=cdk.Duration.days(7),
        )

        def graph(title: str, metrics: list[cloudwatch.IMetric], width: int = 8, right: list[cloudwatch.IMetric] | None = None,
                  hlines: list[cloudwatch.HorizontalAnnotation] | None = None) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(
                title=title, left=metrics, right=right or None, width=width, height=6,
                left_annotations=hlines or None,
            )

        def threshold(value: float, label: str) -> cloudwatch.HorizontalAnnotation:
            return cloudwatch.HorizontalAnnotation(value=value, label=label, color=cloudwatch.Color.RED)

        model_metric = self.model_metric

        def drift(name: str, statistic: str) -> list[cloudwatch.Metric]:
            return self.drift_metrics(name, statistic, drift_period)

        features = [f.name for f in m.features][:DASHBOARD_MAX_FEATURES]
        d.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    f"## Model `{m.model_name}` version `{m.version}`\n"
                    f"Captures: `s3://{capture.bucket.bucket_name}/{CAPTURE_ROOT}/model={m.model_name}/` · "
                    f"drift reports: `s3://{capture.bucket.bucket_name}/{model_report_prefix(m.model_name)}` · "
                    f"Athena table `{capture.database.ref}.captures` · runbook: docs/runbook.md"
                ),
                width=24, height=2,
            ),
        )
        d.add_widgets(cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(alarms), width=24, height=4))
        d.add_widgets(
            graph("API requests", [api_metric("Count", "Sum", 300)]),
            graph("API latency (ms)", [api_metric("Latency", p, 300) for p in ("p50", "p90", "p99")],
                  hlines=[threshold(s.api_p99_latency_ms, "p99 alarm")]),
            graph("API 4xx / 5xx", [api_metric("4XXError", "Sum", 300), api_metric("5XXError", "Sum", 300)]),
        )
        fn, drift_fn = inference_function, drift_check_function
        d.add_widgets(
            graph("Inference duration (ms)", [fn.metric_duration(statistic=p, period=cdk.Duration.minutes(5)) for p in ("p50", "p99")]),
            graph("Inference errors / throttles", [fn.metric_errors(period=cdk.Duration.minutes(5)), fn.metric_throttles(period=cdk.Duration.minutes(5))]),
            graph("Drift check duration / errors", [drift_fn.metric_duration(statistic="Maximum", period=cdk.Duration.hours(1))],
                  right=[drift_fn.metric_errors(period=cdk.Duration.hours(1))]),
        )
        d.add_widgets(
            graph("Rows scored / captured", [model_metric(imn.ROWS_SCORED, "Sum", 300), model_metric(imn.CAPTURED_ROWS, "Sum", 300)]),
            graph("Capture errors / validation rejects", [model_metric(imn.CAPTURE_ERRORS, "Sum", 300), model_metric(imn.VALIDATION_REJECTS, "Sum", 300)]),
            graph("Validation rejects by reason", [self.rejects_by_reason()]),
            graph("Prediction latency in the function (ms)", [model_metric(imn.PREDICTION_LATENCY_MS, p, 300) for p in ("p50", "p99")]),
        )
        d.add_widgets(
            graph("Drift share / dataset & prediction drift", [*drift(dmn.DRIFT_SHARE, "Maximum")],
                  right=[*drift(dmn.DATASET_DRIFT, "Maximum"), *drift(dmn.PREDICTION_DRIFT, "Maximum")],
                  hlines=[threshold(s.drift_share_threshold, "drift share threshold")]),
            graph("Window rows / labeled rows", [*drift(dmn.WINDOW_ROWS, "Maximum"), *drift(dmn.LABELED_ROWS, "Maximum")]),
            graph("Multivariate: MMD p-value / PCA reconstruction ratio", [*drift(dmn.MMD_P_VALUE, "Minimum")],
                  right=[*drift(dmn.PCA_RECONSTRUCTION_RATIO, "Maximum")]),
        )
        for window in self.windows:  # one pair per window: a shift in the last hour shows in its own lines
            title = "" if window == self.windows[0] else f" ({window} window)"
            d.add_widgets(
                graph(f"Per-feature p-value{title}", [
                    model_metric(dmn.FEATURE_P_VALUE, "Minimum", drift_period, {imn.DIM_FEATURE: f, imn.DIM_WINDOW: window}, label=f)
                    for f in features
                ], width=12, hlines=[threshold(s.alpha, "alpha (before correction)")]),
                graph(f"Per-feature effect size{title}", [
                    model_metric(dmn.FEATURE_EFFECT_SIZE, "Maximum", drift_period, {imn.DIM_FEATURE: f, imn.DIM_WINDOW: window}, label=f)
                    for f in features
                ], width=12),
            )
        d.add_widgets(
            graph("Outlier rate", [*drift(dmn.OUTLIER_RATE, "Maximum")],
                  hlines=[threshold(s.outlier_rate_threshold, "alarm")]),
            graph("Data quality rates / rejected share", [
                *drift(dmn.MISSING_RATE, "Maximum"),
                *drift(dmn.OUT_OF_RANGE_RATE, "Maximum"),
                *drift(dmn.UNSEEN_CATEGORY_RATE, "Maximum"),
                *drift(dmn.REJECT_RATE, "Maximum"),
            ], right=[*drift(dmn.DATA_QUALITY_FAILURES, "Maximum")],
                  hlines=[threshold(s.reject_rate_threshold, "reject-rate alarm")]),
            graph("Performance on labeled rows",
                  [x for n in ((dmn.ACCURACY, dmn.F1, dmn.AUC) if m.outputs.task is Task.CLASSIFICATION else (dmn.MAE, dmn.RMSE))
                   for x in drift(n, "Average")]),
        )

        self._add_health_row(graph, threshold, drift_period)
        if challenger_version is not None and s.challenger_mode != "off":
            self._add_comparison_row(graph, challenger_version, drift_period)

    def _add_health_row(self, graph: Callable[..., cloudwatch.GraphWidget],
                        threshold: Callable[[float, str], cloudwatch.HorizontalAnnotation], drift_period: int) -> None:
        """Performance against the reference, estimated performance and target drift, the capture path, the 4XX share."""
        model_metric, classifier = self.model_metric, self.manifest.outputs.task is Task.CLASSIFICATION

        def drift(name: str, statistic: str) -> list[cloudwatch.Metric]:
            return self.drift_metrics(name, statistic, drift_period)
        drops = (dmn.ACCURACY_DROP, dmn.F1_DROP, dmn.AUC_DROP) if classifier else (dmn.MAE_INCREASE, dmn.RMSE_INCREASE)
        estimated = [x for n in (dmn.ESTIMATED_ACCURACY, dmn.ESTIMATED_F1) for x in self.drift_metrics(n, "Average", drift_period)] if classifier else []
        # API Gateway's 4XXError is 0 or 1 per request: its Average is the share the Api4xxRate alarm reads
        share_4xx = self.api_metric("4XXError", "Average", 300).with_(label="4XX share")
        self.dashboard.add_widgets(
            graph("Performance vs reference (drop) / degraded", [x for n in drops for x in drift(n, "Maximum")],
                  width=6, right=[*drift(dmn.PERFORMANCE_DEGRADED, "Maximum")]),
            graph("Estimated performance (CBPE) / target drift" if classifier else "Target drift",
                  estimated + ([*drift(dmn.ESTIMATED_ACCURACY_DROP, "Maximum")] if classifier else []),
                  width=6, right=[*drift(dmn.TARGET_DRIFT, "Maximum")]),
            graph("Captures dropped / verdict event errors", [model_metric(CAPTURE_DROPPED, "Sum", 300)],
                  width=6, right=[model_metric(VERDICT_EVENT_ERRORS, "Maximum", drift_period)]),
            graph("API 4XX share", [share_4xx], width=6, hlines=[threshold(self.settings.api_4xx_rate, "alarm")]),
        )

    def _add_comparison_row(self, graph: Callable[..., cloudwatch.GraphWidget], challenger_version: str, drift_period: int) -> None:
        """Champion against challenger (docs/versions.md): each version's series, the challenger's verdicts."""
        from monitoring import comparison as cmp  # lazy: numpy/scipy only when a challenger is deployed
        from monitoring.comparison import CHALLENGER_DRIFT

        versions = {"champion": self.manifest.version, "challenger": challenger_version}
        classifier = self.manifest.outputs.task is Task.CLASSIFICATION
        names = (cmp.VARIANT_ACCURACY, cmp.VARIANT_F1) if classifier else (cmp.VARIANT_MAE, cmp.VARIANT_RMSE)

        def of(name: str, variant: str, statistic: str = "Average") -> cloudwatch.Metric:
            return self.model_metric(name, statistic, drift_period, version=versions[variant], label=f"{name} {variant}")

        self.dashboard.add_widgets(
            graph(f"Champion vs challenger {challenger_version}", [of(n, v) for n in names for v in versions], width=8),
            graph("Labeled rows per version", [of(cmp.VARIANT_LABELED_ROWS, v, "Maximum") for v in versions], width=8),
            graph("Shadow agreement / challenger worse", [of(cmp.SHADOW_AGREEMENT, "challenger")],
                  right=[of(cmp.CHALLENGER_WORSE, "challenger", "Maximum")], width=8),
        )

        def verdicts(variant: str) -> list[cloudwatch.Metric]:
            """The version's own drift verdicts, each window (the challenger's from its own drift report)."""
            return [
                self.model_metric(n, "Maximum", drift_period, {imn.DIM_WINDOW: w}, label=f"{n} {variant} {w}", version=versions[variant])
                for n in (dmn.DATASET_DRIFT, dmn.PREDICTION_DRIFT) for w in self.windows
            ]

        self.dashboard.add_widgets(
            graph("Each version's dataset / prediction drift; challenger-only drift", [*verdicts("champion"), *verdicts("challenger")],
                  right=[of(CHALLENGER_DRIFT, "challenger", "Maximum")], width=24),
        )

    def drift_metrics(self, name: str, statistic: str, period_s: int) -> list[cloudwatch.Metric]:
        """A drift-check metric, one series per window, labelled "<name> <window>"."""
        return [self.model_metric(name, statistic, period_s, {imn.DIM_WINDOW: w}, label=f"{name} {w}") for w in self.windows]

    def model_metric(self, name: str, statistic: str, period_s: int, extra: dict[str, str] | None = None, label: str | None = None,
                     version: str | None = None) -> cloudwatch.Metric:
        """A series of the model namespace; ``version``: another version's (a challenger's), else this bundle's."""
        return cloudwatch.Metric(
            namespace=self.settings.metrics_namespace,
            metric_name=name,
            dimensions_map={
                imn.DIM_MODEL_NAME: self.manifest.model_name,
                imn.DIM_MODEL_VERSION: version or self.manifest.version,
                imn.DIM_DEPLOYMENT: self.deployment,
                **(extra or {}),
            },
            statistic=statistic,
            period=cdk.Duration.seconds(period_s),
            label=label,
        )

    def rejects_by_reason(self) -> cloudwatch.MathExpression:
        """One line per rejection reason, whatever reasons occur (a CloudWatch SEARCH expression)."""
        m, ns = self.manifest, self.settings.metrics_namespace
        # the schema names the exact dimension set the inference function writes the breakdown with
        dims = f"{imn.DIM_MODEL_NAME},{imn.DIM_MODEL_VERSION},{imn.DIM_DEPLOYMENT},{imn.DIM_REASON}"
        query = (
            f'{{{ns},{dims}}} MetricName="{imn.VALIDATION_REJECTS}" '
            f'{imn.DIM_MODEL_NAME}="{m.model_name}" {imn.DIM_MODEL_VERSION}="{m.version}" {imn.DIM_DEPLOYMENT}="{self.deployment}"'
        )
        return cloudwatch.MathExpression(expression=f"SEARCH('{query}', 'Sum', 300)", using_metrics={}, label="")
