"""Features are fed as the model declares its inputs (float32, float64, int64, bool, string), in both
layouts, with values checked against the type before they reach the graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper

from devtools.export import export_onnx
from modelserve.bundle import ModelBundle
from modelserve.schema import InputDtype
from tests.support import event, response_json


def _save(tmp: Path, graph: onnx.GraphProto) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    path = tmp / "m.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture(scope="module")
def mixed_bundle(tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    """value = f32 + f64 + i64 + bool, one input per feature, each with its own type."""
    tmp = tmp_path_factory.mktemp("dtypes")
    inputs = [
        helper.make_tensor_value_info("f32", TensorProto.FLOAT, [None, 1]),
        helper.make_tensor_value_info("f64", TensorProto.DOUBLE, [None, 1]),
        helper.make_tensor_value_info("i64", TensorProto.INT64, [None, 1]),
        helper.make_tensor_value_info("flag", TensorProto.BOOL, [None, 1]),
    ]
    nodes = [
        helper.make_node("Cast", ["f32"], ["a"], to=TensorProto.DOUBLE),
        helper.make_node("Cast", ["i64"], ["c"], to=TensorProto.DOUBLE),
        helper.make_node("Cast", ["flag"], ["d"], to=TensorProto.DOUBLE),
        helper.make_node("Sum", ["a", "f64", "c", "d"], ["value"]),
    ]
    graph = helper.make_graph(nodes, "mixed", inputs, [helper.make_tensor_value_info("value", TensorProto.DOUBLE, [None, 1])])
    rng = np.random.default_rng(0)
    n = 300
    ref = pd.DataFrame(
        {"f32": rng.normal(size=n), "f64": rng.normal(size=n) * 1e6, "i64": rng.integers(-5, 100, size=n), "flag": rng.random(n) < 0.3}
    )
    schema = {
        "model_name": "mixed",
        "features": [
            {"name": "f32", "kind": "numeric"},
            {"name": "f64", "kind": "numeric"},
            {"name": "i64", "kind": "numeric"},
            {"name": "flag", "kind": "boolean"},
        ],
        "outputs": {"task": "regression", "label_output": "value", "probability_output": None},
    }
    return export_onnx(_save(tmp, graph), schema, ref, tmp / "bundle")


def test_the_manifest_says_each_features_input_type(mixed_bundle) -> None:
    dtypes = {f.name: f.dtype for f in mixed_bundle.manifest.features}
    assert dtypes == {"f32": InputDtype.FLOAT32, "f64": InputDtype.FLOAT64, "i64": InputDtype.INT64, "flag": InputDtype.BOOL}


def test_each_input_gets_its_own_type(mixed_bundle, load_inference, lambda_context) -> None:
    mod = load_inference(mixed_bundle)
    rows = [{"f32": 0.5, "f64": 1e300, "i64": 2**53, "flag": True}, {"f32": -1.25, "f64": 0.1, "i64": 7.0, "flag": False}]
    resp = mod.handler(event("rest_v1", "POST", "/predict", {"instances": rows}), lambda_context)
    assert resp["statusCode"] == 200, resp["body"]
    assert response_json(resp)["predictions"] == [0.5 + 1e300 + 2**53 + 1.0, -1.25 + 0.1 + 7.0]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("i64", 2.5, "wrong_type"),
        ("i64", 2**60, "wrong_type"),
        ("f32", 1e39, "not_finite"),
        ("flag", 1, "wrong_type"),
        ("f64", "1", "wrong_type"),
    ],
)
def test_values_the_input_type_cannot_carry_are_refused(mixed_bundle, load_inference, lambda_context, field, value, reason) -> None:
    mod = load_inference(mixed_bundle)
    row = {"f32": 0.5, "f64": 1.0, "i64": 3, "flag": True, field: value}
    for body in ({"instances": [row]}, {"dataframe_split": {"columns": list(row), "data": [list(row.values())]}}):
        resp = mod.handler(event("rest_v1", "POST", "/predict", body), lambda_context)
        assert resp["statusCode"] == 422
        answer = response_json(resp)
        assert answer["error"] == reason and answer["details"][0]["field"] == field


def test_a_single_float64_tensor_and_an_int64_reference_check(tmp_path, load_inference, lambda_context) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.DOUBLE, [None, 2])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["value"], keepdims=1)],
        "sum",
        [x],
        [helper.make_tensor_value_info("value", TensorProto.DOUBLE, [None, 1])],
        initializer=[axes],
    )
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"a": rng.normal(size=250) * 1e40, "b": rng.normal(size=250)})
    schema = {
        "model_name": "sum64",
        "features": [{"name": "a", "kind": "numeric"}, {"name": "b", "kind": "numeric"}],
        "outputs": {"task": "regression", "label_output": "value", "probability_output": None},
        "input_layout": "single_tensor",
        "single_input_name": "x",
    }
    bundle = export_onnx(_save(tmp_path, graph), schema, ref, tmp_path / "b")
    assert {f.dtype for f in bundle.manifest.features} == {InputDtype.FLOAT64}
    mod = load_inference(bundle)
    resp = mod.handler(event("rest_v1", "POST", "/predict", {"instances": [{"a": 1e39, "b": 0.25}]}), lambda_context)
    assert response_json(resp)["predictions"] == [1e39 + 0.25]  # beyond float32, within float64


def test_export_refuses_reference_values_an_int64_input_cannot_carry(tmp_path) -> None:
    i = helper.make_tensor_value_info("n", TensorProto.INT64, [None, 1])
    graph = helper.make_graph(
        [helper.make_node("Cast", ["n"], ["value"], to=TensorProto.FLOAT)],
        "cast",
        [i],
        [helper.make_tensor_value_info("value", TensorProto.FLOAT, [None, 1])],
    )
    ref = pd.DataFrame({"n": np.arange(250) / 2})
    schema = {
        "model_name": "ints",
        "features": [{"name": "n", "kind": "numeric"}],
        "outputs": {"task": "regression", "label_output": "value"},
    }
    with pytest.raises(ValueError, match=r"'n': the model takes int64, but reference row 1 has 0\.5"):
        export_onnx(_save(tmp_path, graph), schema, ref, tmp_path / "b")


def test_integer_coded_categories_reach_an_int64_input_as_integers(tmp_path, load_inference, lambda_context) -> None:
    code = helper.make_tensor_value_info("code", TensorProto.INT64, [None, 1])
    graph = helper.make_graph(
        [helper.make_node("Cast", ["code"], ["value"], to=TensorProto.FLOAT)],
        "codes",
        [code],
        [helper.make_tensor_value_info("value", TensorProto.FLOAT, [None, 1])],
    )
    ref = pd.DataFrame({"code": np.tile([1, 9, 16, 21], 60)})
    schema = {"model_name": "codes", "features": [{"name": "code", "kind": "categorical"}], "outputs": {"task": "regression"}}
    bundle = export_onnx(_save(tmp_path, graph), schema, ref, tmp_path / "b")
    spec = bundle.manifest.feature("code")
    assert (spec.dtype, spec.categories) == (InputDtype.INT64, ("1", "16", "21", "9"))
    mod = load_inference(bundle)
    resp = mod.handler(event("rest_v1", "POST", "/predict", {"instances": [{"code": "16"}, {"code": "9"}]}), lambda_context)
    assert response_json(resp)["predictions"] == [16.0, 9.0]
    for wrong, reason in ((16, "wrong_type"), ("17", "unseen_category")):
        resp = mod.handler(event("rest_v1", "POST", "/predict", {"instances": [{"code": wrong}]}), lambda_context)
        assert (resp["statusCode"], response_json(resp)["error"]) == (422, reason)
