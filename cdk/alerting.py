"""Alerting: the alarm topic and its key, every alarm of ``cdk.alarms.alarm_specs`` (no thresholds
here), the metric filters that count metrics failures, the composite alarm of each cause family
(the ones that notify), and the "model health" roll-up.

One cause, one page: an alarm spec's alarm has no actions; the composite alarm of its family
(``AlarmSpec.family``: input data, model outputs, pipeline, service, challenger) is in ALARM while
any of its children is, and notifies the topic when it enters ALARM and when it is OK again. Nulls
rising in two features that also trip the outlier rate and a drift verdict are one notification,
"input data", whose description sends the on-call engineer to the report's root-cause line. The
CodeDeploy rollback reads the service alarms themselves (``rollback_alarms``), not their actions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

from cdk.alarms import FAMILY_TITLES, PAGED_BY, RUNBOOK_DOC, AlarmSpec, Source, alarm_specs, page_anchor
from modelserve import metric_catalogue as imn
from modelserve.records import model_report_prefix
from modelserve.schema import BundleManifest
from modelserve.settings import Settings
from monitoring import metric_names as dmn

from .common import resource_name

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


class Alerting(Construct):
    """Exposes ``topic``, ``specs``, ``alarms`` (id -> Alarm), ``rollback_alarms``, ``families`` (family ->
    its notifying composite alarm) and ``model_health``."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: Settings,
        manifest: BundleManifest,
        reports_bucket_name: str,
        api_metric: Callable[[str, str, int], cloudwatch.Metric],
        functions: Mapping[Source, lambda_.IFunction],
        metrics_error_logs: Mapping[str, logs.ILogGroup],
        firehose_stream_name: str | None = None,
        challenger_version: str | None = None,
    ) -> None:
        """``functions``: the function behind each ``AWS/Lambda`` alarm source; ``metrics_error_logs``:
        log groups whose "metrics_error" lines are counted, by the name prefix of their metric filter;
        ``firehose_stream_name``: the capture stream (``capture_sink=firehose``), for its delivery alarms;
        ``challenger_version``: a challenger's version when one is deployed (its ChallengerWorse alarm)."""
        super().__init__(scope, id)
        s, m = settings, manifest
        stack = cdk.Stack.of(self)
        self.settings, self.api_metric, self.functions = s, api_metric, functions
        self.firehose_stream_name = firehose_stream_name

        # ---- alarm topic: a customer-managed key, because CloudWatch cannot use the aws/sns key
        key = kms.Key(
            self, "TopicKey",
            description=f"Alarm topic of model {m.model_name}",
            enable_key_rotation=True,
            removal_policy=cdk.RemovalPolicy.DESTROY,
            pending_window=cdk.Duration.days(7),
        )
        own_account = {"StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}}
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions=own_account,  # the account only: AWS documents no alarm ARN in CloudWatch's KMS calls
            )
        )
        self.topic = sns.Topic(
            self, "AlarmTopic",
            display_name=f"modelserve {m.model_name} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        # The alarms of this account (and only those) may publish: a topic policy replaces SNS's default
        # policy, and the one enforce_ssl creates holds only the TLS Deny.
        own_alarms = f"arn:{cdk.Aws.PARTITION}:cloudwatch:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:alarm:*"
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={**own_account, "ArnLike": {"aws:SourceArn": own_alarms}},
            )
        )
        if s.alarm_email:
            self.topic.add_subscription(subs.EmailSubscription(s.alarm_email))

        # ---- a metrics failure is itself counted: the functions log it with a fixed message
        for name, group in metrics_error_logs.items():
            logs.MetricFilter(
                self, f"{name}MetricsErrors",
                log_group=group,
                filter_pattern=logs.FilterPattern.string_value("$.message", "=", f"{imn.METRICS_ERROR_MESSAGE.split(':')[0]}*"),
                metric_namespace=s.metrics_namespace,
                metric_name=imn.METRICS_ERRORS,
                metric_value="1",
                # the log lines carry these keys (modelserve.observability.make_logger)
                dimensions={
                    imn.DIM_MODEL_NAME: "$.model_name", imn.DIM_MODEL_VERSION: "$.model_version", imn.DIM_DEPLOYMENT: "$.deployment",
                },
            )

        # ---- alarms: one per spec, nothing copied
        self.specs = alarm_specs(
            s, m.model_name, m.version, bucket_name=reports_bucket_name, deployment=stack.stack_name, challenger_version=challenger_version
        )
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        action = cw_actions.SnsAction(self.topic)
        for spec in self.specs:  # no actions: their family's composite notifies (below)
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
            self.alarms[spec.id] = alarm
        self.rollback_alarms = [self.alarms[sp.id] for sp in self.specs if sp.rollback]
        self.families: dict[str, cloudwatch.CompositeAlarm] = {}
        reports = f"s3://{reports_bucket_name}/{model_report_prefix(m.model_name)}"
        for family in dict.fromkeys(sp.family for sp in self.specs):
            children = [sp for sp in self.specs if sp.family == family]
            composite = cloudwatch.CompositeAlarm(
                self, f"Page{''.join(w.title() for w in family.split('_'))}",
                composite_alarm_name=resource_name(stack.stack_name, f"Page-{family.replace('_', '-')}", max_len=255),
                alarm_description=self.family_description(family, children, reports),  # < 1024 chars (test_alarms.py)
                alarm_rule=cloudwatch.AlarmRule.any_of(*(self.page_rule(sp.id) for sp in children)),
            )
            composite.add_alarm_action(action)
            composite.add_ok_action(action)
            self.families[family] = composite
        model_alarms = [self.alarms[sp.id] for sp in self.specs if sp.group == "model"]
        self.model_health = cloudwatch.CompositeAlarm(
            self, "ModelHealth",
            composite_alarm_name=resource_name(stack.stack_name, "ModelHealth", max_len=255),
            alarm_description=(
                f"Model health of {m.model_name} {m.version}: in ALARM while any drift, data-quality, traffic or "
                "capture alarm is. The cause families' composite alarms notify; this roll-up is for the dashboard "
                "and for suppressing or routing in one place. Runbook: docs/runbook.md#alarm-model-health"
            ),
            alarm_rule=cloudwatch.AlarmRule.any_of(
                *(cloudwatch.AlarmRule.from_alarm(a, cloudwatch.AlarmState.ALARM) for a in model_alarms)
            ),
        )

    def page_rule(self, spec_id: str) -> cloudwatch.IAlarmRule:
        """An alarm's part of its family's page: its ALARM state, unless an alarm that pages the same
        cause elsewhere is in ALARM too (``alarms.PAGED_BY``; the same rule as ``alarms.paging``)."""
        rule = cloudwatch.AlarmRule.from_alarm(self.alarms[spec_id], cloudwatch.AlarmState.ALARM)
        others = [self.alarms[o] for o in PAGED_BY.get(spec_id, ()) if o in self.alarms]
        if not others:
            return rule
        return cloudwatch.AlarmRule.all_of(
            rule, cloudwatch.AlarmRule.not_(cloudwatch.AlarmRule.any_of(*(cloudwatch.AlarmRule.from_alarm(o, cloudwatch.AlarmState.ALARM) for o in others)))
        )

    @staticmethod
    def family_description(family: str, children: list[AlarmSpec], reports: str) -> str:
        """What the page says: the family, which alarms it stands for, where the root cause is, the runbook."""
        ids = ", ".join(sp.id for sp in children)
        drift = any(sp.windows for sp in children)
        lead = (
            f"Start with the newest drift report under {reports} : its first line (root_cause) names the cause, e.g. "
            "'bill_depth_mm missing in 25% of rows, reference 0.6%'; the drift-check log line 'drift check done' and the "
            "EventBridge verdict event carry the same root_cause (one per window: 24h, and 1h in the -w1h report). "
            if drift else ""
        )
        return (
            f"{FAMILY_TITLES[family]}. One notification for the family: in ALARM while any of {ids} is "
            f"(the message's triggering alarm says which). {lead}"
            f"Runbook: {RUNBOOK_DOC}#{page_anchor(family)} and each alarm's section."
        )

    def metric_for(self, spec: AlarmSpec) -> cloudwatch.IMetric:
        """The metric (or metric math) one alarm spec watches."""
        if spec.source == "model" and len(spec.windows) > 1:
            return self._windows_metric(spec)
        if spec.source == "model":
            return self._model_metric(spec, spec.window_dimensions()[0][1])
        return self._aws_metric(spec)

    def _windows_metric(self, spec: AlarmSpec) -> cloudwatch.IMetric:
        """The larger of the windows' values (each gated by its own rows): one alarm for either window."""
        period = cdk.Duration.seconds(spec.period_s)
        series = {f"w{i}": self._model_metric(spec, dims, str(i)) for i, (_, dims) in enumerate(spec.window_dimensions())}
        label = "/".join(spec.windows)
        return cloudwatch.MathExpression(
            expression=f"MAX([{', '.join(series)}])",
            using_metrics=series,
            label=f"{spec.metric_name} (larger of the {label} windows)",
            period=period,
        )

    def _model_metric(self, spec: AlarmSpec, dimensions: dict[str, str], n: str = "") -> cloudwatch.IMetric:
        """One series of the model namespace (one window's), with the spec's gates; ``n`` keeps the
        metric math ids of several windows apart."""
        if spec.source == "model":
            metric = cloudwatch.Metric(
                namespace=spec.namespace,
                metric_name=spec.metric_name,
                dimensions_map=dimensions,
                statistic=spec.statistic,
                period=cdk.Duration.seconds(spec.period_s),
            )
            if spec.repeat_last_value:
                return cloudwatch.MathExpression(
                    expression=f"FILL(m{n}, REPEAT)",
                    using_metrics={f"m{n}": metric},
                    label=f"{spec.metric_name} (last published value)",
                    period=cdk.Duration.seconds(spec.period_s),
                )
            if not spec.min_window_rows:
                return metric
            rows = cloudwatch.Metric(
                namespace=spec.namespace,
                metric_name=dmn.WINDOW_ROWS,
                dimensions_map=dimensions,
                statistic="Minimum",
                period=cdk.Duration.seconds(spec.period_s),
            )
            # the same gate as alarms.evaluate: windows under the minimum count as 0
            return cloudwatch.MathExpression(
                expression=f"IF(rows{n} >= {spec.min_window_rows}, m{n}, 0)",
                using_metrics={f"m{n}": metric, f"rows{n}": rows},
                label=f"{spec.metric_name} (windows of {spec.min_window_rows}+ rows)",
                period=cdk.Duration.seconds(spec.period_s),
            )
        raise ValueError(f"alarm {spec.id} does not read the model namespace")

    def _aws_metric(self, spec: AlarmSpec) -> cloudwatch.IMetric:
        if spec.source == "api":
            metric = self.api_metric(spec.metric_name, spec.statistic, spec.period_s)
            if not spec.min_requests:
                return metric
            # a share of a handful of requests is noise: periods under the minimum count as 0
            return cloudwatch.MathExpression(
                expression=f"IF(requests >= {spec.min_requests}, m, 0)",
                using_metrics={"m": metric, "requests": self.api_metric("Count", "Sum", spec.period_s)},
                label=f"{spec.metric_name} share (periods of {spec.min_requests}+ requests)",
                period=cdk.Duration.seconds(spec.period_s),
            )
        if spec.source == "firehose":
            if self.firehose_stream_name is None:
                raise ValueError(f"alarm {spec.id} watches the Firehose stream, but the stack has none")
            return cloudwatch.Metric(
                namespace=spec.namespace,
                metric_name=spec.metric_name,
                dimensions_map={"DeliveryStreamName": self.firehose_stream_name},
                statistic=spec.statistic,
                period=cdk.Duration.seconds(spec.period_s),
            )
        return self.functions[spec.source].metric(spec.metric_name, statistic=spec.statistic, period=cdk.Duration.seconds(spec.period_s))
