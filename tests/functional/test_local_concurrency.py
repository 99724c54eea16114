"""The local server (``make run``: the real handler behind the local gateway, captures after the answer
on a writer pool, local S3 on moto) keeps every capture under 24 concurrent clients, and a stalled S3
holds no answer: the stall is real at the boto level (a botocore hook on the function's own capture
client that holds each PutObject), nothing of ours is mocked."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from devtools.local import local_stack, post_json

CLIENTS = 24
BUDGET_S = 2.0
# the s3 sink's writer pool is what a stalled S3 could hold (the logs sink writes a line, no network)
ENV = {"MS_CAPTURE_SINK": "s3", "MS_CAPTURE_MODE": "thread", "MS_CAPTURE_BUDGET_S": str(BUDGET_S), "POWERTOOLS_METRICS_DISABLED": "true"}


def _load(url: str, rows: list[dict[str, Any]], per_client: int) -> list[tuple[int, float]]:
    """(status, seconds) of every request of ``CLIENTS`` clients sending ``per_client`` requests each."""

    def client(c: int) -> list[tuple[int, float]]:
        out = []
        for i in range(per_client):
            started = time.monotonic()
            status, _ = post_json(f"{url}/predict", {"instances": [rows[(c + i) % len(rows)]]})
            out.append((status, time.monotonic() - started))
        return out

    with ThreadPoolExecutor(CLIENTS) as pool:
        return [r for rs in pool.map(client, range(CLIENTS)) for r in rs]


def _captures(bucket: str) -> int:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="captures/")
    return sum(page.get("KeyCount", 0) for page in pages)


@pytest.mark.slow
def test_24_clients_lose_no_capture_and_a_stalled_s3_holds_no_answer(sample_bundle: Any) -> None:
    rows = [dict(r["inputs"]) for r in sample_bundle.reference_rows()[:50]]
    with local_stack(sample_bundle.root, ENV, bucket="local-concurrency", with_drift_check=False) as stack:
        executor = stack.inference.capture_executor
        answers = _load(stack.gateway.url, rows, 10)
        assert [s for s, _ in answers] == [200] * len(answers)

        # S3 stalls for 4 s (twice the capture budget): every PutObject in that time is held until it ends
        stall_until = time.monotonic() + 4.0

        def stalled(**_: Any) -> None:
            time.sleep(max(0.0, stall_until - time.monotonic()))

        client = stack.inference.service.capturer.sink.client.get()
        client.meta.events.register("before-send.s3.PutObject", stalled)
        during = _load(stack.gateway.url, rows, 4)
        assert time.monotonic() < stall_until, "the load outlasted the stall: nothing was measured during it"
        assert [s for s, _ in during] == [200] * len(during)
        slowest = max(t for _, t in during)
        assert slowest < BUDGET_S, f"an answer waited {slowest:.2f} s on the stalled S3"

        assert executor.close(timeout=30)
        assert executor.dropped == 0
        assert _captures(stack.bucket) == len(answers) + len(during)
