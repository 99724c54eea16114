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

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from modelserve.schema import BundleManifest, FeatureKind, InputLayout, Task

from .validation import Column, ColumnBatch, TypedColumn

HEADER_LENGTH = "inference-header-content-length"
BINARY_CONTENT_TYPE = "application/octet-stream"
PLATFORM = "onnxruntime_onnx"

# OIP datatype -> numpy little-endian dtype (BYTES handled apart)
DTYPES: dict[str, str] = {
    "BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
    "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}
NUMERIC_TYPES = frozenset(DTYPES) - {"BOOL"}


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


def _output_specs(m: BundleManifest) -> list[tuple[str, str, list[int]]]:
    if m.outputs.task is Task.CLASSIFICATION:
        return [("label", "BYTES", [-1]), ("probabilities", "FP32", [-1, len(m.outputs.classes)])]
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
    try:
        n = int(header_length)
    except ValueError:
        raise OipError(f"Inference-Header-Content-Length must be an integer, got '{header_length[:40]}'") from None
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


def decode_request(m: BundleManifest, body: bytes, header_length: str | None) -> DecodedRequest:
    head, binary = _split_body(body, header_length)
    try:
        doc = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        raise OipError(f"the inference request is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise OipError("the inference request must be an object with a non-empty 'inputs' list")
    columns: dict[str, Column] = {}
    offset = 0
    single = m.input_layout is InputLayout.SINGLE_TENSOR
    kinds = {f.name: f.kind for f in m.features}
    for tensor in doc["inputs"]:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise OipError("each input must be an object with a 'name'")
        name = tensor["name"]
        values, offset = _tensor_values(tensor, binary, offset)
        shape = tensor["shape"]
        if single:
            if name != (m.single_input_name or "input"):
                raise OipError(f"unknown input '{name[:100]}'; the model's input is '{m.single_input_name or 'input'}'")
            if tensor["datatype"] not in NUMERIC_TYPES or len(shape) != 2 or shape[1] != len(m.features):
                raise OipError(f"input '{name}': expected a numeric [N, {len(m.features)}] tensor")
            width = len(m.features)
            for j, f in enumerate(m.features):
                # one tensor of numbers: NaN is a value here (refused as not finite), never a null
                columns[f.name] = TypedColumn(values[j::width]) if isinstance(values, np.ndarray) else values[j::width]
            continue
        if name not in kinds:
            raise OipError(f"unknown input '{name[:100]}'; the model's inputs are the features {m.feature_names}")
        if len(shape) == 2 and shape[1] != 1:
            raise OipError(f"input '{name}': expected shape [N] or [N, 1], got {shape}")
        _check_datatype(name, tensor["datatype"], kinds[name])
        params = tensor.get("parameters")
        columns[name] = _column(values, tensor["datatype"], isinstance(params, dict) and params.get("binary_data_size") is not None)
    if offset != len(binary):
        raise OipError(f"{len(binary) - offset} bytes of binary data follow the last binary input")
    missing = [n for n in m.feature_names if n not in columns]
    if missing:
        raise OipError(f"missing input(s) {missing[:20]}")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise OipError(f"inputs have different numbers of rows: {sorted(lengths)}")
    outputs, binary_outputs = _requested_outputs(m, doc)
    rid = doc.get("id")
    request_params_raw = doc.get("parameters")
    request_params: dict[str, Any] = request_params_raw if isinstance(request_params_raw, dict) else {}
    return DecodedRequest(
        request_id=str(rid)[:128] if rid is not None else None,
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


def encode_response(
    m: BundleManifest, request: DecodedRequest, request_id: str, answer: dict[str, Any]
) -> tuple[bytes, dict[str, str]]:
    """The service's answer as an OIP response: (body, extra headers)."""
    n = len(answer["predictions"])
    tensors: dict[str, tuple[str, list[int], Any]] = {}
    if m.outputs.task is Task.CLASSIFICATION:
        tensors["label"] = ("BYTES", [n], answer["predictions"])
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
    doc = {"model_name": m.model_name, "model_version": answer.get("model_version", m.version), "id": request.request_id or request_id, "outputs": outputs}
    head = orjson.dumps(doc)
    if not binary_parts:
        return head, {"content-type": "application/json"}
    return head + b"".join(binary_parts), {"content-type": BINARY_CONTENT_TYPE, HEADER_LENGTH: str(len(head))}


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message[:1000]})
