"""`python -m devtools verify`: the post-deploy check, against moto and the real handlers.

The stack is a CloudFormation stack in moto whose outputs point at the real inference handler behind
the local gateway (loopback HTTP) and at moto's S3 / SNS / CloudWatch; the drift-check step calls the
real drift-check handler in-process (moto cannot invoke Lambda without Docker). moto has no
DescribeAlarmHistory, so the delivery step is SKIP there; its verdict logic is tested with botocore's
Stubber, which checks the calls against the real CloudWatch API model.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from devtools import verify as V
from devtools.local import LambdaContext, LocalGateway, load_handler_module

BUCKET = "verify-captures"


def _template(url: str, version: str) -> str:
    return json.dumps({
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {
            "ApiUrl": {"Value": url + "/"},
            "ModelVersion": {"Value": version},
            "AlarmTopicArn": {"Value": {"Ref": "Topic"}},
            "CaptureBucketName": {"Value": BUCKET},
            "DriftCheckFunctionName": {"Value": "drift-check"},
        },
    })


@pytest.fixture
def deployed(aws_credentials: None, load_inference: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        inference = load_inference(capture_bucket=BUCKET)
        drift = load_handler_module("drift_check")
        gateway = LocalGateway(inference.handler, inference.serving.stage_name, port=0).start()
        try:
            yield inference, drift, gateway
        finally:
            gateway.stop()


def _deploy_stack(url: str, version: str) -> str:
    cfn = boto3.client("cloudformation")
    cfn.create_stack(StackName="penguins-prod", TemplateBody=_template(url, version))
    topic = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName="penguins-prod")["Stacks"][0]["Outputs"]}["AlarmTopicArn"]
    boto3.client("cloudwatch").put_metric_alarm(
        AlarmName="penguins-Api5xxRate", Namespace="ModelServing", MetricName="Errors", Statistic="Sum", Period=60,
        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold", AlarmActions=[topic],
    )
    return topic


def test_verify_passes_on_a_working_deployment_and_restores_the_alarm(deployed: Any) -> None:
    inference, drift, gateway = deployed
    _deploy_stack(gateway.url, inference.manifest.version)
    v = V.verify("penguins-prod", boto3.Session(), invoke_drift=lambda: drift.handler({}, LambdaContext.fresh("drift")), wait_s=0)
    results = {s.name: s.result for s in v.steps}
    assert results == {
        "stack outputs": "PASS", "GET /health": "PASS", "POST /predict": "PASS", "POST /feedback": "PASS",
        "drift check": "PASS", "alarm notification": "SKIP",
    }, v.table()
    assert v.ok and "PASSED" in v.table()
    alarm = boto3.client("cloudwatch").describe_alarms(AlarmNames=["penguins-Api5xxRate"])["MetricAlarms"][0]
    assert alarm["StateValue"] == "OK"  # set to ALARM for the check, then restored
    reports = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="reports/")["KeyCount"]
    assert reports == 4  # the drift check's JSON + HTML, for the 24 h and the 1 h window


def test_verify_fails_when_the_stack_serves_another_model_version(deployed: Any) -> None:
    inference, drift, gateway = deployed
    _deploy_stack(gateway.url, "0123456789ab")
    v = V.verify("penguins-prod", boto3.Session(), invoke_drift=lambda: drift.handler({}, LambdaContext.fresh("drift")), wait_s=0)
    assert not v.ok and {s.name: s.result for s in v.steps}["GET /health"] == "FAIL"


def test_verify_fails_when_the_stack_does_not_exist(aws_credentials: None) -> None:
    with mock_aws():
        v = V.verify("nope", boto3.Session(region_name="us-east-1"), invoke_drift=lambda: {}, wait_s=0)
    assert not v.ok and v.steps[0].name == "stack outputs" and v.steps[0].result == "FAIL"


@pytest.mark.parametrize(("summary", "expected"), [
    ("Successfully executed action arn:aws:sns:us-east-1:123456789012:alarms", "PASS"),
    ("Failed to execute action arn:aws:sns:us-east-1:123456789012:alarms. Received error: \"CloudWatch Alarms is not "
     "authorized to perform: SNS:Publish\"", "FAIL"),
])
def test_alarm_delivery_verdict_comes_from_the_alarm_history(summary: str, expected: str) -> None:
    cw = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    topic = "arn:aws:sns:us-east-1:123456789012:alarms"
    with Stubber(cw) as stub:
        # the stack's metric alarms have no actions; the cause family's composite alarm notifies
        stub.add_response("describe_alarms", {"MetricAlarms": [{"AlarmName": "m-NoTraffic"}],
                                              "CompositeAlarms": [{"AlarmName": "m-Page-pipeline", "AlarmActions": [topic]}]},
                          {"AlarmTypes": ["MetricAlarm", "CompositeAlarm"]})
        stub.add_response("set_alarm_state", {}, {"AlarmName": "m-Page-pipeline", "StateValue": "ALARM", "StateReason": ANY})
        stub.add_response("describe_alarm_history", {"AlarmHistoryItems": [
            {"AlarmName": "m-Page-pipeline", "Timestamp": datetime.now(UTC), "HistoryItemType": "Action", "HistorySummary": summary}
        ]}, {"AlarmName": "m-Page-pipeline", "AlarmTypes": ["MetricAlarm", "CompositeAlarm"], "HistoryItemType": "Action",
             "StartDate": ANY, "ScanBy": "TimestampDescending"})
        stub.add_response("set_alarm_state", {}, {"AlarmName": "m-Page-pipeline", "StateValue": "OK", "StateReason": ANY})
        v = V.Verification()
        V.check_alarm_delivery(v, {"AlarmTopicArn": topic}, cw, wait_s=0)
        stub.assert_no_pending_responses()
    assert v.steps[0].result == expected, v.steps[0].detail
