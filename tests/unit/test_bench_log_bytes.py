"""benchmarks/bench_log_bytes.py counts under "capture" exactly the lines the logs sink writes (the marker the
subscription filter matches), and everything else the function writes under the other log bytes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from modelserve.records import CaptureRecord
from serving.capture_logs import LogsCaptureSink, redirect_lines

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_log_bytes import access_log_line, platform_lines, split_lines  # noqa: E402


def _record(row: int) -> CaptureRecord:
    return CaptureRecord("req-1", row, "2026-12-06T13:04:05.123456Z", "m", "v1", "prod", {"x": 1.0}, "yes", {"no": 0.25, "yes": 0.75})


def test_the_sinks_lines_are_counted_as_capture_and_every_other_line_as_other() -> None:
    written: list[str] = []
    redirect_lines(written.append)
    try:
        LogsCaptureSink().write("k", [_record(i) for i in range(3)])
    finally:
        redirect_lines(None)
    emf = '{"_aws":{"Timestamp":1,"CloudWatchMetrics":[]},"CapturedRows":[3.0]}'
    # an error line that quotes a capture line in its message is not a capture line
    error = json.dumps({"level": "ERROR", "message": "".join(written)[:200], "record_type": None})
    other_lines = [emf, error, *platform_lines("8f507cfc-0a1b-4697-b07a-ac58fc914c95"), access_log_line("r-1", 1)]
    captures, other = split_lines("".join(written) + "\n".join(other_lines) + "\n")
    assert captures == "".join(written).splitlines() and len(captures) == 3
    assert len(other) == len("\n".join(other_lines).splitlines())
