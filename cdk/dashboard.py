"""The CloudWatch dashboard of one deployed model: API, functions, captures, drift and alarms.

The drift check's metrics are graphed once per window it checks (dimension ``Window``: "24h" and,
when on, the short "1h" window), each line labelled with its window; the per-feature graphs come in
one pair per window. Every series of the model namespace is a catalogued metric
(``modelserve/metric_catalogue.py``, through ``ModelMetrics``); the AWS ones are asked of the constructs
that own them (serving, the drift check)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from cdk.alarms import schedule_period_s
from modelserve import metric_catalogue as mc
from modelserve.records import CAPTURE_ROOT, model_report_prefix
from modelserve.schema import BundleManifest, Task
from modelserve.settings import Settings

from .capture import CaptureStorage
from .common import resource_name
from .drift_check import DriftCheck
from .model_metrics import ModelMetrics
from .serving import Serving

DASHBOARD_MAX_FEATURES = 40  # one line per feature; CloudWatch graphs get unreadable (and capped) beyond this
PERFORMANCE_GRAPH = "Performance: on labeled rows and estimated before labels"
ESTIMATE_VERDICT_GRAPH = "Estimated drop / estimate degraded / target drift"
WINDOW_READ_GRAPH = "Window rows: read / estimated / labeled; partial window"


def performance_figures(task: Task) -> tuple[str, ...]:
    """Each performance metric on labels followed by its estimate before labels (CBPE for a classifier, direct loss
    estimation for a regressor): one graph, so a gap between them shows (concept drift: the estimate cannot see it)."""
    if task is Task.CLASSIFICATION:
        pairs = ((mc.ACCURACY, mc.ESTIMATED_ACCURACY), (mc.F1, mc.ESTIMATED_F1), (mc.AUC, mc.ESTIMATED_AUC))
    else:
        pairs = ((mc.MAE, mc.ESTIMATED_MAE), (mc.RMSE, mc.ESTIMATED_RMSE))
    return tuple(name for pair in pairs for name in pair)


def dashboard_name_for(stack_name: str) -> str:
    return resource_name(stack_name, max_len=255)


def dashboard_url(stack_name: str) -> str:
    """The console URL of the stack's dashboard (the region a deploy-time token)."""
    region = cdk.Aws.REGION
    return f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards:name={dashboard_name_for(stack_name)}"


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
        serving: Serving,
        drift_check: DriftCheck,
        alarms: Sequence[cloudwatch.IAlarm],
        pages: Sequence[cloudwatch.IAlarm] = (),
        challenger_version: str | None = None,
    ) -> None:
        """``pages``: the composite alarms that notify, shown first; ``alarms``: every other alarm."""
        super().__init__(scope, id)
        s, m = settings, manifest
        self.settings, self.manifest, self.api_metric = s, m, serving.api_metric
        api_metric = serving.api_metric
        self.deployment = cdk.Stack.of(self).stack_name
        self.model_metrics = ModelMetrics(s, m, self.deployment)
        self.windows = [label for label, _ in mc.drift_windows(s.window_hours, s.short_window_hours)]
        drift_period = schedule_period_s(s.drift_schedule)
        self.dashboard_name = dashboard_name_for(cdk.Stack.of(self).stack_name)
        d = self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=self.dashboard_name,
            default_interval=cdk.Duration.days(7),
        )

        def graph(
            title: str,
            metrics: list[cloudwatch.IMetric],
            width: int = 8,
            right: list[cloudwatch.IMetric] | None = None,
            hlines: list[cloudwatch.HorizontalAnnotation] | None = None,
        ) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(
                title=title,
                left=metrics,
                right=right or None,
                width=width,
                height=6,
                left_annotations=hlines or None,
            )

        def threshold(value: float, label: str) -> cloudwatch.HorizontalAnnotation:
            return cloudwatch.HorizontalAnnotation(value=value, label=label, color=cloudwatch.Color.RED)

        model_metric = self.model_metric

        def drift(name: str, statistic: str) -> list[cloudwatch.Metric]:
            return self.drift_metrics(name, statistic, drift_period)

        features = [f.name for f in m.features][:DASHBOARD_MAX_FEATURES]
        if pages:  # first row: what notifies (a page is open while one of these is in ALARM)
            d.add_widgets(cloudwatch.AlarmStatusWidget(title="Pages (these notify)", alarms=list(pages), width=24, height=3))
        d.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    f"## Model `{m.model_name}` version `{m.version}`\n"
                    f"Captures: `s3://{capture.bucket.bucket_name}/{CAPTURE_ROOT}/model={m.model_name}/` · "
                    f"drift reports: `s3://{capture.bucket.bucket_name}/{model_report_prefix(m.model_name)}` · "
                    f"Athena table `{capture.database.ref}.captures` · runbook: docs/runbook.md"
                ),
                width=24,
                height=2,
            ),
        )
        d.add_widgets(cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(alarms), width=24, height=4))
        d.add_widgets(
            graph("API requests", [api_metric("Count", "Sum", 300)]),
            graph(
                "API latency (ms)",
                [api_metric("Latency", p, 300) for p in ("p50", "p90", "p99")],
                hlines=[threshold(s.api_p99_latency_ms, "p99 alarm")],
            ),
            graph("API 4xx / 5xx", [api_metric("4XXError", "Sum", 300), api_metric("5XXError", "Sum", 300)]),
        )
        fn, drift_fn = serving.function, drift_check.function
        d.add_widgets(
            graph("Inference duration (ms)", [fn.metric_duration(statistic=p, period=cdk.Duration.minutes(5)) for p in ("p50", "p99")]),
            graph(
                "Inference errors / throttles",
                [fn.metric_errors(period=cdk.Duration.minutes(5)), fn.metric_throttles(period=cdk.Duration.minutes(5))],
            ),
            graph(
                "Drift check duration / errors",
                [drift_fn.metric_duration(statistic="Maximum", period=cdk.Duration.hours(1))],
                right=[drift_fn.metric_errors(period=cdk.Duration.hours(1))],
            ),
        )
        d.add_widgets(
            graph("Rows scored / captured", [model_metric(mc.ROWS_SCORED, "Sum", 300), model_metric(mc.CAPTURED_ROWS, "Sum", 300)]),
            graph(
                "Capture errors / validation rejects",
                [model_metric(mc.CAPTURE_ERRORS, "Sum", 300), model_metric(mc.VALIDATION_REJECTS, "Sum", 300)],
            ),
            graph("Validation rejects by reason", [self.rejects_by_reason()]),
            graph("Prediction latency in the function (ms)", [model_metric(mc.PREDICTION_LATENCY_MS, p, 300) for p in ("p50", "p99")]),
        )
        d.add_widgets(
            graph(
                "Drift share / dataset & prediction drift",
                [*drift(mc.DRIFT_SHARE, "Maximum")],
                right=[*drift(mc.DATASET_DRIFT, "Maximum"), *drift(mc.PREDICTION_DRIFT, "Maximum")],
                hlines=[threshold(s.drift_share_threshold, "drift share threshold")],
            ),
            graph(
                WINDOW_READ_GRAPH,
                [*drift(mc.WINDOW_ROWS, "Maximum"), *drift(mc.WINDOW_ROWS_ESTIMATED, "Maximum"), *drift(mc.LABELED_ROWS, "Maximum")],
                # the window read cut short by its budget: the rows checked are then a part of the window's
                right=[*drift(mc.PARTIAL_WINDOW, "Maximum")],
            ),
            graph(
                "Multivariate: MMD p-value / PCA reconstruction ratio",
                [*drift(mc.MMD_P_VALUE, "Minimum")],
                right=[*drift(mc.PCA_RECONSTRUCTION_RATIO, "Maximum")],
            ),
        )
        for window in self.windows:  # one pair per window: a shift in the last hour shows in its own lines
            title = "" if window == self.windows[0] else f" ({window} window)"
            d.add_widgets(
                graph(
                    f"Per-feature p-value{title}",
                    [
                        model_metric(mc.FEATURE_P_VALUE, "Minimum", drift_period, {mc.DIM_FEATURE: f, mc.DIM_WINDOW: window}, label=f)
                        for f in features
                    ],
                    width=12,
                    hlines=[threshold(s.alpha, "alpha (before correction)")],
                ),
                graph(
                    f"Per-feature effect size{title}",
                    [
                        model_metric(mc.FEATURE_EFFECT_SIZE, "Maximum", drift_period, {mc.DIM_FEATURE: f, mc.DIM_WINDOW: window}, label=f)
                        for f in features
                    ],
                    width=12,
                ),
            )
        d.add_widgets(
            graph("Outlier rate", [*drift(mc.OUTLIER_RATE, "Maximum")], hlines=[threshold(s.outlier_rate_threshold, "alarm")]),
            graph(
                "Data quality rates / rejected share",
                [
                    *drift(mc.MISSING_RATE, "Maximum"),
                    *drift(mc.OUT_OF_RANGE_RATE, "Maximum"),
                    *drift(mc.UNSEEN_CATEGORY_RATE, "Maximum"),
                    *drift(mc.REJECT_RATE, "Maximum"),
                ],
                right=[*drift(mc.DATA_QUALITY_FAILURES, "Maximum")],
                hlines=[threshold(s.reject_rate_threshold, "reject-rate alarm")],
            ),
            graph(
                PERFORMANCE_GRAPH,
                [x for n in performance_figures(m.outputs.task) for x in drift(n, "Average")],
            ),
        )

        self._add_health_row(graph, threshold, drift_period)
        if challenger_version is not None and s.challenger_mode != "off":
            self._add_comparison_row(graph, challenger_version, drift_period)

    def _add_health_row(
        self,
        graph: Callable[..., cloudwatch.GraphWidget],
        threshold: Callable[[float, str], cloudwatch.HorizontalAnnotation],
        drift_period: int,
    ) -> None:
        """Performance against the reference, the estimate's drop and verdict, target drift, the capture path, the 4XX share."""
        model_metric, classifier = self.model_metric, self.manifest.outputs.task is Task.CLASSIFICATION

        def drift(name: str, statistic: str) -> list[cloudwatch.Metric]:
            return self.drift_metrics(name, statistic, drift_period)

        drops = (mc.ACCURACY_DROP, mc.F1_DROP, mc.AUC_DROP) if classifier else (mc.MAE_INCREASE, mc.RMSE_INCREASE)
        # API Gateway's 4XXError is 0 or 1 per request: its Average is the share the Api4xxRate alarm reads
        share_4xx = self.api_metric("4XXError", "Average", 300).with_(label="4XX share")
        self.dashboard.add_widgets(
            graph(
                "Performance vs reference (drop) / degraded",
                [x for n in drops for x in drift(n, "Maximum")],
                width=6,
                right=[*drift(mc.PERFORMANCE_DEGRADED, "Maximum")],
            ),
            graph(
                ESTIMATE_VERDICT_GRAPH,
                [*drift(mc.ESTIMATED_ACCURACY_DROP, "Maximum")] if classifier else [],
                width=6,
                right=[*drift(mc.ESTIMATED_PERFORMANCE_DEGRADED, "Maximum"), *drift(mc.TARGET_DRIFT, "Maximum")],
            ),
            graph(
                "Captures dropped / verdict event errors",
                [model_metric(mc.CAPTURE_DROPPED, "Sum", 300)],
                width=6,
                right=[model_metric(mc.VERDICT_EVENT_ERRORS, "Maximum", drift_period)],
            ),
            graph("API 4XX share", [share_4xx], width=6, hlines=[threshold(self.settings.api_4xx_rate, "alarm")]),
        )

    def _add_comparison_row(self, graph: Callable[..., cloudwatch.GraphWidget], challenger_version: str, drift_period: int) -> None:
        """Champion against challenger (docs/versions.md): each version's series, the challenger's verdicts."""
        versions = {"champion": self.manifest.version, "challenger": challenger_version}
        classifier = self.manifest.outputs.task is Task.CLASSIFICATION
        names = (mc.VARIANT_ACCURACY, mc.VARIANT_F1) if classifier else (mc.VARIANT_MAE, mc.VARIANT_RMSE)

        def of(name: str, variant: str, statistic: str = "Average") -> cloudwatch.Metric:
            return self.model_metric(name, statistic, drift_period, version=versions[variant], label=f"{name} {variant}")

        self.dashboard.add_widgets(
            graph(f"Champion vs challenger {challenger_version}", [of(n, v) for n in names for v in versions], width=8),
            graph("Labeled rows per version", [of(mc.VARIANT_LABELED_ROWS, v, "Maximum") for v in versions], width=8),
            graph(
                "Shadow agreement / challenger worse",
                [of(mc.SHADOW_AGREEMENT, "challenger")],
                right=[of(mc.CHALLENGER_WORSE, "challenger", "Maximum")],
                width=8,
            ),
        )

        def verdicts(variant: str) -> list[cloudwatch.Metric]:
            """The version's own drift verdicts, each window (the challenger's from its own drift report)."""
            return [
                self.model_metric(n, "Maximum", drift_period, {mc.DIM_WINDOW: w}, label=f"{n} {variant} {w}", version=versions[variant])
                for n in (mc.DATASET_DRIFT, mc.PREDICTION_DRIFT)
                for w in self.windows
            ]

        self.dashboard.add_widgets(
            graph(
                "Each version's dataset / prediction drift; challenger-only drift",
                [*verdicts("champion"), *verdicts("challenger")],
                right=[of(mc.CHALLENGER_DRIFT, "challenger", "Maximum")],
                width=24,
            ),
        )

    def drift_metrics(self, name: str, statistic: str, period_s: int) -> list[cloudwatch.Metric]:
        """A drift-check metric, one series per window, labelled "<name> <window>"."""
        return [self.model_metric(name, statistic, period_s, {mc.DIM_WINDOW: w}, label=f"{name} {w}") for w in self.windows]

    def model_metric(
        self,
        name: str,
        statistic: str,
        period_s: int,
        extra: dict[str, str] | None = None,
        label: str | None = None,
        version: str | None = None,
    ) -> cloudwatch.Metric:
        """A catalogued series of the model namespace; ``version``: another version's (a challenger's), else this bundle's."""
        return self.model_metrics.metric(name, statistic, period_s, extra, label, version)

    def rejects_by_reason(self) -> cloudwatch.MathExpression:
        """One line per rejection reason, whatever reasons occur (a CloudWatch SEARCH expression)."""
        m, ns = self.manifest, self.settings.metrics_namespace
        # the schema names the exact dimension set the inference function writes the breakdown with
        dims = f"{mc.DIM_MODEL_NAME},{mc.DIM_MODEL_VERSION},{mc.DIM_DEPLOYMENT},{mc.DIM_REASON}"
        query = (
            f'{{{ns},{dims}}} MetricName="{mc.VALIDATION_REJECTS}" '
            f'{mc.DIM_MODEL_NAME}="{m.model_name}" {mc.DIM_MODEL_VERSION}="{m.version}" {mc.DIM_DEPLOYMENT}="{self.deployment}"'
        )
        return cloudwatch.MathExpression(expression=f"SEARCH('{query}', 'Sum', 300)", using_metrics={}, label="")
