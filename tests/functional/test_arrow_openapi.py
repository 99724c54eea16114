"""The OpenAPI document says what /predict reads as Arrow: the served document's Arrow body (media type,
columns and the Arrow types each accepts, its example) is taken at its word, and the real handler
answers what it promises, on REST v1, HTTP v2 and ALB events."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.support import EVENT_KINDS, event, response_json

ARROW = "application/vnd.apache.arrow.stream"
# each Arrow type the document names, as pyarrow writes it
PA_TYPES = {
    "int8..int64": ["int8", "int16", "int32", "int64"],
    "uint8..uint64": ["uint8", "uint16", "uint32", "uint64"],
    "float16": ["float16"],
    "float32": ["float32"],
    "float64": ["float64"],
    "utf8": ["string"],
    "large_utf8": ["large_string"],
    "bool": ["bool_"],
}


@pytest.fixture(scope="module")
def document(sample_bundle: Any) -> dict[str, Any]:
    from modelserve.settings import ServingSettings
    from serving.api import create_app
    from serving.wiring import inference_service

    app = create_app(inference_service(sample_bundle, ServingSettings(), {}), 3_100_000)
    return dict(app.openapi())


def _arrow_body(document: dict[str, Any]) -> dict[str, Any]:
    return dict(document["paths"]["/predict"]["post"]["requestBody"]["content"][ARROW])


def _stream(table: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _post(api: Any, ctx: Any, kind: str, body: bytes, media: str = ARROW) -> dict[str, Any]:
    return dict(api.handler(event(kind, "POST", "/predict", raw=body, headers={"content-type": media}), ctx))


def test_the_document_declares_every_body_the_server_reads_and_no_other(document: dict[str, Any], load_inference: Any) -> None:
    from serving.codecs import CODECS, PREDICT

    api = load_inference()
    declared = set(document["paths"]["/predict"]["post"]["requestBody"]["content"])
    route = CODECS.route(PREDICT, api.service, 1_000_000)
    assert declared == set(route.media_types) == {"application/json", ARROW}
    body = _arrow_body(document)
    assert body["schema"]["format"] == "binary" and body["schema"]["contentMediaType"] == ARROW
    assert [c["name"] for c in body["x-arrow-columns"]] == api.manifest.feature_names


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_every_arrow_type_the_document_names_is_read_and_scored_as_json_is(
    kind: str, document: dict[str, Any], load_inference: Any, sample_bundle: Any, lambda_context: Any
) -> None:
    import pyarrow as pa

    api = load_inference()
    rows = [dict(r["inputs"]) for r in sample_bundle.reference_rows()[:3] if None not in r["inputs"].values()]
    expected = response_json(api.handler(event(kind, "POST", "/predict", {"instances": rows}), lambda_context))
    columns = _arrow_body(document)["x-arrow-columns"]
    tried = 0
    for column in columns:
        names = [t for part in re.split(r", | or ", column["arrow_types"]) for t in PA_TYPES.get(part.split(" ")[0], [])]
        assert names, column  # every type the document names is one this test writes
        for name in names:
            arrays = {c["name"]: pa.array([r[c["name"]] for r in rows]) for c in columns}
            values = [r[column["name"]] for r in rows]
            if column["kind"] == "numeric" and name.startswith(("int", "uint")):
                values = [round(v) % 100 for v in values]  # whole values an int8 holds too
            typed = pa.array(values, getattr(pa, name)())
            if "dictionary" in column["arrow_types"] and name == "string":
                arrays[column["name"]] = typed.dictionary_encode()  # pandas' category, as the document says
                _check(api, lambda_context, kind, pa.table(arrays), expected, column["kind"] == "numeric")
            arrays[column["name"]] = typed
            _check(api, lambda_context, kind, pa.table(arrays), expected, column["kind"] == "numeric")
            tried += 1
    assert tried >= 10


def _check(api: Any, ctx: Any, kind: str, table: Any, expected: dict[str, Any], changed_values: bool) -> None:
    resp = _post(api, ctx, kind, _stream(table))
    assert resp["statusCode"] == 200, (table.schema, resp["body"])
    if not changed_values:
        assert response_json(resp)["predictions"] == expected["predictions"]


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_the_documented_example_is_a_body_the_server_scores_and_a_nested_column_is_the_documented_400(
    kind: str, document: dict[str, Any], load_inference: Any, lambda_context: Any
) -> None:
    import pyarrow as pa

    api = load_inference()
    example = _arrow_body(document)["examples"]["pyarrow"]["description"]
    code = example.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(code, scope)  # the document's own example, run as written
    resp = _post(api, lambda_context, kind, scope["body"])
    assert resp["statusCode"] == 200, resp["body"]
    assert len(response_json(resp)["predictions"]) == 1

    nested = pa.table({"island": pa.array([["Dream"]])})
    resp = _post(api, lambda_context, kind, _stream(nested))
    assert resp["statusCode"] == 400 and response_json(resp)["error"] == "malformed_arrow"
    assert "malformed_arrow" in _arrow_body(document)["schema"]["description"]
    assert json.dumps(document)  # the document stays JSON
