"""What every answer is, whatever the client sent, on all three event kinds (REST v1, HTTP v2, ALB).

Hostile bodies and headers are documented 4xx JSON errors with the request id and model version;
answers stay small whatever the input; every route, method and path shape gets a JSON answer with
a request id; CORS follows the ``cors_origins`` setting; a server bug is a JSON 500, logged.
"""

from __future__ import annotations

import gzip
import json
import logging
from typing import Any

import pytest

from tests.support import EVENT_KINDS, event, header, read_jsonl_gz, response_json

GOOD = {
    "bill_length_mm": 39.1,
    "bill_depth_mm": 18.7,
    "flipper_length_mm": 181.0,
    "body_mass_g": 3750.0,
    "island": "Torgersen",
    "sex": "male",
}
COLUMNS = list(GOOD)
MAX_BODY = 4_000_000  # room for the 3.5 MB key below
SMALL_ANSWER = 32_000  # bytes: an error answer stays this small whatever the request held
JSON_CT = {"content-type": "application/json"}


def _raw(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _row_json(**override: str) -> str:
    """A row as JSON text, values replaced verbatim (so keys and literals JSON has but Python can't dump stay as sent)."""
    parts = [f'"{k}": {override.get(k, json.dumps(v))}' for k, v in GOOD.items()]
    return "{" + ", ".join(parts) + "}"


def _gzip_bomb(size: int) -> bytes:
    return gzip.compress(b'{"instances": [' + b" " * size + b"]}", compresslevel=9)


HUGE_KEY = "k" * 3_500_000

# (case id, path, raw body, extra headers, status, error reason or None for a success)
CASES: list[tuple[str, str, bytes, dict[str, str], int, str | None]] = [
    ("dict_as_column_name", "/predict", _raw({"dataframe_split": {"columns": [{}], "data": []}}), JSON_CT, 422, "bad_shape"),
    (
        "list_as_column_name",
        "/predict",
        _raw({"dataframe_split": {"columns": [["a"], *COLUMNS], "data": [[1, *GOOD.values()]]}}),
        JSON_CT,
        422,
        "bad_shape",
    ),
    (
        "lone_surrogate_key",
        "/predict",
        ('{"instances": [' + _row_json()[:-1] + ', "\\ud800": 1}]}').encode(),
        JSON_CT,
        422,
        "unknown_feature",
    ),
    (
        "lone_surrogate_category",
        "/predict",
        ('{"instances": [' + _row_json(island='"\\udfff"') + "]}").encode(),
        JSON_CT,
        422,
        "wrong_type",
    ),
    ("huge_unknown_key", "/predict", _raw({"instances": [{**GOOD, HUGE_KEY: 1}]}), JSON_CT, 422, "unknown_feature"),
    ("huge_unknown_top_key", "/predict", _raw({HUGE_KEY: 1}), JSON_CT, 422, "bad_shape"),
    (
        "huge_split_extra_key",
        "/predict",
        _raw({"dataframe_split": {"columns": COLUMNS, "data": [], HUGE_KEY: 1}}),
        JSON_CT,
        422,
        "bad_shape",
    ),
    ("huge_category", "/predict", _raw({"instances": [{**GOOD, "island": HUGE_KEY}]}), JSON_CT, 422, "unseen_category"),
    ("beyond_float32", "/predict", ('{"instances": [' + _row_json(body_mass_g="1e39") + "]}").encode(), JSON_CT, 422, "not_finite"),
    (
        "duplicate_key",
        "/predict",
        ('{"instances": [' + _row_json()[:-1] + ', "island": "Dream"}]}').encode(),
        JSON_CT,
        422,
        "duplicate_key",
    ),
    ("duplicate_top_key", "/predict", b'{"instances": [], "instances": [' + _row_json().encode() + b"]}", JSON_CT, 422, "duplicate_key"),
    ("text_plain", "/predict", _raw({"instances": [GOOD]}), {"content-type": "text/plain"}, 415, "unsupported_media_type"),
    ("xml", "/predict", b"<instances/>", {"content-type": "application/xml"}, 415, "unsupported_media_type"),
    (
        "octet_stream_on_predict",
        "/predict",
        _raw({"instances": [GOOD]}),
        {"content-type": "application/octet-stream"},
        415,
        "unsupported_media_type",
    ),
    ("json_with_charset", "/predict", _raw({"instances": [GOOD]}), {"content-type": "application/json; charset=utf-8"}, 200, None),
    ("no_content_type", "/predict", _raw({"instances": [GOOD]}), {}, 200, None),
    ("curl_default_form_type", "/predict", _raw({"instances": [GOOD]}), {"content-type": "application/x-www-form-urlencoded"}, 200, None),
    ("gzip_body", "/predict", gzip.compress(_raw({"instances": [GOOD, GOOD]})), {**JSON_CT, "content-encoding": "gzip"}, 200, None),
    (
        "gzip_two_members",
        "/predict",
        gzip.compress(b'{"instances": [') + gzip.compress(_row_json().encode() + b"]}"),
        {**JSON_CT, "content-encoding": "gzip"},
        200,
        None,
    ),
    ("gzip_bomb", "/predict", _gzip_bomb(50_000_000), {**JSON_CT, "content-encoding": "gzip"}, 413, "body_too_large"),
    ("gzip_corrupt", "/predict", b"\x1f\x8b\x08\x00garbage", {**JSON_CT, "content-encoding": "gzip"}, 400, "malformed_json"),
    (
        "gzip_truncated",
        "/predict",
        gzip.compress(_raw({"instances": [GOOD]}))[:-12],
        {**JSON_CT, "content-encoding": "gzip"},
        400,
        "malformed_json",
    ),
    ("brotli", "/predict", _raw({"instances": [GOOD]}), {**JSON_CT, "content-encoding": "br"}, 415, "unsupported_media_type"),
    (
        "split_index_not_list",
        "/predict",
        _raw({"dataframe_split": {"columns": COLUMNS, "data": [list(GOOD.values())], "index": 3}}),
        JSON_CT,
        422,
        "bad_shape",
    ),
    (
        "split_index_ignored",
        "/predict",
        _raw({"dataframe_split": {"columns": COLUMNS, "data": [list(GOOD.values())], "index": [7, 8, 9]}}),
        JSON_CT,
        200,
        None,
    ),
    (
        "feedback_text_plain",
        "/feedback",
        _raw({"request_id": "r", "label": "Adelie"}),
        {"content-type": "text/plain"},
        415,
        "unsupported_media_type",
    ),
    ("feedback_empty_request_id", "/feedback", _raw({"request_id": "", "label": "Adelie"}), JSON_CT, 422, "wrong_type"),
    ("feedback_duplicate_key", "/feedback", b'{"request_id": "a", "request_id": "b", "label": "Adelie"}', JSON_CT, 422, "duplicate_key"),
    ("feedback_huge_unknown_key", "/feedback", _raw({"request_id": "a", "label": "Adelie", HUGE_KEY: 1}), JSON_CT, 422, "bad_shape"),
    ("feedback_gzip_bomb", "/feedback", _gzip_bomb(50_000_000), {**JSON_CT, "content-encoding": "gzip"}, 413, "body_too_large"),
]


@pytest.fixture
def api(load_inference: Any) -> Any:
    return load_inference(max_batch_rows="10", max_body_bytes=str(MAX_BODY))


def _check_envelope(resp: dict[str, Any], kind: str, ev: dict[str, Any]) -> dict[str, Any] | None:
    """Every answer: JSON (unless HEAD), x-request-id (API Gateway's own where it has one) equal to the body's, model headers."""
    rid = header(resp, "x-request-id")
    assert rid, resp
    if kind != "alb":
        assert rid == ev["requestContext"]["requestId"]
    assert header(resp, "x-model-version") and header(resp, "x-model-name")
    if not resp.get("body"):
        return None
    assert (header(resp, "content-type") or "").startswith("application/json"), resp
    body = response_json(resp)
    if isinstance(body, dict) and "openapi" not in body:  # the OpenAPI document is FastAPI's own
        assert body["request_id"] == rid
        assert body.get("model_version", body.get("version")) == header(resp, "x-model-version")
    return body


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_hostile_input_gets_a_documented_answer(case: Any, kind: str, api: Any, lambda_context: Any) -> None:
    _, path, raw, headers, status, reason = case
    ev = event(kind, "POST", path, raw=raw, headers=headers)
    if "content-type" not in headers:
        for h in ("headers", "multiValueHeaders"):
            (ev.get(h) or {}).pop("content-type", None)
    resp = api.handler(ev, lambda_context)
    assert resp["statusCode"] == status, resp["body"][:500]
    body = _check_envelope(resp, kind, ev)
    assert body is not None
    if reason is None:
        assert len(body["predictions"]) >= 1
        return
    assert body["error"] == reason
    assert body["message"] and isinstance(body["details"], list)
    assert len(resp["body"]) < SMALL_ANSWER, f"{len(resp['body'])} bytes answered"


# (case id, method, path, status, Allow header expected or None)
ROUTES = [
    ("health", "GET", "/health", 200, None),
    ("model", "GET", "/model", 200, None),
    ("openapi", "GET", "/openapi.json", 200, None),
    ("head_health", "HEAD", "/health", 200, None),
    ("head_model", "HEAD", "/model", 200, None),
    ("health_trailing_slash", "GET", "/health/", 200, None),
    ("unknown_path", "GET", "/nope", 404, None),
    ("unknown_deep_path", "POST", "/predict/x/y", 404, None),
    ("get_predict", "GET", "/predict", 405, "POST"),
    ("delete_predict", "DELETE", "/predict", 405, "POST"),
    ("put_health", "PUT", "/health", 405, "GET, HEAD"),
    ("options_without_cors", "OPTIONS", "/predict", 405, "POST"),
    ("head_predict", "HEAD", "/predict", 405, "POST"),
    ("trace", "TRACE", "/health", 405, "GET, HEAD"),
]


@pytest.mark.parametrize("route", ROUTES, ids=[r[0] for r in ROUTES])
@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_every_route_and_method_answers_json_with_a_request_id(route: Any, kind: str, api: Any, lambda_context: Any) -> None:
    _, method, path, status, allow = route
    ev = event(kind, method, path)
    resp = api.handler(ev, lambda_context)
    assert resp["statusCode"] == status, resp
    body = _check_envelope(resp, kind, ev)
    if method == "HEAD":
        assert not resp.get("body")
    else:
        assert body is not None
    if status >= 400 and body is not None:
        assert body["error"] in ("not_found", "method_not_allowed") and body["message"] and body["details"] == []
    if allow:
        assert {m.strip() for m in (header(resp, "allow") or "").split(",")} == {m.strip() for m in allow.split(",")}


@pytest.mark.parametrize("kind", EVENT_KINDS)
@pytest.mark.parametrize("path", ["/predict/", "/predict//"])
def test_trailing_slash_is_answered_in_place_never_redirected(kind: str, path: str, api: Any, lambda_context: Any) -> None:
    resp = api.handler(event(kind, "POST", path, {"instances": [GOOD]}), lambda_context)
    assert resp["statusCode"] == 200 and header(resp, "location") is None
    assert response_json(resp)["predictions"]


ORIGIN = "https://app.example.com"


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_cors_follows_the_setting(kind: str, load_inference: Any, lambda_context: Any) -> None:
    api = load_inference(cors_origins=json.dumps([ORIGIN]))
    preflight = {"origin": ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": "content-type,x-api-key"}
    resp = api.handler(event(kind, "OPTIONS", "/predict", headers=preflight), lambda_context)
    assert resp["statusCode"] == 200
    assert header(resp, "access-control-allow-origin") == ORIGIN
    assert "POST" in header(resp, "access-control-allow-methods")
    assert "x-api-key" in header(resp, "access-control-allow-headers").lower()
    assert header(resp, "x-request-id")

    resp = api.handler(event(kind, "POST", "/predict", {"instances": [GOOD]}, headers={"origin": ORIGIN}), lambda_context)
    assert resp["statusCode"] == 200 and header(resp, "access-control-allow-origin") == ORIGIN
    assert "x-request-id" in header(resp, "access-control-expose-headers")

    other = {**preflight, "origin": "https://evil.example"}
    resp = api.handler(event(kind, "OPTIONS", "/predict", headers=other), lambda_context)
    assert resp["statusCode"] == 400 and header(resp, "access-control-allow-origin") is None
    _check_envelope(resp, kind, {"requestContext": {"requestId": header(resp, "x-request-id")}})
    resp = api.handler(event(kind, "POST", "/predict", {"instances": [GOOD]}, headers={"origin": "https://evil.example"}), lambda_context)
    assert resp["statusCode"] == 200 and header(resp, "access-control-allow-origin") is None


def test_no_cors_headers_by_default(api: Any, lambda_context: Any) -> None:
    resp = api.handler(event("rest_v1", "POST", "/predict", {"instances": [GOOD]}, headers={"origin": ORIGIN}), lambda_context)
    assert resp["statusCode"] == 200 and header(resp, "access-control-allow-origin") is None


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_a_lone_surrogate_category_is_refused_even_when_unseen_categories_pass(kind: str, load_inference: Any, lambda_context: Any) -> None:
    api = load_inference(unseen_category_policy="model")
    raw = ('{"instances": [' + _row_json(island='"\\ud800"') + "]}").encode()
    resp = api.handler(event(kind, "POST", "/predict", raw=raw), lambda_context)
    assert resp["statusCode"] == 422
    assert response_json(resp)["details"][0]["field"] == "island"


class _BrokenRunner:
    """A fault in our own code path (the model call): what a server bug looks like from outside."""

    def predict(self, table: Any) -> Any:
        raise RuntimeError("injected fault")


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_a_server_bug_is_a_json_500_with_the_request_id_and_a_log_line(kind: str, api: Any, lambda_context: Any, caplog: Any) -> None:
    api.service.runner = _BrokenRunner()
    ev = event(kind, "POST", "/predict", {"instances": [GOOD]})
    with caplog.at_level(logging.ERROR):
        resp = api.handler(ev, lambda_context)
    assert resp["statusCode"] == 500
    body = _check_envelope(resp, kind, ev)
    assert body is not None and body["error"] == "internal_error" and body["request_id"] in body["message"]
    assert any("injected fault" in (r.exc_text or "") and body["request_id"] in r.getMessage() for r in caplog.records)


def test_openapi_documents_every_status_each_route_answers(api: Any, lambda_context: Any) -> None:
    spec = response_json(api.handler(event("rest_v1", "GET", "/openapi.json"), lambda_context))
    statuses = {(p, m): set(op["responses"]) for p, ops in spec["paths"].items() for m, op in ops.items()}
    assert statuses[("/predict", "post")] == {"200", "400", "413", "415", "422", "500"}
    assert statuses[("/feedback", "post")] == {"202", "400", "409", "413", "415", "422", "503", "500"}
    assert statuses[("/health", "get")] == statuses[("/model", "get")] == {"200", "500"}
    feedback = spec["paths"]["/feedback"]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"][0]
    assert feedback["properties"]["request_id"] == {
        "type": "string",
        "minLength": 1,
        "maxLength": 128,
        "pattern": "^[^\\u0000-\\u001f\\u007f]*$",
        "description": "the request_id of the prediction",
    }
    assert feedback["additionalProperties"] is False
    split = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"][1]
    columns = split["properties"]["dataframe_split"]["properties"]["columns"]
    assert columns["minItems"] == len(COLUMNS) and columns["uniqueItems"] is True
    assert [c["const"] for c in columns["prefixItems"]] == COLUMNS


# --- nothing scored is lost ------------------------------------------------------------------------

BUCKET = "contract-captures"
F32 = 3.4028234663852886e38

# every class of value validation accepts, one request each (the model may overflow on some: those
# records are flagged and carry strings, but are written)
ACCEPTED_VALUES = {
    "plain": {},
    "integers": {"flipper_length_mm": 181, "body_mass_g": 3750},
    "nulls_where_nullable": {"bill_length_mm": None, "sex": None},
    "float32_max": {"body_mass_g": F32, "bill_length_mm": F32},
    "float32_min": {"body_mass_g": -F32, "flipper_length_mm": -F32},
    "mixed_extremes": {"body_mass_g": F32, "flipper_length_mm": -F32},
    "exact_integer_limit": {"body_mass_g": 2**53},
    "subnormal": {"bill_depth_mm": 5e-324},
    "negative_zero": {"bill_depth_mm": -0.0},
    "unseen_category_passed_to_model": {"island": "Atlantis"},
    "unicode_category": {"island": "Île ✓ 🐧"},
    "long_category": {"island": "x" * 100_000},
}


@pytest.mark.parametrize("kind", EVENT_KINDS)
@pytest.mark.capture_sink("s3")  # reads the s3 sink's object per request
def test_every_accepted_value_class_is_captured(kind: str, s3: Any, load_inference: Any, lambda_context: Any, capsys: Any) -> None:
    s3.create_bucket(Bucket=BUCKET)
    api = load_inference(capture_bucket=BUCKET, unseen_category_policy="model", max_body_bytes=str(MAX_BODY))
    answered = {}
    for case, override in ACCEPTED_VALUES.items():
        raw = json.dumps({"instances": [{**GOOD, **override}, GOOD]}).encode()
        resp = api.handler(event(kind, "POST", "/predict", raw=raw), lambda_context)
        assert resp["statusCode"] == 200, (case, resp["body"][:300])
        answered[response_json(resp)["request_id"]] = case
    stored = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for o in page.get("Contents", []):
            records = read_jsonl_gz(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read())
            stored[records[0]["request_id"]] = records
    assert set(stored) == set(answered), "every scored request has its capture object"
    assert all(len(records) == 2 for records in stored.values())
    assert "CaptureErrors" not in capsys.readouterr().out.replace('"CaptureErrors": 0', "")
    for rid, records in stored.items():
        flagged = [r for r in records if r.get("encoding_fallback")]
        for r in flagged:  # the values JSON cannot carry are strings; the rest as usual
            assert any(isinstance(v, str) for v in [*(r["probabilities"] or {}).values(), r["prediction"]])
        assert not records[1].get("encoding_fallback"), answered[rid]  # the plain row of each request is untouched
