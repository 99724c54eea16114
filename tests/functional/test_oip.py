"""Open Inference Protocol v2: Triton's own HTTP client calls the real handler unchanged.

`tritonclient.http` talks to the local gateway (loopback HTTP -> REST v1 events -> the real inference
handler), with JSON and with binary tensors; answers equal `/predict`'s for the same rows, and the
captures of an OIP request are the records a `/predict` request of the same rows writes. Bad input
answers a 4xx in OIP's `{"error": ...}` shape on every event kind.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
import tritonclient.http as tritonhttp  # pinned in requirements-dev.txt: the independent client

from serving import oip
from tests.support import EVENT_KINDS, event, read_jsonl_gz, response_json

BUCKET = "oip-captures"
ROWS = 12


@pytest.fixture
def inference(s3: Any, load_inference: Any) -> Any:
    s3.create_bucket(Bucket=BUCKET)
    return load_inference(capture_bucket=BUCKET)


@pytest.fixture
def triton(inference: Any) -> Any:
    from devtools.local import LocalGateway

    gw = LocalGateway(inference.handler, inference.serving.stage_name, port=0).start()
    client = tritonhttp.InferenceServerClient(url=f"127.0.0.1:{gw.port}/{inference.serving.stage_name}")
    yield client
    client.close()
    gw.stop()


def _rows(bundle: Any, n: int = ROWS) -> list[dict[str, Any]]:
    return [dict(r["inputs"]) for r in bundle.reference_rows()[:n]]


def _inputs(manifest: Any, rows: list[dict[str, Any]], binary: bool) -> list[Any]:
    out = []
    for f in manifest.features:
        values = [r[f.name] for r in rows]
        if f.kind.value == "categorical":
            arr = np.array([("" if v is None else v).encode() for v in values], dtype=np.object_).reshape(-1, 1)
            t = tritonhttp.InferInput(f.name, [len(rows), 1], "BYTES")
        else:
            arr = np.array([np.nan if v is None else v for v in values], dtype=np.float32).reshape(-1, 1)
            t = tritonhttp.InferInput(f.name, [len(rows), 1], "FP32")
        t.set_data_from_numpy(arr, binary_data=binary)
        out.append(t)
    return out


def _predict(inference: Any, ctx: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    resp = inference.handler(event("rest_v1", "POST", "/predict", {"instances": rows}), ctx)
    assert resp["statusCode"] == 200, resp["body"]
    return response_json(resp)


def test_triton_client_sees_a_live_ready_model_with_the_bundle_schema(triton: Any, sample_bundle: Any) -> None:
    m = sample_bundle.manifest
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready(m.model_name) and triton.is_model_ready(m.model_name, m.version)
    assert not triton.is_model_ready("nope")
    meta = triton.get_model_metadata(m.model_name)
    assert meta["versions"] == [m.version]
    assert [i["name"] for i in meta["inputs"]] == m.feature_names
    assert {o["name"]: o["shape"] for o in meta["outputs"]} == {"label": [-1], "probabilities": [-1, len(m.outputs.classes)]}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_triton_infer_answers_what_predict_answers(
    triton: Any, inference: Any, sample_bundle: Any, lambda_context: Any, binary: bool
) -> None:
    m = sample_bundle.manifest
    rows = _rows(sample_bundle, 40)
    if not binary:  # JSON has no NaN: the JSON form sends complete rows; binary tensors carry the nulls as NaN / ""
        rows = [r for r in rows if all(v is not None for v in r.values())]
    rows = rows[:ROWS] if not binary else rows
    assert binary is False or any(v is None for r in rows for v in r.values())
    outputs = [
        tritonhttp.InferRequestedOutput("label", binary_data=binary),
        tritonhttp.InferRequestedOutput("probabilities", binary_data=binary),
    ]
    result = triton.infer(m.model_name, _inputs(m, rows, binary), outputs=outputs, model_version=m.version)
    expected = _predict(inference, lambda_context, rows)
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label").reshape(-1)]
    assert labels == expected["predictions"]
    np.testing.assert_allclose(result.as_numpy("probabilities"), np.array(expected["probabilities"], dtype=np.float32), atol=1e-6)
    assert result.get_response()["model_version"] == m.version


@pytest.mark.capture_sink("s3")  # reads the s3 sink's object per request
def test_an_oip_request_is_captured_as_the_same_records_as_predict(
    inference: Any, sample_bundle: Any, lambda_context: Any, s3: Any
) -> None:
    m = sample_bundle.manifest
    rows = [r for r in _rows(sample_bundle, 40) if all(v is not None for v in r.values())][:5]
    inputs = [
        {
            "name": f.name,
            "shape": [len(rows), 1],
            "datatype": "BYTES" if f.kind.value == "categorical" else "FP64",
            "data": [r[f.name] if f.kind.value != "categorical" else (r[f.name] or "") for r in rows],
        }
        for f in m.features
    ]
    doc = {"id": "oip-1", "inputs": inputs}
    resp = inference.handler(event("rest_v1", "POST", f"/v2/models/{m.model_name}/infer", doc, request_id="oip-req"), lambda_context)
    assert resp["statusCode"] == 200, resp["body"]
    _predict(inference, lambda_context, rows)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="captures/")["Contents"]]
    records = {k: read_jsonl_gz(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()) for k in keys}
    oip_records = next(v for k, v in records.items() if k.endswith("-oip-req.jsonl.gz"))
    predict_records = next(v for k, v in records.items() if not k.endswith("-oip-req.jsonl.gz"))
    strip = lambda recs: [{k: r[k] for k in ("row", "inputs", "prediction", "probabilities")} for r in recs]  # noqa: E731
    assert strip(oip_records) == strip(predict_records)


def _binary_body(header: dict[str, Any], *tensors: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(header).encode()
    return head + b"".join(tensors), {"inference-header-content-length": str(len(head)), "content-type": "application/octet-stream"}


def _f32(*values: float) -> bytes:
    return np.array(values, dtype="<f4").tobytes()


def _bytes(*values: str) -> bytes:
    return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)


def _bad_cases(m: Any) -> list[tuple[str, str, bytes, dict[str, str], int, str]]:
    """(case, path, body, headers, status, words the error names)"""
    name = m.model_name
    infer = f"/v2/models/{name}/infer"
    row = {f.name: f for f in m.features}
    num = [f.name for f in m.features if f.kind.value == "numeric"]
    cat = [f.name for f in m.features if f.kind.value == "categorical"]

    def tensors(binary_sizes: dict[str, int]) -> list[dict[str, Any]]:
        out = []
        for f in row.values():
            t: dict[str, Any] = {"name": f.name, "shape": [1, 1], "datatype": "BYTES" if f.name in cat else "FP32"}
            t["parameters"] = {"binary_data_size": binary_sizes[f.name]}
            out.append(t)
        return out

    good_parts = {f: (_f32(40.0) if f in num else _bytes(m.feature(f).categories[0])) for f in row}
    sizes = {f: len(b) for f, b in good_parts.items()}
    body_ok, hdr_ok = _binary_body({"inputs": tensors(sizes)}, *good_parts.values())
    truncated = body_ok[:-3]
    json_doc = {
        "inputs": [
            {
                "name": f,
                "shape": [1, 1],
                "datatype": "BYTES" if f in cat else "FP32",
                "data": [m.feature(f).categories[0] if f in cat else 40.0],
            }
            for f in row
        ]
    }
    wrong_dtype = json.loads(json.dumps(json_doc))
    wrong_dtype["inputs"][0]["datatype"] = "BYTES"
    wrong_dtype["inputs"][0]["data"] = ["x"]
    wrong_shape = json.loads(json.dumps(json_doc))
    wrong_shape["inputs"][0]["shape"] = [2, 1]
    beyond = json.loads(json.dumps(json_doc))
    beyond["inputs"][0]["data"] = [1e39]
    object_dtype = json.loads(json.dumps(json_doc))  # found by schemathesis: a 500 once
    object_dtype["inputs"][0]["datatype"] = {"B": 1}
    return [
        ("truncated binary section", infer, truncated, hdr_ok, 400, "beyond"),
        (
            "header length beyond the body",
            infer,
            body_ok,
            {**hdr_ok, "inference-header-content-length": str(len(body_ok) + 10)},
            400,
            "beyond the body",
        ),
        ("header length not a number", infer, body_ok, {**hdr_ok, "inference-header-content-length": "abc"}, 400, "integer"),
        ("not JSON", infer, b"{nope", {}, 400, "not valid JSON"),
        ("no inputs", infer, b'{"inputs": []}', {}, 400, "inputs"),
        ("dtype mismatch", infer, json.dumps(wrong_dtype).encode(), {}, 400, "does not match"),
        ("shape mismatch", infer, json.dumps(wrong_shape).encode(), {}, 400, "elements for shape"),
        ("datatype not a string", infer, json.dumps(object_dtype).encode(), {}, 400, "unknown datatype"),
        ("value beyond float32", infer, json.dumps(beyond).encode(), {}, 422, "not_finite"),
        ("unknown model", "/v2/models/nope/infer", json.dumps(json_doc).encode(), {}, 404, "unknown model"),
        ("unknown version", f"/v2/models/{name}/versions/000000000000/infer", json.dumps(json_doc).encode(), {}, 404, "unknown version"),
        (
            "unknown input",
            infer,
            json.dumps({"inputs": [*json_doc["inputs"], {"name": "extra", "shape": [1], "datatype": "FP32", "data": [1]}]}).encode(),
            {},
            400,
            "unknown input",
        ),
    ]


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_bad_oip_requests_get_a_4xx_in_oip_shape(inference: Any, sample_bundle: Any, lambda_context: Any, kind: str) -> None:
    for case, path, body, headers, status, words in _bad_cases(sample_bundle.manifest):
        resp = inference.handler(event(kind, "POST", path, raw=body, headers=headers), lambda_context)
        assert resp["statusCode"] == status, (case, resp["body"])
        doc = response_json(resp)
        assert set(doc) == {"error"} and words in doc["error"], (case, doc)


def test_the_openapi_document_names_the_served_model_and_version_on_every_v2_model_path(inference: Any, sample_bundle: Any) -> None:
    m = sample_bundle.manifest
    paths = inference.app.openapi()["paths"]
    v2_model_paths = [p for p in paths if p.startswith("/v2/models/")]
    assert len(v2_model_paths) == 6
    for path in v2_model_paths:
        for op in paths[path].values():
            params = {p["name"]: p for p in op["parameters"] if p["in"] == "path"}
            assert set(params) == {"name", "version"} if "{version}" in path else {"name"}, path
            # no undocumented query version: besides the path, only the binary extension's header (infer)
            others = {(p["in"], p["name"]) for p in op["parameters"] if p["in"] != "path"}
            assert others == ({("header", "Inference-Header-Content-Length")} if path.endswith("/infer") else set()), path
            assert params["name"]["schema"]["enum"] == [m.model_name]
            if "{version}" in path:
                assert params["version"]["schema"]["enum"] == [m.version]
    infer = paths["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    tensor = infer["properties"]["inputs"]["items"]["properties"]
    assert tensor["name"]["enum"] == [t["name"] for t in oip.model_metadata(m)["inputs"]]
