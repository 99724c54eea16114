"""The labelled-rows join (driftcheck/athena_sql.py: labelled_rows): it parses as Trino (Athena's dialect) and,
transpiled by sqlglot, runs on DuckDB over captures as Firehose's hour-partitioned Parquet and feedback objects
as /feedback files them (gzip JSON Lines under the hour their prediction was made): each label joins the row of
the request it names, only for predictions inside the window and labels received within the grace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot

from driftcheck import athena_sql as q
from modelserve.records import FeedbackRecord, encode_jsonl_gz, feedback_prediction_key, utc_iso
from tests.athena_support import duckdb_captures

TABLE = "modelserve_penguins.captures"
FEEDBACK = "modelserve_penguins.feedback"
START = datetime(2026, 11, 25, 23, tzinfo=UTC)  # the window crosses midnight: two days of partitions
END = START + timedelta(hours=2)
GRACE = timedelta(days=1)
SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("row", pa.int32()),
        ("event_time", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("stage", pa.string()),
        ("inputs", pa.struct([("island", pa.string())])),
        ("prediction", pa.string()),
        ("probabilities", pa.map_(pa.string(), pa.float64())),
        ("variant", pa.string()),
    ]
)


def _capture(request_id: str, row: int, at: datetime, prediction: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "row": row,
        "event_time": utc_iso(at),
        "model_name": "penguins",
        "model_version": "v1",
        "stage": "prod",
        "inputs": {"island": "Dream"},
        "prediction": prediction,
        "probabilities": [(prediction, 0.9)],
        "variant": None,
    }


def _write_captures(root: Path, rows: list[dict[str, Any]]) -> None:
    for i, r in enumerate(rows):
        t = r["event_time"]
        folder = root / "captures" / "model=penguins" / "version=v1" / f"dt={t[:10]}" / f"hour={t[11:13]}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist([r], schema=SCHEMA), folder / f"part-{i}.parquet")


def _file_label(root: Path, predicted: datetime, record: FeedbackRecord, batch: str) -> None:
    received = datetime.strptime(record.received_time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    path = root / feedback_prediction_key("penguins", predicted, received, batch)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_jsonl_gz([record]))


def _label(request_id: str, row: int, label: str, received: datetime, **extra: Any) -> FeedbackRecord:
    return FeedbackRecord(request_id, row, label, utc_iso(received), "penguins", verified=True, **extra)


@pytest.fixture
def joined(tmp_path: Path) -> list[tuple[Any, ...]]:
    inside, midnight, before = START + timedelta(minutes=30), START + timedelta(hours=1, minutes=5), START - timedelta(minutes=20)
    _write_captures(
        tmp_path,
        [
            *[_capture("batch", row, inside, p) for row, p in enumerate(["Adelie", "Gentoo", "Chinstrap"])],
            _capture("after-midnight", 0, midnight, "Gentoo"),
            _capture("late", 0, inside, "Adelie"),
            _capture("before", 0, before, "Adelie"),  # its hour's labels are filed with the window's first hour's
        ],
    )
    _file_label(tmp_path, inside, _label("batch", 2, "Gentoo", inside + timedelta(hours=1)), "b1")  # row 2 of the batch
    _file_label(tmp_path, inside, _label("batch", 0, "Adelie", inside + timedelta(hours=2)), "b2")
    fix = _label("batch", 2, "Chinstrap", inside + timedelta(hours=3), replaces="Gentoo", reason="audit")
    _file_label(tmp_path, inside, fix, "b3")
    _file_label(tmp_path, midnight, _label("after-midnight", 0, "Adelie", midnight + timedelta(hours=20)), "b4")
    # received past its prediction hour's grace: the S3 path does not count it, nor does the join
    _file_label(tmp_path, inside, _label("late", 0, "Gentoo", START + timedelta(hours=1) + GRACE + timedelta(seconds=1)), "b5")
    _file_label(tmp_path, START, _label("before", 0, "Gentoo", inside), "b6")  # a prediction before the window
    sql = q.labelled_rows(q.CaptureWindow(TABLE, "penguins", "v1", START, END), FEEDBACK, GRACE, limit=100)
    sqlglot.parse_one(sql, read="trino")  # Athena's dialect
    (duck,) = sqlglot.transpile(sql, read="trino", write="duckdb")
    return duckdb_captures(tmp_path, TABLE).execute(duck).fetchall()


def test_each_label_joins_the_row_of_the_request_it_names_inside_the_window_in_receipt_order(joined) -> None:
    columns = [*q.LABELLED_CAPTURE_COLUMNS, "label", "received_time", "correction"]
    rows = [dict(zip(columns, r)) for r in joined]
    got = [(r["request_id"], r["row"], r["prediction"], r["label"], r["correction"]) for r in rows]
    assert got == [
        ("batch", 2, "Chinstrap", "Gentoo", False),
        ("batch", 0, "Adelie", "Adelie", False),
        ("batch", 2, "Chinstrap", "Chinstrap", True),  # the correction, after the label it replaces
        ("after-midnight", 0, "Gentoo", "Adelie", False),  # the window's second day
    ]
    assert [r["received_time"] for r in rows] == sorted(r["received_time"] for r in rows)
    assert all(r["probabilities"] and r["event_time"] >= utc_iso(START) for r in rows)


def test_only_the_windows_prediction_hours_are_named_so_athena_prunes_the_feedback_partitions() -> None:
    sql = q.labelled_rows(q.CaptureWindow(TABLE, "penguins", "v1", START, END), FEEDBACK, GRACE, limit=10)
    assert "f.dt IN ('2026-11-25', '2026-11-26')" in sql
    assert "f.\"hour\" = '23'" in sql and "f.\"hour\" = '00'" in sql and "f.\"hour\" = '01'" not in sql
    assert sql.endswith("LIMIT 10")
