"""Reading a target window of captures from S3 into a uniform sample of capture records, in flat memory.

The window is every capture record with ``start <= event_time < end``. Objects are listed per
UTC hour under both layouts (ours and Firehose's), fetched with parallel GETs, and the records
are reservoir-sampled to at most ``sample_cap`` rows, so memory does not grow with traffic.
Corrupt or truncated objects are skipped whole and counted. An object whose GET failed (AccessDenied
after a bucket or key policy change, a KMS error, throttling) is not corrupt data but a fault of the
read: counted by error code (``read_errors``), logged as an error, and the hour it belongs to is not
stored as settled, so the next run reads it again.

Each whole, settled hour of the window is read from its captures once and then kept as an hour
sample (``hour_samples``); the window's sample is drawn from the hours' samples in proportion to
each hour's row count (``sampling.merge_samples``), which is exactly a uniform sample of the
window's rows. A window's edge hour that has settled is cut from its hour's stored sample by
event time (``hour_samples.part_of_sample``); only the last ``HOUR_SETTLE`` (and hours whose
sample is not stored yet) are read from captures each time.

Read cost is bounded by the window: our capture keys name their event time
(``modelserve.records.key_time``), so only objects whose key time falls inside a slice are fetched,
and with the direct S3 sink the listing itself starts at the slice's first key (``StartAfter``) and
stops past its last. Firehose's files are named by arrival, not event time: they are read whole.
Every object is decoded by ``capture_formats.decode_capture_object`` (JSON Lines, the logs sink's
CloudWatch Logs envelopes, Parquet), and each row goes to the hour of its event time, so the hours
of a window are read, not the arrivals.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from modelserve.records import CaptureRecord, key_time, key_time_name, utc_iso, window_hours

from .capture_formats import decode_capture_object
from .hour_samples import (
    MAX_CORRUPT_KEYS,
    CaptureRow,
    HourSample,
    get_sample,
    head_sample,
    part_of_sample,
    put_sample,
    settled,
    storable,
)
from .sampling import Reservoir, merge_samples
from .store import HOUR, CaptureLocation, error_code, fetch_parallel, list_keys, list_objects, until

logger = logging.getLogger(__name__)

MAX_HOURS_PER_PASS = 4  # hours whose reservoirs are held at once while reading: bounds memory
# checked on every row of the window (so an object missing one is skipped whole); the typed
# CaptureRecord is built only for the rows the window's sample keeps: building it for every row
# would double the parse time that dominates reading a large window
_required_fields = itemgetter("request_id", "row", "model_name", "model_version", "inputs", "prediction")


@dataclass(frozen=True)
class ReadOptions:
    """How much of the window to keep, and how to read it."""

    sample_cap: int  # rows kept at most
    seed: int = 0
    workers: int = 16  # parallel GETs
    deadline: float | None = None  # a time.monotonic() value after which no new object is fetched
    hour_samples: bool = True  # read and keep per-hour samples (see hour_samples)


@dataclass
class WindowRead:
    start: datetime
    end: datetime
    rows: list[CaptureRecord]  # the window's uniform sample
    rows_seen: int  # all rows of the window, before sampling
    objects_read: int
    corrupt_objects: int
    corrupt_keys: list[str] = field(default_factory=list)
    objects_listed: int = 0
    partial: bool = False  # the time budget ran out before every object was read
    cached_hours: int = 0  # hours taken from their stored sample instead of their captures
    cached_rows: int = 0  # rows of those hours (their counts are exact)
    read_errors: dict[str, int] = field(default_factory=dict)  # failed GETs by error code (store.error_code)
    athena_error: str | None = None  # drift_athena=auto|on: why an Athena read of this window failed (then read from S3)
    read_reason: str | None = None  # which path read the window and why (driftcheck/read_path.py)
    requests: int | None = None  # scored requests, counted exactly (Athena); None: estimated from the sample

    @property
    def rows_estimated(self) -> float:
        """All rows of the window: ``rows_seen`` when every object was read. Past the budget, the rows read
        from captures scaled by objects listed / objects read (each pass reads its objects in random
        order), plus the stored hours' exact counts; ``rows_seen`` (a lower bound) when nothing was read."""
        if not self.partial or self.objects_read == 0:
            return float(self.rows_seen)
        live = self.rows_seen - self.cached_rows
        return self.cached_rows + live * self.objects_listed / self.objects_read

    @property
    def failed_reads(self) -> int:
        return sum(self.read_errors.values())


def read_window(
    s3: Any,
    where: CaptureLocation,
    start: datetime,
    end: datetime,
    options: ReadOptions,
    now: datetime | None = None,
    shared: dict[tuple[datetime, datetime], HourSample] | None = None,
) -> WindowRead:
    """The window's uniform sample. Past ``options.deadline`` the check runs on what was read and
    the read says the window was partial. ``shared``: slices read from captures by another window of
    the same run (the short and the main window end together: their newest slice is the same), taken
    from it instead of read again, and this read's slices added to it."""
    samples, live = _plan_slices(s3, where, start, end, options, now or datetime.now(UTC), shared)
    for n in range(0, len(live), MAX_HOURS_PER_PASS):
        batch = live[n : n + MAX_HOURS_PER_PASS]
        read = read_hours(s3, where, [(lo, hi) for lo, hi, _ in batch], replace(options, seed=options.seed + n))
        for sample, (_, _, key) in zip(read, batch):
            if key and not sample.partial and not sample.read_errors and put_sample(s3, where.bucket, key, sample):
                sample.rows, sample.sample_key = [], key  # held in S3 until the merge: memory stays flat
        samples.extend(read)
        if shared is not None:
            shared.update(((sample.start, sample.end), sample) for sample in read if not sample.partial and not sample.read_errors)

    def sample_of(i: int) -> list[CaptureRow]:
        sample = samples[i]
        if sample.rows or sample.sample_key is None:
            return sample.rows
        stored = get_sample(s3, where.bucket, sample.sample_key, sample.start, sample.end)
        if stored is not None:
            return stored.rows
        # the stored sample went missing or bad between planning and merging: read the hour again
        (again,) = read_hours(s3, where, [(sample.start, sample.end)], options)
        return again.rows

    rows = merge_samples([s.rows_seen for s in samples], sample_of, options.sample_cap, options.seed)
    return WindowRead(
        start,
        end,
        capture_records(rows),
        rows_seen=sum(s.rows_seen for s in samples),
        objects_read=sum(s.objects_read for s in samples if not s.cached),
        corrupt_objects=sum(s.corrupt_objects for s in samples),
        corrupt_keys=[k for s in samples for k in s.corrupt_keys][:MAX_CORRUPT_KEYS],
        objects_listed=sum(s.objects_listed for s in samples if not s.cached),
        partial=any(s.partial for s in samples),
        cached_hours=sum(1 for s in samples if s.cached),
        cached_rows=sum(s.rows_seen for s in samples if s.cached),
        read_errors=_total_errors(samples),
    )


def _plan_slices(
    s3: Any,
    where: CaptureLocation,
    start: datetime,
    end: datetime,
    options: ReadOptions,
    now: datetime,
    shared: dict[tuple[datetime, datetime], HourSample] | None,
) -> tuple[list[HourSample], list[tuple[datetime, datetime, str | None]]]:
    """The window's slices (one per UTC hour, newest first: a time-out loses the oldest): the samples taken
    from storage or from another window of the run, and the slices to read from captures (their hour
    sample's key when storable)."""
    samples: list[HourSample] = []
    live: list[tuple[datetime, datetime, str | None]] = []
    for hour in reversed(window_hours(start, end)):
        lo, hi = max(start, hour), min(end, hour + HOUR)
        key = where.hour_sample_key(hour, options.sample_cap) if options.hour_samples and storable(lo, hi, hour, now) else None
        cached = head_sample(s3, where.bucket, key, lo, hi) if key else None
        if cached is None and key is None and options.hour_samples and settled(hour, now):
            # an edge hour of the window: the part of its stored sample inside the window, when stored
            cached = part_of_sample(s3, where.bucket, where.hour_sample_key(hour, options.sample_cap), hour, lo, hi)
        if cached is not None:
            samples.append(cached)
        elif shared is not None and (lo, hi) in shared:
            samples.append(replace(shared[(lo, hi)], objects_read=0, objects_listed=0, cached=True))
        else:
            live.append((lo, hi, key))
    return samples, live


@dataclass(frozen=True)
class ReadEstimate:
    """What reading a window from S3 would fetch: the objects (and their bytes) of the slices that no
    stored hour sample covers. ``complete``: False when the listing stopped early (already too much)."""

    objects: int
    bytes: int
    live_slices: int
    stored_slices: int
    complete: bool = True


def estimate_read(
    s3: Any,
    where: CaptureLocation,
    start: datetime,
    end: datetime,
    options: ReadOptions,
    enough: Callable[[int, int], bool],
    now: datetime | None = None,
    shared: dict[tuple[datetime, datetime], HourSample] | None = None,
) -> ReadEstimate:
    """The objects ``read_window`` would fetch, from the same plan and the same listing (with sizes), without
    fetching any; the listing stops as soon as ``enough(objects, bytes)`` holds."""
    samples, live = _plan_slices(s3, where, start, end, options, now or datetime.now(UTC), shared)
    objects = size = 0
    for n in range(0, len(live), MAX_HOURS_PER_PASS):
        for _, object_size in list_slice_objects(s3, where, [(lo, hi) for lo, hi, _ in live[n : n + MAX_HOURS_PER_PASS]]):
            objects, size = objects + 1, size + object_size
            if enough(objects, size):
                return ReadEstimate(objects, size, len(live), len(samples), complete=False)
    return ReadEstimate(objects, size, len(live), len(samples))


def _total_errors(samples: Sequence[HourSample]) -> dict[str, int]:
    total: dict[str, int] = {}
    for sample in samples:
        for code, n in sample.read_errors.items():
            total[code] = total.get(code, 0) + n
    return total


class _Slices:
    """Which slice of a pass a row belongs to, by its event time. Each slice lies within one UTC
    hour; event times are fixed-width ISO UTC strings: compared and cut, never parsed."""

    def __init__(self, slices: Sequence[tuple[datetime, datetime]]) -> None:
        self.bounds = [(utc_iso(lo), utc_iso(hi)) for lo, hi in slices]
        self.by_hour = {lo[:13]: i for i, (lo, _) in enumerate(self.bounds)}  # "YYYY-MM-DDTHH" -> slice

    def route(self, data: bytes | Exception) -> list[tuple[int, CaptureRow]]:
        """(slice, row) of each row of one object in a slice. Raises on a corrupt object or a row
        without the fields a capture record needs, so the object is skipped whole."""
        if isinstance(data, Exception):
            raise ValueError(f"unreadable: {data}")
        routed = []
        for row in decode_capture_object(data):
            t = row["event_time"]
            i = self.by_hour.get(t[:13])
            if i is not None and self.bounds[i][0] <= t < self.bounds[i][1]:
                _required_fields(row)
                routed.append((i, row))
        return routed


def list_hour_keys(s3: Any, where: CaptureLocation, hours: Iterable[datetime]) -> list[str]:
    """Keys of the objects the rows of these UTC hours can be in."""
    return [key for prefix in where.prefixes_to_list(hours) for key in list_keys(s3, where.bucket, prefix)]


def list_slice_keys(s3: Any, where: CaptureLocation, slices: Sequence[tuple[datetime, datetime]]) -> list[str]:
    """Keys of the objects the rows of these slices (each within one UTC hour) can be in: a key that
    names its time (our layout) only when that time is inside a slice; any other key (Firehose's
    files) whole, as ``list_hour_keys`` lists them."""
    return [key for key, _ in list_slice_objects(s3, where, slices)]


def list_slice_objects(s3: Any, where: CaptureLocation, slices: Sequence[tuple[datetime, datetime]]) -> Iterator[tuple[str, int]]:
    """(key, size) of the objects ``list_slice_keys`` lists; a caller that stops iterating stops the listing."""
    bounds = [(utc_iso(lo), utc_iso(hi)) for lo, hi in slices]
    hours = [lo.replace(minute=0, second=0, microsecond=0) for lo, _ in slices]
    # the direct S3 sink files each object under its own event hour, named by its event time: the
    # listing of a slice's own prefix can start at the slice and stop past it. Under Firehose other
    # names can share the prefix, so it is listed whole and filtered.
    ranges: dict[str, tuple[str | None, str]] = {}
    if not where.neighbours:
        for (lo, hi), hour in zip(slices, hours):
            ours = where.hour_prefixes(hour)[0]
            ranges[ours] = (ours + key_time_name(lo) if lo > hour else None, utc_iso(hi))
    for prefix in where.prefixes_to_list(hours):
        start_after, stop = ranges.get(prefix, (None, None))
        for key, size in list_objects(s3, where.bucket, prefix, start_after):
            t = key_time(key)
            if t is None or any(lo <= t < hi for lo, hi in bounds):
                yield key, size
            elif stop is not None and t >= stop:
                break  # keys sort by time under this prefix: none after it is in the slice


def read_hours(s3: Any, where: CaptureLocation, slices: Sequence[tuple[datetime, datetime]], options: ReadOptions) -> list[HourSample]:
    """One reservoir per slice (each within one UTC hour), filled in one pass over the objects of
    those hours: every object is fetched once and each row goes to the slice of its event time."""
    samples = [HourSample(lo, hi, [], 0) for lo, hi in slices]
    if not slices:
        return samples
    reservoirs = [Reservoir[CaptureRow](options.sample_cap, options.seed + i) for i in range(len(slices))]
    router = _Slices(slices)
    keys = list_slice_keys(s3, where, slices)
    filed_under = {prefix: i for i, (lo, _) in enumerate(slices) for prefix in where.hour_prefixes(lo)}
    # shuffled so a partial read is still a uniform sample of each slice, not its first minutes
    random.Random(options.seed).shuffle(keys)
    objects = 0
    for key, data in fetch_parallel(s3, where.bucket, until(keys, options.deadline), options.workers):
        objects += 1
        if isinstance(data, Exception):  # the GET failed: a fault of the read, not corrupt data
            code = error_code(data)
            logger.error("capture object %s not read (%s): %s", key, code, data)
            errors = samples[_filed_under(filed_under, key) or 0].read_errors
            errors[code] = errors.get(code, 0) + 1
            continue
        try:
            routed = router.route(data)
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("capture object %s skipped: %s", key, exc)
            _count_corrupt(samples, filed_under, key)
            continue
        for i, row in routed:
            reservoirs[i].add(row)
    partial = objects < len(keys)
    if partial:
        logger.warning("time budget reached: read %d of %d capture objects", objects, len(keys))
    for sample, reservoir in zip(samples, reservoirs):
        sample.rows, sample.rows_seen, sample.partial = reservoir.items, reservoir.seen, partial
    # what the pass cost, told once (on its first slice)
    samples[0].objects_read, samples[0].objects_listed = objects, len(keys)
    return samples


def _count_corrupt(samples: list[HourSample], filed_under: dict[str, int], key: str) -> None:
    """Counted by the hour the object is filed under; objects of neighbouring hours are not counted
    here (their own hour counts them)."""
    i = _filed_under(filed_under, key)
    if i is None:
        return
    samples[i].corrupt_objects += 1
    if len(samples[i].corrupt_keys) < MAX_CORRUPT_KEYS:
        samples[i].corrupt_keys.append(key)


def _filed_under(filed_under: dict[str, int], key: str) -> int | None:
    """The slice whose hour prefix the key is under (None: a neighbouring hour's object)."""
    return next((i for prefix, i in filed_under.items() if key.startswith(prefix)), None)


def capture_records(rows: list[CaptureRow]) -> list[CaptureRecord]:
    """Typed records of the rows; a row that is not a capture record is left out and logged."""
    records = []
    for row in rows:
        try:
            records.append(CaptureRecord.from_dict(row))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("capture row %s/%s left out of the sample: %s", row.get("request_id"), row.get("row"), exc)
    return records
