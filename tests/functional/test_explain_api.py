"""``"explain": true`` on /predict through the real inference handler: every event kind, JSON instances and
dataframe_split, the explained class, the limits and refusals, GET /model, the metrics and the OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from modelserve import metric_catalogue as mn
from serving.arrow_ipc import ARROW_STREAM
from tests.functional.test_capture import metric_points
from tests.support import EVENT_KINDS, event, response_json

ROWS = 5


def rows(bundle: Any, n: int = ROWS) -> list[dict[str, Any]]:
    ref = bundle.reference_rows()
    return [dict(ref[(i * 67) % len(ref)]["inputs"]) for i in range(n)]  # spread over the species


def post(mod: Any, ctx: Any, body: Any, kind: str = "rest_v1", **headers: str) -> dict[str, Any]:
    return mod.handler(event(kind, "POST", "/predict", body, headers=headers or None), ctx)


def check_explanations(answer: dict[str, Any], classes: list[str] | None = None) -> None:
    """One explanation per row in row order: the explained class (the predicted one unless named), its
    answered probability as output, base value + contributions == output within 1e-6."""
    explanations = answer["explanations"]
    assert len(explanations) == len(answer["predictions"])
    for r, e in enumerate(explanations):
        want_class = classes[r] if classes else answer["predictions"][r]
        assert e["class"] == want_class and e["method"] == "exact"
        assert e["output"] == pytest.approx(answer["probabilities"][r][answer["classes"].index(want_class)], abs=1e-5)
        assert e["base_value"] + sum(e["values"].values()) == pytest.approx(e["output"], abs=1e-6)


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_explain_answers_one_additive_explanation_per_row_on_every_event_kind(kind, load_inference, sample_bundle, lambda_context) -> None:
    mod = load_inference()
    resp = post(mod, lambda_context, {"instances": rows(sample_bundle), "explain": True}, kind)
    assert resp["statusCode"] == 200, resp["body"][:500]
    answer = response_json(resp)
    check_explanations(answer)
    assert len(set(answer["predictions"])) > 1  # rows of different classes, each explained for its own
    assert list(answer["explanations"][0]["values"]) == sample_bundle.manifest.feature_names


def test_dataframe_split_in_any_column_order_explains_as_instances_do(load_inference, sample_bundle, lambda_context) -> None:
    mod = load_inference()
    given = rows(sample_bundle)
    columns = list(reversed(sample_bundle.manifest.feature_names))
    split = {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in given]}, "explain": True}
    by_split = response_json(post(mod, lambda_context, split))
    by_instances = response_json(post(mod, lambda_context, {"instances": given, "explain": True}))
    check_explanations(by_split)
    assert by_split["explanations"] == by_instances["explanations"]


def test_explain_class_names_the_class_explained_in_every_row(load_inference, sample_bundle, lambda_context) -> None:
    mod = load_inference()
    answer = response_json(post(mod, lambda_context, {"instances": rows(sample_bundle), "explain": True, "explain_class": "Gentoo"}))
    check_explanations(answer, ["Gentoo"] * ROWS)


def test_without_explain_the_answer_is_unchanged(load_inference, sample_bundle, lambda_context) -> None:
    mod = load_inference()
    plain = response_json(post(mod, lambda_context, {"instances": rows(sample_bundle)}))
    off = response_json(post(mod, lambda_context, {"instances": rows(sample_bundle), "explain": False}))
    assert "explanations" not in plain and "explanations" not in off
    assert plain["probabilities"] == off["probabilities"]


@pytest.mark.parametrize(
    "extra, status, reason, field",
    [
        ({"explain": "yes"}, 422, "wrong_type", "explain"),
        ({"explain": 1}, 422, "wrong_type", "explain"),
        ({"explain_class": "Gentoo"}, 422, "bad_shape", None),
        ({"explain": True, "explain_class": "Emperor"}, 422, "wrong_type", "explain_class"),
        ({"explain": True, "explain_class": ["Gentoo"]}, 422, "wrong_type", "explain_class"),
    ],
)
def test_bad_explain_options_are_refused_naming_the_field(
    extra, status, reason, field, load_inference, sample_bundle, lambda_context
) -> None:
    mod = load_inference()
    resp = post(mod, lambda_context, {"instances": rows(sample_bundle), **extra})
    assert resp["statusCode"] == status, resp["body"][:500]
    body = response_json(resp)
    assert body["error"] == reason
    assert [d["field"] for d in body["details"]] == ([field] if field else [])


def test_explaining_past_the_evaluation_cap_is_refused_with_413_saying_how_many_rows_fit(
    load_inference, sample_bundle, lambda_context
) -> None:
    # 64 coalitions x 100 background rows = 6,400 evaluations per row: 2 rows fit in 12,800
    mod = load_inference(explain_max_evaluations="12800")
    assert post(mod, lambda_context, {"instances": rows(sample_bundle, 2), "explain": True})["statusCode"] == 200
    resp = post(mod, lambda_context, {"instances": rows(sample_bundle, 3), "explain": True})
    assert resp["statusCode"] == 413
    body = response_json(resp)
    assert body["error"] == "explain_too_large" and "at most 2 row(s)" in body["message"]
    # the same rows without explain are scored
    assert post(mod, lambda_context, {"instances": rows(sample_bundle, 3)})["statusCode"] == 200


def test_explain_with_an_arrow_answer_is_refused_clearly(load_inference, sample_bundle, lambda_context) -> None:
    mod = load_inference()
    resp = post(mod, lambda_context, {"instances": rows(sample_bundle), "explain": True}, accept=ARROW_STREAM)
    assert resp["statusCode"] == 422
    body = response_json(resp)
    assert body["error"] == "explain_unavailable" and "JSON" in body["message"]


def test_model_says_how_it_explains(load_inference, sample_bundle, lambda_context) -> None:
    mod = load_inference(explain_background_rows="30")
    info = response_json(mod.handler(event("rest_v1", "GET", "/model"), lambda_context))["explain"]
    assert info["background_rows"] == 30 and info["method"] == "exact" and info["coalitions"] == 64
    # the background size shows in the answer too: the base value is the mean over those 30 rows
    answer = response_json(post(mod, lambda_context, {"instances": rows(sample_bundle, 1), "explain": True}))
    check_explanations(answer)


def test_explanations_are_counted_in_metrics(load_inference, sample_bundle, lambda_context, capsys) -> None:
    mod = load_inference()
    capsys.readouterr()
    assert post(mod, lambda_context, {"instances": rows(sample_bundle, 3), "explain": True})["statusCode"] == 200
    assert post(mod, lambda_context, {"instances": rows(sample_bundle, 2)})["statusCode"] == 200
    out = capsys.readouterr().out
    assert [p[0] for p in metric_points(out, mn.ROWS_EXPLAINED)] == [3.0]
    ((latency, _, unit),) = metric_points(out, mn.EXPLAIN_LATENCY_MS)
    assert 0.0 < latency < 10_000 and unit == "Milliseconds"


def test_openapi_describes_the_explain_options_and_the_explanations(load_inference, lambda_context) -> None:
    mod = load_inference()
    doc = response_json(mod.handler(event("rest_v1", "GET", "/openapi.json"), lambda_context))
    op = doc["paths"]["/predict"]["post"]
    forms = op["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    for form in forms:
        assert form["properties"]["explain"]["type"] == "boolean"
        assert "explain_class" in form["properties"]
    answer = op["responses"]["200"]["content"]["application/json"]["schema"]
    item = answer["properties"]["explanations"]["items"]
    assert {"output", "base_value", "values"} <= set(item["required"])
    assert "413" in op["responses"] and "explain" in json.dumps(op["responses"]["413"]).lower()


def test_explanations_vary_with_the_row_and_match_a_direct_explainer(load_inference, sample_bundle, lambda_context) -> None:
    from modelserve.schema import rows_to_table
    from serving.explain import ExplainRequest

    mod = load_inference()
    given = rows(sample_bundle)
    answer = response_json(post(mod, lambda_context, {"instances": given, "explain": True}))
    explainer = mod.function.service.explainer
    table = rows_to_table(sample_bundle.manifest.features, given)
    direct = explainer.explain(table, explainer.explained_classes(np.array(answer["predictions"], dtype=object), ExplainRequest()))
    got = np.array([list(e["values"].values()) for e in answer["explanations"]])
    np.testing.assert_allclose(got, direct.values, atol=1e-9)
    assert np.abs(np.diff(got, axis=0)).max() > 1e-3
