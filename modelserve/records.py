"""The capture and feedback record formats and their S3 layout.

One definition: the inference function writes these records, the drift check and the
reference sample read them. One record per row, JSON Lines, gzip-compressed objects.

S3 layout (partitioned for Athena partition projection and for window reads), every key scheme here:
    captures/model=<name>/version=<version>/dt=YYYY-MM-DD/hour=HH/<HHMMSSffffff>-<request id>.jsonl.gz
Firehose writes under ``captures/model=<name>/version=<version>/`` with its own
``YYYY/MM/DD/HH/`` suffix when the prefix is not expanded, so readers accept both layouts.
    feedback/model=<name>/predicted/dt=YYYY-MM-DD/hour=HH/<received YYYYmmddTHHMMSSffffff>-<id>.jsonl.gz   (labels of
        requests predicted in that UTC hour, the request id read back by the server: the drift check reads its window's hours only)
    feedback/model=<name>/dt=YYYY-MM-DD/<HHMMSSffffff>-<id>.jsonl.gz   (by receipt: labels written before, and unverified ones)
    feedback/model=<name>/labels/<request id, URL-quoted>/<row>.json   (the label a row holds, and its corrections)
    reports/model=<name>/dt=YYYY-MM-DD/<YYYYmmddTHHMMSSZ>.<json|html>
    reports/model=<name>/dt=YYYY-MM-DD/<YYYYmmddTHHMMSSZ>-comparison.<json|html>   (champion vs challenger)
    reports/model=<name>/dt=YYYY-MM-DD/<YYYYmmddTHHMMSSZ>-version=<version>.<json|html>   (the challenger's drift report)
    reports/model=<name>/dt=YYYY-MM-DD/<YYYYmmddTHHMMSSZ>-w<window>.<json|html>   (a window's report besides the main one, e.g. -w1h)
    samples/model=<name>/version=<version>/cap=<sample cap>/dt=YYYY-MM-DD/hour=HH.json.gz   (drift check's hour samples)
    samples/model=<name>/labels/dt=YYYY-MM-DD/hour=HH.json.gz   (feedback received in one UTC hour, kept by the drift check)
    samples/model=<name>/labels/predicted/dt=YYYY-MM-DD/hour=HH.json.gz   (the labels of one prediction hour, kept once final)
    audit/model=<name>/dt=YYYY-MM-DD/audit.<csv|jsonl>   (the day's manual audit sample, written by the drift check)
    rejects/model=<name>/version=<version>/dt=YYYY-MM-DD/hour=HH/<HHMMSSffffff>-<request id>.jsonl.gz   (one refused request)
"""

from __future__ import annotations

import gzip
import io
import json
import math
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote

CAPTURE_ROOT = "captures"
FEEDBACK_ROOT = "feedback"
REPORTS_ROOT = "reports"
SAMPLES_ROOT = "samples"  # per-hour window samples kept by the drift check
AUDIT_ROOT = "audit"  # the daily manual audit sample
AUDIT_SOURCE = "audit"  # a feedback item's "source" for labels of audited rows
REJECTS_ROOT = "rejects"  # requests validation refused (422 and other 4xx of the scoring routes)

LABELS_DIR = "labels"  # feedback/model=<name>/labels/: the label each labelled (request, row) holds
PREDICTED_DIR = "predicted"  # feedback/model=<name>/predicted/: labels filed by the hour their prediction was made
RowKey = tuple[str, int]  # (request id, row): joins a capture row and its feedback label
# the Glue table (next to ``captures``) over the labels filed by prediction hour (feedback_prediction_hour_prefix)
ATHENA_FEEDBACK_TABLE = "feedback"
# the Glue table (next to ``captures``) over the refused requests (reject_key), filed as the captures are
ATHENA_REJECTS_TABLE = "rejects"

# capture_sink=logs (serving/capture_logs.py): each capture line carries this field, which the stack's
# subscription filter matches and the drift check reads back (driftcheck/capture_formats.py)
RECORD_TYPE_FIELD = "record_type"
CAPTURE_RECORD_TYPE = CAPTURE_ROOT
CAPTURE_LINES_FILTER_PATTERN = f'{{ $.{RECORD_TYPE_FIELD} = "{CAPTURE_RECORD_TYPE}" }}'


def compact_json(d: Mapping[str, Any]) -> str:
    """A record's JSON line: no spaces, and never NaN or Infinity (not JSON: the writer falls back first)."""
    return json.dumps(d, separators=(",", ":"), allow_nan=False)


def _with_variant(d: dict[str, Any], variant: str | None) -> dict[str, Any]:
    if variant is not None:  # records without a challenger deployed keep their original form
        d["variant"] = variant
    return d


class ScoredRow(Protocol):
    """What the drift check compares of a row: its inputs and the model's answer on them.

    A ``CaptureRecord`` is one; so is a bundle's reference row (``modelserve.bundle.ReferenceRow``).
    """

    @property
    def inputs(self) -> Mapping[str, Any]: ...

    @property
    def prediction(self) -> Any: ...

    @property
    def probabilities(self) -> Mapping[str, float] | None: ...

    @property
    def explanation(self) -> RowExplanation | None: ...


@dataclass(frozen=True)
class RowExplanation:
    """Why one row got its answer, as a capture record and a bundle's reference row keep it: the explained
    output (the explained class's probability, or the prediction), its expected value over the explainer's
    background and each feature's Shapley contribution (serving/explain.py; docs/api.md#explanations).

    ``values`` lacks the features the capture leaves out or hashes (their contribution tells of the value),
    so ``base_value + sum(values)`` equals ``output`` only when no feature is left out. ``sampled``: the row
    did not ask; it was explained for the capture (``explain_capture_fraction``) after the answer.
    """

    output: float
    base_value: float
    values: dict[str, float]
    explained_class: str | None = None  # classifiers: the class whose probability is explained
    method: str = "exact"  # "exact" or "permutation" (serving/explain.py)
    sampled: bool = False

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"output": self.output, "base_value": self.base_value, "values": self.values, "method": self.method}
        if self.explained_class is not None:
            d["class"] = self.explained_class
        if self.sampled:
            d["sampled"] = True
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RowExplanation:
        return cls(
            output=float(d["output"]),
            base_value=float(d["base_value"]),
            values={str(k): float(v) for k, v in d["values"].items()},
            explained_class=None if d.get("class") is None else str(d["class"]),
            method=str(d.get("method", "exact")),
            sampled=bool(d.get("sampled", False)),
        )

    def is_finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.output, self.base_value, *self.values.values()))


@dataclass(frozen=True)
class CaptureRecord:
    request_id: str
    row: int
    event_time: str  # ISO 8601 UTC, e.g. 2026-11-25T17:00:00.123456Z
    model_name: str
    model_version: str
    stage: str
    inputs: dict[str, Any]  # validated inputs; redacted features absent, hashed ones as "sha256:<hex>"
    prediction: Any  # class label (str) or regression value (float)
    probabilities: dict[str, float] | None = None  # classifiers: class -> probability
    # True: a value JSON cannot carry (a non-finite model output) was written as a string ("NaN", "Infinity")
    encoding_fallback: bool = False
    # "champion" | "challenger" when a challenger is deployed (docs/versions.md); None (and absent from
    # the JSON) otherwise, so records written before versions existed and after read the same
    variant: str | None = None
    # the row's explanation when capture_explanations is on and the row was explained (docs/capture.md);
    # None (and absent from the JSON) otherwise
    explanation: RowExplanation | None = None

    @property
    def key(self) -> RowKey:
        return self.request_id, self.row

    def to_dict(self) -> dict[str, Any]:
        # a shallow dict, not dataclasses.asdict (which deep-copies every value: ~5x slower on the
        # request path); the keys in the order of the fields
        d: dict[str, Any] = {
            "request_id": self.request_id,
            "row": self.row,
            "event_time": self.event_time,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "stage": self.stage,
            "inputs": self.inputs,
            "prediction": self.prediction,
            "probabilities": self.probabilities,
            **({"encoding_fallback": True} if self.encoding_fallback else {}),
        }
        _with_variant(d, self.variant)
        if self.explanation is not None:
            d["explanation"] = self.explanation.to_dict()
        return d

    def to_json(self) -> str:
        return compact_json(self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CaptureRecord:
        return cls(
            request_id=str(d["request_id"]),
            row=int(d["row"]),
            event_time=str(d["event_time"]),
            model_name=str(d["model_name"]),
            model_version=str(d["model_version"]),
            stage=str(d.get("stage", "")),
            inputs=dict(d["inputs"]),
            prediction=d["prediction"],
            probabilities=None if d.get("probabilities") is None else {str(k): float(v) for k, v in d["probabilities"].items()},
            encoding_fallback=bool(d.get("encoding_fallback", False)),
            variant=None if d.get("variant") is None else str(d["variant"]),
            explanation=None if d.get("explanation") is None else RowExplanation.from_dict(d["explanation"]),
        )


_NO_LABEL = object()  # a FeedbackRecord's ``replaces`` when it replaced nothing


@dataclass(frozen=True)
class FeedbackRecord:
    request_id: str
    row: int
    label: Any
    received_time: str
    model_name: str
    source: str | None = None  # AUDIT_SOURCE for labels of the audit sample; absent otherwise
    caller: str | None = None  # who sent it: the API key id, or the IAM caller's ARN; absent when unknown
    replaces: Any = _NO_LABEL  # a correction ("replace": true): the label it replaced; absent otherwise
    reason: str | None = None  # a correction's reason, as the client gave it
    # the request id was read back as one the server issued (serving/request_ids.py): the row is one the
    # request held, and ``predicted_at`` (ISO 8601 UTC) is when the prediction was made; absent otherwise
    verified: bool = False
    predicted_at: str | None = None

    @property
    def key(self) -> RowKey:
        return self.request_id, self.row

    @property
    def is_correction(self) -> bool:
        return self.replaces is not _NO_LABEL

    def to_json(self) -> str:
        d = asdict(self)
        for name in ("source", "caller", "reason", "predicted_at"):
            if d[name] is None:
                del d[name]  # records without them keep their original form
        if not self.is_correction:
            del d["replaces"]
        if not self.verified:
            del d["verified"]
        return compact_json(d)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeedbackRecord:
        return cls(
            request_id=str(d["request_id"]),
            row=int(d["row"]),
            label=d["label"],
            received_time=str(d.get("received_time", "")),
            model_name=str(d.get("model_name", "")),
            source=None if d.get("source") is None else str(d["source"]),
            caller=None if d.get("caller") is None else str(d["caller"]),
            replaces=d.get("replaces", _NO_LABEL),
            reason=None if d.get("reason") is None else str(d["reason"]),
            verified=d.get("verified") is True,
            predicted_at=None if d.get("predicted_at") is None else str(d["predicted_at"]),
        )


# a reject record stays small whatever the request held: errors kept, and text cut, at most
MAX_REJECT_ERRORS = 50
MAX_REJECT_TEXT = 200
MAX_REJECT_FIELD = 128


def _cut(text: Any, limit: int) -> str:
    s = text if isinstance(text, str) else str(text)
    s = s if len(s) <= limit else s[:limit] + "…"
    return s.encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate must not break the encoding


@dataclass(frozen=True)
class RejectedField:
    """One problem of a refused request: where (row, field) and why (the validation reason code).
    ``message`` is the validation message, cut; None for redacted and hashed features (it may echo the value)."""

    reason: str
    row: int | None = None
    field: str | None = None
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"row": self.row, "field": self.field, "reason": self.reason}
        if self.message is not None:
            d["message"] = self.message
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RejectedField:
        return cls(
            reason=str(d["reason"]),
            row=None if d.get("row") is None else int(d["row"]),
            field=None if d.get("field") is None else str(d["field"]),
            message=None if d.get("message") is None else str(d["message"]),
        )


@dataclass(frozen=True)
class RejectRecord:
    """One request the service refused (a 4xx of /predict or OIP infer), one JSON line per request.

    Bounded: at most ``MAX_REJECT_ERRORS`` errors, field names and messages cut; no input values
    (only the reason per field), so redaction holds. ``rows``: rows the request held (None when the
    body could not be read as rows); ``rows_with_errors``: distinct rows named by an error.
    """

    request_id: str
    event_time: str  # ISO 8601 UTC, as CaptureRecord's
    model_name: str
    model_version: str
    stage: str
    reason: str  # the request's reason code (its first error's); the ValidationRejects Reason
    status: int  # the HTTP status answered
    rows: int | None
    rows_with_errors: int
    errors: tuple[RejectedField, ...] = ()
    errors_total: int = 0  # errors validation reported (``errors`` keeps the first MAX_REJECT_ERRORS)
    route: str = "predict"  # "predict" | "oip"
    variant: str | None = None

    @classmethod
    def build(
        cls,
        request_id: str,
        event_time: datetime,
        model_name: str,
        model_version: str,
        stage: str,
        reason: str,
        status: int,
        rows: int | None,
        errors: Iterable[RejectedField],
        route: str = "predict",
        variant: str | None = None,
    ) -> RejectRecord:
        """The record, bounded: the first ``MAX_REJECT_ERRORS`` errors, texts cut."""
        every = list(errors)
        kept = tuple(
            RejectedField(
                _cut(e.reason, MAX_REJECT_FIELD),
                e.row,
                None if e.field is None else _cut(e.field, MAX_REJECT_FIELD),
                None if e.message is None else _cut(e.message, MAX_REJECT_TEXT),
            )
            for e in every[:MAX_REJECT_ERRORS]
        )
        return cls(
            request_id=_cut(request_id, MAX_REJECT_FIELD),
            event_time=utc_iso(event_time),
            model_name=model_name,
            model_version=model_version,
            stage=stage,
            reason=_cut(reason, MAX_REJECT_FIELD),
            status=int(status),
            rows=rows,
            rows_with_errors=len({e.row for e in every if e.row is not None}),
            errors=kept,
            errors_total=len(every),
            route=route,
            variant=variant,
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "request_id": self.request_id,
            "event_time": self.event_time,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "stage": self.stage,
            "reason": self.reason,
            "status": self.status,
            "rows": self.rows,
            "rows_with_errors": self.rows_with_errors,
            "errors": [e.to_dict() for e in self.errors],
            "errors_total": self.errors_total,
            "route": self.route,
        }
        return _with_variant(d, self.variant)

    def to_json(self) -> str:
        return compact_json(self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RejectRecord:
        errors = tuple(RejectedField.from_dict(e) for e in d.get("errors") or ())
        return cls(
            request_id=str(d["request_id"]),
            event_time=str(d["event_time"]),
            model_name=str(d["model_name"]),
            model_version=str(d["model_version"]),
            stage=str(d.get("stage", "")),
            reason=str(d["reason"]),
            status=int(d.get("status", 422)),
            rows=None if d.get("rows") is None else int(d["rows"]),
            rows_with_errors=int(d.get("rows_with_errors", 0)),
            errors=errors,
            errors_total=int(d.get("errors_total", len(errors))),
            route=str(d.get("route", "predict")),
            variant=None if d.get("variant") is None else str(d["variant"]),
        )


def utc_iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(s: str) -> datetime:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def model_capture_prefix(model_name: str, model_version: str) -> str:
    return f"{CAPTURE_ROOT}/model={model_name}/version={model_version}/"


def capture_key(model_name: str, model_version: str, event_time: datetime, request_id: str) -> str:
    t = event_time.astimezone(UTC)
    return f"{model_capture_prefix(model_name, model_version)}dt={t:%Y-%m-%d}/hour={t:%H}/{key_time_name(t)}-{request_id}.jsonl.gz"


def label_key(model_name: str, request_id: str, row: int) -> str:
    """The label one (request, row) holds, with its history of corrections: written create-only, so a
    second, different label is a conflict, not a silent replacement."""
    return f"{FEEDBACK_ROOT}/model={model_name}/{LABELS_DIR}/{quote(request_id, safe='')}/{row}.json"


def model_reject_prefix(model_name: str, model_version: str) -> str:
    return f"{REJECTS_ROOT}/model={model_name}/version={model_version}/"


def reject_hour_prefix(model_name: str, model_version: str, hour: datetime) -> str:
    """Where the rejected requests of one UTC hour are."""
    t = hour.astimezone(UTC)
    return f"{model_reject_prefix(model_name, model_version)}dt={t:%Y-%m-%d}/hour={t:%H}/"


def reject_key(model_name: str, model_version: str, event_time: datetime, request_id: str) -> str:
    """One rejected request's object: filed by its event time, like a capture (``capture_key``)."""
    t = event_time.astimezone(UTC)
    return f"{reject_hour_prefix(model_name, model_version, t)}{key_time_name(t)}-{request_id}.jsonl.gz"


def feedback_day_prefix(model_name: str, day: date) -> str:
    """Feedback received on one UTC day."""
    return f"{FEEDBACK_ROOT}/model={model_name}/dt={day:%Y-%m-%d}/"


def feedback_key(model_name: str, received: datetime, batch_id: str) -> str:
    """Feedback filed by its receipt time: labels written before request ids were read back, and unverified ones."""
    t = received.astimezone(UTC)
    return f"{feedback_day_prefix(model_name, t.date())}{key_time_name(t)}-{batch_id}.jsonl.gz"


def feedback_prediction_hour_prefix(model_name: str, predicted: datetime) -> str:
    """The labels of the requests predicted in one UTC hour: what a drift check of that hour reads."""
    t = predicted.astimezone(UTC)
    return f"{FEEDBACK_ROOT}/model={model_name}/{PREDICTED_DIR}/dt={t:%Y-%m-%d}/hour={t:%H}/"


def feedback_prediction_key(model_name: str, predicted: datetime, received: datetime, batch_id: str) -> str:
    """One batch's labels of requests predicted in ``predicted``'s hour; the name starts with the receipt
    time (date included: labels arrive days later), so the hour's keys sort by receipt."""
    r = received.astimezone(UTC)
    return f"{feedback_prediction_hour_prefix(model_name, predicted)}{r:%Y%m%dT%H%M%S%f}-{batch_id}.jsonl.gz"


def model_report_prefix(model_name: str) -> str:
    return f"{REPORTS_ROOT}/model={model_name}/"


def report_key(model_name: str, at: datetime, suffix: str) -> str:
    t = at.astimezone(UTC)
    return f"{model_report_prefix(model_name)}dt={t:%Y-%m-%d}/{t:%Y%m%dT%H%M%SZ}.{suffix}"


def comparison_report_key(model_name: str, at: datetime, suffix: str) -> str:
    """The version comparison's report, next to the drift report of the same run."""
    return report_key(model_name, at, f"comparison.{suffix}").replace("Z.comparison.", "Z-comparison.")


def version_report_key(model_name: str, model_version: str, at: datetime, suffix: str) -> str:
    """The drift report of a version other than the champion (a challenger's), next to the champion's of the same run."""
    t = at.astimezone(UTC)
    return f"{model_report_prefix(model_name)}dt={t:%Y-%m-%d}/{t:%Y%m%dT%H%M%SZ}-version={model_version}.{suffix}"


def window_report_key(model_name: str, at: datetime, window: str, suffix: str) -> str:
    """The report of a window checked besides the main one (``window``: its label, e.g. "1h"),
    next to the main window's report of the same run."""
    return report_key(model_name, at, f"w{window}.{suffix}").replace(f"Z.w{window}.", f"Z-w{window}.")


def audit_key(model_name: str, day: date, suffix: str) -> str:
    """The day's audit sample (``suffix``: "csv" or "jsonl")."""
    return f"{AUDIT_ROOT}/model={model_name}/dt={day:%Y-%m-%d}/audit.{suffix}"


def hour_prefixes(model_name: str, model_version: str, hour: datetime) -> tuple[str, str]:
    """Both prefixes captures of one UTC hour can live under: ours and Firehose's default."""
    t = hour.astimezone(UTC)
    base = model_capture_prefix(model_name, model_version)
    return f"{base}dt={t:%Y-%m-%d}/hour={t:%H}/", f"{base}{t:%Y/%m/%d/%H}/"


def hour_sample_key(model_name: str, model_version: str, hour: datetime, sample_cap: int) -> str:
    """The drift check's stored sample of one UTC hour of captures (at most ``sample_cap`` rows)."""
    t = hour.astimezone(UTC)
    return f"{SAMPLES_ROOT}/model={model_name}/version={model_version}/cap={sample_cap}/dt={t:%Y-%m-%d}/hour={t:%H}.json.gz"


def hour_labels_key(model_name: str, hour: datetime) -> str:
    """The drift check's stored copy of the feedback labels received in one UTC hour."""
    t = hour.astimezone(UTC)
    return f"{SAMPLES_ROOT}/model={model_name}/labels/dt={t:%Y-%m-%d}/hour={t:%H}.json.gz"


def prediction_hour_labels_key(model_name: str, hour: datetime) -> str:
    """The drift check's stored copy of the labels of the requests predicted in one UTC hour (once no more count)."""
    t = hour.astimezone(UTC)
    return f"{SAMPLES_ROOT}/model={model_name}/labels/{PREDICTED_DIR}/dt={t:%Y-%m-%d}/hour={t:%H}.json.gz"


def key_time_name(t: datetime) -> str:
    """The time part that starts the file name of a capture or feedback key (``HHMMSSffffff``):
    keys of one hour prefix sort by it, so a reader lists and reads only a time range of them."""
    return f"{t.astimezone(UTC):%H%M%S%f}"


_KEY_TIME = re.compile(r"/dt=(\d{4}-\d{2}-\d{2})/(?:hour=(\d{2})/)?(\d{2})(\d{2})(\d{2})(\d{6})-[^/]*$")


def key_time(key: str) -> str | None:
    """The time a capture, reject or feedback key of our layout names, as ``utc_iso`` writes it (compared as
    a string); None for keys named otherwise (Firehose's files): those are read whole."""
    m = _KEY_TIME.search(key)
    if m is None or (m.group(2) is not None and m.group(2) != m.group(3)):
        return None
    day, _, hh, mm, ss, frac = m.groups()
    return f"{day}T{hh}:{mm}:{ss}.{frac}Z"


def window_hours(start: datetime, end: datetime) -> list[datetime]:
    """UTC hour starts overlapping [start, end)."""
    if end <= start:  # an empty window overlaps no hour
        return []
    h = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    out = []
    while h < end:
        out.append(h)
        h += timedelta(hours=1)
    return out


def encode_jsonl_gz(records: Iterable[CaptureRecord | FeedbackRecord | RejectRecord]) -> bytes:
    body = "".join(r.to_json() + "\n" for r in records).encode()
    # mtime=0: the same records give the same bytes
    return gzip.compress(body, compresslevel=5, mtime=0)


def decode_jsonl(data: bytes) -> list[dict[str, Any]]:
    """Rows of a JSON Lines object, gzip (any number of members) or plain.

    Raises ValueError on a truncated or corrupt object, so a reader can skip and count it whole.
    The lines are parsed in ONE ``json.loads`` as an array: about half the CPU of a ``json.loads``
    per line, which dominates reading a large window (see benchmarks/bench_drift.py). Anything
    unusual (bad JSON, or not as many values as non-blank lines) is parsed again line by line,
    which raises naming the bad line.
    """
    if data[:2] == b"\x1f\x8b":
        try:
            text = _gunzip_all(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"corrupt gzip object: {exc}") from None
    else:
        text = data
    lines = [line for line in text.split(b"\n") if line.strip()]
    try:
        rows = json.loads(b"[" + b",".join(lines) + b"]")
    except (ValueError, RecursionError):
        rows = None
    if isinstance(rows, list) and len(rows) == len(lines):
        return rows
    return _decode_line_by_line(text)


def _decode_line_by_line(text: bytes) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(io.BytesIO(text), 1):
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"corrupt JSON on line {n}: {exc}") from None
    return rows


def _gunzip_all(data: bytes) -> bytes:
    return gzip.decompress(data)  # handles concatenated members; raises on truncation
