"""Reading the feedback labels (ground truth sent after the prediction) of a window's sampled rows."""

from __future__ import annotations

import logging
from collections.abc import Set
from datetime import UTC, datetime, timedelta
from typing import Any

from modelserve.records import FeedbackRecord, RowKey, decode_jsonl, feedback_day_prefix

from .store import CaptureLocation, fetch_parallel, list_keys

logger = logging.getLogger(__name__)

LABEL_GRACE = timedelta(days=1)  # labels may arrive after the window: look this far past it


def read_labels(
    s3: Any,
    where: CaptureLocation,
    start: datetime,
    end: datetime,
    wanted: Set[RowKey],
    workers: int = 16,
) -> dict[RowKey, Any]:
    """The label of each wanted (request id, row) that has one, from the feedback received from
    the window's start to ``LABEL_GRACE`` past its end. A corrupt object is skipped from its bad row on."""
    return {key: record.label for key, record in read_feedback(s3, where, start, end, wanted, workers).items()}


def read_feedback(
    s3: Any,
    where: CaptureLocation,
    start: datetime,
    end: datetime,
    wanted: Set[RowKey],
    workers: int = 16,
) -> dict[RowKey, FeedbackRecord]:
    """The feedback record of each wanted row (the last one read wins), as :func:`read_labels` reads them."""
    labels: dict[RowKey, FeedbackRecord] = {}
    day = start.astimezone(UTC).date()
    last = (end + LABEL_GRACE).astimezone(UTC).date()
    keys: list[str] = []
    while day <= last:
        keys.extend(list_keys(s3, where.bucket, feedback_day_prefix(where.model_name, day)))
        day += timedelta(days=1)
    for key, data in fetch_parallel(s3, where.bucket, keys, workers):
        if isinstance(data, Exception):
            continue
        try:
            for record in map(FeedbackRecord.from_dict, decode_jsonl(data)):
                if record.key in wanted:
                    labels[record.key] = record
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("feedback object %s skipped: %s", key, exc)
    return labels
