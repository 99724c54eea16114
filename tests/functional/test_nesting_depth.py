"""JSON nested past the documented depth (64) is a 400 on every JSON route and every event kind; below
it, nesting is never the reason and never a 5xx. orjson reads 1,024 levels but writes 254: without the
limit, bodies 255..1,024 levels deep were a 500 (a 510-byte body paging on-call)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from serving.validation import MAX_JSON_DEPTH, json_depth
from tests.support import EVENT_KINDS, event, response_json

GOOD = {
    "bill_length_mm": 39.1,
    "bill_depth_mm": 18.7,
    "flipper_length_mm": 181.0,
    "body_mass_g": 3750.0,
    "island": "Torgersen",
    "sex": "male",
}
ROUTES = ("/predict", "/feedback", "/v2/models/penguins/infer")


def _nested(depth: int, shape: str) -> bytes:
    """A JSON text exactly ``depth`` levels deep."""
    if shape == "arrays":
        return b"[" * depth + b"]" * depth
    if shape == "objects":
        return b'{"a":' * depth + b"1" + b"}" * depth
    # a well-formed request with the nesting inside one feature's value (instances, row object: 2 levels)
    inner = "[" * (depth - 3) + "]" * (depth - 3) if depth > 3 else "1"
    return json.dumps({"instances": [GOOD]}).replace('"Torgersen"', inner).encode()


def _refusal(resp: dict[str, Any], route: str) -> str:
    body = response_json(resp)
    return body["error"] if route != ROUTES[2] else body["error"].split(":")[0]


@pytest.fixture
def handler(load_inference: Any) -> Any:
    return load_inference().handler


@pytest.mark.slow
@pytest.mark.parametrize("kind", EVENT_KINDS)
@pytest.mark.parametrize("route", ROUTES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=st.integers(1, 1100), shape=st.sampled_from(["arrays", "objects", "in_a_value"]))
@example(depth=MAX_JSON_DEPTH, shape="arrays")
@example(depth=MAX_JSON_DEPTH + 1, shape="arrays")
@example(depth=255, shape="arrays")
@example(depth=1024, shape="objects")
@example(depth=1025, shape="arrays")
@example(depth=1100, shape="in_a_value")
def test_nesting_depth_decides_a_400_and_nothing_is_a_5xx(
    kind: str, route: str, depth: int, shape: str, handler: Any, lambda_context: Any
) -> None:
    resp = handler(event(kind, "POST", route, raw=_nested(depth, shape), headers={"content-type": "application/json"}), lambda_context)
    assert resp["statusCode"] < 500, resp["body"]
    if depth > MAX_JSON_DEPTH:
        assert resp["statusCode"] == 400, resp["body"]
        assert "nesting_too_deep" in resp["body"] or "nests" in response_json(resp)["error"]
    else:
        assert "nests" not in resp["body"]
        assert resp["statusCode"] in (400, 422), resp["body"]


# (case, route, body): the 510-byte body and its neighbours, on every event kind
TABLE = [
    ("510 bytes, 255 deep, predict", "/predict", b"[" * 255 + b"]" * 255, 400, "nesting_too_deep"),
    ("510 bytes, 255 deep, feedback", "/feedback", b"[" * 255 + b"]" * 255, 400, "nesting_too_deep"),
    ("1,024 deep objects, predict", "/predict", _nested(1024, "objects"), 400, "nesting_too_deep"),
    ("65 deep inside a row", "/predict", _nested(65, "in_a_value"), 400, "nesting_too_deep"),
    ("64 deep inside a row: a wrong type", "/predict", _nested(64, "in_a_value"), 422, "wrong_type"),
    ("2,000 deep, past the stdlib's recursion too", "/predict", b"[" * 2000 + b"]" * 2000, 400, "nesting_too_deep"),
]


@pytest.mark.parametrize("case", TABLE, ids=[c[0] for c in TABLE])
@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_deep_bodies_answer_their_table_status(
    kind: str, case: tuple[str, str, bytes, int, str], handler: Any, lambda_context: Any
) -> None:
    _, route, raw, status, reason = case
    resp = handler(event(kind, "POST", route, raw=raw), lambda_context)
    assert resp["statusCode"] == status, resp["body"]
    assert response_json(resp)["error"] == reason


def test_oip_refuses_deep_json_in_its_own_error_shape(handler: Any, lambda_context: Any) -> None:
    for kind in EVENT_KINDS:
        resp = handler(
            event(kind, "POST", ROUTES[2], raw=_nested(300, "arrays"), headers={"content-type": "application/json"}), lambda_context
        )
        assert resp["statusCode"] == 400
        body = response_json(resp)
        assert set(body) == {"error"} and "65" not in body["error"] and "300 levels" in body["error"]


@pytest.mark.parametrize(
    "text",
    [
        '"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["',
        '{"a\\"[[[": [{"b\\\\": "]]]]"}]}',
        "[" * 10 + '"\\u005b\\\\"' + "]" * 10,
        '{"k": "' + "{" * 200 + '", "l": [1, [2, [3]]]}',
    ],
)
def test_brackets_inside_strings_do_not_count_toward_the_depth(text: str) -> None:
    def walk(v: Any) -> int:
        return 1 + max(map(walk, v.values() if isinstance(v, dict) else v), default=0) if isinstance(v, dict | list) else 0

    assert json_depth(text.encode()) == walk(json.loads(text))
