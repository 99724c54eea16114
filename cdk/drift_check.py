"""The drift-check function and the schedule that runs it."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk.alarms import AlarmSpec, Source
from modelserve.schema import BundleManifest
from modelserve.settings import ENV_BUNDLE_PATH, Settings

from .bundling import BUNDLE_DIR_IN_ASSET
from .capture import CaptureStorage
from .lambda_function import LambdaFunction, powertools_env


class DriftCheck(Construct):
    """Exposes ``function``, ``role``, ``log_group`` and ``rule`` (the schedule). A ``MetricSource`` for the
    alerting (cdk/alerting.py): the function's alarm metrics and its MetricsErrors log group."""

    alarm_sources: tuple[Source, ...] = ("drift_check",)

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: Settings,
        manifest: BundleManifest,
        code: lambda_.Code,
        capture: CaptureStorage,
    ) -> None:
        super().__init__(scope, id)
        s, m = settings, manifest

        env = s.drift.to_env()  # every setting the function reads (DriftSettings.from_env), nothing else
        env[ENV_BUNDLE_PATH] = BUNDLE_DIR_IN_ASSET
        env.update(capture.environment)
        env.update(capture.drift_environment)  # the Athena workgroup and table, with drift_athena=auto|on
        env.update(powertools_env(s, "drift-check"))
        self.lambda_function = LambdaFunction(
            self,
            "Lambda",
            settings=s,
            description=f"modelserve drift check: model {m.model_name} version {m.version}",
            role_description=f"Drift check of model {m.model_name}",
            code=code,
            memory_mb=s.drift_memory_mb,
            timeout_s=s.drift_timeout_s,
            environment=env,
            wildcard_reason=(
                "cloudwatch:PutMetricData has no resource-level permissions (it is limited by the cloudwatch:namespace "
                "condition to the model namespace)."
            ),
            retry_attempts=0,  # the next scheduled run covers the window again
            reserved_concurrent_executions=1,  # a slow check never overlaps the next one (same window, same reports)
        )
        self.function, self.role, self.log_group = self.lambda_function.function, self.lambda_function.role, self.lambda_function.log_group
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="PublishDriftMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": s.metrics_namespace}},
            )
        )
        # each run's verdict as an event (driftcheck/verdict_events.py): the account's default bus only
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="PublishVerdictEvents",
                actions=["events:PutEvents"],
                resources=[f"arn:{cdk.Aws.PARTITION}:events:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:event-bus/default"],
            )
        )
        capture.grant_drift_access(self.role)
        capture.grant_athena_queries(self.role)

        self.rule = events.Rule(
            self,
            "Schedule",
            description=f"Drift check of model {m.model_name}",
            schedule=events.Schedule.expression(s.drift_schedule),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )

    @property
    def metrics_error_log(self) -> tuple[str, logs.ILogGroup]:
        return "DriftCheck", self.log_group

    def alarm_metric(self, spec: AlarmSpec) -> cloudwatch.IMetric:
        """The metric an alarm on the drift-check function (``AWS/Lambda``) reads."""
        return self.function.metric(spec.metric_name, statistic=spec.statistic, period=cdk.Duration.seconds(spec.period_s))
