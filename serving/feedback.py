"""Ground-truth labels for earlier predictions (``POST /feedback``), kept so they cannot be replaced silently.

The label a row holds is its own object (``records.label_key``), written create-only (S3's
``If-None-Match: *``): the same label again is accepted and changes nothing; a different one is a 409
``label_conflict`` unless the item says ``"replace": true`` with a ``reason``, and then the old label
stays in the object's history and the feedback record names what it replaced and why. The request id
is read back without a lookup (``serving/request_ids.py``): an id the API did not issue is refused
(``unknown_request_id``), so is a row the request did not hold (``row_out_of_range``). Whether the
row was captured (sampling, a capture not written yet) is decided where the captures are read: the
drift check's join (``driftcheck/feedback_reader.py``) counts the labels that join no captured row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol

import orjson

from modelserve.records import FeedbackRecord, label_key

logger = logging.getLogger(__name__)

LABEL_CONFLICT = "label_conflict"  # 409: the row holds another label
UNKNOWN_REQUEST_ID = "unknown_request_id"  # 422: an id the API did not issue (serving/request_ids.py)
ROW_OUT_OF_RANGE = "row_out_of_range"  # 422: a row the request did not hold
MAX_LOOKUPS_IN_FLIGHT = 16


class FeedbackStore(Protocol):
    """Where labels go: the feedback objects and the label each row holds."""

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
    conflicts: list[tuple[int, Any]]  # (item index, the label the row holds)


def settle(store: FeedbackStore, model_name: str, records: Sequence[FeedbackRecord], replacing: Sequence[bool]) -> Outcome:
    """Check each record against the label its row holds (GETs in parallel)."""
    with ThreadPoolExecutor(min(MAX_LOOKUPS_IN_FLIGHT, max(1, len(records)))) as pool:
        held = list(pool.map(lambda r: store.read_json(label_key(model_name, r.request_id, r.row)), records))
    out: list[FeedbackRecord] = []
    unchanged = 0
    conflicts: list[tuple[int, Any]] = []
    for i, (record, holding) in enumerate(zip(records, held, strict=True)):
        if holding is None:
            out.append(record)
        elif holding.get("label") == record.label:
            unchanged += 1
        elif replacing[i]:
            out.append(replace(record, replaces=holding.get("label")))
        else:
            conflicts.append((i, holding.get("label")))
    return Outcome(out, unchanged, conflicts)


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
