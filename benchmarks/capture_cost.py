"""Cost per month of each capture sink at 1 k, 1 M and 100 M requests per day (docs/cost.md).

    python benchmarks/capture_cost.py                  # the table in docs/cost.md
    python benchmarks/capture_cost.py --billed-ms s3=39 firehose=30 logs=3 --row-bytes 468

A calculator over list prices (us-east-1, on-demand, no free tier), not a measurement; its inputs
are measured elsewhere: the billed duration per sink (``benchmarks/bench_post_response.py``: the end of
the invocation under the Lambda emulator), the other log lines per request (``benchmarks/bench_log_bytes.py``:
1,334 bytes), the capture line's size (468 bytes for the sample model, one row per request: `benchmarks/bench_log_bytes.py`) and the drift
check's read time (``benchmarks/bench_drift.py``). Without X-Ray.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from modelserve.settings import DeploySettings, SharedSettings  # noqa: E402

GB = 1e9
# list prices, us-east-1 (USD)
API_GATEWAY_REST_PER_M = 3.50
LAMBDA_REQUEST_PER_M = 0.20
LAMBDA_GB_S_ARM = 0.0000133334
LOGS_INGEST_PER_GB = 0.50  # CloudWatch Logs standard ingestion (what Lambda's stdout costs)
S3_PUT_PER_K = 0.005
S3_GET_PER_K = 0.0004
S3_GB_MONTH = 0.023
FIREHOSE_INGEST_PER_GB = 0.029  # Direct PUT; each record billed as at least 5 KB
FIREHOSE_MIN_RECORD_BYTES = 5 * 1024
FIREHOSE_DYNAMIC_PARTITIONING_PER_GB = 0.020
FIREHOSE_OBJECTS_PER_K = 0.005  # dynamic partitioning: per 1,000 S3 objects delivered
FIREHOSE_FORMAT_CONVERSION_PER_GB = 0.018
ATHENA_PER_TB = 5.0
ATHENA_MIN_QUERY_BYTES = 10e6  # Athena bills at least 10 MB a query
ATHENA_WINDOW_HOURS = (24, 1)  # each hourly run checks the 24 h window and the 1 h one

# per one-row request besides the capture line, measured by benchmarks/bench_log_bytes.py (2026-12-06, sample model,
# default settings): the function's EMF line 457 B (it writes no other line), Lambda's START/END/REPORT 354 B,
# the stage's access log line 523 B
OTHER_LOG_BYTES = 1334
STORED_BYTES_PER_ROW = 100  # gzip JSON Lines or Parquet of a capture row (a 468-byte line compresses ~4x)
PARQUET_SCAN_SHARE = 0.25  # an aggregate query reads the columns it needs
DRIFT_CHECK_FIXED_MONTH = 0.60  # hourly check, 2 GB, ~30 s (docs/cost.md)
DRIFT_READ_S_PER_ROW = 21e-6  # first read of a capture row (docs/monitoring.md#scale-measured)
DRIFT_GB = 2.0
DAYS = 30


@dataclass(frozen=True)
class Month:
    request_path: float
    capture: float
    drift_check: float
    athena: float
    storage: float

    @property
    def total(self) -> float:
        return self.request_path + self.capture + self.drift_check + self.athena + self.storage


def athena_queries_per_window(bundle_dir: Path = REPO / "models" / "sample") -> int:
    """The queries the drift check runs on one window of the sample model, counted from its real plan
    (driftcheck/athena_window.py: WindowPlan): row count, nulls, out of range, one category count per
    categorical feature, the numeric features' histograms, predicted classes, the labelled rows (the join with
    the feedback table), the refused requests by reason and by field, the sample."""
    sys.path.insert(0, str(REPO))
    from driftcheck.athena_sql import CaptureWindow
    from driftcheck.athena_window import WindowPlan
    from modelserve.bundle import ModelBundle
    from modelserve.schema import FeatureKind, Task

    m = ModelBundle.load(bundle_dir).manifest
    numeric = [f.name for f in m.features if f.kind is FeatureKind.NUMERIC]
    now = datetime.now(UTC)
    plan = WindowPlan(
        CaptureWindow("db.captures", m.model_name, m.version, now - timedelta(hours=24), now),
        tuple(m.features),
        {name: (0.0, 1.0) for name in numeric},  # the reference's ranges and bins: their values do not change the count
        10_000,
        m.outputs.task is Task.CLASSIFICATION,
        {name: (0.0, 0.5, 1.0) for name in numeric},
        feedback_table="db.feedback",  # as the drift check plans it (DriftService.athena_plan)
        rejects_table="db.rejects",
    )
    return 1 + len(plan.queries(1_000_000))


def month(
    sink: str,
    per_day: float,
    billed_ms: float,
    row_bytes: float,
    expiry_days: int,
    parquet: bool = False,
    queries: int = 8,
    other_log_bytes: float = OTHER_LOG_BYTES,
) -> Month:
    """One month at ``per_day`` one-row requests with ``sink``."""
    n = per_day * DAYS
    request_path = n / 1e6 * (API_GATEWAY_REST_PER_M + LAMBDA_REQUEST_PER_M) + n * billed_ms / 1000 * LAMBDA_GB_S_ARM
    request_path += n * other_log_bytes / GB * LOGS_INGEST_PER_GB
    line_gb = n * row_bytes / GB
    if sink == "s3":
        capture = n / 1000 * S3_PUT_PER_K
        gets = n / 1000 * S3_GET_PER_K  # each object read once (hour samples)
    elif sink == "firehose":
        capture = n * max(row_bytes, FIREHOSE_MIN_RECORD_BYTES) / GB * FIREHOSE_INGEST_PER_GB
        gets = 0.0  # a few MB-sized objects per hour
    else:  # logs: CloudWatch Logs ingestion, then Firehose (the subscription's batches are many KB: no 5 KB rounding)
        objects = 24 * DAYS * 12  # per partition hour: one object per 300 s buffer
        capture = line_gb * (LOGS_INGEST_PER_GB + FIREHOSE_INGEST_PER_GB + FIREHOSE_DYNAMIC_PARTITIONING_PER_GB)
        capture += objects / 1000 * FIREHOSE_OBJECTS_PER_K + (line_gb * FIREHOSE_FORMAT_CONVERSION_PER_GB if parquet else 0.0)
        gets = 0.0
    drift = DRIFT_CHECK_FIXED_MONTH + gets + n * DRIFT_READ_S_PER_ROW * DRIFT_GB * LAMBDA_GB_S_ARM
    stored_gb = per_day * STORED_BYTES_PER_ROW / GB * expiry_days
    # Athena (drift_athena=on), when the drift check queries its windows every hour instead of reading them:
    # each query scans its window's partitions (JSON: whole rows; Parquet: the columns it names)
    share = PARQUET_SCAN_SHARE if parquet else 1.0
    per_run = sum(
        queries * max(per_day * hours / 24 * STORED_BYTES_PER_ROW * share, ATHENA_MIN_QUERY_BYTES) for hours in ATHENA_WINDOW_HOURS
    )
    athena = 24 * DAYS * per_run / 1e12 * ATHENA_PER_TB
    return Month(request_path, capture, drift, athena, stored_gb * S3_GB_MONTH)


def table(billed: dict[str, float], row_bytes: float, expiry_days: int, queries: int, other_log_bytes: float = OTHER_LOG_BYTES) -> str:
    rows = [
        "| requests per day | sink | request path | capture | drift check (Lambda) | Athena path (hourly, optional) | storage | "
        "total per month (Lambda path) | per million requests |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    # the template's defaults, from the one place they are defined
    default = (SharedSettings.model_fields["capture_sink"].default, DeploySettings.model_fields["capture_format"].default == "parquet")
    for per_day in (1e3, 1e6, 1e8):
        for sink, parquet in (("s3", False), ("firehose", False), ("logs", False), ("logs", True)):
            m = month(sink, per_day, billed[sink], row_bytes, expiry_days, parquet, queries, other_log_bytes)
            name = f"`{sink}`" + (" + Parquet" if parquet else "") + (" (default)" if (sink, parquet) == default else "")
            per_m = m.total - m.athena
            rows.append(
                f"| {per_day:,.0f} | {name} | ${m.request_path:,.2f} | ${m.capture:,.2f} | ${m.drift_check:,.2f} | ${m.athena:,.2f} | "
                f"${m.storage:,.2f} | ${per_m:,.2f} | ${per_m / (per_day * DAYS / 1e6):,.2f} |"
            )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--billed-ms", nargs="*", default=["s3=39", "firehose=30", "logs=3"], help="sink=billed ms per request")
    ap.add_argument("--row-bytes", type=float, default=468.0, help="bytes of one capture line")
    ap.add_argument(
        "--other-log-bytes", type=float, default=OTHER_LOG_BYTES, help="log bytes per request besides the capture line (bench_log_bytes.py)"
    )
    ap.add_argument("--expiry-days", type=int, default=365, help="capture_expiry_days")
    args = ap.parse_args()
    billed = {k: float(v) for k, v in (item.split("=") for item in args.billed_ms)}
    queries = athena_queries_per_window()
    print(f"Athena path: {queries} queries a window (the sample model's plan)\n")
    print(table(billed, args.row_bytes, args.expiry_days, queries, args.other_log_bytes))


if __name__ == "__main__":
    main()
