"""What every HTTP exchange of the inference API shares: the request's id and arrival time, a refusal's
HTTP status, and the JSON answer and error body shapes. Read by the transport (``api.py``), the codecs
(``codecs/``) and the OpenAPI builders (``openapi.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .feedback import LABEL_CONFLICT
from .service import FEEDBACK_UNAVAILABLE, new_request_id
from .validation import BODY_TOO_LARGE, MALFORMED_JSON, MAX_MESSAGE, NESTING_TOO_DEEP, UNSUPPORTED_MEDIA_TYPE, RequestError, echo

_ORJSON_OPTS = orjson.OPT_SERIALIZE_NUMPY

# HTTP status of a refusal reason; every other reason is a well-formed request with invalid content
_STATUS_OF_REASON = {
    MALFORMED_JSON: 400,
    NESTING_TOO_DEEP: 400,
    BODY_TOO_LARGE: 413,
    UNSUPPORTED_MEDIA_TYPE: 415,
    FEEDBACK_UNAVAILABLE: 503,
    LABEL_CONFLICT: 409,
}
UNPROCESSABLE = 422
# the reason code of an error answer built outside our handlers (router, CORS), by status
REASON_OF_STATUS = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: BODY_TOO_LARGE,
    409: LABEL_CONFLICT,
    415: UNSUPPORTED_MEDIA_TYPE,
    422: "bad_request",
    500: "internal_error",
}


def status_of(exc: RequestError) -> int:
    """The refusal's HTTP status: its own (a codec's malformed body), else by its reason."""
    return exc.status or _STATUS_OF_REASON.get(exc.reason, UNPROCESSABLE)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(content=orjson.dumps(body, option=_ORJSON_OPTS), status_code=status, media_type="application/json", headers=headers)


def error_body(reason: str, message: str, request_id: str, model_version: str, details: list[Any] | None = None) -> dict[str, Any]:
    """Every error answer's shape: ``error`` (reason code), ``message``, ``details``, request id, model version."""
    return {
        "error": reason,
        "message": echo(message, MAX_MESSAGE),
        "details": details or [],
        "request_id": request_id,
        "model_version": model_version,
    }


def request_id_of(request: Request) -> str:
    """The request's id, as ``AnswerGuard`` chose it (API Gateway's own behind it, else a fresh one)."""
    rid = request.scope.get("state", {}).get("request_id")
    return str(rid) if rid else request_id_of_scope(request.scope)


def request_id_of_scope(scope: Mapping[str, Any]) -> str:
    """API Gateway's request id (REST v1 and HTTP v2) when behind it, else a fresh one (ALB has none)."""
    event = scope.get("aws.event") or {}
    rid = (event.get("requestContext") or {}).get("requestId")
    return str(rid) if rid else new_request_id()


def request_time_of(request: Request) -> datetime | None:
    """When API Gateway received the request (REST v1 requestTimeEpoch, HTTP v2 timeEpoch), in UTC."""
    ctx = (request.scope.get("aws.event") or {}).get("requestContext") or {}
    epoch_ms = ctx.get("requestTimeEpoch") or ctx.get("timeEpoch")
    if isinstance(epoch_ms, (int, float)) and epoch_ms > 0:
        return datetime.fromtimestamp(epoch_ms / 1000.0, tz=UTC)
    return None
