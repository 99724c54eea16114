"""Reading the feedback labels (ground truth sent after the prediction) of a window's sampled rows.

Labels for a window's rows arrive from the window's start to ``LABEL_GRACE`` past its end. They
are read by UTC hour of receipt: each hour that has settled (``HOUR_SETTLE``) is read from its
feedback objects once and then kept as one small labels object (``hour_labels_key``: every
label received that hour), so a check reads at most one object per hour of its label span, and
its cost does not grow with feedback received outside that span. Only hours not yet settled (or
whose labels object is missing or unreadable) are read from the feedback objects, and of those
only the keys the hour's time range names (feedback keys start with their receipt time).
Storing and reading labels objects is only an optimisation: any failure means reading the hour again.
"""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from collections.abc import Iterable, Sequence, Set
from datetime import UTC, datetime, timedelta
from typing import Any

from modelserve.records import (
    FeedbackRecord,
    RowKey,
    decode_jsonl,
    feedback_day_prefix,
    hour_labels_key,
    key_time,
    utc_iso,
    window_hours,
)

from .hour_samples import settled
from .store import HOUR, CaptureLocation, fetch_parallel, list_keys

logger = logging.getLogger(__name__)

LABEL_GRACE = timedelta(days=1)  # labels may arrive after the window: look this far past it
LABELS_FORMAT = 1


class Labels(dict[RowKey, FeedbackRecord]):
    """The label of each wanted row that has one, and what could not be joined plainly:
    ``conflicting``: wanted rows sent different labels without ``"replace": true`` (two clients racing,
    or labels stored before labels were create-only): the first label received is kept;
    ``unmatched``: labels received in the window's span that join no row read in the window (requests
    never captured or sampled out, rows of other windows, mistyped request ids)."""

    def __init__(self) -> None:
        super().__init__()
        self.conflicting: set[RowKey] = set()
        self.unmatched = 0

    def add(self, record: FeedbackRecord) -> None:
        held = self.get(record.key)
        if held is None or record.is_correction:
            self[record.key] = record  # a correction names what it replaced: the last one received wins
        elif held.label != record.label:
            self.conflicting.add(record.key)


def read_feedback(
    s3: Any,
    where: CaptureLocation,
    start: datetime,
    end: datetime,
    wanted: Set[RowKey],
    workers: int = 16,
    now: datetime | None = None,
) -> Labels:
    """The feedback record of each wanted (request id, row) that has one, from the feedback received
    from the window's start to ``LABEL_GRACE`` past its end (a correction replaces the label it names;
    a different label without one is counted as conflicting and not used; a corrupt object is skipped
    from its bad row on). ``now``: the wall clock (hours after it hold no feedback yet; settled hours are kept)."""
    now = now or datetime.now(UTC)
    # no feedback is received after now: hours past it are not listed
    hours = window_hours(start, min(end + LABEL_GRACE, now + HOUR))
    labels = Labels()
    span = utc_iso(start), utc_iso(end)
    for records in hour_feedback(s3, where, hours, now, workers):
        for record in records:
            if record.key in wanted:
                labels.add(record)
            elif span[0] <= record.received_time < span[1]:
                labels.unmatched += 1
    return labels


def hour_feedback(
    s3: Any, where: CaptureLocation, hours: Sequence[datetime], now: datetime, workers: int = 16
) -> list[list[FeedbackRecord]]:
    """Every feedback record received in each UTC hour, in receipt order (settled hours from their
    labels object when stored, and stored when not)."""
    stored: dict[datetime, list[FeedbackRecord]] = {}
    kept = {hour_labels_key(where.model_name, h): h for h in hours if settled(h, now)}
    for key, data in fetch_parallel(s3, where.bucket, kept, workers):
        records = _from_labels_object(key, data, kept[key])
        if records is not None:
            stored[kept[key]] = records
    missing = [h for h in hours if h not in stored]
    read = _read_hours(s3, where, missing, workers)
    for hour in missing:
        if settled(hour, now):
            _put_labels_object(s3, where, hour, read[hour])
    return [stored[h] if h in stored else read[h] for h in hours]


def _read_hours(s3: Any, where: CaptureLocation, hours: Sequence[datetime], workers: int) -> dict[datetime, list[FeedbackRecord]]:
    """The records of each hour from the feedback objects whose key names a receipt time in it."""
    out: dict[datetime, list[tuple[str, list[FeedbackRecord]]]] = {h: [] for h in hours}
    by_key: dict[str, datetime] = {}
    for hour in hours:
        for key in _hour_keys(s3, where, hour):
            by_key[key] = hour
    for key, data in fetch_parallel(s3, where.bucket, by_key, workers):
        if isinstance(data, Exception):
            logger.warning("feedback object %s unreadable: %s", key, data)
            continue
        records: list[FeedbackRecord] = []
        try:
            for row in decode_jsonl(data):
                records.append(FeedbackRecord.from_dict(row))
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("feedback object %s skipped from its bad row on: %s", key, exc)
        out[by_key[key]].append((key, records))
    # in key (receipt time) order, whatever order the GETs landed in: the last label received wins
    return {h: [r for _, records in sorted(objs, key=lambda o: o[0]) for r in records] for h, objs in out.items()}


def _hour_keys(s3: Any, where: CaptureLocation, hour: datetime) -> Iterable[str]:
    """Keys of the feedback received in ``hour``: the day's listing, from the hour's first key name to its last."""
    prefix = feedback_day_prefix(where.model_name, hour.astimezone(UTC).date())
    lo, hi = utc_iso(hour), utc_iso(hour + HOUR)
    for key in list_keys(s3, where.bucket, prefix, start_after=prefix + f"{hour.astimezone(UTC):%H}"):
        t = key_time(key)
        if t is None:
            continue  # not a feedback key of ours
        if t >= hi:
            return
        if t >= lo:
            yield key


def _from_labels_object(key: str, data: bytes | Exception, hour: datetime) -> list[FeedbackRecord] | None:
    if isinstance(data, Exception):
        text = str(data)
        if "NoSuchKey" not in text and "404" not in text and "AccessDenied" not in text:
            logger.warning("labels object %s unreadable, reading the hour's feedback: %s", key, data)
        return None
    try:
        doc = json.loads(gzip.decompress(data))
        if doc.get("format") != LABELS_FORMAT or doc.get("hour") != utc_iso(hour):
            raise ValueError("labels object is of another format or hour")
        return [FeedbackRecord.from_dict(r) for r in doc["records"]]
    except (ValueError, KeyError, TypeError, OSError, EOFError, zlib.error) as exc:
        logger.warning("labels object %s corrupt, reading the hour's feedback: %s", key, exc)
        return None


def _put_labels_object(s3: Any, where: CaptureLocation, hour: datetime, records: list[FeedbackRecord]) -> None:
    doc = {"format": LABELS_FORMAT, "hour": utc_iso(hour), "records": [json.loads(r.to_json()) for r in records]}
    body = gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), compresslevel=5, mtime=0)
    try:
        s3.put_object(Bucket=where.bucket, Key=hour_labels_key(where.model_name, hour), Body=body, ContentType="application/json")
    except Exception as exc:  # noqa: BLE001 - only an optimisation: the next run reads the hour again
        logger.warning("labels of hour %s not stored: %s", utc_iso(hour), exc)
