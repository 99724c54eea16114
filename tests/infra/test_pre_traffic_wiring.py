"""The pre-traffic hook in the synthesized template: CodeDeploy calls it before the alias moves, it
calls the new version (and only that) with a request built from the bundle's first reference row."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cdk.pre_traffic import ENV_EXPECTED_VERSION, ENV_SMOKE_REQUEST, ENV_STAGE, ENV_TARGET, smoke_request
from modelserve.settings import SettingsError
from tests.infra.conftest import Synth
from tests.infra.fake_bundle import FAKE_REFERENCE_INPUTS, FAKE_VERSION


def _hook(s: Synth) -> tuple[str, dict[str, Any]]:
    found = {k: v for k, v in s.of_type("AWS::Lambda::Function").items() if k.startswith("PreTrafficHook")}
    assert len(found) == 1, list(found)
    return next(iter(found.items()))


def _statements_of_role(s: Synth, role_id: str) -> list[dict[str, Any]]:
    return [
        st
        for p in s.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for st in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_the_alias_update_runs_the_hook_before_traffic_shifts(default: Synth) -> None:
    hook_id, _ = _hook(default)
    (alias,) = default.of_type("AWS::Lambda::Alias").values()
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    (group_id,) = default.of_type("AWS::CodeDeploy::DeploymentGroup")
    assert update["DeploymentGroupName"] == {"Ref": group_id}
    assert update["BeforeAllowTrafficHook"] == {"Ref": hook_id}
    # the hook (its new target and its permissions) is updated before the alias update starts a deployment
    hook_role = [d for d in default.of_type("AWS::Lambda::Function")[hook_id]["DependsOn"] if d.startswith("PreTrafficHookLambdaRole")]
    assert hook_id in alias["DependsOn"] and set(hook_role) <= set(alias["DependsOn"])
    assert any(d.startswith("PreTrafficHookLambdaRoleDefaultPolicy") for d in alias["DependsOn"])
    # the deployment group's role may invoke the hook (CodeDeploy calls it with that role)
    group = default.of_type("AWS::CodeDeploy::DeploymentGroup")[group_id]["Properties"]
    role_id = group["ServiceRoleArn"]["Fn::GetAtt"][0]
    invokes = [st for st in _statements_of_role(default, role_id) if st["Action"] == "lambda:InvokeFunction"]
    assert invokes and all(json.dumps(r).count(hook_id) for st in invokes for r in st["Resource"])


def test_the_hook_calls_the_new_version_with_a_reference_row(default: Synth) -> None:
    _, hook = _hook(default)
    env = hook["Properties"]["Environment"]["Variables"]
    (version_id,) = default.of_type("AWS::Lambda::Version")
    assert env[ENV_TARGET] == {"Ref": version_id}  # the version's ARN: not the alias, not $LATEST
    assert json.loads(env[ENV_SMOKE_REQUEST]) == {"instances": [FAKE_REFERENCE_INPUTS]}
    assert env[ENV_EXPECTED_VERSION] == FAKE_VERSION
    assert env[ENV_STAGE] == default.settings.stage_name
    assert hook["Properties"]["Handler"] == "handler.handler"
    assert hook["Properties"]["Timeout"] <= 900


def test_the_hook_may_invoke_that_version_and_report_to_its_deployment_group_only(default: Synth) -> None:
    _, hook = _hook(default)
    role_id = hook["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = _statements_of_role(default, role_id)
    (version_id,) = default.of_type("AWS::Lambda::Version")
    (group_id,) = default.of_type("AWS::CodeDeploy::DeploymentGroup")
    by_action: dict[str, list[Any]] = {}
    for st in statements:
        assert st["Effect"] == "Allow"
        for action in st["Action"] if isinstance(st["Action"], list) else [st["Action"]]:
            by_action.setdefault(action, []).append(st["Resource"])
    assert set(by_action) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTelemetryRecords",
        "xray:PutTraceSegments",
        "lambda:InvokeFunction",
        "codedeploy:PutLifecycleEventHookExecutionStatus",
    }
    assert by_action["lambda:InvokeFunction"] == [{"Ref": version_id}]
    (group_arn,) = by_action["codedeploy:PutLifecycleEventHookExecutionStatus"]
    assert {"Ref": group_id} in group_arn["Fn::Join"][1] and "*" not in json.dumps(group_arn)


def test_every_variant_has_the_hook(full: Synth, public: Synth) -> None:
    for s in (full, public):
        hook_id, _ = _hook(s)
        (alias,) = s.of_type("AWS::Lambda::Alias").values()
        assert alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["BeforeAllowTrafficHook"] == {"Ref": hook_id}


def test_a_bundle_without_reference_rows_is_refused_at_synth() -> None:
    with pytest.raises(SettingsError, match="reference rows"):
        smoke_request([], "penguins")
    assert smoke_request([{"inputs": {"x": 1}}, {"inputs": {"x": 2}}], "m") == {"instances": [{"x": 1}]}
