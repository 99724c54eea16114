"""Reading the feedback labels (ground truth sent after the prediction) of a window's sampled rows.

Labels whose request id the API read back (serving/request_ids.py) are filed by the UTC hour their
prediction was made: a check reads its window's hours only, so its cost follows the window's own
labels, whatever else was labelled meanwhile. A label counts when received within ``LABEL_GRACE``
of its prediction hour's end; once that has passed the hour is final and kept as one labels object
(``prediction_hour_labels_key``), so a later check of that hour reads one object.

Labels filed by receipt (written before that layout, or unverified: the migration path) are read as
before. Labels for a window's rows arrive from the window's start to ``LABEL_GRACE`` past its end. They
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
from collections.abc import Callable, Iterable, Sequence, Set
from datetime import UTC, datetime, timedelta
from typing import Any

from modelserve.records import (
    FeedbackRecord,
    RowKey,
    decode_jsonl,
    feedback_day_prefix,
    feedback_prediction_hour_prefix,
    hour_labels_key,
    key_time,
    prediction_hour_labels_key,
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
    """The feedback record of each wanted (request id, row) that has one (a correction replaces the label it
    names; a different label without one is counted as conflicting and not used; a corrupt object is skipped
    from its bad row on). Labels filed by prediction hour: those of the window's hours, received within
    ``LABEL_GRACE`` of their hour's end; labels filed by receipt (written before that layout, or unverified):
    those received from the window's start to ``LABEL_GRACE`` past its end. ``now``: the wall clock (hours
    after it hold no feedback yet; settled hours are kept)."""
    now = now or datetime.now(UTC)
    by_prediction = prediction_hour_feedback(s3, where, window_hours(start, end), now, workers)
    # no feedback is received after now: hours past it are not listed
    by_receipt = hour_feedback(s3, where, window_hours(start, min(end + LABEL_GRACE, now + HOUR)), now, workers)
    labels = Labels()
    span = utc_iso(start), utc_iso(end)
    every = [r for records in (*by_prediction, *by_receipt) for r in records]
    for record in sorted(every, key=lambda r: r.received_time):  # stable: the last label received wins
        if record.key in wanted:
            labels.add(record)
        elif span[0] <= (record.predicted_at or record.received_time) < span[1]:
            labels.unmatched += 1
    return labels


def prediction_hour_feedback(
    s3: Any, where: CaptureLocation, hours: Sequence[datetime], now: datetime, workers: int = 16
) -> list[list[FeedbackRecord]]:
    """The labels of the requests predicted in each UTC hour, received within ``LABEL_GRACE`` of the hour's
    end, in receipt order: read from the hour's own feedback objects, so the cost follows the window's labels,
    not all feedback. An hour whose grace has passed is final: read once, then kept as one labels object."""
    return _kept_hours(
        s3,
        where,
        hours,
        workers,
        keep_key=lambda h: prediction_hour_labels_key(where.model_name, h),
        final=lambda h: settled(h + LABEL_GRACE, now),
        read=lambda missing: _read_prediction_hours(s3, where, missing, workers),
    )


def hour_feedback(
    s3: Any, where: CaptureLocation, hours: Sequence[datetime], now: datetime, workers: int = 16
) -> list[list[FeedbackRecord]]:
    """Every feedback record received in each UTC hour under the receipt layout, in receipt order (settled
    hours from their labels object when stored, and stored when not)."""
    return _kept_hours(
        s3,
        where,
        hours,
        workers,
        keep_key=lambda h: hour_labels_key(where.model_name, h),
        final=lambda h: settled(h, now),
        read=lambda missing: _read_hours(s3, where, missing, workers),
    )


def _kept_hours(
    s3: Any,
    where: CaptureLocation,
    hours: Sequence[datetime],
    workers: int,
    keep_key: Callable[[datetime], str],
    final: Callable[[datetime], bool],
    read: Callable[[list[datetime]], dict[datetime, list[FeedbackRecord]]],
) -> list[list[FeedbackRecord]]:
    """Each hour's records: a final hour from its kept labels object when there is one, else ``read`` (and
    kept when final)."""
    stored: dict[datetime, list[FeedbackRecord]] = {}
    kept = {keep_key(h): h for h in hours if final(h)}
    for key, data in fetch_parallel(s3, where.bucket, kept, workers):
        records = _from_labels_object(key, data, kept[key])
        if records is not None:
            stored[kept[key]] = records
    missing = [h for h in hours if h not in stored]
    fresh = read(missing) if missing else {}
    for hour in missing:
        if final(hour):
            _put_labels_object(s3, where, keep_key(hour), hour, fresh[hour])
    return [stored[h] if h in stored else fresh[h] for h in hours]


def _read_hours(s3: Any, where: CaptureLocation, hours: Sequence[datetime], workers: int) -> dict[datetime, list[FeedbackRecord]]:
    """The records of each hour from the feedback objects whose key names a receipt time in it."""
    by_key = {key: hour for hour in hours for key in _hour_keys(s3, where, hour)}
    return _read_objects(s3, where, by_key, hours, workers)


def _read_prediction_hours(
    s3: Any, where: CaptureLocation, hours: Sequence[datetime], workers: int
) -> dict[datetime, list[FeedbackRecord]]:
    """The labels of each prediction hour received within ``LABEL_GRACE`` of its end."""
    by_key = {key: hour for hour in hours for key in list_keys(s3, where.bucket, feedback_prediction_hour_prefix(where.model_name, hour))}
    records = _read_objects(s3, where, by_key, hours, workers)
    return {h: [r for r in rs if r.received_time < utc_iso(h + HOUR + LABEL_GRACE)] for h, rs in records.items()}


def _read_objects(
    s3: Any, where: CaptureLocation, by_key: dict[str, datetime], hours: Sequence[datetime], workers: int
) -> dict[datetime, list[FeedbackRecord]]:
    """The records of the feedback objects ``by_key`` (key -> its hour), by hour in key order."""
    out: dict[datetime, list[tuple[str, list[FeedbackRecord]]]] = {h: [] for h in hours}
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


def _put_labels_object(s3: Any, where: CaptureLocation, key: str, hour: datetime, records: list[FeedbackRecord]) -> None:
    doc = {"format": LABELS_FORMAT, "hour": utc_iso(hour), "records": [json.loads(r.to_json()) for r in records]}
    body = gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), compresslevel=5, mtime=0)
    try:
        s3.put_object(Bucket=where.bucket, Key=key, Body=body, ContentType="application/json")
    except Exception as exc:  # noqa: BLE001 - only an optimisation: the next run reads the hour again
        logger.warning("labels of hour %s not stored: %s", utc_iso(hour), exc)
