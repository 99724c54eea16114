"""The OpenAPI document says what the server answers: for each request below (real handler, each event
kind), the answer's status and media type are documented for its operation, with the headers it carries."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from tests.support import EVENT_KINDS, arrow_stream, event, header

ROW = {
    "bill_length_mm": 39.1,
    "bill_depth_mm": 18.7,
    "flipper_length_mm": 181.0,
    "body_mass_g": 3750.0,
    "island": "Torgersen",
    "sex": "male",
}
ARROW = "application/vnd.apache.arrow.stream"
INFER = "/v2/models/penguins/infer"


def _oip_binary_answer_request() -> tuple[bytes, dict[str, str]]:
    inputs, parts = [], []
    for name, value in ROW.items():
        raw = struct.pack("<I", len(value)) + value.encode() if isinstance(value, str) else struct.pack("<f", value)
        inputs.append(
            {
                "name": name,
                "shape": [1, 1],
                "datatype": "BYTES" if isinstance(value, str) else "FP32",
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        parts.append(raw)
    head = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}}).encode()
    return head + b"".join(parts), {"content-type": "application/octet-stream", "inference-header-content-length": str(len(head))}


def _cases() -> list[tuple[str, str, str, bytes, dict[str, str]]]:
    import pyarrow as pa

    table = pa.table({k: [v] for k, v in ROW.items()})
    binary, binary_headers = _oip_binary_answer_request()
    return [
        ("predict JSON", "/predict", "post", json.dumps({"instances": [ROW]}).encode(), {}),
        ("predict Arrow in, Arrow out", "/predict", "post", arrow_stream(table), {"content-type": ARROW, "accept": ARROW}),
        ("predict too deep", "/predict", "post", b"[" * 100 + b"]" * 100, {}),
        ("feedback conflict or stored", "/feedback", "post", json.dumps({"request_id": "r", "label": "Adelie"}).encode(), {}),
        ("OIP binary answer", INFER, "post", binary, binary_headers),
        (
            "OIP JSON answer",
            INFER,
            "post",
            json.dumps(
                {
                    "inputs": [
                        {"name": k, "shape": [1], "datatype": "BYTES" if isinstance(v, str) else "FP32", "data": [v]}
                        for k, v in ROW.items()
                    ]
                }
            ).encode(),
            {},
        ),
        ("health", "/health", "get", b"", {}),
        ("model", "/model", "get", b"", {}),
    ]


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_every_answer_is_documented_with_its_media_type_and_headers(kind: str, load_inference: Any, lambda_context: Any) -> None:
    inference = load_inference()
    doc = inference.app.openapi()
    for case, path, method, body, headers in _cases():
        op_path = "/v2/models/{name}/infer" if path == INFER else path
        ev = event(kind, method.upper(), path, raw=body if method == "post" else None, headers=headers)
        resp = inference.handler(ev, lambda_context)
        responses = doc["paths"][op_path][method]["responses"]
        answered = responses.get(str(resp["statusCode"]))
        assert answered is not None, (case, resp["statusCode"], sorted(responses))
        media = (header(resp, "content-type") or "").split(";")[0]
        assert media in answered["content"], (case, media, sorted(answered["content"]))
        for name in ("x-request-id", "x-model-version"):
            assert header(resp, name), (case, name)
            assert name in answered["headers"], (case, name)


def test_feedback_documents_its_conflict_answer(load_inference: Any) -> None:
    responses = load_inference().app.openapi()["paths"]["/feedback"]["post"]["responses"]
    assert "409" in responses and "label" in responses["409"]["description"]
