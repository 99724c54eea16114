"""Athena, played locally: capture rows as the hour-partitioned Parquet files Firehose writes, the drift
check's SQL (Athena's Trino dialect) run on DuckDB over them, and each result handed to moto's Athena in
the shape GetQueryResults returns (a header row, then every value as text, NULL as an empty cell)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot

from modelserve.schema import BundleManifest, FeatureKind

ACCOUNT = "123456789012"
# DuckDB's result types as Athena names them in ColumnInfo
_ATHENA_TYPES = {"BIGINT": "bigint", "INTEGER": "integer", "VARCHAR": "varchar", "DOUBLE": "double", "BOOLEAN": "boolean"}


def capture_schema(manifest: BundleManifest) -> pa.Schema:
    """The captures table's columns (cdk/capture.py), as Firehose's record format conversion writes them."""
    kinds = {FeatureKind.NUMERIC: pa.float64(), FeatureKind.BOOLEAN: pa.bool_(), FeatureKind.CATEGORICAL: pa.string()}
    inputs = pa.struct([(f.name.lower(), kinds[f.kind]) for f in manifest.features])
    return pa.schema(
        [
            ("request_id", pa.string()),
            ("row", pa.int32()),
            ("event_time", pa.string()),
            ("model_name", pa.string()),
            ("model_version", pa.string()),
            ("stage", pa.string()),
            ("inputs", inputs),
            ("prediction", pa.string()),
            ("probabilities", pa.map_(pa.string(), pa.float64())),
            ("variant", pa.string()),
        ]
    )


def write_parquet_captures(root: Path, manifest: BundleManifest, rows: Iterable[Mapping[str, Any]]) -> int:
    """Rows under captures/model=/version=/dt=/hour=/ of their event time; returns how many."""
    schema = capture_schema(manifest)
    by_hour: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        t = r["event_time"]
        row = {name: r.get(name) for name in schema.names}
        row["inputs"] = {k.lower(): v for k, v in r["inputs"].items()}
        row["prediction"] = None if r["prediction"] is None else str(r["prediction"])
        row["probabilities"] = list(r["probabilities"].items()) if r.get("probabilities") else None
        by_hour.setdefault((r["model_name"], r["model_version"], t[:10], t[11:13]), []).append(row)
    for (model, version, day, hour), part in by_hour.items():
        folder = root / "captures" / f"model={model}" / f"version={version}" / f"dt={day}" / f"hour={hour}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(part, schema=schema), folder / f"part-{len(list(folder.iterdir()))}.parquet")
    return sum(len(p) for p in by_hour.values())


# the feedback table's columns (cdk/capture.py: the Glue table over feedback/model=/predicted/dt=/hour=/)
FEEDBACK_COLUMNS = {
    "request_id": "VARCHAR",
    "row": "INTEGER",
    "label": "VARCHAR",
    "received_time": "VARCHAR",
    "model_name": "VARCHAR",
    "replaces": "VARCHAR",
    "predicted_at": "VARCHAR",
    "verified": "BOOLEAN",
    "source": "VARCHAR",
}


# the rejects table's columns (cdk/capture.py: the Glue table over rejects/model=/version=/dt=/hour=/)
REJECT_COLUMNS = {
    "request_id": "VARCHAR",
    "event_time": "VARCHAR",
    "model_name": "VARCHAR",
    "model_version": "VARCHAR",
    "stage": "VARCHAR",
    "reason": "VARCHAR",
    "status": "INTEGER",
    "rows": "INTEGER",
    "rows_with_errors": "INTEGER",
    "errors": "STRUCT(row INTEGER, field VARCHAR, reason VARCHAR, message VARCHAR)[]",
    "errors_total": "INTEGER",
    "route": "VARCHAR",
    "variant": "VARCHAR",
}


def write_feedback_objects(root: Path, objects: Iterable[tuple[str, bytes]]) -> int:
    """Stored objects (key, body: the feedback's and the rejects' gzip JSON Lines) as they are in the bucket,
    under ``root``; returns how many."""
    n = 0
    for key, body in objects:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        n += 1
    return n


def duckdb_captures(root: Path, table: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection where ``table`` (``database.table``) is the Parquet files under ``root``, and
    ``database.feedback`` the labels filed by prediction hour under ``root/feedback`` (their JSON Lines as stored)."""
    database, name = table.split(".")
    con = duckdb.connect()
    con.execute(f'CREATE SCHEMA "{database}"')
    con.execute(
        f'CREATE VIEW "{database}"."{name}" AS SELECT * FROM read_parquet('
        f"'{root}/captures/*/*/*/*/*.parquet', hive_partitioning = true, hive_types_autocast = false)"
    )
    _json_table(con, f'"{database}"."feedback"', root, "feedback/*/predicted/*/*/*.jsonl.gz", FEEDBACK_COLUMNS, ("model", "dt", "hour"))
    _json_table(con, f'"{database}"."rejects"', root, "rejects/*/*/*/*/*.jsonl.gz", REJECT_COLUMNS, ("model", "version", "dt", "hour"))
    return con


def _json_table(
    con: duckdb.DuckDBPyConnection, name: str, root: Path, pattern: str, columns: Mapping[str, str], partitions: tuple[str, ...]
) -> None:
    """``name`` over the gzip JSON Lines objects under ``root`` matching ``pattern`` (Hive partitions from their
    keys), typed as the Glue table types them; empty when there are none yet."""
    if list(root.glob(pattern)):
        typed = "{" + ", ".join(f"'{k}': '{v}'" for k, v in columns.items()) + "}"
        con.execute(
            f"CREATE VIEW {name} AS SELECT * FROM read_json('{root}/{pattern}', "
            f"format = 'newline_delimited', columns = {typed}, hive_partitioning = true, hive_types_autocast = false)"
        )
    else:
        typed = ", ".join([f'"{k}" {v}' for k, v in columns.items()] + [f'"{p}" VARCHAR' for p in partitions])
        con.execute(f"CREATE TABLE {name} ({typed})")


def athena_result(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
    """``sql`` (Athena's dialect: it must parse as Trino) run on DuckDB, as moto's queued query result."""
    sqlglot.parse_one(sql, read="trino")
    (duck,) = sqlglot.transpile(sql, read="trino", write="duckdb")
    cursor = con.execute(duck)
    rows = cursor.fetchall()
    names = [d[0] for d in cursor.description]
    types = [_ATHENA_TYPES.get(str(d[1]).split("(")[0], str(d[1]).lower()) for d in cursor.description]
    header = {"Data": [{"VarCharValue": n} for n in names]}
    return {
        "rows": [header] + [{"Data": [_cell(v) for v in row]} for row in rows],
        "column_info": [{"Name": n, "Label": n, "Type": t, "Nullable": "UNKNOWN", "CaseSensitive": True} for n, t in zip(names, types)],
    }


def _cell(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"VarCharValue": "true" if value else "false"}
    return {"VarCharValue": repr(value) if isinstance(value, float) else str(value)}


def speak_json_to_moto(data_path: Path) -> str:
    """A botocore data folder where Athena speaks its former JSON protocol (``X-Amz-Target: AmazonAthena.*``),
    the one moto's Athena understands; botocore 1.44 describes Athena as rest-json, whose paths moto does not
    route. Only the wire format changes: the operations, shapes and results are botocore's own. Returns the
    folder, for ``AWS_DATA_PATH``."""
    import gzip
    import json

    import botocore

    source = next((Path(botocore.__file__).parent / "data" / "athena").glob("*/service-2.json*"))
    raw = gzip.decompress(source.read_bytes()) if source.suffix == ".gz" else source.read_bytes()
    model = json.loads(raw)
    meta = model["metadata"]
    if meta.get("protocol") != "json":
        meta.update(protocol="json", protocols=["json"], jsonVersion="1.1", targetPrefix="AmazonAthena")
        for operation in model["operations"].values():
            operation["http"] = {"method": "POST", "requestUri": "/"}
    folder = data_path / "athena" / source.parent.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "service-2.json").write_text(json.dumps(model))
    return str(data_path)


def queue_athena_results(results: Iterable[Mapping[str, Any]], region: str = "us-east-1") -> None:
    """Hand results to moto's Athena: each query started next takes the next one, in order."""
    from moto.athena.models import QueryResults, athena_backends

    backend = athena_backends[ACCOUNT][region]
    backend.query_results_queue.extend(QueryResults(rows=r["rows"], column_info=r["column_info"]) for r in results)


def queries_sent(region: str = "us-east-1") -> list[tuple[str, str | None]]:
    """(query text, workgroup) of every query started on moto's Athena, in order."""
    from moto.athena.models import athena_backends

    backend = athena_backends[ACCOUNT][region]
    return [(e.query, e.workgroup.name if e.workgroup else None) for e in backend.executions.values()]
