"""Ground-truth labels for earlier predictions (``POST /feedback``), kept so they cannot be replaced silently.

Each item is checked against the captured request, found in one GET of its index
(``records.request_index_key``, written with the capture): the row must be one of its rows. A request
not captured (sampled out, or its capture not written yet) is accepted as *pending*: the drift check
joins it when the capture is there, and reports the labels it never could join.

The label a row holds is its own object (``records.label_key``), written create-only (S3's
``If-None-Match: *``): the same label again is accepted and changes nothing; a different one is a 409
``label_conflict`` unless the item says ``"replace": true`` with a ``reason``, and then the old label
stays in the object's history and the feedback record names what it replaced and why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol

import orjson

from modelserve.records import FeedbackRecord, label_key, request_index_key

logger = logging.getLogger(__name__)

LABEL_CONFLICT = "label_conflict"  # 409: the row holds another label
UNKNOWN_ROW = "unknown_row"  # 422: the captured request has fewer rows
MAX_LOOKUPS_IN_FLIGHT = 16


class FeedbackStore(Protocol):
    """Where labels go: the feedback objects, the label each row holds, and the captured requests' index."""

    def write(self, key: str, body: bytes) -> None: ...

    def read_json(self, key: str) -> Any | None:
        """The object's JSON, None when there is none."""

    def create(self, key: str, body: bytes) -> bool:
        """Write the object only if there is none; False when there is one."""

    def put(self, key: str, body: bytes) -> None: ...


@dataclass
class S3FeedbackStore:
    client: Any  # boto3 S3 client
    bucket: str

    def write(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/x-ndjson")

    def read_json(self, key: str) -> Any | None:
        try:
            data = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        return orjson.loads(data)

    def create(self, key: str, body: bytes) -> bool:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json", IfNoneMatch="*")
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")


@dataclass(frozen=True)
class Outcome:
    """What storing a batch of labels did: the records to write, and per item its fate."""

    records: list[FeedbackRecord]  # new labels and corrections, in item order
    unchanged: int  # the same label again
    pending: int  # for a request not captured (yet)
    conflicts: list[tuple[int, Any]]  # (item index, the label the row holds)
    unknown_rows: list[tuple[int, int]]  # (item index, the request's row count)


def settle(store: FeedbackStore, model_name: str, records: Sequence[FeedbackRecord], replacing: Sequence[bool]) -> Outcome:
    """Check each record against its captured request and the label its row holds (GETs in parallel)."""
    rids = list(dict.fromkeys(r.request_id for r in records))
    with ThreadPoolExecutor(min(MAX_LOOKUPS_IN_FLIGHT, max(1, len(records)))) as pool:
        indexes = dict(zip(rids, pool.map(lambda rid: store.read_json(request_index_key(model_name, rid)), rids), strict=True))
        held = list(pool.map(lambda r: store.read_json(label_key(model_name, r.request_id, r.row)), records))
    out: list[FeedbackRecord] = []
    unchanged = pending = 0
    conflicts: list[tuple[int, Any]] = []
    unknown_rows: list[tuple[int, int]] = []
    for i, (record, holding) in enumerate(zip(records, held, strict=True)):
        index = indexes[record.request_id]
        if index is None:
            pending += 1
        elif record.row >= int(index.get("rows", 0)):
            unknown_rows.append((i, int(index.get("rows", 0))))
            continue
        if holding is None:
            out.append(record)
        elif holding.get("label") == record.label:
            unchanged += 1
        elif replacing[i]:
            out.append(replace(record, replaces=holding.get("label")))
        else:
            conflicts.append((i, holding.get("label")))
    return Outcome(out, unchanged, pending, conflicts, unknown_rows)


def hold(store: FeedbackStore, model_name: str, records: Sequence[FeedbackRecord]) -> int:
    """Make each stored record the label its row holds (after the feedback object is written, so a
    label is never held without its record). Returns how many rows lost a race to another label:
    both records are stored, and the drift check reports the row's labels as conflicting."""
    lost = 0
    for record in records:
        key = label_key(model_name, record.request_id, record.row)
        entry = {"label": record.label, "received_time": record.received_time, "caller": record.caller}
        if record.is_correction:
            old = store.read_json(key) or {}
            history = [*old.get("history", []), {k: old.get(k) for k in ("label", "received_time", "caller")}]
            store.put(key, orjson.dumps({**entry, "reason": record.reason, "history": history}))
        elif not store.create(key, orjson.dumps({**entry, "history": []})):
            now_held = store.read_json(key) or {}
            if now_held.get("label") != record.label:
                lost += 1
                logger.warning("label of %s row %d raced another label", record.request_id[:128], record.row)
    return lost


def caller_of(aws_event: Any) -> str | None:
    """Who sent the request, as API Gateway says: the API key's id, else the IAM caller's ARN."""
    ctx = aws_event.get("requestContext") if isinstance(aws_event, dict) else None
    if not isinstance(ctx, dict):
        return None
    identity = ctx.get("identity") or {}
    iam = (ctx.get("authorizer") or {}).get("iam") or {}
    for value in (identity.get("apiKeyId"), identity.get("userArn"), iam.get("userArn")):
        if isinstance(value, str) and value:
            return value[:256]
    return None
