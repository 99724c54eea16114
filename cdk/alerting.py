"""Alerting: the alarm topic and its key, every alarm of ``cdk.alarms.alarm_specs`` (no thresholds
here), the metric filters that count metrics failures, the composite alarm of each cause family
(the ones that notify), and the "model health" roll-up.

One cause, one page: an alarm spec's alarm has no actions; the composite alarm of its family
(``AlarmSpec.family``: input data, model outputs, pipeline, service, challenger) and severity
(``AlarmSpec.severity``: critical or warning, each family one composite per severity it has) is in ALARM while
any of its children is, and notifies the topic when it enters ALARM and when it is OK again. Nulls
rising in two features that also trip the outlier rate and a drift verdict are one notification,
"input data", whose description sends the on-call engineer to the report's root-cause line. The
CodeDeploy rollback reads the service alarms themselves (``rollback_alarms``), not their actions, and the canary
alarm (``cdk/canary.py``), which also holds back the service pages while a rolled-back canary fails.

Alerting owns no metric: it asks the constructs it watches (``MetricSource``: serving for the API and
the inference function, the drift check for its function, capture storage for the Firehose stream,
``ModelMetrics`` for the model namespace) for the metric each alarm spec reads, and each function's
construct for the log group whose "metrics_error" lines are counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from cdk.alarms import (
    FAMILY_TITLES,
    PAGED_BY,
    RUNBOOK_DOC,
    SUPPRESSED_BY_CANARY,
    AlarmSpec,
    Severity,
    Source,
    alarm_specs,
    canary_watch,
    page_anchor,
    page_name,
    runbook_link,
)
from modelserve import metric_catalogue as mc
from modelserve.records import model_report_prefix
from modelserve.schema import BundleManifest
from modelserve.settings import NO_SUBSCRIBER, Settings

from .common import resource_name
from .dashboard import dashboard_url
from .model_metrics import ModelMetrics
from .subscriptions import paging_targets, subscribe, warn_without_subscriber

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


class MetricSource(Protocol):
    """A construct the alerting asks for metrics: the alarm sources it owns, the metric an alarm spec of
    one of them reads, and (a function's construct) the log group whose "metrics_error" lines count."""

    @property
    def alarm_sources(self) -> tuple[Source, ...]: ...

    @property
    def metrics_error_log(self) -> tuple[str, logs.ILogGroup] | None:
        """(name prefix of its MetricsErrors filter, log group), or None."""
        ...

    def alarm_metric(self, spec: AlarmSpec) -> cloudwatch.IMetric: ...


class Alerting(Construct):
    """Exposes ``topic``, ``warning_topic`` (or None), ``inform_topic``, ``page_topics`` (severity -> the topics its
    pages notify), ``specs``, ``alarms`` (id -> Alarm), ``rollback_alarms``, ``pages`` ((family, severity) -> its
    notifying composite alarm) and ``model_health``."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: Settings,
        manifest: BundleManifest,
        reports_bucket_name: str,
        watched: Sequence[MetricSource],
        challenger_version: str | None = None,
        canary_alarm: cloudwatch.IAlarm | None = None,
    ) -> None:
        """``watched``: the constructs whose metrics the alarms read (the model namespace's are asked of
        ``ModelMetrics``); ``challenger_version``: a challenger's version when one is deployed (its alarms);
        ``canary_alarm``: the "canary failing" alarm (``cdk/canary.py``) that holds back the service pages."""
        super().__init__(scope, id)
        s, m = settings, manifest
        stack = cdk.Stack.of(self)
        self.settings = s
        self.sources: dict[Source, MetricSource] = {}
        self.model_metrics = ModelMetrics(s, m, stack.stack_name)
        for source in (self.model_metrics, *watched):
            self.sources.update({name: source for name in source.alarm_sources})

        # ---- alarm topic: a customer-managed key, because CloudWatch cannot use the aws/sns key
        key = kms.Key(
            self,
            "TopicKey",
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
        # The alarms of this account (and only those) may publish: a topic policy replaces SNS's default
        # policy, and the one enforce_ssl creates holds only the TLS Deny.
        self._own_alarms = f"arn:{cdk.Aws.PARTITION}:cloudwatch:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:alarm:*"
        self.key = key
        self.topic = self._alarm_topic("AlarmTopic", f"modelserve {m.model_name} alarms")
        # who is paged: refused at synth when no one is (cdk/subscriptions.py)
        self.forward_topics = subscribe(self.topic, paging_targets(s))
        warn_without_subscriber(self, s)
        # warning pages: on their own topic when the team routes them elsewhere (warning_subscriptions), else with the critical ones
        self.warning_topic: sns.Topic | None = None
        warning_forwards: list[sns.ITopic] = []
        if s.warning_subscriptions is not None:
            self.warning_topic = self._alarm_topic("WarningTopic", f"modelserve {m.model_name} warnings")
            warning_forwards = subscribe(self.warning_topic, tuple(t for t in s.warning_subscriptions if t != NO_SUBSCRIBER))
            warn_without_subscriber(self, s, setting="warning_subscriptions")
        # what informs without paging (drift with no performance impact): a second topic, its own subscribers
        self.inform_topic = self._alarm_topic("InformTopic", f"modelserve {m.model_name} notices (no page)")
        subscribe(self.inform_topic, tuple(t for t in s.inform_subscriptions if t != NO_SUBSCRIBER))
        # the topics each severity's pages notify (the first is the stack's own; the rest are existing topics named in settings)
        self.page_topics: dict[Severity, list[sns.ITopic]] = {
            "critical": [self.topic, *self.forward_topics],
            "warning": [self.warning_topic, *warning_forwards] if self.warning_topic is not None else [self.topic, *self.forward_topics],
        }

        # ---- a metrics failure is itself counted: the functions log it with a fixed message
        for name, group in (w.metrics_error_log for w in watched if w.metrics_error_log is not None):
            logs.MetricFilter(
                self,
                f"{name}MetricsErrors",
                log_group=group,
                filter_pattern=logs.FilterPattern.string_value("$.message", "=", f"{mc.METRICS_ERROR_MESSAGE.split(':')[0]}*"),
                metric_namespace=s.metrics_namespace,
                metric_name=mc.METRICS_ERRORS,
                metric_value="1",
                # the log lines carry these keys (modelserve.observability.make_logger)
                dimensions={
                    mc.DIM_MODEL_NAME: "$.model_name",
                    mc.DIM_MODEL_VERSION: "$.model_version",
                    mc.DIM_DEPLOYMENT: "$.deployment",
                },
            )

        # ---- alarms: one per spec, nothing copied
        self.specs = alarm_specs(
            s, m.model_name, m.version, bucket_name=reports_bucket_name, deployment=stack.stack_name, challenger_version=challenger_version
        )
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        inform = cw_actions.SnsAction(self.inform_topic)
        for spec in self.specs:  # a paging alarm has no actions: its family's composite notifies (below)
            alarm = (
                self._anomaly_alarm(spec)
                if spec.anomaly_band
                else cloudwatch.Alarm(
                    self,
                    spec.id,
                    alarm_name=resource_name(stack.stack_name, spec.id, max_len=255),
                    alarm_description=spec.description,
                    metric=self.metric_for(spec),
                    threshold=spec.threshold,
                    comparison_operator=_COMPARISON[spec.comparison],
                    evaluation_periods=spec.evaluation_periods,
                    datapoints_to_alarm=spec.datapoints_to_alarm,
                    treat_missing_data=_MISSING[spec.treat_missing_data],
                )
            )
            if not spec.pages:  # informs: straight to the non-paging topic, in and out of ALARM
                alarm.add_alarm_action(inform)
                alarm.add_ok_action(inform)
            self.alarms[spec.id] = alarm
        self.rollback_alarms = [self.alarms[sp.id] for sp in self.specs if sp.rollback]
        self.pages: dict[tuple[str, Severity], cloudwatch.CompositeAlarm] = {}
        reports = f"s3://{reports_bucket_name}/{model_report_prefix(m.model_name)}"
        # one step from the page to the cause: the dashboard and the reports in the console, beside the s3:// path
        self.dashboard_link = dashboard_url(stack.stack_name)
        self.reports_link = f"https://s3.console.aws.amazon.com/s3/buckets/{reports_bucket_name}?prefix={model_report_prefix(m.model_name)}"
        links = f"Dashboard: {self.dashboard_link} . Reports: {self.reports_link} . "
        paging_specs = [sp for sp in self.specs if sp.pages]
        # one composite per family and severity: a critical failure pages even while a warning of its family is open
        for family, severity in dict.fromkeys((sp.family, sp.severity) for sp in paging_specs):
            children = [sp for sp in paging_specs if (sp.family, sp.severity) == (family, severity)]
            family_id = "".join(w.title() for w in family.split("_"))
            composite = cloudwatch.CompositeAlarm(
                self,
                f"Page{family_id}" if severity == "critical" else f"WarningPage{family_id}",
                composite_alarm_name=resource_name(stack.stack_name, page_name(family, severity), max_len=255),
                alarm_description=self.family_description(  # < 1024 chars (test_alarms.py)
                    family,
                    children,
                    reports,
                    links,
                    runbook_link(s, page_anchor(family)),
                    severity,
                ),
                alarm_rule=cloudwatch.AlarmRule.any_of(*(self.page_rule(sp.id) for sp in children)),
                **self._suppression(family, canary_alarm),
            )
            actions = [cw_actions.SnsAction(t) for t in self.page_topics[severity]]
            composite.add_alarm_action(*actions)
            composite.add_ok_action(*actions)
            self.pages[(family, severity)] = composite
        model_alarms = [self.alarms[sp.id] for sp in self.specs if sp.group == "model"]
        self.model_health = cloudwatch.CompositeAlarm(
            self,
            "ModelHealth",
            composite_alarm_name=resource_name(stack.stack_name, "ModelHealth", max_len=255),
            alarm_description=(
                f"Model health of {m.model_name} {m.version}: in ALARM while any drift, data-quality, traffic or "
                "capture alarm is. The cause families' composite alarms notify; this roll-up is for the dashboard "
                # its section: docs/runbook.md#alarm-model-health (or under runbook_base_url)
                f"and for suppressing or routing in one place. Runbook: {runbook_link(s, 'alarm-model-health')}"
            ),
            alarm_rule=cloudwatch.AlarmRule.any_of(
                *(cloudwatch.AlarmRule.from_alarm(a, cloudwatch.AlarmState.ALARM) for a in model_alarms)
            ),
        )

    def _suppression(self, family: str, canary_alarm: cloudwatch.IAlarm | None) -> dict[str, object]:
        """A service page is held while a canary fails (CodeDeploy rolls it back: a deployment event, not a page) and
        for the extension after it; a failure still there then (the previous version failing too) pages. The wait
        is 0 s: no page waits for a canary alarm that is not coming (``cdk.alarms.CanaryWatch``)."""
        if canary_alarm is None or family not in SUPPRESSED_BY_CANARY:
            return {}
        watch = canary_watch(self.settings)
        return {
            "actions_suppressor": canary_alarm,
            "actions_suppressor_wait_period": cdk.Duration.seconds(watch.suppressor_wait_s),
            "actions_suppressor_extension_period": cdk.Duration.seconds(watch.suppressor_extension_s),
        }

    def _alarm_topic(self, id: str, display_name: str) -> sns.Topic:
        """A topic the stack's alarms publish to: the alarm key, TLS only, CloudWatch alarms of this account may publish."""
        topic = sns.Topic(self, id, display_name=display_name, master_key=self.key, enforce_ssl=True)
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}, "ArnLike": {"aws:SourceArn": self._own_alarms}},
            )
        )
        return topic

    def _anomaly_alarm(self, spec: AlarmSpec) -> cloudwatch.Alarm:
        """An alarm below the band CloudWatch's anomaly detection learned from the metric's own history."""
        return cloudwatch.AnomalyDetectionAlarm(
            self,
            spec.id,
            alarm_name=resource_name(cdk.Stack.of(self).stack_name, spec.id, max_len=255),
            alarm_description=spec.description,
            metric=self.metric_for(spec),
            std_devs=spec.threshold,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_LOWER_THRESHOLD,
            evaluation_periods=spec.evaluation_periods,
            datapoints_to_alarm=spec.datapoints_to_alarm,
            treat_missing_data=_MISSING[spec.treat_missing_data],
        )

    def page_rule(self, spec_id: str) -> cloudwatch.IAlarmRule:
        """An alarm's part of its family's page: its ALARM state, unless an alarm that pages the same
        cause elsewhere is in ALARM too (``alarms.PAGED_BY``; the same rule as ``alarms.paging``)."""
        rule = cloudwatch.AlarmRule.from_alarm(self.alarms[spec_id], cloudwatch.AlarmState.ALARM)
        others = [self.alarms[o] for o in PAGED_BY.get(spec_id, ()) if o in self.alarms]
        if not others:
            return rule
        return cloudwatch.AlarmRule.all_of(
            rule,
            cloudwatch.AlarmRule.not_(
                cloudwatch.AlarmRule.any_of(*(cloudwatch.AlarmRule.from_alarm(o, cloudwatch.AlarmState.ALARM) for o in others))
            ),
        )

    @staticmethod
    def family_description(
        family: str, children: list[AlarmSpec], reports: str, links: str = "", runbook: str = "", severity: Severity = "critical"
    ) -> str:
        """What the page says: the family, which alarms it stands for, where the root cause is, ``links`` (the
        dashboard and the reports in the console; without them the reports' s3:// path), the runbook (``runbook``:
        its section's link)."""
        ids = ", ".join(sp.id for sp in children)
        # the report's root-cause line is where a data or model page starts (the pipeline's alarms name their fault)
        drift = family in ("input_data", "model_output") and any(sp.windows for sp in children)
        lead = (
            f"Start with the newest drift report ({'Reports below' if links else reports}): its first line (root_cause) "
            "names the cause (also in the log line 'drift check done' and the verdict event; the 1h window's report "
            "ends in -w1h). "
            if drift
            else ""
        )
        return (
            f"{severity.upper()}: {FAMILY_TITLES[family]}. One notification for the family: in ALARM while any of {ids} is "
            f"(the triggering alarm says which). {lead}"
            f"{links}Runbook: {runbook or RUNBOOK_DOC + '#' + page_anchor(family)} and each alarm's section."
        )

    def metric_for(self, spec: AlarmSpec) -> cloudwatch.IMetric:
        """The metric (or metric math) one alarm spec watches, from the construct that owns its source."""
        owner = self.sources.get(spec.source)
        if owner is None:
            raise ValueError(f"alarm {spec.id} reads {spec.source} metrics, but the stack has no construct that provides them")
        if spec.minus_validation_rejects:
            return self._gateway_refusals(spec, owner)
        return owner.alarm_metric(spec)

    def _gateway_refusals(self, spec: AlarmSpec, api: MetricSource) -> cloudwatch.IMetric:
        """The share of requests refused as malformed: the gateway's 4xx count less the function's validation
        refusals (which RejectRate pages for) and less the refusals for access (403, 404, 429: a scanner, a client
        without a key or over its quota; counted from the access log), in periods of at least ``min_requests``."""
        plain = replace(spec, min_requests=0, minus_validation_rejects=False, statistic="Sum")
        rejects = self.model_metrics.metric(mc.VALIDATION_REJECTS, "Sum", spec.period_s)
        using = {
            "errors": api.alarm_metric(plain),
            "rejects": rejects,
            "requests": api.alarm_metric(replace(plain, metric_name="Count")),
        }
        access = " - FILL(refused, 0)" if spec.minus_access_refusals else ""
        if spec.minus_access_refusals:
            using["refused"] = api.access_refusals_metric(spec.period_s)  # type: ignore[attr-defined]
        return cloudwatch.MathExpression(
            expression=f"IF(requests >= {spec.min_requests}, (errors - FILL(rejects, 0){access}) / requests, 0)",
            using_metrics=using,
            label=f"gateway 4xx share (periods of {spec.min_requests}+ requests)",
            period=cdk.Duration.seconds(spec.period_s),
        )
