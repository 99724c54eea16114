"""Reading a target window of captures (and feedback labels) from S3, in flat memory.

The window is every capture record with ``start <= event_time < end``. Objects are listed per
UTC hour under both layouts (ours and Firehose's), fetched with parallel GETs, and the records
are reservoir-sampled to at most ``sample_cap`` rows, so memory does not grow with traffic.
Corrupt or truncated objects are skipped whole and counted.

Hour samples: a scheduled check every hour over a 24 h window would read every capture 24
times. Instead, each whole UTC hour of the window that ended more than ``HOUR_SETTLE`` ago (so
late Firehose deliveries are in) is read once, and its reservoir sample and row count are kept
under ``samples/``; later checks read that one object. The window's sample is then drawn from
the hour samples in proportion to each hour's row count (multivariate hypergeometric), which is
exactly a uniform sample of the window's rows. Only the window's edge hours and the last
``HOUR_SETTLE`` are read from captures each time.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from modelserve.records import FEEDBACK_ROOT, SAMPLES_ROOT, decode_jsonl, hour_prefixes, utc_iso, window_hours

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)


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
    cached_hours: int = 0  # hours taken from their stored sample instead of their captures


def list_keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"]


def hour_keys(s3: Any, bucket: str, model_name: str, model_version: str, hours: list[datetime], neighbours: bool = False) -> list[str]:
    """Keys under the prefixes (both layouts) of the given UTC hours.

    ``neighbours``: also each hour's neighbours. Firehose names a file by the arrival hour of its
    oldest record and buffers up to 15 minutes, so with the Firehose sink an hour's rows can sit
    in files of the hours around it. The direct S3 sink files each request by its own event time.
    """
    if neighbours:
        hours = [h + d for h in hours for d in (-HOUR, timedelta(0), HOUR)]
    keys: list[str] = []
    for prefix in dict.fromkeys(p for hour in hours for p in hour_prefixes(model_name, model_version, hour)):
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


# an hour's sample is stored once it ended this long ago: Firehose buffers for at most 15 minutes
HOUR_SETTLE = timedelta(minutes=20)
SAMPLE_FORMAT = 1


def hour_sample_key(model_name: str, model_version: str, hour: datetime, sample_cap: int) -> str:
    t = hour.astimezone(UTC)
    return f"{SAMPLES_ROOT}/model={model_name}/version={model_version}/cap={sample_cap}/dt={t:%Y-%m-%d}/hour={t:%H}.json.gz"


@dataclass
class Segment:
    """The uniform sample of one slice of the window, with what reading it cost and found."""

    start: datetime
    end: datetime
    rows: list[dict[str, Any]]
    rows_seen: int
    objects_read: int = 0
    objects_listed: int = 0
    corrupt_keys: list[str] = field(default_factory=list)
    corrupt_objects: int = 0
    partial: bool = False
    cached: bool = False  # taken from its stored hour sample, not read from captures in this run
    sample_key: str | None = None  # where its rows are when they are not held in memory

    def to_bytes(self) -> bytes:
        doc = {
            "format": SAMPLE_FORMAT,
            "start": utc_iso(self.start),
            "end": utc_iso(self.end),
            "rows_seen": self.rows_seen,
            "objects": self.objects_read,
            "corrupt_objects": self.corrupt_objects,
            "corrupt_keys": self.corrupt_keys[:100],
            "rows": self.rows,
        }
        return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), compresslevel=5, mtime=0)

    @classmethod
    def from_bytes(cls, data: bytes, start: datetime, end: datetime) -> Segment:
        doc = json.loads(gzip.decompress(data))
        if doc.get("format") != SAMPLE_FORMAT or doc["start"] != utc_iso(start) or doc["end"] != utc_iso(end):
            raise ValueError("hour sample is of another format or hour")
        rows = doc["rows"]
        if not isinstance(rows, list) or int(doc["rows_seen"]) < len(rows):
            raise ValueError("hour sample is inconsistent")
        return cls(start, end, rows, int(doc["rows_seen"]), objects_read=int(doc["objects"]),
                   corrupt_keys=list(doc.get("corrupt_keys", [])), corrupt_objects=int(doc["corrupt_objects"]), cached=True)


MAX_HOURS_PER_PASS = 4  # hours whose reservoirs are held at once while reading: bounds memory


def read_hours(
    s3: Any,
    bucket: str,
    model_name: str,
    model_version: str,
    slices: list[tuple[datetime, datetime]],
    sample_cap: int,
    seed: int = 0,
    workers: int = 16,
    deadline: float | None = None,
    neighbours: bool = False,
) -> list[Segment]:
    """One reservoir per slice (each within one UTC hour), filled in one pass over the objects of
    those hours: every object is fetched once and each row goes to the slice of its event time."""
    segments = [Segment(lo, hi, [], 0) for lo, hi in slices]
    if not slices:
        return segments
    reservoirs = [Reservoir(sample_cap, seed + i) for i in range(len(slices))]
    bounds = [(utc_iso(lo), utc_iso(hi)) for lo, hi in slices]
    by_hour = {utc_iso(lo)[:13]: i for i, (lo, _) in enumerate(slices)}  # "YYYY-MM-DDTHH" -> slice
    hours = [lo.replace(minute=0, second=0, microsecond=0) for lo, _ in slices]
    keys = hour_keys(s3, bucket, model_name, model_version, hours, neighbours)
    wanted = {hour_prefix for lo, _ in slices for hour_prefix in hour_prefixes(model_name, model_version, lo)}
    # shuffled so a partial read is still a uniform sample of each slice, not its first minutes
    random.Random(seed).shuffle(keys)
    objects = 0
    corrupt: list[str] = []
    for key, data in _parallel_fetch(s3, bucket, _until(keys, deadline), workers):
        objects += 1
        try:
            if isinstance(data, Exception):
                raise ValueError(f"unreadable: {data}")
            routed = []
            for r in _decode_rows(data):
                t = r["event_time"]  # fixed-width ISO UTC strings: compare and slice, no parsing
                i = by_hour.get(t[:13])
                if i is not None and bounds[i][0] <= t < bounds[i][1]:
                    _ = r["inputs"], r["prediction"]  # the fields the check needs must be there
                    routed.append((i, r))
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("capture object %s skipped: %s", key, exc)
            if any(key.startswith(p) for p in wanted):  # counted by the hour it is filed under
                corrupt.append(key)
            continue
        for i, r in routed:
            reservoirs[i].add(r)
    partial = objects < len(keys)
    if partial:
        logger.warning("time budget reached: read %d of %d capture objects", objects, len(keys))
    for seg, res in zip(segments, reservoirs):
        seg.rows, seg.rows_seen, seg.partial = res.items, res.seen, partial
    # what the pass cost and found, told once (on its first slice)
    segments[0].objects_read, segments[0].objects_listed = objects, len(keys)
    segments[0].corrupt_keys, segments[0].corrupt_objects = corrupt[:100], len(corrupt)
    return segments


def merge_segments(
    segments: list[Segment],
    sample_cap: int,
    seed: int = 0,
    load: Callable[[Segment], list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """A uniform sample of the union of the segments' rows, from their own uniform samples.

    Hour h gets k_h rows, (k_h) drawn from the multivariate hypergeometric over the hours' row
    counts — what a uniform sample of the whole window would take from each hour — then k_h of
    its sampled rows at random. k_h never exceeds the hour's sample: both are at most
    min(sample_cap, rows_seen_h). ``load`` fetches the rows of a segment held in S3, one at a time,
    so memory holds one hour's sample plus the result.
    """
    import numpy as np

    counts = [s.rows_seen for s in segments]
    total = sum(counts)
    if total == 0:
        return []
    n = min(sample_cap, total)
    rng = np.random.default_rng(seed)
    take = rng.multivariate_hypergeometric(np.array(counts, dtype=np.int64), n) if len(segments) > 1 else [n]
    out: list[dict[str, Any]] = []
    for seg, k in zip(segments, take):
        if not k:
            continue
        rows = seg.rows if seg.rows or load is None or seg.sample_key is None else load(seg)
        k = min(int(k), len(rows))  # equal unless a partial read kept fewer rows than it counted
        if k:
            idx = rng.choice(len(rows), size=k, replace=False)
            out.extend(rows[i] for i in sorted(idx))
    return out


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
    now: datetime | None = None,
    hour_samples: bool = True,
    neighbours: bool = False,
) -> WindowRead:
    """The window's uniform sample. ``deadline``: a ``time.monotonic()`` value after which no new
    object is fetched; the check then runs on what was read and the report says the window was
    partial. ``hour_samples``: read and keep per-hour samples (see the module docstring).
    ``neighbours``: captures may sit under the prefixes of neighbouring hours (Firehose sink)."""
    now = now or datetime.now(UTC)
    segments: list[Segment] = []
    live: list[tuple[datetime, datetime, str | None]] = []  # slices to read; key when storable
    for hour in reversed(window_hours(start, end)):  # newest first: a time-out loses the oldest
        lo, hi = max(start, hour), min(end, hour + HOUR)
        storable = hour_samples and lo == hour and hi == hour + HOUR and now - hi >= HOUR_SETTLE
        key = hour_sample_key(model_name, model_version, hour, sample_cap) if storable else None
        cached = _head_sample(s3, bucket, key, lo, hi) if key else None
        if cached is not None:
            segments.append(cached)
        else:
            live.append((lo, hi, key))
    for n in range(0, len(live), MAX_HOURS_PER_PASS):
        batch = live[n : n + MAX_HOURS_PER_PASS]
        read = read_hours(
            s3, bucket, model_name, model_version, [(lo, hi) for lo, hi, _ in batch], sample_cap,
            seed + n, workers, deadline, neighbours,
        )
        for seg, (_, _, key) in zip(read, batch):
            if key and not seg.partial and _put_sample(s3, bucket, key, seg):
                seg.rows, seg.sample_key = [], key  # held in S3 until the merge: memory stays flat
        segments.extend(read)
    def load(seg: Segment) -> list[dict[str, Any]]:
        data = _get_sample(s3, bucket, seg.sample_key, seg.start, seg.end) if seg.sample_key else None
        if data is not None:
            return data.rows
        # the stored sample went missing or bad between planning and merging: read the hour again
        (again,) = read_hours(s3, bucket, model_name, model_version, [(seg.start, seg.end)], sample_cap, seed, workers, deadline, neighbours)
        return again.rows

    rows = merge_segments(segments, sample_cap, seed, load)
    corrupt_keys = [k for s in segments for k in s.corrupt_keys][:100]
    read = WindowRead(
        start,
        end,
        rows,
        rows_seen=sum(s.rows_seen for s in segments),
        objects_read=sum(s.objects_read for s in segments if not s.cached),
        corrupt_objects=sum(s.corrupt_objects for s in segments),
        corrupt_keys=corrupt_keys,
        objects_listed=sum(s.objects_listed for s in segments if not s.cached),
        partial=any(s.partial for s in segments),
        cached_hours=sum(1 for s in segments if s.cached),
    )
    if with_labels and read.rows:
        read.labels = read_labels(s3, bucket, model_name, start, end, {(r["request_id"], int(r["row"])) for r in read.rows}, workers)
    return read


def _put_sample(s3: Any, bucket: str, key: str, seg: Segment) -> bool:
    try:
        s3.put_object(
            Bucket=bucket, Key=key, Body=seg.to_bytes(), ContentType="application/json",
            Metadata={"rows-seen": str(seg.rows_seen), "corrupt-objects": str(seg.corrupt_objects), "format": str(SAMPLE_FORMAT)},
        )
        return True
    except Exception as exc:  # noqa: BLE001 - only an optimisation: the next run reads the hour again
        logger.warning("hour sample %s not stored: %s", key, exc)
        return False


def _head_sample(s3: Any, bucket: str, key: str, start: datetime, end: datetime) -> Segment | None:
    """A stored hour sample's counts, from its metadata (its rows are fetched only if the merge needs them)."""
    try:
        meta = s3.head_object(Bucket=bucket, Key=key).get("Metadata") or {}
        if meta.get("format") != str(SAMPLE_FORMAT):
            return None
        return Segment(start, end, [], int(meta["rows-seen"]), corrupt_objects=int(meta.get("corrupt-objects", 0)), cached=True, sample_key=key)
    except Exception as exc:  # noqa: BLE001 - absent (the usual first time) or unreadable: read the hour
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        # an absent key answers 404, or 403 where ListBucket is granted for prefixes only (as the stack does)
        if code not in ("404", "NoSuchKey", "NotFound", "403", "AccessDenied", "Forbidden"):
            logger.warning("hour sample %s unreadable, reading the hour's captures: %s", key, exc)
        return None


def _get_sample(s3: Any, bucket: str, key: str, start: datetime, end: datetime) -> Segment | None:
    try:
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:  # noqa: BLE001 - absent (the usual first time) or unreadable: read the hour
        if "NoSuchKey" not in str(exc) and "404" not in str(exc):
            logger.warning("hour sample %s unreadable, reading the hour's captures: %s", key, exc)
        return None
    try:
        return Segment.from_bytes(data, start, end)
    except (ValueError, KeyError, TypeError, OSError, EOFError, zlib.error) as exc:
        logger.warning("hour sample %s corrupt, reading the hour's captures: %s", key, exc)
        return None


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
    day = start.astimezone(UTC).date()
    last = (end + grace).astimezone(UTC).date()
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
