"""Apache Arrow IPC streams on ``/predict`` (``application/vnd.apache.arrow.stream``): read into a
``ColumnBatch`` and answered as an Arrow stream when the Accept header names it, for a JSON request
too. The format itself (buffers to typed columns, the answer's columns) is ``serving/arrow_ipc.py``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from modelserve.schema import Task

from ..arrow_ipc import ARROW_STREAM, ArrowBodyError, decode_stream, encode_answer, prediction_type
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
        f"and answered as one with Accept: {ARROW_STREAM} (columns prediction, in the labels' own type, and probability_<class>)"
    )

    def openapi_body(self, max_rows: int) -> dict[str, dict[str, Any]]:
        from ..openapi import arrow_request_body  # the document's builders: loaded when it is asked for, not at init

        return {ARROW_STREAM: arrow_request_body(self.manifest, max_rows, ARROW_STREAM)}

    def decode(self, body: bytes, headers: Mapping[str, str]) -> Decoded:
        return Decoded(decode_stream(body))

    def encode(self, answer: dict[str, Any], decoded: Decoded, headers: dict[str, str]) -> Response:
        return Response(encode_answer(answer, self.manifest.outputs), 200, media_type=ARROW_STREAM, headers=headers)

    def answer_schema(self) -> dict[str, Any]:
        outputs = self.manifest.outputs
        columns = {"prediction": prediction_type(outputs)}
        if outputs.task is Task.CLASSIFICATION and outputs.probability_output:
            columns |= {f"probability_{outputs.label_value(c)}": "double" for c in outputs.classes}
        return {
            "type": "string",
            "format": "binary",
            "description": "an Arrow IPC stream of one record batch, one row per instance; columns: "
            + ", ".join(f"{name} ({kind})" for name, kind in columns.items()),
            "x-arrow-columns": columns,
        }
