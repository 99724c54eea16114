"""`python -m devtools verify`: the post-deploy check, against moto and the real handlers.

The stack is a CloudFormation stack in moto whose outputs point at the real inference handler behind
the local gateway (loopback HTTP) and at moto's S3 / SNS / CloudWatch; the drift-check step calls the
real drift-check handler in-process (moto cannot invoke Lambda without Docker). moto has no
DescribeAlarmHistory, so the delivery step is SKIP there; its verdict logic is tested with botocore's
Stubber, which checks the calls against the real CloudWatch API model.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from devtools import verify as V
from devtools.local import LambdaContext, LocalGateway, load_handler_module, log_capture_path
from driftcheck.capture_formats import decode_capture_object

BUCKET = "verify-captures"


def _template(url: str, version: str) -> str:
    return json.dumps(
        {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {
                "ApiUrl": {"Value": url + "/"},
                "ModelVersion": {"Value": version},
                "AlarmTopicArn": {"Value": {"Ref": "Topic"}},
                "CaptureBucketName": {"Value": BUCKET},
                "DriftCheckFunctionName": {"Value": "drift-check"},
            },
        }
    )


@pytest.fixture
def deployed(aws_credentials: None, load_inference: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The function with the sink the test pins (the default, ``logs``, otherwise): its lines go through moto's
    CloudWatch Logs, subscription and Firehose into the bucket, as Lambda's stdout does in AWS."""
    with mock_aws(), ExitStack() as path:
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        inference = load_inference(capture_bucket=BUCKET)
        path.enter_context(log_capture_path(inference.bundle.root, BUCKET))
        drift = load_handler_module("drift_check")
        gateway = LocalGateway(inference.handler, inference.serving.stage_name, port=0).start()
        try:
            yield inference, drift, gateway
        finally:
            gateway.stop()


def _deploy_stack(url: str, version: str, subscriber: str | None = "oncall@example.com") -> str:
    cfn = boto3.client("cloudformation")
    cfn.create_stack(StackName="penguins-prod", TemplateBody=_template(url, version))
    topic = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName="penguins-prod")["Stacks"][0]["Outputs"]}[
        "AlarmTopicArn"
    ]
    if subscriber:  # moto confirms an e-mail subscription at once (real SNS: after its link is clicked)
        boto3.client("sns").subscribe(TopicArn=topic, Protocol="email", Endpoint=subscriber)
    boto3.client("cloudwatch").put_metric_alarm(
        AlarmName="penguins-Api5xxRate",
        Namespace="ModelServing",
        MetricName="Errors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        AlarmActions=[topic],
    )
    return topic


def test_verify_passes_on_a_working_deployment_and_restores_the_alarm(deployed: Any) -> None:
    inference, drift, gateway = deployed
    _deploy_stack(gateway.url, inference.manifest.version)
    v = V.verify("penguins-prod", boto3.Session(), invoke_drift=lambda: drift.handler({}, LambdaContext.fresh("drift")), wait_s=0)
    results = {s.name: s.result for s in v.steps}
    assert results == {
        "stack outputs": "PASS",
        "GET /health": "PASS",
        "POST /predict": "PASS",
        "POST /feedback": "PASS",
        "capture delivered": "PASS",
        "drift check": "PASS",
        "alarm subscriber": "PASS",
        "alarm notification": "SKIP",
    }, v.table()
    assert v.ok and "PASSED" in v.table()
    alarm = boto3.client("cloudwatch").describe_alarms(AlarmNames=["penguins-Api5xxRate"])["MetricAlarms"][0]
    assert alarm["StateValue"] == "OK"  # set to ALARM for the check, then restored
    reports = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="reports/")["KeyCount"]
    assert reports == 4  # the drift check's JSON + HTML, for the 24 h and the 1 h window


def _capture_step(v: V.Verification) -> V.Step:
    return next(s for s in v.steps if s.name == "capture delivered")


def test_the_capture_step_finds_the_prediction_where_the_default_logs_sink_delivers_it(deployed: Any) -> None:
    inference, drift, gateway = deployed
    assert type(inference.service.capturer.sink).__name__ == "LogsCaptureSink"
    _deploy_stack(gateway.url, inference.manifest.version)
    v = V.verify("penguins-prod", boto3.Session(), invoke_drift=lambda: drift.handler({}, LambdaContext.fresh("drift")), wait_s=0)
    step = _capture_step(v)
    assert step.result == "PASS", v.table()
    key = step.detail.split(f"s3://{BUCKET}/", 1)[1].split(" ", 1)[0]
    # moto's Firehose file (arrival hour) under the version's prefix, holding the request's row among its lines
    assert key.startswith(f"captures/model=penguins/version={inference.manifest.version}/")
    rows = decode_capture_object(boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())
    asked = next(s for s in v.steps if s.name == "POST /predict").detail
    assert any(r["request_id"] in asked for r in rows)
    assert "300 s" in step.detail  # says how long the logs sink may take in AWS


@pytest.mark.capture_sink("s3")
def test_the_capture_step_finds_the_s3_sinks_object_by_its_request_id(deployed: Any) -> None:
    inference, drift, gateway = deployed
    _deploy_stack(gateway.url, inference.manifest.version)
    v = V.verify("penguins-prod", boto3.Session(), invoke_drift=lambda: drift.handler({}, LambdaContext.fresh("drift")), wait_s=0)
    step = _capture_step(v)
    assert step.result == "PASS", v.table()
    assert "/dt=" in step.detail and ".jsonl.gz" in step.detail


def test_a_capture_that_never_arrives_fails_after_the_wait_and_zero_wait_skips(aws_credentials: None) -> None:
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        answer = {"request_id": "never-captured", "model_name": "penguins", "model_version": "0123456789ab"}
        v = V.Verification()
        V.check_capture(v, s3, BUCKET, answer, datetime.now(UTC), wait_s=0.3, poll_s=0.1)
        V.check_capture(v, s3, BUCKET, answer, datetime.now(UTC), wait_s=0)
    failed, skipped = v.steps
    assert failed.result == "FAIL" and "never-captured" in failed.detail and "300 s" in failed.detail
    assert skipped.result == "SKIP" and "--capture-wait 0" in skipped.detail


def test_verify_fails_when_the_stack_serves_another_model_version(deployed: Any) -> None:
    inference, drift, gateway = deployed
    _deploy_stack(gateway.url, "0123456789ab")
    v = V.verify("penguins-prod", boto3.Session(), invoke_drift=lambda: drift.handler({}, LambdaContext.fresh("drift")), wait_s=0)
    assert not v.ok and {s.name: s.result for s in v.steps}["GET /health"] == "FAIL"


def test_verify_fails_when_no_one_subscribes_to_the_alarm_topic(deployed: Any) -> None:
    inference, drift, gateway = deployed
    _deploy_stack(gateway.url, inference.manifest.version, subscriber=None)
    v = V.verify("penguins-prod", boto3.Session(), invoke_drift=lambda: drift.handler({}, LambdaContext.fresh("drift")), wait_s=0)
    step = next(s for s in v.steps if s.name == "alarm subscriber")
    assert step.result == "FAIL" and "reach no one" in step.detail and "alarm_subscriptions" in step.detail
    assert not v.ok and "FAILED" in v.table()


def test_an_unconfirmed_subscription_fails_and_says_how_to_confirm() -> None:
    sns = boto3.client("sns", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    cw = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    topic = "arn:aws:sns:us-east-1:123456789012:alarms"
    with Stubber(sns) as sns_stub, Stubber(cw) as cw_stub:
        cw_stub.add_response(
            "describe_alarms",
            {"CompositeAlarms": [{"AlarmName": "m-Page-service", "AlarmActions": [topic]}]},
            {"AlarmTypes": ["MetricAlarm", "CompositeAlarm"]},
        )
        sns_stub.add_response(
            "list_subscriptions_by_topic",
            {
                "Subscriptions": [
                    {"SubscriptionArn": "PendingConfirmation", "Protocol": "email", "Endpoint": "oncall@example.com", "TopicArn": topic}
                ]
            },
            {"TopicArn": topic},
        )
        v = V.Verification()
        V.check_subscribers(v, {"AlarmTopicArn": topic}, sns, cw)
    (step,) = v.steps
    assert step.result == "FAIL" and "pending confirmation: email:oncall@example.com" in step.detail
    assert "Subscription Confirmation" in step.detail


def test_a_confirmed_subscriber_on_an_existing_pager_topic_counts() -> None:
    sns = boto3.client("sns", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    cw = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    topic, pager = "arn:aws:sns:us-east-1:123456789012:alarms", "arn:aws:sns:us-east-1:123456789012:team-pager"
    with Stubber(sns) as sns_stub, Stubber(cw) as cw_stub:
        cw_stub.add_response(
            "describe_alarms",
            {"CompositeAlarms": [{"AlarmName": "m-Page-service", "AlarmActions": [topic, pager]}]},
            {"AlarmTypes": ["MetricAlarm", "CompositeAlarm"]},
        )
        sns_stub.add_response("list_subscriptions_by_topic", {"Subscriptions": []}, {"TopicArn": topic})
        sns_stub.add_response(
            "list_subscriptions_by_topic",
            {
                "Subscriptions": [
                    {
                        "SubscriptionArn": pager + ":1a2b",
                        "Protocol": "https",
                        "Endpoint": "https://pager.example.com/hook",
                        "TopicArn": pager,
                    }
                ]
            },
            {"TopicArn": pager},
        )
        v = V.Verification()
        V.check_subscribers(v, {"AlarmTopicArn": topic}, sns, cw)
    assert v.steps[0].result == "PASS" and "https://pager.example.com/hook" in v.steps[0].detail


def test_verify_fails_when_the_stack_does_not_exist(aws_credentials: None) -> None:
    with mock_aws():
        v = V.verify("nope", boto3.Session(region_name="us-east-1"), invoke_drift=lambda: {}, wait_s=0)
    assert not v.ok and v.steps[0].name == "stack outputs" and v.steps[0].result == "FAIL"


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ("Successfully executed action arn:aws:sns:us-east-1:123456789012:alarms", "PASS"),
        (
            'Failed to execute action arn:aws:sns:us-east-1:123456789012:alarms. Received error: "CloudWatch Alarms is not '
            'authorized to perform: SNS:Publish"',
            "FAIL",
        ),
    ],
)
def test_alarm_delivery_verdict_comes_from_the_alarm_history(summary: str, expected: str) -> None:
    cw = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    topic = "arn:aws:sns:us-east-1:123456789012:alarms"
    with Stubber(cw) as stub:
        # the stack's metric alarms have no actions; the cause family's composite alarm notifies
        stub.add_response(
            "describe_alarms",
            {
                "MetricAlarms": [{"AlarmName": "m-NoTraffic"}],
                "CompositeAlarms": [{"AlarmName": "m-Page-pipeline", "AlarmActions": [topic]}],
            },
            {"AlarmTypes": ["MetricAlarm", "CompositeAlarm"]},
        )
        stub.add_response("set_alarm_state", {}, {"AlarmName": "m-Page-pipeline", "StateValue": "ALARM", "StateReason": ANY})
        stub.add_response(
            "describe_alarm_history",
            {
                "AlarmHistoryItems": [
                    {"AlarmName": "m-Page-pipeline", "Timestamp": datetime.now(UTC), "HistoryItemType": "Action", "HistorySummary": summary}
                ]
            },
            {
                "AlarmName": "m-Page-pipeline",
                "AlarmTypes": ["MetricAlarm", "CompositeAlarm"],
                "HistoryItemType": "Action",
                "StartDate": ANY,
                "ScanBy": "TimestampDescending",
            },
        )
        stub.add_response("set_alarm_state", {}, {"AlarmName": "m-Page-pipeline", "StateValue": "OK", "StateReason": ANY})
        v = V.Verification()
        V.check_alarm_delivery(v, {"AlarmTopicArn": topic}, cw, wait_s=0)
        stub.assert_no_pending_responses()
    assert v.steps[0].result == expected, v.steps[0].detail


def test_a_warning_topic_without_a_confirmed_subscriber_fails_naming_its_setting() -> None:
    """warning_subscriptions routes the warning pages to a topic of their own: verify checks it like the paging topic."""
    with mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        cw = boto3.client("cloudwatch", region_name="us-east-1")
        alarms = sns.create_topic(Name="alarms")["TopicArn"]
        warnings = sns.create_topic(Name="warnings")["TopicArn"]
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue = sqs.get_queue_attributes(QueueUrl=sqs.create_queue(QueueName="pager")["QueueUrl"], AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(TopicArn=alarms, Protocol="sqs", Endpoint=queue)  # moto confirms an SQS subscription at once
        v = V.Verification()
        V.check_subscribers(v, {"AlarmTopicArn": alarms, "WarningTopicArn": warnings}, sns, cw)
        critical, warning = v.steps
        assert (critical.name, critical.result) == ("alarm subscriber", "PASS")
        assert (warning.name, warning.result) == ("warning subscriber", "FAIL")
        assert "reach no one" in warning.detail and "warning_subscriptions" in warning.detail
        sns.subscribe(TopicArn=warnings, Protocol="sqs", Endpoint=queue)
        v = V.Verification()
        V.check_subscribers(v, {"AlarmTopicArn": alarms, "WarningTopicArn": warnings}, sns, cw)
        assert [s.result for s in v.steps] == ["PASS", "PASS"]
