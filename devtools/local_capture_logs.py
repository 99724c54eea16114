"""``capture_sink=logs`` locally: the handler's capture lines go to (local) CloudWatch Logs, whose
subscription filter delivers them to a Firehose stream that writes into the capture bucket, the
path the stack builds in AWS (cdk/capture.py), on moto.

What this path shows: the lines the function writes, their delivery log group -> subscription ->
Firehose -> S3, and the drift check reading what arrives. What it cannot show (moto implements none
of it): the subscription filter's pattern (every forwarded line is a capture line here anyway),
Firehose's processors (decompression and message extraction: moto stores the gzip CloudWatch
Logs envelopes, which the drift check reads too), dynamic partitioning (moto files by arrival hour,
``YYYY/MM/DD/HH/``, which the drift check lists as well) and the Parquet record format conversion.
The partitioning by model version is played here instead: each version's lines go to a log group of
its own, whose subscription delivers to a stream writing under that version's prefix, so a champion
and a challenger (shadow, A/B) are read back apart as they are in AWS.

moto keeps its state per process, so a second local run in the same process (the demo's comparison
after its own run) finds the path already there for its bucket and version, and reuses it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from modelserve.records import CAPTURE_LINES_FILTER_PATTERN, model_capture_prefix
from modelserve.schema import BundleManifest
from serving.capture_logs import redirect_lines

LOCAL_LOG_GROUP = "/aws/lambda/modelserve-local-inference"
LOCAL_LOG_STREAM = "local"
LOCAL_CAPTURE_STREAM = "modelserve-local-capture-logs"
LOCAL_ROLE_ARN = "arn:aws:iam::123456789012:role/modelserve-local-logs-to-firehose"
# PutLogEvents: at most 10,000 events and 1,048,576 bytes (messages + 26 bytes each) per call
MAX_EVENTS_PER_PUT = 10_000
MAX_BYTES_PER_PUT = 1_048_576
EVENT_OVERHEAD_BYTES = 26


def _names(bucket: str, version: str) -> tuple[str, str]:
    """The log group and the Firehose stream of one bucket and model version (a stream name is at most 64 characters)."""
    tag = hashlib.sha256(f"{bucket}/{version}".encode()).hexdigest()[:12]
    return f"{LOCAL_LOG_GROUP}/{tag}", f"{LOCAL_CAPTURE_STREAM}-{tag}"


def _exists(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in ("ResourceAlreadyExistsException", "ResourceInUseException")


@dataclass
class CloudWatchLogsForwarder:
    """What Lambda's runtime does with stdout: each line one log event in the function's log group; here one
    group per model version (see the module docstring), its path created on the version's first line."""

    logs: Any  # boto3 CloudWatch Logs client
    firehose: Any  # boto3 Firehose client
    model_name: str
    bucket: str
    events_sent: int = 0
    groups: dict[str, str] = field(default_factory=dict)  # model version -> its log group

    def __call__(self, text: str) -> None:
        now = int(time.time() * 1000)
        by_group: dict[str, list[dict[str, Any]]] = {}
        for line in text.splitlines():
            by_group.setdefault(self.group_of(line), []).append({"timestamp": now, "message": line})
        for group, events in by_group.items():
            self._put_batched(group, events)

    def group_of(self, line: str) -> str:
        try:
            version = str(json.loads(line).get("model_version") or "unknown")
        except (ValueError, AttributeError):
            version = "unknown"
        if version not in self.groups:
            self.groups[version] = create_version_path(self.logs, self.firehose, self.model_name, version, self.bucket)
        return self.groups[version]

    def _put_batched(self, group: str, events: list[dict[str, Any]]) -> None:
        batch: list[dict[str, Any]] = []
        size = 0
        for event in events:
            cost = len(event["message"].encode()) + EVENT_OVERHEAD_BYTES
            if batch and (len(batch) >= MAX_EVENTS_PER_PUT or size + cost > MAX_BYTES_PER_PUT):
                self._put(group, batch)
                batch, size = [], 0
            batch.append(event)
            size += cost
        if batch:
            self._put(group, batch)

    def _put(self, group: str, events: list[dict[str, Any]]) -> None:
        self.logs.put_log_events(logGroupName=group, logStreamName=LOCAL_LOG_STREAM, logEvents=events)
        self.events_sent += len(events)


def create_version_path(logs: Any, firehose: Any, model_name: str, version: str, bucket: str) -> str:
    """One version's log group, its Firehose stream into ``bucket`` under the version's capture prefix, and the
    subscription filter between them (reused when this process made them before); returns the log group."""
    group, stream = _names(bucket, version)
    try:
        firehose.create_delivery_stream(
            DeliveryStreamName=stream,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": LOCAL_ROLE_ARN,
                "BucketARN": f"arn:aws:s3:::{bucket}",
                "Prefix": model_capture_prefix(model_name, version),
                "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60},
            },
        )
    except Exception as exc:  # noqa: BLE001 - botocore's error classes are per client
        if not _exists(exc):
            raise
    stream_arn = firehose.describe_delivery_stream(DeliveryStreamName=stream)["DeliveryStreamDescription"]["DeliveryStreamARN"]
    creates = (
        lambda: logs.create_log_group(logGroupName=group),
        lambda: logs.create_log_stream(logGroupName=group, logStreamName=LOCAL_LOG_STREAM),
    )
    for create in creates:
        try:
            create()
        except Exception as exc:  # noqa: BLE001
            if not _exists(exc):
                raise
    logs.put_subscription_filter(
        logGroupName=group,
        filterName="captures",
        filterPattern=CAPTURE_LINES_FILTER_PATTERN,
        destinationArn=stream_arn,
        roleArn=LOCAL_ROLE_ARN,
    )
    return group


def create_log_capture_path(manifest: BundleManifest, bucket: str, session: Any = None) -> CloudWatchLogsForwarder:
    """The forwarder that plays Lambda's part, with the served version's path made at once (a challenger's on its first line)."""
    import boto3

    session = session or boto3.session.Session()
    forwarder = CloudWatchLogsForwarder(session.client("logs"), session.client("firehose"), manifest.model_name, bucket)
    forwarder.groups[manifest.version] = create_version_path(
        forwarder.logs, forwarder.firehose, manifest.model_name, manifest.version, bucket
    )
    return forwarder


@contextmanager
def local_log_capture(manifest: BundleManifest, bucket: str) -> Iterator[CloudWatchLogsForwarder]:
    """Capture lines forwarded to local CloudWatch Logs for the block; back to stdout after it."""
    forwarder = create_log_capture_path(manifest, bucket)
    redirect_lines(forwarder)
    try:
        yield forwarder
    finally:
        redirect_lines(None)
