"""``capture_sink=logs`` locally: the handler's capture lines go to (local) CloudWatch Logs, whose
subscription filter delivers them to a Firehose stream that writes into the capture bucket, the
path the stack builds in AWS (cdk/capture.py), on moto.

What this path shows: the lines the function writes, their delivery log group -> subscription ->
Firehose -> S3, and the drift check reading what arrives. What it cannot show (moto implements none
of it): the subscription filter's pattern (every forwarded line is a capture line here anyway),
Firehose's processors (decompression and message extraction: moto stores the gzip CloudWatch
Logs envelopes, which the drift check reads too), dynamic partitioning (moto files by arrival hour,
``YYYY/MM/DD/HH/``, which the drift check lists as well) and the Parquet record format conversion.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass
class CloudWatchLogsForwarder:
    """What Lambda's runtime does with stdout: each line one log event in the function's log group."""

    client: Any  # boto3 CloudWatch Logs client
    group: str = LOCAL_LOG_GROUP
    stream: str = LOCAL_LOG_STREAM
    events_sent: int = 0

    def __call__(self, text: str) -> None:
        now = int(time.time() * 1000)
        batch: list[dict[str, Any]] = []
        size = 0
        for line in text.splitlines():
            cost = len(line.encode()) + EVENT_OVERHEAD_BYTES
            if batch and (len(batch) >= MAX_EVENTS_PER_PUT or size + cost > MAX_BYTES_PER_PUT):
                self._put(batch)
                batch, size = [], 0
            batch.append({"timestamp": now, "message": line})
            size += cost
        if batch:
            self._put(batch)

    def _put(self, events: list[dict[str, Any]]) -> None:
        self.client.put_log_events(logGroupName=self.group, logStreamName=self.stream, logEvents=events)
        self.events_sent += len(events)


def create_log_capture_path(manifest: BundleManifest, bucket: str, session: Any = None) -> CloudWatchLogsForwarder:
    """The log group, the Firehose stream into ``bucket`` under the model's capture prefix, and the
    subscription filter between them; returns the forwarder that plays Lambda's part."""
    import boto3

    session = session or boto3.session.Session()
    logs, firehose = session.client("logs"), session.client("firehose")
    stream_arn = firehose.create_delivery_stream(
        DeliveryStreamName=LOCAL_CAPTURE_STREAM,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": LOCAL_ROLE_ARN,
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": model_capture_prefix(manifest.model_name, manifest.version),
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60},
        },
    )["DeliveryStreamARN"]
    logs.create_log_group(logGroupName=LOCAL_LOG_GROUP)
    logs.create_log_stream(logGroupName=LOCAL_LOG_GROUP, logStreamName=LOCAL_LOG_STREAM)
    logs.put_subscription_filter(
        logGroupName=LOCAL_LOG_GROUP,
        filterName="captures",
        filterPattern=CAPTURE_LINES_FILTER_PATTERN,
        destinationArn=stream_arn,
        roleArn=LOCAL_ROLE_ARN,
    )
    return CloudWatchLogsForwarder(logs)


@contextmanager
def local_log_capture(manifest: BundleManifest, bucket: str) -> Iterator[CloudWatchLogsForwarder]:
    """Capture lines forwarded to local CloudWatch Logs for the block; back to stdout after it."""
    forwarder = create_log_capture_path(manifest, bucket)
    redirect_lines(forwarder)
    try:
        yield forwarder
    finally:
        redirect_lines(None)
