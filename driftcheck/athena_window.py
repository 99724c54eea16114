"""A window of captures read through Athena (``drift_athena=on``, or ``auto`` past the read budget: ``read_path``):
the queries of ``athena_sql`` run in the stack's workgroup, their results turned into what the checks consume.

- ``AthenaQueries`` runs one query: ``StartQueryExecution`` in the workgroup, ``GetQueryExecution`` polled
  (backing off) until it ends or the read budget's deadline passes (then ``StopQueryExecution``), and
  ``GetQueryResults`` paginated, typed by the result's column types. Anything but SUCCEEDED in time raises
  ``AthenaQueryError`` naming the query and the reason; the drift service then reads the window from S3
  as it would without Athena, and counts the failure (``AthenaQueryErrors``, the reason in the report).
- ``WindowPlan`` is what the check asks of one window, in the order it asks: the exact row count first
  (it sets the sample's percentage), then nulls per feature, numeric features outside the reference's
  range, category counts per categorical feature, the numeric features' histograms on the profile's bins (one
  query), predicted-class counts, the window's labelled rows (captures joined with the feedback table, when the
  plan names it), the refused requests by reason and by field (the rejects table, when named), and a ``TABLESAMPLE BERNOULLI``
  sample of about ``sample_cap`` rows for the distribution tests (KS, PCA, MMD).
- ``read_window_athena`` runs a plan: a ``WindowRead`` whose rows are the sample and whose ``rows_seen``
  is the exact count, with ``counts`` (``monitoring.types.WindowCounts``) for the data-quality
  expectations, so a value never seen in training in 1 of 100,000 rows is counted exactly; and ``labelled``,
  every labelled row of the window with its ``labels``, so the performance check is measured on all of them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from modelserve.records import CaptureRecord, FeedbackRecord
from modelserve.schema import FeatureKind, FeatureSpec
from monitoring.types import WindowCounts

from . import athena_sql as q
from .feedback_reader import LABEL_GRACE, Labels
from .reject_reader import RejectWindow
from .store import error_code
from .window_reader import WindowRead, capture_records

logger = logging.getLogger(__name__)

SUCCEEDED = "SUCCEEDED"
ENDED_BADLY = ("FAILED", "CANCELLED")
TIMEOUT = "Timeout"  # the reason of a query still running at the deadline
_INTEGER_TYPES = ("tinyint", "smallint", "integer", "int", "bigint")
_REAL_TYPES = ("double", "float", "real", "decimal")
# the labelled rows one window brings back at most: labels are a fraction of traffic; past it the report says so
LABELLED_ROWS_LIMIT = 500_000


class AthenaQueryError(RuntimeError):
    """A query that did not succeed in time: ``query`` (its name in the plan) and ``reason`` (FAILED,
    CANCELLED, Timeout, or the service's error code when the call itself failed)."""

    def __init__(self, query: str, reason: str, detail: str = "") -> None:
        self.query, self.reason, self.detail = query, reason, detail
        super().__init__(f"athena query {query!r}: {reason}" + (f" ({detail})" if detail else ""))


@dataclass
class AthenaQueries:
    """Runs queries in one workgroup (its output location, encryption and bytes-scanned limit apply)."""

    client: Any
    workgroup: str
    first_poll_s: float = 0.1
    max_poll_s: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    bytes_scanned: int = 0  # over every query this object ran (from each execution's statistics)

    def run(self, name: str, sql: str, deadline: float | None = None) -> list[dict[str, Any]]:
        """The query's rows as dicts by column name, typed; raises ``AthenaQueryError``."""
        try:
            execution_id = self.client.start_query_execution(QueryString=sql, WorkGroup=self.workgroup)["QueryExecutionId"]
            self._wait(name, execution_id, deadline)
            return list(self._rows(execution_id))
        except AthenaQueryError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed call (AccessDenied, throttling) is a failed query, named
            raise AthenaQueryError(name, error_code(exc), str(exc)) from exc

    def _wait(self, name: str, execution_id: str, deadline: float | None) -> None:
        delay = self.first_poll_s
        while True:
            execution = self.client.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
            status = execution["Status"]
            state = status["State"]
            if state == SUCCEEDED:
                self.bytes_scanned += int(execution.get("Statistics", {}).get("DataScannedInBytes", 0) or 0)
                return
            if state in ENDED_BADLY:
                raise AthenaQueryError(name, state, status.get("StateChangeReason", ""))
            if deadline is not None and self.clock() + delay > deadline:
                with contextlib.suppress(Exception):  # the query is abandoned either way; stopping it saves its scan
                    self.client.stop_query_execution(QueryExecutionId=execution_id)
                raise AthenaQueryError(name, TIMEOUT, f"still {state} when the read budget ran out; stopped")
            self.sleep(delay)
            delay = min(delay * 2, self.max_poll_s)

    def _rows(self, execution_id: str) -> Iterator[dict[str, Any]]:
        names: list[str] | None = None
        types: list[str] = []
        for page in self.client.get_paginator("get_query_results").paginate(QueryExecutionId=execution_id):
            result = page["ResultSet"]
            rows = result.get("Rows", [])
            if names is None:
                columns = result.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                names, types = [c["Name"] for c in columns], [c["Type"].lower() for c in columns]
                if rows and [cell.get("VarCharValue") for cell in rows[0]["Data"]] == names:
                    rows = rows[1:]  # a SELECT's first row holds the column names
            for row in rows:
                yield {n: typed(cell.get("VarCharValue"), t) for n, t, cell in zip(names, types, row["Data"])}


def typed(text: str | None, athena_type: str) -> Any:
    """A result cell (always text, absent for NULL) as its column's type."""
    if text is None:
        return None
    base = athena_type.split("(")[0].strip()
    if base in _INTEGER_TYPES:
        return int(text)
    if base in _REAL_TYPES:
        return float(text)
    if base == "boolean":
        return text.lower() == "true"
    return text


@dataclass(frozen=True)
class WindowPlan:
    """The queries of one window. ``features``: the checked features; ``ranges``: each numeric feature's
    reference range (``FeatureProfile.range``)."""

    window: q.CaptureWindow
    features: tuple[FeatureSpec, ...]
    ranges: Mapping[str, tuple[float | None, float | None]]
    sample_cap: int
    classifier: bool = True
    edges: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # numeric feature -> its profile histogram's edges
    feedback_table: str | None = None  # ``database.table`` of the labels filed by prediction hour; None: no label join
    label_limit: int = LABELLED_ROWS_LIMIT
    label_grace: timedelta = LABEL_GRACE
    rejects_table: str | None = None  # ``database.table`` of the refused requests; None: counted from S3

    def row_count(self) -> tuple[str, str]:
        return "row_count", q.row_count(self.window)

    def queries(self, rows: int) -> list[tuple[str, str]]:
        """(name, SQL) of every query after the row count, in the order they run."""
        w, out = self.window, []
        names = [f.name for f in self.features]
        if names:
            out.append(("nulls", q.null_counts(w, names)))
        bounded = [(f.name, *self.ranges[f.name]) for f in self.numeric if self.ranges.get(f.name, (None, None)) != (None, None)]
        if bounded:
            out.append(("out_of_range", q.out_of_range_counts(w, bounded)))
        out += [(f"categories:{f.name}", q.category_counts(w, f.name)) for f in self.categorical]
        if self.binned:
            out.append(("histograms", q.histogram_counts(w, [(name, self.edges[name]) for name in self.binned])))
        if self.classifier:
            out.append(("predictions", q.prediction_counts(w)))
        if self.feedback_table:
            out.append(("labelled", q.labelled_rows(w, self.feedback_table, self.label_grace, self.label_limit)))
        if self.rejects_table:
            rejects = q.CaptureWindow(self.rejects_table, w.model, w.version, w.start, w.end)
            out += [("reject_reasons", q.reject_reasons(rejects)), ("reject_fields", q.reject_fields(rejects))]
        out.append(("sample", q.sample(w, q.sample_percent(rows, self.sample_cap), self.sample_cap)))
        return out

    @property
    def binned(self) -> list[str]:
        """The numeric features with histogram bins (two edges or more), in feature order."""
        return [f.name for f in self.numeric if len(self.edges.get(f.name, ())) >= 2]

    @property
    def numeric(self) -> list[FeatureSpec]:
        return [f for f in self.features if f.kind is FeatureKind.NUMERIC]

    @property
    def categorical(self) -> list[FeatureSpec]:
        return [f for f in self.features if f.kind is FeatureKind.CATEGORICAL]


@dataclass
class AthenaWindowRead(WindowRead):
    """A window read through Athena: the sample as ``rows``, the exact count as ``rows_seen``."""

    counts: WindowCounts | None = None
    predictions: dict[str, int] = field(default_factory=dict)  # predicted class -> rows (classifiers, nulls left out), exact
    queries: int = 0
    bytes_scanned: int = 0
    # every labelled row of the window (captures joined with the feedback table) and their labels; None: not joined
    labelled: list[CaptureRecord] | None = None
    labels: Labels = field(default_factory=Labels)
    labels_truncated: bool = False  # the join returned its LIMIT of rows: labelled rows past it left out
    rejects: RejectWindow | None = None  # the window's refused requests, every one counted; None: not queried


def read_window_athena(athena: AthenaQueries, plan: WindowPlan, start: datetime, end: datetime, deadline: float | None) -> AthenaWindowRead:
    """Run ``plan``; raises ``AthenaQueryError`` on the first query that does not succeed in time."""
    scanned = athena.bytes_scanned
    name, sql = plan.row_count()
    counted = _one_row(name, athena.run(name, sql, deadline))
    rows = int(counted["row_count"])
    results = {name: athena.run(name, sql, deadline) for name, sql in plan.queries(rows)}
    by_lower = {f.name.lower(): f.name for f in plan.features}
    nulls = _one_row("nulls", results["nulls"]) if "nulls" in results else {}
    outside = _one_row("out_of_range", results["out_of_range"]) if "out_of_range" in results else {}
    bounded = [f.name for f in plan.numeric if plan.ranges.get(f.name, (None, None)) != (None, None)]
    predicted = _value_counts(results["predictions"], "prediction") if "predictions" in results else None
    counts = WindowCounts(
        rows=rows,
        nulls={f.name: int(nulls[f"null_{i}"]) for i, f in enumerate(plan.features)},
        out_of_range={n: int(outside[f"out_{i}"]) for i, n in enumerate(bounded)},
        categories={f.name: _value_counts(results[f"categories:{f.name}"]) for f in plan.categorical},
        predicted_labels=predicted,
        histograms=_histograms(plan, results.get("histograms")),
    )
    sample = [_capture_row(r, by_lower) for r in results["sample"]]
    labelled, labels = _labelled(results.get("labelled"), by_lower, plan.window.model)
    return AthenaWindowRead(
        start,
        end,
        capture_records(sample),
        rows_seen=rows,
        objects_read=0,
        corrupt_objects=0,
        counts=counts,
        predictions=dict(predicted or {}),
        queries=1 + len(results),
        requests=int(counted["requests"]),
        bytes_scanned=athena.bytes_scanned - scanned,
        labelled=labelled,
        labels=labels,
        labels_truncated="labelled" in results and len(results["labelled"]) >= plan.label_limit,
        rejects=_rejects(results.get("reject_reasons"), results.get("reject_fields")),
    )


def _rejects(reasons: list[dict[str, Any]] | None, fields: list[dict[str, Any]] | None) -> RejectWindow | None:
    """The reject queries' rows as ``reject_reader``'s counts, exact (``estimated`` false, no object read)."""
    if reasons is None or fields is None:
        return None
    by_field: dict[str, dict[str, int]] = {}
    for r in fields:
        name, _, reason = str(r["pair"]).partition(q.PAIR_SEPARATOR)
        by_field.setdefault(name, {})[reason] = int(r["n"])
    return RejectWindow(
        rejected_requests=sum(int(r["n"]) for r in reasons),
        rejected_rows=sum(int(r["rows"] or 0) for r in reasons),
        by_reason={str(r["reason"]): int(r["n"]) for r in reasons},
        by_field=by_field,
    )


def _labelled(rows: list[dict[str, Any]] | None, by_lower: Mapping[str, str], model: str) -> tuple[list[CaptureRecord] | None, Labels]:
    """The join's rows (one per capture row and label received, in receipt order) as each labelled capture row
    once and its label, resolved as the S3 path resolves them (a correction replaces, a different label conflicts)."""
    labels = Labels()
    if rows is None:
        return None, labels
    captured: dict[tuple[str, int], dict[str, Any]] = {}
    for r in rows:
        key = (str(r["request_id"]), int(r["row"]))
        captured.setdefault(key, r)
        record = FeedbackRecord(key[0], key[1], r["label"], str(r["received_time"]), model)
        labels.add(_as_correction(record) if r["correction"] else record)
    records = capture_records([_capture_row(r, by_lower) for r in captured.values()])
    return records, labels


def _as_correction(record: FeedbackRecord) -> FeedbackRecord:
    """A correction as ``Labels`` tells one: ``replaces`` set (what it replaced does not decide anything)."""
    from dataclasses import replace

    return replace(record, replaces=None)


def _one_row(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The single row of an aggregate without GROUP BY (Athena always returns it; anything else is a broken result)."""
    if len(rows) != 1:
        raise AthenaQueryError(name, "NoRows" if not rows else "TooManyRows", f"{len(rows)} rows where the query returns one")
    return rows[0]


def _histograms(plan: WindowPlan, rows: list[dict[str, Any]] | None) -> dict[str, tuple[int, ...]]:
    """The histogram query's row as numeric feature -> rows per bin (below, inner bins, above)."""
    if rows is None:
        return {}
    row = _one_row("histograms", rows)
    return {name: tuple(int(row[f"h_{i}_{k}"]) for k in range(len(plan.edges[name]) + 1)) for i, name in enumerate(plan.binned)}


def _value_counts(rows: list[dict[str, Any]], column: str = "value") -> dict[str, int]:
    """A count query's rows as value -> rows (nulls left out: the null counts, or the rest of the row count)."""
    return {str(r[column]): int(r["n"]) for r in rows if r[column] is not None}


def _capture_row(row: Mapping[str, Any], by_lower: Mapping[str, str]) -> dict[str, Any]:
    """A sample row as the window reader's row: the JSON columns parsed, the inputs under the features'
    own names (the Glue table lowercases them)."""
    out = dict(row)
    inputs = json.loads(row["inputs"]) if row.get("inputs") else {}
    out["inputs"] = {by_lower.get(k.lower(), k): v for k, v in inputs.items()}
    probabilities = json.loads(row["probabilities"]) if row.get("probabilities") else None
    out["probabilities"] = probabilities or None
    if out["probabilities"] is None and isinstance(out.get("prediction"), str):
        with contextlib.suppress(ValueError):  # a regression model's prediction, stored as text
            out["prediction"] = float(out["prediction"])
    return out
