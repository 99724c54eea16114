"""The ``explain`` parameter of OIP infer: Triton's own HTTP client asks for explanations, with JSON and with binary
tensors, and reads them as output tensors equal to ``/predict``'s explanations of the same rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tritonclient.http as tritonhttp

from tests.functional.test_oip import _inputs
from tests.support import event, response_json


@pytest.fixture
def inference(load_inference: Any) -> Any:
    return load_inference()


@pytest.fixture
def triton(inference: Any) -> Any:
    from devtools.local import LocalGateway

    gw = LocalGateway(inference.handler, inference.serving.stage_name, port=0).start()
    client = tritonhttp.InferenceServerClient(url=f"127.0.0.1:{gw.port}/{inference.serving.stage_name}")
    yield client
    client.close()
    gw.stop()


def complete_rows(bundle: Any, n: int) -> list[dict[str, Any]]:
    rows = [dict(r["inputs"]) for r in bundle.reference_rows() if all(v is not None for v in r["inputs"].values())]
    return [rows[(i * 97) % len(rows)] for i in range(n)]  # spread over the species


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_triton_client_reads_the_explanations_predict_answers(binary, triton, inference, sample_bundle, lambda_context) -> None:
    m = sample_bundle.manifest
    rows = complete_rows(sample_bundle, 6)
    outputs = None if binary else [tritonhttp.InferRequestedOutput("label", binary_data=False)]
    result = triton.infer(m.model_name, _inputs(m, rows, binary), outputs=outputs, parameters={"explain": True})
    resp = inference.handler(event("rest_v1", "POST", "/predict", {"instances": rows, "explain": True}), lambda_context)
    expected = response_json(resp)["explanations"]
    values = result.as_numpy("explanation")
    assert values.shape == (6, len(m.features))
    np.testing.assert_allclose(values, [[e["values"][f] for f in m.feature_names] for e in expected], atol=1e-6)
    np.testing.assert_allclose(result.as_numpy("base_value"), [e["base_value"] for e in expected], atol=1e-6)
    explained = result.as_numpy("explained_output")
    np.testing.assert_allclose(explained, [e["output"] for e in expected], atol=1e-6)
    np.testing.assert_allclose(result.as_numpy("base_value") + values.sum(axis=1), explained, atol=1e-6)
    classes = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("explained_class").reshape(-1)]
    assert classes == [e["class"] for e in expected]


def test_oip_explain_class_and_a_bad_explain_parameter(triton, sample_bundle) -> None:
    m = sample_bundle.manifest
    rows = complete_rows(sample_bundle, 3)
    result = triton.infer(m.model_name, _inputs(m, rows, True), parameters={"explain": True, "explain_class": "Chinstrap"})
    assert [v.decode() for v in result.as_numpy("explained_class").reshape(-1)] == ["Chinstrap"] * 3
    with pytest.raises(tritonhttp.InferenceServerException, match="wrong_type"):
        triton.infer(m.model_name, _inputs(m, rows, True), parameters={"explain": "yes"})


def test_oip_without_explain_answers_no_explanation_tensors(triton, sample_bundle) -> None:
    m = sample_bundle.manifest
    result = triton.infer(m.model_name, _inputs(m, complete_rows(sample_bundle, 2), True))
    assert {o["name"] for o in result.get_response()["outputs"]} == {"label", "probabilities"}
