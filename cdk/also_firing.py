"""Re-notification inside an open page: an EventBridge rule on the stack's alarm state changes and a small
function (lambda/also_firing/handler.py) that publishes "also firing: <alarm> in <family>" to the page's topic
when an alarm enters ALARM while another alarm of its page (family and severity) is already paging.

Least privilege: the function may describe the stack's alarms (name prefix), publish to the stack's own page
topics (and use their key) and to the existing topics named in the subscriptions (the pages reach those too, so
"also firing" does); nothing else. Such a topic's own policy (and its key's, when encrypted) must allow this
function's role as it allows CloudWatch: the stack cannot change another team's topic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk.alarms import FAMILY_TITLES, PAGED_BY, SUPPRESSED_BY_CANARY, AlarmSpec, canary_watch, runbook_link
from modelserve.settings import Settings

from .alerting import Alerting
from .common import resource_name
from .lambda_function import LambdaFunction
from .nag import acknowledge

# the variable lambda/also_firing/handler.py reads (it imports nothing of ours: stdlib + boto3 only)
ENV_CONFIG = "MS_ALSO_FIRING"
MEMORY_MB = 128
TIMEOUT_S = 30


def also_firing_config(
    settings: Settings,
    specs: Sequence[AlarmSpec],
    prefix: str,
    *,
    topics: Mapping[str, str],
    dashboard: str,
    reports: str,
    forward: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """What the function reads (``MS_ALSO_FIRING``, described in its handler): the paging alarms' pages and runbook
    links, ``PAGED_BY`` among the stack's alarms, each severity's topic, the links every notification carries, and
    the canary alarm that holds back the service pages (``cdk/canary.py``; the composites' ActionsSuppressor);
    ``forward``: severity -> the existing topics (named in the subscriptions) its pages notify too."""
    paging_specs = [sp for sp in specs if sp.pages]
    ids = {sp.id for sp in specs}
    watch = canary_watch(settings)
    return {
        "held_by": {"alarm": watch.id, "families": list(SUPPRESSED_BY_CANARY), "extension_s": watch.suppressor_extension_s},
        "prefix": prefix,
        "alarms": {sp.id: [sp.family, sp.severity, runbook_link(settings, sp.runbook_anchor)] for sp in paging_specs},
        "paged_by": {i: [o for o in others if o in ids] for i, others in PAGED_BY.items() if i in ids},
        "topics": dict(topics),
        "forward": {severity: list(arns) for severity, arns in (forward or {}).items() if arns},
        "titles": {sp.family: FAMILY_TITLES[sp.family] for sp in paging_specs},
        "dashboard": dashboard,
        "reports": reports,
    }


class AlsoFiring(Construct):
    """Exposes ``function``, ``role``, ``rule`` and ``alarm_prefix``."""

    def __init__(self, scope: Construct, id: str, *, settings: Settings, alerting: Alerting, handler_dir: Path) -> None:
        super().__init__(scope, id)
        s, stack = settings, cdk.Stack.of(self)
        # every alarm is named resource_name(stack name, spec id): this prefix and the spec id
        self.alarm_prefix = resource_name(stack.stack_name, "x", max_len=255)[:-1]
        config = also_firing_config(
            s,
            alerting.specs,
            self.alarm_prefix,
            topics={severity: topics[0].topic_arn for severity, topics in alerting.page_topics.items()},
            dashboard=alerting.dashboard_link,
            reports=alerting.reports_link,
            forward={severity: [t.topic_arn for t in topics[1:]] for severity, topics in alerting.page_topics.items()},
        )
        self.lambda_function = LambdaFunction(
            self,
            "Lambda",
            settings=s,
            description="modelserve: re-notifies an alarm entering ALARM inside an already open page ('also firing')",
            role_description="Also-firing notifier: reads the stack's alarm states, publishes to its page topics",
            code=lambda_.Code.from_asset(str(handler_dir), exclude=["__pycache__", "*.pyc"]),
            memory_mb=MEMORY_MB,
            timeout_s=TIMEOUT_S,
            environment={ENV_CONFIG: stack.to_json_string(config)},
        )
        self.function, self.role = self.lambda_function.function, self.lambda_function.role
        own_alarms = f"arn:{cdk.Aws.PARTITION}:cloudwatch:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:alarm:{self.alarm_prefix}*"
        self.role.add_to_policy(iam.PolicyStatement(sid="DescribeOwnAlarms", actions=["cloudwatch:DescribeAlarms"], resources=[own_alarms]))
        own_topics = [alerting.topic] if alerting.warning_topic is None else [alerting.topic, alerting.warning_topic]
        for topic in own_topics:
            topic.grant_publish(self.role)
        # the existing topics the subscriptions name get "also firing" as they get the pages; whether such a topic is
        # encrypted is not known at synth: its key policy must let this role use the key (docs/deploy.md)
        forwarded = sorted({t.topic_arn for topics in alerting.page_topics.values() for t in topics[1:]})
        if forwarded:
            self.role.add_to_policy(iam.PolicyStatement(sid="PublishToNamedTopics", actions=["sns:Publish"], resources=forwarded))
        acknowledge(
            self.role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:{self.alarm_prefix}*]",
            "DescribeAlarms on this stack's alarms only: their names share the stack's prefix (the function reads "
            "the states of the alarms of one page).",
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "CDK's grant_publish on the KMS-encrypted page topic: GenerateDataKey* and Decrypt on the topic's own key only.",
        )
        self.rule = events.Rule(
            self,
            "AlarmStateChanges",
            description="An alarm of this stack entering ALARM: re-notify when its page is already open",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=["CloudWatch Alarm State Change"],
                detail={"alarmName": [{"prefix": self.alarm_prefix}], "state": {"value": ["ALARM"]}},
            ),
            targets=[targets.LambdaFunction(self.function, retry_attempts=2)],
        )
