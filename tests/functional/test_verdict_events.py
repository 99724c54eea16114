"""Drift verdicts reach EventBridge subscribers: a rule on the default bus (the README's example
pattern) forwards the event to an SQS queue in moto, and the message is the documented detail."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from driftcheck.verdict_events import DETAIL_TYPE, SOURCE, VerdictEvent, publish


def _event(drift: bool | None) -> VerdictEvent:
    return VerdictEvent(
        deployment="penguins-prod",
        model_name="penguins",
        model_version="c545edc7e7fd",
        window_start="2026-11-27T00:00:00Z",
        window_end="2026-11-28T00:00:00Z",
        window_rows=5000,
        dataset_drift=drift,
        verdicts={"dataset_drift": bool(drift), "data_quality": False},
        findings=("body_mass_g: mean shifted by 1.4 reference sd",) if drift else (),
        report_json="s3://b/reports/model=penguins/dt=2026-11-28/20261128T000000Z.json",
        report_html="s3://b/reports/model=penguins/dt=2026-11-28/20261128T000000Z.html",
    )


@pytest.fixture
def subscribed(aws_credentials: None) -> Any:
    with mock_aws():
        events, sqs = boto3.client("events"), boto3.client("sqs")
        queue = sqs.create_queue(QueueName="retrain")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        pattern = {"source": [SOURCE], "detail-type": [DETAIL_TYPE], "detail": {"model_name": ["penguins"], "dataset_drift": [True]}}
        events.put_rule(Name="penguins-drifted", EventPattern=json.dumps(pattern))
        events.put_targets(Rule="penguins-drifted", Targets=[{"Id": "q", "Arn": arn}])
        yield events, sqs, queue


def _received(sqs: Any, queue: str) -> list[dict[str, Any]]:
    msgs = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    return [json.loads(m["Body"]) for m in msgs]


def test_a_drifted_check_reaches_the_subscribed_rule_with_its_detail(subscribed: Any) -> None:
    events, sqs, queue = subscribed
    assert publish(events, _event(True))
    (got,) = _received(sqs, queue)
    assert got["source"] == SOURCE and got["detail-type"] == DETAIL_TYPE
    detail = got["detail"]
    assert detail["model_version"] == "c545edc7e7fd" and detail["window"]["rows"] == 5000
    assert detail["findings"] == ["body_mass_g: mean shifted by 1.4 reference sd"]
    assert detail["report_html"].endswith(".html") and detail["deployment"] == "penguins-prod"


def test_a_quiet_check_does_not_match_the_drift_rule(subscribed: Any) -> None:
    events, sqs, queue = subscribed
    assert publish(events, _event(False))
    assert publish(events, _event(None))  # empty window: dataset_drift is null
    assert _received(sqs, queue) == []


def test_publishing_failure_is_reported_not_raised(aws_credentials: None) -> None:
    events = boto3.client("events", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")  # nothing listens
    assert publish(events, _event(True)) is False
