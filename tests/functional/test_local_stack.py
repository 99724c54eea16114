"""The helpers every local run shares (devtools/local.py): ``local_stack`` serves the real inference
handler behind the gateway with captures in a bucket of the caller's choosing, ``post_json`` returns
refusals with their body, ``read_s3_object`` reads what the function wrote, and everything stops on exit."""

from __future__ import annotations

import gzip
import json
import os
import time
import urllib.error

import pytest

from devtools.local import LOOPBACK, local_stack, post_json, read_s3_object, sleep_to_next_second


def _capture_keys(bucket: str, deadline_s: float = 10.0) -> list[str]:
    import boto3

    s3 = boto3.client("s3")
    stop = time.monotonic() + deadline_s
    while True:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="captures/").get("Contents", [])]
        if keys or time.monotonic() > stop:
            return keys
        time.sleep(0.1)


def test_a_prediction_through_the_local_stack_is_answered_and_captured_in_its_bucket(sample_bundle) -> None:
    instance = sample_bundle.reference_rows()[0]["inputs"]
    bucket = "local-stack-test-captures"
    with local_stack(sample_bundle.root, {"POWERTOOLS_METRICS_DISABLED": "true"}, bucket=bucket, with_drift_check=False) as stack:
        assert stack.drift_check is None and stack.bucket == bucket
        status, body = post_json(f"{stack.gateway.url}/predict", {"instances": [instance]})
        assert status == 200
        assert body["model_version"] == sample_bundle.manifest.version
        keys = _capture_keys(bucket)
        assert keys, "the answered request left no capture object"
        captured = gzip.decompress(read_s3_object(bucket, f"s3://{bucket}/{keys[0]}")).decode()
        assert body["request_id"] in captured
        assert json.loads(captured.splitlines()[0])["inputs"] == json.loads(json.dumps(instance))
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
