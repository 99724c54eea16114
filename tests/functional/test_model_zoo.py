"""A zoo of tabular models as people bring them, each exported, served through the real inference
handler one row per request and in batches, and compared with the library that trained it:
labels exact, probabilities within 1e-5, regression values within float32 rounding.

LightGBM and XGBoost (converted by onnxmltools), a scikit-learn pipeline with categorical inputs,
a RandomForest with integer classes 1..3, a probabilities-only binary model, a float64-input and an
int64-input model, and a regression model. All data ships with scikit-learn (and palmerpenguins).

And scikit-learn estimators as a data scientist first tries them, through ``export_sklearn``: a bare
RandomForest with boolean labels, a bare GradientBoostingRegressor, a one-step pipeline with integer
labels, a GridSearchCV with string labels and a CalibratedClassifierCV with float labels 0.0/1.0;
each answer's labels in the library's own type (JSON booleans and integers, not text).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest

from devtools.export import export_onnx, export_sklearn, table_from_frame
from modelserve.bundle import ModelBundle
from modelserve.schema import InputDtype, LabelType, Task, table_to_rows
from monitoring.prediction_drift import PredictionDriftResult
from tests.support import event, response_json

pytestmark = pytest.mark.slow

PROBABILITY_TOLERANCE = 1e-5
VALUE_RTOL = 1e-5  # the graphs compute in float32: about 7 significant digits
SINGLE_ROW_REQUESTS = 40  # per model, spread over the data
BATCH = 200


@dataclass
class ZooModel:
    bundle: ModelBundle
    frame: pd.DataFrame  # the model's features, as the exporter saw them
    labels: list[Any] | None  # the library's own predictions (as JSON gives them: str, int or bool)
    probabilities: np.ndarray | None
    values: np.ndarray | None = None


def _frame(loader: Callable[..., Any]) -> tuple[pd.DataFrame, np.ndarray]:
    data = loader(as_frame=True)
    x = data.data.rename(columns=lambda c: c.replace("/", "_").replace(" ", "_"))
    return x, data.target.to_numpy()


def _export_ready(tmp: Path, name: str, model: onnx.ModelProto, x: pd.DataFrame, y: Any, task: str, **outputs: Any) -> ModelBundle:
    (tmp / f"{name}.onnx").write_bytes(model.SerializeToString())
    schema = {
        "model_name": name,
        "features": [{"name": c} for c in x.columns],
        "outputs": {"task": task, **outputs},
        "input_layout": "single_tensor",
    }
    return export_onnx(tmp / f"{name}.onnx", schema, x.assign(target=y), tmp / name, target="target", allow_small_reference=len(x) < 200)


def _lightgbm(tmp: Path) -> ZooModel:
    import lightgbm as lgb
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType
    from sklearn.datasets import load_wine

    x, y = _frame(load_wine)
    x32 = x.to_numpy(np.float32)
    model = lgb.LGBMClassifier(n_estimators=30, num_leaves=8, verbose=-1, random_state=0, n_jobs=1).fit(x32, y)
    onx = convert_lightgbm(model, initial_types=[("x", FloatTensorType([None, x.shape[1]]))], target_opset=15, zipmap=False)
    bundle = _export_ready(tmp, "lightgbm", onx, x, y, "classification")
    return ZooModel(bundle, x, [str(v) for v in model.predict(x32)], model.predict_proba(x32))


def _xgboost(tmp: Path) -> ZooModel:
    import xgboost as xgb
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType
    from sklearn.datasets import load_breast_cancer

    x, y = _frame(load_breast_cancer)
    x32 = x.to_numpy(np.float32)
    model = xgb.XGBClassifier(n_estimators=30, max_depth=3, random_state=0, n_jobs=1).fit(x32, y)
    onx = convert_xgboost(model, initial_types=[("x", FloatTensorType([None, x.shape[1]]))], target_opset=15)
    bundle = _export_ready(tmp, "xgboost", onx, x, y, "classification")
    return ZooModel(bundle, x, [str(v) for v in model.predict(x32)], model.predict_proba(x32))


def _pipeline_with_categories(tmp: Path) -> ZooModel:
    from devtools.export import prepare_frame
    from devtools.sample_model import TARGET, build_pipeline, load_training_frame
    from modelserve.schema import infer_feature_specs

    df = load_training_frame()
    features = [c for c in df.columns if c != TARGET]
    prepared = prepare_frame(df, infer_feature_specs({c: df[c] for c in features}))
    pipeline = build_pipeline().fit(prepared, df[TARGET])
    bundle = export_sklearn(pipeline, df, TARGET, "penguins", tmp / "penguins")
    return ZooModel(bundle, df[features], [str(v) for v in pipeline.predict(prepared)], pipeline.predict_proba(prepared))


def _forest_classes_1_to_3(tmp: Path) -> ZooModel:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestClassifier

    x, y = _frame(load_wine)
    y = y + 1
    x32 = x.to_numpy(np.float32)
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(x32, y)
    onx = convert_sklearn(model, initial_types=[("x", FloatTensorType([None, x.shape[1]]))], target_opset=17)  # ZipMap output
    bundle = _export_ready(
        tmp, "forest123", onx, x, y, "classification", label_output="output_label", probability_output="output_probability"
    )
    return ZooModel(bundle, x, [str(v) for v in model.predict(x32)], model.predict_proba(x32))


def _probabilities_only(tmp: Path) -> ZooModel:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _frame(load_breast_cancer)
    x32 = x.to_numpy(np.float32)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x32, y)
    onx = convert_sklearn(model, initial_types=[("x", FloatTensorType([None, x.shape[1]]))], target_opset=17, options={"zipmap": False})
    # what a hand-built or Keras-style graph gives: probabilities and no label output
    onx.graph.output.remove(next(o for o in onx.graph.output if o.name == "label"))
    bundle = _export_ready(tmp, "probs_only", onx, x, y, "classification")
    assert bundle.manifest.outputs.label_output is None
    return ZooModel(bundle, x, [str(v) for v in model.predict(x32)], model.predict_proba(x32))


def _float64_inputs(tmp: Path) -> ZooModel:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = _frame(load_iris)
    names = np.array(["setosa", "versicolor", "virginica"])[y]  # string classes
    model = LogisticRegression(max_iter=1000).fit(x.to_numpy(), names)
    onx = convert_sklearn(model, initial_types=[("x", DoubleTensorType([None, x.shape[1]]))], target_opset=17, options={"zipmap": False})
    # the double-precision graph keeps its classes in a constant, not an attribute: declare them
    bundle = _export_ready(tmp, "float64", onx, x, names, "classification", classes=list(model.classes_))
    assert {f.dtype for f in bundle.manifest.features} == {InputDtype.FLOAT64}
    return ZooModel(bundle, x, model.predict(x.to_numpy()).tolist(), model.predict_proba(x.to_numpy()))


def _int64_inputs(tmp: Path) -> ZooModel:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import Int64TensorType
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier

    x, y = _frame(load_digits)
    x = x.astype(np.int64)
    model = RandomForestClassifier(n_estimators=10, max_depth=8, random_state=0).fit(x.to_numpy(), y)
    onx = convert_sklearn(model, initial_types=[("x", Int64TensorType([None, x.shape[1]]))], target_opset=17, options={"zipmap": False})
    bundle = _export_ready(tmp, "int64", onx, x, y, "classification")
    assert {f.dtype for f in bundle.manifest.features} == {InputDtype.INT64}
    return ZooModel(bundle, x, [str(v) for v in model.predict(x.to_numpy())], model.predict_proba(x.to_numpy()))


def _regression(tmp: Path) -> ZooModel:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor

    x, y = _frame(load_diabetes)
    x32 = x.to_numpy(np.float32)
    model = RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(x32, y)
    onx = convert_sklearn(model, initial_types=[("x", FloatTensorType([None, x.shape[1]]))], target_opset=17)
    bundle = _export_ready(tmp, "regression", onx, x, y, "regression")
    return ZooModel(bundle, x, None, None, values=model.predict(x32))


def _export_estimator(tmp: Path, name: str, model: Any, x: pd.DataFrame, y: Any) -> tuple[ZooModel, pd.DataFrame]:
    """Fit any scikit-learn estimator on the frame the graph sees and export it with export_sklearn."""
    from devtools.export import prepare_frame
    from modelserve.schema import infer_feature_specs

    prepared = prepare_frame(x, infer_feature_specs({c: x[c] for c in x.columns}))
    model.fit(prepared, y)
    bundle = export_sklearn(model, x.assign(target=y), "target", name, tmp / name, allow_small_reference=len(x) < 200)
    if hasattr(model, "predict_proba"):
        return ZooModel(bundle, x, model.predict(prepared).tolist(), model.predict_proba(prepared)), prepared
    return ZooModel(bundle, x, None, None, values=model.predict(prepared)), prepared


def _bare_forest_bool_labels(tmp: Path) -> ZooModel:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    x, y = _frame(load_breast_cancer)
    zoo, _ = _export_estimator(tmp, "bare_forest_bool", RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0), x, y == 1)
    assert zoo.bundle.manifest.outputs.label_type is LabelType.BOOLEAN and zoo.labels and isinstance(zoo.labels[0], bool)
    return zoo


def _bare_gradient_boosting_regressor(tmp: Path) -> ZooModel:
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import GradientBoostingRegressor

    x, y = _frame(load_diabetes)
    zoo, _ = _export_estimator(tmp, "bare_gbr", GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=0), x, y)
    return zoo


def _one_step_pipeline_int_labels(tmp: Path) -> ZooModel:
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    x, y = _frame(load_wine)
    zoo, _ = _export_estimator(tmp, "one_step", Pipeline([("rf", RandomForestClassifier(n_estimators=20, random_state=0))]), x, y)
    assert zoo.bundle.manifest.outputs.label_type is LabelType.INTEGER
    return zoo


def _grid_search_string_labels(tmp: Path) -> ZooModel:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _frame(load_iris)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    search = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), {"logisticregression__C": [0.1, 1.0]}, cv=3)
    zoo, _ = _export_estimator(tmp, "grid_search", search, x, names)
    assert zoo.bundle.manifest.outputs.label_type is None  # text labels: strings, as before
    return zoo


def _calibrated_float_labels(tmp: Path) -> ZooModel:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    x, y = _frame(load_breast_cancer)
    model = CalibratedClassifierCV(RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0), cv=3)
    zoo, _ = _export_estimator(tmp, "calibrated", model, x, y.astype(np.float64))
    assert zoo.labels is not None
    zoo.labels = [int(v) for v in zoo.labels]  # the classes 0.0 and 1.0 are the integers 0 and 1
    return zoo


def _imputer_pipeline(strategy: str) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from devtools.sample_model import CATEGORICAL, NUMERIC

    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    # the common imputer, as people write it: missing_values left at NaN
    text = Pipeline(
        [("impute", SimpleImputer(strategy=strategy, fill_value="missing")), ("encode", OneHotEncoder(handle_unknown="ignore"))]
    )
    pre = ColumnTransformer([("num", numeric, NUMERIC), ("cat", text, CATEGORICAL)])
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=2000))])


def _penguins_raw() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The penguins as pandas reads them (NaN for a missing text value), and the features alone."""
    from devtools.sample_model import CATEGORICAL, NUMERIC, load_training_frame

    df = load_training_frame()
    return df, df[NUMERIC + CATEGORICAL].astype({c: object for c in CATEGORICAL})


def _imputer_most_frequent(tmp: Path) -> ZooModel:
    df, raw = _penguins_raw()
    pipeline = _imputer_pipeline("most_frequent").fit(raw, df["species"])  # trained on the raw frame, not prepare_frame
    bundle = export_sklearn(pipeline, df, "species", "imputer", tmp / "imputer")
    assert all(f.nullable for f in bundle.manifest.features)  # every feature is imputed: every feature accepts null
    return ZooModel(bundle, raw, pipeline.predict(raw).tolist(), pipeline.predict_proba(raw))


def _skops_import(tmp: Path) -> ZooModel:
    """A model saved by the real skops package, loaded with its trusted-types check (nothing unpickled)."""
    import skops.io as sio
    from sklearn.datasets import load_wine
    from sklearn.ensemble import ExtraTreesClassifier

    from devtools.export import prepare_frame
    from devtools.export.model_sources import load_skops
    from modelserve.schema import infer_feature_specs

    x, y = _frame(load_wine)
    prepared = prepare_frame(x, infer_feature_specs({c: x[c] for c in x.columns}))
    model = ExtraTreesClassifier(n_estimators=15, random_state=0).fit(prepared, y)
    sio.dump(model, tmp / "model.skops")
    # tree models hold a node array skops does not trust by default: the person who saved it names it
    estimator = load_skops(tmp / "model.skops", trusted=["sklearn.tree._tree.Tree"])
    bundle = export_sklearn(estimator, x.assign(target=y), "target", "skops", tmp / "skops", allow_small_reference=True)
    return ZooModel(bundle, x, model.predict(prepared).tolist(), model.predict_proba(prepared))


def _mlflow_import(tmp: Path) -> ZooModel:
    """A model saved by the real mlflow (sklearn flavour, signature and input example): the signature names
    the features and their kinds; the training data is the reference (without data, the input example is:
    tests/unit/test_model_sources.py)."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier

    from devtools.export import prepare_frame
    from devtools.export.model_sources import load_mlflow
    from modelserve.schema import infer_feature_specs

    x, y = _frame(load_breast_cancer)
    prepared = prepare_frame(x, infer_feature_specs({c: x[c] for c in x.columns}))
    model = GradientBoostingClassifier(n_estimators=20, max_depth=2, random_state=0).fit(prepared, y)
    mlflow.sklearn.save_model(
        model,
        str(tmp / "mlflow_model"),
        signature=infer_signature(x, model.predict(prepared)),
        input_example=x.head(5),
        skops_trusted_types=["sklearn.tree._tree.Tree"],
    )
    loaded = load_mlflow(tmp / "mlflow_model")
    assert loaded.features == list(x.columns) and loaded.input_example is not None and len(loaded.input_example) == 5
    bundle = export_sklearn(
        loaded.estimator, x.assign(target=y), "target", "mlflow", tmp / "mlflow", feature_names=loaded.features, kinds=loaded.kinds
    )
    return ZooModel(bundle, x, model.predict(prepared).tolist(), model.predict_proba(prepared))


ZOO: dict[str, Callable[[Path], ZooModel]] = {
    "lightgbm": _lightgbm,
    "xgboost": _xgboost,
    "sklearn_pipeline_categorical": _pipeline_with_categories,
    "random_forest_classes_1_to_3": _forest_classes_1_to_3,
    "probabilities_only_binary": _probabilities_only,
    "float64_inputs": _float64_inputs,
    "int64_inputs": _int64_inputs,
    "regression": _regression,
    "bare_random_forest_bool_labels": _bare_forest_bool_labels,
    "bare_gradient_boosting_regressor": _bare_gradient_boosting_regressor,
    "one_step_pipeline_int_labels": _one_step_pipeline_int_labels,
    "grid_search_string_labels": _grid_search_string_labels,
    "calibrated_classifier_float_labels": _calibrated_float_labels,
    "imputer_most_frequent_on_text": _imputer_most_frequent,
    "skops_import": _skops_import,
    "mlflow_import": _mlflow_import,
}


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zoo")


def _drift_check(bundle: ModelBundle, rows: list[dict[str, Any]], answers: list[dict[str, Any]]) -> Any:
    from modelserve.bundle import reference_sample_from_rows
    from monitoring import DriftChecker
    from monitoring.profile import PredictionColumns, ReferenceProfile

    manifest = bundle.manifest
    ref = bundle.reference_sample()
    profile = ReferenceProfile.fit(
        manifest.features,
        ref.table,
        PredictionColumns(labels=ref.labels, probabilities=ref.probabilities, values=ref.values),
        outputs=manifest.outputs,
    )
    classes = list(manifest.outputs.classes)
    served = [
        {"inputs": r, "prediction": p, "probabilities": dict(zip(classes, q)) if q else None}
        for r, p, q in zip(
            rows,
            [p for a in answers for p in a["predictions"]],
            [q for a in answers for q in a.get("probabilities", [None] * len(a["predictions"]))],
        )
    ]
    window = reference_sample_from_rows(manifest, served)
    return DriftChecker(profile).check(
        window.table, PredictionColumns(labels=window.labels, probabilities=window.probabilities, values=window.values)
    )


def _post(mod: Any, ctx: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    resp = mod.handler(event("rest_v1", "POST", "/predict", {"instances": json.loads(json.dumps(rows))}), ctx)
    assert resp["statusCode"] == 200, resp["body"][:500]
    return response_json(resp)


def _check(zoo: ZooModel, rows: range, body: dict[str, Any]) -> None:
    idx = list(rows)
    if zoo.bundle.manifest.outputs.task is Task.REGRESSION:
        assert zoo.values is not None
        np.testing.assert_allclose(body["predictions"], zoo.values[idx], rtol=VALUE_RTOL)
        return
    assert zoo.labels is not None and zoo.probabilities is not None
    expected = [zoo.labels[i] for i in idx]
    # in the library's own type: True is not 1, 1 is not "1"
    assert [(type(p), p) for p in body["predictions"]] == [(type(e), e) for e in expected]
    probabilities = np.array(body["probabilities"])
    assert np.abs(probabilities - zoo.probabilities[idx]).max() <= PROBABILITY_TOLERANCE
    # the answer's label is its own most probable class
    assert [body["classes"][k] for k in probabilities.argmax(axis=1)] == body["predictions"]


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_model_is_served_as_its_library_predicts(name, zoo_dir, load_inference, lambda_context) -> None:
    zoo = ZOO[name](zoo_dir)
    manifest = zoo.bundle.manifest
    rows = table_to_rows(manifest.features, table_from_frame(zoo.frame, manifest.features))
    mod = load_inference(zoo.bundle)
    for i in np.linspace(0, len(rows) - 1, SINGLE_ROW_REQUESTS).astype(int):  # one row per request
        _check(zoo, range(i, i + 1), _post(mod, lambda_context, [rows[i]]))
    answers = []
    for start in range(0, len(rows), BATCH):  # and in batches
        stop = min(start + BATCH, len(rows))
        answers.append(_post(mod, lambda_context, rows[start:stop]))
        _check(zoo, range(start, stop), answers[-1])
    # the drift check, once: the served answers are the reference's own, so nothing drifted
    report = _drift_check(zoo.bundle, rows, answers)
    prediction_drift = report.result(PredictionDriftResult)
    assert prediction_drift is not None and prediction_drift.is_drift is False
    assert report.dataset_drift is False
    if manifest.outputs.task is Task.CLASSIFICATION:
        named = np.array([manifest.outputs.class_for(v) for v in zoo.labels], dtype=object)
        targets = np.array([manifest.outputs.class_for(r["target"]) for r in zoo.bundle.reference_rows()], dtype=object)
        assert manifest.export_metrics["accuracy"] == pytest.approx(np.mean(named == targets))


@pytest.mark.parametrize("strategy", ["most_frequent", "constant"])
def test_a_feature_the_pipeline_imputes_accepts_null_and_is_imputed_as_the_library_does(
    strategy, tmp_path, load_inference, lambda_context
) -> None:
    df, raw = _penguins_raw()
    pipeline = _imputer_pipeline(strategy).fit(raw, df["species"])
    bundle = export_sklearn(pipeline, df, "species", "imputer", tmp_path / "b")
    assert bundle.manifest.feature("island").nullable  # never null in the data; the pipeline imputes it
    rows = [dict(r["inputs"]) for r in bundle.reference_rows()[:6]]
    for i, r in enumerate(rows):  # a null in each feature in turn: text and numbers
        r[list(r)[i % len(r)]] = None
    body = _post(load_inference(bundle), lambda_context, rows)
    library = pd.DataFrame(rows).astype({"island": object, "sex": object}).fillna(np.nan)
    assert body["predictions"] == pipeline.predict(library).tolist()
    assert np.abs(np.array(body["probabilities"]) - pipeline.predict_proba(library)).max() <= PROBABILITY_TOLERANCE
