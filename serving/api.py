"""FastAPI adapter over ``InferenceService``: HTTP in, HTTP out. Same app on Lambda (Mangum) and locally.

The service refuses a request with a reason code (``RequestError.reason``); ``status_of`` maps
reasons to HTTP statuses. Every refused /predict is counted here (ValidationRejects by Reason).

``AnswerGuard`` wraps every answer: request id and model headers on each, a trailing slash answered
as the path without it, HEAD served by the GET route, non-JSON error answers rewritten as JSON, and
any unexpected exception turned into a JSON 500 (a server bug, logged; never client input).

Endpoints read the raw body and validate by column (see validation.py) rather than through a
pydantic model per row; the OpenAPI request schema is generated from the bundle's feature schema.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from modelserve import metric_catalogue as mn
from modelserve.records import RejectedField
from modelserve.schema import BundleManifest, FeatureKind, InputDtype, Task, class_key

from . import oip
from .arrow_ipc import ARROW_STREAM, ArrowBodyError, decode_stream, encode_answer
from .capture import rows_of
from .service import FEEDBACK_UNAVAILABLE, InferenceService, new_request_id
from .validation import (
    BODY_TOO_LARGE,
    FLOAT32_MAX,
    MALFORMED_JSON,
    MAX_EXACT_INTEGER,
    MAX_MESSAGE,
    UNSUPPORTED_MEDIA_TYPE,
    RequestError,
    echo,
    parse_json,
)

logger = logging.getLogger(__name__)

_ORJSON_OPTS = orjson.OPT_SERIALIZE_NUMPY

# HTTP status of a refusal reason; every other reason is a well-formed request with invalid content
MALFORMED_ARROW = "malformed_arrow"
_STATUS_OF_REASON = {MALFORMED_JSON: 400, MALFORMED_ARROW: 400, BODY_TOO_LARGE: 413, UNSUPPORTED_MEDIA_TYPE: 415, FEEDBACK_UNAVAILABLE: 503}
UNPROCESSABLE = 422
# the reason code of an error answer built outside our handlers (router, CORS), by status
_REASON_OF_STATUS = {
    400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: BODY_TOO_LARGE,
    415: UNSUPPORTED_MEDIA_TYPE, 422: "bad_request", 500: "internal_error",
}
# media types a JSON body may be sent as: JSON, and curl's default for -d (the body must still be JSON)
_JSON_MEDIA = ("application/json", "application/x-www-form-urlencoded")
_CORS_REQUEST_HEADERS = [
    "content-type", "content-encoding", "x-api-key", "authorization", "x-amz-date", "x-amz-security-token",
    "x-amz-content-sha256", oip.HEADER_LENGTH,
]


def status_of(exc: RequestError) -> int:
    return _STATUS_OF_REASON.get(exc.reason, UNPROCESSABLE)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(content=orjson.dumps(body, option=_ORJSON_OPTS), status_code=status, media_type="application/json", headers=headers)


def request_id_of(request: Request) -> str:
    """The request's id, as ``AnswerGuard`` chose it (API Gateway's own behind it, else a fresh one)."""
    rid = request.scope.get("state", {}).get("request_id")
    return str(rid) if rid else _request_id_of_scope(request.scope)


def _request_id_of_scope(scope: Mapping[str, Any]) -> str:
    """API Gateway's request id (REST v1 and HTTP v2) when behind it, else a fresh one (ALB has none)."""
    event = scope.get("aws.event") or {}
    rid = (event.get("requestContext") or {}).get("requestId")
    return str(rid) if rid else new_request_id()


def error_body(reason: str, message: str, request_id: str, model_version: str, details: list[Any] | None = None) -> dict[str, Any]:
    """Every error answer's shape: ``error`` (reason code), ``message``, ``details``, request id, model version."""
    return {"error": reason, "message": echo(message, MAX_MESSAGE), "details": details or [], "request_id": request_id, "model_version": model_version}


class AnswerGuard:
    """ASGI wrapper around the whole app (inside Mangum): what every answer must be, whatever happened.

    - ``x-request-id``, ``x-model-version`` and ``x-model-name`` on every answer (404, 405, CORS preflight too);
    - ``/predict/`` answered as ``/predict`` (FastAPI would redirect to a URL without the API stage);
    - HEAD served by the GET route, without the body; ``Allow`` lists HEAD where GET is allowed;
    - an error answer that is not JSON (router, CORS) rewritten as the JSON error body;
    - an exception escaping the app: a JSON 500 with the request id, logged (a server bug, never client input).
    """

    def __init__(self, app: Any, model_name: str, model_version: str) -> None:
        self.app = app
        self.model_name, self.model_version = model_name, model_version

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id_of_scope(scope)
        scope.setdefault("state", {})["request_id"] = rid
        path = scope.get("path") or "/"
        if len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
        is_head = scope.get("method") == "HEAD"
        if is_head:
            scope = {**scope, "method": "GET"}
        started = False
        held_start: dict[str, Any] | None = None  # a non-JSON error answer, held to be rewritten
        held_body = bytearray()

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started, held_start
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in (("x-request-id", rid), ("x-model-version", self.model_version), ("x-model-name", self.model_name)):
                    if name not in headers:
                        headers[name] = value
                allow = headers.get("allow")
                if allow and "GET" in allow and "HEAD" not in allow:
                    headers["allow"] = allow + ", HEAD"
                media = (headers.get("content-type") or "").split(";")[0].strip().lower()
                if message["status"] >= 400 and media != "application/json":
                    held_start = message
                    return
                started = True
                await send(message)
            elif message["type"] == "http.response.body":
                if held_start is not None:
                    held_body.extend(message.get("body", b""))
                    if not message.get("more_body"):
                        await send_rewritten(held_start, bytes(held_body))
                    return
                await send({**message, "body": b""} if is_head else message)
            else:
                await send(message)

        async def send_rewritten(start: dict[str, Any], text: bytes) -> None:
            nonlocal started
            status = start["status"]
            reason = _REASON_OF_STATUS.get(status, "http_error")
            body = orjson.dumps(error_body(reason, text.decode("utf-8", "replace") or reason, rid, self.model_version))
            headers = MutableHeaders(scope=start)
            headers["content-type"] = "application/json"
            headers["content-length"] = str(len(body))
            started = True
            await send(start)
            await send({"type": "http.response.body", "body": b"" if is_head else body})

        try:
            await self.app(scope, receive, guarded_send)
        except Exception:
            logger.exception("unhandled error on %s %s (request %s): answered 500", scope.get("method"), echo(path), rid)
            if started:
                return  # the answer is on its way: nothing more can be said
            body = orjson.dumps(error_body(
                "internal_error", f"the server failed on this request (a bug, not your input); quote request id {rid}", rid, self.model_version
            ))
            await send({
                "type": "http.response.start", "status": 500,
                "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", rid.encode()), (b"x-model-version", self.model_version.encode()),
                    (b"x-model-name", self.model_name.encode()),
                ],
            })
            await send({"type": "http.response.body", "body": b"" if is_head else body})


async def read_body(request: Request, max_body: int, binary_ok: bool = False, arrow_ok: bool = False) -> bytes:
    """The request body, checked: a JSON media type (or none, or octet-stream where ``binary_ok``, or an
    Arrow stream where ``arrow_ok``), at most ``max_body`` bytes, gzip content-encoding decompressed to
    at most ``max_body`` bytes."""
    content_type = request.headers.get("content-type")
    if content_type is not None:
        media = content_type.split(";")[0].strip().lower()
        if not (
            media in _JSON_MEDIA or media.endswith("+json")
            or (binary_ok and media == oip.BINARY_CONTENT_TYPE) or (arrow_ok and media == ARROW_STREAM)
        ):
            accepted = "application/json" + (" or application/octet-stream" if binary_ok else "") + (f" or {ARROW_STREAM}" if arrow_ok else "")
            raise RequestError(UNSUPPORTED_MEDIA_TYPE, f"content-type {echo(content_type, 100)!r} is not accepted: send {accepted}")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_body:
        raise RequestError(BODY_TOO_LARGE, f"request body over {max_body} bytes")
    body = await request.body()
    if len(body) > max_body:
        raise RequestError(BODY_TOO_LARGE, f"request body over {max_body} bytes")
    encoding = (request.headers.get("content-encoding") or "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return gunzip_capped(body, max_body)
    if encoding != "identity":
        raise RequestError(UNSUPPORTED_MEDIA_TYPE, f"content-encoding {echo(encoding, 100)!r} is not accepted: send gzip or none")
    return body


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _arrow_payload(body: bytes) -> Any:
    try:
        return decode_stream(body)
    except ArrowBodyError as exc:
        raise RequestError(MALFORMED_ARROW, str(exc)) from None


def gunzip_capped(data: bytes, max_bytes: int) -> bytes:
    """Decompress a gzip body (any number of members) to at most ``max_bytes``: a gzip bomb is a 413,
    found after decompressing ``max_bytes`` + 1 bytes, never more."""
    out = bytearray()
    rest = data
    try:
        while rest:
            d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            out += d.decompress(rest, max_bytes + 1 - len(out))
            if len(out) > max_bytes or d.unconsumed_tail:
                raise RequestError(BODY_TOO_LARGE, f"request body over {max_bytes} bytes once decompressed")
            if not d.eof:
                raise RequestError(MALFORMED_JSON, "the gzip body is truncated")
            rest = d.unused_data
    except zlib.error as exc:
        raise RequestError(MALFORMED_JSON, f"the body is not valid gzip: {exc}") from None
    return bytes(out)


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


def capture_reject(
    service: InferenceService, request: Request, rid: str, exc: RequestError, payload: Any, route: str, status: int | None = None
) -> None:
    """A refused scoring request into the rejects capture (docs/capture.md#rejected-requests): after the
    answer where the executor allows; never raises (a failure is counted as CaptureErrors)."""
    try:
        errors = [RejectedField(e.reason, e.row, e.field, e.message) for e in exc.details] or [RejectedField(exc.reason, message=exc.message)]
        service.capturer.capture_reject(
            rid, request_time_of(request) or datetime.now(UTC), exc.reason, status or status_of(exc), errors, rows_of(payload), route
        )
    except Exception:  # noqa: BLE001 - the refusal is answered whatever happens here
        logger.exception("reject capture failed")


def create_app(service: InferenceService, max_body_bytes: int, cors_origins: Sequence[str] = ()) -> FastAPI:
    m = service.manifest
    app = FastAPI(
        title=f"{m.model_name} prediction API",
        version=m.version,
        description=f"Predictions from model {m.model_name} version {m.version}. Inputs are validated against the bundle schema.",
    )
    app.router.redirect_slashes = False  # AnswerGuard answers /x/ as /x: a redirect would leave the API stage
    max_body = max_body_bytes
    headers_base = {"x-model-version": m.version, "x-model-name": m.model_name}
    max_rows = service.max_batch_rows

    async def read_json(request: Request) -> Any:
        return parse_json(await read_body(request, max_body))

    def error_response(exc: RequestError, request_id: str) -> Response:
        body = exc.body()
        body["request_id"] = request_id
        body["model_version"] = m.version
        return json_response(body, status_of(exc), {**headers_base, "x-request-id": request_id})

    @app.post(
        "/predict", openapi_extra=_predict_openapi(m, max_rows, service.validator.reject_unseen), summary="Score 1..N rows",
        description="JSON as documented here; large batches may also be sent as an Apache Arrow IPC stream "
        f"(content-type {ARROW_STREAM}, one flat column per feature) and answered as one with "
        f"Accept: {ARROW_STREAM} (columns prediction and probability_<class>).",
        responses=_responses(m, {200: ("The predictions", _predict_answer_schema(m))}, 400, 413, 415, 422),
    )
    async def predict(request: Request) -> Response:
        rid = request_id_of(request)
        payload: Any = None
        try:
            if _media_type(request.headers.get("content-type")) == ARROW_STREAM:  # large batches as Arrow
                payload = _arrow_payload(await read_body(request, max_body, arrow_ok=True))
            else:
                payload = await read_json(request)
            answer = service.predict(payload, rid, event_time=request_time_of(request), client_id=request.headers.get("x-client-id"))
        except RequestError as exc:
            service.metric(mn.VALIDATION_REJECTS, 1, {mn.DIM_REASON: exc.reason})
            capture_reject(service, request, rid, exc, payload, "predict")
            return error_response(exc, rid)
        # the version that answered: with a challenger deployed, either one (docs/versions.md)
        headers = {**headers_base, "x-model-version": answer.body["model_version"], "x-request-id": rid}
        if ARROW_STREAM in (request.headers.get("accept") or ""):
            return Response(encode_answer(answer.body), 200, media_type=ARROW_STREAM, headers=headers)
        return json_response(answer.body, 200, headers)

    @app.post(
        "/feedback", openapi_extra=_feedback_openapi(m, max_rows), summary="Ground-truth labels for earlier predictions", status_code=202,
        responses=_responses(m, {202: ("Labels stored", _FEEDBACK_ANSWER)}, 400, 413, 415, 422, 503),
    )
    async def feedback(request: Request) -> Response:
        rid = request_id_of(request)
        try:
            payload = await read_json(request)
            answer = service.feedback(payload, rid)
        except RequestError as exc:
            return error_response(exc, rid)
        return json_response(answer.body, 202, {**headers_base, "x-request-id": rid})

    @app.get("/health", summary="Liveness and the model version", responses=_responses(m, {200: ("Alive", _HEALTH_ANSWER)}))
    async def health(request: Request) -> Response:
        rid = request_id_of(request)
        return json_response({**service.health(), "request_id": rid}, 200, {**headers_base, "x-request-id": rid})

    @app.get("/model", summary="Schema, version and export metrics of the served model", responses=_responses(m, {200: ("The model", _MODEL_ANSWER)}))
    async def model(request: Request) -> Response:
        rid = request_id_of(request)
        return json_response({**service.model_info(), "request_id": rid}, 200, {**headers_base, "x-request-id": rid})

    _add_oip_routes(app, service, max_body, headers_base)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        rid = request_id_of(request)
        reason = _REASON_OF_STATUS.get(exc.status_code, "http_error")
        headers = {**(exc.headers or {}), **headers_base, "x-request-id": rid}
        return json_response(error_body(reason, str(exc.detail), rid, m.version), exc.status_code, headers)

    @app.exception_handler(RequestValidationError)
    async def fastapi_validation(request: Request, exc: RequestValidationError) -> Response:
        rid = request_id_of(request)
        return json_response(error_body("bad_request", str(exc.errors()), rid, m.version), 422, {**headers_base, "x-request-id": rid})

    if cors_origins:
        # preflight answered here, and Access-Control-* on answers to the allowed origins only
        app.add_middleware(
            CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "HEAD", "POST", "OPTIONS"],
            allow_headers=_CORS_REQUEST_HEADERS, expose_headers=["x-request-id", "x-model-version", "x-model-name"], max_age=600,
        )
    app.add_middleware(AnswerGuard, model_name=m.model_name, model_version=m.version)  # outermost: sees every answer
    return app


def _add_oip_routes(app: FastAPI, service: InferenceService, max_body: int, headers_base: dict[str, str]) -> None:
    """Open Inference Protocol v2 (KServe / Triton clients) on the same service: same validation,
    same capture records; errors in OIP's ``{"error": ...}`` shape."""
    m = service.manifest
    infer_body = _oip_infer_body(m)
    generate_openapi = app.openapi

    def openapi_with_served_model() -> dict[str, Any]:
        if app.openapi_schema is None:
            _pin_oip_path_params(generate_openapi(), m)  # generates and caches app.openapi_schema
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi_with_served_model  # type: ignore[method-assign]

    def oip_json(body: Any, status: int = 200, extra: dict[str, str] | None = None) -> Response:
        return json_response(body, status, {**headers_base, **(extra or {})})

    def oip_error(message: str, status: int, rid: str | None = None) -> Response:
        extra = {"x-request-id": rid} if rid else {}
        return Response(oip.error_body(message), status, media_type="application/json", headers={**headers_base, **extra})

    def if_served(name: str, version: str | None, answer: Callable[[], dict[str, Any]]) -> Response:
        """The answer for this server's model (and version), else OIP's 404."""
        try:
            oip.check_model(m, name, version)
        except oip.OipError as exc:
            return oip_error(exc.message, exc.status)
        return oip_json(answer())

    @app.get("/v2", summary="OIP: server metadata", tags=["Open Inference Protocol v2"], responses=_oip_responses())
    async def v2_server() -> Response:
        return oip_json(oip.server_metadata())

    @app.get("/v2/health/live", summary="OIP: server live", tags=["Open Inference Protocol v2"], responses=_oip_responses())
    async def v2_live() -> Response:
        return oip_json({"live": True})

    @app.get("/v2/health/ready", summary="OIP: server ready", tags=["Open Inference Protocol v2"], responses=_oip_responses())
    async def v2_ready() -> Response:
        return oip_json({"ready": True})

    @app.get("/v2/models/{name}", summary="OIP: model metadata", tags=["Open Inference Protocol v2"], responses=_oip_responses(404))
    async def v2_model(name: str) -> Response:
        return if_served(name, None, lambda: oip.model_metadata(m))

    @app.get("/v2/models/{name}/versions/{version}", summary="OIP: model version metadata", tags=["Open Inference Protocol v2"], responses=_oip_responses(404))
    async def v2_model_version(name: str, version: str) -> Response:
        return if_served(name, version, lambda: oip.model_metadata(m))

    @app.get("/v2/models/{name}/ready", summary="OIP: model ready", tags=["Open Inference Protocol v2"], responses=_oip_responses(404))
    async def v2_model_ready(name: str) -> Response:
        return if_served(name, None, lambda: {"name": m.model_name, "ready": True})

    @app.get("/v2/models/{name}/versions/{version}/ready", summary="OIP: model version ready", tags=["Open Inference Protocol v2"], responses=_oip_responses(404))
    async def v2_model_version_ready(name: str, version: str) -> Response:
        return if_served(name, version, lambda: {"name": m.model_name, "ready": True})

    @app.post("/v2/models/{name}/infer", summary="OIP: inference (JSON or binary tensors)", tags=["Open Inference Protocol v2"], responses=_oip_responses(400, 404, 413, 415, 422), openapi_extra=infer_body)
    async def v2_model_infer(request: Request, name: str) -> Response:
        return await v2_infer(request, name, None)

    @app.post("/v2/models/{name}/versions/{version}/infer", summary="OIP: inference on a version", tags=["Open Inference Protocol v2"], responses=_oip_responses(400, 404, 413, 415, 422), openapi_extra=infer_body)
    async def v2_model_version_infer(request: Request, name: str, version: str) -> Response:
        return await v2_infer(request, name, version)

    async def v2_infer(request: Request, name: str, version: str | None) -> Response:
        rid = request_id_of(request)
        decoded = None
        try:
            oip.check_model(m, name, version)
            body = await read_body(request, max_body, binary_ok=True)
            decoded = oip.decode_request(m, body, request.headers.get(oip.HEADER_LENGTH))
            answer = service.predict(decoded.payload, rid, event_time=request_time_of(request), client_id=request.headers.get("x-client-id"))
        except oip.OipError as exc:
            if exc.status != 404:
                service.metric(mn.VALIDATION_REJECTS, 1, {mn.DIM_REASON: "oip_bad_request"})
                capture_reject(service, request, rid, RequestError("oip_bad_request", exc.message), None, "oip", exc.status)
            return oip_error(exc.message, exc.status, rid)
        except RequestError as exc:
            service.metric(mn.VALIDATION_REJECTS, 1, {mn.DIM_REASON: exc.reason})
            capture_reject(service, request, rid, exc, decoded.payload if decoded is not None else None, "oip")
            return oip_error(f"{exc.reason}: {exc.message}", status_of(exc), rid)
        data, extra = oip.encode_response(m, decoded, rid, answer.body)
        media = extra.pop("content-type")
        served = {"x-model-version": answer.body["model_version"]}  # the variant's version (docs/versions.md)
        return Response(data, 200, media_type=media, headers={**headers_base, **extra, **served, "x-request-id": rid})


_ERROR_DESCRIPTIONS = {
    400: "Malformed JSON, or a corrupt gzip body",
    413: "Body over max_body_bytes (compressed, or once decompressed)",
    415: "A content-type other than JSON, or a content-encoding other than gzip",
    422: "Invalid input: the details name the row and field",
    503: "Feedback storage unavailable or not configured: the labels were not stored",
    500: "A server bug (never client input): quote the request id",
}
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "reason code"},
        "message": {"type": "string"},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "row": {"type": ["integer", "null"]}, "field": {"type": ["string", "null"]},
                    "reason": {"type": "string"}, "message": {"type": "string"},
                },
                "required": ["row", "field", "reason", "message"],
            },
        },
        "request_id": {"type": "string"},
        "model_version": {"type": "string"},
    },
    "required": ["error", "message", "details", "request_id", "model_version"],
}
_HEALTH_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {"status": {"const": "ok"}, "model_name": {"type": "string"}, "model_version": {"type": "string"}, "request_id": {"type": "string"}},
    "required": ["status", "model_name", "model_version", "request_id"],
}
_MODEL_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {"model_name": {"type": "string"}, "version": {"type": "string"}, "features": {"type": "array"}, "request_id": {"type": "string"}},
    "required": ["model_name", "version", "features", "request_id"],
}
_FEEDBACK_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {"accepted": {"type": "integer", "minimum": 1}, "feedback_id": {"type": "string"}},
    "required": ["accepted", "feedback_id"],
}


def _responses(m: BundleManifest, success: dict[int, tuple[str, dict[str, Any]]], *errors: int) -> dict[int | str, dict[str, Any]]:
    """An operation's documented answers: its success, its error statuses and a server bug's 500, all JSON."""
    out: dict[int | str, dict[str, Any]] = {
        status: {"description": text, "content": {"application/json": {"schema": schema}}} for status, (text, schema) in success.items()
    }
    for status in (*errors, 500):
        out[status] = {"description": _ERROR_DESCRIPTIONS[status], "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
    return out


def _predict_answer_schema(m: BundleManifest) -> dict[str, Any]:
    label = {"type": "string"} if m.outputs.task is Task.CLASSIFICATION else {"type": ["number", "null"]}
    props: dict[str, Any] = {
        "model_name": {"type": "string"}, "model_version": {"type": "string"}, "request_id": {"type": "string"},
        "predictions": {"type": "array", "items": label, "minItems": 1},
    }
    if m.outputs.task is Task.CLASSIFICATION:
        props["classes"] = {"type": "array", "items": {"type": "string"}}
        props["probabilities"] = {"type": "array", "items": {"type": "array", "items": {"type": ["number", "null"]}}}
    return {"type": "object", "properties": props, "required": ["model_name", "model_version", "request_id", "predictions"]}


def _value_schema(f: Any, reject_unseen: bool) -> dict[str, Any]:
    """What validation accepts for one feature's value (validation.py), as JSON Schema."""
    if f.kind is FeatureKind.NUMERIC:
        if f.input_dtype is InputDtype.INT64:
            s: dict[str, Any] = {"type": "integer", "minimum": -MAX_EXACT_INTEGER, "maximum": MAX_EXACT_INTEGER}
        elif f.input_dtype is InputDtype.FLOAT32:
            s = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
        else:
            s = {"type": "number"}
    elif f.kind is FeatureKind.BOOLEAN:
        s = {"type": "boolean"}
    elif reject_unseen:
        s = {"type": "string", "enum": list(f.categories)}
    else:
        s = {"type": "string"}
    if f.nullable:
        s = {"anyOf": [s, {"type": "null"}]}
    return s


_OIP_ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_OIP_ERRORS = {
    400: "Malformed request: not JSON, no inputs, unknown input, datatype or shape mismatch, binary section errors",
    404: "Unknown model or version",
    413: "Body over max_body_bytes",
    415: "A content-type other than JSON or application/octet-stream",
    422: "Values validation refuses (the message starts with the reason code)",
}
def _oip_infer_body(m: BundleManifest) -> dict[str, Any]:
    """The infer body: OIP JSON, or Triton's binary extension (a JSON header then raw tensors).

    As tight as JSON Schema can say: input and output names, datatypes, shapes of rank 1 or 2, flat or
    nested data of scalars, OIP's scalar-valued parameters. What it can't say (a shape agreeing with the
    data's length, one input per feature, each datatype matching its feature) the server refuses with
    400 and 422, as documented."""
    metadata = oip.model_metadata(m)  # the names the server's own metadata announces
    inputs = [t["name"] for t in metadata["inputs"]]
    scalar = {"type": ["number", "string", "boolean", "null"]}
    params = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}
    tensor = {
        "type": "object", "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string", "enum": inputs},
            "shape": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": sorted({*oip.DTYPES, "BYTES"})},
            "parameters": params,
            "data": {"type": "array", "items": {"anyOf": [scalar, {"type": "array", "items": scalar}]}},
        },
    }
    output = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "enum": [t["name"] for t in metadata["outputs"]]}, "parameters": params}}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {
                    "type": "object", "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"}, "parameters": params,
                        "inputs": {"type": "array", "minItems": 1, "items": tensor},
                        "outputs": {"type": "array", "items": output},
                    },
                }},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        },
    }


def _pin_oip_path_params(schema: dict[str, Any], m: BundleManifest) -> None:
    """This server serves one model and version: say so in the /v2 paths' parameters (others get OIP's 404)."""
    served = {"name": m.model_name, "version": m.version}
    for path, operations in schema.get("paths", {}).items():
        if path.startswith("/v2/models/"):
            for op in operations.values():
                for p in op.get("parameters", []):
                    if p.get("in") == "path" and p.get("name") in served:
                        p["schema"] = {"type": "string", "title": p["name"].title(), "enum": [served[p["name"]]]}


def _oip_responses(*errors: int) -> dict[int | str, dict[str, Any]]:
    """An OIP operation's answers: 200 (OIP JSON, or binary tensors for infer), its errors in OIP's shape, 500."""
    out: dict[int | str, dict[str, Any]] = {200: {"description": "OIP answer", "content": {"application/json": {"schema": {"type": "object"}}}}}
    for status in errors:
        out[status] = {"description": _OIP_ERRORS[status], "content": {"application/json": {"schema": _OIP_ERROR_SCHEMA}}}
    out[500] = {"description": _ERROR_DESCRIPTIONS[500], "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
    return out


def _feature_json_schema(m: BundleManifest, reject_unseen: bool = True) -> dict[str, Any]:
    props = {f.name: _value_schema(f, reject_unseen) for f in m.features}
    return {"type": "object", "properties": props, "required": m.feature_names, "additionalProperties": False}


def _predict_openapi(m: BundleManifest, max_rows: int, reject_unseen: bool) -> dict[str, Any]:
    row = _feature_json_schema(m, reject_unseen)
    n = len(m.features)
    example = {f.name: (f.categories[0] if f.categories else (f.min if f.min is not None else 0) if f.kind is not FeatureKind.BOOLEAN else True) for f in m.features}
    split_row = {"type": "array", "prefixItems": [_value_schema(f, reject_unseen) for f in m.features], "items": False, "minItems": n}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {
                                "type": "object",
                                "properties": {"instances": {"type": "array", "items": row, "minItems": 1, "maxItems": max_rows}},
                                "required": ["instances"],
                                "additionalProperties": False,
                            },
                            {
                                "type": "object",
                                "properties": {
                                    "dataframe_split": {
                                        "type": "object",
                                        "description": "MLflow's split form. The columns may come in any order (each feature once); "
                                        "this schema shows the model's order, with each data row's values in the order of the columns. "
                                        "`index` is accepted and ignored: predictions follow the order of `data`.",
                                        "properties": {
                                            "columns": {
                                                "type": "array", "prefixItems": [{"const": name} for name in m.feature_names],
                                                "items": False, "minItems": n, "uniqueItems": True,
                                            },
                                            "data": {"type": "array", "items": split_row, "minItems": 1, "maxItems": max_rows},
                                            "index": {"type": "array"},
                                        },
                                        "required": ["columns", "data"],
                                        "additionalProperties": False,
                                    }
                                },
                                "required": ["dataframe_split"],
                                "additionalProperties": False,
                            },
                        ]
                    },
                    "example": {"instances": [example]},
                }
            },
        },
    }


def _label_schema(m: BundleManifest) -> dict[str, Any]:
    if m.outputs.task is not Task.CLASSIFICATION:
        return {"type": "number"}
    # labels by meaning (OutputSpec.class_for): class "1" may also be sent as 1, class "true" as true
    values: list[Any] = list(m.outputs.classes)
    for c in m.outputs.classes:
        key = class_key(c)
        if key.lstrip("-").isdigit():
            values.append(int(key))
        elif key in ("true", "false"):
            values.append(key == "true")
    return {"enum": values}


def _feedback_openapi(m: BundleManifest, max_rows: int) -> dict[str, Any]:
    item = {
        "type": "object",
        "properties": {
            "request_id": {"type": "string", "minLength": 1, "maxLength": 128, "description": "the request_id of the prediction"},
            "row": {"type": "integer", "minimum": 0, "default": 0, "description": "the row of that request"},
            "label": _label_schema(m),
        },
        "required": ["request_id", "label"],
        "additionalProperties": False,
    }
    batch = {"type": "array", "items": item, "minItems": 1, "maxItems": max_rows}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [item, batch]}}}}}
