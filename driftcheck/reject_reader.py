"""Counting a window's refused requests (``rejects/``, one object per request) for the drift check.

Bounded like the window reader: only the window's UTC hours are listed, and only keys whose filed
time (the request's event time, in the key) falls inside ``[start, end)`` count, so the cost does
not grow with other windows' rejects. Listing gives the number of rejected requests (1,000 keys
per LIST call); the reasons and fields are read from at most ``max_objects`` of them, a uniform
random sample when there are more, and the counts are then scaled to all of them (``estimated``).
Corrupt objects are skipped and counted.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelserve.records import RejectRecord, decode_jsonl, key_time, reject_hour_prefix, utc_iso, window_hours

from .store import CaptureLocation, fetch_parallel, list_keys, until

logger = logging.getLogger(__name__)

DEFAULT_MAX_REJECT_OBJECTS = 2_000  # objects read for reasons and fields; the count itself is from listing


@dataclass
class RejectWindow:
    """What the window's refused requests were; ``by_field``: field -> reason -> requests."""

    rejected_requests: int = 0
    rejected_rows: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    by_field: dict[str, dict[str, int]] = field(default_factory=dict)
    objects_read: int = 0
    corrupt_objects: int = 0
    estimated: bool = False  # the per-reason and per-field counts are scaled from a sample

    def to_dict(self) -> dict[str, Any]:
        return {
            "rejected_requests": self.rejected_requests,
            "rejected_rows": self.rejected_rows,
            "by_reason": self.by_reason,
            "by_field": self.by_field,
            "objects_read": self.objects_read,
            "corrupt_objects": self.corrupt_objects,
            "estimated": self.estimated,
        }


def list_reject_keys(s3: Any, where: CaptureLocation, start: datetime, end: datetime) -> list[str]:
    """Keys of the rejects filed inside ``[start, end)``: the window's hours listed, each key's time checked."""
    lo, hi = utc_iso(start), utc_iso(end)  # key times compare as these strings (records.key_time)
    keys = []
    for hour in window_hours(start, end):
        for key in list_keys(s3, where.bucket, reject_hour_prefix(where.model_name, where.model_version, hour)):
            t = key_time(key)
            if t is not None and lo <= t < hi:
                keys.append(key)
    return keys


def read_rejects(
    s3: Any,
    where: CaptureLocation,
    start: datetime,
    end: datetime,
    max_objects: int = DEFAULT_MAX_REJECT_OBJECTS,
    seed: int = 0,
    workers: int = 16,
    deadline: float | None = None,
) -> RejectWindow:
    """The window's refused requests, counted (see the module docstring for the bounds)."""
    keys = list_reject_keys(s3, where, start, end)
    out = RejectWindow(rejected_requests=len(keys))
    if not keys:
        return out
    chosen = keys if len(keys) <= max_objects else random.Random(seed).sample(keys, max_objects)
    reasons: Counter[str] = Counter()
    fields: defaultdict[str, Counter[str]] = defaultdict(Counter)
    rows = 0
    for key, data in fetch_parallel(s3, where.bucket, until(chosen, deadline), workers):
        out.objects_read += 1
        try:
            if isinstance(data, Exception):
                raise ValueError(f"unreadable: {data}")
            records = [RejectRecord.from_dict(d) for d in decode_jsonl(data)]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("reject object %s skipped: %s", key, exc)
            out.corrupt_objects += 1
            continue
        for r in records:
            reasons[r.reason] += 1
            rows += r.rows or 0
            for f, reason in {(e.field, e.reason) for e in r.errors if e.field is not None}:
                fields[f][reason] += 1
    read = sum(reasons.values())
    if not read:
        return out
    # the counts of the objects read, scaled to every rejected request of the window
    scale = out.rejected_requests / read
    out.estimated = read != out.rejected_requests
    out.by_reason = {r: round(n * scale) for r, n in reasons.items()}
    out.by_field = {f: {r: round(n * scale) for r, n in c.items()} for f, c in fields.items()}
    out.rejected_rows = round(rows * scale)
    return out
