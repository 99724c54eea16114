"""Class labels come from the model's class list by meaning, never by position, whatever the batch.

A RandomForest on the wine data has classes 1, 2, 3: its label output holds the values 1..3, which
must not be read as positions in the class list. Served one row per request and in batches through
the real inference handler, every answer must match scikit-learn and agree with its own probabilities.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper

from devtools.cli import main
from devtools.export import ServingCheckError, export_onnx, table_from_frame
from modelserve.bundle import ModelBundle
from serving.model import ModelRunner
from tests.support import event, read_jsonl_gz, response_json

BUCKET = "modelserve-test-labels"


def _wine() -> tuple[pd.DataFrame, np.ndarray]:
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True)
    x = data.data.rename(columns=lambda c: c.replace("/", "_"))
    return x, data.target.to_numpy() + 1  # classes 1, 2, 3


@pytest.fixture(scope="module")
def wine_forest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ModelBundle, pd.DataFrame]:
    """RandomForest with integer classes 1..3, converted with ZipMap on (the converter's default)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import RandomForestClassifier

    x, y = _wine()
    forest = RandomForestClassifier(n_estimators=25, random_state=0).fit(x.to_numpy(np.float32), y)
    onx = convert_sklearn(forest, initial_types=[("x", FloatTensorType([None, x.shape[1]]))], target_opset=17)
    tmp = tmp_path_factory.mktemp("wine")
    (tmp / "rf.onnx").write_bytes(onx.SerializeToString())
    schema = {
        "model_name": "wine",
        "features": [{"name": c, "kind": "numeric"} for c in x.columns],
        "outputs": {"task": "classification", "label_output": "output_label", "probability_output": "output_probability"},
        "input_layout": "single_tensor",
        "single_input_name": "x",
    }
    (tmp / "schema.json").write_text(json.dumps(schema))
    x.assign(cultivar=y).to_csv(tmp / "wine.csv", index=False)
    args = ["export-onnx", "--model", str(tmp / "rf.onnx"), "--schema", str(tmp / "schema.json"), "--reference", str(tmp / "wine.csv")]
    assert main([*args, "--target", "cultivar", "--out", str(tmp / "bundle"), "--allow-small-reference"]) == 0
    return forest, ModelBundle.load(tmp / "bundle"), x


def test_classes_come_from_the_graph_and_every_row_alone_gets_the_forests_label(wine_forest) -> None:
    forest, bundle, x = wine_forest
    assert bundle.manifest.outputs.classes == ("1", "2", "3")
    runner = ModelRunner.from_path(bundle.manifest, bundle.model_path)
    table = table_from_frame(x, bundle.manifest.features)
    expected = [str(v) for v in forest.predict(x.to_numpy(np.float32))]
    one_by_one = [runner.predict({k: v[i : i + 1] for k, v in table.items()}).labels[0] for i in range(len(x))]
    assert one_by_one == expected
    assert runner.predict(table).labels.tolist() == expected
    assert bundle.manifest.export_metrics["accuracy"] == pytest.approx(float(np.mean(forest.predict(x.to_numpy(np.float32)) == _wine()[1])))


def test_handler_answers_match_the_forest_one_row_per_request_and_in_a_batch(wine_forest, load_inference, lambda_context) -> None:
    forest, bundle, x = wine_forest
    mod = load_inference(bundle)
    rows = x.to_dict(orient="records")
    proba = forest.predict_proba(x.to_numpy(np.float32))
    labels = [str(v) for v in forest.predict(x.to_numpy(np.float32))]
    for i in range(0, len(rows), 7):  # one row per request
        body = response_json(mod.handler(event("rest_v1", "POST", "/predict", {"instances": [rows[i]]}), lambda_context))
        assert body["predictions"] == [labels[i]]
        assert body["classes"][int(np.argmax(body["probabilities"][0]))] == labels[i]
        assert np.abs(np.array(body["probabilities"][0]) - proba[i]).max() < 1e-5
    body = response_json(mod.handler(event("rest_v1", "POST", "/predict", {"instances": rows}), lambda_context))
    assert body["predictions"] == labels
    assert np.abs(np.array(body["probabilities"]) - proba).max() < 1e-5


def test_feedback_labels_name_classes_by_meaning(wine_forest, s3, load_inference, lambda_context) -> None:
    _, bundle, _ = wine_forest
    s3.create_bucket(Bucket=BUCKET)
    mod = load_inference(bundle, capture_bucket=BUCKET)
    items = [{"request_id": "r", "row": i, "label": label} for i, label in enumerate([1, "1", 1.0, "3"])]
    resp = mod.handler(event("rest_v1", "POST", "/feedback", items), lambda_context)
    assert resp["statusCode"] == 202, resp["body"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"] if o["Key"].startswith("feedback/")]
    stored = read_jsonl_gz(s3.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read())
    assert [r["label"] for r in stored] == ["1", "1", "1", "3"]
    for wrong in (4, 1.5, True, "one"):
        bad = mod.handler(event("rest_v1", "POST", "/feedback", {"request_id": "r", "label": wrong}), lambda_context)
        assert bad["statusCode"] == 422, wrong


def _graph(tmp: Path, nodes: list, outputs: list, name: str = "m.onnx") -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
    graph = helper.make_graph(nodes, "g", [x], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    path = tmp / name
    path.write_bytes(model.SerializeToString())
    return path


def _reference(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})


def _probabilities_only_schema(**outputs: Any) -> dict[str, Any]:
    return {
        "model_name": "p",
        "features": [{"name": "a", "kind": "numeric"}, {"name": "b", "kind": "numeric"}],
        "outputs": {
            "task": "classification",
            "classes": ["no", "yes"],
            "label_output": None,
            "probability_output": "probabilities",
            **outputs,
        },
        "input_layout": "single_tensor",
        "single_input_name": "x",
    }


def test_a_probabilities_only_model_serves_the_most_probable_class_or_the_threshold(tmp_path) -> None:
    softmax = helper.make_node("Softmax", ["x"], ["probabilities"], axis=1)
    out = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])
    model = _graph(tmp_path, [softmax], [out])
    ref = _reference()
    bundle = export_onnx(model, _probabilities_only_schema(), ref, tmp_path / "argmax")
    pred = ModelRunner.from_path(bundle.manifest, bundle.model_path).predict(table_from_frame(ref, bundle.manifest.features))
    assert pred.labels.tolist() == ["yes" if b > a else "no" for a, b in zip(ref["a"], ref["b"])]
    strict = export_onnx(model, _probabilities_only_schema(threshold=0.9), ref, tmp_path / "threshold")
    pred = ModelRunner.from_path(strict.manifest, strict.model_path).predict(table_from_frame(ref, strict.manifest.features))
    p_yes = 1 / (1 + np.exp(ref["a"] - ref["b"]))
    assert pred.labels.tolist() == ["yes" if p >= 0.9 else "no" for p in p_yes]
    assert 0 < (pred.labels == "yes").sum() < (ref["b"] > ref["a"]).sum()


def test_export_refuses_an_answer_that_depends_on_the_other_rows(tmp_path) -> None:
    """Probabilities of x minus the batch mean: each row's answer moves with its neighbours."""
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[0], keepdims=1),
        helper.make_node("Sub", ["x", "mean"], ["centred"]),
        helper.make_node("Softmax", ["centred"], ["probabilities"], axis=1),
    ]
    out = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])
    model = _graph(tmp_path, nodes, [out])
    with pytest.raises(ServingCheckError, match="depends on the other rows"):
        export_onnx(model, _probabilities_only_schema(), _reference(), tmp_path / "b")
    assert not (tmp_path / "b" / "manifest.json").exists()


def test_export_refuses_a_label_that_contradicts_the_probabilities(tmp_path) -> None:
    """A label output computed the other way round from the probabilities (classes swapped)."""
    nodes = [
        helper.make_node("Softmax", ["x"], ["probabilities"], axis=1),
        helper.make_node("ArgMin", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    outs = [
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
    ]
    model = _graph(tmp_path, nodes, outs)
    schema = _probabilities_only_schema(label_output="label", classes=["0", "1"])
    with pytest.raises(ServingCheckError, match="contradicts the probabilities"):
        export_onnx(model, schema, _reference(), tmp_path / "b")


def test_declared_classes_in_another_order_than_the_graphs_are_refused(tmp_path, wine_forest) -> None:
    _, bundle, x = wine_forest
    schema = {
        "model_name": "wine",
        "features": [{"name": c, "kind": "numeric"} for c in x.columns],
        "outputs": {
            "task": "classification",
            "classes": ["3", "2", "1"],
            "label_output": "output_label",
            "probability_output": "output_probability",
        },
        "input_layout": "single_tensor",
        "single_input_name": "x",
    }
    with pytest.raises(ValueError, match="differ from the class labels in the model graph"):
        export_onnx(bundle.model_path, schema, x, tmp_path / "b", allow_small_reference=True)
