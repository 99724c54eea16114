"""CodeDeploy pre-traffic hook: prove the new inference version answers before any traffic shifts to it.

CodeDeploy calls this function before it moves the ``live`` alias. It invokes the *new version*
directly (``MS_TARGET_FUNCTION``, a version ARN) with API Gateway REST events for ``GET /health`` and
``POST /predict`` (one reference row of the bundle, ``MS_SMOKE_REQUEST``) and reports
``Succeeded`` only when both answer 200 with the expected shape and model version; anything else
(init failure, timeout, 5xx, wrong version, wrong shape) reports ``Failed`` and CodeDeploy rolls
back before a single client request reached the new version.

Standard library + boto3 only (the Lambda runtime's): the asset is this file alone.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

ENV_TARGET = "MS_TARGET_FUNCTION"
ENV_SMOKE_REQUEST = "MS_SMOKE_REQUEST"
ENV_EXPECTED_VERSION = "MS_EXPECTED_MODEL_VERSION"
ENV_STAGE = "MS_STAGE_NAME"

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


def api_event(method: str, path: str, stage: str, body: Any = None) -> dict[str, Any]:
    """A minimal API Gateway REST (v1) proxy event, as API Gateway sends it to the function."""
    request_id = str(uuid.uuid4())
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {"content-type": "application/json", "user-agent": "modelserve-pre-traffic-hook"},
        "multiValueHeaders": {"content-type": ["application/json"], "user-agent": ["modelserve-pre-traffic-hook"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": request_id,
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": "127.0.0.1", "userAgent": "modelserve-pre-traffic-hook"},
        },
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def _answer(invoke: Invoke, event: dict[str, Any]) -> tuple[int, dict[str, Any] | None, str]:
    out = invoke(event)
    status = int(out.get("statusCode", 0))
    try:
        body = json.loads(out.get("body") or "null")
    except ValueError:
        return status, None, f"body is not JSON: {str(out.get('body'))[:200]!r}"
    return status, body if isinstance(body, dict) else None, ""


def smoke_test(invoke: Invoke, stage: str, request: dict[str, Any], expected_version: str) -> list[str]:
    """Problems found calling the new version (empty: it works)."""
    problems: list[str] = []
    status, body, err = _answer(invoke, api_event("GET", "/health", stage))
    if status != 200 or err or not body or body.get("status") != "ok":
        problems.append(f"GET /health answered {status}: {err or json.dumps(body)[:300]}")
    elif body.get("model_version") != expected_version:
        problems.append(f"GET /health serves model version {body.get('model_version')!r}, expected {expected_version!r}")
    rows = len(request.get("instances") or [])
    status, body, err = _answer(invoke, api_event("POST", "/predict", stage, request))
    if status != 200 or err or not body:
        problems.append(f"POST /predict answered {status}: {err or json.dumps(body)[:300]}")
        return problems
    predictions = body.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != rows:
        problems.append(f"POST /predict: expected {rows} prediction(s), got {json.dumps(predictions)[:200]}")
    if body.get("model_version") != expected_version:
        problems.append(f"POST /predict served model version {body.get('model_version')!r}, expected {expected_version!r}")
    probabilities = body.get("probabilities")
    if probabilities is not None and (
        not isinstance(probabilities, list)
        or len(probabilities) != rows
        or any(not isinstance(p, list) or abs(sum(p) - 1.0) > 1e-3 for p in probabilities)
    ):
        problems.append(f"POST /predict: probabilities are not one distribution per row: {json.dumps(probabilities)[:200]}")
    return problems


def lambda_invoker(client: Any, function: str) -> Invoke:
    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        out = client.invoke(FunctionName=function, Payload=json.dumps(event).encode())
        payload = out["Payload"].read()
        if out.get("FunctionError"):
            return {"statusCode": 0, "body": json.dumps({"function_error": payload.decode(errors="replace")[:500]})}
        return json.loads(payload)

    return invoke


def run_hook(event: dict[str, Any], invoke: Invoke, codedeploy: Any, env: dict[str, str]) -> dict[str, Any]:
    try:
        problems = smoke_test(invoke, env.get(ENV_STAGE, "prod"), json.loads(env[ENV_SMOKE_REQUEST]), env[ENV_EXPECTED_VERSION])
    except Exception as exc:  # the new version could not be called at all: that is a failed deployment
        problems = [f"invoking {env.get(ENV_TARGET)} failed: {type(exc).__name__}: {exc}"]
    status = "Failed" if problems else "Succeeded"
    print(json.dumps({"pre_traffic": status, "target": env.get(ENV_TARGET), "problems": problems}))
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId=event["DeploymentId"],
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status=status,
    )
    return {"status": status, "problems": problems}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    import boto3

    env = dict(os.environ)
    return run_hook(event, lambda_invoker(boto3.client("lambda"), env[ENV_TARGET]), boto3.client("codedeploy"), env)
