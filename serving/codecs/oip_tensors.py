"""Open Inference Protocol v2 inference bodies (``/v2/models/<name>/infer``): JSON tensors, or Triton's
binary tensor extension (a JSON header of ``Inference-Header-Content-Length`` bytes, then raw tensors).
Both media types read the same way (the header length says where the binary part starts); the answer
is JSON or binary as the request asked; errors in OIP's ``{"error": ...}`` shape. The protocol's
translation itself is ``serving/oip.py``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from .. import oip
from ..body import is_json_media
from .base import CODECS, OIP, Codec, Decoded, Problem

OIP_BAD_REQUEST = "oip_bad_request"


@CODECS.register
class OipTensorsCodec(Codec):
    route = OIP
    media_types = ("application/json", oip.BINARY_CONTENT_TYPE)
    is_default = True
    malformed_reason = OIP_BAD_REQUEST
    read_errors = (oip.OipError,)
    answers_explanations = True

    def reads(self, media: str) -> bool:
        return is_json_media(media) or media == oip.BINARY_CONTENT_TYPE

    def openapi_body(self, max_rows: int) -> dict[str, dict[str, Any]]:
        from ..openapi import oip_binary_request_body  # the document's builders: loaded when it is asked for, not at init

        return {oip.BINARY_CONTENT_TYPE: oip_binary_request_body(self.manifest)}

    def openapi_parameters(self) -> list[dict[str, Any]]:
        from ..openapi import oip_binary_header_parameter

        return [oip_binary_header_parameter()]

    def decode(self, body: bytes, headers: Mapping[str, str]) -> Decoded:
        request = oip.decode_request(self.manifest, body, headers.get(oip.HEADER_LENGTH))
        return Decoded(request.payload, request, explain=request.explain)

    def encode(self, answer: dict[str, Any], decoded: Decoded, headers: dict[str, str]) -> Response:
        data, extra = oip.encode_response(self.manifest, decoded.context, answer["request_id"], answer)
        media = extra.pop("content-type")
        return Response(data, 200, media_type=media, headers={**headers, **extra})

    def error(self, problem: Problem) -> Response:
        refusal = problem.refusal
        # the protocol's own errors read as they are; a validation refusal leads with its reason code
        text = refusal.message if refusal.reason == OIP_BAD_REQUEST else f"{refusal.reason}: {refusal.message}"
        return Response(oip.error_body(text), problem.status, media_type="application/json", headers=problem.headers)
