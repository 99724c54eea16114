"""The drift check over a large window: the Lambda path (read every row, reservoir-sample each hour) against
the Athena path (driftcheck/athena_sql.py run on DuckDB over the same files), locally.

    python benchmarks/bench_athena_path.py                    # 10 M rows over 24 hour partitions
    python benchmarks/bench_athena_path.py --rows 1000000

Synthetic captures in hour-partitioned Parquet laid out as Firehose's dynamic partitioning writes them
(captures/model=/version=/dt=/hour=/, 4 files an hour), with one categorical value in exactly 1 of
100,000 rows, and a feedback label for 1 row in ``LABEL_EVERY`` (gzip JSON Lines under
feedback/model=/predicted/dt=/hour=/, as /feedback files them). Each path runs in a fresh process (peak RSS
from getrusage, over the process's own start):
- Lambda path: every file decoded to rows (``devtools.parquet_captures``: pyarrow, which the drift-check
  asset does not carry, so this is the Lambda path as it would be with a Parquet reader), every row
  into its hour's reservoir of ``sample_cap`` rows, hours merged (``merge_samples``); the rare value's
  count is then estimated from the sample (rows x its share in the sample), as the check does today.
  The performance check's labelled rows are the sample's: ``labelled_in_sample``.
- Athena path: the exact aggregates (row count, nulls, category counts, a histogram), the labelled rows'
  join with the feedback table (every labelled row: ``labelled``, and its time, ``join_seconds``) and a
  TABLESAMPLE BERNOULLI sample of ``sample_cap`` rows, transpiled from Trino to DuckDB by sqlglot.
No S3 here: the Lambda path's GETs and the Athena service's own latency are not in these figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

START = datetime(2026, 11, 25, tzinfo=UTC)
HOURS = 24
FILES_PER_HOUR = 4
RARE = "Atlantis"
RARE_EVERY = 100_000
LABEL_EVERY = 100  # labels are a fraction of traffic: 1% of the rows
# the feedback table's columns the join reads (cdk/capture.py), as DuckDB types
FEEDBACK_COLUMNS = {"request_id": "VARCHAR", "row": "INTEGER", "label": "VARCHAR", "received_time": "VARCHAR", "replaces": "VARCHAR"}


def generate(root: Path, rows: int, seed: int = 1) -> int:
    """Write the files; returns how many rows hold the rare value."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    per_hour = rows // HOURS
    rare_total = 0
    islands = np.array(["Biscoe", "Dream", "Torgersen"], dtype=object)
    for h in range(HOURS):
        hour = START + timedelta(hours=h)
        n = per_hour
        offsets = np.sort(rng.integers(0, 3_600_000_000, n))
        times = np.datetime64(hour.replace(tzinfo=None), "us") + offsets.astype("timedelta64[us]")
        event_time = np.char.add(np.datetime_as_string(times, unit="us").astype(str), "Z")
        island = islands[rng.integers(0, 3, n)]
        first = h * per_hour
        rare = np.nonzero((np.arange(first, first + n) % RARE_EVERY) == RARE_EVERY // 2)[0]
        island[rare] = RARE
        rare_total += len(rare)
        length = rng.normal(44.0, 5.0, n)
        length_nulls = rng.random(n) < 0.02
        inputs = pa.StructArray.from_arrays(
            [pa.array(length, mask=length_nulls), pa.array(island, pa.string()), pa.array(rng.random(n) < 0.5)],
            names=["bill_length_mm", "island", "is_adult"],
        )
        table = pa.table(
            {
                "request_id": pa.array(np.char.add("r", np.arange(first, first + n).astype(str)).astype(object), pa.string()),
                "row": pa.array(np.zeros(n, dtype=np.int32)),
                "event_time": pa.array(event_time.astype(object), pa.string()),
                "model_name": pa.array(["penguins"] * n, pa.string()),
                "model_version": pa.array(["v1"] * n, pa.string()),
                "stage": pa.array(["prod"] * n, pa.string()),
                "inputs": inputs,
                "prediction": pa.array(islands[rng.integers(0, 3, n)], pa.string()),
                "probabilities": pa.array([[("Adelie", 0.5), ("Gentoo", 0.5)]] * n, pa.map_(pa.string(), pa.float64())),
                "variant": pa.nulls(n, pa.string()),  # a column of the captures table (no challenger here)
            }
        )
        folder = root / "captures" / "model=penguins" / "version=v1" / f"dt={hour:%Y-%m-%d}" / f"hour={hour:%H}"
        folder.mkdir(parents=True, exist_ok=True)
        for part in range(FILES_PER_HOUR):
            pq.write_table(table.slice(part * n // FILES_PER_HOUR, n // FILES_PER_HOUR), folder / f"stream-{part}.parquet")
        write_labels(root, hour, range(-(-first // LABEL_EVERY) * LABEL_EVERY, first + n, LABEL_EVERY))
    return rare_total


def write_labels(root: Path, hour: datetime, indexes: range) -> None:
    """One feedback object of the hour's labels (the rows at ``indexes``), received an hour after the prediction."""
    from modelserve.records import FeedbackRecord, encode_jsonl_gz, feedback_prediction_key

    received = hour + timedelta(hours=1)
    records = [FeedbackRecord(f"r{i}", 0, "Adelie", f"{received:%Y-%m-%dT%H:%M:%S}.000000Z", "penguins", verified=True) for i in indexes]
    path = root / feedback_prediction_key("penguins", hour, received, "bench")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_jsonl_gz(records))


def lambda_path(root: Path, sample_cap: int) -> dict[str, object]:
    from devtools.parquet_captures import parquet_rows
    from driftcheck.sampling import Reservoir, merge_samples

    reservoirs = []
    for folder in sorted((root / "captures").glob("*/*/*/*")):
        reservoir = Reservoir[dict](sample_cap, len(reservoirs))
        for f in sorted(folder.glob("*.parquet")):
            for row in parquet_rows(f.read_bytes()):
                reservoir.add(row)
        reservoirs.append(reservoir)
    rows = sum(r.seen for r in reservoirs)
    sample = merge_samples([r.seen for r in reservoirs], lambda i: reservoirs[i].items, sample_cap, 0)
    in_sample = sum(1 for r in sample if (r.get("inputs") or {}).get("island") == RARE)
    labelled = sum(1 for r in sample if int(str(r["request_id"])[1:]) % LABEL_EVERY == 0)
    return {"rows": rows, "sample": len(sample), "rare_estimated": in_sample * rows / max(1, len(sample)), "labelled_in_sample": labelled}


def athena_path(root: Path, sample_cap: int) -> dict[str, object]:
    import duckdb
    import sqlglot

    from driftcheck import athena_sql as q

    con = duckdb.connect()
    con.execute("CREATE SCHEMA modelserve")
    con.execute(
        "CREATE VIEW modelserve.captures AS SELECT * FROM read_parquet("
        f"'{root}/captures/*/*/*/*/*.parquet', hive_partitioning = true, hive_types_autocast = false)"
    )

    columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in FEEDBACK_COLUMNS.items()) + "}"
    con.execute(
        f"CREATE VIEW modelserve.feedback AS SELECT * FROM read_json('{root}/feedback/*/predicted/*/*/*.jsonl.gz', "
        f"format = 'newline_delimited', columns = {columns}, hive_partitioning = true, hive_types_autocast = false)"
    )

    def run(sql: str) -> list[tuple[object, ...]]:
        return con.execute(sqlglot.transpile(sql, read="trino", write="duckdb")[0]).fetchall()

    w = q.CaptureWindow("modelserve.captures", "penguins", "v1", START, START + timedelta(hours=HOURS))
    ((rows, _requests),) = run(q.row_count(w))
    run(q.null_counts(w, ["bill_length_mm", "island", "is_adult"]))
    categories = dict(run(q.category_counts(w, "island")))
    run(q.histogram(w, "bill_length_mm", [35.0, 40.0, 44.0, 48.0, 55.0]))
    sample = run(q.sample(w, q.sample_percent(int(rows), sample_cap), sample_cap))  # type: ignore[arg-type]
    t0 = time.perf_counter()
    labelled = run(q.labelled_rows(w, "modelserve.feedback", timedelta(days=1), 500_000))
    joined = round(time.perf_counter() - t0, 2)
    return {"rows": rows, "sample": len(sample), "rare_exact": categories.get(RARE, 0), "labelled": len(labelled), "join_seconds": joined}


def child(path: str, root: str, sample_cap: int) -> None:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    out = (lambda_path if path == "lambda" else athena_path)(Path(root), sample_cap)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["peak_over_start_mib"] = round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024, 1)  # imports included
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--sample-cap", type=int, default=10_000)
    ap.add_argument("--paths", default="athena,lambda")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        if args.child[0] == "generate":  # in its own process: the parent's peak RSS stays small for the measured children
            print(json.dumps({"rare": generate(Path(args.child[1]), args.rows)}))
        else:
            child(args.child[0], args.child[1], args.sample_cap)
        return
    with tempfile.TemporaryDirectory(prefix="bench-athena-") as tmp:
        t0 = time.perf_counter()
        made = (
            subprocess.run(
                [sys.executable, __file__, "--child", "generate", tmp, "--rows", str(args.rows)], capture_output=True, text=True, check=True
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        rare = json.loads(made)["rare"]
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*.parquet")) / 2**20
        print(
            f"{args.rows:,} rows, {HOURS} hours x {FILES_PER_HOUR} Parquet files, {size:.0f} MiB, rare value in {rare} rows "
            f"(written in {time.perf_counter() - t0:.0f} s)"
        )
        for path in args.paths.split(","):
            out = (
                subprocess.run(
                    [sys.executable, __file__, "--child", path, tmp, "--sample-cap", str(args.sample_cap)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            print(f"{path:<7} {out}")


if __name__ == "__main__":
    main()
