"""Apache Arrow IPC streams on ``/predict`` (``application/vnd.apache.arrow.stream``): read into a
``ColumnBatch`` and answered as an Arrow stream when the Accept header names it, for a JSON request
too. The format itself (buffers to typed columns, the answer's columns) is ``serving/arrow_ipc.py``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from ..arrow_ipc import ARROW_STREAM, ArrowBodyError, decode_stream, encode_answer
from .base import CODECS, PREDICT, Codec, Decoded

MALFORMED_ARROW = "malformed_arrow"


@CODECS.register
class ArrowStreamCodec(Codec):
    route = PREDICT
    media_types = (ARROW_STREAM,)
    answer_media = ARROW_STREAM
    malformed_reason = MALFORMED_ARROW
    read_errors = (ArrowBodyError,)
    openapi_note = (
        f"large batches may also be sent as an Apache Arrow IPC stream (content-type {ARROW_STREAM}, one flat column per feature) "
        f"and answered as one with Accept: {ARROW_STREAM} (columns prediction and probability_<class>)"
    )

    def decode(self, body: bytes, headers: Mapping[str, str]) -> Decoded:
        return Decoded(decode_stream(body))

    def encode(self, answer: dict[str, Any], decoded: Decoded, headers: dict[str, str]) -> Response:
        return Response(encode_answer(answer), 200, media_type=ARROW_STREAM, headers=headers)
