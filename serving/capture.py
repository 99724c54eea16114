"""Capturing every request's inputs and predictions, without ever failing a prediction.

Sinks follow one Protocol (as Powertools' metrics providers do): ``S3CaptureSink`` writes one
gzip JSON Lines object per request with a single PutObject (so objects are whole or absent);
``FirehoseCaptureSink`` sends the request's lines to a Kinesis Data Firehose stream that
buffers them into S3 under the same prefix scheme.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from modelserve.records import (
    CaptureRecord,
    RejectedField,
    RejectRecord,
    RowExplanation,
    capture_key,
    encode_jsonl_gz,
    reject_key,
    utc_iso,
)
from modelserve.schema import BundleManifest, FeatureKind, FeatureSpec, Table

from .explain import Explanations
from .explain_capture import CaptureExplanations, DeferredExplanations, RowExplanations, resolve
from .validation import ColumnBatch

logger = logging.getLogger(__name__)

FIREHOSE_MAX_RECORD_BYTES = 1_000_000  # Firehose's record limit is 1,000 KiB; stay under it
FIREHOSE_MAX_BATCH = 500  # records per PutRecordBatch
FIREHOSE_MAX_BATCH_BYTES = 4 * 1024 * 1024  # and bytes per PutRecordBatch


class CaptureExecutor(Protocol):
    """When a capture's write runs: now (``SynchronousExecutor``), or after the response
    (``serving.post_response``: a Lambda internal extension, or a bounded background thread)."""

    def submit(self, work: Callable[[], bool]) -> bool:
        """Run ``work`` (which never raises) now or later; never raises. Returns the work's result
        when run now, else whether it was accepted (False: dropped, and counted by the executor)."""


class SynchronousExecutor:
    """The write happens before the answer leaves: where no post-response path exists."""

    def submit(self, work: Callable[[], bool]) -> bool:
        return work()


class CaptureSink(Protocol):
    def write(self, key: str, records: Sequence[CaptureRecord]) -> None:
        """Store one request's records; raise on failure (the capturer retries and counts)."""


class RejectSink(Protocol):
    def write(self, key: str, records: Sequence[RejectRecord]) -> None:
        """Store one rejected request's record; raise on failure (the capturer retries and counts)."""


@dataclass
class S3CaptureSink:
    client: Any  # boto3 S3 client
    bucket: str

    def write(self, key: str, records: Sequence[CaptureRecord] | Sequence[RejectRecord]) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=encode_jsonl_gz(records),
            ContentType="application/x-ndjson",
        )


class FirehoseDeliveryError(RuntimeError):
    pass


def firehose_chunks(lines: Sequence[bytes], max_record_bytes: int = FIREHOSE_MAX_RECORD_BYTES) -> list[bytes]:
    """Pack newline-terminated lines into Firehose records of at most ``max_record_bytes``.

    Splits only on line boundaries, so every record (and every S3 object Firehose builds from
    them) holds whole JSON lines. A single line over the limit cannot be sent: ValueError.
    """
    chunks: list[bytes] = []
    current = bytearray()
    for line in lines:
        if len(line) > max_record_bytes:
            raise ValueError(f"a capture line of {len(line)} bytes is over Firehose's record limit ({max_record_bytes})")
        if current and len(current) + len(line) > max_record_bytes:
            chunks.append(bytes(current))
            current = bytearray()
        current += line
    if current:
        chunks.append(bytes(current))
    return chunks


@dataclass
class FirehoseCaptureSink:
    client: Any  # boto3 Firehose client
    stream_name: str
    max_record_bytes: int = FIREHOSE_MAX_RECORD_BYTES
    max_batch_records: int = FIREHOSE_MAX_BATCH
    max_batch_bytes: int = FIREHOSE_MAX_BATCH_BYTES
    # records of the last failed write not yet accepted: the capturer's retry sends only these,
    # so a partial failure is not duplicated in S3
    _pending: tuple[str, list[bytes]] | None = field(default=None, init=False, repr=False)

    def write(self, key: str, records: Sequence[CaptureRecord]) -> None:
        # Firehose compresses and partitions itself; each Firehose record holds whole lines only
        if self._pending is not None and self._pending[0] == key:
            remaining = self._pending[1]
        else:
            remaining = firehose_chunks([(r.to_json() + "\n").encode() for r in records], self.max_record_bytes)
        self._pending = None
        try:
            while remaining:
                batch = self._next_batch(remaining)
                resp = self.client.put_record_batch(DeliveryStreamName=self.stream_name, Records=[{"Data": c} for c in batch])
                failed: list[bytes] = []
                if resp.get("FailedPutCount", 0):
                    answers = resp.get("RequestResponses") or []
                    failed = [c for c, a in zip(batch, answers) if a.get("ErrorCode")] if len(answers) == len(batch) else list(batch)
                remaining = failed + remaining[len(batch) :]
                if failed:
                    raise FirehoseDeliveryError(f"{len(failed)} of {len(batch)} Firehose records failed")
        finally:
            if remaining:
                self._pending = (key, remaining)

    def _next_batch(self, chunks: list[bytes]) -> list[bytes]:
        """Up to 500 records and 4 MiB per PutRecordBatch (chunks are each under 1,000 KiB)."""
        size = 0
        n = 0
        for c in chunks[: self.max_batch_records]:
            if n and size + len(c) > self.max_batch_bytes:
                break
            size += len(c)
            n += 1
        return chunks[:n]


@dataclass
class Redactor:
    """Features never written (``redact``) or written as a salted SHA-256 (``hash``).

    A hashed value is ``"sha256:" + sha256(salt + value).hexdigest()`` where value is the string
    itself for categorical features and its JSON text otherwise (``39.1``, ``true``); nulls stay
    null so missingness remains visible. Equal values give equal hashes, so joins still work.
    """

    redact: frozenset[str] = frozenset()
    hash: frozenset[str] = frozenset()
    salt: str = ""

    def apply(self, inputs: dict[str, Any]) -> dict[str, Any]:
        if not self.redact and not self.hash:
            return inputs
        out = {}
        for k, v in inputs.items():
            if k in self.redact:
                continue
            if k in self.hash and v is not None:
                v = self.hash_value(v)
            out[k] = v
        return out

    def hash_value(self, v: Any) -> str:
        text = v if isinstance(v, str) else json.dumps(v)
        return "sha256:" + hashlib.sha256((self.salt + text).encode()).hexdigest()

    def explanation(self, explanation: RowExplanation | None) -> RowExplanation | None:
        """A row's explanation without the contributions of redacted and hashed features (a contribution tells
        of its value); None for one JSON cannot carry (a non-finite output)."""
        if explanation is None or not explanation.is_finite():
            return None
        private = self.redact | self.hash
        if not private:
            return explanation
        return dataclasses.replace(explanation, values={k: v for k, v in explanation.values.items() if k not in private})


def json_column(spec: FeatureSpec, col: np.ndarray) -> list[Any]:
    """``[json_value(spec, v) for v in col]``, vectorised: NaN -> None, booleans as bool, categories as str."""
    if spec.kind is FeatureKind.CATEGORICAL:
        return [None if v is None else str(v) for v in col.tolist()]
    values = np.asarray(col, dtype=np.float64).tolist()
    if spec.kind is FeatureKind.BOOLEAN:
        return [None if v != v else bool(v) for v in values]
    return [None if v != v else v for v in values]  # v != v: NaN


def json_safe(value: Any) -> Any:
    """``value`` with every float JSON cannot carry written as a string ("NaN", "Infinity", "-Infinity")
    and anything else JSON has no type for written as its text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else ("NaN" if value != value else ("Infinity" if value > 0 else "-Infinity"))
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return str(value)


def with_encoding_fallback(record: CaptureRecord) -> CaptureRecord:
    """The record, encodable whatever it holds: nothing scored is dropped for a value JSON cannot carry."""
    try:
        record.to_json()
        return record
    except (ValueError, TypeError):
        return dataclasses.replace(
            record,
            inputs=json_safe(record.inputs),
            prediction=json_safe(record.prediction),
            probabilities=json_safe(record.probabilities),
            encoding_fallback=True,
        )


@dataclass
class Capturer:
    """Builds capture records for a scored request and hands them to a sink.

    ``on_error`` and ``on_captured`` are the metric hooks (CaptureErrors, CapturedRows).
    ``executor`` decides when the write runs (see ``CaptureExecutor``); the sampling decision is
    always taken in the request, and the records are built with the write (off the answer's path).
    """

    manifest: BundleManifest
    sink: CaptureSink | None
    stage: str
    sampling: float = 1.0
    redactor: Redactor = field(default_factory=Redactor)
    on_error: Callable[[Exception], None] = lambda exc: None
    on_captured: Callable[[int], None] = lambda n: None
    rng: random.Random = field(default_factory=random.Random)
    executor: CaptureExecutor = field(default_factory=SynchronousExecutor)
    variant: str | None = None  # "champion" | "challenger" when a challenger is deployed (serving/variants.py)
    # where refused requests go (docs/capture.md#rejected-requests): S3 under rejects/, also with the
    # Firehose sink (its stream files everything under captures/, which the window reader reads as captures)
    reject_sink: RejectSink | None = None
    # capture_explanations: which rows' explanations the records hold (serving/explain_capture.py); None: none
    explain: CaptureExplanations | None = None

    def should_capture(self) -> bool:
        if self.sink is None or self.sampling <= 0.0:
            return False
        return self.sampling >= 1.0 or self.rng.random() < self.sampling

    def records(
        self,
        request_id: str,
        event_time: datetime,
        table: Table,
        labels: np.ndarray,
        probabilities: np.ndarray | None,
        explanations: RowExplanations | None = None,
    ) -> list[CaptureRecord]:
        """The request's records; ``explanations``: per row, its explanation or None (capture_explanations)."""
        m = self.manifest
        n = len(labels)
        t = utc_iso(event_time)
        # column-wise conversion to JSON values (json_value's rules, without a call per cell)
        columns = [(f.name, json_column(f, table[f.name])) for f in m.features if f.name not in self.redactor.redact]
        label_list = labels.tolist()
        prob_list = probabilities.tolist() if probabilities is not None else None
        classes = m.outputs.classes
        # rows holding a non-finite output (a model can overflow on inputs validation accepts): written
        # with those values as strings and flagged, never dropped (vectorised check: the common case costs one pass)
        suspect = np.zeros(n, dtype=bool)
        if probabilities is not None:
            suspect |= ~np.isfinite(np.asarray(probabilities, dtype=np.float64).reshape(n, -1)).all(axis=1)
        if labels.dtype.kind == "f":
            suspect |= ~np.isfinite(labels)
        out = []
        for i in range(n):
            inputs = self.redactor.apply({name: col[i] for name, col in columns})
            out.append(
                CaptureRecord(
                    request_id=request_id,
                    row=i,
                    event_time=t,
                    model_name=m.model_name,
                    model_version=m.version,
                    stage=self.stage,
                    inputs=inputs,
                    prediction=label_list[i],
                    probabilities=dict(zip(classes, prob_list[i])) if prob_list is not None else None,
                    variant=self.variant,
                    explanation=None if explanations is None else self.redactor.explanation(explanations[i]),
                )
            )
            if suspect[i]:
                out[i] = with_encoding_fallback(out[i])
        return out

    def capture(
        self,
        request_id: str,
        event_time: datetime,
        table: Table,
        labels: np.ndarray,
        probabilities: np.ndarray | None,
        answered: Explanations | None = None,
    ) -> bool:
        """Capture a scored request; never raises. Returns whether the records were stored (synchronous
        executor) or handed to the post-response executor (False: not sampled, or dropped). ``answered``:
        the explanations the answer carried (kept in the records when capture_explanations is on)."""
        if not self.should_capture():
            return False
        explanations = self.explanations_for(table, labels, answered)
        work = functools.partial(self.write_after_answer, request_id, event_time, table, labels, probabilities, explanations)
        return self.executor.submit(work)

    def write_after_answer(self, *args: Any) -> bool:
        """What ``capture`` hands the executor: the request's write (a subclass adds its own, e.g. the shadow's)."""
        return self.write(*args)

    def explanations_for(self, table: Table, labels: np.ndarray, answered: Explanations | None) -> DeferredExplanations | None:
        """Which rows of a captured request get an explanation, decided now; computed with the write. Never raises."""
        if self.explain is None:
            return None
        try:
            return self.explain.plan(table, labels, answered, self.rng)
        except Exception as exc:  # noqa: BLE001 - the capture goes on without explanations
            logger.exception("explanation plan failed")
            _call_hook(self.explain.on_error, exc)
            return None

    def write(
        self,
        request_id: str,
        event_time: datetime,
        table: Table,
        labels: np.ndarray,
        probabilities: np.ndarray | None,
        explanations: DeferredExplanations | None = None,
    ) -> bool:
        """Build the request's records (computing ``explanations`` first: after the answer) and write them (one
        retry); never raises. Returns whether stored. An explanation failure is counted, the rows written without."""
        m = self.manifest
        explained = resolve(explanations, self.explain.on_error if self.explain is not None else lambda exc: None)
        return self._store(
            self.sink,
            "capture",
            request_id,
            lambda: (
                capture_key(m.model_name, m.version, event_time, request_id),
                self.records(request_id, event_time, table, labels, probabilities, explained),
            ),
            on_stored=lambda records: _call_hook(self.on_captured, len(records)),
        )

    # --- refused requests: same sampling and redaction, own prefix, written after the answer too ---

    def capture_reject(
        self,
        request_id: str,
        event_time: datetime,
        reason: str,
        status: int,
        errors: Sequence[RejectedField],
        rows: int | None,
        route: str = "predict",
    ) -> bool:
        """Capture a refused request (one ``RejectRecord``); never raises. Sampled like a scored request
        (``capture_sampling``): the drift check's reject share is then unbiased. Returns as ``capture``."""
        if self.reject_sink is None or not self.should_capture():
            return False
        work = functools.partial(self.write_reject, request_id, event_time, reason, status, list(errors), rows, route)
        return self.executor.submit(work)

    def reject_record(
        self,
        request_id: str,
        event_time: datetime,
        reason: str,
        status: int,
        errors: Sequence[RejectedField],
        rows: int | None,
        route: str = "predict",
    ) -> RejectRecord:
        """The record; the message of a redacted or hashed feature's error is left out (it may echo the value)."""
        private = self.redactor.redact | self.redactor.hash
        kept = [e if e.field not in private else dataclasses.replace(e, message=None) for e in errors]
        m = self.manifest
        return RejectRecord.build(
            request_id, event_time, m.model_name, m.version, self.stage, reason, status, rows, kept, route, self.variant
        )

    def write_reject(self, request_id: str, event_time: datetime, *refusal: Any) -> bool:
        """Build and write the record (``refusal``: ``reject_record``'s arguments after the time; one retry);
        never raises. A failure is counted (CaptureErrors)."""
        m = self.manifest
        return self._store(
            self.reject_sink,
            "reject capture",
            request_id,
            lambda: (reject_key(m.model_name, m.version, event_time, request_id), [self.reject_record(request_id, event_time, *refusal)]),
        )

    def _store(
        self,
        sink: CaptureSink | RejectSink | None,
        what: str,
        request_id: str,
        build: Callable[[], tuple[str, list[Any]]],
        on_stored: Callable[[list[Any]], None] | None = None,
    ) -> bool:
        """Build (key, records) and write them with one retry; never raises. A failure to build or to
        write is logged and counted (``on_error``); a hook failure never re-writes."""
        try:
            key, records = build()
        except Exception as exc:  # a bug here must still not fail the answer
            logger.exception("%s record build failed", what)
            _call_hook(self.on_error, exc)
            return False
        assert sink is not None
        last: Exception | None = None
        for attempt in (1, 2):  # one retry
            try:
                sink.write(key, records)
            except Exception as exc:  # noqa: BLE001 - any sink failure is counted, never raised
                last = exc
                logger.warning("%s attempt %d failed: %s", what, attempt, exc)
                continue
            if on_stored is not None:
                on_stored(records)  # outside the try: a hook failure must not re-write
            return True
        logger.error("%s failed after retry; request %s not captured: %s", what, request_id, last)
        _call_hook(self.on_error, last)
        return False


def rows_of(payload: Any) -> int | None:
    """Rows a request body holds (``instances`` or ``dataframe_split.data``), None when it is not one of those."""
    if isinstance(payload, dict) and len(payload) == 1:
        if isinstance(payload.get("instances"), list):
            return len(payload["instances"])
        split = payload.get("dataframe_split")
        if isinstance(split, dict) and isinstance(split.get("data"), list):
            return len(split["data"])
    if isinstance(payload, ColumnBatch):  # an Arrow or OIP body decoded to columns: the longest column
        return max((len(c) for c in payload.columns), default=None)
    return None


def _call_hook(hook: Callable[[Any], None], arg: Any) -> None:
    """Metric hooks must not turn a capture problem into a failed prediction."""
    try:
        hook(arg)
    except Exception:  # noqa: BLE001
        logger.exception("capture metric hook failed")
