"""The inference API's HTTP side: ASGI transport and route wiring. Same app on Lambda (Mangum) and locally.

Starlette's router, no FastAPI: each route is a plain ASGI endpoint (one ``Request`` in, one ``Response``
out), and its OpenAPI documentation an ``openapi.Operation`` built when the document is first asked for,
so init imports and builds only what answers requests. Each scoring route hands its requests to its codecs
(``codecs/``: one per request format, picked by content-type; they own reading, the reject bookkeeping
and the answer's format); ``/feedback``, ``/health``, ``/model`` and the OIP metadata routes answer here.
The OpenAPI document is ``openapi.py``.

``AnswerGuard`` wraps every answer: request id and model headers on each, a trailing slash answered
as the path without it, HEAD served by the GET route, non-JSON error answers (the router's 404 and 405)
rewritten as JSON, and any unexpected exception turned into a JSON 500 (a server bug, logged; never client input).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import orjson
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, Router

from modelserve.schema import BundleManifest

from . import oip
from .body import is_json_media, media_type, read_body, unsupported_media
from .codecs import CODECS, OIP, PREDICT, CodecRegistry, CodecRoute
from .feedback import caller_of
from .http_exchange import REASON_OF_STATUS, error_body, json_response, request_id_of, request_id_of_scope, status_of
from .service import InferenceService
from .validation import RequestError, echo, parse_json

if TYPE_CHECKING:
    from .openapi import Operation

logger = logging.getLogger(__name__)


def _docs() -> ModuleType:
    """openapi.py: loaded when the document is first asked for, not at init (no answer but the document needs it)."""
    from . import openapi

    return openapi


_CORS_REQUEST_HEADERS = [
    "content-type",
    "content-encoding",
    "x-api-key",
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    oip.HEADER_LENGTH,
]
_SERVED_HEADERS = ("x-request-id", "x-model-version", "x-model-name")


class AnswerGuard:
    """ASGI wrapper around the whole app (inside Mangum): what every answer must be, whatever happened.

    - ``x-request-id``, ``x-model-version`` and ``x-model-name`` on every answer (404, 405, CORS preflight too);
    - ``/predict/`` answered as ``/predict`` (a redirect would lead to a URL without the API stage);
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
        rid = request_id_of_scope(scope)
        scope.setdefault("state", {})["request_id"] = rid
        path = scope.get("path") or "/"
        if len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
        is_head = scope.get("method") == "HEAD"
        if is_head:
            scope = {**scope, "method": "GET"}
        answer = _GuardedAnswer(send, (rid, self.model_version, self.model_name), is_head)
        try:
            await self.app(scope, receive, answer.send)
        except Exception:
            logger.exception("unhandled error on %s %s (request %s): answered 500", scope.get("method"), echo(path), rid)
            if not answer.started:  # else the answer is on its way: nothing more can be said
                await answer.server_error()


class _GuardedAnswer:
    """One answer passing through ``AnswerGuard``: the served headers added, a non-JSON error held and rewritten."""

    def __init__(self, send: Any, served: tuple[str, str, str], is_head: bool) -> None:
        self._send, self.is_head = send, is_head
        self.rid, self.model_version, _ = served
        self.served = dict(zip(_SERVED_HEADERS, served))
        self.started = False
        self.held_start: dict[str, Any] | None = None  # a non-JSON error answer, held to be rewritten
        self.held_body = bytearray()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            await self._start(message)
        elif message["type"] == "http.response.body":
            await self._body(message)
        else:
            await self._send(message)

    async def _start(self, message: dict[str, Any]) -> None:
        headers = MutableHeaders(scope=message)
        for name, value in self.served.items():
            if name not in headers:
                headers[name] = value
        allow = headers.get("allow")
        if allow and "GET" in allow and "HEAD" not in allow:
            headers["allow"] = allow + ", HEAD"
        if message["status"] >= 400 and media_type(headers.get("content-type")) != "application/json":
            self.held_start = message
            return
        self.started = True
        await self._send(message)

    async def _body(self, message: dict[str, Any]) -> None:
        if self.held_start is None:
            await self._send({**message, "body": b""} if self.is_head else message)
            return
        self.held_body.extend(message.get("body", b""))
        if not message.get("more_body"):
            await self._rewritten(self.held_start, bytes(self.held_body))

    async def _rewritten(self, start: dict[str, Any], text: bytes) -> None:
        reason = REASON_OF_STATUS.get(start["status"], "http_error")
        body = orjson.dumps(error_body(reason, text.decode("utf-8", "replace") or reason, self.rid, self.model_version))
        headers = MutableHeaders(scope=start)
        headers["content-type"] = "application/json"
        headers["content-length"] = str(len(body))
        self.started = True
        await self._send(start)
        await self._send({"type": "http.response.body", "body": b"" if self.is_head else body})

    async def server_error(self) -> None:
        message = f"the server failed on this request (a bug, not your input); quote request id {self.rid}"
        body = orjson.dumps(error_body("internal_error", message, self.rid, self.model_version))
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += [(name.encode(), value.encode()) for name, value in self.served.items()]
        await self._send({"type": "http.response.start", "status": 500, "headers": headers})
        await self._send({"type": "http.response.body", "body": b"" if self.is_head else body})


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


Handler = Callable[[Request], Awaitable[Response]]
OperationDoc = Callable[[], dict[str, Any]]


class _Endpoint:
    """A route's ASGI app: the handler gets the request and its response is sent. No exception wrapper per
    request: what escapes a handler is ``AnswerGuard``'s (a JSON 500)."""

    __slots__ = ("handler",)

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        response = await self.handler(Request(scope, receive))
        await response(scope, receive, send)


class InferenceApp:
    """The inference API as one ASGI app: ``AnswerGuard`` around CORS (when origins are allowed) around
    Starlette's router. Its OpenAPI document (``openapi()``, ``/openapi.json``, Swagger UI at ``/docs``)
    is built on the first request for it."""

    docs_url = "/docs"
    openapi_url = "/openapi.json"

    def __init__(self, m: BundleManifest, cors_origins: Sequence[str] = ()) -> None:
        self.manifest = m
        self.title = f"{m.model_name} prediction API"
        self.description = f"Predictions from model {m.model_name} version {m.version}. Inputs are validated against the bundle schema."
        self._documented: list[tuple[str, str, str, OperationDoc]] = []  # path, method, endpoint name, doc
        self._openapi: dict[str, Any] | None = None
        self.router = Router(redirect_slashes=False)  # AnswerGuard answers /x/ as /x: a redirect would leave the API stage
        app: Any = self.router
        if cors_origins:
            from starlette.middleware.cors import CORSMiddleware  # loaded only where origins are allowed

            # preflight answered here, and Access-Control-* on answers to the allowed origins only
            app = CORSMiddleware(
                app,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "HEAD", "POST", "OPTIONS"],
                allow_headers=_CORS_REQUEST_HEADERS,
                expose_headers=list(_SERVED_HEADERS),
                max_age=600,
            )
        self._asgi = AnswerGuard(app, m.model_name, m.version)  # outermost: sees every answer
        self.add(self.openapi_url, "GET", self._openapi_json)
        self.add(self.docs_url, "GET", self._swagger_ui)

    @property
    def routes(self) -> list[Any]:
        return self.router.routes

    def add(self, path: str, method: str, handler: Handler, doc: OperationDoc | None = None) -> None:
        """Serve ``handler`` on ``method path``; documented by ``doc`` (left out of the document without one)."""
        self.router.routes.append(Route(path, _Endpoint(handler), methods=[method], name=handler.__name__))
        if doc is not None:
            self._documented.append((path, method, handler.__name__, doc))

    @property
    def operations(self) -> list[Operation]:
        """Each documented route's ``openapi.Operation`` (built here: openapi.py is loaded when the document is asked for, not at init)."""
        return [_docs().Operation(*documented) for documented in self._documented]

    def get(self, path: str, doc: OperationDoc) -> Callable[[Handler], Handler]:
        return self._route(path, "GET", doc)

    def post(self, path: str, doc: OperationDoc) -> Callable[[Handler], Handler]:
        return self._route(path, "POST", doc)

    def _route(self, path: str, method: str, doc: OperationDoc) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add(path, method, handler, doc)
            return handler

        return register

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document, built once, on first use."""
        if self._openapi is None:
            self._openapi = _docs().openapi_document(self.title, self.manifest.version, self.description, self.operations, self.manifest)
        return self._openapi

    async def _openapi_json(self, request: Request) -> Response:
        return JSONResponse(_docs().with_servers(self.openapi(), request.scope.get("root_path", "")))

    async def _swagger_ui(self, request: Request) -> Response:
        root_path = request.scope.get("root_path", "").rstrip("/")
        return HTMLResponse(_docs().swagger_ui_html(root_path + self.openapi_url, f"{self.title} - Swagger UI"))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self._asgi(scope, receive, send)


def create_app(
    service: InferenceService, max_body_bytes: int, cors_origins: Sequence[str] = (), codecs: CodecRegistry = CODECS
) -> InferenceApp:
    """The app for one service: /predict and the OIP routes read through ``codecs``, built now (at init)."""
    m = service.manifest
    app = InferenceApp(m, cors_origins)
    headers_base = {"x-model-version": m.version, "x-model-name": m.model_name}
    max_rows = service.max_batch_rows

    def answer(body: Any, request: Request, status: int = 200) -> Response:
        return json_response(body, status, {**headers_base, "x-request-id": request_id_of(request)})

    predict_route = codecs.route(PREDICT, service, max_body_bytes)

    def predict_doc() -> dict[str, Any]:
        answer_media = {
            c.answer_media: c.answer_schema() for c in predict_route.codecs if c.answer_media and c is not predict_route.default
        }
        notes, bodies, headers = predict_route.openapi_notes(), predict_route.openapi_bodies(max_rows), predict_route.openapi_parameters()
        return _docs().predict_operation(m, max_rows, service.validator.reject_unseen, notes, answer_media, bodies, headers)

    @app.post("/predict", predict_doc)
    async def predict(request: Request) -> Response:
        return await predict_route(request)

    @app.post("/feedback", lambda: _docs().feedback_operation(m, max_rows, service.request_ids.feedback_id_pattern))
    async def feedback(request: Request) -> Response:
        rid = request_id_of(request)
        try:
            content_type = request.headers.get("content-type")
            if content_type is not None and not is_json_media(media_type(content_type)):
                raise unsupported_media(content_type, ["application/json"])
            caller = caller_of(request.scope.get("aws.event"))
            result = service.feedback(parse_json(await read_body(request, max_body_bytes)), rid, caller)
        except RequestError as exc:
            body = {**exc.body(), "request_id": rid, "model_version": m.version}
            return json_response(body, status_of(exc), {**headers_base, "x-request-id": rid})
        return answer(result.body, request, 202)

    @app.get("/health", lambda: _docs().health_operation(m))
    async def health(request: Request) -> Response:
        return answer({**service.health(), "request_id": request_id_of(request)}, request)

    @app.get("/model", lambda: _docs().model_operation(m))
    async def model(request: Request) -> Response:
        return answer({**service.model_info(), "request_id": request_id_of(request)}, request)

    _add_oip_routes(app, codecs.route(OIP, service, max_body_bytes))
    return app


def _add_oip_routes(app: InferenceApp, infer: CodecRoute) -> None:
    """Open Inference Protocol v2 (KServe / Triton clients) on the same service: inference through the
    OIP codec (same validation, same capture records); errors in OIP's ``{"error": ...}`` shape."""
    _add_oip_metadata_routes(app, infer.service.manifest, infer.served_headers)
    _add_oip_infer_routes(app, infer)


def _path_params(operation: dict[str, Any], *names: str) -> dict[str, Any]:
    """``operation`` with its path parameters declared in the OpenAPI document (the handlers read them from
    ``request.path_params``, strings the router has matched)."""
    params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string", "title": n.title()}} for n in names]
    extra = operation.get("openapi_extra") or {}
    return {**operation, "openapi_extra": {**extra, "parameters": [*extra.get("parameters", []), *params]}}


def _model_and_version(request: Request) -> tuple[str, str | None]:
    return request.path_params["name"], request.path_params.get("version")


def _not_served(exc: oip.OipError, headers: dict[str, str]) -> Response:
    return Response(oip.error_body(exc.message), exc.status, media_type="application/json", headers=headers)


def _add_oip_metadata_routes(app: InferenceApp, m: BundleManifest, headers: dict[str, str]) -> None:
    def if_served(name: str, version: str | None, answer: Callable[[], dict[str, Any]]) -> Response:
        """The answer for this server's model (and version), else OIP's 404."""
        try:
            oip.check_model(m, name, version)
        except oip.OipError as exc:
            return _not_served(exc, headers)
        return json_response(answer(), 200, headers)

    @app.get("/v2", lambda: _docs().oip_operation("server metadata"))
    async def v2_server(request: Request) -> Response:
        return json_response(oip.server_metadata(), 200, headers)

    @app.get("/v2/health/live", lambda: _docs().oip_operation("server live"))
    async def v2_live(request: Request) -> Response:
        return json_response({"live": True}, 200, headers)

    @app.get("/v2/health/ready", lambda: _docs().oip_operation("server ready"))
    async def v2_ready(request: Request) -> Response:
        return json_response({"ready": True}, 200, headers)

    @app.get("/v2/models/{name}", lambda: _path_params(_docs().oip_operation("model metadata", 404), "name"))
    async def v2_model(request: Request) -> Response:
        return if_served(*_model_and_version(request), lambda: oip.model_metadata(m))

    @app.get(
        "/v2/models/{name}/versions/{version}",
        lambda: _path_params(_docs().oip_operation("model version metadata", 404), "name", "version"),
    )
    async def v2_model_version(request: Request) -> Response:
        return if_served(*_model_and_version(request), lambda: oip.model_metadata(m))

    @app.get("/v2/models/{name}/ready", lambda: _path_params(_docs().oip_operation("model ready", 404), "name"))
    async def v2_model_ready(request: Request) -> Response:
        return if_served(*_model_and_version(request), lambda: {"name": m.model_name, "ready": True})

    @app.get(
        "/v2/models/{name}/versions/{version}/ready",
        lambda: _path_params(_docs().oip_operation("model version ready", 404), "name", "version"),
    )
    async def v2_model_version_ready(request: Request) -> Response:
        return if_served(*_model_and_version(request), lambda: {"name": m.model_name, "ready": True})


def _add_oip_infer_routes(app: InferenceApp, infer: CodecRoute) -> None:
    m = infer.service.manifest

    def read_by_codecs() -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
        """What the route's codecs read besides OIP JSON, for the document (built on its first request)."""
        return infer.openapi_bodies(infer.service.max_batch_rows), infer.openapi_parameters()

    async def infer_if_served(request: Request) -> Response:
        try:
            oip.check_model(m, *_model_and_version(request))  # an unknown model is no refused request: not counted, not captured
        except oip.OipError as exc:
            return _not_served(exc, infer.served_headers)
        return await infer(request)

    @app.post(
        "/v2/models/{name}/infer",
        lambda: _path_params(_docs().oip_infer_operation(m, "inference (JSON or binary tensors)", *read_by_codecs()), "name"),
    )
    async def v2_model_infer(request: Request) -> Response:
        return await infer_if_served(request)

    @app.post(
        "/v2/models/{name}/versions/{version}/infer",
        lambda: _path_params(_docs().oip_infer_operation(m, "inference on a version", *read_by_codecs()), "name", "version"),
    )
    async def v2_model_version_infer(request: Request) -> Response:
        return await infer_if_served(request)
