"""The real Lambda handler on real-shaped events gives what onnxruntime gives on the same rows."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from modelserve.schema import CATEGORICAL_NULL_TOKEN, FeatureKind
from tests.support import EVENT_KINDS, event, header, response_json


def _rows(bundle, n: int) -> list[dict]:
    ref = [r["inputs"] for r in bundle.reference_rows()]
    return [ref[i % len(ref)] for i in range(n)]


def _bare_onnxruntime(bundle, rows: list[dict]) -> tuple[list[str], np.ndarray]:
    """Feed onnxruntime directly, independently of the service's own feed code."""
    sess = ort.InferenceSession(str(bundle.model_path), providers=["CPUExecutionProvider"])
    feed = {}
    for f in bundle.manifest.features:
        vals = [r[f.name] for r in rows]
        if f.kind is FeatureKind.CATEGORICAL:
            feed[f.name] = np.array([CATEGORICAL_NULL_TOKEN if v is None else v for v in vals], dtype=object).reshape(-1, 1)
        else:
            feed[f.name] = np.array([np.nan if v is None else v for v in vals], dtype=np.float32).reshape(-1, 1)
    labels, probs = sess.run(None, feed)
    return [str(x) for x in labels], probs


@pytest.mark.parametrize("kind", EVENT_KINDS)
@pytest.mark.parametrize("n", [1, 1000])
def test_handler_matches_bare_onnxruntime(kind, n, load_inference, sample_bundle, lambda_context) -> None:
    mod = load_inference()
    rows = _rows(sample_bundle, n)
    resp = mod.handler(event(kind, "POST", "/predict", {"instances": rows}, request_id="req-1"), lambda_context)
    assert resp["statusCode"] == 200, resp["body"][:500]
    body = response_json(resp)
    labels, probs = _bare_onnxruntime(sample_bundle, rows)
    assert body["predictions"] == labels
    assert np.abs(np.array(body["probabilities"]) - probs).max() < 1e-6
    assert body["classes"] == list(sample_bundle.manifest.outputs.classes)
    assert body["model_version"] == sample_bundle.manifest.version == header(resp, "x-model-version")
    if kind != "alb":  # ALB events carry no request id; the service makes one
        assert body["request_id"] == "req-1" == header(resp, "x-request-id")
    else:
        assert body["request_id"] == header(resp, "x-request-id") and body["request_id"]


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_base64_encoded_bodies_are_accepted(kind, load_inference, sample_bundle, lambda_context) -> None:

    mod = load_inference()
    rows = _rows(sample_bundle, 3)
    resp = mod.handler(event(kind, "POST", "/predict", raw=json.dumps({"instances": rows}).encode(), b64=True), lambda_context)
    assert resp["statusCode"] == 200
    assert response_json(resp)["predictions"] == _bare_onnxruntime(sample_bundle, rows)[0]


def test_dataframe_split_form_gives_the_same_answer_as_instances(load_inference, sample_bundle, lambda_context) -> None:
    mod = load_inference()
    rows = _rows(sample_bundle, 50)
    cols = list(reversed(sample_bundle.manifest.feature_names))  # any column order
    split = {"dataframe_split": {"columns": cols, "data": [[r[c] for c in cols] for r in rows]}}
    a = response_json(mod.handler(event("rest_v1", "POST", "/predict", {"instances": rows}), lambda_context))
    b = response_json(mod.handler(event("rest_v1", "POST", "/predict", split), lambda_context))
    assert a["predictions"] == b["predictions"] and a["probabilities"] == b["probabilities"]


def test_health_model_and_openapi_endpoints(load_inference, sample_bundle, lambda_context) -> None:
    mod = load_inference()
    health = response_json(mod.handler(event("rest_v1", "GET", "/health", request_id="rid-health"), lambda_context))
    assert health == {"status": "ok", "model_name": "penguins", "model_version": sample_bundle.manifest.version, "request_id": "rid-health"}
    model = response_json(mod.handler(event("http_v2", "GET", "/model"), lambda_context))
    assert [f["name"] for f in model["features"]] == sample_bundle.manifest.feature_names
    assert model["export_metrics"]["parity_max_abs_diff"] <= 1e-4
    spec = response_json(mod.handler(event("rest_v1", "GET", "/openapi.json"), lambda_context))
    assert {"/predict", "/feedback", "/health", "/model"} <= set(spec["paths"])
    req_schema = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    row = req_schema["oneOf"][0]["properties"]["instances"]["items"]
    assert row["properties"]["island"]["enum"] == ["Biscoe", "Dream", "Torgersen"]


def test_docs_page_points_at_the_stage_prefixed_schema(load_inference, lambda_context) -> None:
    mod = load_inference(stage_name="prod")
    resp = mod.handler(event("rest_v1", "GET", "/docs"), lambda_context)
    assert resp["statusCode"] == 200
    assert "/prod/openapi.json" in resp["body"]


def test_model_loads_once_at_init_not_per_request(load_inference, sample_bundle, lambda_context) -> None:
    mod = load_inference()
    session = mod.service.runner.session
    for _ in range(3):
        mod.handler(event("rest_v1", "POST", "/predict", {"instances": _rows(sample_bundle, 1)}), lambda_context)
    assert mod.service.runner.session is session


def test_a_metrics_failure_never_fails_the_prediction_and_is_logged(load_inference, sample_bundle, lambda_context, monkeypatch) -> None:
    import logging

    from modelserve.metric_catalogue import METRICS_ERROR_MESSAGE

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    mod = load_inference()
    metrics_logger = logging.getLogger("modelserve.metrics")
    records: list[logging.LogRecord] = []
    spy = logging.Handler()
    spy.emit = records.append  # type: ignore[method-assign]
    metrics_logger.addHandler(spy)
    monkeypatch.setattr(metrics_logger, "handlers", metrics_logger.handlers)  # restored after the test

    def broken(*args, **kwargs):
        raise RuntimeError("EMF is broken")

    with monkeypatch.context() as mp:
        mp.setattr(mod.metrics, "_add", broken)  # collecting a value fails
        resp = mod.handler(event("rest_v1", "POST", "/predict", {"instances": _rows(sample_bundle, 2)}), lambda_context)
        assert resp["statusCode"] == 200 and len(response_json(resp)["predictions"]) == 2
    with monkeypatch.context() as mp:
        mp.setattr(mod.metrics, "_write", broken)  # writing the EMF lines fails
        resp = mod.handler(event("rest_v1", "POST", "/predict", {"instances": _rows(sample_bundle, 2)}), lambda_context)
        assert resp["statusCode"] == 200 and len(response_json(resp)["predictions"]) == 2
    metrics_logger.removeHandler(spy)
    failures = [r for r in records if r.getMessage() == METRICS_ERROR_MESSAGE]
    assert len(failures) >= 2  # the add and the flush
    # as Lambda logs it: JSON with the fields the CloudWatch Logs metric filter reads
    line = json.loads(logging.getLogger("modelserve").handlers[0].format(failures[0]))
    assert line["message"].startswith("metrics_error") and line["model_version"] == sample_bundle.manifest.version
