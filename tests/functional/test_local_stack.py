"""The helpers every local run shares (devtools/local.py): ``local_stack`` serves the real inference
handler behind the gateway with captures in a bucket of the caller's choosing (with the default sink,
``logs``, through local CloudWatch Logs and Firehose; with ``s3``, an object per request), ``post_json``
returns refusals with their body, ``read_s3_object`` reads what the function wrote, and everything stops on exit."""

from __future__ import annotations

import json
import os
import time
import urllib.error

import pytest

from devtools.local import LOOPBACK, local_stack, post_json, read_s3_object, sleep_to_next_second
from driftcheck.capture_formats import decode_capture_object
from modelserve.records import model_capture_prefix


def _capture_keys(bucket: str, deadline_s: float = 10.0) -> list[str]:
    import boto3

    s3 = boto3.client("s3")
    stop = time.monotonic() + deadline_s
    while True:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="captures/").get("Contents", [])]
        if keys or time.monotonic() > stop:
            return keys
        time.sleep(0.1)


@pytest.mark.parametrize("sink", ["logs", "s3"])
def test_a_prediction_through_the_local_stack_is_answered_and_captured_in_its_bucket(sample_bundle, sink) -> None:
    instance = sample_bundle.reference_rows()[0]["inputs"]
    m = sample_bundle.manifest
    bucket = f"local-stack-test-captures-{sink}"
    env = {"POWERTOOLS_METRICS_DISABLED": "true"} | ({} if sink == "logs" else {"MS_CAPTURE_SINK": sink})  # logs: the default
    with local_stack(sample_bundle.root, env, bucket=bucket, with_drift_check=False) as stack:
        assert stack.drift_check is None and stack.bucket == bucket
        assert type(stack.inference.service.capturer.sink).__name__ == ("LogsCaptureSink" if sink == "logs" else "S3CaptureSink")
        status, body = post_json(f"{stack.gateway.url}/predict", {"instances": [instance]})
        assert status == 200
        assert body["model_version"] == m.version
        keys = _capture_keys(bucket)
        assert keys, "the answered request left no capture object"
        assert all(k.startswith(model_capture_prefix(m.model_name, m.version)) for k in keys)
        # the logs sink's object is what moto's Firehose wrote (CloudWatch Logs envelopes), read as the drift check reads it
        captured = decode_capture_object(read_s3_object(bucket, f"s3://{bucket}/{keys[0]}"))
        assert [r["request_id"] for r in captured] == [body["request_id"]]
        assert captured[0]["inputs"] == json.loads(json.dumps(instance))
        url = stack.gateway.url
    # on exit the gateway is closed and the environment is the caller's again
    with pytest.raises(urllib.error.URLError):
        LOOPBACK.open(f"{url}/health", timeout=2)
    assert os.environ.get("AWS_ENDPOINT_URL") != stack.endpoint


def test_a_refused_request_comes_back_with_its_status_and_error_body(sample_bundle) -> None:
    with local_stack(sample_bundle.root, {"POWERTOOLS_METRICS_DISABLED": "true"}, with_drift_check=False) as stack:
        status, body = post_json(f"{stack.gateway.url}/predict", {"instances": [{"no_such_feature": 1}]})
    assert 400 <= status < 500
    assert body["error"] and body["message"]


def test_sleep_to_next_second_lands_just_past_a_whole_second() -> None:
    sleep_to_next_second()
    fraction = time.time() % 1.0
    assert fraction < 0.5  # 10 ms past the boundary, plus scheduling; never the second it started in
