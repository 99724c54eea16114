"""The OpenAPI document of the inference API: each operation's request body and answers, generated from
the bundle's feature schema so the document says exactly what validation accepts (checked by the
schemathesis run, tests/functional/test_schemathesis.py).

The document is built when it is first asked for (``GET /openapi.json``, ``/docs``), not at init:
each route declares an ``Operation`` whose ``doc`` is called then. ``openapi_document`` assembles them
as FastAPI did (same operation ids, default answers and merge rules; tests/unit/test_openapi_document.py
holds it to FastAPI's own generator), without importing a web framework or pydantic's OpenAPI models.
"""

from __future__ import annotations

import copy
import html
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from modelserve.schema import BundleManifest, FeatureKind, InputDtype, LabelType, Task, class_key

from . import oip
from .validation import FLOAT32_MAX, MAX_EXACT_INTEGER

OIP_TAG = "Open Inference Protocol v2"

_ERROR_DESCRIPTIONS = {
    400: "Malformed JSON (or nested more than 64 levels deep), or a corrupt gzip body",
    409: 'A label other than the one the row holds, without "replace": true and a reason',
    413: "Body over max_body_bytes (compressed, or once decompressed); on /predict also explain_too_large: "
    "rows x coalitions x background rows over explain_max_evaluations",
    415: "A content-type other than JSON, or a content-encoding other than gzip",
    422: "Invalid input: the details name the row and field",
    503: "Feedback storage unavailable or not configured: the labels were not stored",
    500: "A server bug (never client input): quote the request id",
}
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "reason code"},
        "message": {"type": "string"},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "row": {"type": ["integer", "null"]},
                    "field": {"type": ["string", "null"]},
                    "reason": {"type": "string"},
                    "message": {"type": "string"},
                },
                "required": ["row", "field", "reason", "message"],
            },
        },
        "request_id": {"type": "string"},
        "model_version": {"type": "string"},
    },
    "required": ["error", "message", "details", "request_id", "model_version"],
}
_HEALTH_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"const": "ok"},
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "request_id": {"type": "string"},
    },
    "required": ["status", "model_name", "model_version", "request_id"],
}
_MODEL_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "model_name": {"type": "string"},
        "version": {"type": "string"},
        "features": {"type": "array", "items": {"type": "object"}},
        "request_id": {"type": "string"},
    },
    "required": ["model_name", "version", "features", "request_id"],
}
_FEEDBACK_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {"accepted": {"type": "integer", "minimum": 1}, "feedback_id": {"type": "string"}},
    "required": ["accepted", "feedback_id"],
}


# on every answer (AnswerGuard): the request id to quote, and the model that answered
_SERVED_HEADERS = {
    "x-request-id": {
        "description": "the request's id: on a prediction, the id /feedback names (signed: it carries the prediction's time "
        "and row count); on other answers API Gateway's own",
        "schema": {"type": "string"},
    },
    "x-model-version": {"description": "the version of the model that answered", "schema": {"type": "string"}},
    "x-model-name": {"description": "the served model", "schema": {"type": "string"}},
}


def _answer(description: str, content: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "headers": _SERVED_HEADERS, "content": content}


def _responses(m: BundleManifest, success: dict[int, tuple[str, dict[str, Any]]], *errors: int) -> dict[int | str, dict[str, Any]]:
    """An operation's documented answers: its success, its error statuses and a server bug's 500, all JSON."""
    out: dict[int | str, dict[str, Any]] = {
        status: _answer(text, {"application/json": {"schema": schema}}) for status, (text, schema) in success.items()
    }
    for status in (*errors, 500):
        out[status] = _answer(_ERROR_DESCRIPTIONS[status], {"application/json": {"schema": _ERROR_SCHEMA}})
    return out


_LABEL_JSON_TYPES = {None: "string", LabelType.STRING: "string", LabelType.INTEGER: "integer", LabelType.BOOLEAN: "boolean"}


def _predict_answer_schema(m: BundleManifest) -> dict[str, Any]:
    label = {"type": _LABEL_JSON_TYPES[m.outputs.label_type]} if m.outputs.task is Task.CLASSIFICATION else {"type": ["number", "null"]}
    props: dict[str, Any] = {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "request_id": {"type": "string"},
        "predictions": {"type": "array", "items": label, "minItems": 1},
    }
    if m.outputs.task is Task.CLASSIFICATION:
        props["classes"] = {"type": "array", "items": label}
        props["probabilities"] = {"type": "array", "items": {"type": "array", "items": {"type": ["number", "null"]}}}
    props["explanations"] = _explanations_schema(m)
    return {"type": "object", "properties": props, "required": ["model_name", "model_version", "request_id", "predictions"]}


# explain_class is read with explain: true only (else refused, 422 bad_shape)
_EXPLAIN_CLASS_NEEDS_EXPLAIN: dict[str, Any] = {
    "if": {"required": ["explain_class"]},
    "then": {"required": ["explain"], "properties": {"explain": {"const": True}}},
}


def _explain_options(m: BundleManifest) -> dict[str, Any]:
    """The request's explanation options (serving/explain.py), next to ``instances`` or ``dataframe_split``."""
    options: dict[str, Any] = {
        "explain": {
            "type": "boolean",
            "default": False,
            "description": "Add `explanations`: each row's exact Shapley values against the reference sample (GET /model: `explain`)",
        }
    }
    if m.outputs.task is Task.CLASSIFICATION:
        options["explain_class"] = {
            "enum": _label_schema(m)["enum"],
            "description": "With explain: the class whose probability is explained in every row (default: each row's predicted class)",
        }
    else:
        options["explain_class"] = {"not": {}, "description": "Classifiers only"}
    return options


# null where the model answers a value JSON cannot carry (a non-finite probability on extreme but valid inputs)
_NUMBER_OR_NULL: dict[str, Any] = {"type": ["number", "null"]}


def _explanations_schema(m: BundleManifest) -> dict[str, Any]:
    contributions = {
        "type": "object",
        "properties": {name: _NUMBER_OR_NULL for name in m.feature_names},
        "required": m.feature_names,
        "additionalProperties": False,
    }
    item: dict[str, Any] = {
        "type": "object",
        "properties": {
            "output": {**_NUMBER_OR_NULL, "description": "the explained output: the class's probability, or the prediction"},
            "base_value": {**_NUMBER_OR_NULL, "description": "its mean over the background rows; base_value + sum(values) = output"},
            "values": {**contributions, "description": "each feature's contribution"},
            "method": {"enum": ["exact", "permutation"]},
            "class": {"type": "string", "description": "the explained class (classifiers)"},
            "error_bound": {**contributions, "description": "permutation only: the 95 % confidence half-width of each value"},
        },
        "required": ["output", "base_value", "values", "method"],
    }
    return {"type": "array", "items": item, "description": "with explain: true, one per row in the request's order"}


def _value_schema(f: Any, reject_unseen: bool) -> dict[str, Any]:
    """What validation accepts for one feature's value (validation.py), as JSON Schema."""
    if f.kind is FeatureKind.NUMERIC:
        if f.input_dtype is InputDtype.INT64:
            s: dict[str, Any] = {"type": "integer", "minimum": -MAX_EXACT_INTEGER, "maximum": MAX_EXACT_INTEGER}
        elif f.input_dtype is InputDtype.FLOAT32:
            s = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
        else:
            s = {"type": "number"}
    elif f.kind is FeatureKind.BOOLEAN:
        s = {"type": "boolean"}
    elif reject_unseen:
        s = {"type": "string", "enum": list(f.categories)}
    else:
        s = {"type": "string"}
    if f.nullable:
        s = {"anyOf": [s, {"type": "null"}]}
    return s


_OIP_ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_OIP_ERRORS = {
    400: "Malformed request: not JSON, no inputs, unknown input, datatype or shape mismatch, binary section errors",
    404: "Unknown model or version",
    413: "Body over max_body_bytes",
    415: "A content-type other than JSON or application/octet-stream",
    422: "Values validation refuses (the message starts with the reason code)",
}


def _oip_infer_request_schema(m: BundleManifest) -> dict[str, Any]:
    """An infer request's JSON: the whole body, or the binary extension's JSON header (its tensors then carry
    ``parameters.binary_data_size`` instead of ``data``).

    As tight as JSON Schema can say: input and output names, datatypes, shapes of rank 1 or 2, flat or
    nested data of scalars, OIP's scalar-valued parameters. What it can't say (a shape agreeing with the
    data's length, one input per feature, each datatype matching its feature) the server refuses with
    400 and 422, as documented."""
    metadata = oip.model_metadata(m)  # the names the server's own metadata announces
    inputs = [t["name"] for t in metadata["inputs"]]
    scalar = {"type": ["number", "string", "boolean", "null"]}
    params = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string", "enum": inputs},
            "shape": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": sorted({*oip.DTYPES, "BYTES"})},
            "parameters": params,
            "data": {"type": "array", "items": {"anyOf": [scalar, {"type": "array", "items": scalar}]}},
        },
    }
    output = {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string", "enum": [t["name"] for t in metadata["outputs"]]}, "parameters": params},
    }
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": params,
            "inputs": {"type": "array", "minItems": 1, "items": tensor},
            "outputs": {"type": "array", "items": output},
        },
    }


def _oip_infer_body(m: BundleManifest, other_bodies: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The infer body: OIP JSON, and the bodies the route's codecs read besides (``Codec.openapi_body``: Triton's binary extension)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": _oip_infer_request_schema(m)}, **other_bodies}}}


INFERENCE_HEADER_DESCRIPTION = (
    "Triton's binary tensor extension: the length in bytes of the JSON header at the start of the body; the rest is "
    "the inputs' raw little-endian tensors, each input's parameters.binary_data_size bytes, in input order (BYTES "
    "elements: a 4-byte little-endian length, then the bytes). Without it the whole body is JSON. Not an integer, or "
    "beyond the body: 400."
)


def oip_binary_request_body(m: BundleManifest) -> dict[str, Any]:
    """Triton's binary tensor extension as a request body (a media type object): a JSON header of
    ``Inference-Header-Content-Length`` bytes, described by ``x-inference-header``, then raw tensors."""
    return {
        "schema": {
            "type": "string",
            "format": "binary",
            "contentMediaType": oip.BINARY_CONTENT_TYPE,
            "description": "A JSON header (the application/json body's schema; binary inputs carry parameters.binary_data_size "
            "instead of data) of Inference-Header-Content-Length bytes, then the raw tensors. " + INFERENCE_HEADER_DESCRIPTION,
        },
        "x-inference-header": {"header": "Inference-Header-Content-Length", "schema": _oip_infer_request_schema(m)},
    }


def oip_binary_header_parameter() -> dict[str, Any]:
    """The ``Inference-Header-Content-Length`` request header, as an OpenAPI parameter."""
    return {
        "name": "Inference-Header-Content-Length",
        "in": "header",
        "required": False,
        "description": INFERENCE_HEADER_DESCRIPTION,
        "schema": {"type": "integer", "minimum": 0},
    }


def pin_served_model(schema: dict[str, Any], m: BundleManifest) -> None:
    """This server serves one model and version: say so in the /v2 paths' parameters (others get OIP's 404)."""
    served = {"name": m.model_name, "version": m.version}
    for path, operations in schema.get("paths", {}).items():
        if path.startswith("/v2/models/"):
            for op in operations.values():
                for p in op.get("parameters", []):
                    if p.get("in") == "path" and p.get("name") in served:
                        p["schema"] = {"type": "string", "title": p["name"].title(), "enum": [served[p["name"]]]}


_OIP_INFER_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string"},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "datatype": {"type": "string"},
                    "shape": {"type": "array", "items": {"type": "integer"}},
                    "data": {"type": "array", "items": {"type": ["string", "number", "boolean"]}},
                    "parameters": {"type": "object"},
                },
                "required": ["name", "datatype", "shape"],
            },
        },
    },
    "required": ["model_name", "model_version", "id", "outputs"],
}


_BINARY_ANSWER_HEADER = {
    "inference-header-content-length": {
        "description": "binary answers only (application/octet-stream): the length in bytes of the answer's JSON header; "
        "the output tensors follow, each its parameters.binary_data_size bytes",
        "schema": {"type": "integer", "minimum": 0},
    }
}


def _oip_responses(*errors: int, infer: bool = False) -> dict[int | str, dict[str, Any]]:
    """An OIP operation's answers: 200 (OIP JSON, or binary tensors for infer), its errors in OIP's shape, 500."""
    content: dict[str, Any] = {"application/json": {"schema": _OIP_INFER_ANSWER if infer else {"type": "object"}}}
    ok = _answer("OIP answer", content)
    if infer:  # binary outputs asked for: a JSON header of Inference-Header-Content-Length bytes, then the tensors
        content[oip.BINARY_CONTENT_TYPE] = {"schema": {"type": "string", "format": "binary"}}
        ok["headers"] = {**ok["headers"], **_BINARY_ANSWER_HEADER}
    out: dict[int | str, dict[str, Any]] = {200: ok}
    for status in errors:
        out[status] = _answer(_OIP_ERRORS[status], {"application/json": {"schema": _OIP_ERROR_SCHEMA}})
    out[500] = _answer(_ERROR_DESCRIPTIONS[500], {"application/json": {"schema": _ERROR_SCHEMA}})
    return out


def _feature_json_schema(m: BundleManifest, reject_unseen: bool = True) -> dict[str, Any]:
    props = {f.name: _value_schema(f, reject_unseen) for f in m.features}
    return {"type": "object", "properties": props, "required": m.feature_names, "additionalProperties": False}


def _example_row(m: BundleManifest) -> dict[str, Any]:
    """A row validation accepts: each category's first value, each number's minimum (or 0)."""
    return {
        f.name: (f.categories[0] if f.categories else (f.min if f.min is not None else 0) if f.kind is not FeatureKind.BOOLEAN else True)
        for f in m.features
    }


def _predict_openapi(m: BundleManifest, max_rows: int, reject_unseen: bool) -> dict[str, Any]:
    row = _feature_json_schema(m, reject_unseen)
    n = len(m.features)
    example = _example_row(m)
    # exactly n items: maxItems, not "items": false (a boolean schema generated clients cannot read)
    split_row = {"type": "array", "prefixItems": [_value_schema(f, reject_unseen) for f in m.features], "minItems": n, "maxItems": n}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {
                                "type": "object",
                                "properties": {
                                    "instances": {"type": "array", "items": row, "minItems": 1, "maxItems": max_rows},
                                    **_explain_options(m),
                                },
                                "required": ["instances"],
                                "additionalProperties": False,
                                **_EXPLAIN_CLASS_NEEDS_EXPLAIN,
                            },
                            {
                                "type": "object",
                                "properties": {
                                    "dataframe_split": {
                                        "type": "object",
                                        "description": "MLflow's split form. The columns may come in any order (each feature once); "
                                        "this schema shows the model's order, with each data row's values in the order of the columns. "
                                        "`index` is accepted and ignored: predictions follow the order of `data`.",
                                        "properties": {
                                            "columns": {
                                                "type": "array",
                                                "prefixItems": [{"const": name} for name in m.feature_names],
                                                "minItems": n,
                                                "maxItems": n,
                                                "uniqueItems": True,
                                            },
                                            "data": {"type": "array", "items": split_row, "minItems": 1, "maxItems": max_rows},
                                            "index": {"type": "array", "items": {}},
                                        },
                                        "required": ["columns", "data"],
                                        "additionalProperties": False,
                                    },
                                    **_explain_options(m),
                                },
                                "required": ["dataframe_split"],
                                "additionalProperties": False,
                                **_EXPLAIN_CLASS_NEEDS_EXPLAIN,
                            },
                        ]
                    },
                    "example": {"instances": [example]},
                }
            },
        },
    }


def _label_schema(m: BundleManifest) -> dict[str, Any]:
    if m.outputs.task is not Task.CLASSIFICATION:
        return {"type": "number"}
    # labels by meaning (OutputSpec.class_for): class "1" may also be sent as 1, class "true" as true
    values: list[Any] = list(m.outputs.classes)
    for c in m.outputs.classes:
        key = class_key(c)
        if key.lstrip("-").isdigit():
            values.append(int(key))
        elif key in ("true", "false"):
            values.append(key == "true")
    return {"enum": values}


_PRINTABLE = "^[^\\u0000-\\u001f\\u007f]*$"  # no control characters (NUL included): what /feedback keeps


def _feedback_request_id(issued_pattern: str | None) -> dict[str, Any]:
    """``request_id``: with signed ids, the form of an id the API issued (its MAC only the server can check: any other
    id of that form is a 422 unknown_request_id); without, any printable id."""
    described = "the request_id of the prediction"
    if issued_pattern is None:
        return {"type": "string", "minLength": 1, "maxLength": 128, "pattern": _PRINTABLE, "description": described}
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": 128,
        "pattern": issued_pattern,
        "description": described + " (its answer's request_id, or x-request-id header): an id this API issued, "
        "<time>.<rows>.<signature>.<id>, used as is; an id of this form the API did not issue (altered, made up) is a 422 "
        "unknown_request_id, a row past the rows it names a 422 row_out_of_range",
    }


def _feedback_openapi(m: BundleManifest, max_rows: int, issued_pattern: str | None) -> dict[str, Any]:
    item = {
        "type": "object",
        "properties": {
            "request_id": _feedback_request_id(issued_pattern),
            "row": {"type": "integer", "minimum": 0, "maximum": max_rows - 1, "default": 0, "description": "the row of that request"},
            "label": _label_schema(m),
            "source": {"const": "audit", "description": "a label of the daily audit sample"},
            "replace": {
                "type": "boolean",
                "default": False,
                "description": "a correction: replaces the label the row holds (needs reason)",
            },
            "reason": {
                "type": "string",
                "minLength": 1,
                "maxLength": 500,
                "pattern": _PRINTABLE,
                "description": "why the label is corrected (with replace: true)",
            },
        },
        "required": ["request_id", "label"],
        # a correction says why, and a reason comes only with a correction
        "if": {"properties": {"replace": {"const": True}}, "required": ["replace"]},
        "then": {"required": ["reason"]},
        "dependentSchemas": {"reason": {"properties": {"replace": {"const": True}}, "required": ["replace"]}},
        "additionalProperties": False,
    }
    batch = {"type": "array", "items": item, "minItems": 1, "maxItems": max_rows}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [item, batch]}}}}}


# --- each operation's documentation, as keyword arguments of its route decorator ---


# the Arrow storage types each feature kind is read from (serving/arrow_ipc.py)
_ARROW_TYPES = {
    FeatureKind.NUMERIC: "int8..int64, uint8..uint64, float16, float32 or float64",
    FeatureKind.CATEGORICAL: "utf8 or large_utf8, plain or dictionary-encoded (pandas' category)",
    FeatureKind.BOOLEAN: "bool",
}


def arrow_request_body(m: BundleManifest, max_rows: int, media: str) -> dict[str, Any]:
    """The Arrow IPC stream body of /predict, as a media type object: what its columns must be, and how to write one."""
    columns = [
        {"name": f.name, "kind": f.kind.value, "arrow_types": _ARROW_TYPES[f.kind], "nullable": f.nullable}
        | ({"categories": list(f.categories)} if f.categories else {})
        for f in m.features
    ]
    described = "; ".join(f"{c['name']}: {c['arrow_types']}{', nulls allowed' if c['nullable'] else ''}" for c in columns)
    row = _example_row(m)
    return {
        "schema": {
            "type": "string",
            "format": "binary",
            "contentMediaType": media,
            "description": f"An Apache Arrow IPC stream (any number of record batches) of 1..{max_rows} rows, one flat column "
            f"per feature in any order, validated as a dataframe_split body: {described}. A body that is not a readable "
            "stream, or a nested column, is a 400 malformed_arrow; values are refused as in JSON (422 naming row and field).",
        },
        "x-arrow-columns": columns,
        "examples": {
            "pyarrow": {
                "summary": "One row written with pyarrow",
                "description": "```python\nimport pyarrow as pa\n"
                f"table = pa.Table.from_pylist([{row!r}])\n"
                "sink = pa.BufferOutputStream()\nwith pa.ipc.new_stream(sink, table.schema) as w:\n    w.write_table(table)\n"
                "body = sink.getvalue().to_pybytes()  # POST with content-type " + media + "\n```",
            }
        },
    }


def predict_operation(
    m: BundleManifest,
    max_rows: int,
    reject_unseen: bool,
    other_formats: list[str],
    answer_media: dict[str, dict[str, Any]] | None = None,
    other_bodies: dict[str, dict[str, Any]] | None = None,
    header_parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``other_formats``: what each codec of the route besides JSON says of its format (``Codec.openapi_note``);
    ``answer_media``: the other media types its codecs answer in (Accept), each with its answer's schema (``Codec.answer_schema``);
    ``other_bodies``: the request bodies they read, by media type (``Codec.openapi_body``);
    ``header_parameters``: the request headers they read (``Codec.openapi_parameters``)."""
    answer_media = answer_media or {}
    extra = _predict_openapi(m, max_rows, reject_unseen)
    extra["requestBody"]["content"].update(other_bodies or {})
    if header_parameters:
        extra["parameters"] = list(header_parameters)
    return {
        "openapi_extra": extra,
        "summary": "Score 1..N rows",
        "description": "; ".join(["JSON as documented here", *other_formats]) + ".",
        "responses": _with_answer_media(
            _responses(m, {200: ("The predictions", _predict_answer_schema(m))}, 400, 413, 415, 422), answer_media
        ),
    }


def _with_answer_media(
    responses: dict[int | str, dict[str, Any]], answer_media: dict[str, dict[str, Any]]
) -> dict[int | str, dict[str, Any]]:
    """The 200 answer in each other format a codec of the route writes when the Accept header names it (Arrow)."""
    for media, schema in answer_media.items():
        responses[200]["content"][media] = {"schema": schema}
    return responses


_FEEDBACK_422 = (
    "Invalid feedback: the details name the item and field. Reason codes: unknown_request_id (an id this API did not "
    "issue: altered, mistyped, or not the request_id / x-request-id of a prediction's answer), row_out_of_range (a row "
    "the request did not hold), wrong_type, bad_shape, empty_batch, batch_too_large"
)


def feedback_operation(m: BundleManifest, max_rows: int, issued_id_pattern: str | None = None) -> dict[str, Any]:
    """``issued_id_pattern``: the form of the ids the API issues and /feedback checks (``RequestIds.feedback_id_pattern``)."""
    stored = {202: ("Labels stored (or already held: the same label again)", _FEEDBACK_ANSWER)}
    responses = _responses(m, stored, 400, 409, 413, 415, 422, 503)
    responses[422] = {**responses[422], "description": _FEEDBACK_422}
    return {
        "openapi_extra": _feedback_openapi(m, max_rows, issued_id_pattern),
        "summary": "Ground-truth labels for earlier predictions",
        "description": "Each item names the request_id of a prediction's answer (its x-request-id header) and a row it held: "
        "the id carries both, signed, so an id the API did not issue or a row past the request's is refused (422) "
        "without a lookup. A row's label is kept once: the same label again is accepted, another one is a 409 "
        'label_conflict unless the item says "replace": true with a reason.',
        "status_code": 202,
        "responses": responses,
    }


def health_operation(m: BundleManifest) -> dict[str, Any]:
    return {"summary": "Liveness and the model version", "responses": _responses(m, {200: ("Alive", _HEALTH_ANSWER)})}


def model_operation(m: BundleManifest) -> dict[str, Any]:
    return {
        "summary": "Schema, version and export metrics of the served model",
        "responses": _responses(m, {200: ("The model", _MODEL_ANSWER)}),
    }


def oip_operation(summary: str, *errors: int) -> dict[str, Any]:
    return {"summary": f"OIP: {summary}", "tags": [OIP_TAG], "responses": _oip_responses(*errors)}


def oip_infer_operation(
    m: BundleManifest, summary: str, other_bodies: dict[str, dict[str, Any]], header_parameters: list[dict[str, Any]]
) -> dict[str, Any]:
    """``other_bodies`` and ``header_parameters``: what the route's codecs read besides OIP JSON (``Codec.openapi_body``,
    ``Codec.openapi_parameters``)."""
    responses = _oip_responses(400, 404, 413, 415, 422, infer=True)
    extra = {**_oip_infer_body(m, other_bodies), "parameters": list(header_parameters)}
    return {"summary": f"OIP: {summary}", "tags": [OIP_TAG], "responses": responses, "openapi_extra": extra}


OPENAPI_VERSION = "3.1.0"
_NON_WORD = re.compile(r"\W")


@dataclass(frozen=True)
class Operation:
    """One documented route: path, method, the endpoint's name (in the operation id, FastAPI's form) and its
    documentation (``summary``, ``description``, ``tags``, ``status_code``, ``responses``, ``openapi_extra``),
    built by ``doc`` when the document is first asked for."""

    path: str
    method: str
    name: str
    doc: Callable[[], dict[str, Any]]


def openapi_document(title: str, version: str, description: str, operations: Sequence[Operation], m: BundleManifest) -> dict[str, Any]:
    """The API's OpenAPI document, the /v2 paths' name and version pinned to the served model."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    document = {"openapi": OPENAPI_VERSION, "info": {"title": title, "version": version, "description": description}, "paths": paths}
    document = json.loads(json.dumps(document))  # one tree of its own: the builders share their schema dicts
    pin_served_model(document, m)
    return document


def _operation(op: Operation) -> dict[str, Any]:
    """One operation as FastAPI documented a route whose endpoint reads the raw request: the default JSON
    answer of its status code, then its documented answers, then ``openapi_extra``, each merged in."""
    kw = op.doc()
    operation: dict[str, Any] = {"tags": kw["tags"]} if kw.get("tags") else {}
    operation["summary"] = kw.get("summary") or op.name.replace("_", " ").title()
    if kw.get("description"):
        operation["description"] = kw["description"]
    operation["operationId"] = _NON_WORD.sub("_", op.name + op.path) + "_" + op.method.lower()
    responses: dict[str, Any] = {
        str(kw.get("status_code", 200)): {"description": "Successful Response", "content": {"application/json": {"schema": {}}}}
    }
    for status, answer in kw.get("responses", {}).items():
        _deep_update(responses.setdefault(str(status), {}), copy.deepcopy(answer))
    operation["responses"] = responses
    _deep_update(operation, kw.get("openapi_extra") or {})
    return operation


def _deep_update(main: dict[str, Any], update: dict[str, Any]) -> None:
    """Merge ``update`` into ``main``: nested objects merged, lists concatenated, anything else replaced."""
    for key, value in update.items():
        if isinstance(main.get(key), dict) and isinstance(value, dict):
            _deep_update(main[key], value)
        elif isinstance(main.get(key), list) and isinstance(value, list):
            main[key] = main[key] + value
        else:
            main[key] = value


def with_servers(document: dict[str, Any], root_path: str) -> dict[str, Any]:
    """The document as served behind a stage (``root_path`` /prod): its server URL is the stage's."""
    root_path = root_path.rstrip("/")
    if not root_path or root_path in {s.get("url") for s in document.get("servers", [])}:
        return document
    return {**document, "servers": [{"url": root_path}, *document.get("servers", [])]}


_SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5"
# Swagger UI's options as FastAPI set them
_SWAGGER_PARAMETERS = {
    "dom_id": "#swagger-ui",
    "layout": "BaseLayout",
    "deepLinking": True,
    "showExtensions": True,
    "showCommonExtensions": True,
}


def swagger_ui_html(openapi_url: str, title: str) -> str:
    """The /docs page: Swagger UI (from its CDN) reading the document at ``openapi_url``."""
    options = "".join(f"{_html_safe_json(k)}: {_html_safe_json(v)},\n" for k, v in _SWAGGER_PARAMETERS.items())
    return f"""<!DOCTYPE html>
<html>
<head>
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link type="text/css" rel="stylesheet" href="{_SWAGGER_UI}/swagger-ui.css">
<title>{html.escape(title)}</title>
</head>
<body>
<div id="swagger-ui">
</div>
<script src="{_SWAGGER_UI}/swagger-ui-bundle.js"></script>
<script>
const ui = SwaggerUIBundle({{
url: {_html_safe_json(openapi_url)},
{options}presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
}})
</script>
</body>
</html>
"""


def _html_safe_json(value: Any) -> str:
    """JSON that cannot close the script element it is written in."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
