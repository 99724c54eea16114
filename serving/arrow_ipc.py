"""Apache Arrow IPC stream bodies for ``/predict`` (``application/vnd.apache.arrow.stream``).

For large batches: a client writes its DataFrame as an Arrow stream (pyarrow, polars, pandas via
pyarrow, DuckDB, Spark) and gets the answer back as Arrow when it sends
``Accept: application/vnd.apache.arrow.stream``. The stream's columns become a ``ColumnBatch`` the
service validates (the checks of a ``dataframe_split`` payload), scores and captures, so Arrow changes
neither validation nor what the drift check sees; numeric and boolean columns are read from the Arrow
buffers as numpy arrays, strings (plain or dictionary-encoded, pandas' category) decoded once per
distinct value. Read and written with nanoarrow (a 1 MB wheel, imported
only when an Arrow body arrives: no cold-start cost for JSON clients).

Answer columns: ``prediction`` (a classifier's labels in their own type, as JSON answers carry them:
int64 for integer labels, bool for boolean ones, string (utf8) for text; double for a regressor) and,
for a classifier, ``probability_<class>`` (double) per class in the bundle's class order; the request id
and model version are in the ``x-request-id`` / ``x-model-version`` headers and the schema metadata.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelserve.schema import LabelType, OutputSpec, Task

from .validation import Column, ColumnBatch, TypedColumn

ARROW_STREAM = "application/vnd.apache.arrow.stream"

# Arrow storage types read straight from their buffers, as numpy dtypes (Arrow buffers are little-endian)
_NUMBERS = {
    "int8": "<i1",
    "int16": "<i2",
    "int32": "<i4",
    "int64": "<i8",
    "uint8": "<u1",
    "uint16": "<u2",
    "uint32": "<u4",
    "uint64": "<u8",
    "half_float": "<f2",
    "float": "<f4",
    "double": "<f8",
}
_STRING_OFFSETS = {"string": "<i4", "large_string": "<i8"}
_TYPE_NAMES: dict[Any, str] = {}  # nanoarrow's Type -> the names above, filled on first use (nanoarrow is imported lazily)


class ArrowBodyError(ValueError):
    """The body is not a readable Arrow IPC stream of flat columns."""


def decode_stream(body: bytes) -> ColumnBatch:
    """The stream's columns, each concatenated over the record batches: numbers and booleans as typed
    numpy columns read from the Arrow buffers, strings (plain or dictionary-encoded) as Python strings
    decoded once per distinct value; any other type as nanoarrow's Python values (validation then
    names the value it refuses)."""
    import nanoarrow as na

    if not _TYPE_NAMES:
        _TYPE_NAMES.update({na.Type[name.upper()]: name for name in [*_NUMBERS, *_STRING_OFFSETS, "bool", "dictionary"]})
    try:
        table = na.ArrayStream.from_readable(body).read_all()
    except Exception as exc:  # nanoarrow raises its own error types for each malformation
        raise ArrowBodyError(f"not an Arrow IPC stream: {str(exc)[:200]}") from None
    if table.schema.n_fields == 0:
        raise ArrowBodyError("the Arrow stream has no columns")
    batches = list(table.iter_chunk_views())  # one struct view per record batch
    names: list[str] = []
    columns: list[Column] = []
    for i in range(table.schema.n_fields):
        field = table.schema.field(i)
        name = str(field.name)
        is_text_dictionary = field.type == na.Type.DICTIONARY and field.value_type.type in (na.Type.STRING, na.Type.LARGE_STRING)
        if field.n_fields or (field.type == na.Type.DICTIONARY and not is_text_dictionary):
            raise ArrowBodyError(f"column '{name[:100]}' is nested ({field.type}); send one flat column per feature")
        names.append(name)
        try:
            column = _column([b.child(i) for b in batches], _TYPE_NAMES.get(field.type, ""))
            columns.append(column if column is not None else table.child(i).to_pylist())
        except ArrowBodyError:
            raise
        except Exception as exc:
            raise ArrowBodyError(f"column '{name[:100]}' cannot be read: {str(exc)[:200]}") from None
    return ColumnBatch(names, columns)


def _column(views: list[Any], arrow_type: str) -> Column | None:
    """One column from its record batches' buffers, or None for a type read as Python values instead.
    ``arrow_type``: the field's logical type name (a timestamp's storage is int64, yet it is no number)."""
    if not views:
        return None
    out: list[str | None] = []
    if arrow_type == "dictionary":
        for v in views:
            out += _dictionary_strings(v)
        return out
    if arrow_type in _STRING_OFFSETS:
        for v in views:
            out += _strings(v)
        return out
    if arrow_type in _NUMBERS or arrow_type == "bool":
        parts = [_numbers(v, arrow_type) for v in views]
        values = np.concatenate([p for p, _ in parts])
        if all(n is None for _, n in parts):
            return TypedColumn(values)
        return TypedColumn(values, np.concatenate([np.zeros(len(p), dtype=bool) if n is None else n for p, n in parts]))
    return None


def _nulls(view: Any) -> np.ndarray | None:
    if view.null_count == 0 or view.buffer(0).size_bytes == 0:
        return None
    bits = np.unpackbits(np.frombuffer(memoryview(view.buffer(0)), np.uint8), bitorder="little", count=view.offset + view.length)
    return bits[view.offset :] == 0


def _numbers(view: Any, kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    start, end = view.offset, view.offset + view.length
    raw = np.frombuffer(memoryview(view.buffer(1)), np.uint8)
    if kind == "bool":  # one bit per value
        values = np.unpackbits(raw, bitorder="little", count=end)[start:].astype(bool)
    else:
        values = raw.view(_NUMBERS[kind])[start:end]
    return values, _nulls(view)


def _strings(view: Any) -> list[str | None]:
    """The view's strings (None where null); each distinct string decoded once."""
    offsets = np.frombuffer(memoryview(view.buffer(1)), np.uint8).view(_STRING_OFFSETS[view.storage_type])
    bounds = offsets[view.offset : view.offset + view.length + 1].tolist()
    data = memoryview(view.buffer(2)).tobytes()
    out: list[str | None]
    if data.isascii():  # one byte per character: slice the decoded text
        ascii_text = data.decode("ascii")
        out = [ascii_text[a:b] for a, b in zip(bounds, bounds[1:])]
        _set_nulls(out, view)
        return out
    decoded: dict[bytes, str] = {}
    out = []
    append = out.append
    for a, b in zip(bounds, bounds[1:]):
        element = data[a:b]
        word = decoded.get(element)
        if word is None:
            try:
                word = decoded[element] = element.decode("utf-8")
            except UnicodeDecodeError:
                raise ArrowBodyError("a string column holds bytes that are not UTF-8") from None
        append(word)
    _set_nulls(out, view)
    return out


def _set_nulls(values: list[str | None], view: Any) -> None:
    nulls = _nulls(view)
    if nulls is not None:
        for i in np.flatnonzero(nulls).tolist():
            values[i] = None


def _dictionary_strings(view: Any) -> list[str | None]:
    """A dictionary-encoded string column (pandas' category dtype): the dictionary decoded once, then indexed."""
    words = np.array([*_strings(view.dictionary), None], dtype=object)
    indices, nulls = _numbers(view, view.storage_type)
    indices = indices.astype(np.int64)
    if nulls is not None:
        indices[nulls] = len(words) - 1  # the None after the dictionary's words
    present = indices if nulls is None else indices[~nulls]
    if present.size and (present.min() < 0 or present.max() >= len(words) - 1):
        raise ArrowBodyError("a dictionary column holds an index beyond its dictionary")
    out: list[str | None] = words[indices].tolist()
    return out


# the Arrow type of a classifier's prediction column, by the labels' own type (None: text labels); named as pyarrow prints them
_LABEL_ARROW_TYPES = {None: "string", LabelType.STRING: "string", LabelType.INTEGER: "int64", LabelType.BOOLEAN: "bool"}


def prediction_type(outputs: OutputSpec) -> str:
    """The Arrow type of the answer's ``prediction`` column: a classifier's labels in their own type, double for a regressor."""
    return "double" if outputs.task is Task.REGRESSION else _LABEL_ARROW_TYPES[outputs.label_type]


def encode_answer(answer: dict[str, Any], outputs: OutputSpec) -> bytes:
    """The service's answer as an Arrow IPC stream of one record batch; ``outputs``: the served model's
    (the prediction column's type follows its labels)."""
    import io

    import nanoarrow as na
    import nanoarrow.ipc as ipc

    predictions = answer["predictions"]
    n = len(predictions)
    fields: dict[str, Any] = {}
    children = []
    # built from buffers: nanoarrow's builders take a Python call per value
    kind = prediction_type(outputs)
    if kind == "string":
        fields["prediction"] = na.string()
        encoded = {p: str(p).encode("utf-8") for p in dict.fromkeys(predictions)}
        parts = list(map(encoded.__getitem__, predictions))
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(np.fromiter(map(len, parts), dtype=np.int32, count=n), out=offsets[1:])
        children.append(na.c_array_from_buffers(na.string(), n, [None, offsets, b"".join(parts)]))
    elif kind == "int64":
        fields["prediction"] = na.int64()
        children.append(na.c_array_from_buffers(na.int64(), n, [None, np.asarray(predictions, dtype=np.int64)]))
    elif kind == "bool":  # one bit per value
        fields["prediction"] = na.bool_()
        bits = np.packbits(np.asarray(predictions, dtype=bool), bitorder="little")
        children.append(na.c_array_from_buffers(na.bool_(), n, [None, bits]))
    else:
        fields["prediction"] = na.float64()
        children.append(na.c_array_from_buffers(na.float64(), n, [None, np.asarray(predictions, dtype=np.float64)]))
    if "probabilities" in answer:
        probs = np.asarray(answer["probabilities"], dtype=np.float64).reshape(n, len(answer["classes"]))
        for j, c in enumerate(answer["classes"]):
            fields[f"probability_{c}"] = na.float64()
            children.append(na.c_array_from_buffers(na.float64(), n, [None, np.ascontiguousarray(probs[:, j])]))
    schema = na.struct(fields, nullable=False)
    batch = na.c_array_from_buffers(schema, length=n, buffers=[None], children=children)
    out = io.BytesIO()
    writer = ipc.StreamWriter.from_writable(out)
    writer.write_stream(na.c_array_stream(batch))
    writer.close()
    return out.getvalue()
