"""Labels in their own type: a model trained on boolean or integer labels, exported with
``export_sklearn`` as a bare estimator, answers JSON booleans / integers on ``/predict``, says so in
its OpenAPI document, answers an OIP ``label`` tensor of datatype BOOL / INT64, and takes feedback
labels in the same type; a model with text labels answers strings as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from devtools.export import export_sklearn, prepare_frame
from modelserve.bundle import ModelBundle
from modelserve.schema import InputLayout, LabelType, infer_feature_specs
from tests.support import event, response_json

N = 300


def _bundle(tmp: Path, labels: Any, name: str) -> tuple[ModelBundle, Any, pd.DataFrame]:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    x = pd.DataFrame({"a": rng.normal(size=N), "b": rng.normal(size=N)})
    y = labels(x["a"] + 0.3 * rng.normal(size=N) > 0)
    prepared = prepare_frame(x, infer_feature_specs({c: x[c] for c in x.columns}))
    model = LogisticRegression().fit(prepared, y)
    return export_sklearn(model, x.assign(y=y), "y", name, tmp / name), model, prepared


LABELS = {
    "boolean": (lambda s: s.to_numpy(), LabelType.BOOLEAN, bool, "BOOL", "boolean"),
    "integer": (lambda s: np.where(s, 7, -2), LabelType.INTEGER, int, "INT64", "integer"),
    "integral_float": (lambda s: np.where(s, 1.0, 0.0), LabelType.INTEGER, int, "INT64", "integer"),
    "string": (lambda s: np.where(s, "yes", "no"), None, str, "BYTES", "string"),
}


@pytest.mark.parametrize("kind", list(LABELS))
def test_answers_give_labels_in_the_type_the_model_was_trained_on(kind, tmp_path, s3, load_inference, lambda_context) -> None:
    make, label_type, python_type, oip_datatype, json_type = LABELS[kind]
    bundle, model, prepared = _bundle(tmp_path, make, kind)
    manifest = bundle.manifest
    assert manifest.outputs.label_type is label_type
    assert manifest.input_layout is InputLayout.SINGLE_TENSOR  # a bare estimator takes one table
    s3.create_bucket(Bucket="labels")
    mod = load_inference(bundle, capture_bucket="labels")
    rows = [{"a": float(a), "b": float(b)} for a, b in prepared.head(20).to_numpy()]

    body = response_json(mod.handler(event("rest_v1", "POST", "/predict", {"instances": rows}), lambda_context))
    expected = [v.item() if hasattr(v, "item") else v for v in model.predict(prepared.head(20))]
    if kind == "integral_float":
        expected = [int(v) for v in expected]
    assert [(type(p), p) for p in body["predictions"]] == [(type(e), e) for e in expected]
    assert all(type(c) is python_type for c in body["classes"])
    assert body["predictions"] == [body["classes"][k] for k in np.argmax(body["probabilities"], axis=1)]

    spec = response_json(mod.handler(event("rest_v1", "GET", "/openapi.json"), lambda_context))
    answer = spec["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["properties"]["predictions"]["items"] == {"type": json_type} == answer["properties"]["classes"]["items"]

    oip_body = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 2], "data": [rows[0]["a"], rows[0]["b"], rows[1]["a"], rows[1]["b"]]}]
    }
    oip = response_json(mod.handler(event("rest_v1", "POST", f"/v2/models/{manifest.model_name}/infer", oip_body), lambda_context))
    label = next(o for o in oip["outputs"] if o["name"] == "label")
    assert label["datatype"] == oip_datatype and label["data"] == body["predictions"][:2]

    feedback = {"request_id": body["request_id"], "row": 0, "label": body["predictions"][0]}
    resp = mod.handler(event("rest_v1", "POST", "/feedback", feedback), lambda_context)
    assert resp["statusCode"] == 202, resp["body"]
    wrong = {**feedback, "label": "maybe"}
    assert mod.handler(event("rest_v1", "POST", "/feedback", wrong), lambda_context)["statusCode"] == 422


ARROW_TYPES = {"boolean": "bool", "integer": "int64", "integral_float": "int64", "string": "string"}


@pytest.mark.parametrize("kind", list(LABELS))
def test_arrow_answers_give_labels_in_the_type_the_model_was_trained_on(kind, tmp_path, load_inference, lambda_context) -> None:
    import pyarrow as pa

    from tests.support import arrow_answer, arrow_stream

    make, _, python_type, _, _ = LABELS[kind]
    bundle, model, prepared = _bundle(tmp_path, make, kind)
    mod = load_inference(bundle)
    rows = prepared.head(40)
    arrow = "application/vnd.apache.arrow.stream"
    body = arrow_stream(pa.Table.from_pandas(rows, preserve_index=False), max_chunksize=16)
    resp = mod.handler(event("rest_v1", "POST", "/predict", raw=body, headers={"content-type": arrow, "accept": arrow}), lambda_context)
    assert resp["statusCode"] == 200, resp["body"]
    table = arrow_answer(resp)

    assert str(table.schema.field("prediction").type) == ARROW_TYPES[kind]
    expected = [v.item() if hasattr(v, "item") else v for v in model.predict(rows)]
    if kind == "integral_float":
        expected = [int(v) for v in expected]
    assert [(type(p), p) for p in table.column("prediction").to_pylist()] == [(python_type, e) for e in expected]
    as_json = response_json(mod.handler(event("rest_v1", "POST", "/predict", {"instances": rows.to_dict("records")}), lambda_context))
    assert table.column("prediction").to_pylist() == as_json["predictions"]
    probs = np.column_stack([table.column(f"probability_{c}").to_numpy() for c in as_json["classes"]])
    np.testing.assert_allclose(probs, model.predict_proba(rows), atol=1e-5)

    spec = response_json(mod.handler(event("rest_v1", "GET", "/openapi.json"), lambda_context))
    documented = spec["paths"]["/predict"]["post"]["responses"]["200"]["content"][arrow]["schema"]["x-arrow-columns"]
    assert documented == {field.name: str(field.type) for field in table.schema}


def _ready_onnx_classifier(tmp: Path) -> tuple[Path, pd.DataFrame, Any]:
    """A LightGBM-style ready ONNX classifier: integer classes 1..3 in the graph, converted outside the export."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    x = pd.DataFrame({"a": rng.normal(size=N), "b": rng.normal(size=N)})
    y = np.digitize(x["a"] + 0.3 * rng.normal(size=N), [-0.5, 0.5]) + 1
    model = LogisticRegression().fit(x.to_numpy(np.float32), y)
    onx = convert_sklearn(model, initial_types=[("x", FloatTensorType([None, 2]))], target_opset=17, options={"zipmap": False})
    (tmp / "clf.onnx").write_bytes(onx.SerializeToString())
    return tmp / "clf.onnx", x.assign(y=y), model


def test_a_ready_onnx_model_declared_with_integer_labels_answers_integers(tmp_path, load_inference, lambda_context) -> None:
    import pyarrow as pa

    from devtools.export import ExportProblems, export_onnx
    from tests.support import arrow_answer, arrow_stream

    path, data, model = _ready_onnx_classifier(tmp_path)
    schema = {
        "model_name": "ready",
        "features": [{"name": "a"}, {"name": "b"}],
        "outputs": {"task": "classification", "label_type": "integer"},
        "input_layout": "single_tensor",
    }
    bundle = export_onnx(path, schema, data, tmp_path / "b", target="y", allow_small_reference=True)
    assert bundle.manifest.outputs.label_type is LabelType.INTEGER
    mod = load_inference(bundle)
    rows = data[["a", "b"]].head(30)
    expected = [int(v) for v in model.predict(rows.to_numpy(np.float32))]
    body = response_json(mod.handler(event("rest_v1", "POST", "/predict", {"instances": rows.to_dict("records")}), lambda_context))
    assert [(type(p), p) for p in body["predictions"]] == [(int, e) for e in expected] and body["classes"] == [1, 2, 3]
    arrow = "application/vnd.apache.arrow.stream"
    stream = arrow_stream(pa.Table.from_pandas(rows, preserve_index=False))
    resp = mod.handler(event("rest_v1", "POST", "/predict", raw=stream, headers={"content-type": arrow, "accept": arrow}), lambda_context)
    table = arrow_answer(resp)
    assert str(table.schema.field("prediction").type) == "int64" and table.column("prediction").to_pylist() == expected

    # left out, labels stay text (the manifest's default); a type the classes cannot have is one line
    plain = export_onnx(path, {**schema, "outputs": {"task": "classification"}}, data, tmp_path / "p", allow_small_reference=True)
    assert plain.manifest.outputs.label_type is None
    wrong = {**schema, "outputs": {"task": "classification", "label_type": "boolean"}}
    with pytest.raises(ExportProblems) as excinfo:
        export_onnx(path, wrong, data, tmp_path / "w", allow_small_reference=True)
    assert excinfo.value.problems == ["label_type boolean: the classes must be false and true, got ['1', '2', '3']"]
    typo = {**schema, "outputs": {"task": "classification", "label_type": "int"}}
    with pytest.raises(ExportProblems) as excinfo:
        export_onnx(path, typo, data, tmp_path / "t", allow_small_reference=True)
    assert excinfo.value.problems[0].startswith("schema: outputs.label_type: 'int' is not one of string, integer, boolean")
