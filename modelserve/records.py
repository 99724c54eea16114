"""The capture and feedback record formats and their S3 layout.

One definition: the inference function writes these records, the drift check and the
reference sample read them. One record per row, JSON Lines, gzip-compressed objects.

S3 layout (partitioned for Athena partition projection and for window reads), every key scheme here:
    captures/model=<name>/version=<version>/dt=YYYY-MM-DD/hour=HH/<HHMMSSffffff>-<request id>.jsonl.gz
Firehose writes under ``captures/model=<name>/version=<version>/`` with its own
``YYYY/MM/DD/HH/`` suffix when the prefix is not expanded, so readers accept both layouts.
    feedback/model=<name>/dt=YYYY-MM-DD/<HHMMSSffffff>-<id>.jsonl.gz
    reports/model=<name>/dt=YYYY-MM-DD/<YYYYmmddTHHMMSSZ>.<json|html>
    reports/model=<name>/dt=YYYY-MM-DD/<YYYYmmddTHHMMSSZ>-comparison.<json|html>   (champion vs challenger)
    reports/model=<name>/dt=YYYY-MM-DD/<YYYYmmddTHHMMSSZ>-w<window>.<json|html>   (a window's report besides the main one, e.g. -w1h)
    samples/model=<name>/version=<version>/cap=<sample cap>/dt=YYYY-MM-DD/hour=HH.json.gz   (drift check's hour samples)
    samples/model=<name>/labels/dt=YYYY-MM-DD/hour=HH.json.gz   (feedback received in one UTC hour, kept by the drift check)
    audit/model=<name>/dt=YYYY-MM-DD/audit.<csv|jsonl>   (the day's manual audit sample, written by the drift check)
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

CAPTURE_ROOT = "captures"
FEEDBACK_ROOT = "feedback"
REPORTS_ROOT = "reports"
SAMPLES_ROOT = "samples"  # per-hour window samples kept by the drift check
AUDIT_ROOT = "audit"  # the daily manual audit sample
AUDIT_SOURCE = "audit"  # a feedback item's "source" for labels of audited rows

RowKey = tuple[str, int]  # (request id, row): joins a capture row and its feedback label


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
        if self.variant is not None:
            d["variant"] = self.variant
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

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
        )


@dataclass(frozen=True)
class FeedbackRecord:
    request_id: str
    row: int
    label: Any
    received_time: str
    model_name: str
    source: str | None = None  # AUDIT_SOURCE for labels of the audit sample; absent otherwise

    @property
    def key(self) -> RowKey:
        return self.request_id, self.row

    def to_json(self) -> str:
        d = asdict(self)
        if d["source"] is None:
            del d["source"]  # records without a source keep their original form
        return json.dumps(d, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeedbackRecord:
        return cls(
            request_id=str(d["request_id"]),
            row=int(d["row"]),
            label=d["label"],
            received_time=str(d.get("received_time", "")),
            model_name=str(d.get("model_name", "")),
            source=None if d.get("source") is None else str(d["source"]),
        )


def utc_iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(s: str) -> datetime:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def model_capture_prefix(model_name: str, model_version: str) -> str:
    return f"{CAPTURE_ROOT}/model={model_name}/version={model_version}/"


def capture_key(model_name: str, model_version: str, event_time: datetime, request_id: str) -> str:
    t = event_time.astimezone(UTC)
    return (
        f"{model_capture_prefix(model_name, model_version)}dt={t:%Y-%m-%d}/hour={t:%H}/"
        f"{key_time_name(t)}-{request_id}.jsonl.gz"
    )


def feedback_day_prefix(model_name: str, day: date) -> str:
    """Feedback received on one UTC day."""
    return f"{FEEDBACK_ROOT}/model={model_name}/dt={day:%Y-%m-%d}/"


def feedback_key(model_name: str, received: datetime, batch_id: str) -> str:
    t = received.astimezone(UTC)
    return f"{feedback_day_prefix(model_name, t.date())}{key_time_name(t)}-{batch_id}.jsonl.gz"


def model_report_prefix(model_name: str) -> str:
    return f"{REPORTS_ROOT}/model={model_name}/"


def report_key(model_name: str, at: datetime, suffix: str) -> str:
    t = at.astimezone(UTC)
    return f"{model_report_prefix(model_name)}dt={t:%Y-%m-%d}/{t:%Y%m%dT%H%M%SZ}.{suffix}"


def comparison_report_key(model_name: str, at: datetime, suffix: str) -> str:
    """The version comparison's report, next to the drift report of the same run."""
    return report_key(model_name, at, f"comparison.{suffix}").replace("Z.comparison.", "Z-comparison.")


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


def key_time_name(t: datetime) -> str:
    """The time part that starts the file name of a capture or feedback key (``HHMMSSffffff``):
    keys of one hour prefix sort by it, so a reader lists and reads only a time range of them."""
    return f"{t.astimezone(UTC):%H%M%S%f}"


_KEY_TIME = re.compile(r"/dt=(\d{4}-\d{2}-\d{2})/(?:hour=(\d{2})/)?(\d{2})(\d{2})(\d{2})(\d{6})-[^/]*$")


def key_time(key: str) -> str | None:
    """The time a capture or feedback key of our layout names, as ``utc_iso`` writes it (compared as
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


def encode_jsonl_gz(records: Iterable[CaptureRecord | FeedbackRecord]) -> bytes:
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
