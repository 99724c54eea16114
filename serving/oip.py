"""Open Inference Protocol (KServe / Triton "V2") REST codec, with the binary tensor data extension.

Only translation lives here: OIP tensors in -> a ``ColumnBatch`` the service validates, scores and
captures like a ``dataframe_split`` payload (the same checks, errors and table, so the protocol cannot
change what validation accepts or what the drift check sees); the service's answer -> OIP output
tensors, JSON or binary. Binary tensors stay typed numpy columns (``np.frombuffer``) from the body to
the model: no Python object per value, except one string per BYTES element.

Model metadata (from the bundle schema):
- ``per_column`` models: one input per feature, shape ``[-1, 1]``: numeric ``FP32``, boolean ``BOOL``,
  categorical ``BYTES``. Any numeric datatype is accepted for a numeric feature (cast like JSON numbers).
  Tensors have no null: NaN in a float tensor and an empty BYTES element mean "missing" (the graph's own
  encodings of null), refused for non-nullable features like a JSON null.
- ``single_tensor`` models: one ``FP32`` input ``[-1, F]`` named as the graph input.
- outputs: ``label`` (``BYTES [-1]`` for a classifier, ``FP64 [-1]`` for a regressor) and, for a
  classifier, ``probabilities`` (``FP32 [-1, K]``, columns in ``classes`` order).

Binary extension (https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_binary_data.md):
the request body is a JSON header of ``Inference-Header-Content-Length`` bytes followed by the raw
little-endian tensors of the inputs whose ``parameters.binary_data_size`` is set, in input order;
``BYTES`` elements are each a 4-byte little-endian length and the bytes.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from modelserve.schema import BundleManifest, FeatureKind, InputLayout, LabelType, Task

from .validation import (
    MAX_REPORTED_ERRORS,
    NOT_FINITE,
    WRONG_TYPE,
    Column,
    ColumnBatch,
    FieldError,
    RequestError,
    TypedColumn,
    echo,
    parse_json,
)

HEADER_LENGTH = "inference-header-content-length"
BINARY_CONTENT_TYPE = "application/octet-stream"
PLATFORM = "onnxruntime_onnx"

# OIP datatype -> numpy little-endian dtype (BYTES handled apart)
DTYPES: dict[str, str] = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
NUMERIC_TYPES = frozenset(DTYPES) - {"BOOL"}
_INT_RANGE = {t: (int(np.iinfo(d).min), int(np.iinfo(d).max)) for t, d in DTYPES.items() if t[0] in "IU"}
_FLOAT_MAX = {t: float(np.finfo(d).max) for t, d in DTYPES.items() if t.startswith("FP")}


class OipError(Exception):
    """A client error on an OIP route; ``status`` 400 (bad request) or 404 (unknown model/version)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True)
class DecodedRequest:
    request_id: str | None
    payload: ColumnBatch  # what the service validates: the same checks as a dataframe_split payload
    outputs: tuple[str, ...]  # requested outputs, in order
    binary_outputs: frozenset[str]
    explain: dict[str, Any] | None = None  # the explain / explain_class parameters, as sent (serving/explain.py)
    binary_explanations: bool = False  # the explanation tensors as binary data (binary_data_output)


def _input_specs(m: BundleManifest) -> list[tuple[str, str, list[int]]]:
    if m.input_layout is InputLayout.SINGLE_TENSOR:
        return [(m.single_input_name or "input", "FP32", [-1, len(m.features)])]
    dtype = {FeatureKind.NUMERIC: "FP32", FeatureKind.BOOLEAN: "BOOL", FeatureKind.CATEGORICAL: "BYTES"}
    return [(f.name, dtype[f.kind], [-1, 1]) for f in m.features]


# a classifier's label tensor follows the labels' own type
_LABEL_DATATYPES = {None: "BYTES", LabelType.STRING: "BYTES", LabelType.INTEGER: "INT64", LabelType.BOOLEAN: "BOOL"}


def _output_specs(m: BundleManifest) -> list[tuple[str, str, list[int]]]:
    if m.outputs.task is Task.CLASSIFICATION:
        return [("label", _LABEL_DATATYPES[m.outputs.label_type], [-1]), ("probabilities", "FP32", [-1, len(m.outputs.classes)])]
    return [("label", "FP64", [-1])]


def model_metadata(m: BundleManifest) -> dict[str, Any]:
    return {
        "name": m.model_name,
        "versions": [m.version],
        "platform": PLATFORM,
        "inputs": [{"name": n, "datatype": d, "shape": s} for n, d, s in _input_specs(m)],
        "outputs": [{"name": n, "datatype": d, "shape": s} for n, d, s in _output_specs(m)],
    }


def server_metadata() -> dict[str, Any]:
    return {"name": "modelserve", "version": "2", "extensions": ["binary_tensor_data"]}


def check_model(m: BundleManifest, name: str, version: str | None = None) -> None:
    if name != m.model_name:
        raise OipError(f"unknown model '{name[:100]}'; this server serves '{m.model_name}'", 404)
    if version is not None and version != m.version:
        raise OipError(f"unknown version '{version[:100]}' of model '{m.model_name}'; served: '{m.version}'", 404)


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    digits = header_length.strip()
    if not (digits.isascii() and digits.isdigit()):  # what the document declares: a non-negative integer ("+5", "1_0" are not)
        raise OipError(f"Inference-Header-Content-Length must be an integer, got '{echo(header_length, 40)}'")
    n = int(digits)
    if n < 0 or n > len(body):
        raise OipError(f"Inference-Header-Content-Length {n} is beyond the body's {len(body)} bytes")
    return body[:n], body[n:]


_LENGTH = struct.Struct("<I")


def _decode_bytes_tensor(raw: bytes, count: int, name: str) -> list[str | None]:
    """The elements as strings, an empty element as None (see ``_column``). Each distinct
    element is decoded once: a categorical column repeats a few values."""
    out: list[str | None] = []
    append, unpack, end = out.append, _LENGTH.unpack_from, len(raw)
    decoded: dict[bytes, str | None] = {b"": None}
    pos = 0
    for _ in range(count):
        if pos + 4 > end:
            raise OipError(f"input '{name}': binary BYTES data truncated")
        (size,) = unpack(raw, pos)
        pos += 4
        if pos + size > end:
            raise OipError(f"input '{name}': binary BYTES element longer than the data")
        element = raw[pos : pos + size]
        pos += size
        try:
            append(decoded[element])
        except KeyError:
            try:
                text = decoded[element] = element.decode("utf-8")
            except UnicodeDecodeError:
                raise OipError(f"input '{name}': BYTES element is not UTF-8") from None
            append(text)
    if pos != end:
        raise OipError(f"input '{name}': {end - pos} bytes left over after {count} BYTES elements")
    return out


def _shape(tensor: dict[str, Any], name: str) -> list[int]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not shape or len(shape) > 2 or not all(type(d) is int and d >= 0 for d in shape):
        raise OipError(f"input '{name}': shape must be [N] or [N, K] with non-negative integers")
    return shape


def _tensor_values(tensor: dict[str, Any], binary: bytes, offset: int) -> tuple[np.ndarray | list[Any], int]:
    """The tensor's elements in row-major order (binary numbers as a numpy array, BYTES as strings with
    None for an empty element, JSON data as sent), and the new offset into the binary section."""
    name, datatype = str(tensor.get("name")), tensor.get("datatype")
    if not isinstance(datatype, str) or (datatype not in DTYPES and datatype != "BYTES"):
        raise OipError(f"input '{name}': unknown datatype {str(datatype)[:20]!r}")
    count = int(np.prod(_shape(tensor, name)))
    params = tensor.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is not None:
        if type(size) is not int or size < 0 or offset + size > len(binary):
            raise OipError(f"input '{name}': binary_data_size {size} is beyond the {len(binary) - offset} bytes left in the body")
        raw = binary[offset : offset + size]
        if datatype == "BYTES":
            return _decode_bytes_tensor(raw, count, name), offset + size
        itemsize = np.dtype(DTYPES[datatype]).itemsize
        if size != count * itemsize:
            raise OipError(f"input '{name}': {size} bytes for {count} {datatype} elements (expected {count * itemsize})")
        return np.frombuffer(raw, dtype=DTYPES[datatype]), offset + size
    data = tensor.get("data")
    if not isinstance(data, list):
        raise OipError(f"input '{name}': 'data' must be a list (or send it as binary data)")
    flat = np.asarray(data, dtype=object).reshape(-1).tolist() if data and isinstance(data[0], list) else data
    if len(flat) != count:
        raise OipError(f"input '{name}': {len(flat)} elements for shape {tensor.get('shape')}")
    return flat, offset


def _json_element_error(v: Any, datatype: str) -> tuple[str, str] | None:
    """Why one element of a JSON tensor is not a value of its datatype: (reason, message), else None.
    null is read as missing, as NaN is (the validator decides whether the feature may be missing)."""
    if v is None:
        return None
    if datatype == "BOOL":
        return None if type(v) is bool else (WRONG_TYPE, f"{echo(repr(v), 40)} is not a BOOL (true or false)")
    if datatype in _FLOAT_MAX:
        if type(v) not in (int, float):
            return WRONG_TYPE, f"{echo(repr(v), 40)} is not a number ({datatype})"
        try:
            fv = float(v)
        except OverflowError:
            fv = math.inf
        # NaN is missing and ±Infinity a float value (the validator refuses it: not_finite); a finite
        # number beyond the type's largest would be read as infinity
        if math.isfinite(fv) and abs(fv) > _FLOAT_MAX[datatype] or not math.isfinite(fv) and type(v) is int:
            return NOT_FINITE, f"{echo(repr(v), 40)} is beyond the {datatype} range (±{_FLOAT_MAX[datatype]:.6g})"
        return None
    lo, hi = _INT_RANGE[datatype]
    if type(v) is not int or not lo <= v <= hi:
        return WRONG_TYPE, f"{echo(repr(v), 40)} is not a {datatype} (a whole number in {lo}..{hi})"
    return None


def _json_elements_fit(values: list[Any], datatype: str) -> bool:
    """The fast check of a JSON tensor's elements against their datatype (no Python loop when they fit)."""
    types = set(map(type, values))
    if datatype == "BYTES":
        return True  # strings: the validator checks them (a non-string is its wrong_type)
    if datatype == "BOOL":
        return types <= {bool, type(None)}
    present = [v for v in values if v is not None] if type(None) in types else values
    if not present:
        return True
    if datatype in _INT_RANGE:
        lo, hi = _INT_RANGE[datatype]
        return types - {type(None)} <= {int} and lo <= min(present) and max(present) <= hi
    if not types - {type(None)} <= {int, float}:
        return False
    try:
        arr = np.asarray(present, dtype=np.float64)
    except OverflowError:
        return False
    finite = arr[np.isfinite(arr)]
    return len(finite) == 0 or float(np.abs(finite).max()) <= _FLOAT_MAX[datatype]


def check_json_elements(name: str, datatype: str, values: list[Any]) -> None:
    """Refuse a JSON tensor holding a value its datatype cannot carry (INT8 300, UINT8 -1, 1.5 for INT32,
    FP16 70000, a string for FP32): 422 naming the input and the element, as the binary path cannot
    carry such values at all."""
    if _json_elements_fit(values, datatype):
        return
    errors = []
    for i, v in enumerate(values):
        problem = _json_element_error(v, datatype)
        if problem:
            errors.append(FieldError(problem[0], f"input '{echo(name)}' element {i}: {problem[1]}", row=i, field=name))
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
    if errors:
        first = errors[0]
        raise RequestError(first.reason, f"{len(errors)} element(s) not of datatype {datatype}; first: {first.message}", errors)


def _column(values: np.ndarray | list[Any], datatype: str, binary: bool) -> Column:
    """Tensors have no null: a NaN number and an empty BYTES element are the graph's own null
    encodings, so they mean "missing" here (and are refused for non-nullable features, as null is)."""
    if isinstance(values, np.ndarray):  # binary numbers
        return TypedColumn(values, np.isnan(values) if values.dtype.kind == "f" else None)
    if binary:  # binary BYTES: _decode_bytes_tensor gave None for the empty elements
        return values
    if datatype == "BYTES":
        return [None if v == "" else v for v in values]
    if datatype in ("FP16", "FP32", "FP64"):
        return [None if isinstance(v, float) and v != v else v for v in values]
    return values


def _check_datatype(name: str, datatype: str, kind: FeatureKind) -> None:
    ok = {
        FeatureKind.NUMERIC: datatype in NUMERIC_TYPES,
        FeatureKind.BOOLEAN: datatype == "BOOL",
        FeatureKind.CATEGORICAL: datatype == "BYTES",
    }[kind]
    if not ok:
        want = {FeatureKind.NUMERIC: "a numeric datatype", FeatureKind.BOOLEAN: "BOOL", FeatureKind.CATEGORICAL: "BYTES"}[kind]
        raise OipError(f"input '{name}': datatype {datatype} does not match the feature ({kind.value}: {want})")


def _read_json_header(head: bytes) -> dict[str, Any]:
    try:
        doc = parse_json(head)  # its depth limit, duplicate keys refused, NaN/Infinity literals read
    except RequestError as exc:
        named = f" ({echo(exc.details[0].field)!r})" if exc.details and exc.details[0].field else ""
        raise OipError(f"the inference request is not valid JSON: {exc.message[:200]}{named}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise OipError("the inference request must be an object with a non-empty 'inputs' list")
    rid = doc.get("id")
    if rid is not None and not isinstance(rid, str):
        raise OipError(f"'id' must be a string, got {type(rid).__name__}")
    return doc


def _single_tensor_columns(m: BundleManifest, tensor: dict[str, Any], values: np.ndarray | list[Any]) -> dict[str, Column]:
    name, shape, width = tensor["name"], tensor["shape"], len(m.features)
    if name != (m.single_input_name or "input"):
        raise OipError(f"unknown input '{echo(name)}'; the model's input is '{m.single_input_name or 'input'}'")
    if tensor["datatype"] not in NUMERIC_TYPES or len(shape) != 2 or shape[1] != width:
        raise OipError(f"input '{echo(name)}': expected a numeric [N, {width}] tensor")
    if isinstance(values, list):
        check_json_elements(name, tensor["datatype"], values)
    # one tensor of numbers: NaN is a value here (refused as not finite), never a null
    return {f.name: TypedColumn(values[j::width]) if isinstance(values, np.ndarray) else values[j::width] for j, f in enumerate(m.features)}


def _feature_column(m: BundleManifest, tensor: dict[str, Any], values: np.ndarray | list[Any]) -> Column:
    name, shape, datatype = tensor["name"], tensor["shape"], tensor["datatype"]
    spec = next((f for f in m.features if f.name == name), None)
    if spec is None:
        raise OipError(f"unknown input '{echo(name)}'; the model's inputs are the features {m.feature_names}")
    if len(shape) == 2 and shape[1] != 1:
        raise OipError(f"input '{echo(name)}': expected shape [N] or [N, 1], got {shape}")
    _check_datatype(name, datatype, spec.kind)
    if isinstance(values, np.ndarray):
        return _column(values, datatype, True)
    params = tensor.get("parameters")
    binary = isinstance(params, dict) and params.get("binary_data_size") is not None
    if not binary:
        check_json_elements(name, datatype, values)
    return _column(values, datatype, binary)


def decode_request(m: BundleManifest, body: bytes, header_length: str | None) -> DecodedRequest:
    head, binary = _split_body(body, header_length)
    doc = _read_json_header(head)
    columns: dict[str, Column] = {}
    offset = 0
    named: set[str] = set()
    for tensor in doc["inputs"]:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise OipError("each input must be an object with a 'name'")
        if tensor["name"] in named:  # never last-one-wins: that would score a value the client did not mean
            raise OipError(f"input '{echo(tensor['name'])}' is named more than once: send each input once")
        named.add(tensor["name"])
        values, offset = _tensor_values(tensor, binary, offset)
        if m.input_layout is InputLayout.SINGLE_TENSOR:
            columns.update(_single_tensor_columns(m, tensor, values))
        else:
            columns[tensor["name"]] = _feature_column(m, tensor, values)
    if offset != len(binary):
        raise OipError(f"{len(binary) - offset} bytes of binary data follow the last binary input")
    missing = [n for n in m.feature_names if n not in columns]
    if missing:
        raise OipError(f"missing input(s) {missing[:20]}: send one input per feature")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise OipError(f"inputs have different numbers of rows: {sorted(lengths)}")
    outputs, binary_outputs = _requested_outputs(m, doc)
    rid = doc.get("id")
    request_params_raw = doc.get("parameters")
    request_params: dict[str, Any] = request_params_raw if isinstance(request_params_raw, dict) else {}
    return DecodedRequest(
        request_id=echo(rid, 128) if rid is not None else None,
        payload=ColumnBatch(list(columns), list(columns.values())),
        outputs=outputs,
        binary_outputs=binary_outputs,
        explain={k: request_params[k] for k in EXPLAIN_PARAMETERS if k in request_params} or None,
        binary_explanations=bool(request_params.get("binary_data_output")),
    )


# request parameters asking for explanations, and the output tensors that answer them
EXPLAIN_PARAMETERS = ("explain", "explain_class")
EXPLANATION_OUTPUTS = ("explanation", "base_value", "explained_output", "explained_class", "error_bound")


def _explanation_tensors(m: BundleManifest, explanations: list[dict[str, Any]]) -> dict[str, tuple[str, list[int], Any]]:
    """The answer's explanations as output tensors: ``explanation`` and ``error_bound`` FP64 [N, F] (columns in
    the model's feature order), ``base_value`` and ``explained_output`` FP64 [N], ``explained_class`` BYTES [N]."""
    n, names = len(explanations), m.feature_names
    tensors: dict[str, tuple[str, list[int], Any]] = {
        "explanation": ("FP64", [n, len(names)], np.array([[e["values"][f] for f in names] for e in explanations], dtype=np.float64)),
        "base_value": ("FP64", [n], np.array([e["base_value"] for e in explanations], dtype=np.float64)),
        "explained_output": ("FP64", [n], np.array([e["output"] for e in explanations], dtype=np.float64)),
    }
    if m.outputs.task is Task.CLASSIFICATION:
        tensors["explained_class"] = ("BYTES", [n], [e["class"] for e in explanations])
    if explanations and "error_bound" in explanations[0]:
        tensors["error_bound"] = ("FP64", [n, len(names)], np.array([[e["error_bound"][f] for f in names] for e in explanations]))
    return tensors


def _requested_outputs(m: BundleManifest, doc: dict[str, Any]) -> tuple[tuple[str, ...], frozenset[str]]:
    known = [n for n, _, _ in _output_specs(m)]
    raw_params = doc.get("parameters")
    params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
    all_binary = bool(params.get("binary_data_output"))
    requested = doc.get("outputs")
    if requested is None:
        return tuple(known), frozenset(known) if all_binary else frozenset()
    if not isinstance(requested, list):
        raise OipError("'outputs' must be a list")
    names, binary = [], set()
    for o in requested:
        name = o.get("name") if isinstance(o, dict) else None
        if name not in known:
            raise OipError(f"unknown output {str(name)[:100]!r}; outputs: {known}")
        names.append(name)
        raw_op = o.get("parameters")
        op: dict[str, Any] = raw_op if isinstance(raw_op, dict) else {}
        if op.get("binary_data", all_binary):
            binary.add(name)
    return tuple(names), frozenset(binary)


def _encode_bytes(values: list[Any]) -> bytes:
    """BYTES elements (length-prefixed UTF-8), each distinct value encoded once: labels repeat a few classes."""
    encoded = {}
    for v in dict.fromkeys(values):
        b = str(v).encode("utf-8")
        encoded[v] = _LENGTH.pack(len(b)) + b
    return b"".join(map(encoded.__getitem__, values))


def encode_response(m: BundleManifest, request: DecodedRequest, request_id: str, answer: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """The service's answer as an OIP response: (body, extra headers)."""
    n = len(answer["predictions"])
    tensors: dict[str, tuple[str, list[int], Any]] = {}
    if m.outputs.task is Task.CLASSIFICATION:
        tensors["label"] = (_LABEL_DATATYPES[m.outputs.label_type], [n], answer["predictions"])
        probs = np.asarray(answer.get("probabilities"), dtype=np.float32).reshape(n, len(m.outputs.classes))
        tensors["probabilities"] = ("FP32", [n, len(m.outputs.classes)], probs)
    else:
        tensors["label"] = ("FP64", [n], np.asarray(answer["predictions"], dtype=np.float64))
    names, binary_names = list(request.outputs), set(request.binary_outputs)
    if "explanations" in answer:
        explained = _explanation_tensors(m, answer["explanations"])
        tensors.update(explained)
        names += list(explained)
        binary_names |= set(explained) if request.binary_explanations else set()
    outputs, binary_parts = [], []
    for name in names:
        datatype, shape, values = tensors[name]
        out: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if name in binary_names:
            raw = _encode_bytes(values) if datatype == "BYTES" else np.ascontiguousarray(values, dtype=DTYPES[datatype]).tobytes()
            out["parameters"] = {"binary_data_size": len(raw)}
            binary_parts.append(raw)
        else:
            out["data"] = [str(v) for v in values] if datatype == "BYTES" else np.asarray(values).reshape(-1).tolist()
        outputs.append(out)
    doc = {
        "model_name": m.model_name,
        "model_version": answer.get("model_version", m.version),
        "id": request.request_id or request_id,
        "outputs": outputs,
    }
    head = orjson.dumps(doc)
    if not binary_parts:
        return head, {"content-type": "application/json"}
    return head + b"".join(binary_parts), {"content-type": BINARY_CONTENT_TYPE, HEADER_LENGTH: str(len(head))}


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message[:1000]})
