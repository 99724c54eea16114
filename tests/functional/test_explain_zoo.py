"""Explanations of the zoo's tree and linear models (tests/functional/test_model_zoo.py) equal the ``shap``
package's exact explainer with an ``Independent`` masker on the same background rows: a random forest
regressor (10 features), a float64 logistic regression (4 features) and a LightGBM classifier on 5 of
the wine features; each additive on random rows of its data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devtools.export import table_from_frame
from modelserve.schema import Task, rows_to_table
from serving.explain import EXACT, Explainer, ExplainRequest
from serving.model import ModelRunner
from tests.explain_support import ShapReference
from tests.functional.test_model_zoo import ZooModel, _export_ready, _float64_inputs, _frame, _regression

pytestmark = pytest.mark.slow

BACKGROUND = 20
EXPLAINED_ROWS = 3


def _lightgbm_five_features(tmp: Path) -> ZooModel:
    import lightgbm as lgb
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType
    from sklearn.datasets import load_wine

    x, y = _frame(load_wine)
    x = x.iloc[:, :5]
    x32 = x.to_numpy(np.float32)
    model = lgb.LGBMClassifier(n_estimators=20, num_leaves=8, verbose=-1, random_state=0, n_jobs=1).fit(x32, y)
    onx = convert_lightgbm(model, initial_types=[("x", FloatTensorType([None, x.shape[1]]))], target_opset=15, zipmap=False)
    bundle = _export_ready(tmp, "lightgbm5", onx, x, y, "classification")
    return ZooModel(bundle, x, [str(v) for v in model.predict(x32)], model.predict_proba(x32))


MODELS = {"random_forest_regression": _regression, "logistic_regression_float64": _float64_inputs, "lightgbm": _lightgbm_five_features}


@pytest.mark.parametrize("name", list(MODELS))
def test_zoo_explanations_equal_shaps_exact_explainer(name: str, tmp_path: Path) -> None:
    zoo = MODELS[name](tmp_path)
    m = zoo.bundle.manifest
    runner = ModelRunner.from_path(m, zoo.bundle.model_path)
    reference = rows_to_table(m.features, [r["inputs"] for r in zoo.bundle.reference_rows()])
    explainer = Explainer(m, runner, lambda: reference, BACKGROUND, 10**8)
    assert explainer.method == EXACT
    table = table_from_frame(zoo.frame, m.features)
    rng = np.random.default_rng(0)
    picked = rng.choice(len(zoo.frame), EXPLAINED_ROWS, replace=False)
    rows: Any = {k: np.asarray(v)[picked] for k, v in table.items()}
    pred = runner.predict(rows)
    classes = explainer.explained_classes(pred.labels, ExplainRequest())
    got = explainer.explain(rows, classes)
    np.testing.assert_allclose(got.base_value + got.values.sum(axis=1), got.output, atol=1e-6)
    shap = ShapReference(m, runner, explainer.background())
    for r in range(EXPLAINED_ROWS):
        column = 0 if m.outputs.task is Task.REGRESSION else list(m.outputs.classes).index(classes[r])  # type: ignore[index]
        values, base = shap.values({k: v[r : r + 1] for k, v in rows.items()}, column)
        np.testing.assert_allclose(got.values[r], values[0], atol=1e-5)
        assert got.base_value[r] == pytest.approx(base[0], abs=1e-5)
