"""Monitoring: the scheduled drift-check function, the alarm topic, every alarm of
``cdk.alarms.alarm_specs`` (no thresholds here), the "model health" composite alarm
and the dashboard."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

from cdk.alarms import AlarmSpec, alarm_specs, schedule_period_s
from modelserve import metric_names as imn
from modelserve.schema import BundleManifest, Task
from modelserve.settings import ENV_BUNDLE_PATH, Settings
from monitoring import metric_names as dmn

from .bundling import BUNDLE_DIR_IN_ASSET, python_runtime
from .capture import CaptureStorage
from .common import resource_name, retention
from .nag import acknowledge
from .serving import Serving, lambda_architecture, powertools_env

DASHBOARD_MAX_FEATURES = 40  # one line per feature; CloudWatch graphs get unreadable (and capped) beyond this

_COMPARISON = {
    "GreaterThanThreshold": cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    "GreaterThanOrEqualToThreshold": cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    "LessThanThreshold": cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
    "LessThanOrEqualToThreshold": cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
}
_MISSING = {
    "breaching": cloudwatch.TreatMissingData.BREACHING,
    "notBreaching": cloudwatch.TreatMissingData.NOT_BREACHING,
    "ignore": cloudwatch.TreatMissingData.IGNORE,
    "missing": cloudwatch.TreatMissingData.MISSING,
}


class Monitoring(Construct):
    """Exposes ``function`` (drift check), ``rule``, ``topic``, ``alarms`` (id -> Alarm), ``specs``,
    ``rollback_alarms``, ``model_health`` and ``dashboard``."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: Settings,
        manifest: BundleManifest,
        code: lambda_.Code,
        capture: CaptureStorage,
        serving: Serving,
    ) -> None:
        super().__init__(scope, id)
        s, m = settings, manifest
        stack = cdk.Stack.of(self)
        self.settings, self.manifest, self.serving, self.capture = s, m, serving, capture

        # ---- drift-check function
        log_group = logs.LogGroup(
            self, "DriftCheckLogs", retention=retention(s.log_retention_days), removal_policy=cdk.RemovalPolicy.DESTROY
        )
        role = iam.Role(
            self, "DriftCheckRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Drift check of model {m.model_name}",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="OwnLogGroup", actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PublishDriftMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": s.metrics_namespace}},
            )
        )
        capture.grant_drift_access(role)
        env = s.drift.to_env()  # every setting the function reads (DriftSettings.from_env), nothing else
        env[ENV_BUNDLE_PATH] = BUNDLE_DIR_IN_ASSET
        env.update(capture.environment)
        env.update(powertools_env(s, "drift-check"))
        self.function = lambda_.Function(
            self, "DriftCheck",
            description=f"modelserve drift check: model {m.model_name} version {m.version}",
            runtime=python_runtime(s.python_runtime),
            architecture=lambda_architecture(s),
            handler="handler.handler",
            code=code,
            memory_size=s.drift_memory_mb,
            timeout=cdk.Duration.seconds(s.drift_timeout_s),
            tracing=lambda_.Tracing.ACTIVE,
            environment=env,
            role=role,
            log_group=log_group,
            retry_attempts=0,  # the next scheduled run covers the window again
        )
        acknowledge(
            role, "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData has no resource-level permissions (it is limited by the cloudwatch:namespace "
            "condition to the model namespace); X-Ray trace upload has none either.",
        )
        if s.python_runtime != "3.13":
            acknowledge(
                self.function, "AwsSolutions-L1",
                f"The runtime is the python_runtime setting ({s.python_runtime}): the bundled wheels are built for it.",
            )

        self.rule = events.Rule(
            self, "Schedule",
            description=f"Drift check of model {m.model_name}",
            schedule=events.Schedule.expression(s.drift_schedule),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )

        # ---- alarm topic: a customer-managed key, because CloudWatch cannot use the aws/sns key
        key = kms.Key(
            self, "TopicKey",
            description=f"Alarm topic of model {m.model_name}",
            enable_key_rotation=True,
            removal_policy=cdk.RemovalPolicy.DESTROY,
            pending_window=cdk.Duration.days(7),
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}},
            )
        )
        self.topic = sns.Topic(
            self, "AlarmTopic",
            display_name=f"modelserve {m.model_name} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        if s.alarm_email:
            self.topic.add_subscription(subs.EmailSubscription(s.alarm_email))

        # ---- a metrics failure is itself counted: the functions log it with a fixed message
        for name, group in (("InferenceMetricsErrors", serving.log_group), ("DriftCheckMetricsErrors", log_group)):
            logs.MetricFilter(
                self, name,
                log_group=group,
                filter_pattern=logs.FilterPattern.string_value("$.message", "=", f"{imn.METRICS_ERROR_MESSAGE.split(':')[0]}*"),
                metric_namespace=s.metrics_namespace,
                metric_name=imn.METRICS_ERRORS,
                metric_value="1",
                dimensions={imn.DIM_MODEL_NAME: "$.model_name", imn.DIM_MODEL_VERSION: "$.model_version"},
            )

        # ---- alarms: one per spec, nothing copied
        self.specs = alarm_specs(s, m.model_name, m.version, bucket_name=capture.bucket.bucket_name)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        action = cw_actions.SnsAction(self.topic)
        for spec in self.specs:
            alarm = cloudwatch.Alarm(
                self, spec.id,
                alarm_name=resource_name(stack.stack_name, spec.id, max_len=255),
                alarm_description=spec.description,
                metric=self.metric_for(spec),
                threshold=spec.threshold,
                comparison_operator=_COMPARISON[spec.comparison],
                evaluation_periods=spec.evaluation_periods,
                datapoints_to_alarm=spec.datapoints_to_alarm,
                treat_missing_data=_MISSING[spec.treat_missing_data],
            )
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
            self.alarms[spec.id] = alarm
        self.rollback_alarms = [self.alarms[sp.id] for sp in self.specs if sp.rollback]
        model_alarms = [self.alarms[sp.id] for sp in self.specs if sp.group == "model"]
        self.model_health = cloudwatch.CompositeAlarm(
            self, "ModelHealth",
            composite_alarm_name=resource_name(stack.stack_name, "ModelHealth", max_len=255),
            alarm_description=(
                f"Model health of {m.model_name} {m.version}: in ALARM while any drift, data-quality, traffic or "
                "capture alarm is. Its children notify the topic; this roll-up is for the dashboard and for "
                "suppressing or routing in one place. Runbook: docs/runbook.md#alarm-model-health"
            ),
            alarm_rule=cloudwatch.AlarmRule.any_of(
                *(cloudwatch.AlarmRule.from_alarm(a, cloudwatch.AlarmState.ALARM) for a in model_alarms)
            ),
        )

        self.dashboard = self._dashboard(stack)

    # ------------------------------------------------------------ metrics

    def model_metric(self, name: str, statistic: str, period_s: int, extra: dict[str, str] | None = None, label: str | None = None) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=self.settings.metrics_namespace,
            metric_name=name,
            dimensions_map={imn.DIM_MODEL_NAME: self.manifest.model_name, imn.DIM_MODEL_VERSION: self.manifest.version, **(extra or {})},
            statistic=statistic,
            period=cdk.Duration.seconds(period_s),
            label=label,
        )

    def rejects_by_reason(self) -> cloudwatch.MathExpression:
        """One line per rejection reason, whatever reasons occur (a CloudWatch SEARCH expression)."""
        m, ns = self.manifest, self.settings.metrics_namespace
        dims = f"{imn.DIM_MODEL_NAME},{imn.DIM_MODEL_VERSION},{imn.DIM_REASON}"
        query = (
            f'{{{ns},{dims}}} MetricName="{imn.VALIDATION_REJECTS}" '
            f'{imn.DIM_MODEL_NAME}="{m.model_name}" {imn.DIM_MODEL_VERSION}="{m.version}"'
        )
        return cloudwatch.MathExpression(expression=f"SEARCH('{query}', 'Sum', 300)", using_metrics={}, label="")

    def metric_for(self, spec: AlarmSpec) -> cloudwatch.IMetric:
        if spec.source == "model":
            metric = cloudwatch.Metric(
                namespace=spec.namespace,
                metric_name=spec.metric_name,
                dimensions_map=spec.dimensions,
                statistic=spec.statistic,
                period=cdk.Duration.seconds(spec.period_s),
            )
            if not spec.min_window_rows:
                return metric
            rows = cloudwatch.Metric(
                namespace=spec.namespace,
                metric_name=dmn.WINDOW_ROWS,
                dimensions_map=spec.dimensions,
                statistic="Minimum",
                period=cdk.Duration.seconds(spec.period_s),
            )
            # the same gate as alarms.evaluate: windows under the minimum count as 0
            return cloudwatch.MathExpression(
                expression=f"IF(rows >= {spec.min_window_rows}, m, 0)",
                using_metrics={"m": metric, "rows": rows},
                label=f"{spec.metric_name} (windows of {spec.min_window_rows}+ rows)",
                period=cdk.Duration.seconds(spec.period_s),
            )
        if spec.source == "api":
            return self.serving.api_metric(spec.metric_name, spec.statistic, spec.period_s)
        fn = self.serving.function if spec.source == "inference" else self.function
        return fn.metric(spec.metric_name, statistic=spec.statistic, period=cdk.Duration.seconds(spec.period_s))

    # ------------------------------------------------------------ dashboard

    def _dashboard(self, stack: cdk.Stack) -> cloudwatch.Dashboard:
        s, m, sv = self.settings, self.manifest, self.serving
        drift_period = schedule_period_s(s.drift_schedule)
        self.dashboard_name = resource_name(stack.stack_name, max_len=255)
        d = cloudwatch.Dashboard(
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

        features = [f.name for f in m.features][:DASHBOARD_MAX_FEATURES]
        d.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    f"## Model `{m.model_name}` version `{m.version}`\n"
                    f"Captures: `s3://{self.capture.bucket.bucket_name}/captures/model={m.model_name}/` · "
                    f"drift reports: `s3://{self.capture.bucket.bucket_name}/reports/model={m.model_name}/` · "
                    f"Athena table `{self.capture.database.ref}.captures` · runbook: docs/runbook.md"
                ),
                width=24, height=2,
            ),
        )
        d.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Alarms", alarms=[self.model_health, *self.alarms.values()], width=24, height=4,
            )
        )
        d.add_widgets(
            graph("API requests", [sv.api_metric("Count", "Sum", 300)]),
            graph("API latency (ms)", [sv.api_metric("Latency", p, 300) for p in ("p50", "p90", "p99")],
                  hlines=[threshold(s.api_p99_latency_ms, "p99 alarm")]),
            graph("API 4xx / 5xx", [sv.api_metric("4XXError", "Sum", 300), sv.api_metric("5XXError", "Sum", 300)]),
        )
        fn = sv.function
        d.add_widgets(
            graph("Inference duration (ms)", [fn.metric_duration(statistic=p, period=cdk.Duration.minutes(5)) for p in ("p50", "p99")]),
            graph("Inference errors / throttles", [fn.metric_errors(period=cdk.Duration.minutes(5)), fn.metric_throttles(period=cdk.Duration.minutes(5))]),
            graph("Drift check duration / errors", [self.function.metric_duration(statistic="Maximum", period=cdk.Duration.hours(1))],
                  right=[self.function.metric_errors(period=cdk.Duration.hours(1))]),
        )
        d.add_widgets(
            graph("Rows scored / captured", [self.model_metric(imn.ROWS_SCORED, "Sum", 300), self.model_metric(imn.CAPTURED_ROWS, "Sum", 300)]),
            graph("Capture errors / validation rejects", [self.model_metric(imn.CAPTURE_ERRORS, "Sum", 300), self.model_metric(imn.VALIDATION_REJECTS, "Sum", 300)]),
            graph("Validation rejects by reason", [self.rejects_by_reason()]),
            graph("Prediction latency in the function (ms)", [self.model_metric(imn.PREDICTION_LATENCY_MS, p, 300) for p in ("p50", "p99")]),
        )
        d.add_widgets(
            graph("Drift share / dataset & prediction drift", [self.model_metric(dmn.DRIFT_SHARE, "Maximum", drift_period)],
                  right=[self.model_metric(dmn.DATASET_DRIFT, "Maximum", drift_period), self.model_metric(dmn.PREDICTION_DRIFT, "Maximum", drift_period)],
                  hlines=[threshold(s.drift_share_threshold, "drift share threshold")]),
            graph("Window rows / labeled rows", [self.model_metric(dmn.WINDOW_ROWS, "Maximum", drift_period), self.model_metric(dmn.LABELED_ROWS, "Maximum", drift_period)]),
            graph("Multivariate: MMD p-value / PCA reconstruction ratio", [self.model_metric(dmn.MMD_P_VALUE, "Minimum", drift_period)],
                  right=[self.model_metric(dmn.PCA_RECONSTRUCTION_RATIO, "Maximum", drift_period)]),
        )
        d.add_widgets(
            graph("Per-feature p-value", [
                self.model_metric(dmn.FEATURE_P_VALUE, "Minimum", drift_period, {imn.DIM_FEATURE: f}, label=f) for f in features
            ], width=12, hlines=[threshold(s.alpha, "alpha (before correction)")]),
            graph("Per-feature effect size", [
                self.model_metric(dmn.FEATURE_EFFECT_SIZE, "Maximum", drift_period, {imn.DIM_FEATURE: f}, label=f) for f in features
            ], width=12),
        )
        d.add_widgets(
            graph("Outlier rate", [self.model_metric(dmn.OUTLIER_RATE, "Maximum", drift_period)],
                  hlines=[threshold(s.outlier_rate_threshold, "alarm")]),
            graph("Data quality rates", [
                self.model_metric(dmn.MISSING_RATE, "Maximum", drift_period),
                self.model_metric(dmn.OUT_OF_RANGE_RATE, "Maximum", drift_period),
                self.model_metric(dmn.UNSEEN_CATEGORY_RATE, "Maximum", drift_period),
            ], right=[self.model_metric(dmn.DATA_QUALITY_FAILURES, "Maximum", drift_period)]),
            graph("Performance on labeled rows",
                  [self.model_metric(n, "Average", drift_period) for n in
                   ((dmn.ACCURACY, dmn.F1, dmn.AUC) if m.outputs.task is Task.CLASSIFICATION else (dmn.MAE, dmn.RMSE))]),
        )
        return d

