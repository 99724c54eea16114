"""Hour samples: the uniform sample of one UTC hour of captures, read once and kept in S3.

A scheduled check every hour over a 24 h window would read every capture 24 times. Instead, each
whole UTC hour of the window that ended more than ``HOUR_SETTLE`` ago (so late Firehose
deliveries are in) is read once, and its reservoir sample and row count are stored under
``samples/`` (key: ``modelserve.records.hour_sample_key``); later checks read that one object,
its counts from the object's metadata and its rows only when the merge takes some of them.
Storing and reading them is only an optimisation: any failure means reading the hour again.
"""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from modelserve.records import utc_iso

from .store import HOUR, get_bytes

logger = logging.getLogger(__name__)

# an hour's sample is stored once it ended this long ago: Firehose buffers for at most 15 minutes
HOUR_SETTLE = timedelta(minutes=20)
SAMPLE_FORMAT = 1
MAX_CORRUPT_KEYS = 100  # kept by name (in samples and reports); all are counted

CaptureRow = dict[str, Any]  # a capture record as decoded from its JSON line, not yet typed


@dataclass
class HourSample:
    """The uniform sample of one slice of the window (within one UTC hour), with what reading it
    cost and found. Only whole, settled hours are stored."""

    start: datetime
    end: datetime
    rows: list[CaptureRow]
    rows_seen: int
    objects_read: int = 0
    objects_listed: int = 0
    corrupt_keys: list[str] = field(default_factory=list)
    corrupt_objects: int = 0
    partial: bool = False
    # objects whose GET failed (AccessDenied, KMS, throttling...), by error code: a fault, not corrupt data
    read_errors: dict[str, int] = field(default_factory=dict)
    cached: bool = False  # taken from its stored sample, not read from captures in this run
    sample_key: str | None = None  # where its rows are when they are not held in memory

    def to_bytes(self) -> bytes:
        doc = {
            "format": SAMPLE_FORMAT,
            "start": utc_iso(self.start),
            "end": utc_iso(self.end),
            "rows_seen": self.rows_seen,
            "objects": self.objects_read,
            "corrupt_objects": self.corrupt_objects,
            "corrupt_keys": self.corrupt_keys[:MAX_CORRUPT_KEYS],
            "rows": self.rows,
        }
        return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), compresslevel=5, mtime=0)

    @classmethod
    def from_bytes(cls, data: bytes, start: datetime, end: datetime) -> HourSample:
        doc = json.loads(gzip.decompress(data))
        if doc.get("format") != SAMPLE_FORMAT or doc["start"] != utc_iso(start) or doc["end"] != utc_iso(end):
            raise ValueError("hour sample is of another format or hour")
        rows = doc["rows"]
        if not isinstance(rows, list) or int(doc["rows_seen"]) < len(rows):
            raise ValueError("hour sample is inconsistent")
        return cls(
            start,
            end,
            rows,
            int(doc["rows_seen"]),
            objects_read=int(doc["objects"]),
            corrupt_keys=list(doc.get("corrupt_keys", [])),
            corrupt_objects=int(doc["corrupt_objects"]),
            cached=True,
        )


def settled(hour: datetime, now: datetime) -> bool:
    """Late deliveries to ``hour`` are in: its sample can be stored, or read."""
    return now - (hour + HOUR) >= HOUR_SETTLE


def storable(start: datetime, end: datetime, hour: datetime, now: datetime) -> bool:
    """The slice [start, end) is the whole of ``hour``, and late deliveries to it are in."""
    return start == hour and end == hour + HOUR and settled(hour, now)


def part_of_sample(s3: Any, bucket: str, key: str, hour: datetime, start: datetime, end: datetime) -> HourSample | None:
    """The slice [start, end) of ``hour`` from the hour's stored sample (None when none is stored):
    its rows whose event time is in the slice, a uniform sample of the slice's rows. Their count is
    exact when the sample holds the whole hour, else estimated as the hour's count times the share
    of the sample in the slice."""
    stored = get_sample(s3, bucket, key, hour, hour + HOUR)
    if stored is None:
        return None
    lo, hi = utc_iso(start), utc_iso(end)
    rows = [r for r in stored.rows if lo <= str(r.get("event_time", "")) < hi]
    whole = stored.rows_seen == len(stored.rows)
    seen = len(rows) if whole else round(stored.rows_seen * len(rows) / max(1, len(stored.rows)))
    return HourSample(start, end, rows, max(seen, len(rows)), cached=True)


def put_sample(s3: Any, bucket: str, key: str, sample: HourSample) -> bool:
    try:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=sample.to_bytes(),
            ContentType="application/json",
            Metadata={"rows-seen": str(sample.rows_seen), "corrupt-objects": str(sample.corrupt_objects), "format": str(SAMPLE_FORMAT)},
        )
        return True
    except Exception as exc:  # noqa: BLE001 - only an optimisation: the next run reads the hour again
        logger.warning("hour sample %s not stored: %s", key, exc)
        return False


def head_sample(s3: Any, bucket: str, key: str, start: datetime, end: datetime) -> HourSample | None:
    """A stored hour sample's counts, from its metadata (its rows are fetched only if the merge needs them)."""
    try:
        meta = s3.head_object(Bucket=bucket, Key=key).get("Metadata") or {}
        if meta.get("format") != str(SAMPLE_FORMAT):
            return None
        return HourSample(
            start, end, [], int(meta["rows-seen"]), corrupt_objects=int(meta.get("corrupt-objects", 0)), cached=True, sample_key=key
        )
    except Exception as exc:  # noqa: BLE001 - absent (the usual first time) or unreadable: read the hour
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        # an absent key answers 404, or 403 where ListBucket is granted for prefixes only (as the stack does)
        if code not in ("404", "NoSuchKey", "NotFound", "403", "AccessDenied", "Forbidden"):
            logger.warning("hour sample %s unreadable, reading the hour's captures: %s", key, exc)
        return None


def get_sample(s3: Any, bucket: str, key: str, start: datetime, end: datetime) -> HourSample | None:
    try:
        data = get_bytes(s3, bucket, key)
    except Exception as exc:  # noqa: BLE001 - absent (the usual first time) or unreadable: read the hour
        if "NoSuchKey" not in str(exc) and "404" not in str(exc):
            logger.warning("hour sample %s unreadable, reading the hour's captures: %s", key, exc)
        return None
    try:
        return HourSample.from_bytes(data, start, end)
    except (ValueError, KeyError, TypeError, OSError, EOFError, zlib.error) as exc:
        logger.warning("hour sample %s corrupt, reading the hour's captures: %s", key, exc)
        return None
