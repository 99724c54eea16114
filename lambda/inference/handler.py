"""Inference Lambda: API Gateway (REST v1, HTTP v2) and ALB events -> the ASGI app (serving/api.py) via Mangum.

Everything heavy (bundle, ONNX session, clients) is built once here at init, never per request.
"""

# ruff: noqa: E402 - the environment is set before the imports that read it

from __future__ import annotations

import gc
import os

# the function uses no pydantic plugins: without this, building its settings' validator (settings that do not match
# the stack's digest: serving/function_settings.py) scans every installed distribution's entry points for them, at
# init (docs/performance.md#cold-start); a value set by the stack wins
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from typing import Any

from modelserve.metric_catalogue import CAPTURE_DROPPED, DIM_EXECUTED_VERSION, SERVER_ERRORS
from modelserve.observability import make_logger
from serving.api import StageRootPath, create_app
from serving.lambda_adapter import LambdaAdapter
from serving.post_response import executor_from_env
from serving.snapstart import SnapStartHooks
from serving.variants import set_capture_executor
from serving.wiring import inference_function

function = inference_function()  # settings and resources from the environment the stack set
serving, bundle, metrics, service = function.settings, function.bundle, function.metrics, function.service
manifest = bundle.manifest
logger = make_logger("inference", manifest.model_name, manifest.version, function.deployment)
# when captures are written: after the answer through a Lambda internal extension (registered here,
# during init, as Lambda requires), or before it where the Extensions API is absent (MS_CAPTURE_MODE)
capture_executor = executor_from_env(
    os.environ,
    on_dropped=lambda n: metrics(CAPTURE_DROPPED, n, {}),
    after_work=metrics.flush,
    mode=serving.capture_mode,
    full_wait_s=serving.capture_budget_s,  # the local server: a full queue holds an answer this long, no longer
)
set_capture_executor(service, capture_executor)  # the champion's captures, and a challenger's (docs/versions.md)
app = create_app(service, max_body_bytes=serving.max_body_bytes, cors_origins=serving.cors_origins)
# Mangum without lifespan (the model is loaded above) and without an event loop per call (serving/lambda_adapter.py);
# base path: strips /<stage> where the event path carries it (HTTP API named stages, custom domains)
asgi = LambdaAdapter(StageRootPath(app), api_gateway_base_path=f"/{serving.stage_name}")
# SnapStart (snap_start): AWS clients out of the snapshot, fresh ones and reseeded generators after a restore
snapstart = SnapStartHooks.of(function.clients, service)
snapstart.register()
if os.environ.get("AWS_LAMBDA_RUNTIME_API"):  # in Lambda: this process serves this handler for its whole life
    # what init built lives as long as the environment: out of the collector's sight, so a collection during a
    # large batch walks that request's objects, not the modules and the app (docs/performance.md#hot-path)
    gc.freeze()


@capture_executor.invocation  # outermost: the captures are handed over once the handler has returned
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_context = event.get("requestContext") or {}
    logger.append_keys(request_id=request_context.get("requestId"))
    try:
        answer = asgi(event, context)
        if int(answer.get("statusCode", 200)) >= 500:  # a server bug answered: Lambda counts it a successful invocation
            metrics(SERVER_ERRORS, 1, {DIM_EXECUTED_VERSION: str(getattr(context, "function_version", "$LATEST"))})
        return answer
    finally:
        # one EMF flush per invocation: the capture extension's, after the answer and the captures;
        # else here, before the answer
        if not capture_executor.flushes_after_answer:
            metrics.flush()
