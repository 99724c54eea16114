"""The "also firing" function (lambda/also_firing/handler.py) in-process against moto: the stack's alarm specs
as real CloudWatch alarms, their states set, the real EventBridge event of a state change, and what reached
the page topic read back from an SQS subscriber. A second alarm entering ALARM inside an open page (family
and severity) notifies once, with the links; the first alarm of a page, an alarm of another page and an alarm
whose cause pages elsewhere send nothing."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdk.alarms import alarm_specs
from cdk.also_firing import also_firing_config
from devtools.local import LAMBDA_DIR
from modelserve.settings import Settings

REGION = "eu-west-1"
PREFIX = "ModelServe-penguins-"
SETTINGS = Settings(alarm_subscriptions="oncall@example.com", runbook_base_url="https://git.example.com/ms/docs/runbook.md")


def _module() -> Any:
    spec = importlib.util.spec_from_file_location("also_firing_handler", LAMBDA_DIR / "also_firing" / "handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HANDLER = _module()


def state_change(alarm: str, new: str = "ALARM", old: str = "OK", after_s: float = 600) -> dict[str, Any]:
    """A "CloudWatch Alarm State Change" event as EventBridge delivers it, ``after_s`` from now."""
    at = (datetime.now(UTC) + timedelta(seconds=after_s)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    return {
        "version": "0",
        "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": "2026-12-06T10:04:00Z",
        "region": REGION,
        "resources": [f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:{alarm}"],
        "detail": {
            "alarmName": alarm,
            "state": {
                "value": new,
                "reason": "Threshold Crossed: 3 out of the last 5 datapoints were greater than the threshold (0.0).",
                "timestamp": at,
            },
            "previousState": {"value": old, "reason": "", "timestamp": "2026-12-06T09:00:00.000+0000"},
            "configuration": {"metrics": [], "description": "..."},
        },
    }


class Aws:
    def __init__(self) -> None:
        self.cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        self.sns = boto3.client("sns", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.topic = self.sns.create_topic(Name="alarms")["TopicArn"]
        self.queue = self.sqs.create_queue(QueueName="pager")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=arn)
        self.specs = alarm_specs(SETTINGS, "penguins", "v1", deployment="ModelServe-penguins")
        for spec in self.specs:  # the metric alarms of the stack (moto keeps their state; it evaluates none)
            self.cloudwatch.put_metric_alarm(
                AlarmName=PREFIX + spec.id,
                MetricName=spec.metric_name,
                Namespace=spec.namespace,
                Statistic="Maximum",
                Period=spec.period_s,
                EvaluationPeriods=spec.evaluation_periods,
                Threshold=spec.threshold,
                ComparisonOperator="GreaterThanThreshold",
            )
        # the canary alarm (cdk/canary.py): no spec, named like the others
        self.cloudwatch.put_metric_alarm(
            AlarmName=PREFIX + "CanaryFailing",
            MetricName="Invocations",
            Namespace="AWS/Lambda",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=2,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
        self.config = also_firing_config(
            SETTINGS,
            self.specs,
            PREFIX,
            topics={"critical": self.topic, "warning": self.topic},
            dashboard="https://eu-west-1.console.aws.amazon.com/cloudwatch/home#dashboards:name=ms",
            reports="https://s3.console.aws.amazon.com/s3/buckets/b?prefix=reports/model=penguins/",
        )

    def alarm(self, spec_id: str, after_s: float = 600) -> dict[str, Any]:
        """Put the alarm in ALARM (as CloudWatch would) and deliver its state-change event to the function, as if
        ``after_s`` later than the alarms set before it."""
        self.cloudwatch.set_alarm_state(AlarmName=PREFIX + spec_id, StateValue="ALARM", StateReason="test")
        return HANDLER.also_firing(state_change(PREFIX + spec_id, after_s=after_s), self.config, self.cloudwatch, self.sns)

    def published(self) -> list[dict[str, Any]]:
        out = []
        while messages := self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", []):
            for m in messages:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=m["ReceiptHandle"])
        return out


@pytest.fixture
def aws(aws_credentials: None) -> Iterator[Aws]:
    with mock_aws():
        yield Aws()


def test_the_first_alarm_of_a_page_sends_nothing_here_its_composite_notifies(aws: Aws) -> None:
    assert aws.alarm("Api5xxRate")["notified"] is False
    assert aws.published() == []


def test_a_second_alarm_inside_an_open_page_notifies_once_with_links(aws: Aws) -> None:
    aws.alarm("CaptureErrors")
    result = aws.alarm("DriftCheckErrors")
    assert result == {"notified": True, "alarm": "DriftCheckErrors", "open": ["CaptureErrors"]}
    (message,) = aws.published()
    assert message["Subject"] == "CRITICAL also firing: DriftCheckErrors in pipeline"
    body = message["Message"]
    assert f"ALSO FIRING: {PREFIX}DriftCheckErrors entered ALARM" in body and "open since 20" in body and "for: CaptureErrors" in body
    assert "Threshold Crossed" in body
    assert "Dashboard: https://" in body and "Reports: https://s3.console" in body
    assert "Runbook: https://git.example.com/ms/docs/runbook.md#alarm-drift-check-errors" in body


def test_two_alarms_of_one_cause_entering_together_are_the_composites_one_page(aws: Aws) -> None:
    """Nulls upstream trip MissingRate and DataQualityFailures at the same drift check: one notification (the
    composite's), not also an "also firing" for each."""
    aws.alarm("MissingRate", after_s=0)
    assert aws.alarm("DataQualityFailures", after_s=30)["notified"] is False
    assert aws.published() == []


def test_an_open_page_of_another_severity_or_family_is_not_this_page(aws: Aws) -> None:
    """A 4xx-share warning open: the 5xx storm pages through the critical composite, not as "also firing"."""
    aws.alarm("Api4xxRate")  # service, warning
    aws.alarm("MissingRate")  # input data, warning
    assert aws.alarm("Api5xxRate")["notified"] is False  # service, critical: its own composite pages
    assert aws.published() == []


def test_an_alarm_whose_cause_pages_elsewhere_adds_nothing(aws: Aws) -> None:
    """NoTraffic while RejectRate is in ALARM: every request refused, the input-data page says so."""
    aws.alarm("RejectRate")
    aws.alarm("CaptureErrors")
    assert aws.alarm("NoTraffic")["notified"] is False
    assert aws.published() == []


def test_an_alarm_leaving_alarm_or_not_of_this_stack_is_ignored(aws: Aws) -> None:
    aws.alarm("CaptureErrors")
    aws.cloudwatch.set_alarm_state(AlarmName=PREFIX + "MetricsErrors", StateValue="ALARM", StateReason="test")
    ok_again = state_change(PREFIX + "MetricsErrors", new="OK", old="ALARM")
    still = state_change(PREFIX + "MetricsErrors", new="ALARM", old="ALARM")
    other = state_change("OtherStack-MetricsErrors")
    for event in (ok_again, still, other):
        assert HANDLER.also_firing(event, aws.config, aws.cloudwatch, aws.sns)["notified"] is False
    assert aws.published() == []


def test_the_handler_reads_its_config_from_the_environment(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HANDLER.ENV_CONFIG, json.dumps(aws.config))
    monkeypatch.setattr(HANDLER, "_CLIENTS", {"cloudwatch": aws.cloudwatch, "sns": aws.sns})
    aws.alarm("CaptureErrors")
    aws.cloudwatch.set_alarm_state(AlarmName=PREFIX + "CaptureDropped", StateValue="ALARM", StateReason="test")
    assert HANDLER.handler(state_change(PREFIX + "CaptureDropped"), None)["notified"] is True
    assert [m["Subject"] for m in aws.published()] == ["CRITICAL also firing: CaptureDropped in pipeline"]


def canary(aws: Aws, state: str) -> None:
    aws.cloudwatch.set_alarm_state(AlarmName=PREFIX + "CanaryFailing", StateValue=state, StateReason="test")


def test_a_service_alarm_inside_a_page_held_by_a_failing_canary_is_not_re_notified(aws: Aws) -> None:
    """A canary CodeDeploy rolls back holds the service pages (the composites' ActionsSuppressor): no "also firing"
    in them either."""
    canary(aws, "ALARM")
    aws.alarm("Api5xxRate")
    result = aws.alarm("InferenceErrors")
    assert result["notified"] is False and "canary is failing" in result["why"]
    assert aws.published() == []


def test_the_page_stays_held_for_the_extension_after_the_canary_alarm_clears(aws: Aws) -> None:
    canary(aws, "ALARM")
    canary(aws, "OK")  # the rollback done: the composite waits out its extension period (300 s) before acting
    aws.alarm("Api5xxRate", after_s=0)
    assert aws.alarm("InferenceErrors", after_s=240)["notified"] is False
    assert aws.published() == []


def test_after_the_extension_a_second_service_alarm_is_re_notified(aws: Aws) -> None:
    canary(aws, "OK")
    aws.alarm("Api5xxRate", after_s=0)
    assert aws.alarm("InferenceErrors", after_s=600)["notified"] is True
    assert [m["Subject"] for m in aws.published()] == ["CRITICAL also firing: InferenceErrors in service"]


def test_a_failing_canary_holds_no_other_family(aws: Aws) -> None:
    canary(aws, "ALARM")
    aws.alarm("CaptureErrors")
    assert aws.alarm("DriftCheckErrors")["notified"] is True
    assert [m["Subject"] for m in aws.published()] == ["CRITICAL also firing: DriftCheckErrors in pipeline"]


def test_an_existing_topic_named_in_the_subscriptions_gets_also_firing_too(aws: Aws) -> None:
    """A team's shared pager topic (``alarm_subscriptions`` names its ARN) receives the composite pages; it receives the
    "also firing" inside them too."""
    shared = aws.sns.create_topic(Name="team-pager")["TopicArn"]
    queue = aws.sqs.create_queue(QueueName="team-pager")["QueueUrl"]
    arn = aws.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.sns.subscribe(TopicArn=shared, Protocol="sqs", Endpoint=arn)
    aws.config["forward"] = {"critical": [shared]}
    aws.alarm("CaptureErrors")
    assert aws.alarm("DriftCheckErrors")["notified"] is True
    (message,) = [json.loads(m["Body"]) for m in aws.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]]
    assert message["TopicArn"] == shared and message["Subject"] == "CRITICAL also firing: DriftCheckErrors in pipeline"
    assert [m["Subject"] for m in aws.published()] == [message["Subject"]]  # and the stack's own topic, once


def test_a_forward_topic_that_refuses_does_not_lose_the_page_topics_message(aws: Aws) -> None:
    gone = "arn:aws:sns:eu-west-1:123456789012:deleted-pager"
    aws.config["forward"] = {"critical": [gone]}
    aws.alarm("CaptureErrors")
    result = aws.alarm("DriftCheckErrors")
    assert result["notified"] is True and result["forward_refused"] == [gone]
    assert [m["Subject"] for m in aws.published()] == ["CRITICAL also firing: DriftCheckErrors in pipeline"]
