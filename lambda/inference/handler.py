"""Inference Lambda: API Gateway (REST v1, HTTP v2) and ALB events -> FastAPI via Mangum.

Everything heavy (bundle, ONNX session, clients) is built once here at init, never per request.
"""

from __future__ import annotations

import os
from typing import Any

from mangum import Mangum

from modelserve.bundle import ModelBundle
from modelserve.observability import EmfMetricHook, make_logger
from modelserve.settings import Settings
from serving.api import StageRootPath, create_app
from serving.post_response import CAPTURE_DROPPED, executor_from_env
from serving.service import InferenceService

settings = Settings.from_env()
if not os.path.isabs(settings.model_bundle_path):  # relative to the asset root, not the cwd
    root = os.environ.get("LAMBDA_TASK_ROOT") or os.path.dirname(os.path.abspath(__file__))
    settings = settings.model_copy(update={"model_bundle_path": os.path.join(root, settings.model_bundle_path)})

bundle = ModelBundle.load(settings.model_bundle_path)
manifest = bundle.manifest
metrics = EmfMetricHook(settings.metrics_namespace, "inference", manifest.model_name, manifest.version)
logger = make_logger("inference", manifest.model_name, manifest.version)
service = InferenceService.from_settings(settings, os.environ, metric=metrics, bundle=bundle)
# when captures are written: after the answer through a Lambda internal extension (registered here,
# during init, as Lambda requires), or before it where the Extensions API is absent (MS_CAPTURE_MODE)
capture_executor = executor_from_env(os.environ, on_dropped=lambda n: metrics(CAPTURE_DROPPED, n, {}), after_work=metrics.flush)
service.capturer.executor = capture_executor
app = create_app(service)
# lifespan off: Mangum would run startup/shutdown around every call; the model is loaded above.
# base path: strips /<stage> where the event path carries it (HTTP API named stages, custom domains)
asgi = Mangum(StageRootPath(app), lifespan="off", api_gateway_base_path=f"/{settings.stage_name}")


@capture_executor.invocation  # outermost: the captures are handed over once the handler's metrics are out
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_context = event.get("requestContext") or {}
    logger.append_keys(request_id=request_context.get("requestId"))
    return asgi(event, context)
