"""The "also firing" wiring, synthesized: an EventBridge rule on the stack's alarms entering ALARM invokes the
function; its role may describe the stack's alarms and publish to the stack's page topic, nothing else; its
asset is its handler alone on the runtime."""

from __future__ import annotations

import json
import sys
from typing import Any

from cdk.alarms import alarm_specs
from tests.infra.conftest import Synth
from tests.infra.test_asset_contents import LAMBDA_RUNTIME, ROOT, _imports


def _function(s: Synth) -> tuple[str, dict[str, Any]]:
    ((fn_id, fn),) = [(k, v) for k, v in s.of_type("AWS::Lambda::Function").items() if k.startswith("AlsoFiring")]
    return fn_id, fn["Properties"]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "".join(p if isinstance(p, str) else json.dumps(p) for p in value["Fn::Join"][1])


def test_every_alarm_entering_alarm_reaches_the_function(default: Synth) -> None:
    fn_id, _ = _function(default)
    (rule,) = [
        r["Properties"]
        for r in default.of_type("AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern") and r["Properties"]["EventPattern"]["source"] == ["aws.cloudwatch"]
    ]
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    assert pattern["detail"]["state"] == {"value": ["ALARM"]}
    ((prefix,),) = [[p["prefix"] for p in pattern["detail"]["alarmName"]]]
    names = [a["Properties"]["AlarmName"] for a in default.of_type("AWS::CloudWatch::Alarm").values()]
    assert names and all(n.startswith(prefix) for n in names)
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": [fn_id, "Arn"]}
    perms = [
        p["Properties"]
        for p in default.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [fn_id, "Arn"]}
    ]
    assert [p["Principal"] for p in perms] == ["events.amazonaws.com"]


def test_the_function_knows_every_paging_alarm_and_its_page(default: Synth) -> None:
    _, fn = _function(default)
    config = _text(fn["Environment"]["Variables"]["MS_ALSO_FIRING"])
    m = default.manifest
    for spec in alarm_specs(default.settings, m.model_name, m.version, deployment=default.stack_name):
        entry = f'"{spec.id}":["{spec.family}","{spec.severity}",'
        assert (entry in config) == spec.pages, spec.id


def test_its_role_describes_the_stacks_alarms_and_publishes_to_its_page_topic_only(default: Synth) -> None:
    _, fn = _function(default)
    role_id = fn["Role"]["Fn::GetAtt"][0]
    topic = next(k for k in default.of_type("AWS::SNS::Topic") if k.startswith("MonitoringAlarmTopic"))
    statements = [
        st
        for p in default.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for st in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    by_action = {a: st for st in statements for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])}
    assert set(by_action) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "cloudwatch:DescribeAlarms",
        "sns:Publish",
        "kms:Decrypt",
        "kms:GenerateDataKey*",
    }
    assert _text(by_action["cloudwatch:DescribeAlarms"]["Resource"]).endswith(f":alarm:{default.stack_name}-*")
    assert by_action["sns:Publish"]["Resource"] == {"Ref": topic}
    key = next(k for k in default.of_type("AWS::KMS::Key") if k.startswith("MonitoringTopicKey"))
    assert by_action["kms:Decrypt"]["Resource"] == {"Fn::GetAtt": [key, "Arn"]}


def test_its_asset_is_its_handler_alone_on_the_runtime() -> None:
    folder = ROOT / "lambda" / "also_firing"
    assert sorted(p.name for p in folder.iterdir() if p.name != "__pycache__") == ["handler.py"]
    outside = sorted(
        m for m, _ in _imports(folder / "handler.py") if m.split(".")[0] not in sys.stdlib_module_names | LAMBDA_RUNTIME | {"__future__"}
    )
    assert outside == []
