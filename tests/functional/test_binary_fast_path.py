"""OIP binary tensors and Arrow bodies go to the model as typed columns (no rows of Python values), yet
through the real handler they answer, refuse and capture exactly as ``/predict`` JSON does for the
same rows: same predictions and probabilities, same 422 reason, message, row and field, same capture
records (nulls, dictionary-encoded columns, several record batches, 1,000 rows included)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from tests.functional.test_input_dtypes import mixed_bundle  # noqa: F401 - the fixture: f32, f64, i64, bool inputs
from tests.functional.test_oip import _binary_body, _bytes
from tests.support import arrow_answer, arrow_stream, event, read_jsonl_gz, response_json

ARROW = "application/vnd.apache.arrow.stream"
BUCKET = "fast-path-captures"


@pytest.fixture
def inference(s3: Any, load_inference: Any) -> Any:
    s3.create_bucket(Bucket=BUCKET)
    return load_inference(capture_bucket=BUCKET, capture_mode="sync")


def _rows(bundle: Any, n: int) -> list[dict[str, Any]]:
    ref = [dict(r["inputs"]) for r in bundle.reference_rows()]
    return [dict(ref[i % len(ref)]) for i in range(n)]


def _oip_binary(manifest: Any, rows: list[dict[str, Any]], dtypes: dict[str, str] | None = None) -> tuple[bytes, dict[str, str]]:
    """The rows as Triton's binary tensors: null as NaN / "", numbers as FP32 unless ``dtypes`` says."""
    inputs, parts = [], []
    for f in manifest.features:
        values = [r[f.name] for r in rows]
        datatype = (dtypes or {}).get(f.name) or {"categorical": "BYTES", "boolean": "BOOL"}.get(f.kind.value, "FP32")
        if datatype == "BYTES":
            raw = _bytes(*("" if v is None else v for v in values))
        else:
            numpy_type = {"FP32": "<f4", "FP64": "<f8", "INT64": "<i8", "INT32": "<i4", "BOOL": "?"}[datatype]
            raw = np.array([np.nan if v is None else v for v in values], dtype=numpy_type).tobytes()
        inputs.append({"name": f.name, "shape": [len(rows), 1], "datatype": datatype, "parameters": {"binary_data_size": len(raw)}})
        parts.append(raw)
    return _binary_body({"inputs": inputs, "parameters": {"binary_data_output": True}}, *parts)


def _oip_answer(resp: dict[str, Any]) -> dict[str, np.ndarray]:
    """A binary OIP answer's output tensors."""
    import base64

    body = base64.b64decode(resp["body"]) if resp.get("isBase64Encoded") else resp["body"].encode("latin-1")
    headers = {k.lower(): v for k, v in resp["headers"].items()}
    n = int(headers["inference-header-content-length"])
    head, rest = json.loads(body[:n]), body[n:]
    out = {}
    for o in head["outputs"]:
        size = o["parameters"]["binary_data_size"]
        raw, rest = rest[:size], rest[size:]
        if o["datatype"] == "BYTES":
            values, pos = [], 0
            while pos < len(raw):
                length = int.from_bytes(raw[pos : pos + 4], "little")
                values.append(raw[pos + 4 : pos + 4 + length].decode())
                pos += 4 + length
            out[o["name"]] = np.array(values, dtype=object)
        else:
            out[o["name"]] = np.frombuffer(raw, {"FP32": "<f4", "FP64": "<f8"}[o["datatype"]]).reshape(o["shape"])
    return out


def _predict(mod: Any, ctx: Any, rows: list[dict[str, Any]], request_id: str | None = None) -> dict[str, Any]:
    resp = mod.handler(event("rest_v1", "POST", "/predict", {"instances": rows}, request_id=request_id), ctx)
    return {"status": resp["statusCode"], **response_json(resp)}


def _oip(mod: Any, ctx: Any, manifest: Any, body: bytes, headers: dict[str, str], request_id: str | None = None) -> dict[str, Any]:
    return mod.handler(
        event("rest_v1", "POST", f"/v2/models/{manifest.model_name}/infer", raw=body, headers=headers, request_id=request_id), ctx
    )


def _post_arrow(mod: Any, ctx: Any, body: bytes, request_id: str | None = None, answer_arrow: bool = False) -> dict[str, Any]:
    headers = {"content-type": ARROW, **({"accept": ARROW} if answer_arrow else {})}
    return mod.handler(event("rest_v1", "POST", "/predict", raw=body, headers=headers, request_id=request_id), ctx)


def test_a_thousand_rows_with_nulls_get_predicts_answers(inference: Any, sample_bundle: Any, lambda_context: Any) -> None:
    m = sample_bundle.manifest
    rows = _rows(sample_bundle, 1000)
    assert any(v is None for r in rows for v in r.values())
    expected = _predict(inference, lambda_context, rows)
    assert expected["status"] == 200

    oip = _oip_answer(_oip(inference, lambda_context, m, *_oip_binary(m, rows)))
    assert oip["label"].tolist() == expected["predictions"]
    np.testing.assert_allclose(oip["probabilities"], np.array(expected["probabilities"], dtype=np.float32), atol=1e-6)

    table = pa.Table.from_pylist(rows)
    for body in (
        arrow_stream(table),
        arrow_stream(
            pa.table({n: c.dictionary_encode() if pa.types.is_string(c.type) else c for n, c in zip(table.column_names, table.columns)})
        ),
    ):
        answer = arrow_answer(_post_arrow(inference, lambda_context, body, answer_arrow=True))
        assert answer.column("prediction").to_pylist() == expected["predictions"]
        probs = np.column_stack([answer.column(f"probability_{c}").to_numpy() for c in expected["classes"]])
        np.testing.assert_array_equal(probs, np.array(expected["probabilities"]))


def _bad_value_cases(m: Any) -> list[tuple[str, str, Any, str, str]]:
    """(case, feature, value, OIP datatype for it, reason)"""
    number = next(f.name for f in m.features if f.kind.value == "numeric")
    required = next(f.name for f in m.features if f.kind.value == "categorical" and not f.nullable)
    return [
        ("infinity", number, math.inf, "FP32", "not_finite"),
        ("minus infinity", number, -math.inf, "FP64", "not_finite"),
        ("beyond float32", number, 1e39, "FP64", "not_finite"),
        ("unseen category", required, "Atlantis", "BYTES", "unseen_category"),
        ("null where not allowed", required, None, "BYTES", "null_not_allowed"),
    ]


@pytest.mark.parametrize("case", range(5), ids=["infinity", "minus-infinity", "beyond-float32", "unseen-category", "null-not-allowed"])
def test_bad_values_are_refused_with_predicts_error(inference: Any, sample_bundle: Any, lambda_context: Any, case: int) -> None:
    m = sample_bundle.manifest
    name, feature, value, datatype, reason = _bad_value_cases(m)[case]
    rows = [r for r in _rows(sample_bundle, 60) if all(v is not None for v in r.values())][:8]
    rows[2][feature] = rows[5][feature] = value  # two bad rows: both named, in order
    expected = _predict(inference, lambda_context, rows)
    assert expected["status"] == 422 and expected["error"] == reason, expected
    assert [(d["row"], d["field"]) for d in expected["details"]] == [(2, feature), (5, feature)]

    resp = _oip(inference, lambda_context, m, *_oip_binary(m, rows, {feature: datatype}))
    assert resp["statusCode"] == 422, (name, resp["body"])
    assert response_json(resp) == {"error": f"{expected['error']}: {expected['message']}"}

    column_type = pa.float64() if datatype.startswith("FP") else pa.string()
    table = pa.table({f.name: pa.array([r[f.name] for r in rows], column_type if f.name == feature else None) for f in m.features})
    resp = _post_arrow(inference, lambda_context, arrow_stream(table))
    assert resp["statusCode"] == 422
    got = response_json(resp)
    assert {k: got[k] for k in ("error", "message", "details")} == {k: expected[k] for k in ("error", "message", "details")}


def test_typed_inputs_of_each_dtype_are_checked_as_json_values(
    request: pytest.FixtureRequest, load_inference: Any, lambda_context: Any
) -> None:
    """Integer, float and boolean tensors into float32, float64, int64 and bool inputs."""
    bundle = request.getfixturevalue("mixed_bundle")
    mod = load_inference(bundle)
    m = bundle.manifest
    good = [{"f32": 0.5, "f64": 1e300, "i64": 2**53, "flag": True}, {"f32": -1.25, "f64": 0.1, "i64": 7, "flag": False}]
    cases: list[tuple[list[dict[str, Any]], dict[str, str]]] = [
        (good, {"i64": "INT64"}),
        (good, {"i64": "FP64"}),
        ([{**good[0], "i64": 2.5}, good[1]], {"i64": "FP64"}),  # not a whole number: wrong_type
        ([good[0], {**good[1], "i64": 2**60}], {"i64": "INT64"}),  # beyond 2**53: wrong_type
        ([{**good[0], "f32": None}, good[1]], {}),  # NaN: null, and f32 takes none
        ([{**good[0], "f32": 2**31 - 1}, {**good[1], "f32": -1}], {"f32": "INT32"}),
    ]
    for rows, dtypes in cases:
        expected = _predict(mod, lambda_context, rows)
        resp = _oip(mod, lambda_context, m, *_oip_binary(m, rows, {"f64": "FP64", **dtypes}))  # 1e300: no FP32
        if expected["status"] == 200:
            assert resp["statusCode"] == 200, (rows, resp["body"])
            assert _oip_answer(resp)["label"].tolist() == expected["predictions"]
        else:
            assert resp["statusCode"] == expected["status"], (rows, resp["body"])
            assert response_json(resp) == {"error": f"{expected['error']}: {expected['message']}"}
    assert [_predict(mod, lambda_context, rows)["status"] for rows, _ in cases] == [200, 200, 422, 422, 422, 200]
    answer = arrow_answer(_post_arrow(mod, lambda_context, arrow_stream(pa.Table.from_pylist(good)), answer_arrow=True))
    assert answer.column("prediction").to_pylist() == _predict(mod, lambda_context, good)["predictions"]  # a regressor's float64


def _captured(s3: Any, request_id: str) -> list[dict[str, Any]]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="captures/")["Contents"]]
    key = next(k for k in keys if k.endswith(f"-{request_id}.jsonl.gz"))
    return [
        {k: r[k] for k in ("row", "inputs", "prediction", "probabilities")}
        for r in read_jsonl_gz(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    ]


@pytest.mark.capture_sink("s3")  # reads the s3 sink's object per request
def test_binary_requests_are_captured_as_the_same_records(inference: Any, sample_bundle: Any, lambda_context: Any, s3: Any) -> None:
    m = sample_bundle.manifest
    rows = _rows(sample_bundle, 200)
    assert any(v is None for r in rows for v in r.values())
    _predict(inference, lambda_context, rows, request_id="json-req")
    as_sent = {f.name: "FP64" for f in m.features if f.kind.value == "numeric"}  # FP32 would round 39.1 before it is captured
    assert _oip(inference, lambda_context, m, *_oip_binary(m, rows, as_sent), request_id="oip-req")["statusCode"] == 200
    table = pa.Table.from_pylist(rows)
    dictionary = pa.table(
        {n: c.dictionary_encode() if pa.types.is_string(c.type) else c for n, c in zip(table.column_names, table.columns)}
    )
    assert _post_arrow(inference, lambda_context, arrow_stream(dictionary), request_id="arrow-req")["statusCode"] == 200
    expected = _captured(s3, "json-req")
    assert len(expected) == 200
    assert _captured(s3, "oip-req") == expected
    assert _captured(s3, "arrow-req") == expected


def test_malformed_binary_tensors_are_400s(inference: Any, sample_bundle: Any, lambda_context: Any) -> None:
    m = sample_bundle.manifest
    rows = _rows(sample_bundle, 3)
    body, headers = _oip_binary(m, rows)
    head_len = int(headers["inference-header-content-length"])
    doc = json.loads(body[:head_len])
    number = next(i for i, f in enumerate(m.features) if f.kind.value == "numeric")
    text = next(i for i, f in enumerate(m.features) if f.kind.value == "categorical")

    def variant(change: Any, tail: bytes = b"") -> tuple[bytes, dict[str, str]]:
        d = json.loads(json.dumps(doc))
        change(d)
        head = json.dumps(d).encode()
        return head + body[head_len:] + tail, {**headers, "inference-header-content-length": str(len(head))}

    def resize(i: int, by: int) -> Any:
        return lambda d: d["inputs"][i]["parameters"].update(binary_data_size=d["inputs"][i]["parameters"]["binary_data_size"] + by)

    cases = [
        ("FP32 size not 4 per element", variant(resize(number, -2)), "expected 12"),
        ("BYTES element cut short", variant(resize(text, -1)), "BYTES"),
        ("bytes after the last tensor", variant(lambda d: None, b"\x00\x00"), "follow the last binary input"),
        ("shape with two columns", variant(lambda d: d["inputs"][number].update(shape=[1, 3])), "expected shape"),
        ("more rows in the shape than the data", variant(lambda d: d["inputs"][number].update(shape=[4, 1])), "elements"),
    ]
    for case, (raw, hdrs), words in cases:
        resp = _oip(inference, lambda_context, m, raw, hdrs)
        assert resp["statusCode"] == 400, (case, resp["body"])
        assert words in response_json(resp)["error"], (case, resp["body"])


def test_arrow_columns_are_read_as_pyarrow_reads_them() -> None:
    """Buffers read as numpy equal pyarrow's own Python values: every width, nulls, UTF-8, large
    strings, dictionaries, several record batches; a type read as Python values (timestamp) too."""
    from serving.arrow_ipc import decode_stream
    from serving.validation import TypedColumn

    n = 150
    rng = np.random.default_rng(1)
    nulls = rng.random(n) < 0.2
    words = np.array(["Biscoe", "Dréam", "", "Torgersen"], dtype=object)[rng.integers(0, 4, n)]
    table = pa.table(
        {
            "f64": pa.array(rng.normal(size=n), mask=nulls),
            "f32": pa.array(rng.normal(size=n).astype(np.float32)),
            "f16": pa.array(rng.normal(size=n).astype(np.float16), mask=nulls),
            "i8": pa.array(rng.integers(-100, 100, n).astype(np.int8)),
            "u64": pa.array(rng.integers(0, 2**62, n).astype(np.uint64), mask=nulls),
            "flag": pa.array(rng.random(n) < 0.5, mask=nulls),
            "text": pa.array(words, pa.string(), mask=nulls),
            "large": pa.array(words, pa.large_string()),
            "ascii": pa.array([w.replace("é", "e") for w in words], pa.string(), mask=nulls),
            "category": pa.array(words, pa.string(), mask=nulls).dictionary_encode(),
            "when": pa.array(np.arange(n), pa.timestamp("s")),
        }
    )
    batch = decode_stream(arrow_stream(table))
    assert batch.names == table.column_names
    for name, column in zip(batch.names, batch.columns, strict=True):
        got = column.to_list() if isinstance(column, TypedColumn) else column
        assert repr(got) == repr(table.column(name).to_pylist()), name


def test_a_single_tensor_model_takes_one_binary_tensor_as_json_columns(tmp_path: Any, load_inference: Any, lambda_context: Any) -> None:
    """[N, F] binary tensor -> one typed column per feature; NaN there is a value (not_finite), not a null."""
    import pandas as pd
    from onnx import TensorProto, helper

    from devtools.export import export_onnx
    from tests.functional.test_input_dtypes import _save

    x = helper.make_tensor_value_info("x", TensorProto.DOUBLE, [None, 2])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["value"], keepdims=1)],
        "sum",
        [x],
        [helper.make_tensor_value_info("value", TensorProto.DOUBLE, [None, 1])],
        initializer=[axes],
    )
    ref = pd.DataFrame({"a": np.random.default_rng(1).normal(size=250), "b": np.random.default_rng(2).normal(size=250)})
    schema = {
        "model_name": "sum64",
        "features": [{"name": "a", "kind": "numeric"}, {"name": "b", "kind": "numeric"}],
        "outputs": {"task": "regression", "label_output": "value", "probability_output": None},
        "input_layout": "single_tensor",
        "single_input_name": "x",
    }
    bundle = export_onnx(_save(tmp_path, graph), schema, ref, tmp_path / "b")
    mod = load_inference(bundle)
    for matrix in ([[1e39, 0.25], [2.0, -1.0]], [[1.0, 2.0], [float("nan"), 3.0]]):
        raw = np.array(matrix, dtype="<f8").tobytes()
        body, headers = _binary_body(
            {
                "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "parameters": {"binary_data_size": len(raw)}}],
                "parameters": {"binary_data_output": True},
            },
            raw,
        )
        expected = _predict(mod, lambda_context, [{"a": a, "b": b} for a, b in matrix])
        resp = _oip(mod, lambda_context, bundle.manifest, body, headers)
        if expected["status"] == 200:
            assert _oip_answer(resp)["label"].tolist() == expected["predictions"] == [1e39 + 0.25, 1.0]
        else:
            assert (resp["statusCode"], response_json(resp)) == (422, {"error": f"{expected['error']}: {expected['message']}"})
            assert expected["error"] == "not_finite"
