"""Rows of a Parquet capture file as Firehose's record format conversion writes them (capture_format=parquet),
in the window reader's row form. Local only (tests, benchmarks): the drift-check asset has no room for pyarrow,
so the Lambda drift check counts such files unreadable (driftcheck/capture_formats.py)."""

from __future__ import annotations

import contextlib
import io
from typing import Any


def parquet_rows(data: bytes) -> list[dict[str, Any]]:
    """Rows of a Parquet file Firehose converted with the Glue table's schema: maps (probabilities)
    back to dicts, and the prediction (a string column) back to a number for a regression model's rows
    (no probabilities)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError("a Parquet capture object, and pyarrow is not installed here") from None
    try:
        rows = pq.read_table(io.BytesIO(data)).to_pylist()
    except Exception as exc:  # noqa: BLE001 - pyarrow raises its own types for a corrupt file
        raise ValueError(f"corrupt Parquet object: {exc}") from None
    for row in rows:
        probabilities = row.get("probabilities")
        if isinstance(probabilities, list):  # a Parquet map reads as (key, value) pairs
            row["probabilities"] = dict(probabilities)
        explanation = row.get("explanation")
        if isinstance(explanation, dict) and isinstance(explanation.get("values"), list):
            explanation["values"] = dict(explanation["values"])
        if row.get("probabilities") is None and isinstance(row.get("prediction"), str):
            with contextlib.suppress(ValueError):
                row["prediction"] = float(row["prediction"])
    return rows
