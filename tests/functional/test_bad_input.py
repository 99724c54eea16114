"""Every bad input is a clear 4xx naming the row and field; nothing a client sends is a 5xx."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import event, header, response_json

GOOD = {
    "bill_length_mm": 39.1,
    "bill_depth_mm": 18.7,
    "flipper_length_mm": 181.0,
    "body_mass_g": 3750.0,
    "island": "Torgersen",
    "sex": "male",
}


def _with(**changes):
    row = dict(GOOD)
    for k, v in changes.items():
        if v is _DROP:
            row.pop(k)
        else:
            row[k] = v
    return row


_DROP = object()

# (case id, raw body, status, error reason, row, field)
CASES = [
    ("malformed_json", b'{"instances": [', 400, "malformed_json", None, None),
    ("not_utf8", b"\xff\xfe\x00", 400, "malformed_json", None, None),
    ("body_not_object", b"[1, 2]", 422, "bad_shape", None, None),
    ("unknown_top_level_key", json.dumps({"rows": [GOOD]}).encode(), 422, "bad_shape", None, None),
    ("instances_not_list", json.dumps({"instances": GOOD}).encode(), 422, "bad_shape", None, None),
    ("row_not_object", json.dumps({"instances": [GOOD, [1, 2]]}).encode(), 422, "bad_shape", 1, None),
    ("empty_batch", json.dumps({"instances": []}).encode(), 422, "empty_batch", None, None),
    ("too_large_batch", json.dumps({"instances": [GOOD] * 11}).encode(), 422, "batch_too_large", None, None),
    ("missing_feature", json.dumps({"instances": [GOOD, _with(island=_DROP)]}).encode(), 422, "missing_feature", 1, "island"),
    ("unknown_feature", json.dumps({"instances": [_with(colour="red")]}).encode(), 422, "unknown_feature", 0, "colour"),
    ("string_for_number", json.dumps({"instances": [_with(body_mass_g="heavy")]}).encode(), 422, "wrong_type", 0, "body_mass_g"),
    ("bool_for_number", json.dumps({"instances": [_with(body_mass_g=True)]}).encode(), 422, "wrong_type", 0, "body_mass_g"),
    ("number_for_category", json.dumps({"instances": [_with(island=3)]}).encode(), 422, "wrong_type", 0, "island"),
    ("nan", b'{"instances": [' + json.dumps(GOOD).replace("39.1", "NaN").encode() + b"]}", 422, "not_finite", 0, "bill_length_mm"),
    (
        "infinity",
        b'{"instances": [' + json.dumps(GOOD).replace("39.1", "-Infinity").encode() + b"]}",
        422,
        "not_finite",
        0,
        "bill_length_mm",
    ),
    (
        "overflowing_number",
        b'{"instances": [' + json.dumps(GOOD).replace("39.1", "1e999").encode() + b"]}",
        422,
        "not_finite",
        0,
        "bill_length_mm",
    ),
    ("null_not_nullable", json.dumps({"instances": [GOOD, GOOD, _with(island=None)]}).encode(), 422, "null_not_allowed", 2, "island"),
    ("unseen_category", json.dumps({"instances": [_with(island="Atlantis")]}).encode(), 422, "unseen_category", 0, "island"),
    (
        "split_missing_column",
        json.dumps({"dataframe_split": {"columns": ["island"], "data": [["Dream"]]}}).encode(),
        422,
        "missing_feature",
        None,
        "bill_length_mm",
    ),
    (
        "split_ragged_row",
        json.dumps({"dataframe_split": {"columns": list(GOOD), "data": [list(GOOD.values())[:3]]}}).encode(),
        422,
        "bad_shape",
        0,
        None,
    ),
    ("oversize_body", b'{"instances": [' + b" " * 70_000 + b"]}", 413, "body_too_large", None, None),
]


@pytest.fixture
def handler(load_inference):
    return load_inference(max_batch_rows="10", max_body_bytes="65536").handler


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("kind", ["rest_v1", "http_v2"])
def test_bad_input_gets_a_clear_4xx(case, kind, handler, lambda_context) -> None:
    _, raw, status, reason, row, field = case
    resp = handler(event(kind, "POST", "/predict", raw=raw), lambda_context)
    assert resp["statusCode"] == status, resp["body"]
    body = response_json(resp)
    assert body["error"] == reason
    assert body["message"]
    assert body["model_version"]
    if row is not None or field is not None:
        assert {"row": row, "field": field} in [{"row": d["row"], "field": d["field"]} for d in body["details"]]


def test_nullable_features_accept_null(handler, lambda_context) -> None:
    row = _with(sex=None, bill_length_mm=None)
    resp = handler(event("rest_v1", "POST", "/predict", {"instances": [row]}), lambda_context)
    assert resp["statusCode"] == 200


def test_unseen_category_can_be_passed_to_the_model_by_setting(load_inference, lambda_context) -> None:
    handler = load_inference(unseen_category_policy="model").handler
    resp = handler(event("rest_v1", "POST", "/predict", {"instances": [_with(island="Atlantis")]}), lambda_context)
    assert resp["statusCode"] == 200
    assert len(response_json(resp)["predictions"]) == 1


def test_unknown_route_and_method_are_4xx_with_the_model_version(handler, lambda_context) -> None:
    for method, path, status in (("GET", "/nope", 404), ("GET", "/predict", 405)):
        resp = handler(event("rest_v1", method, path), lambda_context)
        assert resp["statusCode"] == status
        assert response_json(resp)["model_version"] == header(resp, "x-model-version")


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
feature_values = st.one_of(
    st.none(), st.booleans(), st.floats(), st.integers(), st.text(max_size=10), st.sampled_from(["Dream", "Biscoe", "male"])
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=json_values
    | st.fixed_dictionaries({"instances": st.lists(st.dictionaries(st.sampled_from(list(GOOD) + ["x"]), feature_values), max_size=3)})
)
def test_random_json_never_gets_a_5xx(payload, handler, lambda_context) -> None:
    raw = json.dumps(payload, allow_nan=True).encode()
    resp = handler(event("rest_v1", "POST", "/predict", raw=raw), lambda_context)
    assert resp["statusCode"] < 500, resp["body"]
    assert resp["statusCode"] in (200, 400, 413, 422)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=json_values
    | st.fixed_dictionaries(
        {
            "dataframe_split": st.fixed_dictionaries(
                {
                    "columns": st.lists(st.sampled_from(list(GOOD) + ["x", 1]), max_size=7),
                    "data": st.lists(st.lists(feature_values, max_size=7), max_size=3),
                }
            )
        }
    )
)
def test_random_split_payloads_never_get_a_5xx(payload, handler, lambda_context) -> None:
    resp = handler(event("http_v2", "POST", "/predict", raw=json.dumps(payload, allow_nan=True).encode()), lambda_context)
    assert resp["statusCode"] in (200, 400, 413, 422), resp["body"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=json_values
    | st.lists(st.dictionaries(st.sampled_from(["request_id", "row", "label", "x"]), json_values, max_size=4), max_size=3)
)
def test_random_feedback_never_gets_a_5xx(payload, handler, lambda_context) -> None:
    resp = handler(event("rest_v1", "POST", "/feedback", raw=json.dumps(payload, allow_nan=True).encode()), lambda_context)
    # no bucket in this fixture: valid feedback is a 503 (storage not configured), never a 500
    assert resp["statusCode"] in (202, 400, 413, 422, 503), resp["body"]
