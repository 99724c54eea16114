"""OIP infer requests a careless or hostile client sends never score a value the client did not mean:
an input named twice or a feature missing is a 400 in OIP's shape; JSON tensors carry NaN as OIP
clients write it (rapidjson's ``NaN`` literal: missing, as in binary tensors) and only values of their
declared datatype; ``id`` is echoed only as the string it was. On REST v1, HTTP v2 and ALB events."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest

from tests.support import EVENT_KINDS, event, response_json

INFER = "/v2/models/penguins/infer"
ROW = {
    "bill_length_mm": 39.1,
    "bill_depth_mm": 18.7,
    "flipper_length_mm": 181.0,
    "body_mass_g": 3750.0,
    "island": "Torgersen",
    "sex": "male",
}
CATEGORICAL = ("island", "sex")


def _tensor(name: str, value: Any, datatype: str | None = None) -> dict[str, Any]:
    return {"name": name, "shape": [1, 1], "datatype": datatype or ("BYTES" if name in CATEGORICAL else "FP32"), "data": [value]}


def _doc(*extra: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """One row as JSON tensors; ``changes``: feature -> (value, datatype) or None to leave the input out."""
    inputs = []
    for name, value in ROW.items():
        change = changes.get(name, (value, None))
        if change is not None:
            inputs.append(_tensor(name, *change))
    return {"inputs": [*inputs, *extra]}


def _raw(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()  # NaN / Infinity written as literals, as rapidjson does


@pytest.fixture
def handler(load_inference: Any) -> Any:
    return load_inference().handler


def _infer(handler: Any, lambda_context: Any, kind: str, raw: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    resp = handler(event(kind, "POST", INFER, raw=raw, headers={"content-type": "application/json", **(headers or {})}), lambda_context)
    return resp["statusCode"], response_json(resp)


def _probabilities(doc: dict[str, Any]) -> list[float]:
    return next(o["data"] for o in doc["outputs"] if o["name"] == "probabilities")


# (case, body, status, words of the error: the input it names and why)
REFUSED = [
    ("island twice", _raw(_doc(_tensor("island", "Biscoe"), island=("Dream", None))), 400, ["'island'", "more than once"]),
    ("a numeric input twice, same value", _raw(_doc(_tensor("body_mass_g", 3750.0))), 400, ["'body_mass_g'", "more than once"]),
    ("a feature missing", _raw(_doc(sex=None)), 400, ["missing input", "sex"]),
    ("INT8 300", _raw(_doc(body_mass_g=(300, "INT8"))), 422, ["wrong_type", "'body_mass_g'", "INT8", "-128..127"]),
    ("UINT8 -1", _raw(_doc(flipper_length_mm=(-1, "UINT8"))), 422, ["wrong_type", "'flipper_length_mm'", "UINT8"]),
    ("INT32 1.5", _raw(_doc(bill_depth_mm=(1.5, "INT32"))), 422, ["wrong_type", "'bill_depth_mm'", "INT32"]),
    ("INT64 2**63", _raw(_doc(body_mass_g=(2**63, "INT64"))), 422, ["wrong_type", "'body_mass_g'", "INT64"]),
    ("UINT64 -5", _raw(_doc(body_mass_g=(-5, "UINT64"))), 422, ["wrong_type", "UINT64"]),
    ("INT16 true", _raw(_doc(body_mass_g=(True, "INT16"))), 422, ["wrong_type", "INT16"]),
    ("FP16 70000", _raw(_doc(body_mass_g=(70000, "FP16"))), 422, ["not_finite", "'body_mass_g'", "FP16", "65504"]),
    ("FP32 1e39", _raw(_doc(body_mass_g=(1e39, "FP32"))), 422, ["not_finite", "'body_mass_g'", "FP32"]),
    ("FP64 an integer past float64", _raw(_doc(body_mass_g=(10**400, "FP64"))), 422, ["not_finite", "FP64"]),
    ("FP32 a string", _raw(_doc(body_mass_g=("3750", "FP32"))), 422, ["wrong_type", "'body_mass_g'"]),
    ("FP32 Infinity", _raw(_doc(body_mass_g=(float("inf"), "FP32"))), 422, ["not_finite", "body_mass_g"]),
    ("NaN for a feature that may not be missing", _raw(_doc(island=("", None))), 422, ["null_not_allowed", "island"]),
    ("id an object", _raw({**_doc(), "id": {"a": 1}}), 400, ["'id' must be a string"]),
    ("id a number", _raw({**_doc(), "id": 7}), 400, ["'id' must be a string"]),
    (
        "a key twice in a tensor",
        b'{"inputs": [{"name": "island", "name": "sex", "shape": [1], "datatype": "BYTES", "data": ["male"]}]}',
        400,
        ["'name'"],
    ),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c[0] for c in REFUSED])
@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_oip_requests_that_would_score_an_unmeant_value_are_refused_naming_the_input(
    kind: str, case: tuple[str, bytes, int, list[str]], handler: Any, lambda_context: Any
) -> None:
    _, raw, status, words = case
    got, doc = _infer(handler, lambda_context, kind, raw)
    assert got == status, doc
    assert set(doc) == {"error"}
    for w in words:
        assert w in doc["error"], (w, doc)


def _binary_nan_body() -> tuple[bytes, dict[str, str]]:
    inputs, parts = [], []
    for name, value in ROW.items():
        if name in CATEGORICAL:
            raw = struct.pack("<I", len(value)) + value.encode()
            inputs.append({"name": name, "shape": [1, 1], "datatype": "BYTES", "parameters": {"binary_data_size": len(raw)}})
        else:
            raw = np.array([np.nan if name == "bill_length_mm" else value], "<f4").tobytes()
            inputs.append({"name": name, "shape": [1, 1], "datatype": "FP32", "parameters": {"binary_data_size": 4}})
        parts.append(raw)
    head = json.dumps({"inputs": inputs}).encode()
    return head + b"".join(parts), {"content-type": "application/octet-stream", "inference-header-content-length": str(len(head))}


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_nan_in_a_json_tensor_is_missing_as_in_a_binary_tensor_and_a_predict_null(kind: str, handler: Any, lambda_context: Any) -> None:
    status, as_json = _infer(handler, lambda_context, kind, _raw(_doc(bill_length_mm=(float("nan"), "FP32"))))
    assert status == 200, as_json
    body, headers = _binary_nan_body()
    status, as_binary = _infer(handler, lambda_context, kind, body, headers)
    assert status == 200, as_binary
    resp = handler(event(kind, "POST", "/predict", {"instances": [{**ROW, "bill_length_mm": None}]}), lambda_context)
    predicted = response_json(resp)
    assert _probabilities(as_json) == _probabilities(as_binary)
    np.testing.assert_allclose(_probabilities(as_json), predicted["probabilities"][0], rtol=1e-6)


@pytest.mark.parametrize("datatype", ["INT16", "INT32", "INT64", "UINT16", "UINT32", "UINT64", "FP16", "FP32", "FP64"])
def test_a_value_its_datatype_carries_scores_as_the_same_number_in_fp32(datatype: str, handler: Any, lambda_context: Any) -> None:
    _, reference = _infer(handler, lambda_context, "rest_v1", _raw(_doc(body_mass_g=(3750.0, "FP32"))))
    status, doc = _infer(handler, lambda_context, "rest_v1", _raw(_doc(body_mass_g=(3750, datatype))))
    assert status == 200, doc
    assert _probabilities(doc) == _probabilities(reference)


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_id_is_echoed_as_the_string_sent(kind: str, handler: Any, lambda_context: Any) -> None:
    for sent in ["order-17", "\ud800 lone surrogate", "x" * 300]:
        status, doc = _infer(handler, lambda_context, kind, _raw({**_doc(), "id": sent}))
        assert status == 200, doc
        assert isinstance(doc["id"], str)
        assert doc["id"] == sent if sent == "order-17" else doc["id"].startswith(sent[:1].encode("utf-8", "backslashreplace").decode())


@pytest.mark.capture_sink("s3")  # reads the s3 sink's object per request
def test_an_input_named_twice_scores_nothing(load_inference: Any, s3: Any, lambda_context: Any) -> None:
    s3.create_bucket(Bucket="twice")
    handler = load_inference(capture_bucket="twice").handler
    status, _ = _infer(handler, lambda_context, "rest_v1", _raw(_doc(_tensor("island", "Biscoe"), island=("Dream", None))))
    assert status == 400
    status, _ = _infer(handler, lambda_context, "rest_v1", _raw(_doc()))
    assert status == 200
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="twice").get("Contents", [])]
    assert len([k for k in keys if k.startswith("captures/")]) == 1, keys  # the good request's only
    assert len([k for k in keys if k.startswith("rejects/")]) == 1, keys  # the refusal, as a refusal
