"""Diagnosis, not advice: a mistake a data scientist makes on the way to a bundle is refused before
(or instead of) a library's unrelated message, in one line naming the real cause and the fix; the
same mistake on every feature is said once; `run` and `web` refuse a folder that is not a bundle in
one line with exit 2 (`--debug`: the traceback)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from devtools.cli import main
from devtools.export import ExportProblems, ServingCheckError, export_onnx, export_sklearn, prepare_frame
from modelserve.schema import infer_feature_specs

N = 300


def _data(categorical: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    df = pd.DataFrame({"a": rng.normal(size=N), "b": rng.normal(size=N)})
    if categorical:
        df["colour"] = rng.choice(["red", "green", "blue"], size=N)
    df["y"] = np.where(df["a"] + rng.normal(scale=0.5, size=N) > 0, "up", "down")
    return df


def _fit(model: Any, df: pd.DataFrame, features: list[str]) -> Any:
    return model.fit(prepare_frame(df, infer_feature_specs({c: df[c] for c in features})), df["y"])


def _one_problem(excinfo: pytest.ExceptionInfo[ExportProblems]) -> str:
    assert len(excinfo.value.problems) == 1, excinfo.value.problems
    return excinfo.value.problems[0]


def test_hist_gradient_boosting_with_native_categoricals_is_refused_naming_the_converter(tmp_path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    df = _data(categorical=True)
    pre = ColumnTransformer([("codes", OrdinalEncoder(), ["colour"])], remainder="passthrough", verbose_feature_names_out=False)
    hgb = HistGradientBoostingClassifier(categorical_features=[0], max_iter=20, random_state=0)
    model = _fit(Pipeline([("pre", pre), ("hgb", hgb)]), df, ["a", "b", "colour"])
    with pytest.raises(ExportProblems) as excinfo:
        export_sklearn(model, df, "y", "hgb", tmp_path / "b")
    problem = _one_problem(excinfo)
    assert problem.startswith("HistGradientBoostingClassifier with native categorical features")
    assert "skl2onnx converts it wrongly" in problem and "categorical_features=None" in problem
    assert "float32" not in problem and "prepare_frame" not in problem  # not the old advice
    assert not (tmp_path / "b").exists()


def test_a_bare_estimator_given_text_features_is_told_to_put_an_encoder_first(tmp_path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    df = _data(categorical=True)
    # fitted on numbers only, exported with the text column among the features
    model = LogisticRegression().fit(df[["a", "b"]].to_numpy(np.float32), df["y"])
    with pytest.raises(ExportProblems) as excinfo:
        export_sklearn(model, df, "y", "lr", tmp_path / "b")
    assert _one_problem(excinfo).startswith(
        "the model's first step (LogisticRegression) takes one table of numbers, but features ['colour'] are categorical text"
    )
    # with the encoder first, the same data exports (one graph input per feature)
    pre = ColumnTransformer([("oh", OneHotEncoder(handle_unknown="ignore"), ["colour"])], remainder="passthrough")
    from sklearn.pipeline import Pipeline

    good = _fit(Pipeline([("pre", pre), ("lr", LogisticRegression())]), df, ["a", "b", "colour"])
    assert export_sklearn(good, df, "y", "lr", tmp_path / "ok").manifest.input_layout.value == "per_column"


def _regression_data() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"a": rng.normal(size=N), "b": rng.normal(size=N)})
    df["y"] = (df["a"] > 0).astype(int)
    return df


def _classifier_onnx(tmp_path: Path, df: pd.DataFrame) -> Path:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(df[["a", "b"]].to_numpy(np.float32), df["y"])
    onx = convert_sklearn(model, initial_types=[("x", FloatTensorType([None, 2]))], target_opset=17, options={"zipmap": False})
    (tmp_path / "clf.onnx").write_bytes(onx.SerializeToString())
    return tmp_path / "clf.onnx"


def test_a_classifier_declared_as_regression_is_named_a_classifier(tmp_path) -> None:
    df = _regression_data()
    schema = {
        "model_name": "m",
        "features": [{"name": "a"}, {"name": "b"}],
        "outputs": {"task": "regression"},
        "input_layout": "single_tensor",
    }
    with pytest.raises(ExportProblems) as excinfo:
        export_onnx(_classifier_onnx(tmp_path, df), schema, df, tmp_path / "b")
    problem = _one_problem(excinfo)
    assert problem.startswith("schema outputs.task: 'regression', but the model answers class labels or probabilities")
    assert 'set "task": "classification"' in problem


def test_a_single_input_model_declared_per_column_is_one_line(tmp_path) -> None:
    df = _regression_data()
    schema = {"model_name": "m", "features": [{"name": "a"}, {"name": "b"}], "outputs": {"task": "classification"}}
    with pytest.raises(ExportProblems) as excinfo:
        export_onnx(_classifier_onnx(tmp_path, df), schema, df, tmp_path / "b")
    assert _one_problem(excinfo) == (
        "the model takes one input 'x' [None, 2] and the schema's input_layout is per_column (one input per feature): "
        'set "input_layout": "single_tensor"'
    )


def test_a_model_answering_nan_for_a_missing_value_is_named_so(tmp_path) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(6)
    df = pd.DataFrame({"a": rng.normal(size=N), "b": rng.normal(size=N)})
    df["y"] = 2 * df["a"] + df["b"]
    model = LinearRegression().fit(df[["a", "b"]], df["y"])  # no imputer: NaN in, NaN out
    df.loc[[40, 41, 90], "b"] = np.nan
    onx = convert_sklearn(model, initial_types=[("x", FloatTensorType([None, 2]))], target_opset=17)
    (tmp_path / "lin.onnx").write_bytes(onx.SerializeToString())
    schema = {
        "model_name": "m",
        "features": [{"name": "a"}, {"name": "b"}],
        "outputs": {"task": "regression"},
        "input_layout": "single_tensor",
    }
    with pytest.raises(ServingCheckError) as excinfo:
        export_onnx(tmp_path / "lin.onnx", schema, df, tmp_path / "b", target="y")
    message = str(excinfo.value)
    assert message.startswith("the model answers NaN on 3 of 300 reference rows (first: row 40, its missing fields: ['b'])")
    assert "impute them inside the model" in message and "depends on the other rows" not in message


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        (
            [{"name": f"f{i}", "kind": "numerical"} for i in range(30)],
            "features[*].kind: 'numerical' is not one of numeric, categorical, boolean (did you mean 'numeric'?) "
            "(30 entries, first at features[0].kind)",
        ),
        ([f"f{i}" for i in range(30)], '(30 entries, first at features[0]); each feature is an object: {"name": "..."}'),
    ],
)
def test_the_same_schema_mistake_on_every_feature_is_said_once(tmp_path, capsys, features, expected) -> None:
    (tmp_path / "schema.json").write_text(json.dumps({"model_name": "m", "features": features, "outputs": {"task": "classification"}}))
    argv = [
        "export-onnx",
        "--model",
        "m.onnx",
        "--schema",
        str(tmp_path / "schema.json"),
        "--reference",
        "r.csv",
        "--out",
        str(tmp_path / "b"),
    ]
    assert main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and expected in errors[0], errors


@pytest.mark.parametrize("command", ["run", "web"])
def test_run_and_web_refuse_a_folder_that_is_not_a_bundle_in_one_line(tmp_path, capsys, command) -> None:
    extra = ["--out", str(tmp_path / "site")] if command == "web" else ["--seconds", "0"]
    assert main([command, "--bundle", str(tmp_path / "missing"), *extra]) == 2
    assert capsys.readouterr().err == f"error: --bundle {tmp_path / 'missing'}: no such folder\n"

    assert main([command, "--bundle", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --bundle {tmp_path}: not a model bundle (no manifest.json)") and len(err.splitlines()) == 1

    (tmp_path / "manifest.json").write_text(json.dumps({"model_name": "m", "version": "1"}))
    assert main([command, "--bundle", str(tmp_path), *extra]) == 2
    assert capsys.readouterr().err == f"error: --bundle {tmp_path}: a broken bundle: manifest.json lacks the key 'features'\n"
    assert main([command, "--bundle", str(tmp_path), *extra, "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_nullable_on_the_command_line_marks_a_feature_that_had_no_nulls(tmp_path, capsys) -> None:
    import joblib
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from modelserve.bundle import ModelBundle

    df = _data()
    df.to_csv(tmp_path / "d.csv", index=False)
    joblib.dump(_fit(LogisticRegression(), df, ["a", "b"]), tmp_path / "lr.joblib")
    argv = ["export", "--pipeline", str(tmp_path / "lr.joblib"), "--data", str(tmp_path / "d.csv"), "--target", "y", "--name", "lr"]
    assert main([*argv, "--out", str(tmp_path / "b"), "--nullable", "b"]) == 0, capsys.readouterr().err
    assert "b: accepts null (declared --nullable)" in capsys.readouterr().err
    manifest = ModelBundle.load(tmp_path / "b").manifest
    assert not manifest.feature("a").nullable and manifest.feature("b").nullable
    assert main([*argv, "--out", str(tmp_path / "c"), "--nullable", "bb"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "error: --nullable 'bb': not a feature (did you mean 'b'?)"
    # a model that takes missing values itself (HistGradientBoosting) accepts null in every feature
    joblib.dump(_fit(HistGradientBoostingClassifier(max_iter=10), df, ["a", "b"]), tmp_path / "hgb.joblib")
    argv[2] = str(tmp_path / "hgb.joblib")
    assert main([*argv, "--out", str(tmp_path / "h")]) == 0, capsys.readouterr().err
    assert all(f.nullable for f in ModelBundle.load(tmp_path / "h").manifest.features)


def test_export_says_the_size_and_warns_past_the_budget(tmp_path, capsys) -> None:
    import joblib
    from sklearn.linear_model import LogisticRegression

    from modelserve.size_budget import INFERENCE_RUNTIME_BYTES

    df = _data()
    df.to_csv(tmp_path / "d.csv", index=False)
    joblib.dump(_fit(LogisticRegression(), df, ["a", "b"]), tmp_path / "lr.joblib")
    argv = ["export", "--pipeline", str(tmp_path / "lr.joblib"), "--data", str(tmp_path / "d.csv"), "--target", "y", "--name", "lr"]
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert "size: model.onnx 0.00 MiB, bundle 0.0" in err and "warning" not in err
    # a budget the runtime alone nearly fills: the small model tips it over
    budget = INFERENCE_RUNTIME_BYTES / 2**20 + 0.001
    assert main([*argv, "--out", str(tmp_path / "c"), "--size-budget-mib", str(budget)]) == 0
    warning = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and warning[0].startswith(
        "warning: the model bundle (0.0 MiB) and the inference runtime (100 MiB) make 100.0 MiB"
    )


def test_export_reads_the_size_budget_setting_of_cdk_json(tmp_path, capsys, monkeypatch) -> None:
    import joblib
    from sklearn.linear_model import LogisticRegression

    from modelserve.size_budget import INFERENCE_RUNTIME_BYTES

    df = _data()
    df.to_csv(tmp_path / "d.csv", index=False)
    joblib.dump(_fit(LogisticRegression(), df, ["a", "b"]), tmp_path / "lr.joblib")
    argv = ["export", "--pipeline", str(tmp_path / "lr.joblib"), "--data", str(tmp_path / "d.csv"), "--target", "y", "--name", "lr"]
    monkeypatch.chdir(tmp_path)
    budget = INFERENCE_RUNTIME_BYTES / 2**20 + 0.001  # the runtime alone nearly fills it: the small model tips it over
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {"inference_size_budget_mib": budget}}))
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    warning = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and f"over the budget of {budget:.1f} MiB (the setting inference_size_budget_mib" in warning[0]
    # a wrong value is refused as synth refuses it, in one line
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {"inference_size_budget_mib": 300}}))
    assert main([*argv, "--out", str(tmp_path / "c")]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors[-1] == (
        "error: cdk.json: invalid settings: setting 'inference_size_budget_mib' = 300: Input should be less than or equal to 250"
    )
