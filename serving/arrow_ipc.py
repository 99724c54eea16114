"""Apache Arrow IPC stream bodies for ``/predict`` (``application/vnd.apache.arrow.stream``).

For large batches: a client writes its DataFrame as an Arrow stream (pyarrow, polars, pandas via
pyarrow, DuckDB, Spark) and gets the answer back as Arrow when it sends
``Accept: application/vnd.apache.arrow.stream``. The stream's columns become the
``dataframe_split`` payload the service validates, scores and captures, so Arrow changes neither
validation nor what the drift check sees. Read and written with nanoarrow (a 1 MB wheel, imported
only when an Arrow body arrives: no cold-start cost for JSON clients).

Answer columns: ``prediction`` (utf8 for a classifier, float64 for a regressor) and, for a
classifier, ``probability_<class>`` (float64) per class in the bundle's class order; the request id
and model version are in the ``x-request-id`` / ``x-model-version`` headers and the schema metadata.
"""

from __future__ import annotations

from typing import Any

ARROW_STREAM = "application/vnd.apache.arrow.stream"


class ArrowBodyError(ValueError):
    """The body is not a readable Arrow IPC stream of flat columns."""


def decode_stream(body: bytes) -> dict[str, Any]:
    """The stream's record batches as ``{"dataframe_split": {"columns", "data"}}``."""
    import nanoarrow as na

    try:
        table = na.ArrayStream.from_readable(body).read_all()
    except Exception as exc:  # nanoarrow raises its own error types for each malformation
        raise ArrowBodyError(f"not an Arrow IPC stream: {str(exc)[:200]}") from None
    if table.schema.n_fields == 0:
        raise ArrowBodyError("the Arrow stream has no columns")
    columns, values = [], []
    for i in range(table.schema.n_fields):
        field = table.schema.field(i)
        if field.n_fields or field.type in (na.Type.DICTIONARY,):
            raise ArrowBodyError(f"column '{str(field.name)[:100]}' is nested ({field.type}); send one flat column per feature")
        columns.append(str(field.name))
        try:
            values.append(table.child(i).to_pylist())
        except Exception as exc:
            raise ArrowBodyError(f"column '{str(field.name)[:100]}' cannot be read: {str(exc)[:200]}") from None
    return {"dataframe_split": {"columns": columns, "data": [list(row) for row in zip(*values, strict=True)]}}


def encode_answer(answer: dict[str, Any]) -> bytes:
    """The service's answer as an Arrow IPC stream of one record batch."""
    import io

    import nanoarrow as na
    import nanoarrow.ipc as ipc
    import numpy as np

    predictions = answer["predictions"]
    n = len(predictions)
    fields: dict[str, Any] = {}
    children = []
    if "classes" in answer:
        fields["prediction"] = na.string()
        children.append(na.c_array([str(p) for p in predictions], na.string()))
        probs = np.asarray(answer.get("probabilities"), dtype=np.float64).reshape(n, len(answer["classes"]))
        for j, c in enumerate(answer["classes"]):
            fields[f"probability_{c}"] = na.float64()
            children.append(na.c_array(np.ascontiguousarray(probs[:, j]), na.float64()))
    else:
        fields["prediction"] = na.float64()
        children.append(na.c_array(np.asarray(predictions, dtype=np.float64), na.float64()))
    schema = na.struct(fields, nullable=False)
    batch = na.c_array_from_buffers(schema, length=n, buffers=[None], children=children)
    out = io.BytesIO()
    writer = ipc.StreamWriter.from_writable(out)
    writer.write_stream(na.c_array_stream(batch))
    writer.close()
    return out.getvalue()
