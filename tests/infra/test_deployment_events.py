"""A canary CodeDeploy rolled back is a deployment event: an EventBridge rule on the stack's deployment group
ending FAILURE or STOP sends one notice to the inform topic (not the paging one), readable through its key."""

from __future__ import annotations

import json

from tests.infra.conftest import Synth


def _rule(s: Synth) -> dict:
    (rule,) = [
        r["Properties"]
        for r in s.of_type("AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("source") == ["aws.codedeploy"]
    ]
    return rule


def test_a_failed_or_stopped_deployment_of_the_stacks_group_informs(default: Synth) -> None:
    rule = _rule(default)
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == ["CodeDeploy Deployment State-change Notification"]
    assert pattern["detail"]["state"] == ["FAILURE", "STOP"]
    (app_id,) = default.of_type("AWS::CodeDeploy::Application")
    (group_id,) = default.of_type("AWS::CodeDeploy::DeploymentGroup")
    assert pattern["detail"]["application"] == [{"Ref": app_id}] and pattern["detail"]["deploymentGroup"] == [{"Ref": group_id}]
    inform = next(k for k in default.of_type("AWS::SNS::Topic") if k.startswith("MonitoringInformTopic"))
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Ref": inform}  # the non-paging topic: a deployment event is no page
    transformer = target["InputTransformer"]
    assert set(transformer["InputPathsMap"].values()) >= {"$.detail.deploymentId", "$.detail.state", "$.detail.deploymentGroup"}
    assert "DEPLOYMENT EVENT (no page)" in json.dumps(transformer["InputTemplate"])


def test_eventbridge_publishes_through_a_role_allowed_the_inform_topic_and_its_key_only(default: Synth) -> None:
    """The topic policy still lets CloudWatch alone publish (test_alarm_delivery.py); the rule's role may publish here."""
    inform = next(k for k in default.of_type("AWS::SNS::Topic") if k.startswith("MonitoringInformTopic"))
    (target,) = _rule(default)["Targets"]
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    role = default.resources[role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "events.amazonaws.com"}
    statements = [
        st
        for p in default.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for st in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    by_action = {a: st for st in statements for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])}
    assert set(by_action) == {"sns:Publish", "kms:Decrypt", "kms:GenerateDataKey*"}
    assert by_action["sns:Publish"]["Resource"] == {"Ref": inform}
    key = next(k for k in default.of_type("AWS::KMS::Key") if k.startswith("MonitoringTopicKey"))
    assert by_action["kms:Decrypt"]["Resource"] == {"Fn::GetAtt": [key, "Arn"]}
