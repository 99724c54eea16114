"""What a person gets from the export CLI when something is wrong: one line per problem naming what
and where, exit code 2, no traceback (unless --debug); and what it tells when all is right."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from onnx import TensorProto, helper

from devtools.cli import main
from modelserve.bundle import ModelBundle
from modelserve.schema import FeatureKind

N = 250


def _model(tmp: Path) -> Path:
    """value = a + b, with a third input `code` (text) the graph takes but ignores."""
    inputs = [
        helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 1]),
        helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 1]),
        helper.make_tensor_value_info("code", TensorProto.STRING, [None, 1]),
    ]
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["value"])],
        "add",
        inputs,
        [helper.make_tensor_value_info("value", TensorProto.FLOAT, [None, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp / "m.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _schema(**changes: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "model_name": "adder",
        "features": [{"name": "a"}, {"name": "b"}, {"name": "code"}],
        "outputs": {"task": "regression"},
    }
    schema.update(changes)
    return schema


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"a": rng.normal(size=N), "b": rng.normal(size=N), "code": rng.integers(1, 6, size=N), "y": rng.normal(size=N)})
    ref.to_csv(tmp_path / "ref.csv", index=False)
    (tmp_path / "schema.json").write_text(json.dumps(_schema()))
    return {"model": _model(tmp_path), "schema": tmp_path / "schema.json", "reference": tmp_path / "ref.csv", "out": tmp_path / "bundle"}


def _export(files: dict[str, Path], *extra: str, **replace: Path) -> list[str]:
    paths = {**files, **replace}
    return [
        "export-onnx",
        "--model",
        str(paths["model"]),
        "--schema",
        str(paths["schema"]),
        "--reference",
        str(paths["reference"]),
        "--out",
        str(paths["out"]),
        *extra,
    ]


def _errors(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[str]:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("error: ")]


def test_a_good_export_says_each_features_kind_and_why(files, capsys) -> None:
    assert main(_export(files, "--target", "y")) == 0
    err = capsys.readouterr().err
    assert "a: numeric (a column of numbers;" in err and "-> float32 input" in err
    assert "code: categorical (the model takes text; 5 levels) -> string input" in err
    manifest = ModelBundle.load(files["out"]).manifest
    assert manifest.feature("code").kind is FeatureKind.CATEGORICAL and manifest.feature("code").categories == ("1", "2", "3", "4", "5")


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (
            _schema(outputs={"task": "regression", "probabilty_output": None}),
            "outputs.probabilty_output: unknown key (did you mean 'probability_output'?)",
        ),
        ({**{k: v for k, v in _schema().items() if k != "features"}, "fetures": []}, "fetures: unknown key (did you mean 'features'?)"),
        (_schema(input_layot="single_tensor"), "input_layot: unknown key (did you mean 'input_layout'?)"),
        (
            _schema(features=[{"name": "a", "kind": "numerical"}, {"name": "b"}, {"name": "code"}]),
            "features[0].kind: 'numerical' is not one of numeric, categorical, boolean (did you mean 'numeric'?)",
        ),
        (
            _schema(outputs={"task": "classifier"}),
            "outputs.task: 'classifier' is not one of classification, regression (did you mean 'classification'?)",
        ),
        (
            _schema(features=[{"name": "a"}, {"name": "bb"}, {"name": "code"}]),
            "features[1]: 'bb' is not an input of the model (did you mean 'b'?)",
        ),
    ],
)
def test_schema_mistakes_are_named_with_the_nearest_valid_key(files, capsys, schema, expected) -> None:
    files["schema"].write_text(json.dumps(schema))
    errors = _errors(capsys, _export(files))
    assert any(expected in e for e in errors), errors
    assert not files["out"].exists()


def test_invalid_json_gives_line_and_column(files, capsys) -> None:
    files["schema"].write_text('{\n  "model_name": "adder",\n  "features": [}\n')
    assert _errors(capsys, _export(files)) == [f"error: {files['schema']}: line 3 column 16: invalid JSON: Expecting value"]


def test_a_feature_missing_from_the_reference_is_told_apart_from_one_missing_from_the_model(files, capsys, tmp_path) -> None:
    pd.read_csv(files["reference"]).rename(columns={"b": "B"}).to_csv(tmp_path / "other.csv", index=False)
    errors = _errors(capsys, _export(files, reference=tmp_path / "other.csv"))
    assert errors == ["error: schema features[1]: 'b' is not a column of the reference (did you mean 'B'?)"]


def test_every_problem_is_one_line(files, capsys) -> None:
    files["schema"].write_text(json.dumps(_schema(features=[{"name": "a"}, {"name": "zz"}])))
    errors = _errors(capsys, _export(files, "--target", "why", "--categorical", "cod"))
    assert len(errors) == 6, errors
    assert any("'zz' is not an input of the model" in e for e in errors)
    assert any("'zz' is not a column of the reference" in e for e in errors)
    assert any("the model input 'b' has no feature in the schema" in e for e in errors)
    assert any("the model input 'code' has no feature in the schema" in e for e in errors)
    assert any("--target 'why': not a column of the reference (did you mean 'y'?)" in e for e in errors)
    assert any("--categorical 'cod': not a feature of the schema" in e for e in errors)


def test_text_in_a_number_column_names_the_column_row_and_value(files, capsys, tmp_path) -> None:
    ref = pd.read_csv(files["reference"]).astype({"a": object})
    ref.loc[17, "a"] = "12,5"
    ref.to_csv(tmp_path / "text.csv", index=False)
    errors = _errors(capsys, _export(files, reference=tmp_path / "text.csv"))
    assert errors == [
        "error: feature 'a': a column of numbers with text in it: row 17 has '12,5' (1 of 250 values are not numbers); "
        "fix the data, or declare it categorical"
    ]
    errors = _errors(capsys, _export(files, "--numeric", "a", reference=tmp_path / "text.csv"))
    assert errors == ["error: feature 'a' is numeric, but row 17 has '12,5', which is not a number"]


def test_too_few_features_for_a_single_tensor_model(files, capsys, tmp_path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["value"])],
        "s",
        [x],
        [helper.make_tensor_value_info("value", TensorProto.FLOAT, [None, 1])],
        initializer=[axes],
    )
    (tmp_path / "s.onnx").write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    files["schema"].write_text(json.dumps(_schema(features=[{"name": "a"}, {"name": "b"}], input_layout="single_tensor")))
    assert _errors(capsys, _export(files, model=tmp_path / "s.onnx")) == [
        "error: the model input 'x' takes 3 features per row; the schema declares 2"
    ]


def test_wrong_or_missing_files(files, capsys, tmp_path) -> None:
    import joblib

    joblib.dump({"not": "a model"}, tmp_path / "m.joblib")
    (tmp_path / "ref.txt").write_text("a,b\n1,2\n")
    assert _errors(capsys, _export(files, model=tmp_path / "nope.onnx")) == [f"error: --model: no such file: {tmp_path / 'nope.onnx'}"]
    [line] = _errors(capsys, _export(files, model=tmp_path / "m.joblib"))
    assert line.startswith(f"error: {tmp_path / 'm.joblib'}: not an ONNX model onnxruntime can load")
    assert _errors(capsys, _export(files, reference=tmp_path / "ref.txt")) == [
        "error: --reference ref.txt: a .csv or .parquet file expected"
    ]
    assert _errors(capsys, _export(files, schema=tmp_path / "none.json")) == [f"error: --schema: no such file: {tmp_path / 'none.json'}"]


def test_debug_shows_the_traceback(files, capsys, tmp_path) -> None:
    assert main(_export(files, "--debug", model=tmp_path / "nope.onnx")) == 2
    assert "Traceback" in capsys.readouterr().err


def test_empty_and_small_references(files, capsys, tmp_path) -> None:
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b,code,y\n")
    assert _errors(capsys, _export(files, reference=header_only))[0].startswith("error: the reference data has no rows")
    pd.read_csv(files["reference"]).head(0).to_parquet(tmp_path / "empty.parquet")
    assert _errors(capsys, _export(files, reference=tmp_path / "empty.parquet"))[0].startswith("error: the reference data has no rows")
    pd.read_csv(files["reference"]).head(1).to_csv(tmp_path / "one.csv", index=False)
    [line] = _errors(capsys, _export(files, reference=tmp_path / "one.csv"))
    assert "the reference has 1 rows (< 200)" in line and "--allow-small-reference" in line
    assert main(_export(files, "--allow-small-reference", reference=tmp_path / "one.csv")) == 0
    assert "warning: the reference has 1 rows" in capsys.readouterr().err
    assert ModelBundle.load(files["out"]).manifest.export_metrics["warnings"][0].startswith("the reference has 1 rows")


def _softmax_model(tmp: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
    graph = helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["probabilities"], axis=1)],
        "p",
        [x],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
    )
    path = tmp / "p.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path


@pytest.mark.parametrize("label_output", ["left out", None, "probabilities"])
def test_a_probabilities_only_classifier(files, capsys, tmp_path, label_output) -> None:
    outputs: dict[str, Any] = {"task": "classification", "classes": ["no", "yes"]}
    if label_output != "left out":
        outputs["label_output"] = label_output
    files["schema"].write_text(json.dumps(_schema(features=[{"name": "a"}, {"name": "b"}], outputs=outputs, input_layout="single_tensor")))
    ref = pd.read_csv(files["reference"]).assign(y=lambda d: np.where(d["b"] > d["a"], "yes", "no"))
    ref.to_csv(tmp_path / "labelled.csv", index=False)
    argv = _export(files, "--target", "y", model=_softmax_model(tmp_path), reference=tmp_path / "labelled.csv")
    if label_output == "probabilities":
        [line] = _errors(capsys, argv)
        assert "outputs: label_output and probability_output are both 'probabilities'" in line
        return
    assert main(argv) == 0, capsys.readouterr().err
    assert ModelBundle.load(files["out"]).manifest.export_metrics["accuracy"] == 1.0


def test_integer_codes_declared_categorical_on_the_command_line(tmp_path, capsys) -> None:
    import joblib
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from devtools.export import prepare_frame
    from modelserve.schema import infer_feature_spec

    rng = np.random.default_rng(3)
    data = pd.DataFrame({"SCHL": rng.choice([1, 9, 16, 21], size=N), "hours": rng.normal(40, 5, size=N)})
    data["high"] = np.where((data["SCHL"] >= 16) & (data["hours"] > 38), "yes", "no")
    specs = [infer_feature_spec("SCHL", data["SCHL"], FeatureKind.CATEGORICAL)[0], infer_feature_spec("hours", data["hours"])[0]]
    pipe = Pipeline(
        [
            ("pre", ColumnTransformer([("oh", OneHotEncoder(handle_unknown="ignore"), ["SCHL"])], remainder="passthrough")),
            ("clf", LogisticRegression()),
        ]
    )
    pipe.fit(prepare_frame(data, specs), data["high"])
    joblib.dump(pipe, tmp_path / "p.joblib")
    data.to_csv(tmp_path / "d.csv", index=False)
    argv = [
        "export",
        "--pipeline",
        str(tmp_path / "p.joblib"),
        "--data",
        str(tmp_path / "d.csv"),
        "--target",
        "high",
        "--name",
        "codes",
        "--out",
        str(tmp_path / "b"),
    ]
    assert main([*argv, "--categorical", "SCHL"]) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "SCHL: categorical (declared on the command line; 4 levels)" in err
    assert ModelBundle.load(tmp_path / "b").manifest.feature("SCHL").categories == ("1", "16", "21", "9")
    assert main([*argv, "--out", str(tmp_path / "b2")]) == 2  # without the declaration: the hint says what to do
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "error: features ['SCHL'] are numbers in the data, but the pipeline's ['OneHotEncoder'] learned them as text categories" in err
    assert "declare them --categorical SCHL" in err
    assert (
        "SCHL: numeric (a column of numbers; 4 distinct values from 1 to 21); "
        "if these are codes rather than quantities, declare it categorical (--categorical SCHL)"
    ) in err
