"""JSON bodies on ``/predict``: ``{"instances": [{feature: value}, ...]}`` and MLflow's
``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}`` (the validator tells the two apart
and checks each); answered as JSON. The route's default: a body without content-type is read as JSON,
and every answer is JSON unless the Accept header names another codec's format."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from ..body import is_json_media
from ..explain import split_explain_options
from ..http_exchange import json_response
from ..validation import parse_json
from .base import CODECS, PREDICT, Codec, Decoded


@CODECS.register
class JsonRowsCodec(Codec):
    route = PREDICT
    media_types = ("application/json",)
    answer_media = "application/json"
    is_default = True
    answers_explanations = True

    def reads(self, media: str) -> bool:
        return is_json_media(media)  # curl's -d default too: the body must still be JSON

    def decode(self, body: bytes, headers: Mapping[str, str]) -> Decoded:
        # refusals (malformed, duplicate key) are its own RequestErrors; explain / explain_class are options, not rows
        payload, explain = split_explain_options(parse_json(body))
        return Decoded(payload, explain=explain or None)

    def encode(self, answer: dict[str, Any], decoded: Decoded, headers: dict[str, str]) -> Response:
        return json_response(answer, 200, headers)
