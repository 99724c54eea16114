"""Reading a target window of captures (and feedback labels) from S3, in flat memory.

The window is every capture record with ``start <= event_time < end``. Objects are listed per
UTC hour under both layouts (ours and Firehose's), fetched with parallel GETs, and the records
are reservoir-sampled to at most ``sample_cap`` rows, so memory does not grow with traffic.
Corrupt or truncated objects are skipped whole and counted.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import time
import zlib
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator

from .records import FEEDBACK_ROOT, decode_jsonl, hour_prefixes, utc_iso, window_hours

logger = logging.getLogger(__name__)


class Reservoir:
    """Uniform sample of at most ``capacity`` items from a stream of unknown length (Algorithm R)."""

    def __init__(self, capacity: int, seed: int = 0) -> None:
        self.capacity = capacity
        self.items: list[Any] = []
        self.seen = 0
        self._rng = random.Random(seed)

    def add(self, item: Any) -> None:
        self.seen += 1
        if len(self.items) < self.capacity:
            self.items.append(item)
            return
        j = self._rng.randrange(self.seen)
        if j < self.capacity:
            self.items[j] = item


@dataclass
class WindowRead:
    start: datetime
    end: datetime
    rows: list[dict[str, Any]]  # sampled capture records (dicts in the CaptureRecord shape)
    rows_seen: int  # all rows of the window, before sampling
    objects_read: int
    corrupt_objects: int
    corrupt_keys: list[str] = field(default_factory=list)
    labels: dict[tuple[str, int], Any] = field(default_factory=dict)  # (request_id, row) -> label
    objects_listed: int = 0
    partial: bool = False  # the time budget ran out before every object was read


def list_keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"]


def window_keys(s3: Any, bucket: str, model_name: str, model_version: str, start: datetime, end: datetime) -> list[str]:
    hours = window_hours(start, end)
    prefixes: list[str] = []
    for hour in hours:
        prefixes.extend(hour_prefixes(model_name, model_version, hour))
    if hours:
        # Firehose files records by arrival hour, after buffering (up to 15 min): a record of the
        # window's last hour can sit under the next hour's prefix. Records are filtered by event_time.
        prefixes.append(hour_prefixes(model_name, model_version, hours[-1] + timedelta(hours=1))[1])
    keys: list[str] = []
    for prefix in dict.fromkeys(prefixes):
        keys.extend(list_keys(s3, bucket, prefix))
    return keys


def _fetch(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _parallel_fetch(s3: Any, bucket: str, keys: Iterable[str], workers: int) -> Iterator[tuple[str, bytes | Exception]]:
    """GETs with at most ``2 * workers`` objects in flight (bounded memory), results as they land."""
    keys = iter(keys)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: dict[Future, str] = {}

        def top_up() -> None:
            while len(pending) < 2 * workers:
                key = next(keys, None)
                if key is None:
                    return
                pending[pool.submit(_fetch, s3, bucket, key)] = key

        top_up()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                key = pending.pop(fut)
                try:
                    yield key, fut.result()
                except Exception as exc:  # noqa: BLE001 - reported per object by the caller
                    yield key, exc
            top_up()


def read_window(
    s3: Any,
    bucket: str,
    model_name: str,
    model_version: str,
    start: datetime,
    end: datetime,
    sample_cap: int,
    seed: int = 0,
    workers: int = 16,
    with_labels: bool = True,
    deadline: float | None = None,
) -> WindowRead:
    """``deadline``: a ``time.monotonic()`` value after which no new object is fetched; the check
    then runs on what was sampled so far and the report says the window was partial."""
    reservoir = Reservoir(sample_cap, seed)
    corrupt: list[str] = []
    objects = 0
    keys = window_keys(s3, bucket, model_name, model_version, start, end)
    # shuffled so a partial read is still a uniform sample of the window, not its first hours
    random.Random(seed).shuffle(keys)
    lo, hi = utc_iso(start), utc_iso(end)
    partial = False
    for key, data in _parallel_fetch(s3, bucket, _until(keys, deadline), workers):
        objects += 1
        if isinstance(data, Exception):
            logger.warning("capture object %s unreadable: %s", key, data)
            corrupt.append(key)
            continue
        try:
            records = _decode_rows(data)
            # fixed-width ISO UTC strings order like the times they name: no per-row parsing
            in_window = [r for r in records if lo <= r["event_time"] < hi]
            for r in in_window:
                _ = r["inputs"], r["prediction"]  # the fields the check needs must be there
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("capture object %s skipped: %s", key, exc)
            corrupt.append(key)
            continue
        for r in in_window:
            reservoir.add(r)
    partial = objects < len(keys)
    if partial:
        logger.warning("time budget reached: read %d of %d capture objects", objects, len(keys))
    read = WindowRead(start, end, reservoir.items, reservoir.seen, objects, len(corrupt), corrupt[:100], objects_listed=len(keys), partial=partial)
    if with_labels and read.rows:
        read.labels = read_labels(s3, bucket, model_name, start, end, {(r["request_id"], int(r["row"])) for r in read.rows}, workers)
    return read


def _decode_rows(data: bytes) -> list[Any]:
    """The rows ``decode_jsonl`` gives, parsed in ONE ``json.loads`` of the object's lines as an
    array: about half the CPU of a ``json.loads`` per line, which dominates reading a large
    window (see benchmarks/bench_drift.py). Anything unusual (bad gzip, bad JSON, not one value
    per non-blank line) falls back to ``decode_jsonl``, which raises naming the bad line."""
    if data[:2] == b"\x1f\x8b":
        try:
            text = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return list(decode_jsonl(data))  # raises ValueError("corrupt gzip object: ...")
    else:
        text = data
    lines = [line for line in text.split(b"\n") if line.strip()]
    try:
        rows = json.loads(b"[" + b",".join(lines) + b"]")
    except (ValueError, RecursionError):
        rows = None
    if not isinstance(rows, list) or len(rows) != len(lines):
        return list(decode_jsonl(data))
    return rows


def _until(keys: list[str], deadline: float | None) -> Iterator[str]:
    for key in keys:
        if deadline is not None and time.monotonic() > deadline:
            return
        yield key


def read_labels(
    s3: Any,
    bucket: str,
    model_name: str,
    start: datetime,
    end: datetime,
    wanted: set[tuple[str, int]],
    workers: int = 16,
    grace: timedelta = timedelta(days=1),
) -> dict[tuple[str, int], Any]:
    """Feedback labels for the sampled rows. Labels may arrive after the window: look a day past it."""
    labels: dict[tuple[str, int], Any] = {}
    day = start.astimezone(timezone.utc).date()
    last = (end + grace).astimezone(timezone.utc).date()
    keys: list[str] = []
    while day <= last:
        keys.extend(list_keys(s3, bucket, f"{FEEDBACK_ROOT}/model={model_name}/dt={day:%Y-%m-%d}/"))
        day += timedelta(days=1)
    for key, data in _parallel_fetch(s3, bucket, keys, workers):
        if isinstance(data, Exception):
            continue
        try:
            for r in decode_jsonl(data):
                k = (str(r["request_id"]), int(r["row"]))
                if k in wanted:
                    labels[k] = r["label"]
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("feedback object %s skipped: %s", key, exc)
    return labels
