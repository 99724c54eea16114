"""The parity error diagnosed per cause: when the exported graph would disagree with the fitted
scikit-learn model, export names the cause in one line and the fix, found in the model itself. Each
test fits a real estimator that triggers its cause, checks the one line, then applies the fix the
line gives and sees the same data export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from devtools.cli import main
from devtools.export import ExportProblems, ParityError, ServingCheckError, export_sklearn, prepare_frame
from modelserve.schema import infer_feature_specs

pytestmark = pytest.mark.slow  # each exports real models (a few seconds each)


def _data(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "ts": 1.7e9 + rng.normal(size=n) * 3e4,  # a timestamp: float32 keeps it to 128 s
        }
    )
    signal = df["a"] + df["b"] + (df["ts"] - 1.7e9) / 3e4
    df["y"] = np.where(signal + rng.normal(scale=0.5, size=n) > 0, "up", "down")
    df["value"] = signal
    return df


def _fit(model: Any, df: pd.DataFrame, features: list[str], target: str = "y") -> Any:
    return model.fit(prepare_frame(df[features], infer_feature_specs({c: df[c] for c in features})), df[target])


def _export(model: Any, df: pd.DataFrame, features: list[str], out: Path, target: str = "y") -> Any:
    return export_sklearn(model, df[[*features, target]], target, "m", out)


def _one_problem(excinfo: pytest.ExceptionInfo[ExportProblems]) -> str:
    assert len(excinfo.value.problems) == 1, excinfo.value.problems
    return excinfo.value.problems[0]


def test_trees_behind_a_scaler_that_flip_at_float32_splits_are_named_with_the_row_and_feature(tmp_path) -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    df, features = _data(), ["a", "b", "ts"]
    model = _fit(make_pipeline(StandardScaler(), RandomForestClassifier(60, random_state=0)), df, features)
    with pytest.raises(ParityError) as excinfo:
        _export(model, df, features, tmp_path / "scaled")
    message = str(excinfo.value)
    assert message.startswith("float32 rounding at tree splits: ") and "\n" not in message
    assert "on a split of ['ts'] within float32 rounding" in message
    assert "moving 'ts' = " in message and "changes scikit-learn's own answer by" in message
    assert "drop ['StandardScaler'] in front of them" in message and "prepare_frame" not in message
    # the fix it names: the same forest without the scaler exports
    fixed = _fit(RandomForestClassifier(60, random_state=0), df, features)
    assert _export(fixed, df, features, tmp_path / "fixed").manifest.export_metrics["parity_max_abs_diff"] < 1e-4


def test_a_model_using_more_digits_than_float32_keeps_is_named_float32_precision(tmp_path) -> None:
    from sklearn.linear_model import LinearRegression

    df, features = _data(), ["a", "b", "ts"]
    model = _fit(LinearRegression(), df, features, target="value")
    with pytest.raises(ServingCheckError) as excinfo:
        _export(model, df, features, tmp_path / "raw", target="value")
    message = str(excinfo.value)
    assert message.startswith("the model's answer depends on the other rows of the request: float32 precision: ")
    assert "the model uses more digits of ['ts'] than float32 keeps" in message and "a float32 step there is 128" in message
    assert "subtract an offset or rescale 'ts'" in message
    # the fix it names: the timestamp as an offset
    shifted = df.assign(ts=df["ts"] - 1.7e9)
    fixed = _fit(LinearRegression(), shifted, features, target="value")
    assert _export(fixed, shifted, features, tmp_path / "fixed", target="value").manifest.export_metrics["parity_max_rel_diff"] < 1e-4


def test_isotonic_calibration_is_named_and_sigmoid_exports(tmp_path) -> None:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression

    df, features = _data(), ["a", "b"]
    model = _fit(CalibratedClassifierCV(LogisticRegression(), method="isotonic"), df, features)
    with pytest.raises(ParityError) as excinfo:
        _export(model, df, features, tmp_path / "isotonic")
    message = str(excinfo.value)
    assert message.startswith("isotonic calibration: ") and "reference rows differ (by up to " in message
    assert message.endswith("calibrate with method='sigmoid'")
    fixed = _fit(CalibratedClassifierCV(LogisticRegression(), method="sigmoid"), df, features)
    assert _export(fixed, df, features, tmp_path / "sigmoid").manifest.export_metrics["parity_max_abs_diff"] < 1e-4


def test_a_calibration_around_a_whole_pipeline_is_refused_before_conversion(tmp_path) -> None:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    df, features = _data(), ["a", "b"]
    model = _fit(CalibratedClassifierCV(make_pipeline(StandardScaler(), LogisticRegression())), df, features)
    with pytest.raises(ExportProblems) as excinfo:
        _export(model, df, features, tmp_path / "around")
    assert _one_problem(excinfo).startswith("CalibratedClassifierCV around a Pipeline: skl2onnx converts it wrongly")
    assert not (tmp_path / "around").exists()
    fixed = _fit(make_pipeline(StandardScaler(), CalibratedClassifierCV(LogisticRegression())), df, features)
    assert _export(fixed, df, features, tmp_path / "inside").manifest.export_metrics["parity_max_abs_diff"] < 1e-4


@pytest.mark.filterwarnings("ignore:The `probability` parameter was deprecated")
def test_an_svc_whose_predict_contradicts_its_probabilities_is_named_so(tmp_path, capsys) -> None:
    import joblib
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    df, features = _data(), ["a", "b"]
    # the rarer class (about one in seven): Platt scaling moves p = 0.5 away from the decision function's 0
    df["y"] = np.where(df["a"] + df["b"] + np.random.default_rng(1).normal(scale=0.5, size=len(df)) > 1.5, "up", "down")
    model = _fit(make_pipeline(StandardScaler(), SVC(probability=True, random_state=0)), df, features)
    labels, probabilities = model.predict(df[features]), model.predict_proba(df[features])
    disagree = int((labels != model.classes_[np.argmax(probabilities, axis=1)]).sum())
    assert disagree >= 10  # scikit-learn itself: the case is real
    joblib.dump(model, tmp_path / "svc.joblib")
    df[[*features, "y"]].to_csv(tmp_path / "d.csv", index=False)
    argv = ["export", "--pipeline", str(tmp_path / "svc.joblib"), "--data", str(tmp_path / "d.csv"), "--target", "y"]
    assert main([*argv, "--name", "svc", "--out", str(tmp_path / "b")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, errors
    assert errors[0].startswith("error: the model's own predict and predict_proba disagree on ")
    assert "SVC(probability=True) fits its probabilities by a Platt scaling" in errors[0]
    assert "replace it by CalibratedClassifierCV(SVC(), ensemble=False) as the pipeline's last step" in errors[0]
    fixed = _fit(make_pipeline(StandardScaler(), CalibratedClassifierCV(SVC(random_state=0), ensemble=False)), df, features)
    assert _export(fixed, df, features, tmp_path / "calibrated").manifest.export_metrics["parity_max_abs_diff"] < 1e-4


def _categorical_data(n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"a": rng.normal(size=n), "colour": rng.choice(["red", "green", "blue", None], size=n)})
    df["y"] = np.where(df["a"] + (df["colour"] == "red") + rng.normal(scale=0.5, size=n) > 0.5, "up", "down")
    return df


def _encoder_pipeline(encoder: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    return Pipeline([("pre", ColumnTransformer([("enc", encoder, ["colour"])], remainder="passthrough")), ("lr", LogisticRegression())])


def test_categories_the_encoder_never_saw_are_named_per_feature(tmp_path) -> None:
    from sklearn.preprocessing import OneHotEncoder

    df = _categorical_data()
    trained_on = df[df["colour"] != "blue"]
    model = _fit(_encoder_pipeline(OneHotEncoder()), trained_on, ["a", "colour"])
    with pytest.raises(ExportProblems) as excinfo:
        export_sklearn(model, df, "y", "m", tmp_path / "b")
    assert _one_problem(excinfo) == (
        "feature 'colour': the data holds categories ['blue'] the pipeline's OneHotEncoder never saw in training "
        "(it learned ['', 'green', 'red']) and it refuses unknown ones: fit it on every category, or set handle_unknown='ignore'"
    )
    fixed = _fit(_encoder_pipeline(OneHotEncoder(handle_unknown="ignore")), trained_on, ["a", "colour"])
    assert export_sklearn(fixed, df, "y", "m", tmp_path / "ignore").manifest.export_metrics["parity_max_abs_diff"] < 1e-4


@pytest.mark.parametrize("handle_unknown", ["error", "ignore"])
def test_an_encoder_trained_on_raw_nulls_is_told_the_graph_sends_null_as_empty_text(tmp_path, handle_unknown) -> None:
    from sklearn.preprocessing import OneHotEncoder

    df = _categorical_data()
    # trained on the raw frame: null stays NaN and becomes a category of its own; the graph sends ''
    model = _encoder_pipeline(OneHotEncoder(handle_unknown=handle_unknown)).fit(df[["a", "colour"]], df["y"])
    with pytest.raises(ExportProblems) as excinfo:
        export_sklearn(model, df, "y", "m", tmp_path / "b")
    assert _one_problem(excinfo).startswith(
        "feature 'colour': the pipeline's OneHotEncoder learned null as NaN (it was trained on raw data), but the graph sends null as ''"
    )
    fixed = _fit(_encoder_pipeline(OneHotEncoder(handle_unknown=handle_unknown)), df, ["a", "colour"])
    assert export_sklearn(fixed, df, "y", "m", tmp_path / "prepared").manifest.export_metrics["parity_max_abs_diff"] < 1e-4


def test_a_function_transformer_with_its_own_function_is_named_before_conversion(tmp_path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, PowerTransformer

    df, features = _data(n=600), ["a", "b"]
    model = _fit(make_pipeline(FunctionTransformer(np.tanh), LogisticRegression()), df, features)
    with pytest.raises(ExportProblems) as excinfo:
        _export(model, df, features, tmp_path / "tanh")
    problem = _one_problem(excinfo)
    assert problem.startswith("FunctionTransformer(func=tanh): skl2onnx converts a FunctionTransformer only as the identity")
    assert "You may raise an issue" not in problem  # not skl2onnx's own words
    fixed = _fit(make_pipeline(PowerTransformer(), LogisticRegression()), df, features)
    assert _export(fixed, df, features, tmp_path / "power").manifest.export_metrics["parity_max_abs_diff"] < 1e-4
