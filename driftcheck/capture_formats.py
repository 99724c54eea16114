"""The rows of one capture object, whatever wrote it.

- JSON Lines, gzip or plain: the S3 sink (one object per request), Firehose's direct stream, and the
  logs sink's stream with Firehose's CloudWatch Logs processors on (each record one capture line).
- CloudWatch Logs envelopes (``{"messageType": "DATA_MESSAGE", "logEvents": [...]}``, gzip, several
  back to back): the logs sink's stream without message extraction (moto's, locally). The capture
  lines are the events' messages; control messages and other log lines are left out.
- Parquet (magic ``PAR1``, ``capture_format=parquet``): not read here. The drift-check asset has no room for
  pyarrow (docs/capture.md#parquet): such an object is counted unreadable like a corrupt one, and the
  window is for Athena (driftcheck/athena_sql.py). ``devtools/parquet_captures.py`` reads them locally.
"""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

from modelserve.records import CAPTURE_RECORD_TYPE, RECORD_TYPE_FIELD, decode_jsonl

PARQUET_MAGIC = b"PAR1"
_DATA_MESSAGE = "DATA_MESSAGE"


def decode_capture_object(data: bytes) -> list[dict[str, Any]]:
    """Rows of a capture object (see the module docstring). Raises ValueError on a corrupt object."""
    if data[:4] == PARQUET_MAGIC:
        raise ValueError("a Parquet capture object: the drift-check asset has no Parquet reader (capture_format=parquet is for Athena)")
    text = _gunzip(data) if data[:2] == b"\x1f\x8b" else data
    if text.lstrip()[:40].startswith(b'{"messageType"') or b'"logEvents"' in text[:200]:
        return log_envelope_rows(text)
    return decode_jsonl(text)


def _gunzip(data: bytes) -> bytes:
    try:
        return gzip.decompress(data)  # every member: Firehose concatenates its records' gzip members
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"corrupt gzip object: {exc}") from None


def log_envelope_rows(text: bytes) -> list[dict[str, Any]]:
    """Capture rows of back-to-back CloudWatch Logs subscription envelopes (JSON objects, no separator)."""
    decoder = json.JSONDecoder()
    doc = text.decode()
    rows: list[dict[str, Any]] = []
    pos = 0
    while True:
        while pos < len(doc) and doc[pos].isspace():
            pos += 1
        if pos >= len(doc):
            return rows
        try:
            envelope, pos = decoder.raw_decode(doc, pos)
        except ValueError as exc:
            raise ValueError(f"corrupt CloudWatch Logs envelope at byte {pos}: {exc}") from None
        if envelope.get("messageType") == _DATA_MESSAGE:
            rows.extend(_capture_messages(envelope.get("logEvents") or ()))


def _capture_messages(events: Any) -> list[dict[str, Any]]:
    rows = []
    for event in events:
        message = event.get("message", "")
        if RECORD_TYPE_FIELD not in message:
            continue  # another log line of the function
        try:
            row = json.loads(message)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get(RECORD_TYPE_FIELD) == CAPTURE_RECORD_TYPE:
            rows.append(row)
    return rows
