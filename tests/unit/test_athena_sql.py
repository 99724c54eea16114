"""The drift check's Athena SQL (driftcheck/athena_sql.py): each query parses as Trino (Athena's dialect)
and, transpiled by sqlglot, runs on DuckDB over hour-partitioned Parquet files laid out as Firehose's
dynamic partitioning writes them, giving the counts Python computes over the same rows; a value in 1 of
100,000 rows is counted exactly."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot

from driftcheck import athena_sql as q
from modelserve.records import utc_iso

pytestmark = pytest.mark.slow  # 200,000 rows written to Parquet once (about 15 s here)

START = datetime(2026, 11, 25, 22, tzinfo=UTC)
HOURS = 4  # crosses midnight: two dt partitions
ROWS_PER_HOUR = 50_000
RARE = "Atlantis"  # 1 in 100,000 rows

INPUTS = pa.struct([("bill_length_mm", pa.float64()), ("island", pa.string()), ("is_adult", pa.bool_())])
SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("row", pa.int32()),
        ("event_time", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("stage", pa.string()),
        ("inputs", INPUTS),
        ("prediction", pa.string()),
        ("probabilities", pa.map_(pa.string(), pa.float64())),
        ("variant", pa.string()),  # champion or challenger (cdk/capture.py: the captures table's columns)
    ]
)


def _rows(hour: datetime, n: int, rng: random.Random, rare_at: set[int]) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        t = hour + timedelta(microseconds=rng.randrange(3_600_000_000))
        island = RARE if i in rare_at else rng.choice(["Biscoe", "Dream", "Torgersen", None])
        length = None if rng.random() < 0.02 else rng.gauss(44.0, 5.0)
        out.append(
            {
                "request_id": f"r{hour:%d%H}-{i}",
                "row": 0,
                "event_time": utc_iso(t),
                "model_name": "penguins",
                "model_version": "v1",
                "stage": "prod",
                "inputs": {"bill_length_mm": length, "island": island, "is_adult": bool(i % 2)},
                "prediction": rng.choice(["Adelie", "Gentoo", "Chinstrap"]),
                "probabilities": [("Adelie", 0.5), ("Gentoo", 0.5)],
                "variant": "champion" if i % 3 else None,
            }
        )
    return out


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """Parquet files under captures/model=/version=/dt=/hour=/, as Firehose writes them; and every row."""
    root = tmp_path_factory.mktemp("captures")
    rng = random.Random(7)
    every: list[dict[str, Any]] = []
    for h in range(HOURS):
        hour = START + timedelta(hours=h)
        rare_at = {rng.randrange(ROWS_PER_HOUR)} if h % 2 == 0 else set()  # 2 in 200,000
        rows = _rows(hour, ROWS_PER_HOUR, rng, rare_at)
        folder = root / "captures" / "model=penguins" / "version=v1" / f"dt={hour:%Y-%m-%d}" / f"hour={hour:%H}"
        folder.mkdir(parents=True)
        for part in range(2):  # two delivered files per hour
            pq.write_table(pa.Table.from_pylist(rows[part::2], schema=SCHEMA), folder / f"stream-{part}.parquet")
        every += rows
    # another version's hour: never counted
    other = root / "captures" / "model=penguins" / "version=v0" / f"dt={START:%Y-%m-%d}" / f"hour={START:%H}"
    other.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(_rows(START, 100, rng, set()), schema=SCHEMA), other / "old.parquet")
    return root, every


@pytest.fixture(scope="module")
def db(captures: tuple[Path, list[dict[str, Any]]]) -> duckdb.DuckDBPyConnection:
    root, _ = captures
    con = duckdb.connect()
    con.execute("CREATE SCHEMA modelserve")
    con.execute(
        "CREATE VIEW modelserve.captures AS SELECT * FROM read_parquet("
        f"'{root}/captures/*/*/*/*/*.parquet', hive_partitioning = true, hive_types_autocast = false)"
    )
    return con


def run(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    sqlglot.parse_one(sql, read="trino")  # Athena's dialect: raises on anything it would not parse
    (duck,) = sqlglot.transpile(sql, read="trino", write="duckdb")
    return con.execute(duck).fetchall()


def window(start: datetime, end: datetime) -> q.CaptureWindow:
    return q.CaptureWindow("modelserve.captures", "penguins", "v1", start, end)


def inside(rows: list[dict[str, Any]], start: datetime, end: datetime) -> list[dict[str, Any]]:
    lo, hi = utc_iso(start), utc_iso(end)
    return [r for r in rows if lo <= r["event_time"] < hi]


WHOLE = (START, START + timedelta(hours=HOURS))
# an edge inside an hour at each end, across midnight
CUT = (START + timedelta(minutes=37), START + timedelta(hours=2, minutes=11))


@pytest.mark.parametrize("bounds", [WHOLE, CUT])
def test_row_and_null_counts_are_exact(db, captures, bounds) -> None:
    rows = inside(captures[1], *bounds)
    ((count, requests),) = run(db, q.row_count(window(*bounds)))
    assert count == len(rows) and requests == sum(r["row"] == 0 for r in rows)
    ((n, null_length, null_island),) = run(db, q.null_counts(window(*bounds), ["bill_length_mm", "island"]))
    assert n == len(rows)
    assert null_length == sum(r["inputs"]["bill_length_mm"] is None for r in rows)
    assert null_island == sum(r["inputs"]["island"] is None for r in rows)


def test_a_value_in_one_of_100000_rows_is_counted_exactly(db, captures) -> None:
    rows = inside(captures[1], *WHOLE)
    expected = Counter(r["inputs"]["island"] for r in rows)
    assert expected[RARE] == 2 and len(rows) == 200_000
    got = dict(run(db, q.category_counts(window(*WHOLE), "island")))
    assert got == dict(expected)
    known = {"Biscoe", "Dream", "Torgersen"}
    assert {v for v in got if v is not None and v not in known} == {RARE}  # the new value, by name


def test_histogram_on_the_references_edges_matches_numpy(db, captures) -> None:
    rows = inside(captures[1], *CUT)
    edges = [35.0, 40.0, 44.0, 48.0, 55.0]
    values = np.array([r["inputs"]["bill_length_mm"] for r in rows if r["inputs"]["bill_length_mm"] is not None])
    expected = Counter(np.searchsorted(edges, values, side="right").tolist())
    got = dict(run(db, q.histogram(window(*CUT), "bill_length_mm", edges)))
    assert got == dict(expected)


def test_histogram_counts_bin_as_the_reference_profile_does_the_last_edge_included(db, captures) -> None:
    from monitoring.histograms import HistogramBins

    rows = inside(captures[1], *CUT)
    values = np.array([r["inputs"]["bill_length_mm"] for r in rows if r["inputs"]["bill_length_mm"] is not None])
    last = float(np.sort(values)[-40])  # a value the window holds: numpy's last bin is closed on the right
    edges = [35.0, 40.0, 44.0, 48.0, last]
    ((n, *got),) = run(db, q.histogram_counts(window(*CUT), [("bill_length_mm", edges), ("bill_length_mm", edges[:2])]))
    nulls = len(rows) - len(values)
    expected = HistogramBins(kind="numeric", edges=tuple(edges)).count(values, np.zeros(nulls, dtype=bool) | True)
    assert n == len(rows) and expected[-1] == nulls
    assert got[:6] == expected[:-1].tolist() and got[4] > 0  # below, 3 inner, the closed last bin, above
    assert got[6:] == HistogramBins(kind="numeric", edges=tuple(edges[:2])).count(values, np.zeros(0, dtype=bool))[:-1].tolist()


def test_prediction_counts_are_exact(db, captures) -> None:
    rows = inside(captures[1], *WHOLE)
    assert dict(run(db, q.prediction_counts(window(*WHOLE)))) == dict(Counter(r["prediction"] for r in rows))


def test_the_sample_is_about_the_cap_and_inside_the_window(db, captures) -> None:
    rows = inside(captures[1], *CUT)
    percent = q.sample_percent(len(rows), 10_000)
    got = run(db, q.sample(window(*CUT), percent, 10_000))
    assert 8_000 <= len(got) <= 10_000
    lo, hi = utc_iso(CUT[0]), utc_iso(CUT[1])
    assert all(lo <= r[2] < hi and r[4] == "v1" for r in got)
    assert len({r[0] for r in got}) == len(got)


def test_only_the_windows_days_are_named_so_athena_prunes_partitions() -> None:
    where = window(*CUT).where()
    assert "dt IN ('2026-11-25', '2026-11-26')" in where
    one_day = window(START, START + timedelta(hours=1)).where()
    assert "dt IN ('2026-11-25')" in one_day


@pytest.mark.parametrize("bad", ["bill length", "x;DROP TABLE captures", "1abc"])
def test_a_name_that_is_not_a_plain_identifier_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        q.feature(bad)


def test_literals_cannot_close_their_quotes() -> None:
    w = q.CaptureWindow("modelserve.captures", "pen'guins", "v1", *WHOLE)
    sqlglot.parse_one(q.row_count(w), read="trino")
    assert "'pen''guins'" in w.where()


def test_out_of_range_counts_match_the_reference_range_rule(db, captures) -> None:
    """Below the low bound or above the high one, nulls not counted; a missing bound leaves that side open."""
    rows = inside(captures[1], *CUT)
    lengths = [r["inputs"]["bill_length_mm"] for r in rows if r["inputs"]["bill_length_mm"] is not None]
    ((n, both, low_only),) = run(db, q.out_of_range_counts(window(*CUT), [("bill_length_mm", 35.0, 55.0), ("bill_length_mm", 35.0, None)]))
    assert n == len(rows)
    assert both == sum(v < 35.0 or v > 55.0 for v in lengths) and low_only == sum(v < 35.0 for v in lengths) < both


def test_the_samples_inputs_and_probabilities_come_back_as_json_objects_by_field_name(db, captures) -> None:
    import json

    got = run(db, q.sample(window(*CUT), 1.0, 50))
    assert got
    columns = list(q.SAMPLE_COLUMNS)
    for r in got:
        inputs = json.loads(r[columns.index("inputs")])
        assert set(inputs) == {"bill_length_mm", "island", "is_adult"} and isinstance(inputs["is_adult"], bool)
        assert json.loads(r[columns.index("probabilities")]) == {"Adelie": 0.5, "Gentoo": 0.5}
        assert r[columns.index("variant")] in ("champion", None)
