"""Capturing every request's inputs and predictions, without ever failing a prediction.

Sinks follow one Protocol (as Powertools' metrics providers do): ``S3CaptureSink`` writes one
gzip JSON Lines object per request with a single PutObject (so objects are whole or absent);
``FirehoseCaptureSink`` sends the request's lines to a Kinesis Data Firehose stream that
buffers them into S3 under the same prefix scheme.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from .records import CaptureRecord, capture_key, encode_jsonl_gz, utc_iso
from .schema import BundleManifest, Table, json_value

logger = logging.getLogger(__name__)

FIREHOSE_MAX_RECORD_BYTES = 1_000_000  # Firehose's record limit is 1,000 KiB; stay under it
FIREHOSE_MAX_BATCH = 500


class CaptureSink(Protocol):
    def write(self, key: str, records: Sequence[CaptureRecord]) -> None:
        """Store one request's records; raise on failure (the capturer retries and counts)."""


@dataclass
class S3CaptureSink:
    client: Any  # boto3 S3 client
    bucket: str

    def write(self, key: str, records: Sequence[CaptureRecord]) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=encode_jsonl_gz(records),
            ContentType="application/x-ndjson",
            ContentEncoding="gzip",
        )


class FirehoseDeliveryError(RuntimeError):
    pass


@dataclass
class FirehoseCaptureSink:
    client: Any  # boto3 Firehose client
    stream_name: str

    def write(self, key: str, records: Sequence[CaptureRecord]) -> None:
        # Firehose compresses and partitions itself; each Firehose record holds whole lines only
        chunks: list[bytes] = []
        current = bytearray()
        for r in records:
            line = (r.to_json() + "\n").encode()
            if current and len(current) + len(line) > FIREHOSE_MAX_RECORD_BYTES:
                chunks.append(bytes(current))
                current = bytearray()
            current += line
        if current:
            chunks.append(bytes(current))
        for start in range(0, len(chunks), FIREHOSE_MAX_BATCH):
            batch = [{"Data": c} for c in chunks[start : start + FIREHOSE_MAX_BATCH]]
            resp = self.client.put_record_batch(DeliveryStreamName=self.stream_name, Records=batch)
            if resp.get("FailedPutCount", 0):
                raise FirehoseDeliveryError(f"{resp['FailedPutCount']} of {len(batch)} Firehose records failed")


@dataclass
class Redactor:
    """Features never written (``redact``) or written as a salted SHA-256 (``hash``)."""

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
                v = "sha256:" + hashlib.sha256((self.salt + "\x00" + str(v)).encode()).hexdigest()
            out[k] = v
        return out


@dataclass
class Capturer:
    """Builds capture records for a scored request and hands them to a sink.

    ``on_error`` and ``on_captured`` are the metric hooks (CaptureErrors, CapturedRows).
    """

    manifest: BundleManifest
    sink: CaptureSink | None
    stage: str
    sampling: float = 1.0
    redactor: Redactor = field(default_factory=Redactor)
    on_error: Callable[[Exception], None] = lambda exc: None
    on_captured: Callable[[int], None] = lambda n: None
    rng: random.Random = field(default_factory=random.Random)

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
    ) -> list[CaptureRecord]:
        m = self.manifest
        n = len(labels)
        t = utc_iso(event_time)
        columns = [(f, table[f.name]) for f in m.features if f.name not in self.redactor.redact]
        label_list = labels.tolist()
        prob_list = probabilities.tolist() if probabilities is not None else None
        classes = m.outputs.classes
        out = []
        for i in range(n):
            inputs = self.redactor.apply({f.name: json_value(f, col[i]) for f, col in columns})
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
                )
            )
        return out

    def capture(
        self,
        request_id: str,
        event_time: datetime,
        table: Table,
        labels: np.ndarray,
        probabilities: np.ndarray | None,
    ) -> bool:
        """Write the request's records; never raises. Returns whether they were stored."""
        if not self.should_capture():
            return False
        try:
            records = self.records(request_id, event_time, table, labels, probabilities)
            key = capture_key(self.manifest.model_name, self.manifest.version, event_time, request_id)
        except Exception as exc:  # a bug here must still not fail the prediction
            logger.exception("capture record build failed")
            self.on_error(exc)
            return False
        assert self.sink is not None
        last: Exception | None = None
        for attempt in (1, 2):  # one retry
            try:
                self.sink.write(key, records)
                self.on_captured(len(records))
                return True
            except Exception as exc:  # noqa: BLE001 - any sink failure is counted, never raised
                last = exc
                logger.warning("capture attempt %d failed: %s", attempt, exc)
        logger.error("capture failed after retry; request %s not captured: %s", request_id, last)
        self.on_error(last)  # type: ignore[arg-type]
        return False
