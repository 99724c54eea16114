"""Where a model version's captures are (one value object), and listing and fetching S3 objects
for the readers: parallel GETs with bounded memory, results as they land."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from modelserve.records import hour_prefixes, hour_sample_key

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class CaptureLocation:
    """Where the captures of one model version are, and how the sink files them.

    ``neighbours``: an hour's rows can sit under the prefixes of the hours around it. Firehose
    names a file by the arrival hour of its oldest record and buffers up to 15 minutes; the
    direct S3 sink files each request by its own event time.
    """

    bucket: str
    model_name: str
    model_version: str
    neighbours: bool = False

    def hour_prefixes(self, hour: datetime) -> tuple[str, str]:
        """Both prefixes (ours, Firehose's) the captures of one UTC hour are filed under."""
        return hour_prefixes(self.model_name, self.model_version, hour)

    def prefixes_to_list(self, hours: Iterable[datetime]) -> list[str]:
        """Every prefix the rows of these hours can sit under, each once."""
        spread = [h + d for h in hours for d in (-HOUR, timedelta(0), HOUR)] if self.neighbours else list(hours)
        return list(dict.fromkeys(p for hour in spread for p in self.hour_prefixes(hour)))

    def hour_sample_key(self, hour: datetime, sample_cap: int) -> str:
        return hour_sample_key(self.model_name, self.model_version, hour, sample_cap)


def list_keys(s3: Any, bucket: str, prefix: str, start_after: str | None = None) -> Iterator[str]:
    """Keys under ``prefix`` in key order, from just after ``start_after`` when given; a caller that
    stops iterating stops the listing (no further pages are requested)."""
    return (key for key, _ in list_objects(s3, bucket, prefix, start_after))


def list_objects(s3: Any, bucket: str, prefix: str, start_after: str | None = None) -> Iterator[tuple[str, int]]:
    """(key, size in bytes) of the objects under ``prefix``, as ``list_keys`` lists them."""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, **({"StartAfter": start_after} if start_after else {})):
        for obj in page.get("Contents", []):
            yield obj["Key"], int(obj.get("Size", 0))


def get_bytes(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def fetch_parallel(s3: Any, bucket: str, keys: Iterable[str], workers: int) -> Iterator[tuple[str, bytes | Exception]]:
    """GETs with at most ``2 * workers`` objects in flight (bounded memory), results as they land."""
    keys = iter(keys)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: dict[Future[bytes], str] = {}

        def top_up() -> None:
            while len(pending) < 2 * workers:
                key = next(keys, None)
                if key is None:
                    return
                pending[pool.submit(get_bytes, s3, bucket, key)] = key

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


def error_code(exc: Exception) -> str:
    """The reason a GET failed, as the on-call engineer searches for it: S3's error code (AccessDenied,
    KMS.AccessDeniedException, SlowDown...) for a service error, else the exception's type."""
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return str(code) if code else type(exc).__name__


def until(keys: Iterable[str], deadline: float | None) -> Iterator[str]:
    """The keys, until ``time.monotonic()`` passes ``deadline``."""
    for key in keys:
        if deadline is not None and time.monotonic() > deadline:
            return
        yield key
