"""FastAPI adapter over ``InferenceService``: HTTP in, HTTP out. Same app on Lambda (Mangum) and locally.

The service refuses a request with a reason code (``RequestError.reason``); ``status_of`` maps
reasons to HTTP statuses. Every refused /predict is counted here (ValidationRejects by Reason).

Endpoints read the raw body and validate by column (see validation.py) rather than through a
pydantic model per row; the OpenAPI request schema is generated from the bundle's feature schema.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelserve import metric_names as mn
from modelserve.schema import BundleManifest, FeatureKind, Task

from . import oip
from .service import FEEDBACK_UNAVAILABLE, InferenceService, new_request_id
from .validation import BODY_TOO_LARGE, MALFORMED_JSON, RequestError, parse_json

logger = logging.getLogger(__name__)

_ORJSON_OPTS = orjson.OPT_SERIALIZE_NUMPY

# HTTP status of a refusal reason; every other reason is a well-formed request with invalid content
_STATUS_OF_REASON = {MALFORMED_JSON: 400, BODY_TOO_LARGE: 413, FEEDBACK_UNAVAILABLE: 503}
UNPROCESSABLE = 422


def status_of(exc: RequestError) -> int:
    return _STATUS_OF_REASON.get(exc.reason, UNPROCESSABLE)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(content=orjson.dumps(body, option=_ORJSON_OPTS), status_code=status, media_type="application/json", headers=headers)


def request_id_of(request: Request) -> str:
    """API Gateway's request id (REST v1 and HTTP v2) when behind it, else a fresh one."""
    event = request.scope.get("aws.event") or {}
    rid = (event.get("requestContext") or {}).get("requestId")
    return str(rid) if rid else new_request_id()


class StageRootPath:
    """ASGI wrapper: behind a REST API stage the public URL is /<stage>/..., but the event path is not.

    Setting the scope's root_path lets /docs point at /<stage>/openapi.json. Routing is unaffected.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        ctx = (scope.get("aws.event") or {}).get("requestContext") or {}
        stage, public_path = ctx.get("stage"), ctx.get("path") or ""
        if stage and stage != "$default" and public_path.startswith(f"/{stage}/"):
            scope = {**scope, "root_path": f"/{stage}"}
        await self.app(scope, receive, send)


def request_time_of(request: Request) -> datetime | None:
    """When API Gateway received the request (REST v1 requestTimeEpoch, HTTP v2 timeEpoch), in UTC."""
    ctx = (request.scope.get("aws.event") or {}).get("requestContext") or {}
    epoch_ms = ctx.get("requestTimeEpoch") or ctx.get("timeEpoch")
    if isinstance(epoch_ms, (int, float)) and epoch_ms > 0:
        return datetime.fromtimestamp(epoch_ms / 1000.0, tz=UTC)
    return None


def create_app(service: InferenceService, max_body_bytes: int) -> FastAPI:
    m = service.manifest
    app = FastAPI(
        title=f"{m.model_name} prediction API",
        version=m.version,
        description=f"Predictions from model {m.model_name} version {m.version}. Inputs are validated against the bundle schema.",
    )
    max_body = max_body_bytes
    headers_base = {"x-model-version": m.version, "x-model-name": m.model_name}

    async def read_json(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body:
            raise RequestError(BODY_TOO_LARGE, f"request body over {max_body} bytes")
        body = await request.body()
        if len(body) > max_body:
            raise RequestError(BODY_TOO_LARGE, f"request body over {max_body} bytes")
        return parse_json(body)

    def error_response(exc: RequestError, request_id: str) -> Response:
        body = exc.body()
        body["request_id"] = request_id
        body["model_version"] = m.version
        return json_response(body, status_of(exc), {**headers_base, "x-request-id": request_id})

    @app.post("/predict", openapi_extra=_predict_openapi(m), summary="Score 1..N rows")
    async def predict(request: Request) -> Response:
        rid = request_id_of(request)
        try:
            payload = await read_json(request)
            answer = service.predict(payload, rid, event_time=request_time_of(request), client_id=request.headers.get("x-client-id"))
        except RequestError as exc:
            service.metric(mn.VALIDATION_REJECTS, 1, {mn.DIM_REASON: exc.reason})
            return error_response(exc, rid)
        # the version that answered: with a challenger deployed, either one (docs/versions.md)
        return json_response(answer.body, 200, {**headers_base, "x-model-version": answer.body["model_version"], "x-request-id": rid})

    @app.post("/feedback", openapi_extra=_feedback_openapi(m), summary="Ground-truth labels for earlier predictions")
    async def feedback(request: Request) -> Response:
        rid = request_id_of(request)
        try:
            payload = await read_json(request)
            answer = service.feedback(payload, rid)
        except RequestError as exc:
            return error_response(exc, rid)
        return json_response(answer.body, 202, {**headers_base, "x-request-id": rid})

    @app.get("/health", summary="Liveness and the model version")
    async def health() -> Response:
        return json_response(service.health(), 200, headers_base)

    @app.get("/model", summary="Schema, version and export metrics of the served model")
    async def model() -> Response:
        return json_response(service.model_info(), 200, headers_base)

    _add_oip_routes(app, service, max_body, headers_base)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return json_response({"error": reason, "message": str(exc.detail), "model_version": m.version}, exc.status_code, headers_base)

    @app.exception_handler(RequestValidationError)
    async def fastapi_validation(request: Request, exc: RequestValidationError) -> Response:
        return json_response({"error": "bad_request", "message": str(exc.errors())[:500], "model_version": m.version}, 422, headers_base)

    return app


def _add_oip_routes(app: FastAPI, service: InferenceService, max_body: int, headers_base: dict[str, str]) -> None:
    """Open Inference Protocol v2 (KServe / Triton clients) on the same service: same validation,
    same capture records; errors in OIP's ``{"error": ...}`` shape."""
    m = service.manifest

    def oip_json(body: Any, status: int = 200, extra: dict[str, str] | None = None) -> Response:
        return json_response(body, status, {**headers_base, **(extra or {})})

    def oip_error(message: str, status: int, rid: str | None = None) -> Response:
        extra = {"x-request-id": rid} if rid else {}
        return Response(oip.error_body(message), status, media_type="application/json", headers={**headers_base, **extra})

    @app.get("/v2", summary="OIP: server metadata", tags=["Open Inference Protocol v2"])
    async def v2_server() -> Response:
        return oip_json(oip.server_metadata())

    @app.get("/v2/health/live", summary="OIP: server live", tags=["Open Inference Protocol v2"])
    async def v2_live() -> Response:
        return oip_json({"live": True})

    @app.get("/v2/health/ready", summary="OIP: server ready", tags=["Open Inference Protocol v2"])
    async def v2_ready() -> Response:
        return oip_json({"ready": True})

    @app.get("/v2/models/{name}", summary="OIP: model metadata", tags=["Open Inference Protocol v2"])
    @app.get("/v2/models/{name}/versions/{version}", summary="OIP: model version metadata", tags=["Open Inference Protocol v2"])
    async def v2_model(name: str, version: str | None = None) -> Response:
        try:
            oip.check_model(m, name, version)
        except oip.OipError as exc:
            return oip_error(exc.message, exc.status)
        return oip_json(oip.model_metadata(m))

    @app.get("/v2/models/{name}/ready", summary="OIP: model ready", tags=["Open Inference Protocol v2"])
    @app.get("/v2/models/{name}/versions/{version}/ready", summary="OIP: model version ready", tags=["Open Inference Protocol v2"])
    async def v2_model_ready(name: str, version: str | None = None) -> Response:
        try:
            oip.check_model(m, name, version)
        except oip.OipError as exc:
            return oip_error(exc.message, exc.status)
        return oip_json({"name": m.model_name, "ready": True})

    @app.post("/v2/models/{name}/infer", summary="OIP: inference (JSON or binary tensors)", tags=["Open Inference Protocol v2"])
    @app.post("/v2/models/{name}/versions/{version}/infer", summary="OIP: inference on a version", tags=["Open Inference Protocol v2"])
    async def v2_infer(request: Request, name: str, version: str | None = None) -> Response:
        rid = request_id_of(request)
        try:
            oip.check_model(m, name, version)
            declared = request.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_body:
                raise RequestError(BODY_TOO_LARGE, f"request body over {max_body} bytes")
            body = await request.body()
            if len(body) > max_body:
                raise RequestError(BODY_TOO_LARGE, f"request body over {max_body} bytes")
            decoded = oip.decode_request(m, body, request.headers.get(oip.HEADER_LENGTH))
            answer = service.predict(decoded.payload, rid, event_time=request_time_of(request), client_id=request.headers.get("x-client-id"))
        except oip.OipError as exc:
            if exc.status != 404:
                service.metric(mn.VALIDATION_REJECTS, 1, {mn.DIM_REASON: "oip_bad_request"})
            return oip_error(exc.message, exc.status, rid)
        except RequestError as exc:
            service.metric(mn.VALIDATION_REJECTS, 1, {mn.DIM_REASON: exc.reason})
            return oip_error(f"{exc.reason}: {exc.message}", status_of(exc), rid)
        data, extra = oip.encode_response(m, decoded, rid, answer.body)
        media = extra.pop("content-type")
        served = {"x-model-version": answer.body["model_version"]}  # the variant's version (docs/versions.md)
        return Response(data, 200, media_type=media, headers={**headers_base, **extra, **served, "x-request-id": rid})


def _feature_json_schema(m: BundleManifest) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for f in m.features:
        if f.kind is FeatureKind.NUMERIC:
            s: dict[str, Any] = {"type": "number"}
        elif f.kind is FeatureKind.BOOLEAN:
            s = {"type": "boolean"}
        else:
            s = {"type": "string", "enum": list(f.categories)}
        if f.nullable:
            s = {"anyOf": [s, {"type": "null"}]}
        props[f.name] = s
    return {"type": "object", "properties": props, "required": m.feature_names, "additionalProperties": False}


def _predict_openapi(m: BundleManifest) -> dict[str, Any]:
    row = _feature_json_schema(m)
    example = {f.name: (f.categories[0] if f.categories else (f.min if f.min is not None else 0) if f.kind is not FeatureKind.BOOLEAN else True) for f in m.features}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"type": "object", "properties": {"instances": {"type": "array", "items": row, "minItems": 1}}, "required": ["instances"]},
                            {
                                "type": "object",
                                "properties": {
                                    "dataframe_split": {
                                        "type": "object",
                                        "properties": {"columns": {"type": "array", "items": {"type": "string"}}, "data": {"type": "array", "items": {"type": "array"}}},
                                        "required": ["columns", "data"],
                                    }
                                },
                                "required": ["dataframe_split"],
                            },
                        ]
                    },
                    "example": {"instances": [example]},
                }
            },
        },
        "responses": {
            "422": {"description": "Invalid input: the body names the row and field"},
            "400": {"description": "Malformed JSON"},
            "413": {"description": "Body too large"},
        },
    }


def _feedback_openapi(m: BundleManifest) -> dict[str, Any]:
    label = {"type": "string", "enum": list(m.outputs.classes)} if m.outputs.task is Task.CLASSIFICATION else {"type": "number"}
    item = {
        "type": "object",
        "properties": {"request_id": {"type": "string"}, "row": {"type": "integer", "minimum": 0}, "label": label},
        "required": ["request_id", "label"],
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [item, {"type": "array", "items": item}]}}}}}
