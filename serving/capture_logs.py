"""The ``logs`` capture sink: each capture record as one structured line on the function's stdout.

Lambda forwards stdout to the function's CloudWatch Logs group; a subscription filter on the
lines' marker (``record_type``) sends them to a Firehose stream, which files them by model, version
and event hour (dynamic partitioning) and, optionally, converts them to Parquet (cdk/capture.py).
Nothing leaves the process on the request path: a write is a ``print``, so the invocation is not
held open by a network call, and a capture costs no PUT.

One line is one capture record (one scored row), so a request of any size is split into lines that
each fit a log event; the rows of a request are joined back by ``request_id`` and ``row`` (Firehose
keeps them as separate records, Parquet as rows of one row group per delivered file).

Limits (looked up): a CloudWatch Logs event is at most 256 KiB (1 MiB since 2025, per PutLogEvents'
reference), PutLogEvents batches at most 1 MiB; Lambda splits a long stdout line into several log
events, observed at 64 KiB for some runtimes. A line is therefore kept under ``MAX_LINE_BYTES``
(64 KiB): a row over it (an enormous categorical value) is not written, logged and counted as lost
(``on_lost``: the CaptureErrors metric), never split into fragments Firehose could not parse. A row
whose explanation (``capture_explanations``) makes the line too long is written without it, and counted
(``on_explanation_dropped``: ExplainCaptureErrors).

What this sink cannot see: a line Lambda drops (its log throughput limit) or Firehose fails to deliver.
Those are counted downstream: the stack alarms on Firehose's failed deliveries and on CapturedRows (what
the function wrote) against the rows delivered (docs/capture.md#the-logs-sink).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from modelserve.records import CAPTURE_RECORD_TYPE, RECORD_TYPE_FIELD, CaptureRecord, compact_json

logger = logging.getLogger(__name__)

# under every limit of the path: Lambda's stdout line splitting (64 KiB observed), a CloudWatch
# Logs event (256 KiB), Firehose's record (1,000 KiB)
MAX_LINE_BYTES = 64 * 1024

LineWriter = Callable[[str], None]


def stdout_lines(text: str) -> None:
    """Lambda's path: stdout, which the runtime forwards to CloudWatch Logs line by line."""
    sys.stdout.write(text)
    sys.stdout.flush()


# where the lines go: stdout in Lambda; a local run (devtools) forwards them to local CloudWatch Logs
_line_writer: LineWriter = stdout_lines


def redirect_lines(writer: LineWriter | None) -> None:
    """Send capture lines to ``writer`` instead of stdout (None: back to stdout). For local runs only,
    where no Lambda runtime forwards stdout to CloudWatch Logs (devtools/local.py)."""
    global _line_writer
    _line_writer = writer or stdout_lines


def capture_line(record: CaptureRecord) -> str:
    """One record's log line: its JSON (the S3 sinks' line) with the marker field first."""
    return compact_json({RECORD_TYPE_FIELD: CAPTURE_RECORD_TYPE, **record.to_dict()})


@dataclass
class LogsCaptureSink:
    """Writes a request's records as log lines (see the module docstring); raises only when the
    output itself fails (the capturer then retries and counts). Rows over ``max_line_bytes`` are left
    out and reported to ``on_lost``."""

    on_lost: Callable[[int], None] = lambda n: None
    max_line_bytes: int = MAX_LINE_BYTES
    # rows written without their explanation, which made the line too long (ExplainCaptureErrors)
    on_explanation_dropped: Callable[[int], None] = lambda n: None
    lost: int = field(default=0, init=False)

    def lines(self, records: Sequence[CaptureRecord]) -> tuple[list[str], int]:
        """The lines to write and how many rows are too large to write. A row whose explanation makes its
        line too long is written without the explanation (counted by ``on_explanation_dropped``)."""
        out, too_large, dropped = [], 0, 0
        for record in records:
            line = capture_line(record)
            if record.explanation is not None and len(line.encode()) + 1 > self.max_line_bytes:
                line = capture_line(replace(record, explanation=None))
                dropped += 1
            if len(line.encode()) + 1 > self.max_line_bytes:
                too_large += 1
                logger.error(
                    "capture row %s/%d is over %d bytes as a log line: not captured", record.request_id, record.row, self.max_line_bytes
                )
                continue
            out.append(line)
        if dropped:
            logger.warning("%d capture row(s) written without their explanation: over %d bytes as a log line", dropped, self.max_line_bytes)
            try:
                self.on_explanation_dropped(dropped)
            except Exception:  # noqa: BLE001 - a metric must not fail the capture
                logger.exception("explanation drop hook failed")
        return out, too_large

    def write(self, key: str, records: Sequence[CaptureRecord]) -> None:
        lines, too_large = self.lines(records)
        if lines:
            # one write for the request: lines of concurrent writers never interleave within a request's text
            _line_writer("".join(line + "\n" for line in lines))
        if too_large:
            self.lost += too_large
            try:
                self.on_lost(too_large)
            except Exception:  # noqa: BLE001 - a metric must not fail the capture
                logger.exception("capture loss hook failed")
