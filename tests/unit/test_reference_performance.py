"""The bundle carries the model's performance on rows it did not learn from, with bootstrap intervals:
classifier and regressor exports, a given hold-out set, a ready ONNX model, and /model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, roc_auc_score
from sklearn.model_selection import train_test_split

from devtools.cli import main
from devtools.export import HOLDOUT_SHARE, export_sklearn, prepare_frame
from devtools.sample_model import NUMERIC, TARGET, build_pipeline, load_training_frame
from modelserve.bundle import ModelBundle
from modelserve.schema import infer_feature_specs
from tests.support import event, response_json


def _specs(df, features):
    return infer_feature_specs({c: df[c] for c in features})


def test_classifier_export_measures_a_stratified_holdout_with_intervals(sample_bundle) -> None:
    perf = sample_bundle.manifest.export_metrics["reference_performance"]
    assert perf["source"] == "holdout_refit" and perf["holdout_share"] == HOLDOUT_SHARE
    # the same split and refit, scored by scikit-learn
    df = load_training_frame()
    specs = sample_bundle.manifest.features
    train, held = train_test_split(df, test_size=HOLDOUT_SHARE, random_state=0, stratify=df[TARGET])
    model = clone(build_pipeline()).fit(prepare_frame(train, specs), train[TARGET])
    x = prepare_frame(held, specs)
    assert perf["rows"] == len(held)
    m = perf["metrics"]
    assert m["accuracy"]["value"] == pytest.approx(accuracy_score(held[TARGET], model.predict(x)))
    assert m["f1_macro"]["value"] == pytest.approx(f1_score(held[TARGET], model.predict(x), average="macro"))
    assert m["auc"]["value"] == pytest.approx(roc_auc_score(held[TARGET], model.predict_proba(x), multi_class="ovr"), abs=1e-6)
    for name in ("accuracy", "f1_macro", "auc"):
        assert m[name]["low"] <= m[name]["value"] <= m[name]["high"] <= 1.0
        assert m[name]["se"] >= 0


def test_regression_export_measures_mae_and_rmse_on_the_holdout(tmp_path) -> None:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    df = load_training_frame().dropna(subset=NUMERIC).reset_index(drop=True)
    features, target = NUMERIC[:3], NUMERIC[3]
    specs = _specs(df, features)
    pipe = make_pipeline(StandardScaler(), Ridge()).fit(prepare_frame(df, specs), df[target])
    bundle = export_sklearn(pipe, df, target, "mass", tmp_path / "b", feature_names=features)
    perf = bundle.manifest.export_metrics["reference_performance"]
    train, held = train_test_split(df, test_size=HOLDOUT_SHARE, random_state=0)
    refit = clone(pipe).fit(prepare_frame(train, specs), train[target])
    expected_mae = mean_absolute_error(held[target], refit.predict(prepare_frame(held, specs)))
    assert perf["task"] == "regression" and perf["rows"] == len(held)
    assert perf["metrics"]["mae"]["value"] == pytest.approx(expected_mae, rel=1e-6)
    assert perf["metrics"]["rmse"]["value"] >= perf["metrics"]["mae"]["value"]
    lo, hi = perf["metrics"]["mae"]["low"], perf["metrics"]["mae"]["high"]
    assert lo < expected_mae < hi


def test_a_regression_export_carries_a_loss_model_of_its_holdout_that_the_drift_check_reads(tmp_path) -> None:
    """Direct loss estimation: the bundle's manifest holds the loss model fitted on the held-out rows;
    read back from the bundle, it estimates those rows' MAE (its mean reproduces the fitted errors) and is
    what the drift check's estimate uses for a regressor."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from devtools.export import table_from_frame
    from monitoring import DriftChecker, DriftConfig, PredictionColumns, ReferenceProfile
    from monitoring.estimated_loss import EstimatedLossCheck, LossModel
    from monitoring.estimated_performance import EstimatedPerformanceCheck

    df = load_training_frame().dropna(subset=NUMERIC).reset_index(drop=True)
    features, target = [*NUMERIC[:3], "island"], NUMERIC[3]
    specs = _specs(df, features)
    # island is in the schema (the loss model encodes it) though this model reads only the numbers
    wrapped = make_pipeline(ColumnTransformer([("num", StandardScaler(), NUMERIC[:3])]), Ridge()).fit(prepare_frame(df, specs), df[target])
    bundle = ModelBundle.load(export_sklearn(wrapped, df, target, "mass", tmp_path / "b", feature_names=features).root)
    perf = bundle.manifest.export_metrics["reference_performance"]
    model = LossModel.from_dict(perf["loss_model"])
    assert model.rows == perf["rows"] and {name for name, _ in model.categorical} == {"island"}
    train, held = train_test_split(df, test_size=HOLDOUT_SHARE, random_state=0)
    refit = clone(wrapped).fit(prepare_frame(train, specs), train[target])
    predicted = refit.predict(prepare_frame(held, specs))
    estimated = model.estimate(table_from_frame(held, specs), predicted)
    assert estimated["mae"] == pytest.approx(perf["metrics"]["mae"]["value"], rel=0.02)
    rows = bundle.reference_rows()
    table = {f: np.array([r["inputs"].get(f) for r in rows], dtype=object if f == "island" else np.float64) for f in features}
    values = np.array([r["prediction"] for r in rows], dtype=np.float64)
    profile = ReferenceProfile.fit(
        specs, table, PredictionColumns(values=values), outputs=bundle.manifest.outputs, reference_performance=perf
    )
    check = DriftChecker(profile, DriftConfig(), checks=(EstimatedPerformanceCheck,)).checks["estimated_performance"]
    assert isinstance(check, EstimatedLossCheck)


def test_a_given_holdout_is_scored_by_the_served_graph(tmp_path) -> None:
    df = load_training_frame()
    features = [c for c in df.columns if c != TARGET]
    train, held = train_test_split(df, test_size=0.3, random_state=1, stratify=df[TARGET])
    specs = _specs(train, features)
    pipe = build_pipeline().fit(prepare_frame(train, specs), train[TARGET])
    bundle = export_sklearn(pipe, train, TARGET, "p", tmp_path / "b", feature_names=features, holdout=held)
    perf = bundle.manifest.export_metrics["reference_performance"]
    assert perf["source"] == "holdout" and perf["rows"] == len(held)
    assert perf["metrics"]["accuracy"]["value"] == pytest.approx(accuracy_score(held[TARGET], pipe.predict(prepare_frame(held, specs))))


def test_export_onnx_with_a_target_measures_the_reference(tmp_path) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import Ridge

    df = load_training_frame().dropna(subset=NUMERIC)
    x = df[NUMERIC[:3]].to_numpy(np.float32)
    y = df[NUMERIC[3]].to_numpy(np.float64)
    model = Ridge().fit(x, y)
    (tmp_path / "m.onnx").write_bytes(
        convert_sklearn(model, initial_types=[("x", FloatTensorType([None, 3]))], target_opset=17).SerializeToString()
    )
    schema = {
        "model_name": "mass",
        "features": [{"name": n, "kind": "numeric"} for n in NUMERIC[:3]],
        "outputs": {"task": "regression", "label_output": "variable", "probability_output": None},
        "input_layout": "single_tensor",
        "single_input_name": "x",
    }
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    df.to_csv(tmp_path / "ref.csv", index=False)
    args = [
        "export-onnx",
        "--model",
        str(tmp_path / "m.onnx"),
        "--schema",
        str(tmp_path / "schema.json"),
        "--reference",
        str(tmp_path / "ref.csv"),
    ]
    assert main([*args, "--target", NUMERIC[3], "--out", str(tmp_path / "b")]) == 0
    perf = ModelBundle.load(tmp_path / "b").manifest.export_metrics["reference_performance"]
    assert perf["source"] == "reference"
    assert perf["metrics"]["mae"]["value"] == pytest.approx(mean_absolute_error(y, model.predict(x)), rel=1e-4)
    assert main([*args, "--out", str(tmp_path / "c")]) == 0  # without targets there is nothing to measure
    assert "reference_performance" not in ModelBundle.load(tmp_path / "c").manifest.export_metrics


def test_model_endpoint_shows_the_reference_performance(load_inference, sample_bundle, lambda_context) -> None:
    model = response_json(load_inference().handler(event("http_v2", "GET", "/model"), lambda_context))
    assert model["export_metrics"]["reference_performance"] == sample_bundle.manifest.export_metrics["reference_performance"]


def test_a_pipeline_that_cannot_be_refitted_still_exports_with_a_warning(tmp_path, monkeypatch) -> None:
    import sklearn.base

    def refuse(estimator, **kwargs):
        raise TypeError("cannot clone this estimator")

    df = load_training_frame()
    features = [c for c in df.columns if c != TARGET]
    specs = _specs(df, features)
    pipe = build_pipeline().fit(prepare_frame(df, specs), df[TARGET])
    monkeypatch.setattr(sklearn.base, "clone", refuse)  # after fitting: the pipeline's own fit clones its steps
    metrics = export_sklearn(pipe, df, TARGET, "p", tmp_path / "b", feature_names=features).manifest.export_metrics
    assert "reference_performance" not in metrics
    assert any("cannot clone this estimator" in w and "holdout=" in w for w in metrics["warnings"])
