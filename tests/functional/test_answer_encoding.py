"""The JSON answer is written from the model's arrays (orjson's numpy option), byte for byte what writing the
same answer from Python lists gives.

The service hands the codecs a regressor's predictions and every classifier's probabilities as numpy arrays:
no Python float per value. The real handler answers the sample classifier and a regressor one row and many rows
at a time; each body must equal the same answer converted to lists and encoded, and the regressor's values must
be the library's. Non-finite values are written as null either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from modelserve.bundle import ModelBundle
from serving.codecs.base import Decoded
from serving.codecs.json_rows import JsonRowsCodec
from tests.support import event

pytestmark = pytest.mark.slow


def _as_lists(value: Any) -> Any:
    """The answer as the list-based encoder saw it: every array converted to (nested) Python lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _as_lists(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_lists(v) for v in value]
    return value


@pytest.fixture(scope="module")
def regressor(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelBundle, pd.DataFrame, np.ndarray]:
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import GradientBoostingRegressor

    from devtools.export import export_sklearn, prepare_frame
    from modelserve.schema import infer_feature_specs

    data = load_diabetes(as_frame=True)
    x = data.data
    prepared = prepare_frame(x, infer_feature_specs({c: x[c] for c in x.columns}))
    model = GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=0).fit(prepared, data.target)
    bundle = export_sklearn(model, x.assign(target=data.target), "target", "diabetes", tmp_path_factory.mktemp("reg") / "b")
    return bundle, x, model.predict(prepared)


def _bodies(mod: Any, rows: list[dict[str, Any]], lambda_context: Any) -> list[bytes]:
    out = []
    for batch in ([rows[0]], rows[:7], rows):
        resp = mod.handler(event("rest_v1", "POST", "/predict", {"instances": batch}), lambda_context)
        assert resp["statusCode"] == 200, resp["body"]
        out.append(resp["body"].encode())
    return out


def _check_bytes(mod: Any, rows: list[dict[str, Any]], lambda_context: Any) -> list[dict[str, Any]]:
    answers = []
    for body in _bodies(mod, rows, lambda_context):
        answer = orjson.loads(body)
        # the same answer, from the service's arrays, through the JSON codec and through the list-based encoder
        served = mod.service.predict({"instances": rows[: len(answer["predictions"])]}, answer["request_id"])
        codec = JsonRowsCodec(mod.service.manifest)
        from_arrays = codec.encode(served.body, Decoded(None), {}).body
        assert from_arrays == body == orjson.dumps(_as_lists(served.body))
        answers.append(answer)
    return answers


def test_the_classifiers_answer_is_the_list_encoders_byte_for_byte(load_inference, sample_bundle, lambda_context) -> None:
    mod = load_inference()
    rows = [r["inputs"] for r in sample_bundle.reference_rows()][:300]
    served = mod.service.predict({"instances": rows[:3]}, "r")
    assert isinstance(served.body["probabilities"], np.ndarray)  # written from the array
    answers = _check_bytes(mod, rows, lambda_context)
    assert len(answers[-1]["probabilities"]) == len(rows)


def test_the_regressors_answer_is_written_from_its_array_and_is_the_librarys(load_inference, regressor, lambda_context) -> None:
    bundle, x, expected = regressor
    mod = load_inference(bundle)
    rows = x.head(250).to_dict("records")
    served = mod.service.predict({"instances": rows[:3]}, "r")
    assert isinstance(served.body["predictions"], np.ndarray) and served.body["predictions"].dtype == np.float64
    answers = _check_bytes(mod, rows, lambda_context)
    np.testing.assert_allclose(answers[-1]["predictions"], expected[:250], rtol=1e-5)


def test_non_finite_values_are_null_from_arrays_as_from_lists() -> None:
    values = np.array([0.1, -0.0, 1e22, 5e-324, np.nan, np.inf, -np.inf, 1.7976931348623157e308])
    from_array = orjson.dumps({"predictions": values}, option=orjson.OPT_SERIALIZE_NUMPY)
    assert from_array == orjson.dumps({"predictions": values.tolist()})
    assert orjson.loads(from_array)["predictions"][4:7] == [None, None, None]
