"""The CodeDeploy pre-traffic hook (lambda/pre_traffic/handler.py) against the real inference handler.

Lambda's Invoke is the one thing stood in for (moto needs Docker to invoke): the stand-in calls the
real inference handler in-process with the event the hook built. CodeDeploy's
``PutLifecycleEventHookExecutionStatus`` is checked with botocore's Stubber, which validates the
call against the real API model (moto does not implement it).
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from devtools.local import LAMBDA_DIR, LambdaContext

HOOK_EVENT = {"DeploymentId": "d-ABCDEF123", "LifecycleEventHookExecutionId": "eyJhbGciOi-execution"}


def _hook_module() -> Any:
    spec = importlib.util.spec_from_file_location("pre_traffic_handler", LAMBDA_DIR / "pre_traffic" / "handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env(hook: Any, bundle: Any, **over: str) -> dict[str, str]:
    row = bundle.reference_rows()[0]["inputs"]
    env = {
        hook.ENV_TARGET: "arn:aws:lambda:us-east-1:123456789012:function:inference:7",
        hook.ENV_SMOKE_REQUEST: json.dumps({"instances": [row, row]}),
        hook.ENV_EXPECTED_VERSION: bundle.manifest.version,
        hook.ENV_STAGE: "prod",
    }
    env.update(over)
    return env


def _run(hook: Any, invoke: Any, env: dict[str, str], expected_status: str) -> dict[str, Any]:
    client = boto3.client("codedeploy", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response(
            "put_lifecycle_event_hook_execution_status",
            {"lifecycleEventHookExecutionId": HOOK_EVENT["LifecycleEventHookExecutionId"]},
            {
                "deploymentId": HOOK_EVENT["DeploymentId"],
                "lifecycleEventHookExecutionId": HOOK_EVENT["LifecycleEventHookExecutionId"],
                "status": expected_status,
            },
        )
        out = hook.run_hook(HOOK_EVENT, invoke, client, env)
        stub.assert_no_pending_responses()
    return out


@pytest.fixture
def inference(load_inference: Any, s3: Any) -> Any:
    s3.create_bucket(Bucket="hook-captures")
    return load_inference(capture_bucket="hook-captures")


def test_a_working_version_passes_the_hook(inference: Any, sample_bundle: Any) -> None:
    hook = _hook_module()
    out = _run(hook, lambda ev: inference.handler(ev, LambdaContext.fresh("inference")), _env(hook, sample_bundle), "Succeeded")
    assert out["problems"] == []


def test_a_version_serving_another_model_fails_the_hook(inference: Any, sample_bundle: Any) -> None:
    hook = _hook_module()
    env = _env(hook, sample_bundle, **{hook.ENV_EXPECTED_VERSION: "0123456789ab"})
    out = _run(hook, lambda ev: inference.handler(ev, LambdaContext.fresh("inference")), env, "Failed")
    assert any("0123456789ab" in p for p in out["problems"])


def test_a_version_rejecting_its_own_reference_row_fails_the_hook(inference: Any, sample_bundle: Any) -> None:
    hook = _hook_module()
    row = dict(sample_bundle.reference_rows()[0]["inputs"])
    row.pop(next(iter(row)))  # the new version's schema lost a feature the old clients send
    env = _env(hook, sample_bundle, **{hook.ENV_SMOKE_REQUEST: json.dumps({"instances": [row]})})
    out = _run(hook, lambda ev: inference.handler(ev, LambdaContext.fresh("inference")), env, "Failed")
    assert any("POST /predict answered 422" in p for p in out["problems"])


def test_a_version_that_fails_at_init_fails_the_hook(sample_bundle: Any) -> None:
    hook = _hook_module()

    def crashing_invoke(event: dict[str, Any]) -> dict[str, Any]:  # what Lambda returns for an init error
        return {"errorMessage": "Unable to import module 'handler'", "errorType": "Runtime.ImportModuleError"}

    out = _run(hook, crashing_invoke, _env(hook, sample_bundle), "Failed")
    assert any("/health answered 0" in p for p in out["problems"])


def test_an_unreachable_version_fails_the_hook(sample_bundle: Any) -> None:
    hook = _hook_module()

    def timeout(event: dict[str, Any]) -> dict[str, Any]:
        raise TimeoutError("Read timeout on endpoint URL")

    out = _run(hook, timeout, _env(hook, sample_bundle), "Failed")
    assert "TimeoutError" in out["problems"][0]
