"""The drift check's SQL over the captures table (Glue, partition projection), in Athena's dialect (Trino).

Past what one Lambda can read in its budget, the window's exact aggregates come from queries, not from
a sample: row count, nulls per feature, category counts (new values are the ones the reference does not
know), histograms on the reference's bins, predicted-class counts; the sample the distribution tests
need (KS, PCA, MMD) comes from ``TABLESAMPLE BERNOULLI``; the performance check's labelled rows, every one
of the window, from a join with the feedback table (``labelled_rows``); the refused requests' split by reason
and field from the rejects table (``reject_reasons``, ``reject_fields``). Every query reads only the window's
partitions (``model``, ``version``, ``dt``; ``event_time`` inside them), so Athena scans the hours it needs.

The SQL is the contract: tests/unit/test_athena_sql.py parses each query as Trino and runs it, transpiled
by sqlglot, on DuckDB over hour-partitioned Parquet files laid out as Firehose writes them, against counts
computed in Python over the same rows. Standard library only (it ships in the drift-check asset).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from modelserve.records import utc_iso, window_hours

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
# what the sample brings back: the capture record's columns
SAMPLE_COLUMNS = (
    "request_id",
    "row",
    "event_time",
    "model_name",
    "model_version",
    "stage",
    "inputs",
    "prediction",
    "probabilities",
    "variant",
)
JSON_COLUMNS = ("inputs", "probabilities")  # returned by ``sample`` as JSON text


def identifier(name: str) -> str:
    """A column or field name as the Glue table has it (lower case; Glue lowercases), quoted."""
    lowered = name.lower()
    if not _IDENTIFIER.fullmatch(lowered):
        raise ValueError(f"{name!r} is not a plain identifier: the table keeps such inputs as a string map")
    return f'"{lowered}"'


def literal(value: str) -> str:
    """A SQL string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def feature(name: str) -> str:
    """A feature of the ``inputs`` struct column."""
    return f"inputs.{identifier(name)}"


@dataclass(frozen=True)
class CaptureWindow:
    """The rows of one model version with ``start <= event_time < end``, in ``table`` (``database.table``)."""

    table: str
    model: str
    version: str
    start: datetime
    end: datetime

    def source(self) -> str:
        return _source(self.table)

    def where(self) -> str:
        """Partition pruning (model, version, the days the window touches) and the exact event-time bounds."""
        days, day = [], self.start.date()
        while day <= (self.end - timedelta(microseconds=1)).date():
            days.append(literal(day.isoformat()))
            day += timedelta(days=1)
        return (
            f"model = {literal(self.model)} AND version = {literal(self.version)} AND dt IN ({', '.join(days)}) "
            f"AND event_time >= {literal(utc_iso(self.start))} AND event_time < {literal(utc_iso(self.end))}"
        )


def row_count(w: CaptureWindow) -> str:
    """One row: ``row_count``, and ``requests``: the scored requests (each request's rows hold exactly one row 0)."""
    return f"SELECT count(*) AS row_count, count_if({identifier('row')} = 0) AS requests FROM {w.source()} WHERE {w.where()}"


def null_counts(w: CaptureWindow, features: Sequence[str]) -> str:
    """One row: ``row_count``, then ``null_<i>`` per feature (in the order given)."""
    nulls = ", ".join(f"count_if({feature(f)} IS NULL) AS null_{i}" for i, f in enumerate(features))
    return f"SELECT count(*) AS row_count, {nulls} FROM {w.source()} WHERE {w.where()}"


def out_of_range_counts(w: CaptureWindow, bounds: Sequence[tuple[str, float | None, float | None]]) -> str:
    """One row: ``row_count``, then ``out_<i>`` per (feature, low, high) in the order given: the rows whose
    value is below ``low`` or above ``high`` (the reference's range; None: no bound on that side). Nulls
    are not out of range (``null_counts`` counts them)."""
    if not bounds:
        raise ValueError("bounds must name at least one feature")
    parts = []
    for i, (name, low, high) in enumerate(bounds):
        x = feature(name)
        sides = ([f"{x} < {float(low)!r}"] if low is not None else []) + ([f"{x} > {float(high)!r}"] if high is not None else [])
        parts.append(f"count_if({' OR '.join(sides) or 'false'}) AS out_{i}")
    return f"SELECT count(*) AS row_count, {', '.join(parts)} FROM {w.source()} WHERE {w.where()}"


def category_counts(w: CaptureWindow, name: str) -> str:
    """``value``, ``n`` per distinct value of a categorical feature (null included): exact, rare values too."""
    return f"SELECT {feature(name)} AS value, count(*) AS n FROM {w.source()} WHERE {w.where()} GROUP BY 1"


def histogram(w: CaptureWindow, name: str, edges: Sequence[float]) -> str:
    """``bucket``, ``n`` of a numeric feature on the reference's edges: bucket 0 below ``edges[0]``, i for
    ``edges[i-1] <= x < edges[i]``, ``len(edges)`` at or above the last (nulls left out: see ``null_counts``)."""
    if not edges or list(edges) != sorted(edges):
        raise ValueError("edges must be a non-empty ascending sequence")
    x = feature(name)
    cases = " ".join(f"WHEN {x} < {float(e)!r} THEN {i}" for i, e in enumerate(edges))
    bucket = f"CASE {cases} ELSE {len(edges)} END"
    return f"SELECT {bucket} AS bucket, count(*) AS n FROM {w.source()} WHERE {w.where()} AND {x} IS NOT NULL GROUP BY 1"


def histogram_counts(w: CaptureWindow, features: Sequence[tuple[str, Sequence[float]]]) -> str:
    """One row: ``row_count``, then ``h_<i>_<k>`` per (feature ``i`` in the order given, bucket ``k``) on that
    feature's edges ``e[0..m]``, binned as the reference profile bins (``monitoring.histograms.HistogramBins``):
    bucket 0 below ``e[0]``, ``k`` in 1..m for ``e[k-1] <= x < e[k]`` (the last, ``k = m``, closed on the right
    as numpy.histogram's), ``m + 1`` above ``e[m]``; nulls in none (``null_counts`` counts them). Every numeric
    feature in one query: one scan of the window."""
    if not features:
        raise ValueError("features must name at least one (feature, edges)")
    parts = []
    for i, (name, edges) in enumerate(features):
        if len(edges) < 2 or list(edges) != sorted(edges):
            raise ValueError(f"{name}: edges must be an ascending sequence of at least two")
        x, e = feature(name), [float(v) for v in edges]
        m = len(e) - 1
        buckets = [f"{x} < {e[0]!r}"] + [f"{x} >= {e[k - 1]!r} AND {x} < {e[k]!r}" for k in range(1, m)]
        buckets += [f"{x} >= {e[m - 1]!r} AND {x} <= {e[m]!r}", f"{x} > {e[m]!r}"]
        parts += [f"count_if({b}) AS h_{i}_{k}" for k, b in enumerate(buckets)]
    return f"SELECT count(*) AS row_count, {', '.join(parts)} FROM {w.source()} WHERE {w.where()}"


def prediction_counts(w: CaptureWindow) -> str:
    """``prediction``, ``n``: the predicted classes' counts (classifiers)."""
    return f"SELECT prediction, count(*) AS n FROM {w.source()} WHERE {w.where()} GROUP BY 1"


def sample(w: CaptureWindow, percent: float, limit: int) -> str:
    """A Bernoulli sample of the window's rows (each row kept with ``percent`` / 100), at most ``limit``:
    the rows the distribution tests need. ``percent`` from the exact row count: ``sample_percent``."""
    if not 0 < percent <= 100:
        raise ValueError("percent must be in (0, 100]")
    # the struct and the map as JSON text: get_query_results renders a struct as {a=1, b=x}, which no parser
    # can split safely; json_format(CAST(... AS JSON)) writes a JSON object keyed by field name (Athena engine 3)
    columns = ", ".join(
        f"json_format(CAST({identifier(c)} AS JSON)) AS {identifier(c)}" if c in JSON_COLUMNS else identifier(c) for c in SAMPLE_COLUMNS
    )
    return f"SELECT {columns} FROM {w.source()} TABLESAMPLE BERNOULLI ({percent!r}) WHERE {w.where()} LIMIT {int(limit)}"


def sample_percent(row_count: int, sample_cap: int, margin: float = 1.1) -> float:
    """The Bernoulli percentage that yields about ``sample_cap`` rows of ``row_count`` (a margin over, cut by LIMIT)."""
    if row_count <= 0:
        return 100.0
    return min(100.0, 100.0 * sample_cap * margin / row_count)


# what the labelled rows bring back: the sample's columns but the inputs (the performance check reads the outputs), then the label's
LABELLED_CAPTURE_COLUMNS = tuple(c for c in SAMPLE_COLUMNS if c != "inputs")


def labelled_rows(w: CaptureWindow, feedback_table: str, grace: timedelta, limit: int) -> str:
    """Every captured row of the window joined with the labels sent for it, by request id and row (a batch's
    rows are labelled one by one: ``FeedbackRecord.key``): one result row per (capture row, label received),
    in receipt order, so corrections and conflicting labels resolve as the S3 path resolves them
    (``feedback_reader.Labels``). The labels are those filed under the window's prediction hours
    (``feedback_prediction_hour_prefix``), each received within ``grace`` of its hour's end, as the S3 path
    reads them; a label for a prediction outside the window joins no row of it. At most ``limit`` rows."""
    hours = window_hours(w.start, w.end)
    received_in_time = " OR ".join(
        f"(f.dt = {literal(f'{h:%Y-%m-%d}')} AND f.{identifier('hour')} = {literal(f'{h:%H}')} "
        f"AND f.received_time < {literal(utc_iso(h + timedelta(hours=1) + grace))})"
        for h in hours
    )
    days = ", ".join(sorted({literal(f"{h:%Y-%m-%d}") for h in hours}))
    captured = ", ".join(
        f"json_format(CAST(c.{identifier(col)} AS JSON)) AS {identifier(col)}" if col in JSON_COLUMNS else f"c.{identifier(col)}"
        for col in LABELLED_CAPTURE_COLUMNS
    )
    feedback = _source(feedback_table)
    labels = f"SELECT * FROM {feedback} AS f WHERE f.model = {literal(w.model)} AND f.dt IN ({days}) AND ({received_in_time})"
    window = f"SELECT * FROM {w.source()} WHERE {w.where()}"
    return (
        f"SELECT {captured}, f.label AS label, f.received_time AS received_time, f.replaces IS NOT NULL AS correction "
        f"FROM ({window}) AS c JOIN ({labels}) AS f ON f.request_id = c.request_id AND f.{identifier('row')} = c.{identifier('row')} "
        f"ORDER BY f.received_time, c.request_id, c.{identifier('row')} LIMIT {int(limit)}"
    )


def _source(table: str) -> str:
    return ".".join(identifier(part) for part in table.split("."))


# a (field, reason) pair as one text, to count pairs after UNNEST (which expands an array of rows into columns on
# Trino, into one struct on DuckDB: an array of text unnests the same on both); split on it in Python
PAIR_SEPARATOR = "\x1f"


def reject_reasons(w: CaptureWindow) -> str:
    """Over the rejects table (``w.table``: one row per refused request, filed like the captures): ``reason``,
    ``n`` (requests), ``rows`` (the rows they held, where known) per request's reason code. Exact, every request."""
    return f"SELECT reason, count(*) AS n, sum({identifier('rows')}) AS {identifier('rows')} FROM {w.source()} WHERE {w.where()} GROUP BY 1"


def reject_fields(w: CaptureWindow) -> str:
    """Over the rejects table: ``pair`` (field, ``PAIR_SEPARATOR``, reason) and ``n``, the refused requests with at least
    one error of that reason on that field (each request counted once per pair, as ``reject_reader`` counts them)."""
    pair = f"concat(e.field, chr({ord(PAIR_SEPARATOR)}), e.reason)"
    pairs = f"array_distinct(transform(filter(r.errors, e -> e.field IS NOT NULL), e -> {pair}))"
    return (
        f"SELECT pair, count(*) AS n FROM (SELECT * FROM {w.source()} WHERE {w.where()}) AS r "
        f"CROSS JOIN UNNEST({pairs}) AS u(pair) GROUP BY 1"
    )
