"""The OpenAPI document says what the server reads and answers: every request body and header each route's
codecs read (the CODECS registry) is declared on its operations, the binary body Triton's own client sends is
the declared one, and for each request below (real handler, each event kind) the answer's status and media
type are documented for its operation, with every header it carries."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest

from tests.support import EVENT_KINDS, arrow_stream, event, header, response_json

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


# the framing headers of any HTTP answer, which OpenAPI does not declare (its rules ignore Content-Type there)
FRAMING = {"content-type", "content-length"}


def _cases() -> list[tuple[str, str, str, bytes, dict[str, str]]]:
    import pyarrow as pa

    table = pa.table({k: [v] for k, v in ROW.items()})
    binary, binary_headers = _oip_binary_answer_request()
    untyped = {k: v for k, v in binary_headers.items() if k != "content-type"}
    return [
        ("predict JSON", "/predict", "post", json.dumps({"instances": [ROW]}).encode(), {}),
        ("predict Arrow in, Arrow out", "/predict", "post", arrow_stream(table), {"content-type": ARROW, "accept": ARROW}),
        ("predict too deep", "/predict", "post", b"[" * 100 + b"]" * 100, {}),
        ("feedback conflict or stored", "/feedback", "post", json.dumps({"request_id": "r", "label": "Adelie"}).encode(), {}),
        ("OIP binary answer", INFER, "post", binary, binary_headers),
        ("OIP binary, no content-type (as tritonclient sends it)", INFER, "post", binary, untyped),
        ("OIP header length not a number", INFER, "post", binary, {**binary_headers, "inference-header-content-length": "1_0"}),
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
        declared = {name.lower() for name in answered.get("headers", {})}
        sent = {name.lower() for name in resp.get("headers") or {}} | {name.lower() for name in resp.get("multiValueHeaders") or {}}
        assert sent - FRAMING <= declared, (case, sorted(sent - FRAMING - declared))


def test_feedback_documents_its_conflict_answer(load_inference: Any) -> None:
    responses = load_inference().app.openapi()["paths"]["/feedback"]["post"]["responses"]
    assert "409" in responses and "label" in responses["409"]["description"]


def _operations(doc: dict[str, Any], route: str) -> list[dict[str, Any]]:
    """The document's operations served by a codec route: /predict, or each OIP infer path."""
    from serving.codecs import PREDICT

    if route == PREDICT:
        return [doc["paths"]["/predict"]["post"]]
    return [ops["post"] for path, ops in doc["paths"].items() if path.endswith("/infer")]


def test_every_body_header_and_answer_format_the_codecs_read_or_write_is_declared(load_inference: Any) -> None:
    from serving.codecs import CODECS, OIP, PREDICT

    api = load_inference()
    doc = api.app.openapi()
    for name in (PREDICT, OIP):
        route = CODECS.route(name, api.service, 1_000_000)
        operations = _operations(doc, name)
        assert operations, name
        for op in operations:
            assert set(op["requestBody"]["content"]) == set(route.media_types), (name, sorted(op["requestBody"]["content"]))
            headers = {p["name"].lower() for p in op.get("parameters", []) if p["in"] == "header"}
            read = {p["name"].lower() for c in route.codecs for p in c.openapi_parameters()}
            assert read <= headers, (name, sorted(read - headers))
            answers = set(op["responses"]["200"]["content"])
            assert {c.answer_media for c in route.codecs if c.answer_media} <= answers, (name, sorted(answers))
    assert "inference-header-content-length" in {p["name"].lower() for op in _operations(doc, OIP) for p in op["parameters"]}


@pytest.mark.parametrize("content_type", [None, "application/octet-stream"], ids=["as-sent", "typed-for-api-gateway"])
def test_the_binary_body_tritonclient_sends_is_the_declared_one(load_inference: Any, content_type: str | None) -> None:
    import jsonschema
    import numpy as np
    import tritonclient.http as tritonhttp

    from devtools.local import LocalGateway

    api = load_inference()
    doc = api.app.openapi()
    op = doc["paths"]["/v2/models/{name}/infer"]["post"]
    seen: list[dict[str, Any]] = []

    def recording(ev: dict[str, Any], ctx: Any) -> dict[str, Any]:
        seen.append(ev)
        return dict(api.handler(ev, ctx))

    gw = LocalGateway(recording, api.serving.stage_name, port=0, concurrency=1).start()
    client = tritonhttp.InferenceServerClient(url=f"127.0.0.1:{gw.port}/{api.serving.stage_name}")
    try:
        inputs = []
        for name, value in ROW.items():
            text = isinstance(value, str)
            t = tritonhttp.InferInput(name, [1, 1], "BYTES" if text else "FP32")
            t.set_data_from_numpy(np.array([[value.encode() if text else value]], np.object_ if text else np.float32))
            inputs.append(t)
        outputs = [tritonhttp.InferRequestedOutput("label", binary_data=True)]
        result = client.infer("penguins", inputs, outputs=outputs, headers={"content-type": content_type} if content_type else None)
        assert result.as_numpy("label") is not None
    finally:
        client.close()
        gw.stop()

    (ev,) = seen
    sent = {k.lower(): v for k, v in ev["headers"].items()}
    body = base64.b64decode(ev["body"]) if ev.get("isBase64Encoded") else ev["body"].encode("latin-1")
    # the header it sends: declared, and a value of the declared schema
    (param,) = [p for p in op["parameters"] if p["name"].lower() == "inference-header-content-length"]
    length = sent[param["name"].lower()]
    assert length.isdigit()
    jsonschema.validate(int(length), param["schema"])
    # its media type (none, or the one API Gateway needs): the binary body the document declares
    declared = op["requestBody"]["content"]["application/octet-stream"]
    assert sent.get("content-type", "application/octet-stream") in op["requestBody"]["content"]
    assert declared["schema"]["format"] == "binary"
    # the JSON header of that many bytes: valid against the declared header schema; the rest: its tensors' declared sizes
    head = json.loads(body[: int(length)])
    jsonschema.Draft202012Validator(declared["x-inference-header"]["schema"]).validate(head)
    assert sum(t["parameters"]["binary_data_size"] for t in head["inputs"]) == len(body) - int(length)
    assert any(m.get("in") == "header" for m in op["parameters"]) and "Inference-Header-Content-Length" in declared["schema"]["description"]


def _feedback_request_id_schema(api: Any) -> dict[str, Any]:
    body = api.app.openapi()["paths"]["/feedback"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    item, batch = body["oneOf"]
    assert batch["items"] == item
    return dict(item["properties"]["request_id"])


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_with_signed_ids_the_document_says_which_request_ids_feedback_takes(
    kind: str, s3: Any, load_inference: Any, lambda_context: Any
) -> None:
    import jsonschema

    s3.create_bucket(Bucket="openapi-feedback-ids")
    api = load_inference(capture_bucket="openapi-feedback-ids", request_id_key="k" * 32, capture_mode="sync")
    declared = _feedback_request_id_schema(api)
    issued = response_json(api.handler(event(kind, "POST", "/predict", {"instances": [ROW]}), lambda_context))["request_id"]
    jsonschema.validate(issued, declared)  # what the API issued: of the declared form, and taken
    resp = api.handler(event(kind, "POST", "/feedback", {"request_id": issued, "label": "Adelie"}), lambda_context)
    assert resp["statusCode"] == 202, resp["body"]
    # API Gateway's own id, an id of before signing: not of the declared form (schema-invalid), and refused
    gateway_id = issued.split(".", 3)[3]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(gateway_id, declared)
    # of the declared form but never issued: the refusal the description names
    made_up = "0" * 11 + ".1." + "0" * 16 + ".x"
    jsonschema.validate(made_up, declared)
    assert "unknown_request_id" in declared["description"]
    for sent in (gateway_id, made_up):
        resp = api.handler(event(kind, "POST", "/feedback", {"request_id": sent, "label": "Adelie"}), lambda_context)
        assert resp["statusCode"] == 422 and response_json(resp)["error"] == "unknown_request_id", sent


def test_without_signed_ids_any_printable_request_id_is_declared(load_inference: Any) -> None:
    import jsonschema

    declared = _feedback_request_id_schema(load_inference())
    jsonschema.validate("0f2c6c8e-1d7b-4a57-9d0e-3a1f2b4c5d6e", declared)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate("a\x00b", declared)
